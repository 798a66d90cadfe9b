"""The report opened in a real headless Chromium: no console errors, charts drawn, search and sort work."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.report.test_report import make_run

from nextmove.playbook.money import money_text
from nextmove.report import build_report_data, write_report


def open_report(browser: Any, path: Path) -> tuple[Any, list[str], float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: None if req.url.startswith(("file:", "data:", "about:")) else errors.append(req.url))
    start = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, time.perf_counter() - start


def test_report_page_loads_draws_and_searches(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    summary, recs = make_run(400)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    # Every chart drew: each SVG has a visible, non-empty box and its marks (the narrow ones are for phones).
    charts = page.locator("svg.chart.wide")
    assert charts.count() >= 5
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 10
    assert page.locator("svg.chart.wide rect.bar").count() >= 10
    assert page.locator("svg.chart.wide circle.point").count() >= 2
    assert page.locator("svg.chart.narrow").count() == charts.count()
    # The table shows the first page, and search narrows it to the matching accounts.
    rows = page.locator("#accounts tbody tr")
    assert rows.count() == 100
    assert "of 400 accounts" in page.locator("#count").inner_text()
    page.fill("#search", "shopper-00042")
    assert rows.count() == 1
    assert "shopper-00042" in rows.first.inner_text()
    page.fill("#search", "VIP upgrade")
    # The search covers the recommended and the default action.
    expected = recs.filter((recs["action_id"] == "vip_upgrade") | (recs["default_action_id"] == "vip_upgrade")).height
    assert f"of {expected} accounts" in page.locator("#count").inner_text()
    page.fill("#search", "")
    # Sorting by account puts shopper-00000 first, and again reverses it.
    header = page.locator("#accounts th[data-key=account]")
    header.click()
    assert rows.first.locator("td").first.inner_text() == "shopper-00000"
    header.click()
    assert rows.first.locator("td").first.inner_text() == "shopper-00399"
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    assert errors == []
    page.close()


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "CHF"])
def test_report_table_values_are_written_as_money_text(browser: Any, tmp_path: Path, currency: str) -> None:
    # The page's script writes the table's amounts in the run's currency, as the rest of the page does.
    values = [8.56, 0.04, -0.39, 5.0, -5.0, 0.125, 9.996, -0.004, 12.5, 1234.5, -40.0, 9.99, -0.6]
    recs = pl.DataFrame(
        {
            "account_id": [f"acct-{i:02d}" for i in range(len(values))],
            "action_id": ["call"] * len(values),
            "expected_value_usd": values,
        }
    )
    summary = {"accounts": len(values), "actions": 1, "currency": currency}
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    shown = {}
    value = page.locator("#accounts thead th").all_inner_texts().index("Value")
    for row in page.locator("#accounts tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        shown[cells[0]] = cells[value]
    assert shown == {f"acct-{i:02d}": money_text(v, currency) for i, v in enumerate(values)}
    if currency != "USD":
        assert not any("$" in text for text in shown.values())
    assert errors == []
    page.close()


LONG_LABEL = "Product-value nurture sequence with an executive sponsor and a quarterly review"

CHART_TEXT = """() => Array.from(document.querySelectorAll("svg.chart"))
  .filter(s => s.getBoundingClientRect().width > 0)
  .flatMap(svg => Array.from(svg.querySelectorAll("text")).map(t => {
    const box = t.getBBox(), view = svg.viewBox.baseVal;
    return {text: t.textContent, left: box.x, right: box.x + box.width, width: view.width,
            px: t.getBoundingClientRect().height};
  }))"""


@pytest.mark.parametrize("width", [390, 1280])
def test_report_fits_the_screen_and_chart_text_fits_its_chart(browser: Any, tmp_path: Path, width: int) -> None:
    summary, recs = make_run(400)
    summary["action_labels"] = {**summary["action_labels"], "vip_upgrade": LONG_LABEL}
    recs = recs.with_columns(pl.col("arr") * 40_000)  # bands of $100M+ and thousands of accounts
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page = browser.new_page(viewport={"width": width, "height": 844})
    page.goto(path.as_uri(), wait_until="load")
    # The page never scrolls sideways (a wide table scrolls inside its own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    texts = page.evaluate(CHART_TEXT)
    assert len(texts) > 20
    for t in texts:
        # Every label and value is inside its chart, and readable: at least 9 px tall on the screen.
        assert t["left"] >= -0.5, t
        assert t["right"] <= t["width"] + 0.5, t
        assert t["px"] >= 9, t
    # A label cut to fit keeps its whole text as a tooltip.
    labels = [t["text"] for t in texts if t["text"].startswith("Product-value")]
    assert labels
    assert all(t.endswith("…" + LONG_LABEL) for t in labels)
    page.close()


def test_report_table_sorts_intervals_by_their_low_end_and_counts_one_account(browser: Any, tmp_path: Path) -> None:
    lows = [-0.07, 1.5, -2_000.0, 30.0]
    recs = pl.DataFrame(
        {
            "account_id": [f"acct-{i}" for i in range(len(lows))],
            "action_id": ["call"] * len(lows),
            "expected_value_usd": [low + 10 for low in lows],
            "value_low_usd": lows,
            "value_high_usd": [222.0, 5.0, 9_000.0, 40.0],
        }
    )
    path = write_report(build_report_data({"accounts": len(lows), "actions": 1}, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    page.locator("#accounts th[data-key=interval]").click()
    accounts = [row.locator("td").first.inner_text() for row in page.locator("#accounts tbody tr").all()]
    assert accounts == ["acct-2", "acct-0", "acct-1", "acct-3"]
    page.locator("#accounts th[data-key=interval]").click()
    assert page.locator("#accounts tbody tr").first.locator("td").first.inner_text() == "acct-3"
    page.fill("#search", "acct-1")
    assert page.locator("#count").inner_text() == "1 account"
    assert errors == []
    page.close()


def _headers(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(f"{selector} thead th").all_inner_texts()]


def test_report_of_a_book_without_arr_or_owners_shows_no_arr_or_owner(browser: Any, tmp_path: Path) -> None:
    summary, recs = make_run(300)
    # A consumer book: the run's columns are there, but no account has ARR or an owner.
    recs = recs.with_columns(pl.lit(None, dtype=pl.Float64).alias("arr"), pl.lit(None, dtype=pl.Utf8).alias("owner"))
    bands = recs.group_by("health_band").len()
    summary["health_bands"] = [{"band": b, "accounts": n, "arr_usd": 0.0} for b, n in bands.iter_rows()]
    summary["segments"] = {"segments": [{"id": 1, "name": "frequent buyers", "accounts": 300, "arr_usd": None}]}
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    assert page.locator("#risk").count() == 0
    assert page.locator("nav a[href='#risk']").count() == 0
    assert "ARR" not in page.locator("body").inner_text()
    assert page.locator("svg.chart[aria-label*='ARR']").count() == 0
    # The health bands count accounts instead, drawn with a bar per band.
    chart = page.locator("svg.chart.wide[aria-label^='Accounts by health band:']")
    assert chart.locator("rect.bar").count() == bands.height
    assert _headers(page, "#health") == ["Band", "Accounts", "Share of accounts"]
    assert _headers(page, "#segments") == ["Segment", "Accounts", "Response to outreach", "Details"]
    headers = _headers(page, "#accounts")
    assert "Owner" not in headers
    assert "owners" not in (page.locator("#search").get_attribute("placeholder") or "")
    first = page.locator("#accounts tbody tr").first.locator("td").all_inner_texts()
    assert len(first) == len(headers)
    assert first[headers.index("Stage")] in {"new", "repeat", "lapsed"}
    assert errors == []
    page.close()


def test_report_of_a_book_with_arr_and_owners_shows_them(browser: Any, tmp_path: Path) -> None:
    summary, recs = make_run(300)
    summary["segments"] = {"segments": [{"id": 1, "name": "frequent buyers", "accounts": 300, "arr_usd": 1.0e5}]}
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    assert page.locator("#risk tbody tr").count() > 0
    assert page.locator("nav a[href='#risk']").count() == 1
    assert page.locator("svg.chart.wide[aria-label^='ARR by health band:']").count() == 1
    assert _headers(page, "#health") == ["Band", "Accounts", "ARR", "Share of ARR"]
    assert "ARR" in _headers(page, "#segments")
    headers = _headers(page, "#accounts")
    owner = headers.index("Owner")
    first = page.locator("#accounts tbody tr").first.locator("td").all_inner_texts()
    assert first[owner] in {"team-north", "team-south"}
    assert errors == []
    page.close()


def test_report_table_sorts_from_the_keyboard(browser: Any, tmp_path: Path) -> None:
    # The headers were plain <th> with a click handler: no focus, no keyboard.
    summary, recs = make_run(150)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    header = page.locator("#accounts th[data-key=account]")
    assert page.locator("#accounts th[aria-sort]").count() == 1
    assert page.locator("#accounts th[data-key=value]").get_attribute("aria-sort") == "descending"
    page.focus("#search")
    # Tab reaches the header's button (past the filters and the pager).
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('th') && document.activeElement.closest('th').dataset.key"):
            break
    assert page.evaluate("document.activeElement.closest('th').dataset.key") == "account"
    page.keyboard.press("Enter")
    assert header.get_attribute("aria-sort") == "ascending"
    assert page.locator("#accounts th[aria-sort]").count() == 1
    first = page.locator("#accounts tbody tr").first.locator("td").first
    assert first.inner_text() == "shopper-00000"
    page.keyboard.press("Space")
    assert header.get_attribute("aria-sort") == "descending"
    assert first.inner_text() == "shopper-00149"
    assert page.locator("#count").get_attribute("aria-live") == "polite"
    assert errors == []
    page.close()


def test_report_pager_disables_at_the_ends_and_jumps_to_a_page(browser: Any, tmp_path: Path) -> None:
    summary, recs = make_run(1_250)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    count = page.locator("#count")

    def disabled() -> dict[str, bool]:
        return {b: page.locator(f"#{b}").is_disabled() for b in ("first", "prev", "next", "last")}

    # Thousands separators, and Previous / First disabled on the first page.
    assert count.inner_text() == "1–100 of 1,250 accounts"
    assert page.locator("#pages").inner_text() == "of 13"
    assert disabled() == {"first": True, "prev": True, "next": False, "last": False}
    page.click("#last")
    assert count.inner_text() == "1,201–1,250 of 1,250 accounts"
    assert disabled() == {"first": False, "prev": False, "next": True, "last": True}
    assert page.locator("#accounts tbody tr").count() == 50
    page.fill("#page", "7")
    page.press("#page", "Enter")
    assert count.inner_text() == "601–700 of 1,250 accounts"
    assert disabled() == {"first": False, "prev": False, "next": False, "last": False}
    page.fill("#page", "99")  # past the end: the last page
    page.press("#page", "Enter")
    assert page.locator("#page").input_value() == "13"
    page.click("#first")
    assert count.inner_text() == "1–100 of 1,250 accounts"
    # A filter narrows to one arm; a single page disables every button.
    explored = recs.filter(recs["arm"] == "explore").height
    assert explored < 100
    page.select_option("select.filter[data-key=arm]", "explore")
    assert count.inner_text() == f"1–{explored} of {explored} accounts"
    assert all(disabled().values())
    assert set(page.locator("#accounts tbody tr td:nth-child(6)").all_inner_texts()) == {"explore"}
    assert errors == []
    page.close()


def test_report_table_shows_and_searches_the_id_of_a_named_account(browser: Any, tmp_path: Path) -> None:
    # A named account showed only its name: two "Acme" rows could not be told apart or found by id.
    summary, recs = make_run(30)
    recs = recs.with_columns(pl.lit("Acme").alias("name"))
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    page.fill("#search", "shopper-00017")
    rows = page.locator("#accounts tbody tr")
    assert rows.count() == 1
    cell = rows.first.locator("td").first
    assert cell.inner_text().split("\n") == ["Acme", "shopper-00017"]
    assert errors == []
    page.close()


def test_report_prints_the_accounts_table_inside_the_page(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    # Printed on A4 the accounts table (1000 px) was clipped at 608 px, with its search box and buttons.
    summary, recs = make_run(300)
    recs = recs.with_columns(pl.lit("A customer with a rather long company name, Incorporated").alias("name"))
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    page.set_viewport_size({"width": 718, "height": 1000})
    page.emulate_media(media="print")
    for table in page.locator("table").all():
        box = table.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 718 + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 718 + 1
    for hidden in ("#search", "#prev", "#next", "#first", "#last", "#page", "nav", "select.filter"):
        assert not page.locator(hidden).first.is_visible(), hidden
    note = page.locator(".print-only")
    assert note.is_visible()
    assert "1–100 of 300 accounts" in note.inner_text()
    assert "recommendations.csv" in note.inner_text()
    pdf = page.pdf(format="A4")
    (artifacts / "report-print.pdf").write_bytes(pdf)
    page.emulate_media(media="screen")
    assert not note.is_visible()
    assert errors == []
    page.close()


def test_report_search_ignores_accents_and_case_both_ways(browser: Any, tmp_path: Path) -> None:
    # "muller" found no "Müller" row, nor "müller" a "Muller" one: the search compared the text as written.
    summary, recs = make_run(6)
    names = ["Müller GmbH", "Muller AG", "Mu\u0308ller KG", "SOCIÉTÉ Générale", "Societe Nord", "İzmir Ltd"]
    recs = recs.with_columns(pl.Series("name", names))
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    rows = page.locator("#accounts tbody tr")

    def found(query: str) -> set[str]:
        page.fill("#search", query)
        return {r.locator("td").first.inner_text().split("\n")[0] for r in rows.all()}

    millers = {"Müller GmbH", "Muller AG", "Mu\u0308ller KG"}
    for query in ["muller", "müller", "MÜLLER", "Mu\u0308ller", "  Muller "]:
        assert found(query) == millers, query
    for query in ["societe", "Société", "SOCIETE"]:
        assert found(query) == {"SOCIÉTÉ Générale", "Societe Nord"}, query
    assert found("izmir") == {"İzmir Ltd"}
    assert found("müller gmbh") == {"Müller GmbH"}
    assert found("mueller") == set()  # accents are dropped, not spelt out
    assert errors == []
    page.close()


def test_report_tables_with_a_long_unbroken_name_fit_the_screen_and_the_printed_page(
    browser: Any, tmp_path: Path
) -> None:
    # A 300-character name without a space (an e-mail, a URL) widened the Account column to ~2,800 px on screen
    # and pushed the accounts table off the printed A4 page: a cell wrapped a long word only where it overflowed.
    summary, recs = make_run(150)
    long_name, long_owner = "X" * 300, "procurement.department@" + "verylongsubsidiaryname" * 4 + ".example.co.uk"
    # The first account has the long name and owner, the most ARR at risk and the largest value (the first row).
    first = {"owner": long_owner, "arr": 9_999_999.0, "health_band": "Critical", "expected_value_usd": 9_999.0}
    recs = recs.with_columns(
        pl.Series("name", [long_name, *(f"Acme {i}" for i in range(1, 150))]),
        *(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in first.items()),
    )
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    assert long_name in page.locator("#accounts tbody tr").first.inner_text()
    assert long_name in page.locator("#risk tbody tr").first.inner_text()

    def tables_fit(width: float) -> None:
        for table in page.locator("table").all():
            box = table.bounding_box()
            container = table.locator("xpath=..").bounding_box()
            assert box is not None
            assert container is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= container["x"] + container["width"] + 1
            assert box["x"] + box["width"] <= width + 1
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1

    tables_fit(1280)
    # The other columns keep their words whole: only the names and ids may break anywhere.
    lines = "td => { const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length; }"
    row = page.locator("#accounts tbody tr").first.locator("td")
    assert row.nth(0).evaluate(lines) > 1
    assert [row.nth(i).evaluate(lines) for i in (2, 5)] == [1, 1]  # the stage and the arm
    page.set_viewport_size({"width": 718, "height": 1000})  # A4's printable width
    page.emulate_media(media="print")
    tables_fit(718)
    assert [row.nth(i).evaluate(lines) for i in (2, 5)] == [1, 1]
    assert errors == []
    page.close()


def test_report_pager_keeps_the_keyboard_focus_when_a_button_disables_itself(browser: Any, tmp_path: Path) -> None:
    # Enter on "Last »" (or Previous on reaching the first page) disabled the focused button: the focus fell to
    # the page's <body>, and the next Tab started from the top of the page.
    summary, recs = make_run(350)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    active = "document.activeElement.id"
    page.focus("#last")
    page.keyboard.press("Enter")
    assert page.locator("#count").inner_text() == "301–350 of 350 accounts"
    assert page.evaluate(active) == "first"
    page.focus("#prev")
    for _ in range(3):
        page.keyboard.press("Enter")
    assert page.locator("#count").inner_text() == "1–100 of 350 accounts"
    assert page.evaluate(active) == "next"
    page.keyboard.press("Enter")  # still in the pager, so Enter pages on
    assert page.locator("#count").inner_text() == "101–200 of 350 accounts"
    page.focus("#next")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert page.locator("#count").inner_text() == "301–350 of 350 accounts"
    assert page.evaluate(active) == "prev"
    page.focus("#first")
    page.keyboard.press("Space")
    assert page.evaluate(active) == "last"
    assert errors == []
    page.close()


def test_report_sort_arrow_is_not_read_and_a_printed_id_is_as_small_as_its_name(browser: Any, tmp_path: Path) -> None:
    # The sorted header's accessible name was "Value ▼" on top of its aria-sort; printed, an account's id stayed
    # 12 px under its 9 px name.
    summary, recs = make_run(30)
    recs = recs.with_columns(pl.lit("Acme").alias("name"))
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    button = page.locator("#accounts th[data-key=value] button")
    assert button.evaluate("b => getComputedStyle(b, '::after').content").startswith('" ▼"')  # drawn, for the eye
    cdp = page.context.new_cdp_session(page)
    names = [
        str(node.get("name", {}).get("value", ""))
        for node in cdp.send("Accessibility.getFullAXTree")["nodes"]
        if node.get("role", {}).get("value") == "button"
    ]
    assert "Value" in names
    assert "Account" in names
    assert not [n for n in names if "▼" in n or "▲" in n]
    page.emulate_media(media="print")
    cell = page.locator("#accounts tbody tr").first.locator("td").first
    name_px, id_px = cell.evaluate(
        "td => [td, td.querySelector('.id')].map(e => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert name_px <= 10
    assert id_px <= name_px
    assert errors == []
    page.close()


def test_report_chart_text_stays_readable_between_the_phone_and_the_wide_layout(browser: Any, tmp_path: Path) -> None:
    # Between ~901 and ~1,180 px the two charts of a section stood side by side: a 640-unit chart drawn into
    # ~390 px, its 12-unit text ~7 px tall.
    summary, recs = make_run(400)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page = browser.new_page(viewport={"width": 960, "height": 900})
    page.goto(path.as_uri(), wait_until="load")
    texts = page.evaluate(CHART_TEXT)
    assert len(texts) > 20
    assert page.locator("#distribution svg.chart.wide").count() == 2
    for t in texts:
        assert t["px"] >= 10, t
    page.close()
