"""The web dashboard of ``nextmove serve``: a real server process, and the page in a real headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from tests.web.conftest import HOSTILE_NAME, Dashboard

from nextmove.store import open_store
from nextmove.web import ASSETS, CONTENT_SECURITY_POLICY, asset_text


def test_dashboard_page_is_served_with_a_policy_against_inline_script_and_other_origins(
    dashboard: Dashboard,
) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        answers = {name: client.get(path) for name, (_, path) in ASSETS.items()}
        head = client.head("/")
        icon = client.get("/favicon.ico")
    for name, answer in answers.items():
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.text == asset_text(name)
    assert head.status_code == 200
    assert icon.status_code == 204  # asked for by every browser: no 404 in its console
    assert answers["index.html"].headers["content-type"].startswith("text/html")
    assert answers["dashboard.js"].headers["content-type"].startswith("text/javascript")
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src"):
        assert policy[directive] == "'self'", directive  # no 'unsafe-inline', no other origin


def test_dashboard_files_load_nothing_from_elsewhere_and_write_no_html() -> None:
    page = asset_text("index.html")
    script = asset_text("dashboard.js")
    for name in ASSETS:
        assert not re.search(r"(https?:)?//[a-z0-9]", asset_text(name).replace("// ", ""), re.I), name
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))  # no inline script
    assert not re.search(r"\son[a-z]+=|\sstyle=", page)  # no inline handlers or styles
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage"):
        assert sink not in script, sink


def test_recommendations_and_account_carry_the_books_name(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"Authorization": f"Bearer {dashboard.keys.csm}"}) as client:
        page = client.get("/v1/recommendations", params={"limit": 500}).json()
        account = client.get("/v1/accounts/acct-000").json()
    names = {item["account_id"]: item["name"] for item in page["items"]}
    assert names["acct-000"] == HOSTILE_NAME
    assert names == {a: dashboard.names[a] for a in names}
    assert account["name"] == HOSTILE_NAME
    assert account["recommendation"]["name"] == HOSTILE_NAME


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    """A fresh tab on the dashboard that records every request it makes and every dialog it opens."""
    context = browser.new_context()
    tab = context.new_page()
    tab.requests = []
    tab.dialogs = []
    tab.errors = []
    tab.on("request", lambda request: tab.requests.append(request.url))
    tab.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.goto(dashboard.url + "/")
    try:
        yield tab
    finally:
        context.close()


def _sign_in(page: Any, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Open my accounts").click()
    page.wait_for_selector("#accounts-table tbody tr td a")


def _shown_ids(page: Any) -> list[str]:
    hrefs = page.eval_on_selector_all("#accounts-table tbody a", "links => links.map(a => a.getAttribute('href'))")
    return [href.removeprefix("#account=") for href in hrefs]


def test_a_csm_sees_only_its_accounts_and_a_hostile_name_as_text(page: Any, dashboard: Dashboard) -> None:
    _sign_in(page, dashboard.keys.csm)
    ana = {r.account_id for r in dashboard.recs if r.owner == "ana"}
    shown = _shown_ids(page)
    assert set(shown) == ana
    assert len(shown) == len(ana) == 10
    link = page.locator("#accounts-table a[href='#account=acct-000']")
    assert link.text_content() == HOSTILE_NAME
    assert page.locator("img").count() == 0
    assert page.dialogs == []
    assert page.errors == []
    # Sorted by projected value, most first; the header's button turns it round, from the keyboard too.
    values = {r.account_id: r.expected_value_usd for r in dashboard.recs}
    assert [values[a] for a in shown] == sorted((values[a] for a in shown), reverse=True)
    page.locator("#sort-value").focus()
    page.keyboard.press("Enter")
    assert page.locator("#value-header").get_attribute("aria-sort") == "ascending"
    assert [values[a] for a in _shown_ids(page)] == sorted(values[a] for a in shown)
    # Only accounts with an action: those recommended "none" go.
    page.get_by_label("Only accounts with an action").check()
    acted = {r.account_id for r in dashboard.recs if r.owner == "ana" and r.action_id != "none"}
    assert acted < ana  # the seeded run gives some of ana's accounts "none"
    assert set(_shown_ids(page)) == acted
    # The key is kept in this tab only, and never sent in a URL; nothing is asked of another origin.
    assert page.evaluate("sessionStorage.getItem('nextmove.apiKey')") == dashboard.keys.csm
    assert page.evaluate("localStorage.length") == 0
    assert page.requests
    assert all(url.startswith(dashboard.url + "/") for url in page.requests), page.requests
    assert not any(dashboard.keys.csm in url for url in page.requests)


def test_marking_an_account_done_stores_a_feedback_event(page: Any, dashboard: Dashboard) -> None:
    rec = next(r for r in dashboard.recs if r.owner == "ana" and r.action_id != "none" and r.account_id != "acct-000")
    _sign_in(page, dashboard.keys.csm)
    page.locator(f"#accounts-table a[href='#account={rec.account_id}']").click()
    expect(page.locator("#rec-summary")).to_have_text(rec.evidence["summary"])
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#feedback-status")).to_have_text(re.compile("^Marked done"))
    with open_store(dashboard.store_url) as store:
        events = store.feedback(account_id=rec.account_id)
    (event,) = [e for e in events if e.kind == "done"]
    assert event.action_id == rec.action_id
    assert event.run_id == rec.run_id
    assert re.fullmatch(r"dashboard-[0-9a-f-]{36}", event.event_id)
    expect(page.locator("#feedback-table tbody td", has_text="done")).to_have_count(1)
    assert all(url.startswith(dashboard.url + "/") for url in page.requests), page.requests


def test_dismiss_asks_a_reason_and_an_account_out_of_scope_shows_the_apis_message(
    page: Any, dashboard: Dashboard
) -> None:
    _sign_in(page, dashboard.keys.csm)
    page.locator("#accounts-table a[href='#account=acct-000']").click()
    expect(page.locator("#rec-summary")).not_to_be_empty()
    assert page.locator("#account-title").text_content() == f"{HOSTILE_NAME} · acct-000"
    assert page.locator("#touches-table tbody td", has_text="nurture_email").count() == 1
    page.get_by_role("button", name="Dismiss…").click()
    page.get_by_label("Why dismiss it?").fill("already in touch <b>today</b>")
    page.locator("#dismiss-form button[type=submit]").click()
    expect(page.locator("#feedback-status")).to_have_text(re.compile("^Dismissed"))
    with open_store(dashboard.store_url) as store:
        (event,) = [e for e in store.feedback(account_id="acct-000") if e.kind == "dismissed"]
    assert event.reason == "already in touch <b>today</b>"
    page.get_by_role("button", name="Snooze…").click()
    until = page.get_by_label("Snooze until").input_value()  # tomorrow, by default
    page.locator("#snooze-form button[type=submit]").click()
    expect(page.locator("#feedback-status")).to_have_text(re.compile("^Snoozed"))
    with open_store(dashboard.store_url) as store:
        (snoozed,) = [e for e in store.feedback(account_id="acct-000") if e.kind == "snoozed"]
    assert snoozed.payload["snoozed_until"].startswith(until)
    # Another owner's account (cleo's) is a 404 to this key: the page says what the API said.
    page.goto(dashboard.url + "/#account=acct-002")
    expect(page.locator("#feedback-status")).to_contain_text("no account 'acct-002' visible to this key")
    assert page.get_by_role("button", name="Done").is_disabled()
    assert page.dialogs == []
