"""A name holding bidi controls cannot reorder the report's text around it.

A right-to-left override (U+202E) in an account's name, an action's label or the playbook's name
made the rest of the sentence or cell it was in show reversed: "Trojan Source" text that reads
otherwise than it is. The page drops the bidi controls of everything it shows, and sets an
account's name apart (``<bdi>``) where other text follows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from tests.report.test_report import make_run
from tests.report.test_report_browser import open_report

from nextmove.report import build_report_data, render_report, write_report

RLO, LRI, RLM = "\u202e", "\u2066", "\u200f"
# The Unicode Bidi_Control characters: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _spoofed(n: int) -> tuple[dict[str, Any], pl.DataFrame]:
    summary, recs = make_run(n)
    summary["playbook_name"] = f"Shop{RLO} koobyalp"
    summary["action_labels"]["winback_sms"] = f"Win-back{RLO} SMS"
    summary["notes"] = [f"the signal {LRI}visits{RLO} yliad is not read"]
    recs = recs.with_columns(
        pl.format(f"Acme{RLO} tnuocca {{}}", pl.col("account_id").str.slice(-3)).alias("name"),
        pl.lit(f"{RLM}Ana{RLO} lbo").alias("owner"),
        pl.lit(f"lapsed{RLO} sdrawkcab").alias("lifecycle_stage"),
        pl.lit(json.dumps({"summary": f"Win-back{RLO} SMS, worth $120"})).alias("evidence"),
    )
    return summary, recs


def test_report_page_holds_no_bidi_control_and_isolates_an_accounts_name() -> None:
    summary, recs = _spoofed(40)
    page = render_report(build_report_data(summary, recs))
    assert not [c for c in BIDI_CONTROLS if c in page]
    # The text stays, in the order the book wrote it.
    for text in (
        "Shop koobyalp",
        "Win-back SMS",
        "visits yliad",
        "Acme tnuocca 001",
        "Ana lbo",
        "lapsed sdrawkcab",
        "Win-back SMS, worth $120",
    ):
        assert text in page, text
    # In the at-risk table the name is followed by its id: both are set apart from each other.
    assert "<bdi>Acme tnuocca 0" in page
    assert "(<bdi>shopper-" in page
    # The data keeps the book's names as they were.
    assert recs.get_column("name").str.contains(RLO, literal=True).all()


def test_report_search_and_filters_find_accounts_by_names_that_held_bidi_controls(browser: Any, tmp_path: Path) -> None:
    summary, recs = _spoofed(30)
    path = write_report(build_report_data(summary, recs), tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    rows = page.locator("#accounts tbody tr")
    page.fill("#search", "acme tnuocca 007")
    assert rows.count() == 1
    assert rows.first.locator("td").first.inner_text().split("\n") == ["Acme tnuocca 007", "shopper-00007"]
    page.fill("#search", "ana lbo")
    assert rows.count() == 30
    page.fill("#search", "")
    page.select_option("select.filter[data-key=action]", "Win-back SMS")
    wanted = recs.filter(pl.col("action_id") == "winback_sms").height
    assert rows.count() == wanted > 0
    assert errors == []
    page.close()
