"""``nextmove evaluate`` takes the lifecycle default at each logged decision from the runs that made it.

The accounts table holds each account's stage today, "churned" for one that left, so the default
read from it at a past decision does nothing exactly where a churn followed. A run records every
account's default when it decides (``default_action_id``): with the store's runs of the book, the
default is the one of the stage at each decision; without, it is not valued where it is not known.
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
