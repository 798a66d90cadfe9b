"""Tests of ``nextmove health``: the CSV, the summary tables, saved model versions and clear errors."""

from __future__ import annotations

import re
import shutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.cli.health import render_health
from nextmove.engine.health import HealthResult
from nextmove.models.health import HealthScorecard, ScorecardComponent, ScorecardMeasure
from nextmove.models.health_optimizer import HealthOptimizer, HealthOptimizerReport
from nextmove.playbook.loader import default_playbook_text
from nextmove.sim import SimConfig, simulate, write_book

runner = CliRunner()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("health") / "book"
    write_book(simulate(SimConfig(accounts=500, months=12, seed=2)), folder)
    return folder


def test_health_cli_writes_one_row_per_active_account_and_a_summary(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "health.csv"
    store = f"sqlite:///{tmp_path / 'nextmove.db'}"
    result = runner.invoke(app, ["health", "--book", str(book_dir), "--out", str(out), "--store", store, "--top", "5"])
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(out)
    assert frame.height == 500
    assert frame["account_id"].n_unique() == 500
    for column in (
        "health_score",
        "health_band",
        "health_trend",
        "health_change",
        "health_usage",
        "top_movers",
        "p_churn",
        "drivers_churn",
        "expected_expansion_amount",
    ):
        assert column in frame.columns
    assert frame["p_churn"].is_between(0, 1).all()
    assert not list(out.parent.glob(".*.tmp"))
    text = result.output
    for expected in ("Health as of", "Healthy", "ARR at risk", "AUC alone", "hand-set", "learned", "Outcome models"):
        assert expected in text
    # Whether to adopt the learned weights, said in words (on this small book: by too few churns to tell).
    assert re.search(r"The learned weights rank 'churn' (no )?better than the playbook's", " ".join(text.split()))
    # The bands are learned from the churn history and show how churn went in each on the later window.
    flat = " ".join(text.split())
    assert "churn rate, later window" in flat
    assert "Bands learned from the churn history: Critical where the score's churn risk is at least 2×" in flat
    assert "Saved outcome model version outcome-" in text

    again = runner.invoke(
        app, ["health", "--book", str(book_dir), "--out", str(out), "--store", store, "--reuse-model"]
    )
    assert again.exit_code == 0, again.output
    assert "Scored with outcome model version outcome-" in again.output
    assert pl.read_csv(out)["p_churn"].to_list() == frame["p_churn"].to_list()
    # A reused model is not validated again: its ECE is the one saved with it, not a blank cell.
    assert _ece_cell(again.output, "churn") == _ece_cell(text, "churn") != ""

    other = tmp_path / "other.toml"
    other.write_text(default_playbook_text().replace("horizon_days = 90", "horizon_days = 60"), encoding="utf-8")
    refused = runner.invoke(
        app,
        [
            "health",
            "--book",
            str(book_dir),
            "--playbook",
            str(other),
            "--out",
            str(out),
            "--store",
            store,
            "--reuse-model",
        ],
    )
    assert refused.exit_code == 2
    assert "trained under playbook" in refused.output


def _ece_cell(output: str, kind: str) -> str:
    """The ECE cell of ``kind``'s row in the outcome models' table of ``nextmove health``'s output."""
    table = output.split("Outcome models")[1]
    header = next(line for line in table.splitlines() if "ECE" in line)
    row = next(line for line in table.splitlines() if line.startswith(f"│ {kind} "))
    column = [cell.strip() for cell in header.split("┃")].index("ECE")
    return row.split("│")[column].strip()


def test_health_cli_prints_no_arr_columns_for_a_book_without_arr(book_dir: Path, tmp_path: Path) -> None:
    # A consumer book: the accounts carry neither ARR nor owners.
    book = tmp_path / "b2c"
    shutil.copytree(book_dir, book)
    accounts = pl.read_csv(book / "accounts.csv")
    accounts.drop("arr", "owner").write_csv(book / "accounts.csv")
    out = tmp_path / "health.csv"
    result = runner.invoke(app, ["health", "--book", str(book), "--out", str(out), "--no-save-model"])
    assert result.exit_code == 0, result.output
    bands = result.output.split("Health as of")[1].split("What predicts")[0]
    assert "share of accounts" in bands
    assert "ARR" not in bands
    assert "$0" not in bands
    assert "ARR at risk" not in result.output
    table = bands.split("┡")[1].split("└")[0]
    shares = [float(x) for x in re.findall(r"│\s+(\d+\.\d)%\s+│", table)]
    assert len(shares) == 3
    assert sum(shares) == pytest.approx(100.0, abs=0.3)
    # Nor does the optimizer rate an ARR measure the book does not have.
    measures = result.output.split("What predicts")[1].split("Health score AUC")[0]
    assert "tenure days" in measures
    assert "ARR" not in measures


def test_health_cli_says_no_weights_were_learned_from_too_few_churns(book_dir: Path, tmp_path: Path) -> None:
    # With no churn in the optimizer's training window, every measure showed "share of learned score
    # 0.0%" and a "learned" AUC while the hand-set card was kept, and a power of "high" from 3 events.
    book = tmp_path / "few"
    shutil.copytree(book_dir, book)
    outcomes = pl.read_csv(book / "outcomes.csv")
    churn = outcomes.filter(pl.col("kind") == "churn").sort("ts").tail(4)
    pl.concat([outcomes.filter(pl.col("kind") != "churn"), churn]).write_csv(book / "outcomes.csv")
    out = tmp_path / "health.csv"
    result = runner.invoke(app, ["health", "--book", str(book), "--out", str(out), "--no-save-model"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    measures = flat.split("What predicts churn")[1].split("Health score AUC")[0]
    assert "share of learned score" not in measures
    assert "too few events" in measures
    assert not re.search(r"\b(high|moderate)\b", measures)
    assert "no weights were learned (see the note)" in flat
    assert not re.search(r"learned \d", flat)
    assert re.search(
        r"note: health weights stay hand-set: the training window \(decisions before [\d-]+\) holds \d+ "
        r"'churn' events in [\d,]+ rows; at least 10 events are needed to learn weights",
        flat,
    )


def test_health_cli_bands_by_the_playbooks_cutoffs(book_dir: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "playbook.toml"
    playbook.write_text(default_playbook_text() + "\n[health]\nband_cutoffs = [45, 55]\n", encoding="utf-8")
    out = tmp_path / "health.csv"
    args = ["health", "--book", str(book_dir), "--playbook", str(playbook), "--out", str(out), "--no-save-model"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Bands: the playbook's band_cutoffs." in result.output
    assert "later window" not in result.output.split("Health as of")[1].split("Top ")[0]
    frame = pl.read_csv(out).with_columns(pl.col("health_score").round(0).alias("rounded"))
    assert frame.filter(pl.col("health_band") == "Critical")["rounded"].max() <= 45  # type: ignore[operator]
    assert frame.filter(pl.col("health_band") == "Healthy")["rounded"].min() >= 56  # type: ignore[operator]
    assert set(frame["health_band"].unique()) == {"Healthy", "At risk", "Critical"}


def test_health_cli_says_a_band_of_one_score_in_words(book_dir: Path, tmp_path: Path) -> None:
    # The band table printed "Critical 0–0".
    playbook = tmp_path / "playbook.toml"
    playbook.write_text(default_playbook_text() + "\n[health]\nband_cutoffs = [0, 55]\n", encoding="utf-8")
    out = tmp_path / "health.csv"
    args = ["health", "--book", str(book_dir), "--playbook", str(playbook), "--out", str(out), "--no-save-model"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    bands = result.output.split("Health as of")[1].split("Bands: the playbook's band_cutoffs.")[0]
    assert re.search(r"│ Critical\s+│\s+0 only │", bands), bands
    assert "0–0" not in result.output


def test_health_cli_refuses_an_output_that_is_not_csv(book_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["health", "--book", str(book_dir), "--out", str(tmp_path / "h.parquet")])
    assert result.exit_code == 2
    assert "must end in .csv" in result.output


def test_health_cli_has_help() -> None:
    result = runner.invoke(app, ["health", "--help"])
    assert result.exit_code == 0
    assert "--as-of" in result.output


def _learned_report() -> HealthOptimizerReport:
    """The optimizer's report on a history whose churn follows logins: learned weights that score better."""
    rng = np.random.default_rng(1)
    frames = []
    for t in range(8):
        logins = rng.gamma(2.0, 5.0, 400)
        churned = rng.random(400) < 1 / (1 + np.exp(-(1.0 - 0.35 * logins)))
        frames.append(
            pl.DataFrame(
                {
                    "account_id": [f"a{i}" for i in range(400)],
                    "decision_ts": [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=14 * t)] * 400,
                    "logins_mean_28d": logins,
                    "seats_trend_28d": rng.normal(0, 1, 400),
                    "tickets_sum_28d": rng.poisson(2, 400).astype(float),
                    "y_churn": churned.astype(float),
                }
            )
        )
    history = pl.concat(frames)
    card = HealthScorecard(
        [ScorecardComponent("usage", "Product usage [web]", 35), ScorecardComponent("support", "support", 65)],
        [
            ScorecardMeasure("usage", "logins_mean_28d"),
            ScorecardMeasure("usage", "seats_trend_28d"),
            ScorecardMeasure("support", "tickets_sum_28d", "lower"),
        ],
    ).fit(history)
    return HealthOptimizer().fit(card, history).report


def test_health_cli_prints_the_playbook_lines_of_learned_weights_that_score_better() -> None:
    # The learned weights ordered later churn better than the hand-set ones in use (AUC 0.659 against 0.592)
    # and the output said no more than the two numbers: not that they were better, by how much, nor how to
    # use them.
    report = _learned_report()
    assert report.better
    result = HealthResult(
        as_of=datetime(2025, 4, 1, tzinfo=UTC),
        before=datetime(2025, 2, 18, tzinfo=UTC),
        trend_weeks=6,
        accounts=pl.DataFrame({"account_id": ["a"], "arr": [1.0], "health_score": [50.0], "health_band": ["At risk"]}),
        components=[],
        scorecard=report.scorecard,  # type: ignore[arg-type]
        movers={},
        optimizer=report,
        outcome_models=None,
        predictions=None,
        bands_report=None,
        accuracy={},
        risk_kind=None,
        model_id=None,
        left_out=0,
        notes=[],
    )
    out = Console(record=True, width=60)
    render_health(result, out)
    text = out.export_text()
    flat = " ".join(text.split())
    assert report.auc_learned is not None
    assert report.auc_hand_set is not None
    assert (
        "The learned weights rank 'churn' better than the playbook's on the later window, which they were not "
        "learned from"
    ) in flat
    assert f"AUC {report.auc_learned:.3f} against {report.auc_hand_set:.3f}" in flat
    assert "To score with them, add these lines at the end of the playbook" in flat
    # The lines as they are, however narrow the terminal: a wrapped line would not parse.
    lines = report.playbook_lines
    assert lines is not None
    assert lines in text
    assert any(len(line) > 60 for line in lines.splitlines())
    parsed = tomllib.loads(lines)["health"]["components"]
    assert parsed["usage"]["name"] == "Product usage [web]"
    assert [m["feature"] for m in parsed["support"]["measures"]] == ["tickets_sum_28d"]
