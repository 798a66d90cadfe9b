"""A run's off-policy check never values the lifecycle default on a stage written after the account left.

The accounts table holds each account's stage today, "churned" for one that left: read at a past
decision, it makes the default do nothing exactly where a churn followed, which biased its value
down and the learned policy's gain over it up (``nextmove evaluate`` had the same leak, fixed in
measure/ope.py). The run takes the default its store's earlier runs recorded at each decision, else
leaves it without an estimate where those decisions could move it too far, and says so in the
report's metric row. The book knows every decision's truth (tests/measure/stage_leak_book.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from tests.measure.stage_leak_book import LeakBook, save_recorded_defaults, stage_default, true_value, write_leak_book

import nextmove
from nextmove.engine.run import RunResult, run
from nextmove.engine.run_facts import OFF_POLICY_METRIC
from nextmove.report import build_report_data
from nextmove.store import Store, open_store, recorded_source

FAST = {"n_folds": 2, "n_estimators": 30}


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> LeakBook:
    return write_leak_book(tmp_path_factory.mktemp("leak") / "book", accounts=2000, months=10, churn=1.5, seed=2)


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("sqlite://") as s:
        yield s


def run_on(leak: LeakBook, store: Store | None = None) -> RunResult:
    playbook = nextmove.load_playbook(leak.folder / "playbook.toml")
    book = nextmove.load_book(leak.folder, playbook=playbook)
    return run(book, playbook, store=store, effect_params=FAST, evidence=False, segments=False, promote=False)


def values_of(result: RunResult) -> dict[tuple[str, str], dict[str, Any]]:
    return {(v["policy"], v["method"]): v for v in [*result.policy_values, *result.summary["policy_differences"]]}


def evaluated_truth(leak: LeakBook, result: RunResult) -> pl.DataFrame:
    """The truth of the decisions the run evaluates: every account's at the latest decision whose horizon is over."""
    as_of = datetime.fromisoformat(result.summary["as_of"])
    horizon = timedelta(days=30)
    done = leak.truth.filter(pl.col("decision_ts") + timedelta(hours=9) + horizon <= as_of)
    return done.filter(pl.col("decision_ts") == done.get_column("decision_ts").max())


def test_run_leaves_the_default_unvalued_where_the_accounts_stage_then_is_not_known(leak: LeakBook) -> None:
    result = run_on(leak)
    values = values_of(result)
    truth = evaluated_truth(leak, result)
    accounts = pl.read_csv(leak.folder / "accounts.csv")
    churned = accounts.filter(pl.col("lifecycle_stage") == "churned").get_column("account_id").implode()
    rows = truth.height
    unknown = truth.filter(pl.col("account_id").is_in(churned)).height
    assert values[("default", "dr")]["n"] == rows
    assert 0.05 < unknown / rows < 0.2
    for name in ("default", "learned - default"):
        for method in ("ips", "snips", "dr"):
            value = values[(name, method)]
            assert (value["estimate"], value["low"], value["high"]) == (None, None, None), value
            assert value["unknown_share"] == pytest.approx(unknown / rows)
            assert value["note"].startswith(f"{unknown:,} of the {rows:,} evaluated decisions"), value["note"]
            assert "lifecycle_stage today (churned)" in value["note"]
            assert "nextmove evaluate --policy FILE" in value["note"]
    # The learned policy and doing nothing are valued as before.
    assert values[("learned", "dr")]["estimate"] is not None
    assert values[("nothing", "dr")]["estimate"] is not None
    # The metric row says there is no estimate and why, in the summary and the report alike.
    (row,) = [m for m in result.summary["metrics"] if m["metric"] == OFF_POLICY_METRIC]
    assert row["current"].startswith(f"no estimate: {unknown:,} of the {rows:,} evaluated decisions")
    assert row["status"] == "Review"
    report = build_report_data(result.summary, result.recommendations)
    (shown,) = [m for m in report.metrics if m.metric.startswith("Off-policy value")]
    assert shown.current == row["current"]
    assert shown.status == "Review"


def test_run_values_the_default_its_stores_earlier_runs_recorded(leak: LeakBook, store: Store) -> None:
    # The runs that made the decisions, each with every account's default then (as a run saves it).
    playbook = nextmove.load_playbook(leak.folder / "playbook.toml")
    source = recorded_source(nextmove.load_book(leak.folder, playbook=playbook).source)
    save_recorded_defaults(store, leak, source)
    result = run_on(leak, store)
    values = values_of(result)
    truth = evaluated_truth(leak, result)
    rows = truth.height
    assert f"recorded at {rows:,} of the {rows:,} evaluated decisions" in " ".join(result.summary["notes"])
    default = values[("default", "dr")]
    assert default["unknown_share"] == 0
    assert default["low"] <= true_value(truth, stage_default(truth)) <= default["high"], default
    difference = values[("learned - default", "dr")]
    assert difference["low"] < difference["estimate"] < difference["high"]
    (row,) = [m for m in result.summary["metrics"] if m["metric"] == OFF_POLICY_METRIC]
    assert row["current"].startswith(f"{difference['estimate']:+,.2f} (paired interval")


def test_run_does_not_value_the_default_by_what_backtests_recorded(leak: LeakBook, store: Store) -> None:
    # A backtest's records hold the stages of today: the run takes none of them, as with no records.
    playbook = nextmove.load_playbook(leak.folder / "playbook.toml")
    source = recorded_source(nextmove.load_book(leak.folder, playbook=playbook).source)
    save_recorded_defaults(store, leak, source, backtest=True)
    result = run_on(leak, store)
    assert "recorded at" not in " ".join(result.summary["notes"])
    default = values_of(result)[("default", "dr")]
    assert default["estimate"] is None
    assert default["unknown_share"] > 0.05
