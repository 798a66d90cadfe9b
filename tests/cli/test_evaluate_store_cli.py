"""``nextmove evaluate`` takes the lifecycle default at each logged decision from the runs that made it.

The accounts table holds each account's stage today, "churned" for one that left, so the default
read from it at a past decision does nothing exactly where a churn followed. A run records every
account's default when it decides (``default_action_id``): with the store's runs of the book, the
default is the one of the stage at each decision; without, it is not valued where it is not known.
A backtest (a run as of a past day) read the stages of today: its records are not read.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
from tests.measure.stage_leak_book import save_recorded_defaults, stage_default, true_value, write_leak_book
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.store import open_store, recorded_source

runner = CliRunner()


def _default_ips(report: dict[str, object]) -> dict[str, object]:
    (value,) = [
        v
        for v in report["policies"]  # type: ignore[attr-defined]
        if v["policy"] == "lifecycle_default" and v["method"] == "ips"
    ]
    return value  # type: ignore[no-any-return]


def test_cli_evaluate_values_the_default_each_run_recorded(tmp_path: Path) -> None:
    leak = write_leak_book(tmp_path / "book", accounts=2000, months=10, churn=1.5, seed=2)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--book", str(leak.folder), "--out", str(out), "--folds", "2", "--trees", "30"]

    # No store: where accounts left since, the default is not known, and the output says what to do.
    before = runner.invoke(app, args)
    assert before.exit_code == 0, before.output
    default = _default_ips(json.loads(out.read_text(encoding="utf-8")))
    assert default["estimate"] is None
    assert default["unknown_share"] > 0.05  # type: ignore[operator]
    text = " ".join(before.output.split())
    assert "note on lifecycle_default (IPS, SNIPS, DR): " in text
    assert "lifecycle_stage today (churned) was written after they left" in text
    assert "evaluate it with --policy FILE (docs/measure.md)" in text

    # The runs that made the decisions, in the default store, each with every account's default then.
    with open_store(None) as store:
        save_recorded_defaults(store, leak, recorded_source(str(leak.folder)))
    after = runner.invoke(app, args)
    assert after.exit_code == 0, after.output
    report = json.loads(out.read_text(encoding="utf-8"))
    evaluated = stage_default(leak.truth).filter(
        pl.col("decision_ts").is_between(
            datetime.fromisoformat(report["evaluation"]["from"]), datetime.fromisoformat(report["evaluation"]["to"])
        )
    )
    assert evaluated.height == report["evaluation"]["rows"]
    truth = true_value(leak.truth, evaluated)
    default = _default_ips(report)
    assert default["unknown_share"] == 0
    assert default["low"] <= truth <= default["high"], (default, truth)
    decisions = report["evaluation"]["rows"]
    assert any(f"recorded at {decisions:,} of the {decisions:,} evaluated decisions" in n for n in report["notes"])

    # A store named that is not there is an error, not a silent evaluation without it.
    missing = runner.invoke(app, [*args, "--store", f"sqlite:///{(tmp_path / 'none.db').as_posix()}"])
    assert missing.exit_code != 0
    assert "there is no store at" in " ".join(missing.output.split())


def test_cli_evaluate_skips_the_defaults_backtests_recorded(tmp_path: Path) -> None:
    # A backtest (run --as-of a past day) reads each account's stage of today: "churned" for an account
    # that left since, whose default it records as "none" at the very decisions a churn followed.
    leak = write_leak_book(tmp_path / "book", accounts=2000, months=10, churn=1.5, seed=2)
    out = tmp_path / "eval.json"
    store = f"sqlite:///{(tmp_path / 'runs.db').as_posix()}"
    args = ["evaluate", "--book", str(leak.folder), "--out", str(out), "--folds", "2", "--trees", "30"]
    alone = runner.invoke(app, args)
    assert alone.exit_code == 0, alone.output
    without = json.loads(out.read_text(encoding="utf-8"))
    assert (without["evaluation"]["from"], without["evaluation"]["to"]) == (
        "2024-07-29T00:00:00+00:00",
        "2024-08-28T00:00:00+00:00",
    )

    # Backtests on the days of the evaluated decisions, and a run of the book as it is now.
    for options in (["--as-of", "2024-07-29", "--no-promote"], ["--as-of", "2024-08-28", "--no-promote"], []):
        done = runner.invoke(app, ["run", "--book", str(leak.folder), "--store", store, "--trees", "30", *options])
        assert done.exit_code == 0, done.output
    after = runner.invoke(app, [*args, "--store", store])
    assert after.exit_code == 0, after.output
    report = json.loads(out.read_text(encoding="utf-8"))
    # As without the store: the default is not known where accounts left since (old code took the
    # backtests' "none" there: -65 $ per decision against a true -48, at "0 %" unknown).
    assert not any("recorded at" in n for n in report["notes"]), report["notes"]
    default = _default_ips(report)
    assert default["unknown_share"] == _default_ips(without)["unknown_share"] > 0.05
    assert default["estimate"] is None
    # Each run says whether it was a backtest; a run of the book as it is now was not.
    with open_store(store) as opened:
        runs = sorted(opened.list_runs(10), key=lambda r: str(r.as_of))
    assert [r.params.get("backtest") for r in runs] == [True, True, False]
