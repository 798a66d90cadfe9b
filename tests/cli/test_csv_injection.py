"""The CLI's CSV outputs (run, health, segment) on a book whose ids and owners are spreadsheet formulas.

Such text is written with a leading ``'`` in CSV files (no spreadsheet runs it), raw in Parquet, and
``nextmove segment`` reads its previous segments.csv back to the raw ids.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.sim import SimConfig, simulate, write_book

runner = CliRunner()
HYPERLINK = '=HYPERLINK("http://evil.example/","x")'


def _hostile_id(i: int, account_id: str) -> str:
    # Every kind of formula start, and a plain negative number, which stays as it is.
    return ("=", "+", "-", "@")[i % 4] + account_id if i != 7 else "-1234"


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("csv-injection") / "book"
    write_book(simulate(SimConfig(accounts=150, months=9, seed=7)), folder)
    shutil.rmtree(folder / "truth")
    accounts = pl.read_csv(folder / "accounts.csv", infer_schema_length=0)
    ids = {a: _hostile_id(i, a) for i, a in enumerate(accounts["account_id"].to_list())}
    owners = {o: f"{HYPERLINK}{o}" for o in accounts["owner"].drop_nulls().unique().to_list()}
    accounts.with_columns(pl.col("account_id").replace(ids), pl.col("owner").replace(owners)).write_csv(
        folder / "accounts.csv"
    )
    for table in ("touches", "outcomes"):
        frame = pl.read_csv(folder / f"{table}.csv", infer_schema_length=0)
        frame.with_columns(pl.col("account_id").replace(ids)).write_csv(folder / f"{table}.csv")
    signals = pl.read_parquet(folder / "signals.parquet")
    signals.with_columns(pl.col("account_id").replace(ids)).write_parquet(folder / "signals.parquet")
    return folder


def _assert_escaped(path: Path, raw_ids: set[str]) -> pl.DataFrame:
    """The CSV at ``path`` as text: no cell starts a formula, and each escaped id is a raw one with a quote."""
    text = pl.read_csv(path, infer_schema_length=0)
    for column in text.columns:
        for cell in text[column].drop_nulls().to_list():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), (column, cell)
            assert not cell.startswith("-") or cell.lstrip("-").replace(".", "").isdigit(), (column, cell)
    assert {a[1:] if a.startswith("'") else a for a in text["account_id"].to_list()} <= raw_ids
    assert "-1234" in text["account_id"].to_list()
    return text


def test_run_writes_formulas_escaped_in_csv_and_raw_in_parquet(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--book", str(book_dir), "--out", str(out), "--no-store", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    raw = pl.read_parquet(out / "recommendations.parquet")
    text = _assert_escaped(out / "recommendations.csv", set(raw["account_id"].to_list()))
    assert text["account_id"].to_list() == [a if a == "-1234" else "'" + a for a in raw["account_id"].to_list()]
    assert set(text["owner"].drop_nulls().to_list()) == {"'" + o for o in raw["owner"].drop_nulls().to_list()}
    assert raw["owner"].drop_nulls().str.starts_with(HYPERLINK).all()


def test_health_writes_formulas_escaped(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "health.csv"
    result = runner.invoke(app, ["health", "--book", str(book_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    accounts = pl.read_csv(book_dir / "accounts.csv", infer_schema_length=0)
    text = _assert_escaped(out, set(accounts["account_id"].to_list()))
    assert text.filter(pl.col("owner").is_not_null())["owner"].str.starts_with("'=HYPERLINK").all()


def test_segment_writes_formulas_escaped_and_reads_its_previous_csv_back_raw(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    first = runner.invoke(app, ["segment", "--book", str(book_dir), "--out", str(out), "--no-response"])
    assert first.exit_code == 0, first.output
    accounts = pl.read_csv(book_dir / "accounts.csv", infer_schema_length=0)
    _assert_escaped(out / "segments.csv", set(accounts["account_id"].to_list()))
    again = runner.invoke(app, ["segment", "--book", str(book_dir), "--out", str(out), "--no-response"])
    assert again.exit_code == 0, again.output
    moves = json.loads((out / "segments.json").read_text(encoding="utf-8"))["moves"]
    # Every account of the previous run is matched by its raw id, none moved.
    assert moves["moved"] == 0
    assert moves["accounts"] == pl.read_csv(out / "segments.csv").height


def test_evaluate_reads_a_policy_csv_written_by_nextmove_back_to_its_raw_ids(tmp_path: Path) -> None:
    # An external policy made from recommendations.csv keeps the formula-like ids it was written with.
    from nextmove._csv import write_csv
    from nextmove.cli.evaluate import read_policy

    policy = pl.DataFrame({"account_id": [HYPERLINK, "-1234", "+acc"], "action_id": ["call", "none", "@email"]})
    write_csv(policy, tmp_path / "policy.csv")
    assert "'=HYPERLINK" in (tmp_path / "policy.csv").read_text()
    assert read_policy(tmp_path / "policy.csv").select("account_id", "action_id").equals(policy)
