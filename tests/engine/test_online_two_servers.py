"""Two servers on one store: what each decides counts in the other's capacities at once, not at its next refresh.

Each test opens the store twice, as two ``nextmove serve`` processes do, with a decider on each,
on a SQLite file and on PostgreSQL. Neither decider refreshes unless the test says so: a server's
refresh loop runs every few seconds, and decisions come in between. Decisions are made at the
clock's time, as a server makes them: a refresh reads the decisions of the last few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

# The store tests' fixtures (a SQLite file and a PostgreSQL schema per test) serve these tests too.
from tests.engine.test_online_capacity import _allocated, _playbook, _upsold
from tests.store.conftest import pg_admin_url, pg_schema_url, store_url  # noqa: F401

from nextmove.engine.online import DecideRequest, OnlineDecider
from nextmove.playbook import Playbook
from nextmove.store import FeedbackEvent, RecommendationRecord, RunRecord, Store, open_store
from nextmove.store.records import utcnow


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[Store, Store]]:  # noqa: F811
    """The same store opened twice: one server's, the other's."""
    with open_store(store_url) as one, open_store(store_url) as other:
        yield one, other


def _save_run(store: Store, playbook: Playbook, recs: list[RecommendationRecord]) -> None:
    as_of = utcnow() - timedelta(days=1)
    run = RunRecord(
        run_id="run-1",
        book_source="tests",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=as_of,
        created_at=as_of + timedelta(hours=1),
        finished_at=as_of + timedelta(hours=2),
        summary={"accounts": len(recs)},
    )
    store.save_run(run, recs)


def _used(store: Store, recs: list[RecommendationRecord]) -> dict[str, float]:
    """What the run and every decision logged use, from the store: an account decided online uses its plays only."""
    plays: dict[str, list[str]] = {}
    for d in store.decisions():
        plays.setdefault(d.account_id, []).append(d.action_id)
    used = {"upsells": 0.0, "sales_usd": 0.0, "hours:ana": 0.0, "hours:ben": 0.0}
    for rec in recs:
        for action in plays.get(rec.account_id, [rec.action_id]):
            if action == "upsell":
                used["upsells"] += 1
                used["sales_usd"] += 100.0
                used[f"hours:{rec.owner}"] += 2.0
    return used


def test_an_account_the_other_server_gave_a_play_is_not_released_again(stores: tuple[Store, Store]) -> None:
    """The second server answers `none` (a play is in flight) and counts the first server's play, at once."""
    one_store, other_store = stores
    pb = _playbook(max_per_run=3)
    recs = _allocated(10, {0, 1, 2})  # the run gave its three units
    _save_run(one_store, pb, recs)
    one, other = OnlineDecider(one_store, pb), OnlineDecider(other_store, pb)
    try:
        assert _upsold(one.decide([DecideRequest("acct-0")])) == ["acct-0"]  # keeps the run's unit
        (again,) = other.decide([DecideRequest("acct-0")])
        assert again.action_id == "none"
        made = other.decide([DecideRequest(f"acct-{i}") for i in range(3, 10)])
        assert _upsold(made) == []  # acct-0's unit is its play's, not free again
        assert _used(one_store, recs)["upsells"] == 3.0
        other.refresh()  # its count is the store's once refreshed
        assert other.snapshot is not None
        assert other.snapshot.capacity is not None
        assert other.snapshot.capacity.usage()["volume:upsell"]["used"] == 3.0
    finally:
        one.close()
        other.close()


def test_two_servers_deciding_every_account_stay_within_every_capacity(stores: tuple[Store, Store]) -> None:
    """Every account decided on both servers, each first on half of them: no capacity is used twice.

    The hunt that found it (two servers, 2,000 accounts): a marketing budget of 1,500 handed out
    2,980, a volume of 100 went to 149 accounts, every owner's 10 hours became 20.
    """
    one_store, other_store = stores
    # Three upsells in all ($100 and 2 hours each): $300 of sales budget, 4 hours a week per owner.
    pb = _playbook(max_per_run=3, sales_budget=300.0, hours_per_week=4.0)
    recs = _allocated(16, {0, 1, 2}, owners=("ana", "ben"))  # ana: 0 and 2, ben: 1
    _save_run(one_store, pb, recs)
    one, other = OnlineDecider(one_store, pb), OnlineDecider(other_store, pb)
    limits = {"upsells": 3.0, "sales_usd": 300.0, "hours:ana": 4.0, "hours:ben": 4.0}
    try:
        for i, rec in enumerate(recs):
            first, second = (one, other) if i % 2 == 0 else (other, one)
            for decider in (first, second):
                decider.decide([DecideRequest(rec.account_id)])
        used = _used(one_store, recs)
        assert all(used[k] <= limit for k, limit in limits.items()), used
        # Each server's count is the store's once refreshed.
        for decider in (one, other):
            decider.refresh()
            assert decider.snapshot is not None
            assert decider.snapshot.capacity is not None
            usage = decider.snapshot.capacity.usage()
            assert usage["volume:upsell"]["used"] == used["upsells"]
            assert usage["budget:sales"]["used"] == used["sales_usd"]
    finally:
        one.close()
        other.close()


