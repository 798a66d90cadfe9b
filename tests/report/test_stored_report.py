"""`nextmove report --run ID`: a run read back from a real SQLite store renders the same page."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from tests.report.test_report import make_run
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.report.stored import recommendations_frame, report_data_from_store
from nextmove.store import RecommendationRecord, RunRecord, open_store

runner = CliRunner()


def save(url: str) -> tuple[dict[str, object], pl.DataFrame]:
    summary, recs = make_run(120)
    records = [
        RecommendationRecord(
            run_id="run-b2c",
            account_id=r["account_id"],
            action_id=r["action_id"],
            arm=r["arm"],
            propensity=0.9,
            expected_value_usd=r["expected_value_usd"],
            value_low_usd=r["value_low_usd"],
            value_high_usd=r["value_high_usd"],
            default_action_id=r["default_action_id"],
            differs_from_default=r["differs_from_default"],
            owner=r["owner"],
            evidence={
                **json.loads(r["evidence"]),
                "account": {k: r[k] for k in ("lifecycle_stage", "arr", "health_score", "health_band")},
            },
        )
        for r in recs.iter_rows(named=True)
    ]
    with open_store(url) as store:
        store.save_run(
            RunRecord(
                run_id="run-b2c",
                book_source="shop",
                playbook_hash="h",
                status="succeeded",
                finished_at=datetime.now(UTC),
                summary=summary,
            ),
            records,
        )
    return summary, recs


def test_stored_run_reads_back_into_the_same_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    _summary, recs = save(url)
    with open_store(url) as store:
        frame = recommendations_frame(store.recommendations("run-b2c"))
        data = report_data_from_store(store)
    assert frame.height == recs.height
    assert set(frame.get_column("health_band").unique()) == set(recs.get_column("health_band").unique())
    assert data.run_id == "run-b2c"
    assert sum(b.accounts for b in data.bands) == recs.height
    assert sum(s.accounts for s in data.stages) == recs.height


def test_report_command_writes_the_page_and_explains_missing_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["report", "--store", url, "--out", str(out)])
    assert result.exit_code == 4
    assert "there is no store at" in result.output
    assert not (tmp_path / "store.db").exists()
    open_store(url).close()
    result = runner.invoke(app, ["report", "--store", url, "--out", str(out)])
    assert result.exit_code == 4
    assert "no finished run" in result.output
    save(url)
    result = runner.invoke(app, ["report", "--store", url, "--run", "run-b2c", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Executive summary" in out.read_text()
    result = runner.invoke(app, ["report", "--store", url, "--run", "nope", "--out", str(out)])
    assert result.exit_code == 4
    result = runner.invoke(app, ["report", "--store", url, "--out", str(tmp_path / "page.pdf")])
    assert result.exit_code == 2
