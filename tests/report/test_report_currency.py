"""The report writes the run's amounts in its playbook's currency ("€1.2k", "CHF 40", "¥86"), never as dollars."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.report.test_report import make_run

from nextmove.engine.run_facts import metrics
from nextmove.report import build_report_data, render_report
from nextmove.report.stored import report_data_from_store
from nextmove.store import RecommendationRecord, RunRecord, open_store


def full_run(currency: str | None) -> tuple[dict[str, Any], pl.DataFrame]:
    """``make_run`` with every block that writes amounts: metrics, segments with a response and spend."""
    summary, recs = make_run(200)
    if currency is not None:
        summary["currency"] = currency
    summary["metrics"] = metrics(summary)
    costly = {"family": "crm", "value_usd": -1.5, "ratio": None, "best_action": "vip_upgrade", "material": False}
    summary["segments"] = {
        "segments": [
            {
                "id": 0,
                "name": "quiet",
                "accounts": 200,
                "arr_usd": 61_234.5,
                "traits": [],
                "response": {"value_usd": 0.4, "ratio": None, "families": [costly]},
            }
        ],
        "spend": {"touches": 90, "days": 90, "share_below_average": 0.4, "moved_touches": 12,
                  "recoverable_usd": 1_830.0, "low": -240.0, "high": 3_100.0},
    }  # fmt: skip
    return summary, recs


def shown_text(html: str) -> str:
    """The page's text as a reader sees it: without its script (whose regular expressions hold "$")."""
    return re.sub(r"<script\b.*?</script>", "", html, flags=re.DOTALL)


def test_report_of_a_run_in_euros_writes_euros_and_no_dollars() -> None:
    data = build_report_data(*full_run("EUR"))
    assert data.currency == "EUR"
    page = shown_text(render_report(data))
    assert "$" not in page
    assert '<th scope="col" class="num">€ per decision</th>' in page
    assert "Off-policy value over the lifecycle default (DR, € per decision)" in page
    assert re.search(r"is €[\d.]+k \(per-account 90% intervals summed: €[\d.]+k to €[\d.]+k\)", page)
    assert "€4.2 per decision" in page  # the policies' chart
    assert "-€240" in page  # the segments' spend, the sign before the symbol
    assert "worth €0.40 per account" in page  # cents below 10, as the receipts write them
    assert all("€" in row["interval"] for row in data.table if row["interval"])


def test_report_writes_yen_without_cents_and_other_codes_before_the_amount() -> None:
    yen = build_report_data(*full_run("JPY"))
    page = shown_text(render_report(yen))
    assert "$" not in page
    # No sen: "¥0", not "¥0.40"; "¥4 per decision", not "¥4.2" (thousands keep their decimal: "¥5.1k").
    assert not re.search(r"¥[\d,]+\.\d+(?![\dkM])", page)
    assert "worth ¥0 per account" in page
    assert "¥4 per decision" in page
    assert '<td class="num">4</td>' in page  # the policies' table: whole yen
    francs = build_report_data(*full_run("chf"))  # a code without a common symbol, read in any case
    assert francs.currency == "CHF"
    page = shown_text(render_report(francs))
    assert "$" not in page
    assert "CHF per decision" in page
    assert "-CHF 240" in page
    assert "worth CHF 0.40 per account" in page


def test_report_of_a_run_without_a_currency_is_in_dollars_as_before() -> None:
    """A run stored before runs kept their currency, and a USD run, give the same page."""
    old = render_report(build_report_data(*full_run(None)))
    usd = render_report(build_report_data(*full_run("USD")))
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
    assert stamp.sub("", old) == stamp.sub("", usd)
    assert "$ per decision" in old
    assert "-$240" in old


def test_stored_run_is_reported_in_the_currency_it_was_made_in(tmp_path: Path) -> None:
    summary, recs = full_run("EUR")
    records = [
        RecommendationRecord(
            run_id="run-eur",
            account_id=r["account_id"],
            action_id=r["action_id"],
            arm=r["arm"],
            propensity=0.9,
            expected_value_usd=r["expected_value_usd"],
            value_low_usd=r["value_low_usd"],
            value_high_usd=r["value_high_usd"],
            evidence={**json.loads(r["evidence"]), "account": {"arr": r["arr"], "health_band": r["health_band"]}},
        )
        for r in recs.iter_rows(named=True)
    ]
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        run = RunRecord(
            run_id="run-eur",
            book_source="shop",
            playbook_hash="h",
            status="succeeded",
            finished_at=datetime.now(UTC),
            summary={**summary, "run_id": "run-eur"},
        )
        store.save_run(run, records)
    with open_store(url) as store:
        data = report_data_from_store(store, "run-eur")
    assert data.currency == "EUR"
    page = shown_text(render_report(data))
    assert "$" not in page
    assert re.search(r"€[\d.,]+k?", page)


@pytest.mark.parametrize("currency", ["EUR", "JPY", "CHF"])
def test_report_table_script_is_given_the_run_s_currency(currency: str) -> None:
    html = render_report(build_report_data(*full_run(currency)))
    prefix = {"EUR": "€", "JPY": "¥", "CHF": "CHF "}[currency]
    cents = "0" if currency == "JPY" else "10.0"
    assert f'var currency = {{"prefix":"{prefix}","cents":{cents}}};' in html