def test_what_another_server_freed_is_its_own_to_give_until_the_next_refresh(stores: tuple[Store, Store]) -> None:
    """An account the first server decided for less than the run gave: the second does not give the rest too."""
    one_store, other_store = stores
    pb = _playbook(max_per_run=3)
    recs = _allocated(10, {0, 1, 2})  # the run gave its three units
    _save_run(one_store, pb, recs)
    one, other = OnlineDecider(one_store, pb), OnlineDecider(other_store, pb)
    snooze = FeedbackEvent(
        event_id="snooze-0",
        account_id="acct-0",
        kind="snoozed",
        ts=utcnow() - timedelta(hours=1),
        action_id="upsell",
        payload={"snoozed_until": (utcnow() + timedelta(days=30)).isoformat()},
    )
    one_store.add_feedback([snooze])
    try:
        # acct-0's users said not now to the upsell: the email, and the run's unit is free.
        assert [d.action_id for d in one.decide([DecideRequest("acct-0")])] == ["email"]
        (again,) = other.decide([DecideRequest("acct-0")])
        assert again.action_id == "none"  # the email is in flight
        # Both servers are asked for more accounts before either refreshes: one of them gives the unit.
        made = other.decide([DecideRequest(f"acct-{i}") for i in range(3, 6)])
        made += one.decide([DecideRequest(f"acct-{i}") for i in range(6, 10)])
        assert len(_upsold(made)) == 1
        assert _used(one_store, recs)["upsells"] == 3.0
        for decider in (one, other):
            decider.refresh()
            assert decider.snapshot is not None
            assert decider.snapshot.capacity is not None
            assert decider.snapshot.capacity.usage()["volume:upsell"]["used"] == 3.0
    finally:
        one.close()
        other.close()


def test_feedback_sent_to_one_server_corrects_the_others_decisions_at_its_refresh(
    stores: tuple[Store, Store],
) -> None:
    """Outcomes sent to one server move its corrections at once, and the other's at its next refresh."""
    one_store, other_store = stores
    pb = _playbook()
    recs = _allocated(10, set(range(10)))
    _save_run(one_store, pb, recs)
    one, other = OnlineDecider(one_store, pb), OnlineDecider(other_store, pb)
    try:
        made = one.decide([DecideRequest(f"acct-{i}") for i in range(6)])
        assert _upsold(made) == [f"acct-{i}" for i in range(6)]
        events = [
            FeedbackEvent(
                event_id=f"outcome-{d.account_id}",
                account_id=d.account_id,
                kind="outcome",
                ts=utcnow() + timedelta(minutes=1),
                payload={"decision_id": d.decision_id, "value_usd": -400.0},  # the upsell was worth far less
            )
            for d in made
        ]
        # As POST /v1/feedback does on the server it is sent to.
        assert one.learn_stored(events, one_store.add_feedback(events)) == 6
        learned = one.learner.corrections()
        assert [(c.action_key, c.outcomes) for c in learned] == [("upsell", 6)]
        assert other.learner.corrections() == []
        other.refresh()  # what its refresh loop does every few seconds
        assert other.learner.corrections() == learned
        other.refresh()  # read again (within the slack): counted once
        assert other.learner.corrections() == learned
        # Both now decide with the lowered value: the email wins on either server.
        (a,) = one.decide([DecideRequest("acct-6")])
        (b,) = other.decide([DecideRequest("acct-7")])
        assert a.expected_value_usd == b.expected_value_usd
        assert (a.action_id, b.action_id) == ("email", "email")
    finally:
        one.close()
        other.close()
