// The nextmove dashboard: "my accounts" and one account's page, over the REST API (/v1/...) of this server.
// Every text that comes from the API is written with textContent, never as HTML; the key lives in
// sessionStorage only (this tab), and is sent in the Authorization header, never in a URL.
"use strict";

(function () {
  const KEY_ITEM = "nextmove.apiKey";
  const PAGE_LIMIT = 500;
  const MAX_PAGES = 20; // 10,000 accounts: more than any one person's or team's book
  const NO_ACTION = "none";

  const state = { items: [], total: 0, runId: null, sortDescending: true, account: null };
  const $ = (id) => document.getElementById(id);

  // ---- the key ------------------------------------------------------------------------------

  function apiKey() {
    return sessionStorage.getItem(KEY_ITEM);
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_ITEM);
    state.items = [];
    state.account = null;
    clear($("accounts-table").tBodies[0]);
    show("sign-in");
    $("sign-out").hidden = true;
    setStatus("sign-in-status", message || "", Boolean(message));
    $("api-key").focus();
  }

  // ---- calling the API ----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options) {
    const init = Object.assign({ cache: "no-store", credentials: "omit" }, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + apiKey() }, init.headers || {});
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "the server cannot be reached: " + err.message);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
      if (response.status === 401) {
        signOut(message);
      }
      throw new ApiError(response.status, message);
    }
    return body;
  }

  // ---- small helpers ------------------------------------------------------------------------

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell);
      else td.textContent = cell === null || cell === undefined ? "" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function emptyRow(tbody, columns, text) {
    const tr = document.createElement("tr");
    const td = el("td", text, "empty");
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  function setStatus(id, text, isError) {
    const node = $(id);
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
    node.classList.toggle("ok", Boolean(text) && !isError);
  }

  const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  function formatValue(value) {
    return typeof value === "number" && isFinite(value) ? money.format(value) : "";
  }

  function formatInterval(low, high) {
    return typeof low === "number" && typeof high === "number" ? formatValue(low) + " to " + formatValue(high) : "";
  }

  function formatMeasure(value, unit) {
    if (typeof value !== "number") return "";
    if (unit === "probability") return (100 * value).toFixed(1) + "%";
    return value.toLocaleString(undefined, { maximumFractionDigits: 2 });
  }

  function formatTime(text) {
    if (!text) return "";
    const when = new Date(text);
    return isNaN(when.getTime()) ? String(text) : when.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function actionText(rec) {
    return rec.variant ? rec.action_id + " (" + rec.variant + ")" : rec.action_id;
  }

  function show(sectionId) {
    for (const id of ["sign-in", "accounts", "account"]) $(id).hidden = id !== sectionId;
  }

  // ---- my accounts --------------------------------------------------------------------------

  async function loadAccounts() {
    setStatus("accounts-status", "Loading…");
    const items = [];
    let offset = 0;
    let page = null;
    for (let n = 0; n < MAX_PAGES; n += 1) {
      const query = new URLSearchParams({ limit: String(PAGE_LIMIT), offset: String(offset) });
      page = await api("/v1/recommendations?" + query.toString());
      items.push(...page.items);
      if (page.next_offset === null || page.next_offset === undefined) break;
      offset = page.next_offset;
    }
    state.items = items;
    state.total = page ? page.total : 0;
    state.runId = page ? page.run_id : null;
    renderAccounts();
  }

  function renderAccounts() {
    const tbody = $("accounts-table").tBodies[0];
    clear(tbody);
    const actedOnly = $("acted-only").checked;
    const direction = state.sortDescending ? -1 : 1;
    const shown = state.items
      .filter((rec) => !actedOnly || rec.action_id !== NO_ACTION)
      .sort((a, b) => direction * (a.expected_value_usd - b.expected_value_usd) || (a.account_id < b.account_id ? -1 : 1));
    for (const rec of shown) {
      const link = el("a", rec.name || rec.account_id);
      link.href = "#account=" + encodeURIComponent(rec.account_id);
      const account = document.createElement("span");
      account.appendChild(link);
      if (rec.name) account.appendChild(el("span", rec.account_id, "id"));
      const health = rec.health_band
        ? rec.health_band + (typeof rec.health_score === "number" ? " (" + Math.round(rec.health_score) + ")" : "")
        : "";
      const tr = row([account, health, actionText(rec), formatValue(rec.expected_value_usd), (rec.evidence || {}).summary]);
      tr.cells[1].className = "band band-" + String(rec.health_band || "").replace(/\s+/g, "-").toLowerCase();
      tr.cells[3].className = "number";
      tbody.appendChild(tr);
    }
    if (shown.length === 0) {
      emptyRow(tbody, 5, state.runId === null ? "No run has been served yet: no recommendations." : "No accounts to show.");
    }
    $("value-header").setAttribute("aria-sort", state.sortDescending ? "descending" : "ascending");
    $("sort-arrow").textContent = state.sortDescending ? "▼" : "▲";
    let text = shown.length + " of " + state.total + " accounts" + (state.runId ? ", run " + state.runId : "");
    if (state.items.length < state.total) {
      text += " (the first " + state.items.length + " by account id loaded: sorting and the filter cover those only)";
    }
    setStatus("accounts-status", text);
  }

  // ---- one account --------------------------------------------------------------------------

  async function openAccount(accountId) {
    show("account");
    setStatus("feedback-status", "");
    hideForms();
    $("account-title").textContent = accountId;
    let account;
    try {
      account = await api("/v1/accounts/" + encodeURIComponent(accountId));
    } catch (err) {
      state.account = null;
      clear($("account-facts"));
      $("rec-action").textContent = "";
      $("rec-summary").textContent = "";
      setFeedbackButtons(false);
      setStatus("feedback-status", err.message, true);
      return;
    }
    state.account = account;
    renderAccount(account);
    $("account-title").focus();
  }

  function renderAccount(account) {
    const rec = account.recommendation;
    $("account-title").textContent = account.name ? account.name + " · " + account.account_id : account.account_id;
    const facts = $("account-facts");
    clear(facts);
    const pairs = [
      ["Owner", account.owner || "—"],
      ["Health", account.health ? (account.health.band || "—") + (typeof account.health.score === "number" ? " (" + Math.round(account.health.score) + ")" : "") : "—"],
      ["Run", account.run_id || "—"],
    ];
    for (const [name, value] of pairs) {
      facts.appendChild(el("dt", name));
      facts.appendChild(el("dd", value));
    }
    if (rec) {
      $("rec-action").textContent =
        actionText(rec) + " — worth " + formatValue(rec.expected_value_usd) +
        (rec.value_low_usd !== null ? " (" + formatInterval(rec.value_low_usd, rec.value_high_usd) + ")" : "") +
        ", arm " + rec.arm;
      $("rec-summary").textContent = (rec.evidence || {}).summary || "";
    } else {
      $("rec-action").textContent = "No recommendation for this account in the served run.";
      $("rec-summary").textContent = "";
    }
    setFeedbackButtons(Boolean(rec));
    $("done").disabled = !rec || rec.action_id === NO_ACTION;
    const evidence = (rec && rec.evidence) || {};
    fill("signals-table", 3, evidence.signals, (s) => [s.text || s.feature, s.value, s.previous]);
    fill("projected-table", 4, evidence.projected, (p) => [
      p.objective + (p.outcome ? " (" + p.outcome + ")" : ""),
      formatMeasure(p.without, p.unit),
      formatMeasure(p.with, p.unit),
      typeof p.low === "number" ? formatMeasure(p.low, p.unit) + " to " + formatMeasure(p.high, p.unit) : "",
    ]);
    fill("alternatives-table", 3, rec && rec.alternatives, (a) => [
      a.variant ? a.action_id + " (" + a.variant + ")" : a.action_id,
      formatValue(a.value_usd),
      a.reason || a.why || "",
    ]);
    fill("touches-table", 4, account.touches, (t) => [formatTime(t.ts), t.action_id, t.arm, t.status]);
    fill("outcomes-table", 3, account.outcomes, (o) => [formatTime(o.ts), o.kind, o.value]);
    fill("feedback-table", 4, account.feedback, (f) => [formatTime(f.ts), f.kind, f.action_id, f.reason]);
  }

  function fill(tableId, columns, list, cells) {
    const tbody = $(tableId).tBodies[0];
    clear(tbody);
    const items = Array.isArray(list) ? list : [];
    for (const item of items) tbody.appendChild(row(cells(item)));
    if (items.length === 0) emptyRow(tbody, columns, "None.");
  }

  function setFeedbackButtons(enabled) {
    for (const id of ["done", "dismiss", "snooze"]) $(id).disabled = !enabled;
  }

  function hideForms() {
    $("dismiss-form").hidden = true;
    $("snooze-form").hidden = true;
  }

  // ---- feedback -----------------------------------------------------------------------------

  function newEventId() {
    return "dashboard-" + crypto.randomUUID();
  }

  async function sendFeedback(kind, fields) {
    const account = state.account;
    if (!account || !account.recommendation) return false;
    const rec = account.recommendation;
    const event = Object.assign(
      { event_id: newEventId(), account_id: account.account_id, kind: kind, action_id: rec.action_id, run_id: rec.run_id },
      fields
    );
    setStatus("feedback-status", "Sending…");
    let receipt;
    try {
      receipt = await api("/v1/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ events: [event] }),
      });
    } catch (err) {
      setStatus("feedback-status", "Not saved: " + err.message, true);
      return false;
    }
    const done = { done: "Marked done", dismissed: "Dismissed", snoozed: "Snoozed" }[kind];
    const said = done + ": " + receipt.stored + " event stored.";
    hideForms();
    try {
      // The account's feedback as the store has it now, before saying so: the page then shows the event.
      const fresh = await api("/v1/accounts/" + encodeURIComponent(account.account_id));
      state.account = fresh;
      fill("feedback-table", 4, fresh.feedback, (f) => [formatTime(f.ts), f.kind, f.action_id, f.reason]);
      setStatus("feedback-status", said);
    } catch (err) {
      setStatus("feedback-status", said + " (The page could not be refreshed: " + err.message + ")");
    }
    return true;
  }

  function tomorrow() {
    const day = new Date(Date.now() + 24 * 3600 * 1000);
    return day.toISOString().slice(0, 10);
  }

  // ---- routing and wiring -------------------------------------------------------------------

  function route() {
    if (!apiKey()) {
      show("sign-in");
      return;
    }
    $("sign-out").hidden = false;
    const hash = location.hash;
    if (hash.startsWith("#account=")) {
      let accountId;
      try {
        accountId = decodeURIComponent(hash.slice("#account=".length));
      } catch (err) {
        accountId = "";
      }
      if (accountId) {
        openAccount(accountId);
        return;
      }
    }
    show("accounts");
    if (state.items.length === 0) {
      loadAccounts().catch((err) => setStatus("accounts-status", err.message, true));
    }
  }

  function wire() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      $("api-key").value = "";
      if (!key) return;
      sessionStorage.setItem(KEY_ITEM, key);
      setStatus("sign-in-status", "");
      state.items = [];
      route();
    });
    $("sign-out").addEventListener("click", () => {
      history.replaceState(null, "", location.pathname);
      signOut("");
    });
    $("reload").addEventListener("click", () => {
      loadAccounts().catch((err) => setStatus("accounts-status", err.message, true));
    });
    $("acted-only").addEventListener("change", renderAccounts);
    $("sort-value").addEventListener("click", () => {
      state.sortDescending = !state.sortDescending;
      renderAccounts();
    });
    $("back").addEventListener("click", (event) => {
      event.preventDefault();
      history.pushState(null, "", location.pathname);
      route();
    });
    $("done").addEventListener("click", () => sendFeedback("done", {}));
    $("dismiss").addEventListener("click", () => {
      $("snooze-form").hidden = true;
      $("dismiss-form").hidden = false;
      $("dismiss-reason").focus();
    });
    $("snooze").addEventListener("click", () => {
      $("dismiss-form").hidden = true;
      $("snooze-form").hidden = false;
      $("snooze-until").min = tomorrow();
      if (!$("snooze-until").value) $("snooze-until").value = tomorrow();
      $("snooze-until").focus();
    });
    $("dismiss-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sendFeedback("dismissed", { reason: $("dismiss-reason").value.trim() }).then((stored) => {
        if (stored) $("dismiss-reason").value = "";
      });
    });
    $("snooze-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sendFeedback("snoozed", { snoozed_until: $("snooze-until").value });
    });
    for (const button of document.querySelectorAll(".inline-form .cancel")) {
      button.addEventListener("click", hideForms);
    }
    $("account-title").tabIndex = -1;
    window.addEventListener("hashchange", route);
    route();
  }

  document.addEventListener("DOMContentLoaded", wire);
})();
