"""Tests of ``nextmove run``: files, the executive summary, the lab's regret line, the store and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.playbook.money import money_text
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import open_store

runner = CliRunner()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run-cli") / "book"
    write_book(simulate(SimConfig(accounts=150, months=9, seed=7)), folder)
    return folder


def test_run_cli_writes_outputs_prints_the_summary_and_saves_the_run(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    db = tmp_path / "nextmove.db"
    result = runner.invoke(
        app,
        [
            "run",
            "--book",
            str(book_dir),
            "--out",
            str(out),
            "--store",
            f"sqlite:///{db}",
            "--jobs",
            "1",
            "--trees",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "The Default B2B SaaS playbook scored 150 active customers across 14 possible actions" in text
    assert "the lifecycle-stage playbook would have suggested by default" in text
    assert "Recommended action distribution" in text
    assert "Lab:" in text
    assert "regret" in text
    assert "$-" not in text  # negative dollars read -$545, as money_text writes them
    receipts = pl.read_parquet(out / "recommendations.parquet", columns=["evidence", "alternatives"])
    for column in receipts.iter_columns():
        assert not any(re.search(r":-0\.0[,}]", text) for text in column)  # no rounded -0.0 in the receipts
    last = result.output.rstrip().splitlines()[-2:]
    assert any(line.startswith("Outputs:") for line in last)
    assert f"Outputs: {out}" in text
    frame = pl.read_csv(out / "recommendations.csv")
    assert frame.height == 150
    assert pl.read_parquet(out / "recommendations.parquet").height == 150
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["accounts"] == 150
    # "1,086 are best left alone" counted the control and exploration accounts their draw left alone;
    # "(90% interval …)" was the accounts' intervals summed.
    # Capacity's own count the control accounts whose default found none left, and explorers whose draw could not
    # have their best play (engine/run_facts): left alone by capacity, not by the draw.
    from nextmove.engine.run_facts import left_alone_by_draw

    alone = frame.filter(pl.col("action_id") == "none")
    drawn = left_alone_by_draw(pl.read_parquet(out / "recommendations.parquet")) or 0
    best = alone.height - drawn
    assert best >= alone.filter(pl.col("arm") == "model").height
    assert best + drawn == summary["do_nothing"]
    said = f". {best:,} customers are " if best != 1 else ". 1 customer is "
    assert said in text
    if drawn:
        verb = "is" if drawn == 1 else "are"
        more = f" {drawn:,} more {verb} left alone by the control cohort (the lifecycle default)"
        assert more in text
    # Why, as the report counts it: the receipts' runner-ups.
    from nextmove.engine.run_facts import left_alone_reasons

    reasons = left_alone_reasons(pl.read_parquet(out / "recommendations.parquet"))
    assert sum(n for _, n in reasons) == best
    for reason, n in reasons:
        assert (f"for {n:,}, {reason}" if len(reasons) > 1 else f"left alone this window: {reason}.") in text
    impact = summary["projected_impact_usd"]
    low, high = money_text(impact["low"], "USD"), money_text(impact["high"], "USD")
    assert f"(per-account 90% intervals summed: {low} to {high})." in text
    assert summary["regret"]["oracle_value_usd"] >= summary["regret"]["model_value_usd"]
    with open_store(f"sqlite:///{db}") as store:
        run = store.latest_run(status="succeeded")
        assert run is not None
        assert run.run_id == summary["run_id"]
        assert store.count_recommendations(run.run_id) == 150
        policy = store.active_model("policy")
        assert policy is not None
        assert policy.metrics["run_id"] == run.run_id
    assert (
        f"Run {run.run_id} is now the served run (policy version {policy.model_id}); no run was served before" in text
    )
    # --no-promote: stored, not served, and the CLI says which run still is.
    kept = runner.invoke(
        app,
        [
            "run",
            *("--book", str(book_dir), "--out", str(tmp_path / "kept"), "--store", f"sqlite:///{db}"),
            *("--reuse-model", "--no-promote", "--seed", "1"),
        ],
    )
    assert kept.exit_code == 0, kept.output
    kept_text = " ".join(kept.output.split())
    with open_store(f"sqlite:///{db}") as store:
        latest = store.latest_run(status="succeeded")
        assert latest is not None
        assert latest.run_id != run.run_id
        assert store.active_model("policy") == policy
    assert f"Run {latest.run_id} was not promoted: the served run is still {run.run_id}" in kept_text
    assert f"`nextmove models promote {latest.run_id}` serves it" in kept_text
    # A promoted run after a served one names the run a rollback would serve again.
    again = runner.invoke(
        app,
        [
            "run",
            *("--book", str(book_dir), "--out", str(tmp_path / "again"), "--store", f"sqlite:///{db}"),
            *("--reuse-model", "--seed", "2"),
        ],
    )
    assert again.exit_code == 0, again.output
    assert f"`nextmove models rollback` serves the previous one (run {run.run_id})" in " ".join(again.output.split())


def test_run_cli_clear_errors(book_dir: Path, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["run", "--book", str(book_dir), "--allocation", "magic", "--no-store"])
    assert bad.exit_code == 2
    assert "allocation must be 'auto', 'exact' or 'lagrangian'" in bad.output
    risky = runner.invoke(app, ["run", "--book", str(book_dir), "--risk-aversion", "-1", "--no-store"])
    assert risky.exit_code == 2
    missing = runner.invoke(
        app, ["run", "--book", str(book_dir), "--truth", str(tmp_path / "no.parquet"), "--no-store"]
    )
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    from nextmove.store import open_store

    open_store(f"sqlite:///{tmp_path}/x.db").close()  # a store without models (one that does not exist: no store)
    empty = runner.invoke(
        app, ["run", "--book", str(book_dir), "--reuse-model", "--store", f"sqlite:///{tmp_path}/x.db"]
    )
    assert empty.exit_code == 4
    assert "no active 'effect' model" in empty.output
    # The stage that failed says so, and the stages never reached are not shown as pending (on a
    # terminal, its bar gets a mark rather than a spinner stopped mid-turn: tests/cli/test_progress.py).
    assert "Loading the effect models: failed after " in empty.output  # --reuse-model loads, fits nothing
    assert "Saving the run" not in empty.output


def test_run_cli_partial_horizon_days_learns_from_open_horizons(book_dir: Path, tmp_path: Path) -> None:
    from nextmove.engine.run import load_effect_model
    from nextmove.playbook.loader import load_playbook

    db = f"sqlite:///{tmp_path}/nextmove.db"
    common = ["run", "--book", str(book_dir), "--jobs", "1", "--trees", "20", "--store", db]
    rows = {}
    for days in (None, 28):
        option = [] if days is None else ["--partial-horizon-days", str(days)]
        result = runner.invoke(app, [*common, "--out", str(tmp_path / f"out-{days}"), *option])
        assert result.exit_code == 0, result.output
        with open_store(db) as store:
            model, _ = load_effect_model(store, load_playbook(book_dir / "playbook.toml"))
        rows[days] = model.n_rows_
        assert model.get_params()["partial_horizon_days"] == days
        assert getattr(model, "partial_used_", False) is (days is not None)
        text = " ".join(result.output.split())
        assert ("whose horizon is still open (seen for at least 28 days)" in text) is (days is not None)
    # The decisions of the last 90 days seen for at least 28 days join the training rows.
    assert rows[28] > rows[None]
    bad = runner.invoke(app, [*common, "--partial-horizon-days", "0"])
    assert bad.exit_code == 2


def test_run_cli_weight_by_propensity_reaches_the_effect_model(book_dir: Path, tmp_path: Path) -> None:
    """docs/effects.md recommends calibration_weights="propensity" where the history chose actions on
    what the book lacks: `nextmove run --weight-by-propensity` sets it on the model the run fits."""
    from nextmove.engine.run import load_effect_model
    from nextmove.playbook.loader import load_playbook

    playbook = load_playbook(book_dir / "playbook.toml")
    for option, weights in (([], "none"), (["--weight-by-propensity"], "propensity")):
        db = f"sqlite:///{tmp_path}/{weights}.db"
        args = ["run", "--book", str(book_dir), "--jobs", "1", "--trees", "20", "--store", db]
        result = runner.invoke(app, [*args, "--out", str(tmp_path / f"out-{weights}"), *option])
        assert result.exit_code == 0, result.output
        with open_store(db) as store:
            model, _ = load_effect_model(store, playbook)
        assert model.get_params()["calibration_weights"] == weights
        assert model.n_rows_ > 0
    usage = " ".join(runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "--weight-by-propensity" in usage


def test_run_cli_that_fails_to_save_the_run_leaves_the_earlier_outputs_as_they_were(
    book_dir: Path, tmp_path: Path
) -> None:
    from tests.engine.test_run_lands_whole import folder_bytes, refuse_recommendations

    out = tmp_path / "out"
    db = tmp_path / "nextmove.db"
    common = ["run", "--book", str(book_dir), "--out", str(out), "--store", f"sqlite:///{db}", "--jobs", "1"]
    first = runner.invoke(app, [*common, "--trees", "20"])
    assert first.exit_code == 0, first.output
    before = folder_bytes(out)
    files = {"recommendations.csv", "recommendations.parquet", "summary.json", "report.html"}
    assert set(before) == files

    refuse_recommendations(db)  # the store fails as the run is saved, after every file could be written
    failed = runner.invoke(app, [*common, "--reuse-model", "--seed", "1"])
    assert failed.exit_code == 3, failed.output
    assert "disk is full" in failed.output
    assert "Outputs:" not in failed.output
    assert folder_bytes(out) == before  # the earlier run's four files, byte for byte, and no temporary folder

    refuse_recommendations(db, refuse=False)
    again = runner.invoke(app, [*common, "--reuse-model", "--seed", "2"])
    assert again.exit_code == 0, again.output
    after = folder_bytes(out)
    assert set(after) == files
    assert all(after[name] != before[name] for name in files)
    run_id = json.loads((out / "summary.json").read_text(encoding="utf-8"))["run_id"]
    assert f"Run <code>{run_id}</code>" in (out / "report.html").read_text(encoding="utf-8")
    assert f"Report: {out / 'report.html'}" in " ".join(again.output.split())


def test_run_cli_and_the_library_train_on_as_many_threads_by_default() -> None:
    import inspect

    from nextmove.cli.run import run_cmd
    from nextmove.engine.run import RunOptions

    assert inspect.signature(run_cmd).parameters["jobs"].default == RunOptions().jobs == 2


def test_executive_summary_says_one_customer_and_one_action_in_the_singular() -> None:
    # "across 1 possible actions"
    from nextmove.cli.run import executive_summary

    summary = {
        "accounts": 1,
        "actions": 1,
        "assigned": {"retention": 1},
        "do_nothing": 0,
        "projected_impact_usd": {"value": 10.0, "low": 1.0, "high": 20.0},
    }
    text = executive_summary(summary)
    assert text.startswith("The playbook scored 1 active customer across 1 possible action and recommended ")
    assert "across 2 possible actions" in executive_summary({**summary, "accounts": 2, "actions": 2})


def test_executive_summary_keeps_the_playbook_s_names_as_written() -> None:
    # "84 customers were assigned an erweiterung (upsell) action": the German noun lost its capital.
    from nextmove.cli.run import executive_summary

    summary = {
        "accounts": 100,
        "actions": 3,
        "assigned": {"upsell": 84, "churn": 7},
        "objective_names": {"upsell": "Erweiterung (Upsell)", "churn": "Kündigung vermeiden"},
        "do_nothing": 9,
        "projected_impact_usd": {"value": 10.0, "low": 1.0, "high": 20.0},
    }
    text = executive_summary(summary)
    assert "84 customers were assigned an Erweiterung (Upsell) action and 7 a Kündigung vermeiden action" in text


def test_executive_summary_says_apart_the_accounts_the_control_or_exploration_draw_left_alone() -> None:
    from nextmove.cli.run import executive_summary

    summary = {
        "accounts": 100,
        "actions": 3,
        "assigned": {"retention": 10},
        "do_nothing": 90,
        "projected_impact_usd": {"value": 100.0, "low": -50.0, "high": 400.0},
    }
    text = executive_summary(summary, drawn=1)
    assert ". 89 customers are best left alone this window. 1 more is left alone by the control cohort" in text
    assert text.endswith("Projected impact: $100 (per-account 90% intervals summed: -$50 to $400).")
    assert ". 1 customer is best left alone this window." in executive_summary({**summary, "do_nothing": 1}, drawn=0)


def test_run_cli_leaves_the_receipts_json_out_of_the_csv_when_asked(book_dir: Path, tmp_path: Path) -> None:
    # recommendations.csv was 1.03 GB at 300,000 subscribers, 2.7 of its 3.4 KB per row the receipts' JSON.
    out = tmp_path / "out"
    args = ["run", "--book", str(book_dir), "--out", str(out), "--no-store", "--jobs", "1", "--trees", "10"]
    result = runner.invoke(app, [*args, "--no-csv-evidence"])
    assert result.exit_code == 0, result.output
    csv = pl.read_csv(out / "recommendations.csv", infer_schema=False)
    parquet = pl.read_parquet(out / "recommendations.parquet")
    assert csv.height == parquet.height == 150
    assert "evidence" not in csv.columns
    assert "alternatives" not in csv.columns
    assert csv.columns == [c for c in parquet.columns if c not in ("evidence", "alternatives")]
    assert parquet.get_column("evidence").null_count() == 0  # the Parquet keeps the receipts whole
    whole = runner.invoke(app, [*args[:4], str(tmp_path / "whole"), *args[5:]])  # the default: as before
    assert whole.exit_code == 0, whole.output
    assert {"evidence", "alternatives"} <= set(pl.read_csv(tmp_path / "whole" / "recommendations.csv").columns)
