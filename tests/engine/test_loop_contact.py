"""Tests of the loop's correction options: contact contexts (recent touches per account), lowering-only corrections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from nextmove.book import Book, empty_table
from nextmove.engine.loop import contact_contexts, corrected_values, decision_records
from nextmove.engine.online import CONTEXT_SEPARATOR, OnlineDecider, OnlineLearner
from nextmove.errors import ConfigError
from nextmove.playbook.loader import load_playbook
from nextmove.store import DecisionRecord, FeedbackEvent, open_store

T = datetime(2025, 3, 3, tzinfo=UTC)


def _book(touches: list[tuple[str, str, int]], accounts: list[str] | None = None) -> Book:
    """A book with ``touches`` (account, action, days before ``T``) and ``accounts`` (ids only)."""
    frame = pl.DataFrame(
        {
            "account_id": [a for a, _, _ in touches],
            "action_id": [x for _, x, _ in touches],
            "ts": [T - timedelta(days=d) for _, _, d in touches],
            "touch_id": [f"t{i}" for i in range(len(touches))],
        },
        schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC"), "touch_id": pl.String},
    )
    acc = pl.concat(
        [empty_table("accounts"), pl.DataFrame({"account_id": accounts or []}, schema={"account_id": pl.String})],
        how="diagonal_relaxed",
    )
    return Book(
        acc,
        empty_table("signals"),
        pl.concat([empty_table("touches"), frame], how="diagonal_relaxed"),
        empty_table("outcomes"),
    )


def test_contact_contexts_count_the_touches_of_the_last_days_before_as_of() -> None:
    book = _book(
        [
            ("a", "call", 5),
            ("a", "email", 59),
            ("a", "call", 61),  # too old
            ("b", "call", 1),
            ("b", "none", 2),  # doing nothing is no contact
            ("c", "call", -1),  # after as_of
        ],
        accounts=["a", "b", "c", "d"],
    )
    out = contact_contexts(book, T).sort("account_id")
    assert out.rows() == [("a", 2, "busy"), ("b", 1, "calm"), ("c", 0, "calm"), ("d", 0, "calm")]
    wider = contact_contexts(book, T, contact_days=90, busy_touches=3).sort("account_id")
    assert wider.filter(pl.col("account_id") == "a").row(0) == ("a", 3, "busy")


@pytest.mark.parametrize(("arg", "value"), [("contact_days", 0), ("busy_touches", -1), ("contact_days", 1.5)])
def test_contact_contexts_reject_a_window_or_threshold_that_is_not_a_positive_whole_number(
    arg: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=arg):
        contact_contexts(_book([]), T, **{arg: value})  # type: ignore[arg-type]


def _values() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["calm", "calm", "busy", "busy"],
            "action_id": ["call", "none", "call", "none"],
            "value_usd": [100.0, 0.0, 100.0, 0.0],
            "low": [0.0, 0.0, 0.0, 0.0],
            "high": [200.0, 0.0, 200.0, 0.0],
        }
    )


def _contexts() -> pl.DataFrame:
    return pl.DataFrame({"account_id": ["calm", "busy"], "recent_touches": [0, 3], "contact": ["calm", "busy"]})


def test_corrected_values_move_an_action_by_its_correction_in_the_account_contact() -> None:
    learner = OnlineLearner(level=0.9)
    for i in range(20):
        # Given to accounts just contacted, the call realised far less than projected.
        learner.observe(f"b{i}", f"call{CONTEXT_SEPARATOR}busy", realised_usd=-500.0, projected_usd=100.0, low_usd=0.0,
                        high_usd=200.0)  # fmt: skip
    out = corrected_values(_values(), learner, _contexts())
    value = dict(zip(zip(out["account_id"], out["action_id"], strict=True), out["value_usd"], strict=True))
    assert value[("busy", "call")] < 0.0
    assert value[("calm", "call")] == 100.0  # no correction of the call yet, in general or when calm
    assert value[("busy", "none")] == value[("calm", "none")] == 0.0
    assert (out["high"] - out["low"]).to_list() == [200.0, 0.0, 200.0, 0.0]
    # Without the contexts, only the action's own correction counts (it has none).
    assert corrected_values(_values(), learner)["value_usd"].to_list() == [100.0, 0.0, 100.0, 0.0]


def test_corrected_values_fall_back_to_the_action_correction_in_a_contact_without_outcomes() -> None:
    learner = OnlineLearner(level=0.9)
    learner.observe("e1", "call", realised_usd=500.0, projected_usd=100.0, low_usd=0.0, high_usd=200.0)
    learner.observe("e2", f"call{CONTEXT_SEPARATOR}calm", realised_usd=-500.0, projected_usd=100.0, low_usd=0.0,
                    high_usd=200.0)  # fmt: skip
    out = corrected_values(_values(), learner, _contexts(), lower_only=False)
    plain = corrected_values(_values(), learner, lower_only=False)
    assert out["value_usd"][0] < 100.0  # calm: its own (negative) correction
    assert out["value_usd"][2] == plain["value_usd"][2] > 100.0  # busy: none of its own, the action's
    with pytest.raises(ConfigError, match="contact"):
        corrected_values(_values(), learner, _contexts().drop("contact"))


def test_online_decider_learns_an_outcome_in_its_contact_context_once() -> None:
    playbook = load_playbook()
    record = DecisionRecord(
        decision_id="r/a",
        account_id="a",
        action_id="upsell_call",
        arm="model",
        propensity=1.0,
        expected_value_usd=100.0,
        ts=T,
        context={"projected_value_usd": 100.0, "projected_low_usd": 0.0, "projected_high_usd": 200.0,
                 "contact": "busy", "recent_touches": 3},
    )  # fmt: skip
    event = FeedbackEvent(
        event_id="outcome:r/a",
        account_id="a",
        kind="outcome",
        ts=T + timedelta(days=90),
        action_id="upsell_call",
        payload={"decision_id": "r/a", "value_usd": -300.0},
    )
    with open_store("sqlite://") as store:
        store.log_decisions([record])
        decider = OnlineDecider(store, playbook)
        assert decider.learn([event]) == 1
        assert decider.learn([event]) == 0
        keys = {c.action_key: c.outcomes for c in decider.learner.corrections()}
        assert keys == {"upsell_call": 1, f"upsell_call{CONTEXT_SEPARATOR}busy": 1}
        assert decider.learner.correction(f"upsell_call{CONTEXT_SEPARATOR}busy").mean_z < 0.0


def test_decision_records_keep_the_contact_only_when_given() -> None:
    from nextmove.engine.run import run
    from nextmove.sim import LabEnvironment, SimConfig

    env = LabEnvironment(SimConfig(accounts=60, months=4, seed=5))
    playbook = env.history.config.resolved_playbook()
    fast = {"n_folds": 2, "n_estimators": 20}
    with open_store("sqlite://") as store:
        result = run(env.book(), playbook, as_of=env.now, store=store, seed=0, evidence=False, evaluate=False,
                     segments=False, effect_params=fast)  # fmt: skip
        assert result.decisions is not None
        contexts = contact_contexts(env.book(), env.now)
        with_ctx = decision_records(result.decisions, result, playbook, contexts=contexts)
        without = decision_records(result.decisions, result, playbook)
    expected = dict(zip(contexts["account_id"], contexts["contact"], strict=True))
    assert all(r.context["contact"] == expected[r.account_id] for r in with_ctx)
    assert all("contact" not in r.context for r in without)


def test_corrected_values_lower_only_keeps_raising_corrections_out() -> None:
    learner = OnlineLearner(level=0.9)
    for i in range(20):
        learner.observe(f"u{i}", "call", realised_usd=700.0, projected_usd=100.0, low_usd=0.0, high_usd=200.0)
        learner.observe(f"d{i}", "email", realised_usd=-500.0, projected_usd=10.0, low_usd=0.0, high_usd=20.0)
    values = pl.DataFrame(
        {
            "account_id": ["a", "a", "a"],
            "action_id": ["call", "email", "none"],
            "value_usd": [100.0, 10.0, 0.0],
            "low": [0.0, 0.0, 0.0],
            "high": [200.0, 20.0, 0.0],
        }
    )
    both = corrected_values(values, learner, lower_only=False)["value_usd"].to_list()
    lower = corrected_values(values, learner)["value_usd"].to_list()
    assert both[0] > 100.0
    assert both[1] < 10.0
    assert lower == [100.0, both[1], 0.0]
