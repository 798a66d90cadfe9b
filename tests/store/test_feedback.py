"""Contract tests: feedback events are stored once, whatever is resent or sent concurrently."""

from __future__ import annotations

import dataclasses
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from nextmove.errors import ConflictError
from nextmove.store import AuditEntry, DecisionRecord, FeedbackEvent, RecommendationRecord, RunRecord, Store

T0 = datetime(2024, 6, 3, 9, 0, 0, 500, tzinfo=UTC)


def make_event(i: int, **changes: object) -> FeedbackEvent:
    event = FeedbackEvent(
        event_id=f"evt-{i}",
        account_id=f"acct-{i % 3}",
        kind="done",
        ts=T0 + timedelta(minutes=i),
        run_id="r1" if i % 2 else "r2",
        action_id="qbr",
        received_at=T0 + timedelta(days=1),
    )
    return dataclasses.replace(event, **changes)


def test_add_feedback_round_trips_events(store: Store) -> None:
    events = [
        make_event(1, reason="customer asked", payload={"arr_delta": 1250.5, "tags": ["a", None]}),
        make_event(2, kind="outcome", action_id=None, run_id=None, payload={"kind": "renewal"}),
        make_event(3, kind="snoozed", payload={"until": "2024-07-01", "nested": {"x": [1.5]}}),
        make_event(4, kind="dismissed", reason="already in touch"),
    ]
    assert store.add_feedback(events) == 4
    assert store.feedback() == events


def test_add_feedback_ignores_an_event_sent_twice(store: Store) -> None:
    assert store.add_feedback([make_event(1)]) == 1
    assert store.add_feedback([make_event(1)]) == 0
    assert store.feedback() == [make_event(1)]
    assert store.count_feedback() == 1


def test_add_feedback_writes_its_audit_entries_even_for_known_events(store: Store) -> None:
    entry = AuditEntry(action="change", method="POST", path="/v1/feedback", status=200, resource="feedback")
    store.add_feedback([make_event(1)], audit=[entry])
    store.add_feedback([make_event(1)], audit=[entry])
    store.add_feedback([], audit=[entry])
    assert store.audit_log() == [entry, entry, entry]


def test_add_feedback_counts_duplicates_in_a_batch_once(store: Store) -> None:
    assert store.add_feedback([make_event(1), make_event(2)]) == 2
    batch = [
        make_event(2, received_at=T0),
        make_event(3),
        make_event(3),
        make_event(4),
        # Sent without a time, a retry is stamped anew: it is still the same event.
        make_event(1, ts=T0 + timedelta(days=3)),
    ]
    assert store.add_feedback(batch) == 2
    assert store.feedback() == [make_event(i) for i in range(1, 5)]


@pytest.mark.parametrize(
    "changes",
    [
        {"account_id": "acct-other"},
        {"kind": "dismissed"},
        {"reason": "resent"},
        {"action_id": "ebr"},
        {"run_id": "r9"},
        {"payload": {"value_usd": -50_000.0}},
    ],
)
def test_add_feedback_refuses_an_event_id_stored_for_another_event_and_writes_nothing(
    store: Store, changes: dict[str, object]
) -> None:
    entry = AuditEntry(action="change", method="POST", path="/v1/feedback", status=200, resource="feedback")
    assert store.add_feedback([make_event(1)]) == 1
    with pytest.raises(ConflictError, match="event_id 'evt-1' is already used for another event") as caught:
        store.add_feedback([make_event(2), make_event(1, **changes)], audit=[entry])
    assert "acct-1" not in str(caught.value)  # the stored event's account is not revealed
    assert store.feedback() == [make_event(1)]
    assert store.audit_log() == []


def test_add_feedback_refuses_two_events_under_one_id_in_a_batch(store: Store) -> None:
    with pytest.raises(ConflictError, match="'evt-3'"):
        store.add_feedback([make_event(3), make_event(4), make_event(3, account_id="acct-other")])
    assert store.feedback() == []


def test_add_feedback_of_nothing_stores_nothing(store: Store) -> None:
    assert store.add_feedback([]) == 0
    assert store.feedback() == []


