"""`nextmove report --run ID`: a run read back from a real SQLite store renders the same page."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from tests.api.conftest import ended_process
from tests.report.test_report import make_run
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.engine.run_process import run_process
from nextmove.errors import RunFailedError, RunNotSucceededError
from nextmove.report import render_report
from nextmove.report.stored import recommendations_frame, report_data_from_store, stored_run
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


def save_unfinished_runs(url: str) -> None:
    """Three runs that never succeeded: one failed, one killed outright (left running), one still going."""
    with open_store(url) as store:
        store.start_run(RunRecord(run_id="run-failed", book_source="shop", playbook_hash="h"))
        store.finish_run("run-failed", "failed", {"error": "BookError: accounts.csv row 7: duplicate account_id"})
        killed = RunRecord(
            run_id="run-killed", book_source="shop", playbook_hash="h", params={"process": ended_process()}
        )
        store.start_run(killed)
        going = RunRecord(run_id="run-going", book_source="shop", playbook_hash="h", params={"process": run_process()})
        store.start_run(going)


def test_report_of_a_run_that_has_not_succeeded_is_refused_with_its_status_and_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    save_unfinished_runs(url)
    out = tmp_path / "page.html"
    said = {}
    for run_id in ("run-failed", "run-killed", "run-going"):
        result = runner.invoke(app, ["report", "--store", url, "--run", run_id, "--out", str(out)])
        assert result.exit_code == 2, result.output
        said[run_id] = " ".join(result.output.split())
        assert f"run '{run_id}' is " in said[run_id]
        assert "only a succeeded run can be reported" in said[run_id]
        assert not out.exists()  # no page of "0 active customers" that reads as a run that found nothing to do
    assert "is failed" in said["run-failed"]
    assert "duplicate account_id" in said["run-failed"]
    assert "is running" in said["run-killed"]
    assert "will never finish" in said["run-killed"]
    assert "has not finished yet" in said["run-going"]
    with open_store(url) as store:
        with pytest.raises(RunFailedError):
            stored_run(store, "run-killed")
        with pytest.raises(RunNotSucceededError) as going:
            stored_run(store, "run-going")
        assert going.value.code == "run_not_finished"


def test_stored_report_says_whether_online_decisions_come_from_the_run(tmp_path: Path) -> None:
    from nextmove.engine.online import promote_run

    url = f"sqlite:///{tmp_path / 'store.db'}"
    save(url)
    with open_store(url) as store:
        assert report_data_from_store(store).served == "the served run (online decisions come from it)"
        store.save_run(
            RunRecord(
                run_id="run-backtest",
                book_source="shop",
                playbook_hash="h",
                status="succeeded",
                finished_at=datetime.now(UTC),
                params={"promote": False},
                summary={"accounts": 0, "actions": 3},
            ),
            [],
        )
        # The newest run, made with --no-promote: its page (`nextmove report` picks it) says it is not served.
        backtest = report_data_from_store(store)
        assert backtest.run_id == "run-backtest"
        assert backtest.served == "not served (online decisions come from run run-b2c)"
        promote_run(store, "run-backtest")
        assert report_data_from_store(store, "run-b2c").served == (
            "not served (online decisions come from run run-backtest)"
        )
        html = render_report(report_data_from_store(store))
    assert "the served run (online decisions come from it)" in html.split("</header>")[0]
