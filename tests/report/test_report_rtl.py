"""The report shows a receipt's right-to-left names set apart: the numbers beside them stay where the sentence says.

With the receipts' isolates dropped, "signals: جلسات التطبيق: 6 reports in 90 days" showed in the
"Top at-risk → Why" column as "signals: 6 :جلسات التطبيق reports in 90 days", and "last رسالة داخل
التطبيق 90 days ago" as "last 90 رسالة داخل التطبيق days ago". The page writes each FSI … PDI pair of
a sentence as a ``<bdi>``, in the at-risk table and in the accounts table its script draws.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from tests.report.test_report import make_run
from tests.report.test_report_browser import open_report

from nextmove.report import build_report_data, render_report, write_report

SESSIONS = "جلسات التطبيق"
IN_APP = "رسالة داخل التطبيق"

# Where a piece of an element's text is drawn: needle, then the offset and length of the piece within it.
_RECT = """([el, needle, start, length]) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const nodes = [];
  let text = "";
  while (walker.nextNode()) { nodes.push([walker.currentNode, text.length]); text += walker.currentNode.data; }
  const found = text.indexOf(needle);
  if (found < 0) return null;
  const at = (pos) => { for (const [n, off] of nodes) if (pos <= off + n.data.length) return [n, pos - off]; };
  const range = document.createRange();
  range.setStart(...at(found + start));
  range.setEnd(...at(found + start + length));
  const r = range.getBoundingClientRect();
  return { left: r.left, right: r.right, top: r.top };
}"""


FSI, PDI = "\u2068", "\u2069"
SUMMARY = (
    f"Win-back SMS, worth $120; signals: {FSI}{SESSIONS}{PDI}: 6 reports in 90 days; "
    f"last {FSI}{IN_APP}{PDI} 90 days ago."
)
"""A receipt's summary as nextmove writes it (tests/decide/test_rtl_names.py): the names are set apart."""


def _rtl_run(n: int) -> tuple[dict[str, Any], pl.DataFrame]:
    summary, recs = make_run(n)
    recs = recs.with_columns(
        pl.lit("At risk").alias("health_band"),
        pl.lit(json.dumps({"summary": SUMMARY}, ensure_ascii=False)).alias("evidence"),
    )
    return summary, recs


def _number_follows_the_name(page: Any, cell: Any) -> None:
    """In ``cell``, 6 is drawn right of the sessions' name and 90 right of the in-app message's, on their lines."""
    for name, after, start in ((SESSIONS, ": 6 reports", 2), (IN_APP, " 90 days ago", 1)):
        shown = page.evaluate(_RECT, [cell.element_handle(), name, 0, len(name)])
        number = page.evaluate(_RECT, [cell.element_handle(), name + after, len(name) + start, 1])
        assert shown is not None, name
        assert number is not None, name
        assert abs(number["top"] - shown["top"]) < 4, (name, shown, number)  # one line
        assert number["left"] >= shown["right"] - 1, (name, shown, number)


def test_report_sets_a_receipts_right_to_left_names_apart_and_draws_the_numbers_after_them(
    browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    summary, recs = _rtl_run(12)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    # One line per cell, so that each number and its name are compared on theirs.
    page.add_style_tag(content="td { white-space: nowrap; }")
    # The at-risk table (the page's own HTML) and the accounts table (drawn by its script) alike.
    risk = page.locator("#risk tbody tr").first.locator("td").last
    row = page.locator("#accounts tbody tr").first.locator("td").last
    page.screenshot(path=str(artifacts / "report-rtl.png"), full_page=True)
    for cell in (risk, row):
        _number_follows_the_name(page, cell)
        assert cell.locator("bdi").all_inner_texts() == [SESSIONS, IN_APP]
    # The search reads the sentence without its isolates.
    page.fill("#search", f"{SESSIONS}: 6 reports")
    assert "of 12 accounts" in page.locator("#count").inner_text()
    assert errors == []
    page.close()
    html = render_report(build_report_data(summary, recs))
    assert f"signals: <bdi>{SESSIONS}</bdi>: 6 reports in 90 days; last <bdi>{IN_APP}</bdi> 90 days ago." in html


def test_report_sentences_set_a_right_to_left_family_apart() -> None:
    # "12,576 customers were assigned a الاحتفاظ 2025 action": the page's own sentences put names in too.
    summary, recs = make_run(40)
    summary["action_families"] = {
        "winback_sms": "الاحتفاظ 2025",
        "loyalty_points": "الاحتفاظ 2025",
        "vip_upgrade": "upsell",
    }
    data = build_report_data(summary, recs)
    assert any(f"assigned a {FSI}الاحتفاظ 2025{PDI} action" in s for s in data.sentences), data.sentences
    html = render_report(data)
    assert "assigned a <bdi>الاحتفاظ 2025</bdi> action" in html
    assert FSI not in html.split('<script type="application/json"')[0]
