"""Tests of the feedback loop: decisions logged per window, outcome feedback once per decision, online corrections."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book, empty_table
from nextmove.decide.policy import DecisionOptions
from nextmove.engine.loop import (
    OUTCOME_EVENT_PREFIX,
    corrected_values,
    decide_with_corrections,
    decision_records,
    outcome_feedback,
    send_feedback,
)
from nextmove.engine.online import OnlineDecider, OnlineLearner
from nextmove.engine.run import RunResult, run
from nextmove.errors import ConfigError
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.sim import LabEnvironment, SimConfig
from nextmove.store import DecisionRecord, FeedbackEvent, Store, open_store

FAST = {"n_folds": 2, "n_estimators": 25}
QUIET = {"evidence": False, "evaluate": False, "segments": False, "effect_params": FAST}
T0 = datetime(2025, 3, 3, tzinfo=UTC)


@dataclass
class Loop:
    """Three windows of the loop on a small lab book whose horizon (28 days) closes within them."""

    playbook: Playbook
    store: Store
    decider: OnlineDecider
    env: LabEnvironment
    runs: list[RunResult]
    logged: list[list[DecisionRecord]]
    sent: list[list[FeedbackEvent]]


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    playbook = load_playbook().model_copy(update={"horizon_days": 28})
    env = LabEnvironment(SimConfig(accounts=120, months=6, seed=3, playbook=playbook))
    with open_store("sqlite://") as store:
        runs: list[RunResult] = []
        logged: list[list[DecisionRecord]] = []
        sent: list[list[FeedbackEvent]] = []
        decider: OnlineDecider | None = None
        for w in range(3):
            result = run(env.book(), playbook, as_of=env.now, store=store, seed=0, reuse_model=w > 0, **QUIET)
            if decider is None:
                decider = OnlineDecider(store, playbook)
            decisions = decide_with_corrections(result, playbook, decider.learner)
            records = decision_records(decisions, result, playbook)
            store.log_decisions(records)
            step = env.step(decisions.frame().select("account_id", "action_id", "variant", "propensity", "arm"))
            events = outcome_feedback(store.decisions(), env.book(), playbook, step.now)
            send_feedback(store, decider, events)
            runs.append(result)
            logged.append(records)
            sent.append(events)
        assert decider is not None
        yield Loop(playbook, store, decider, env, runs, logged, sent)


def test_decide_with_corrections_without_corrections_is_the_run_decision(loop: Loop) -> None:
    result = loop.runs[0]
    assert result.decisions is not None
    again = decide_with_corrections(result, loop.playbook, OnlineLearner())
    cols = ["account_id", "action_id", "variant", "arm", "propensity"]
    assert again.frame().select(cols).equals(result.decisions.frame().select(cols))


def test_decide_with_corrections_keeps_the_runs_decision_settings(loop: Loop) -> None:
    result = loop.runs[0]
    assert result.decisions is not None
    assert result.decisions.options == DecisionOptions()
    # A run decided with risk aversion is re-decided with it, unless told otherwise.
    careful = dataclasses.replace(
        result, decisions=dataclasses.replace(result.decisions, options=DecisionOptions(risk_aversion=1.0))
    )
    acting = (result.decisions.choice >= 0).sum()
    assert (decide_with_corrections(careful, loop.playbook, OnlineLearner()).choice >= 0).sum() < acting
    plain = decide_with_corrections(careful, loop.playbook, OnlineLearner(), options=DecisionOptions())
    assert (plain.choice >= 0).sum() == acting
    with pytest.raises(ConfigError, match="risk_aversion must be a number >= 0"):
        DecisionOptions(risk_aversion=-0.5)


def test_decide_with_corrections_gives_an_overvalued_action_to_fewer_accounts(loop: Loop) -> None:
    result = loop.runs[0]
    assert result.decisions is not None
    chosen = result.decisions.frame().filter(pl.col("action_id") != "none")
    action = chosen.group_by("action_id").len().sort("len", descending=True).item(0, "action_id")
    learner = OnlineLearner()
    for i in range(50):
        # Realised far below projected, again and again: the action was overvalued.
        learner.observe(f"e{i}", action, realised_usd=-1000.0, projected_usd=100.0, low_usd=0.0, high_usd=200.0)
    again = decide_with_corrections(result, loop.playbook, learner).frame()
    before = chosen.filter(pl.col("action_id") == action).height
    after = again.filter(pl.col("action_id") == action).height
    assert after < before


def test_corrected_values_shift_only_actions_with_feedback() -> None:
    learner = OnlineLearner(level=0.9)
    learner.observe("e1", "call", realised_usd=500.0, projected_usd=100.0, low_usd=0.0, high_usd=200.0)
    values = pl.DataFrame(
        {
            "account_id": ["a", "a", "a"],
            "action_id": ["call", "email", "none"],
            "value_usd": [100.0, 10.0, 0.0],
            "low": [0.0, 5.0, 0.0],
            "high": [200.0, 15.0, 0.0],
        }
    )
    out = corrected_values(values, learner, lower_only=False)
    assert out["value_usd"][0] > 100.0
    assert out["value_usd"][1:].to_list() == [10.0, 0.0]
    width = (out["high"] - out["low"]).to_list()
    assert width == [200.0, 10.0, 0.0]
    with pytest.raises(ConfigError, match="low"):
        corrected_values(values.drop("low"), learner)


def test_decision_records_are_one_per_account_and_logged_once(loop: Loop) -> None:
    records = loop.logged[0]
    assert len(records) == loop.runs[0].recommendations.height
    assert len({r.decision_id for r in records}) == len(records)
    before = len(loop.store.decisions())
    loop.store.log_decisions(records)  # the same window again
    assert len(loop.store.decisions()) == before == sum(len(r) for r in loop.logged)


def test_decision_records_keep_the_run_projection_and_a_baseline(loop: Loop) -> None:
    result = loop.runs[0]
    values = result.projection.values
    arms = set(values["action_id"].to_list())
    acting = [r for r in loop.logged[0] if r.action_id != "none"]
    assert any(r.variant is not None for r in acting)
    for r in acting:
        # A variant's own projection when the model learned it as an arm, else its action's.
        key = (
            f"{r.action_id}:{r.variant}"
            if r.variant is not None and f"{r.action_id}:{r.variant}" in arms
            else r.action_id
        )
        row = values.filter((pl.col("account_id") == r.account_id) & (pl.col("action_id") == key))
        assert r.context["projected_value_usd"] == pytest.approx(row.item(0, "value_usd"))
        assert r.context["projected_low_usd"] == pytest.approx(row.item(0, "low"))
        assert r.context["projected_high_usd"] == pytest.approx(row.item(0, "high"))
        assert np.isfinite(r.context["baseline_usd"])


def test_outcome_feedback_is_one_event_per_decision_once_its_horizon_is_over(loop: Loop) -> None:
    horizon = timedelta(days=loop.playbook.horizon_days)
    first, second, third = loop.sent
    # The window is 14 days and the horizon 28: nothing is due after one window, the first
    # window's decisions after two, the first two windows' after three.
    assert first == []
    assert {e.payload["decision_id"] for e in second} <= {r.decision_id for r in loop.logged[0]}
    assert len(second) > 0.8 * len(loop.logged[0])
    assert {r.decision_id for r in loop.logged[1]} & {e.payload["decision_id"] for e in third}
    for e in [*second, *third]:
        assert e.event_id == OUTCOME_EVENT_PREFIX + e.payload["decision_id"]
        assert e.kind == "outcome"
        decision = loop.store.get_decision(e.payload["decision_id"])
        assert e.ts == decision.ts + horizon
    stored = [e for e in loop.store.feedback() if e.kind == "outcome"]
    assert len(stored) == len({e.event_id for e in [*second, *third]})


def test_send_feedback_counts_a_replayed_event_once(loop: Loop) -> None:
    events = loop.sent[1]
    before = loop.decider.learner.corrections()
    receipt = send_feedback(loop.store, loop.decider, events)
    assert (receipt.events, receipt.stored, receipt.learned) == (len(events), 0, 0)
    assert loop.decider.learner.corrections() == before
    assert sum(c.outcomes for c in before) > 0


def _book(touches: dict[str, list[object]], outcomes: dict[str, list[object]]) -> Book:
    return Book(
        empty_table("accounts"),
        empty_table("signals"),
        pl.concat([empty_table("touches"), pl.DataFrame(touches)], how="diagonal_relaxed"),
        pl.concat([empty_table("outcomes"), pl.DataFrame(outcomes)], how="diagonal_relaxed"),
    )


def _decision(decision_id: str, action_id: str, ts: datetime, baseline: float = 0.0) -> DecisionRecord:
    return DecisionRecord(
        decision_id=decision_id,
        account_id="a",
        action_id=action_id,
        arm="model",
        propensity=1.0,
        expected_value_usd=0.0,
        ts=ts,
        context={"baseline_usd": baseline, "arr": 20_000.0},
    )


def test_outcome_feedback_credits_each_outcome_to_the_touch_it_names() -> None:
    playbook = load_playbook()
    t1 = T0 + timedelta(days=14)
    book = _book(
        {
            "account_id": ["a", "a"],
            "action_id": ["upsell_call", "webinar_invite"],
            "ts": [T0, t1],
            "touch_id": ["T1", "T2"],
        },
        {
            "account_id": ["a", "a", "a"],
            "ts": [T0 + timedelta(days=30), T0 + timedelta(days=40), T0 + timedelta(days=200)],
            "kind": ["expansion", "churn", "expansion"],
            "outcome_id": ["O1", "O2", "O3"],
            "value": [5000.0, 1.0, 7000.0],
            "touch_id": ["T1", "T2", "T1"],
        },
    )
    decisions = [_decision("d1", "upsell_call", T0, baseline=1000.0), _decision("d2", "webinar_invite", t1)]
    events = {e.event_id: e for e in outcome_feedback(decisions, book, playbook, T0 + timedelta(days=365))}
    # d1: the expansion in its horizon (not the one after it), less its cost and the baseline.
    assert events["outcome:d1"].payload["value_usd"] == pytest.approx(5000.0 - 120.0 - 1000.0)
    # d2: the churn its touch carried: the ARR lost, less its cost.
    assert events["outcome:d2"].payload["value_usd"] == pytest.approx(-20_000.0 - 10.0)


def test_outcome_feedback_waits_for_the_horizon_and_skips_decisions_never_carried_out() -> None:
    playbook = load_playbook()
    book = _book(
        {"account_id": ["a"], "action_id": ["upsell_call"], "ts": [T0], "touch_id": ["T1"]},
        {
            "account_id": ["a"],
            "ts": [T0 + timedelta(days=3)],
            "kind": ["expansion"],
            "outcome_id": ["O1"],
            "value": [10.0],
            "touch_id": ["T1"],
        },
    )
    decisions = [_decision("d1", "upsell_call", T0), _decision("d2", "nurture_email", T0)]
    assert outcome_feedback(decisions, book, playbook, T0 + timedelta(days=89)) == []
    events = outcome_feedback(decisions, book, playbook, T0 + timedelta(days=90))
    assert [e.event_id for e in events] == ["outcome:d1"]


def test_outcome_feedback_without_touch_ids_counts_the_account_outcomes_in_the_horizon() -> None:
    playbook = load_playbook()
    book = _book(
        {"account_id": ["a"], "action_id": ["upsell_call"], "ts": [T0], "touch_id": ["T1"]},
        {
            "account_id": ["a", "a"],
            "ts": [T0 + timedelta(days=10), T0 + timedelta(days=100)],
            "kind": ["expansion", "expansion"],
            "outcome_id": ["O1", "O2"],
            "value": [300.0, 900.0],
        },
    )
    events = outcome_feedback([_decision("d1", "upsell_call", T0)], book, playbook, T0 + timedelta(days=120))
    assert [e.payload["value_usd"] for e in events] == [pytest.approx(300.0 - 120.0)]


def test_learning_doc_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "learning.md"
    example = doc.read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]
    exec(compile(example, str(doc), "exec"), {})  # the page's own loop, run as written
    lines = [line for line in capsys.readouterr().out.splitlines() if "FeedbackReceipt" in line]
    assert len(lines) == 3  # one line per window


def test_outcome_feedback_keeps_apart_objectives_on_kinds_that_sanitise_alike() -> None:
    # Objectives on "Cancel" and "cancel" both labelled y_cancel: the two shared one label column.
    from nextmove.playbook.loader import parse_playbook

    playbook = parse_playbook(
        '[objectives.lost]\noutcome="Cancel"\nsense="avoid"\nvalue="arr"\n'
        '[objectives.paused]\noutcome="cancel"\nsense="avoid"\nvalue="fixed"\nvalue_usd=100\n'
        '[[actions]]\nid="call"\nname="Call"\nteam="cs"\nobjective="lost"\ncost_usd=0\n'
    )
    book = _book(
        {"account_id": ["a"], "action_id": ["call"], "ts": [T0], "touch_id": ["T1"]},
        {
            "account_id": ["a"],
            "ts": [T0 + timedelta(days=30)],
            "kind": ["cancel"],
            "outcome_id": ["O1"],
            "value": [1.0],
            "touch_id": ["T1"],
        },
    )
    (event,) = outcome_feedback([_decision("d1", "call", T0)], book, playbook, T0 + timedelta(days=365))
    assert event.payload["realised_usd"] == pytest.approx(-100.0)
