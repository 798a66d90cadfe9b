"""Contract tests: online decisions are logged with their propensities, once per request id."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from nextmove.errors import ConfigError, ConflictError, NotFoundError, StoreError
from nextmove.store import AuditEntry, DecisionRecord, Store

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def make_decision(i: int, **changes: object) -> DecisionRecord:
    decision = DecisionRecord(
        decision_id=f"d-{i}",
        account_id=f"acct-{i % 2}",
        action_id="qbr" if i % 3 else "none",
        arm="model",
        propensity=0.9,
        expected_value_usd=100.0 * i,
        ts=T0 + timedelta(hours=i),
        value_low_usd=-5.0,
        value_high_usd=250.5,
        run_id="r1",
        owner="maria",
        context={"propensities": {"qbr": 0.9, "none": 0.1}, "signals": {"nps": 7.0}},
        evidence={"schema": 1, "summary": "because"},
        alternatives=[{"action_id": "none", "value_usd": 0.0}],
        key_id="k1",
    )
    return dataclasses.replace(decision, **changes)


def test_log_decisions_round_trips_newest_first(store: Store) -> None:
    decisions = [make_decision(i) for i in range(4)]
    assert store.log_decisions(decisions) == decisions
    assert store.decisions() == decisions[::-1]
    assert store.decisions(account_id="acct-1") == [decisions[3], decisions[1]]
    assert store.decisions(since=T0 + timedelta(hours=2)) == [decisions[3], decisions[2]]
    assert store.decisions(limit=1, offset=1) == [decisions[2]]
    assert store.get_decision("d-2") == decisions[2]


def test_log_decisions_returns_the_logged_decision_for_a_known_request_id(store: Store) -> None:
    first = make_decision(1, request_id="req-1")
    assert store.log_decisions([first]) == [first]
    retry = make_decision(2, request_id="req-1", action_id="other", account_id=first.account_id)
    fresh = make_decision(3, request_id="req-3")
    assert store.log_decisions([retry, fresh, dataclasses.replace(fresh, decision_id="d-x")]) == [first, fresh, fresh]
    assert {d.decision_id for d in store.decisions()} == {"d-1", "d-3"}


def test_log_decisions_of_one_request_id_at_once_log_one_decision_and_return_it_to_every_caller(
    store: Store,
) -> None:
    # Two servers sharing a PostgreSQL store: both looked the request id up, found nothing, and
    # the second insert hit the unique index (503 "duplicate key value ... uq_decisions_request_id").
    callers, rounds = 8, 15
    entry = AuditEntry(action="change", method="POST", path="/v1/decide", status=200, resource="decide:acct-0")
    for r in range(rounds):
        barrier = threading.Barrier(callers)

        def log(i: int, r: int = r, barrier: threading.Barrier = barrier) -> str:
            # Each caller's decisions have ids of their own, as each server makes its own.
            other = make_decision(2, decision_id=f"o-{r}-{i}", request_id=f"other-{r}")
            mine = make_decision(0, decision_id=f"d-{r}-{i}", request_id=f"req-{r}")
            barrier.wait()
            logged = store.log_decisions([other, mine] if i % 2 else [mine], audit=[entry])
            return logged[-1].decision_id

        with ThreadPoolExecutor(callers) as pool:
            answers = list(pool.map(log, range(callers)))
        assert len(set(answers)) == 1, answers
        assert [d.decision_id for d in store.decisions() if d.request_id == f"req-{r}"] == answers[:1]
    assert len(store.decisions()) == 2 * rounds
    assert len(store.audit_log(limit=None)) == callers * rounds


def test_log_decisions_refuses_a_request_id_used_for_another_account_and_writes_nothing(store: Store) -> None:
    first = make_decision(1, request_id="req-1")  # acct-1
    store.log_decisions([first])
    other = make_decision(2, request_id="req-1")  # acct-0
    with pytest.raises(ConflictError, match="request_id 'req-1' was already used for another request") as caught:
        store.log_decisions([make_decision(4, request_id="req-4"), other])
    assert "acct-1" not in str(caught.value)
    # Twice in one call, for two accounts: a conflict too, not the first account's decision.
    with pytest.raises(ConflictError):
        store.log_decisions([make_decision(5, request_id="req-5"), make_decision(6, request_id="req-5")])
    assert [d.decision_id for d in store.decisions()] == ["d-1"]


def test_log_decisions_refuses_a_decision_id_twice_and_writes_nothing(store: Store) -> None:
    store.log_decisions([make_decision(1)])
    with pytest.raises(StoreError, match="could not log 2 decisions"):
        store.log_decisions([make_decision(2), make_decision(1)])
    assert [d.decision_id for d in store.decisions()] == ["d-1"]


def test_log_decisions_writes_audit_entries_in_the_same_transaction(store: Store) -> None:
    entry = AuditEntry(action="change", method="POST", path="/v1/decide", status=200, key_id="k1", resource="a")
    store.log_decisions([make_decision(1)], audit=[entry])
    assert store.audit_log() == [entry]


def test_get_decision_of_an_unknown_id_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no decision 'nope'"):
        store.get_decision("nope")


def test_decision_record_rejects_a_bad_propensity() -> None:
    with pytest.raises(ConfigError, match=r"DecisionRecord\.propensity"):
        make_decision(1, propensity=1.2)


def test_activity_lists_plays_decided_done_and_dismissed_since_a_time(store: Store) -> None:
    from nextmove.store import FeedbackEvent

    # acct-0: d-0 (none), d-2 (its "sms" variant), d-4; acct-1: d-1, d-3, d-5
    store.log_decisions([make_decision(i, **({"variant": "sms"} if i == 2 else {})) for i in range(6)])
    store.add_feedback(
        [
            FeedbackEvent(event_id="e1", account_id="acct-0", kind="done", ts=T0 + timedelta(hours=5), action_id="qbr"),
            FeedbackEvent(
                event_id="e2",
                account_id="acct-0",
                kind="dismissed",
                ts=T0 + timedelta(hours=6),
                reason="busy",
                payload={"decision_id": "d-4"},
            ),
            FeedbackEvent(event_id="e3", account_id="acct-0", kind="snoozed", ts=T0 + timedelta(hours=7)),
            FeedbackEvent(event_id="e4", account_id="acct-1", kind="done", ts=T0 + timedelta(hours=7)),
        ]
    )
    found = store.activity("acct-0", T0 + timedelta(hours=1))
    assert [(a.source, a.record_id, a.kind, a.decision_id, a.variant) for a in found] == [
        ("decision", "d-2", "decided", None, "sms"),
        ("decision", "d-4", "decided", None, None),
        ("feedback", "e1", "done", None, None),
        ("feedback", "e2", "dismissed", "d-4", None),
    ]
    assert [a.record_id for a in store.activity("acct-0", T0 + timedelta(hours=4, minutes=30))] == ["e1", "e2"]


def test_activity_returns_the_times_logged_in_utc(store: Store) -> None:
    store.log_decisions([make_decision(2), make_decision(4)])
    found = store.activity("acct-0", T0)
    assert [(a.record_id, a.ts) for a in found] == [("d-2", T0 + timedelta(hours=2)), ("d-4", T0 + timedelta(hours=4))]
    assert all(a.ts.utcoffset() == timedelta(0) for a in found)


def test_log_decisions_refuses_a_value_json_cannot_hold_and_writes_nothing(store: Store) -> None:
    entry = AuditEntry(action="change", method="POST", path="/v1/decide", status=200, key_id="k1", resource="a")
    with pytest.raises(StoreError, match="JSON"):
        store.log_decisions([make_decision(1), make_decision(2, evidence={"value": float("nan")})], audit=[entry])
    assert store.decisions() == []
    assert store.audit_log() == []