def test_add_feedback_stamps_received_at_when_missing(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.add_feedback([make_event(1, received_at=None)])
    (stored,) = store.feedback()
    assert stored.received_at is not None
    assert stored.received_at.tzinfo == UTC
    assert stored.received_at >= before


def test_add_feedback_stores_each_event_once_under_concurrent_senders(store: Store) -> None:
    events = [make_event(i) for i in range(300)]

    def send(seed: int) -> int:
        shuffled = events.copy()
        random.Random(seed).shuffle(shuffled)
        return sum(store.add_feedback(shuffled[i : i + 50]) for i in range(0, 300, 50))

    with ThreadPoolExecutor(max_workers=4) as pool:
        stored = list(pool.map(send, range(4)))
    assert sum(stored) == 300
    assert len(store.feedback()) == 300


def test_add_feedback_stores_large_batches(store: Store) -> None:
    events = [make_event(i) for i in range(12_000)]
    assert store.add_feedback(events) == 12_000
    assert store.add_feedback(events[::-1]) == 0


def test_feedback_filters_by_account_and_run(store: Store) -> None:
    events = [make_event(i) for i in range(12)]
    store.add_feedback(events)
    assert store.feedback(account_id="acct-1") == [e for e in events if e.account_id == "acct-1"]
    assert store.feedback(run_id="r1") == [e for e in events if e.run_id == "r1"]
    assert store.feedback(account_id="acct-2", run_id="r2") == [
        e for e in events if e.account_id == "acct-2" and e.run_id == "r2"
    ]
    assert store.feedback(account_id="nobody") == []


def test_hold_events_read_snoozes_and_dismissals_with_the_actions_they_name(store: Store) -> None:
    store.save_run(
        RunRecord(run_id="r1", book_source="tests", playbook_hash="h", status="succeeded"),
        [
            RecommendationRecord(
                run_id="r1", account_id=account, action_id=action, arm="model", propensity=1.0, expected_value_usd=1.0
            )
            for account, action in (("acct-0", "demo"), ("acct-1", "qbr"))
        ],
    )
    store.log_decisions(
        [
            DecisionRecord(
                decision_id="d-1",
                account_id="acct-1",
                action_id="call",
                arm="model",
                propensity=1.0,
                expected_value_usd=1.0,
                ts=T0,
            )
        ]
    )
    snooze = make_event(1, kind="snoozed", account_id="acct-0", action_id=None, run_id=None, payload={"x": 1})
    by_decision = make_event(2, kind="dismissed", account_id="acct-1", action_id=None, run_id=None, reason="no")
    by_decision = dataclasses.replace(by_decision, payload={"decision_id": "d-1"})
    by_run = make_event(3, kind="dismissed", account_id="acct-0", action_id=None, run_id="r1", reason="no")
    unknown = make_event(4, kind="dismissed", account_id="acct-1", run_id="r9", payload={"decision_id": "d-9"})
    done = make_event(5, kind="done", account_id="acct-0")
    store.add_feedback([unknown, done, by_run, by_decision, snooze])

    held = store.hold_events()
    assert [h.event for h in held] == [snooze, by_decision, by_run, unknown]  # oldest first; no done, no outcome
    assert [(h.decision_action_id, h.run_action_id) for h in held] == [
        (None, None),
        ("call", None),
        (None, "demo"),
        (None, None),
    ]
    assert [h.event for h in store.hold_events("acct-1")] == [by_decision, unknown]
    assert [h.event for h in store.hold_events(until=by_decision.ts)] == [snooze, by_decision]
    assert store.hold_events("acct-0", until=T0) == []
    assert store.hold_events("nobody") == []


def test_done_events_read_one_time_range_with_the_actions_they_name(store: Store) -> None:
    store.save_run(
        RunRecord(run_id="r1", book_source="tests", playbook_hash="h", status="succeeded"),
        [
            RecommendationRecord(
                run_id="r1", account_id="acct-0", action_id="demo", arm="model", propensity=1.0, expected_value_usd=1.0
            )
        ],
    )
    store.log_decisions(
        [
            DecisionRecord(
                decision_id="d-1",
                account_id="acct-1",
                action_id="call",
                arm="model",
                propensity=1.0,
                expected_value_usd=1.0,
                ts=T0,
            )
        ]
    )
    named = make_event(1, account_id="acct-2")
    by_run = make_event(3, account_id="acct-0", action_id=None, run_id="r1")
    by_decision = make_event(4, account_id="acct-1", action_id=None, run_id=None, payload={"decision_id": "d-1"})
    snooze = make_event(5, kind="snoozed")
    late = make_event(9, account_id="acct-0")
    store.add_feedback([late, snooze, by_decision, by_run, named])

    done = store.done_events(before=late.ts)
    assert [h.event for h in done] == [named, by_run, by_decision]  # oldest first; only done, before ``before``
    assert [(h.decision_action_id, h.run_action_id) for h in done] == [(None, None), (None, "demo"), ("call", None)]
    assert [h.event for h in store.done_events(after=named.ts, before=late.ts + timedelta(seconds=1))] == [
        by_run,
        by_decision,
        late,
    ]
    assert store.done_events(after=late.ts, before=late.ts + timedelta(days=1)) == []
