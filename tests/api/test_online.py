"""The online decider: rules since the run, exploration with exact propensities, control, learning, versions."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.api.conftest import AS_OF, seed_run
from tests.store.conftest import terminate_lock_connection

from nextmove.api.schemas import FeedbackIn
from nextmove.engine.loop import send_feedback
from nextmove.engine.online import (
    POLICY_MODEL_KIND,
    DecideGroup,
    DecideRequest,
    DeciderNotReadyError,
    OnlineDecider,
    draw_index,
    promote_run,
    rollback_policy,
    thompson_probabilities,
)
from nextmove.errors import ConflictError, NotFoundError, StoreError
from nextmove.playbook import Playbook
from nextmove.store import (
    AuditEntry,
    DecisionRecord,
    FeedbackEvent,
    RecommendationRecord,
    RunRecord,
    SqlStore,
    Store,
    open_store,
)
from nextmove.store.locks import AccountLocks, PostgresStripes
from nextmove.store.records import TS_IS_DATE
from nextmove.testing import hillstrom_playbook

NOW = AS_OF + timedelta(days=2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _with_exploration(playbook: Playbook, **changes: object) -> Playbook:
    data = playbook.model_dump(mode="json")
    data["exploration"].update(changes)
    return Playbook.model_validate(data)


def test_decide_logs_the_choice_with_its_exact_propensity(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    made = decider.decide([DecideRequest(r.account_id) for r in recs[:9]], key_id="k1", now=NOW)
    assert [d.account_id for d in made] == [r.account_id for r in recs[:9]]
    for d in made:
        probs = d.context["propensities"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert d.propensity == pytest.approx(probs[d.action_id], abs=1e-6)
        assert d.arm in ("model", "explore")
        assert d.evidence["propensity"] == pytest.approx(d.propensity, abs=1e-6)
        assert d.evidence["model_action_id"] in probs
        assert d.key_id == "k1"
    assert {d.decision_id for d in store.decisions()} == {d.decision_id for d in made}


def test_decide_never_gives_an_action_the_run_blocked(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    blocked = [r for r in recs if any(a["why"] == "rule" for a in r.alternatives) and r.arm == "model"]
    assert blocked
    for rec in blocked:
        (d,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
        rule_blocked = next(a["action_id"] for a in rec.alternatives if a["why"] == "rule")
        assert d.context["propensities"][rule_blocked] == 0.0
        assert d.action_id != rule_blocked
        assert any(a["action_id"] == rule_blocked and a["why"] == "rule" for a in d.alternatives)


def test_second_decision_in_the_window_is_none_because_a_play_is_in_flight(store: Store, playbook: Playbook) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    account = recs[1].account_id
    (first,) = decider.decide([DecideRequest(account)], now=NOW)
    assert first.action_id != "none"
    (second,) = decider.decide([DecideRequest(account)], now=NOW + timedelta(hours=1))
    assert second.action_id == "none"
    assert second.propensity == 1.0
    assert {a["why"] for a in second.alternatives if a["action_id"] != "none"} <= {"in_flight", "rule"}
    # After the window, the play's own cooldown still blocks it; others are free again.
    window = playbook.contact_policy.window_days
    (later,) = decider.decide([DecideRequest(account)], now=NOW + timedelta(days=window + 1))
    assert later.action_id not in ("none", first.action_id)
    assert any(a["action_id"] == first.action_id and a["why"] == "cooldown" for a in later.alternatives)


def test_a_dismissed_decision_frees_the_account_but_not_for_the_dismissed_action(
    store: Store, playbook: Playbook
) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    account = recs[2].account_id
    (first,) = decider.decide([DecideRequest(account)], now=NOW)
    store.add_feedback(
        [
            FeedbackEvent(
                event_id="dismiss-1",
                account_id=account,
                kind="dismissed",
                ts=NOW + timedelta(minutes=5),
                action_id=first.action_id,
                reason="customer on holiday",
                payload={"decision_id": first.decision_id},
            )
        ]
    )
    (second,) = decider.decide([DecideRequest(account)], now=NOW + timedelta(minutes=10))
    # The dismissed play is no longer in flight, so another play may be given; not the dismissed one.
    assert second.action_id not in ("none", first.action_id)
    (row,) = [a for a in second.alternatives if a["action_id"] == first.action_id]
    days = max(pb.action(first.action_id).cooldown_days, pb.contact_policy.window_days)
    assert row["why"] == "dismissed"
    assert row["reason"].startswith(f"dismissed on {NOW:%Y-%m-%d} (customer on holiday); held back for its")
    assert f"{days}-day" in row["reason"]
    assert second.context["propensities"][first.action_id] == 0.0
    # Once its cooldown has passed, it may come back.
    (later,) = decider.decide([DecideRequest(account)], now=NOW + timedelta(days=days, hours=1))
    assert all(a["why"] != "dismissed" for a in later.alternatives)


def _snooze(
    account: str, event_id: str, until: datetime, *, action_id: str | None = None, ts: datetime = NOW
) -> FeedbackEvent:
    """A snooze as the API stores it (``POST /v1/feedback``)."""
    body = FeedbackIn(
        event_id=event_id,
        account_id=account,
        kind="snoozed",
        ts=ts,
        action_id=action_id,
        reason="customer asked to wait for their budget",
        snoozed_until=until,
    )
    return body.to_event(ts)


def test_a_snoozed_action_does_not_come_back_before_its_snooze_ends(store: Store, playbook: Playbook) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    models = [r for r in recs if r.arm == "model" and r.action_id != "none"][:6]
    until = NOW + timedelta(days=14)
    # Sent before the run was made, too: a snooze lasts until it ends, not until the next run.
    store.add_feedback(
        [
            _snooze(r.account_id, f"snooze-{i}", until, action_id=r.action_id, ts=AS_OF - timedelta(days=i % 2))
            for i, r in enumerate(models)
        ]
    )
    made = decider.decide([DecideRequest(r.account_id) for r in models], now=NOW)
    for rec, d in zip(models, made, strict=True):
        assert d.action_id != rec.action_id
        assert d.context["propensities"][rec.action_id] == 0.0
        (row,) = [a for a in d.alternatives if a["action_id"] == rec.action_id]
        assert row["why"] == "snoozed"
        assert row["reason"] == f"snoozed until {until:%Y-%m-%d}: customer asked to wait for their budget"
        assert f"the run's choice, {pb.action(rec.action_id).name}, is blocked (snoozed until" in d.evidence["summary"]
    # After the snooze (and the window of the play given meanwhile), the run's choice is back.
    after = decider.decide([DecideRequest(r.account_id) for r in models], now=until + timedelta(days=1))
    assert [d.action_id for d in after] == [r.action_id for r in models]


def test_a_snooze_sent_after_the_decision_time_does_not_hold_it(store: Store, playbook: Playbook) -> None:
    # A backdated decision (or a client's clock ahead of the server's) sees only what was said by then.
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    early, late = [r for r in recs if r.arm == "model" and r.action_id != "none"][:2]
    sent = NOW + timedelta(days=1)
    store.add_feedback(
        [
            _snooze(r.account_id, f"snooze-{r.account_id}", sent + timedelta(days=14), action_id=r.action_id, ts=sent)
            for r in (early, late)
        ]
    )
    (before,) = decider.decide([DecideRequest(early.account_id)], now=NOW)
    assert before.action_id == early.action_id
    assert all(a["why"] != "snoozed" for a in before.alternatives)
    (after,) = decider.decide([DecideRequest(late.account_id)], now=sent + timedelta(hours=1))
    assert after.action_id != late.action_id
    assert any(a["action_id"] == late.action_id and a["why"] == "snoozed" for a in after.alternatives)


def test_a_snooze_that_names_no_action_keeps_the_account_quiet_and_a_later_one_shortens_it(
    store: Store, playbook: Playbook
) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    rec = next(r for r in recs if r.arm == "model" and r.action_id != "none")
    store.add_feedback([_snooze(rec.account_id, "quiet-1", NOW + timedelta(days=30))])
    (d,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    assert d.action_id == "none"
    assert d.propensity == 1.0
    plays = [a for a in d.alternatives if a["action_id"] != "none"]
    assert plays
    assert {a["why"] for a in plays} == {"snoozed"}
    assert plays[0]["reason"].startswith(f"the account is snoozed until {NOW + timedelta(days=30):%Y-%m-%d}")
    # Snoozed again, until sooner: the later snooze is the one that counts.
    store.add_feedback([_snooze(rec.account_id, "quiet-2", NOW + timedelta(days=3), ts=NOW + timedelta(hours=1))])
    (again,) = decider.decide([DecideRequest(rec.account_id)], now=NOW + timedelta(days=4))
    assert again.action_id == rec.action_id


def test_a_dismissal_that_names_nothing_dismisses_the_recommendation_it_answers(
    store: Store, playbook: Playbook
) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    rec = next(r for r in recs if r.arm == "model" and r.action_id != "none")
    event = FeedbackIn(
        event_id="dismiss-rec", account_id=rec.account_id, kind="dismissed", reason="already in touch"
    ).to_event(NOW - timedelta(hours=1))
    store.add_feedback([event])
    (d,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    assert d.action_id != rec.action_id
    assert any(a["action_id"] == rec.action_id and a["why"] == "dismissed" for a in d.alternatives)


def test_a_control_account_whose_default_is_snoozed_gets_nothing(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    rec = next(r for r in recs if r.arm == "control" and r.action_id != "none")
    store.add_feedback([_snooze(rec.account_id, "snooze-control", NOW + timedelta(days=7), action_id=rec.action_id)])
    (d,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    assert d.arm == "control"
    assert d.action_id == "none"
    assert "snoozed until" in d.evidence["default_why"]


def test_a_decision_that_gives_a_runner_up_carries_the_run_s_projection_of_it(store: Store, playbook: Playbook) -> None:
    # The run's choice in its cooldown online: the decision gives a runner-up, whose projection per
    # objective the run kept in its alternatives row; the receipt shows it (it was [] before).
    pb = _with_exploration(playbook, method="none")
    window = pb.contact_policy.window_days

    def projected(action_id: str, value: float) -> list[dict[str, Any]]:
        return [
            {
                "objective": o,
                "outcome": pb.objectives[o].outcome,
                "unit": "probability",
                "without": 0.3,
                "with": 0.2,
                "low": 0.1,
                "high": 0.3,
                "effect": -0.1,
                "effect_usd": round(value, 2),
            }
            for o in pb.objectives
        ]

    with open_store("sqlite://") as scratch:
        recs = seed_run(scratch, pb)
        run = scratch.get_run("run-1")
    recs = [
        dataclasses.replace(
            r,
            alternatives=[
                {**a, "projected": projected(a["action_id"], a["value_usd"])} if a["action_id"] != "none" else a
                for a in r.alternatives
            ],
        )
        for r in recs
    ]
    store.save_run(run, recs)
    decider = OnlineDecider(store, pb)
    rec = next(
        r
        for r in recs
        if r.arm == "model" and r.action_id != "none" and pb.action(r.action_id).cooldown_days > window + 1
    )
    (first,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    assert first.action_id == rec.action_id
    assert first.evidence["projected"] == rec.evidence["projected"]
    (later,) = decider.decide([DecideRequest(rec.account_id)], now=NOW + timedelta(days=window + 1))
    assert later.action_id not in ("none", rec.action_id)
    (row,) = [a for a in rec.alternatives if a["action_id"] == later.action_id]
    assert later.evidence["projected"] == row["projected"]
    assert later.evidence["projected"] != rec.evidence["projected"]
    assert later.evidence["comparables"] == []


def test_done_feedback_without_a_decision_counts_as_a_touch(store: Store, playbook: Playbook) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    account = recs[4].account_id
    store.add_feedback(
        [
            FeedbackEvent(
                event_id="done-1",
                account_id=account,
                kind="done",
                ts=NOW - timedelta(hours=3),
                action_id=recs[4].action_id,
            )
        ]
    )
    (d,) = decider.decide([DecideRequest(account)], now=NOW)
    assert d.action_id == "none"
    assert "in flight" in d.evidence["summary"] or any(a["why"] == "in_flight" for a in d.alternatives)


def test_control_accounts_get_the_lifecycle_default_with_propensity_one(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    control = [r for r in recs if r.arm == "control"]
    assert control
    for rec in control:
        (d,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
        assert (d.arm, d.action_id, d.propensity) == ("control", rec.default_action_id, 1.0)


def test_a_retried_request_id_returns_the_first_decision(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    (first,) = decider.decide([DecideRequest(recs[5].account_id, request_id="req-5")], now=NOW)
    (again,) = decider.decide([DecideRequest(recs[5].account_id, request_id="req-5")], now=NOW)
    assert again == first
    assert len(store.decisions(account_id=recs[5].account_id)) == 1


def test_an_account_not_in_the_run_is_not_found_and_nothing_is_logged(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    with pytest.raises(NotFoundError, match="no account 'nope'"):
        decider.decide([DecideRequest(recs[0].account_id), DecideRequest("nope")], now=NOW)
    assert store.decisions() == []


def test_outcome_feedback_moves_the_correction_once_and_survives_a_restart(store: Store, playbook: Playbook) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, accounts=40)
    decider = OnlineDecider(store, pb)
    made = decider.decide([DecideRequest(r.account_id) for r in recs if r.arm == "model"], now=NOW)
    plays = [d for d in made if d.action_id != "none"]
    action = plays[0].action_id
    same = [d for d in plays if d.action_id == action]
    events = [
        FeedbackEvent(
            event_id=f"out-{d.decision_id}",
            account_id=d.account_id,
            kind="outcome",
            ts=NOW + timedelta(days=30),
            action_id=d.action_id,
            payload={"decision_id": d.decision_id, "value_usd": d.expected_value_usd - 600.0},
        )
        for d in same
    ]
    store.add_feedback(events)
    assert decider.learn(events) == len(same)
    assert decider.learn(events) == 0  # the same events again count nothing
    correction = decider.learner.correction(action)
    # Each outcome fell 600 USD, i.e. 600 / (300 / 1.645) = 3.29 spreads, short of its projection.
    assert correction.outcomes == len(same)
    assert correction.mean_z == pytest.approx(-3.29 * len(same) / (1 + len(same)), abs=0.01)
    assert correction.sd_z == pytest.approx((1 + len(same)) ** -0.5)

    restarted = OnlineDecider(store, pb)
    assert restarted.learner.correction(action) == correction


def test_an_event_id_resent_with_another_body_moves_no_correction(store: Store, playbook: Playbook) -> None:
    """Only stored events are learned from: an event_id resent with another body is refused, so it is not counted."""
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, accounts=12, control_every=0)
    decider = OnlineDecider(store, pb)
    rec = next(r for r in recs if r.action_id != "none")
    (made,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    done = FeedbackEvent(event_id="crm-1", account_id=made.account_id, kind="done", ts=NOW, action_id=made.action_id)
    outcome = FeedbackEvent(
        event_id="crm-1",
        account_id=made.account_id,
        kind="outcome",
        ts=NOW + timedelta(days=30),
        action_id=made.action_id,
        payload={"decision_id": made.decision_id, "value_usd": -50_000.0},
    )
    assert send_feedback(store, decider, [done]).learned == 0
    with pytest.raises(ConflictError, match="'crm-1'"):
        send_feedback(store, decider, [outcome])
    assert decider.learner.corrections() == []
    # A new id with the same body is stored, and counted, once.
    again = dataclasses.replace(outcome, event_id="crm-2")
    assert send_feedback(store, decider, [again, again]).learned == 1
    assert send_feedback(store, decider, [again]).learned == 0
    restarted = OnlineDecider(store, pb)
    assert restarted.learner.corrections() == decider.learner.corrections()


def test_an_undervalued_action_is_not_valued_higher_online(store: Store, playbook: Playbook) -> None:
    """Only corrections that lower a value apply online, as in the batch loop: one large outcome raises nothing."""
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, accounts=12, control_every=0)
    decider = OnlineDecider(store, pb)
    rec = next(r for r in recs if r.action_id != "none")
    (before,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    decider.learner.observe(
        "big", before.action_id, realised_usd=9000.0, projected_usd=100.0, low_usd=50.0, high_usd=150.0
    )
    assert decider.learner.correction(before.action_id).mean_z > 0
    (after,) = decider.decide([DecideRequest(rec.account_id)], now=NOW + timedelta(days=200))
    assert after.action_id == before.action_id
    assert after.expected_value_usd == pytest.approx(before.expected_value_usd)


def test_a_corrected_action_is_valued_lower_in_later_decisions(store: Store, playbook: Playbook) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, accounts=12, control_every=0)
    decider = OnlineDecider(store, pb)
    rec = recs[3]
    (before,) = decider.decide([DecideRequest(rec.account_id)], now=NOW)
    for i in range(20):
        decider.learner.observe(
            f"e{i}", before.action_id, realised_usd=-5000.0, projected_usd=1000.0, low_usd=700.0, high_usd=1300.0
        )
    (after,) = decider.decide([DecideRequest(rec.account_id)], now=NOW + timedelta(days=200))
    assert after.action_id != before.action_id
    assert any(a["action_id"] == before.action_id and a["value_usd"] < 0 for a in after.alternatives)


def test_promote_then_rollback_swaps_the_served_run(store: Store, playbook: Playbook) -> None:
    seed_run(store, playbook, run_id="run-1")
    decider = OnlineDecider(store, playbook)
    assert decider.snapshot is not None
    assert decider.snapshot.run.run_id == "run-1"
    seed_run(store, playbook, run_id="run-2", seed=1, as_of=AS_OF + timedelta(days=7))
    first = promote_run(store, "run-1")
    second = decider.promote_run("run-2")
    assert decider.snapshot.run.run_id == "run-2"
    assert decider.snapshot.policy_version == second.model_id
    back = rollback_policy(store)
    assert back.model_id == first.model_id
    assert decider.refresh()
    assert decider.snapshot.run.run_id == "run-1"
    with pytest.raises(NotFoundError, match="nothing to roll back to"):
        rollback_policy(store)
    assert [m.kind for m in store.list_models(POLICY_MODEL_KIND)] == [POLICY_MODEL_KIND] * 2


def test_decider_is_not_ready_without_a_run_or_under_another_playbook(store: Store, playbook: Playbook) -> None:
    decider = OnlineDecider(store, playbook)
    assert not decider.ready
    with pytest.raises(DeciderNotReadyError, match="no succeeded run"):
        decider.decide([DecideRequest("a")])
    seed_run(store, playbook)
    other = OnlineDecider(store, hillstrom_playbook())
    assert not other.ready
    assert "--playbook" in (other.problem or "")


def test_decider_serves_a_playbook_the_lab_did_not_write(store: Store) -> None:
    pb = _with_exploration(hillstrom_playbook(), method="epsilon", epsilon=0.2)
    recs = seed_run(store, pb, accounts=8, control_every=0)
    decider = OnlineDecider(store, pb)
    made = decider.decide([DecideRequest(r.account_id) for r in recs], now=NOW)
    for d, rec in zip(made, recs, strict=True):
        probs = d.context["propensities"]
        assert set(probs) == {*pb.action_ids, "none"}
        blocked = {a["action_id"] for a in rec.alternatives if a["why"] == "rule"}
        assert all(probs[k] == 0.0 for k in blocked)
        allowed = [k for k, v in probs.items() if v > 0]
        assert len(allowed) == len(probs) - len(blocked)
        best = d.evidence["model_action_id"]
        assert probs[best] == pytest.approx(0.8 + 0.2 / len(allowed))


def test_thompson_probabilities_favour_the_better_option_and_keep_every_allowed_one_possible() -> None:
    rng = np.random.default_rng(3)
    probs = thompson_probabilities(
        np.array([100.0, 90.0, 0.0, 500.0]),
        np.array([10.0, 10.0, 0.0, 1.0]),
        np.array([True, True, True, False]),
        rng,
        2000,
    )
    assert probs.sum() == pytest.approx(1.0)
    assert probs[3] == 0.0
    assert probs[0] > probs[1] > probs[2] > 0


def _audit(resource: str) -> AuditEntry:
    return AuditEntry(action="change", method="POST", path="/v1/decide", status=200, resource=resource)


def test_decide_groups_logs_the_groups_together_each_all_or_nothing(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    a, b, c = (r.account_id for r in recs[:3])
    groups = [
        DecideGroup([DecideRequest(a)], key_id="k1", audit=[_audit("g1")]),
        DecideGroup([DecideRequest(b), DecideRequest("nope")], key_id="k2", audit=[_audit("g2")]),
        DecideGroup([DecideRequest(c, request_id="r-c")], key_id="k3", audit=[_audit("g3")]),
    ]
    first, second, third = decider.decide_groups(groups, now=NOW)
    assert isinstance(second, NotFoundError)
    assert isinstance(first, list)
    assert isinstance(third, list)
    assert [(d.account_id, d.key_id) for d in first + third] == [(a, "k1"), (c, "k3")]
    assert {d.decision_id for d in store.decisions()} == {d.decision_id for d in first + third}
    assert sorted(e.resource for e in store.audit_log()) == ["g1", "g3"]
    # A retried request id gets the decision logged first, in a batch too.
    ((again,),) = decider.decide_groups([DecideGroup([DecideRequest(c, request_id="r-c")])], now=NOW)
    assert again == third[0]


def test_decide_groups_for_one_account_twice_sees_the_first_decision(store: Store, playbook: Playbook) -> None:
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb)
    decider = OnlineDecider(store, pb)
    account = recs[1].account_id
    first, second = decider.decide_groups([DecideGroup([DecideRequest(account)])] * 2, now=NOW)
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert first[0].action_id != "none"
    assert second[0].action_id == "none"
    assert len(store.decisions(account_id=account)) == 2


def test_a_group_that_cannot_be_logged_fails_alone(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    good, bad = recs[0].account_id, recs[1].account_id
    # NaN is not JSON: the store refuses the decision that logs it, not its neighbours.
    results = decider.decide_groups(
        [DecideGroup([DecideRequest(good)]), DecideGroup([DecideRequest(bad, signals={"arr": float("nan")})])],
        now=NOW,
    )
    assert isinstance(results[0], list)
    assert isinstance(results[1], StoreError)
    assert [d.account_id for d in store.decisions()] == [good]


def test_decide_groups_waits_for_a_busy_account_without_holding_the_others(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook, control_every=0)
    decider = OnlineDecider(store, playbook)
    free, busy = recs[0].account_id, recs[1].account_id
    if decider._stripe(free) == decider._stripe(busy):
        free = next(r.account_id for r in recs if decider._stripe(r.account_id) != decider._stripe(busy))
    lock = decider._locks._local[decider._stripe(busy)]
    lock.acquire()  # as a concurrent decide() for the busy account would
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.extend(
            decider.decide_groups([DecideGroup([DecideRequest(free)]), DecideGroup([DecideRequest(busy)])], now=NOW)
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not store.decisions(account_id=free) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The free account's decision was committed while the busy one still waited.
        assert [d.account_id for d in store.decisions()] == [free]
    finally:
        lock.release()
        worker.join(timeout=30)
    assert [type(r) for r in results] == [list, list]
    assert {d.account_id for d in store.decisions()} == {free, busy}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_deciders_on_one_store_never_give_one_account_two_plays_at_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, playbook: Playbook
) -> None:
    """Two server processes share a store: each account's read-check-write is serialised across them too."""
    url = (
        f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    pb = _with_exploration(playbook, method="none")
    with open_store(url) as one, open_store(url) as two:
        recs = seed_run(one, pb, accounts=40, control_every=0)
        deciders = [OnlineDecider(one, pb), OnlineDecider(two, pb)]
        accounts = [r.account_id for r in recs if r.action_id != "none"][:12]
        errors: list[BaseException] = []

        def decide(k: int, account_id: str, barrier: threading.Barrier) -> None:
            decider = deciders[k % 2]
            barrier.wait()
            try:
                if k % 4 < 2:
                    decider.decide([DecideRequest(account_id)], now=NOW)
                else:  # the server's decision thread's way
                    (result,) = decider.decide_groups([DecideGroup([DecideRequest(account_id)])], now=NOW)
                    if isinstance(result, BaseException):
                        raise result
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        for account_id in accounts:
            barrier = threading.Barrier(6)
            threads = [threading.Thread(target=decide, args=(k, account_id, barrier)) for k in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for decider in deciders:
            decider.close()
        assert errors == []
        logged = one.decisions()
    assert len(logged) == 6 * len(accounts)
    plays = {a: [d.action_id for d in logged if d.account_id == a and d.action_id != "none"] for a in accounts}
    assert {a: len(p) for a, p in plays.items()} == dict.fromkeys(accounts, 1)


@pytest.mark.postgres
def test_a_decision_whose_account_lock_was_lost_with_the_lock_connection_is_not_logged(
    pg_schema_url: str, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread's failed statement drops the process's lock connection, and every lock on it, mid-decision."""
    pb = _with_exploration(playbook, method="none")
    with open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        recs = seed_run(store, pb, control_every=0)
        decider = OnlineDecider(store, pb)
        locks = decider._locks
        shared = locks.shared
        assert isinstance(shared, PostgresStripes)
        account = recs[0].account_id
        mine = decider._stripe(account)
        theirs = next(i for i in range(64) if i != mine)
        elsewhere = PostgresStripes(store._engine)  # another server process on the store
        decide_one = decider._decide_one

        def lose_the_lock(*args: Any, **kwargs: Any) -> Any:
            # While this decision holds its account's stripe: the lock connection dies, and
            # another thread's next statement on it fails, which drops it.
            terminate_lock_connection(pg_schema_url, shared)
            failed: list[BaseException] = []

            def other_thread() -> None:
                try:
                    locks.try_lock(theirs)
                except StoreError as exc:
                    failed.append(exc)

            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join(timeout=30)
            assert len(failed) == 1
            # The other process now holds the account's stripe: it may be deciding for it too.
            assert elsewhere.try_acquire(mine)
            return decide_one(*args, **kwargs)

        try:
            monkeypatch.setattr(decider, "_decide_one", lose_the_lock)
            with pytest.raises(StoreError, match=f"stripe {mine} were lost"):
                decider.decide([DecideRequest(account)], now=NOW)
            elsewhere.release([mine])
            (result,) = decider.decide_groups([DecideGroup([DecideRequest(account)])], now=NOW)
            assert isinstance(result, StoreError)
            assert "were lost" in str(result)
            elsewhere.release([mine])
            assert store.decisions(account_id=account) == []
            # With the lock connection back, the account is decided as usual.
            monkeypatch.setattr(decider, "_decide_one", decide_one)
            (made,) = decider.decide([DecideRequest(account)], now=NOW)
            assert [d.decision_id for d in store.decisions(account_id=account)] == [made.decision_id]
        finally:
            elsewhere.close()
            decider.close()


@contextlib.contextmanager
def _other_server(url: str, pb: Playbook) -> Iterator[OnlineDecider]:
    """A decider of another server process on the store: its own store and its own lock connection."""
    with open_store(url) as other_store:
        assert isinstance(other_store, SqlStore)
        stripes = PostgresStripes(other_store._engine)
        other = OnlineDecider(other_store, pb)
        # One process shares one lock connection among its deciders; another process has its own.
        other._locks = AccountLocks(stripes)
        try:
            yield other
        finally:
            other.close()
            stripes.close()


def _decide(decider: OnlineDecider, account: str, way: str) -> DecisionRecord:
    if way == "decide":
        (made,) = decider.decide([DecideRequest(account)], now=NOW)
        return made
    (result,) = decider.decide_groups([DecideGroup([DecideRequest(account)])], now=NOW)
    if isinstance(result, BaseException):
        raise result
    (made,) = result
    return made


@pytest.mark.postgres
@pytest.mark.parametrize("way", ["decide", "decide_groups"])
def test_a_decision_whose_lock_connection_died_unnoticed_is_not_logged_beside_another_servers(
    pg_schema_url: str, playbook: Playbook, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The server ends the lock connection mid-decision (a restart, pg_terminate_backend) and no statement on it
    has failed since: another server takes the account's stripe and gives it a play; the first must not too."""
    pb = _with_exploration(playbook, method="none")
    with contextlib.ExitStack() as stack, open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        recs = seed_run(store, pb, control_every=0)
        other = stack.enter_context(_other_server(pg_schema_url, pb))
        decider = OnlineDecider(store, pb)
        shared = decider._locks.shared
        assert isinstance(shared, PostgresStripes)
        decide_one = decider._decide_one
        given: list[DecisionRecord] = []

        def lose_the_lock(*args: Any, **kwargs: Any) -> Any:
            made = decide_one(*args, **kwargs)  # the account read: no play in flight
            terminate_lock_connection(pg_schema_url, shared)
            given.append(_decide(other, account, way))  # the other server's lock is free: it decides at once
            return made

        try:
            account = next(r.account_id for r in recs if r.action_id != "none")
            monkeypatch.setattr(decider, "_decide_one", lose_the_lock)
            with pytest.raises(StoreError, match="were lost"):
                _decide(decider, account, way)
            assert given[0].action_id != "none"
            assert [d.decision_id for d in store.decisions(account_id=account)] == [given[0].decision_id]
            # With a new lock connection, the account is decided as usual: the other server's play is in flight.
            monkeypatch.setattr(decider, "_decide_one", decide_one)
            assert _decide(decider, account, way).action_id == "none"
        finally:
            decider.close()


@pytest.mark.postgres
def test_a_server_whose_stripe_was_freed_mid_commit_waits_for_that_commit_before_deciding(
    pg_schema_url: str, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock connection dies after the commit made sure of the lock and before it ends: another server may
    take the stripe at once, but reads the account only once the commit has ended, so it sees its play."""
    pb = _with_exploration(playbook, method="none")
    with contextlib.ExitStack() as stack, open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        recs = seed_run(store, pb, control_every=0)
        other = stack.enter_context(_other_server(pg_schema_url, pb))
        decider = OnlineDecider(store, pb)
        locks = decider._locks
        shared = locks.shared
        assert isinstance(shared, PostgresStripes)
        account = next(r.account_id for r in recs if r.action_id != "none")
        fence = locks.fence
        given: list[DecisionRecord] = []
        thread = threading.Thread(target=lambda: given.append(_decide(other, account, "decide")))

        def fence_then_lose_the_lock(stripes: Any) -> Any:
            made_sure = fence(stripes)
            assert made_sure is not None

            def then(cursor: Any) -> None:
                made_sure(cursor)
                terminate_lock_connection(pg_schema_url, shared)
                thread.start()
                thread.join(timeout=1.0)
                assert thread.is_alive()  # waiting for this commit

            return then

        try:
            monkeypatch.setattr(locks, "fence", fence_then_lose_the_lock)
            mine = _decide(decider, account, "decide")
            thread.join(timeout=30)
            assert mine.action_id != "none"
            assert [d.action_id for d in given] == ["none"]  # the play in flight was seen
        finally:
            decider.close()


_DECIDE_IN_A_PROCESS = """
import sys, threading, time
from datetime import datetime
from nextmove.engine.online import DecideGroup, DecideRequest, OnlineDecider
from nextmove.playbook import Playbook
from nextmove.store import open_store

url, playbook_json, start, now = sys.argv[1], sys.argv[2], float(sys.argv[3]), datetime.fromisoformat(sys.argv[4])
accounts = sys.argv[5:]
with open(playbook_json, encoding="utf-8") as f:
    playbook = Playbook.model_validate_json(f.read())
with open_store(url) as store:
    decider = OnlineDecider(store, playbook)
    for i, account in enumerate(accounts):
        barrier = threading.Barrier(3)
        def go(k):
            barrier.wait()
            at = start + 0.25 * i  # every process at once, account by account
            time.sleep(max(0.0, at - 0.01 - time.time()))
            while time.time() < at:
                pass
            if k == 0:
                decider.decide([DecideRequest(account)], now=now)
            else:
                (result,) = decider.decide_groups([DecideGroup([DecideRequest(account)])], now=now)
                if isinstance(result, BaseException):
                    raise result
        threads = [threading.Thread(target=go, args=(k,)) for k in range(3)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    decider.close()
"""


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_server_processes_on_one_store_never_give_one_account_two_plays_at_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, playbook: Playbook
) -> None:
    url = (
        f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    pb = _with_exploration(playbook, method="none")
    playbook_json = tmp_path / "playbook.json"
    playbook_json.write_text(pb.model_dump_json(), encoding="utf-8")
    with open_store(url) as store:
        recs = seed_run(store, pb, accounts=40, control_every=0)
        accounts = [r.account_id for r in recs if r.action_id != "none"][:16]
        start = time.time() + 8.0  # both processes loaded by then
        args = [url, str(playbook_json), str(start), NOW.isoformat(), *accounts]
        procs = [
            subprocess.Popen([sys.executable, "-c", _DECIDE_IN_A_PROCESS, *args], stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        logged = store.decisions()
    assert len(logged) == 6 * len(accounts)
    plays = {a: [d.action_id for d in logged if d.account_id == a and d.action_id != "none"] for a in accounts}
    assert {a: len(p) for a, p in plays.items()} == dict.fromkeys(accounts, 1)


def test_a_run_is_served_from_memory_once_loaded(
    store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    snap = decider.snapshot
    assert snap is not None
    assert snap.in_memory

    def no_reads(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a decision read a recommendation from the store")

    monkeypatch.setattr(store, "recommendations", no_reads)
    made = decider.decide([DecideRequest(r.account_id) for r in recs], now=NOW)
    assert [d.account_id for d in made] == [r.account_id for r in recs]
    assert snap.account("nope") is None


def test_a_run_larger_than_memory_allows_is_read_per_account(
    store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nextmove.engine.online as online

    recs = seed_run(store, playbook, accounts=12)
    monkeypatch.setattr(online, "_CACHE_ACCOUNTS", 5)
    monkeypatch.setattr(online, "_LOAD_PAGE", 2)
    decider = OnlineDecider(store, playbook)
    snap = decider.snapshot
    assert snap is not None
    assert not snap.in_memory
    made = decider.decide([DecideRequest(r.account_id) for r in recs], now=NOW)
    assert [d.account_id for d in made] == [r.account_id for r in recs]
    assert len(snap._cache) == 5


def test_a_run_is_loaded_whole_across_pages(store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch) -> None:
    import nextmove.engine.online as online

    recs = seed_run(store, playbook, accounts=11)
    monkeypatch.setattr(online, "_LOAD_PAGE", 2)
    snap = OnlineDecider(store, playbook).snapshot
    assert snap is not None
    assert snap.in_memory
    assert all(snap.account(r.account_id) is not None for r in recs)
    assert snap._views is not None
    assert len(snap._views) == 11


def test_draw_index_draws_each_option_as_often_as_its_probability_and_never_a_zero_one() -> None:
    rng = np.random.default_rng(7)
    probs = np.array([0.0, 0.5, 0.0, 0.2, 0.3, 0.0])
    counts = np.bincount([draw_index(probs, rng) for _ in range(20_000)], minlength=len(probs)) / 20_000
    assert counts[[0, 2, 5]].tolist() == [0.0, 0.0, 0.0]
    assert counts == pytest.approx(probs, abs=0.015)


# ---- agreement with the run: variants, hold-backs, capacity -------------------------------------


def _alt(action_id: str, variant: str | None, value: float, why: str, reason: str) -> dict[str, object]:
    return {
        "action_id": action_id,
        "variant": variant,
        "value_usd": value,
        "low": value - 300.0,
        "high": value + 300.0,
        "why": why,
        "reason": reason,
    }


def _serve_one(
    store: Store,
    playbook: Playbook,
    *,
    action_id: str,
    variant: str | None,
    arm: str,
    value: float,
    default: str,
    model_action_id: str,
    alternatives: list[dict[str, object]],
    default_why: str = "",
) -> str:
    """Save a run of one account ``acct-x`` as the run writes it (variants, run codes), and return its id."""
    evidence = {
        "schema": 1,
        "action_id": action_id,
        "variant": variant,
        "arm": arm,
        "propensity": 1.0 if arm == "control" else 0.05,
        "model_action_id": model_action_id,
        "default_action_id": default,
        "differs_from_default": action_id != default,
        "default_why": default_why,
        "value_usd": value,
        "projected": [],
        "signals": [],
        "comparables": [],
        "summary": f"{action_id} for acct-x",
    }
    rec = RecommendationRecord(
        run_id="run-x",
        account_id="acct-x",
        action_id=action_id,
        variant=variant,
        arm=arm,
        propensity=float(evidence["propensity"]),  # type: ignore[arg-type]
        expected_value_usd=value,
        value_low_usd=value - 300.0,
        value_high_usd=value + 300.0,
        default_action_id=default,
        differs_from_default=action_id != default,
        owner="ana",
        evidence=evidence,
        alternatives=alternatives,
        model_version="effect-test",
    )
    run = RunRecord(
        run_id="run-x",
        book_source="tests",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
        created_at=AS_OF + timedelta(hours=1),
        finished_at=AS_OF + timedelta(hours=2),
        summary={"accounts": 1},
    )
    store.save_run(run, [rec])
    return "acct-x"


def test_a_control_account_whose_default_has_variants_gets_the_run_s_variant_of_it(
    store: Store, playbook: Playbook
) -> None:
    # nurture_email has variants morning and afternoon; a lifecycle default gets its first (default_variant).
    account = _serve_one(
        store,
        playbook,
        action_id="nurture_email",
        variant="morning",
        arm="control",
        value=120.0,
        default="nurture_email",
        model_action_id="upsell_call",
        alternatives=[
            _alt("nurture_email", "afternoon", 130.0, "rule", "held back: this account is in the control cohort"),
            _alt("upsell_call", None, 900.0, "rule", "held back: this account is in the control cohort"),
        ],
        default_why="Control group: follows the lifecycle playbook, whose default is Product-value nurture sequence.",
    )
    (d,) = OnlineDecider(store, playbook).decide([DecideRequest(account)], now=NOW)
    assert (d.arm, d.action_id, d.variant, d.propensity) == ("control", "nurture_email", "morning", 1.0)
    assert d.context["propensities"]["nurture_email:morning"] == 1.0


def _explored_run(store: Store, playbook: Playbook, code: str = "rule") -> str:
    """An account the run drew to explore: the learned choice (upsell_call, the lifecycle default too) held back.

    ``code`` is how the run coded the hold-back: ``held_back``, or ``rule`` (runs stored before it had a code).
    """
    held = "held back: this account was drawn to explore (8% of decisions)"
    return _serve_one(
        store,
        playbook,
        action_id="webinar_invite",
        variant=None,
        arm="explore",
        value=300.0,
        default="upsell_call",
        model_action_id="upsell_call",
        alternatives=[
            _alt("upsell_call", None, 5000.0, code, held),
            # Worth more than the pick too, but the rule is a real eligibility rule: blocked online as in the run.
            _alt("cross_sell_demo", None, 600.0, "rule", "not eligible: tenure_days >= 120"),
            _alt("nurture_email", "morning", 100.0, "lower_value", "projected to be worth less"),
            # Held back in other words: nurture_email passed eligibility (its other variant lost on value).
            _alt("nurture_email", "afternoon", 700.0, code, "set aside for the draw"),
        ],
        default_why=f"The lifecycle default, Seat expansion call, is not allowed ({held}).",
    )


@pytest.mark.parametrize("code", ["held_back", "rule"])
def test_the_run_s_exploration_hold_back_does_not_block_the_held_back_action_online(
    store: Store, playbook: Playbook, code: str
) -> None:
    pb = _with_exploration(playbook, method="none")
    account = _explored_run(store, pb, code)
    (d,) = OnlineDecider(store, pb).decide([DecideRequest(account)], now=NOW)
    assert (d.arm, d.action_id, d.propensity) == ("model", "upsell_call", 1.0)
    assert d.context["propensities"]["cross_sell_demo"] == 0.0
    assert next(a for a in d.alternatives if a["action_id"] == "cross_sell_demo")["why"] == "rule"
    # The receipt no longer says the default was held back: it is what the account gets.
    assert "held back" not in d.evidence["default_why"]
    assert d.evidence["default_why"] == "Same as the lifecycle playbook's default, Seat expansion call."
    assert not any("held back" in a["reason"] for a in d.alternatives)


def test_an_explored_account_may_draw_the_action_the_run_held_back(
    store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nextmove.engine.online as online

    pb = _with_exploration(playbook, method="epsilon", epsilon=0.2)
    account = _explored_run(store, pb)
    # Options in the run's order: webinar_invite, upsell_call, cross_sell_demo, nurture_email:morning, …
    monkeypatch.setattr(online, "draw_index", lambda probs, rng: 3)
    (d,) = OnlineDecider(store, pb).decide([DecideRequest(account)], now=NOW)
    probs = d.context["propensities"]
    assert probs["upsell_call"] == pytest.approx(0.8 + 0.2 / 5)  # the best of five allowed options
    assert probs["nurture_email:afternoon"] == pytest.approx(0.2 / 5)
    assert probs["cross_sell_demo"] == 0.0
    assert (d.arm, d.action_id, d.variant) == ("explore", "nurture_email", "morning")
    # The better option lost to this decision's draw, as the run codes a hold-back, not on value.
    upsell = next(a for a in d.alternatives if a["action_id"] == "upsell_call")
    assert upsell["why"] == "held_back"
    assert upsell["reason"].startswith("held back: this decision explores")


def test_an_option_the_run_lost_to_capacity_is_not_said_to_lack_capacity_online(
    store: Store, playbook: Playbook
) -> None:
    pb = _with_exploration(playbook, method="none")
    short = "worth more, but not enough of ana's hours is left for it"
    account = _serve_one(
        store,
        pb,
        action_id="webinar_invite",
        variant=None,
        arm="model",
        value=200.0,
        default="upsell_call",
        model_action_id="webinar_invite",
        alternatives=[
            _alt("upsell_call", None, 900.0, "capacity", short),
            _alt("cross_sell_demo", None, 600.0, "capacity", short),
            _alt("nurture_email", "morning", 100.0, "lower_value", "projected to be worth less"),
        ],
    )
    decider = OnlineDecider(store, pb)
    # Capacity is the batch's limit and binds no single decision online: the best option is given,
    # and an option the run lost to capacity lost here on value, which its row says.
    (d,) = decider.decide([DecideRequest(account)], now=NOW)
    assert (d.arm, d.action_id) == ("model", "upsell_call")
    row = next(a for a in d.alternatives if a["action_id"] == "cross_sell_demo")
    assert (row["why"], row["reason"]) == ("lower_value", "projected to be worth less than the recommended action")


def test_default_why_of_a_decision_that_is_not_the_run_s_names_the_default_even_without_its_value(
    store: Store, playbook: Playbook
) -> None:
    pb = _with_exploration(playbook, method="none")
    held = "held back: this account was drawn to explore (8% of decisions)"
    account = _serve_one(
        store,
        pb,
        action_id="webinar_invite",
        variant=None,
        arm="explore",
        value=200.0,
        default="health_check_call",  # not among the runner-ups the run kept
        model_action_id="upsell_call",
        alternatives=[_alt("upsell_call", None, 900.0, "rule", held)],
        default_why=f"The lifecycle default, CSM health-check call, is not allowed ({held}).",
    )
    (d,) = OnlineDecider(store, pb).decide([DecideRequest(account)], now=NOW)
    assert (d.arm, d.action_id) == ("model", "upsell_call")
    assert d.evidence["default_why"] == (
        "The lifecycle default is CSM health-check call; Seat expansion call is worth $900."
    )


def _outcome(decision: Any, event_id: str, value_usd: float, ts: datetime) -> FeedbackEvent:
    """An outcome event naming ``decision`` and the dollars realised, as the API stores it."""
    return FeedbackEvent(
        event_id=event_id,
        account_id=decision.account_id,
        kind="outcome",
        ts=ts,
        action_id=decision.action_id,
        payload={
            "decision_id": decision.decision_id,
            "outcome": {"kind": "expansion", "value": 0.0},
            "value_usd": value_usd,
        },
    )


def test_absurd_outcomes_kept_by_an_older_server_poison_no_decision_after_a_restart(
    store: Store, playbook: Playbook
) -> None:
    """±1e300 USD outcomes (accepted before the API bounded value_usd) made one action's correction NaN for good.

    Its every Thompson draw was NaN, argmax took it: it won ~99.6 % of decisions, blocked or not (a
    snoozed account, a play in flight), and the corrections are rebuilt from the stored events at each start.
    """
    recs = seed_run(store, playbook, accounts=30, control_every=0)
    decider = OnlineDecider(store, playbook)
    poisoned = next(
        d
        for r in recs
        for d in decider.decide([DecideRequest(r.account_id)], now=NOW)
        if d.action_id != "none" and d.arm == "model"
    )
    snoozed = next(r.account_id for r in recs if r.account_id != poisoned.account_id)
    store.add_feedback(
        [
            _outcome(poisoned, "absurd-up", 1e300, NOW + timedelta(days=1)),
            _outcome(poisoned, "absurd-down", -1e300, NOW + timedelta(days=1)),
            _snooze(snoozed, "quiet-1", NOW + timedelta(days=365), ts=NOW + timedelta(days=1)),
        ]
    )
    restarted = OnlineDecider(store, playbook)
    later = NOW + timedelta(days=2)
    (quiet,) = restarted.decide([DecideRequest(snoozed)], now=later)
    assert quiet.action_id == "none"
    (again,) = restarted.decide([DecideRequest(poisoned.account_id)], now=later)
    assert again.action_id == "none"  # its play is in flight
    others = [r.account_id for r in recs if r.account_id not in (snoozed, poisoned.account_id)]
    made = restarted.decide([DecideRequest(a) for a in others], now=later)
    for d in made:
        assert all(np.isfinite(p) for p in d.context["propensities"].values())
        assert np.isfinite(d.expected_value_usd)
    share = sum(d.action_id == poisoned.action_id for d in made) / len(made)
    assert share < 0.6, share
    assert restarted.learner.correction(poisoned.action_id).outcomes == 0


def test_a_batch_naming_one_account_twice_logs_one_play(store: Store, playbook: Playbook) -> None:
    """Each copy was decided before any was logged: three copies, three plays, past max_actions_per_window = 1."""
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, control_every=0)
    decider = OnlineDecider(store, pb)
    account, other = recs[1].account_id, recs[2].account_id
    made = decider.decide([DecideRequest(account), DecideRequest(other), DecideRequest(account)], now=NOW)
    assert [d.account_id for d in made] == [account, other, account]
    assert made[0].action_id != "none"
    assert made[2].action_id == "none"
    assert any(a["why"] == "in_flight" for a in made[2].alternatives)
    assert made[1].action_id != "none"  # another account is not held back by it
    ((first, second),) = decider.decide_groups([DecideGroup([DecideRequest(recs[3].account_id)] * 2)], now=NOW)
    assert first.action_id != "none"
    assert second.action_id == "none"
    plays = [d for d in store.decisions() if d.action_id != "none"]
    assert sorted(d.account_id for d in plays) == sorted([account, other, recs[3].account_id])
    # The same request_id twice in a batch is one request: the same decision, logged once.
    twice = DecideRequest(recs[4].account_id, request_id="crm-twice")
    one, same = decider.decide([twice, twice], now=NOW)
    assert same == one
    assert len(store.decisions(account_id=recs[4].account_id)) == 1


def test_an_outcome_dated_before_its_decision_is_stored_but_not_learned(store: Store, playbook: Playbook) -> None:
    """An outcome dated before the decision it names cannot be its outcome: kept, as all feedback, but not learned."""
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, control_every=0)
    decider = OnlineDecider(store, pb)
    (made,) = decider.decide([DecideRequest(recs[5].account_id)], now=NOW)
    early = _outcome(made, "early-1", made.expected_value_usd - 600.0, NOW - timedelta(days=700))
    receipt = send_feedback(store, decider, [early])
    assert (receipt.stored, receipt.learned) == (1, 0)
    assert decider.learner.corrections() == []
    assert OnlineDecider(store, pb).learner.corrections() == []  # nor when rebuilt at a restart
    assert "early-1" in {e.event_id for e in store.feedback(account_id=made.account_id)}
    on_time = _outcome(made, "late-1", made.expected_value_usd - 600.0, NOW + timedelta(days=30))
    assert send_feedback(store, decider, [on_time]).learned == 1
    assert OnlineDecider(store, pb).learner.correction(made.action_id).outcomes == 1


def test_an_outcome_sent_as_a_date_is_the_whole_day_and_stays_so_when_rebuilt(store: Store, playbook: Playbook) -> None:
    """The day of an outcome dated by a date alone is read whole, from what was stored, at a restart too; the same
    UTC midnight sent as a time is that instant, before a decision made later that day."""
    pb = _with_exploration(playbook, method="none")
    recs = seed_run(store, pb, control_every=0)
    decider = OnlineDecider(store, pb)
    afternoon = NOW + timedelta(hours=14)
    made = [decider.decide([DecideRequest(r.account_id)], now=afternoon)[0] for r in recs[5:7]]
    assert [d.action_id != "none" for d in made] == [True, True]
    as_time = _outcome(made[0], "midnight-as-time", made[0].expected_value_usd - 100.0, NOW)
    dated = _outcome(made[1], "midnight-as-date", made[1].expected_value_usd - 100.0, NOW)
    dated = dataclasses.replace(dated, payload={**dated.payload, TS_IS_DATE: True})
    assert send_feedback(store, decider, [as_time]).learned == 0
    assert send_feedback(store, decider, [dated]).learned == 1
    rebuilt = OnlineDecider(store, pb).learner
    assert rebuilt.correction(made[1].action_id).outcomes == 1
    assert sum(c.outcomes for c in rebuilt.corrections()) == 1


def test_an_exploring_decision_holds_back_only_the_model_s_pick(
    store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online as in the run: an option worth more than the draw but less than the model's pick was not held back,
    and a lifecycle default that is not the model's pick was not "set aside to explore"."""
    import nextmove.engine.online as online

    pb = _with_exploration(playbook, method="epsilon", epsilon=0.2)
    account = _serve_one(
        store,
        pb,
        action_id="webinar_invite",
        variant=None,
        arm="model",
        value=300.0,
        default="nurture_email",
        model_action_id="webinar_invite",
        alternatives=[
            _alt("upsell_call", None, 5000.0, "lower_value", "projected to be worth less"),
            _alt("nurture_email", "morning", 100.0, "lower_value", "projected to be worth less"),
            _alt("nurture_email", "afternoon", 700.0, "lower_value", "projected to be worth less"),
        ],
    )
    # Options in the run's order: webinar_invite (300), upsell_call (5000, the model's pick), nurture_email: ….
    monkeypatch.setattr(online, "draw_index", lambda probs, rng: 0)
    (d,) = OnlineDecider(store, pb).decide([DecideRequest(account)], now=NOW)
    assert (d.arm, d.action_id) == ("explore", "webinar_invite")
    rows = {(a["action_id"], a["variant"]): a for a in d.alternatives}
    assert rows[("upsell_call", None)]["why"] == "held_back"
    afternoon = rows[("nurture_email", "afternoon")]
    assert afternoon["why"] == "lower_value"
    assert (
        afternoon["reason"]
        == "projected to be worth no more than the model's choice for this account, Seat expansion call"
    )
    assert "set aside to explore" not in d.evidence["default_why"]
    assert d.evidence["default_why"] == (
        "The lifecycle default, Product-value nurture sequence, worth $700"
        " against $300 for Best-practice webinar invitation."
    )
