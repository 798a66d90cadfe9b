"""The lifecycle default is never valued on a stage written after the account left.

The accounts table holds each account's stage today: "churned" for an account that left. Read at a
past decision, it makes the default do nothing exactly at the decisions a churn followed, and its
value came out far below the truth (nextmove evaluate on a hunter's book: -68 $ per decision
against a true -44). The book here knows every decision's truth (tests/measure/stage_leak_book.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from tests.measure.stage_leak_book import DEFAULT, LeakBook, stage_default, true_value, write_leak_book

import nextmove
from nextmove.measure.ope import OfflineEvaluation, PolicyValue, evaluate_offline

KEYS = ["account_id", "decision_ts"]
FAST = {"n_folds": 2, "n_estimators": 30}


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> LeakBook:
    return write_leak_book(tmp_path_factory.mktemp("leak") / "book", accounts=6000, months=10, churn=1.5, seed=2)


def evaluate(leak: LeakBook, **kwargs: object) -> OfflineEvaluation:
    playbook = nextmove.load_playbook(leak.folder / "playbook.toml")
    book = nextmove.load_book(leak.folder, playbook=playbook)
    return evaluate_offline(book, playbook, seed=0, effect_params=FAST, **kwargs)  # type: ignore[arg-type]


def values_of(result: OfflineEvaluation) -> dict[tuple[str, str], PolicyValue]:
    return {(v.policy, v.method): v for v in result.policies + result.differences}


def evaluated(result: OfflineEvaluation) -> pl.DataFrame:
    return result.policy_tables["do_nothing"].select(KEYS)


def truth_at(leak: LeakBook, result: OfflineEvaluation, policy: pl.DataFrame) -> float:
    keys = evaluated(result)
    at = policy.with_columns(pl.col("decision_ts").cast(keys.schema["decision_ts"])).join(keys, on=KEYS)
    assert at.height == keys.height
    return true_value(leak.truth, at)


def test_lifecycle_default_is_not_valued_on_a_stage_read_after_the_account_left(leak: LeakBook) -> None:
    accounts = pl.read_csv(leak.folder / "accounts.csv")
    today = accounts.select("account_id", pl.col("lifecycle_stage").replace_strict({**DEFAULT, "churned": "none"}))
    result = evaluate(leak, policy=today.rename({"lifecycle_stage": "action_id"}), policy_name="todays_stage")
    values = values_of(result)
    truth = truth_at(leak, result, stage_default(leak.truth))
    # The premise: the default read from today's stage is valued below the truth, its interval short of it.
    leaked = values[("todays_stage", "ips")]
    assert leaked.high is not None
    assert leaked.high < truth, (leaked, truth)
    # Every evaluated decision of an account churned since is one whose stage then is not known.
    churned = accounts.filter(pl.col("lifecycle_stage") == "churned").get_column("account_id").implode()
    rows = result.evaluation_rows
    unknown = evaluated(result).filter(pl.col("account_id").is_in(churned)).height
    assert 0.05 < unknown / rows < 0.2
    for name in ("lifecycle_default", "learned - lifecycle_default"):
        for method in ("ips", "snips", "dr"):
            value = values[(name, method)]
            assert (value.estimate, value.low, value.high) == (None, None, None), value
            assert value.unknown_share == pytest.approx(unknown / rows)
            assert value.note is not None
            assert value.note.startswith(f"{unknown:,} of the {rows:,} evaluated decisions"), value.note
            assert "lifecycle_stage today (churned)" in value.note
            assert "evaluate it with --policy FILE" in value.note
    # The same default with the stage at each decision, given as a table, is valued right.
    table = stage_default(leak.truth).with_columns(pl.col("decision_ts").cast(evaluated(result).schema["decision_ts"]))
    right = values_of(evaluate(leak, policy=table, policy_name="stage_then"))[("stage_then", "ips")]
    assert right.low is not None
    assert right.high is not None
    assert right.low <= truth <= right.high, (right, truth)


def test_recorded_defaults_value_the_default_at_each_decision(leak: LeakBook) -> None:
    # A run at 09:00 of each decision day recorded every account's default (the store's recommendations).
    runs = stage_default(leak.truth).select(
        "account_id",
        (pl.col("decision_ts") + timedelta(hours=9)).alias("ts"),
        pl.col("action_id").alias("default_action_id"),
    )
    result = evaluate(leak, recorded_defaults=runs)
    values = values_of(result)
    truth = truth_at(leak, result, stage_default(leak.truth))
    learned = true_value(leak.truth, result.policy_tables["learned"])
    decisions = evaluated(result).height
    assert f"recorded at {decisions:,} of the {decisions:,} evaluated decisions" in " ".join(result.notes)
    default, versus = values[("lifecycle_default", "ips")], values[("learned - lifecycle_default", "ips")]
    assert default.unknown_share == 0
    assert default.low is not None
    assert default.high is not None
    assert default.low <= truth <= default.high, (default, truth)
    assert versus.low is not None
    assert versus.high is not None
    assert versus.low <= learned - truth <= versus.high, (versus, learned - truth)


def test_a_few_decisions_whose_stage_is_unknown_count_as_logged(leak: LeakBook) -> None:
    """Decisions of accounts that left more than a horizon later carry no churn in their window: their
    terms can move the default's value by little, so it is valued, counting them as what the history did."""
    churns = pl.read_csv(leak.folder / "outcomes.csv", try_parse_dates=True).select(
        "account_id", pl.col("ts").alias("churn_ts")
    )
    defaults = stage_default(leak.truth)
    early = (
        defaults.join(churns, on="account_id")
        .filter(pl.col("decision_ts") + timedelta(days=31) < pl.col("churn_ts"))
        .sort(KEYS)
        .tail(20)
    )
    runs = defaults.join(early, on=KEYS, how="anti").select(
        "account_id", pl.col("decision_ts").alias("ts"), pl.col("action_id").alias("default_action_id")
    )
    result = evaluate(leak, recorded_defaults=runs)
    left = (
        evaluated(result)
        .join(
            early.select(KEYS).with_columns(pl.col("decision_ts").cast(evaluated(result).schema["decision_ts"])),
            on=KEYS,
        )
        .height
    )
    assert 0 < left <= 20
    default = values_of(result)[("lifecycle_default", "ips")]
    truth = truth_at(leak, result, defaults)
    assert default.unknown_share == pytest.approx(left / result.evaluation_rows)
    assert default.note is not None
    assert "there the default is counted as what the history did" in default.note
    assert default.low is not None
    assert default.high is not None
    assert default.low <= truth <= default.high, (default, truth)


def test_a_recorded_default_holds_from_its_day_for_a_horizon(tmp_path: Path) -> None:
    leak = write_leak_book(tmp_path / "book", accounts=300, months=6, churn=1.5, seed=2)
    accounts = pl.read_csv(leak.folder / "accounts.csv").get_column("account_id")
    first, last = leak.truth.get_column("decision_ts").min(), leak.truth.get_column("decision_ts").max()
    # One run before the book's first decision, one the day after its last: neither made an evaluated decision.
    for when in (first - timedelta(days=1), last + timedelta(days=1)):  # type: ignore[operator]
        runs = pl.DataFrame({"account_id": accounts, "ts": when, "default_action_id": "care_call"})
        result = evaluate(leak, recorded_defaults=runs)
        assert not any("recorded at" in note for note in result.notes), result.notes
        assert any("lifecycle_default reads each account's lifecycle_stage" in note for note in result.notes)
