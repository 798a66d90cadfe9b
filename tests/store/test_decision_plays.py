"""Contract test: the plays of a run's logged decisions, light enough to be read at each refresh."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from tests.store.test_decisions import make_decision

from nextmove.store import DecisionPlay, Store

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def test_decision_plays_are_a_runs_own_oldest_first_since_a_time(store: Store) -> None:
    logged = [
        make_decision(0, run_id="r1", variant="short"),
        make_decision(1, run_id="r2"),
        make_decision(2, run_id="r1", ts=T0 - timedelta(days=1)),
        make_decision(3, run_id="r1"),
    ]
    store.log_decisions(logged)
    plays = store.decision_plays("r1")
    assert plays == [
        DecisionPlay(d.decision_id, d.account_id, d.ts, d.action_id, d.variant)
        for d in sorted((d for d in logged if d.run_id == "r1"), key=lambda d: d.ts)
    ]
    assert plays[1] == DecisionPlay("d-0", "acct-0", T0, "none", "short")
    assert [p.decision_id for p in store.decision_plays("r1", since=T0)] == ["d-0", "d-3"]
    assert [p.decision_id for p in store.decision_plays("r1", since=T0 + timedelta(minutes=1))] == ["d-3"]
    assert store.decision_plays("r3") == []
    assert dataclasses.astuple(plays[0])[2].tzinfo is not None  # times are UTC, as the decisions' own
