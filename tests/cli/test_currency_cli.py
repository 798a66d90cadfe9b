"""A book in euros: ``currency = "EUR"`` in its playbook, and no command writes a dollar sign.

``nextmove run`` (its summary, receipts and report), ``nextmove report`` of the stored run,
``nextmove health`` and ``nextmove segment`` write the book's amounts with "€"; the column names
and JSON keys keep their ``_usd`` suffix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.sim import SimConfig, simulate, write_book

runner = CliRunner()


def with_currency(folder: Path, currency: str) -> Path:
    """``folder``'s playbook with ``currency`` set (a top-level key: it goes before the first table)."""
    playbook = folder / "playbook.toml"
    playbook.write_text(f'currency = "{currency}"\n' + playbook.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def euro_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("currency-cli") / "book"
    write_book(simulate(SimConfig(accounts=150, months=9, seed=7)), folder)
    return with_currency(folder, "eur")  # any case: read as EUR


def shown_text(html: str) -> str:
    """The page's text as a reader sees it: without its script (whose regular expressions hold "$")."""
    return re.sub(r"<script\b.*?</script>", "", html, flags=re.DOTALL)


def test_run_and_report_of_a_euro_book_write_euros_and_no_dollars(euro_book: Path, tmp_path: Path) -> None:
    out, db = tmp_path / "out", tmp_path / "nextmove.db"
    args = ["run", "--book", str(euro_book), "--out", str(out), "--store", f"sqlite:///{db}", "--jobs", "1"]
    result = runner.invoke(app, [*args, "--trees", "20"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "$" not in text
    assert re.search(r"Projected impact: -?€[\d,]+ \(per-account 90% intervals summed: -?€[\d,]+ to -?€[\d,]+\)", text)
    assert "Lab: against the oracle under the same capacities (€" in text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["currency"] == "EUR"
    assert "projected_impact_usd" in summary  # the keys keep their names
    receipts = pl.read_parquet(out / "recommendations.parquet")
    assert "expected_value_usd" in receipts.columns
    for column in ("evidence", "alternatives"):
        assert not any("$" in t for t in receipts.get_column(column).to_list()), column
    summaries = [json.loads(t)["summary"] for t in receipts.get_column("evidence").to_list()]
    assert sum("€" in t for t in summaries) > 20

    page = shown_text((out / "report.html").read_text(encoding="utf-8"))
    assert "$" not in page
    assert "€ per decision" in page
    assert re.search(r"is -?€[\d.,]+k?M? \(per-account 90% intervals summed", page)

    # The stored run's report, made again from the store, is in the run's currency (its summary keeps it).
    again = tmp_path / "again.html"
    made = runner.invoke(app, ["report", "--store", f"sqlite:///{db}", "--out", str(again)])
    assert made.exit_code == 0, made.output
    stored = shown_text(again.read_text(encoding="utf-8"))
    assert "$" not in stored
    assert "€ per decision" in stored
    # The accounts table's script writes the same currency.
    assert '{"prefix":"€","cents":10.0}' in again.read_text(encoding="utf-8")


def test_health_and_segment_tables_of_a_euro_book_write_euros(euro_book: Path, tmp_path: Path) -> None:
    health = runner.invoke(
        app, ["health", "--book", str(euro_book), "--out", str(tmp_path / "health.csv"), "--no-save-model"]
    )
    assert health.exit_code == 0, health.output
    assert "$" not in health.output
    bands = health.output.split("Health as of")[1].split("What predicts")[0]
    assert re.search(r"€[\d,]+", bands)
    seg = ["segment", "--book", str(euro_book), "--out", str(tmp_path / "seg"), "--folds", "2", "--trees", "20"]
    segment = runner.invoke(app, seg)
    assert segment.exit_code == 0, segment.output
    assert "$" not in segment.output
    assert re.search(r"€[\d,]+ \[-?€[\d,.]+, -?€[\d,.]+\]", segment.output)
    saved = json.loads((tmp_path / "seg" / "segments.json").read_text(encoding="utf-8"))
    assert not any("$" in str(s.get("headline")) for s in saved["segments"])


def test_a_bad_currency_is_refused_naming_the_playbook_file_and_key(euro_book: Path, tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    text = (euro_book / "playbook.toml").read_text(encoding="utf-8").replace('currency = "eur"', 'currency = "EURO"')
    (book / "playbook.toml").write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["validate", "--book", str(euro_book), "--playbook", str(book / "playbook.toml")])
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert str(book / "playbook.toml") in "".join(result.output.split())  # a long path may be wrapped
    assert "currency: must be an ISO 4217 code of three letters A-Z" in said
    assert "got 'EURO'" in said


@pytest.mark.parametrize(
    ("currency", "header", "cells"),
    [
        ("USD", "$ per decision", ["12.35", "[-3.50, 1,234]"]),  # as before the playbook had a currency
        ("EUR", "€ per decision", ["12.35", "[-3.50, 1,234]"]),
        ("JPY", "¥ per decision", ["12", "[-4, 1,234]"]),  # no cents for a currency without them
        ("CHF", "CHF per decision", ["12.35", "[-3.50, 1,234]"]),
    ],
)
def test_evaluate_table_names_the_playbook_s_currency(currency: str, header: str, cells: list[str]) -> None:
    from rich.console import Console

    from nextmove.cli.evaluate import _values_table
    from nextmove.measure.ope import PolicyValue

    value = PolicyValue("learned", "dr", 12.345, 1.0, -3.5, 1234.4, 100, 0.95, None, 50.0, 0.5)
    console = Console(record=True, width=200)
    console.print(_values_table("Policy value", [value], currency))
    text = console.export_text()
    assert header in text
    assert all(cell in text for cell in cells), text
    assert ("$" in text) == (currency == "USD")
