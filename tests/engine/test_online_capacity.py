"""Online decisions respect the playbook's capacities, counted from the served run and the decisions since.

Each test serves a run whose recommendations a real allocation could have made (within every limit),
on a real SQLite store, and decides online accounts whose best option would, given to all of them,
take a resource over its limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nextmove.engine.online import DecideGroup, DecideRequest, OnlineDecider
from nextmove.errors import ConflictError
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook
from nextmove.store import DecisionRecord, FeedbackEvent, RecommendationRecord, RunRecord, Store, open_store

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
NOW = AS_OF + timedelta(days=1)
VALUES = {"upsell": 500.0, "email": 50.0}


def _playbook(
    *,
    max_per_run: int | None = None,
    sales_budget: float | None = None,
    hours_per_week: float | None = None,
    owner_hours: str = "",
    control_fraction: float = 0.0,
    exploration: str = 'method = "none"',
) -> Playbook:
    upsell_limit = "" if max_per_run is None else f"max_per_run = {max_per_run}"
    hours = "" if hours_per_week is None else f"hours_per_owner_per_week = {hours_per_week}"
    budgets = "" if sales_budget is None else f"budget_usd_per_team = {{ sales = {sales_budget} }}"
    return parse_playbook(f"""
control_fraction = {control_fraction}
exploration = {{ {exploration} }}

[objectives.expansion]
outcome = "expansion"
value = "amount"

[[actions]]
id = "upsell"
name = "Upsell call"
team = "sales"
objective = "expansion"
channel = "call"
cost_usd = 100
effort_hours = 2.0
default_for_stages = ["renewal"]
{upsell_limit}

[[actions]]
id = "email"
name = "Expansion email"
team = "marketing"
objective = "expansion"
channel = "email"
cost_usd = 1
effort_hours = 0.0

[contact_policy]
max_actions_per_window = 1
window_days = 7

[capacity]
{hours}
{budgets}
{owner_hours}
""")


def _rec(account_id: str, action: str, owner: str, *, arm: str = "model") -> RecommendationRecord:
    """A recommendation of ``action``, with the other action and doing nothing as runner-ups.

    The upsell, worth more, lost to capacity when it is not the recommendation.
    """
    other = "email" if action == "upsell" else "upsell"
    value = VALUES[action]
    alternatives = [
        {
            "action_id": other,
            "variant": None,
            "value_usd": VALUES[other],
            "low": VALUES[other] - 100.0,
            "high": VALUES[other] + 100.0,
            "why": "capacity" if VALUES[other] > value else "lower_value",
            "reason": "",
        },
        {"action_id": "none", "variant": None, "value_usd": 0.0, "low": 0.0, "high": 0.0, "why": "lower_value"},
    ]
    return RecommendationRecord(
        run_id="run-1",
        account_id=account_id,
        action_id=action,
        arm=arm,
        propensity=1.0,
        expected_value_usd=value,
        value_low_usd=value - 100.0,
        value_high_usd=value + 100.0,
        default_action_id="upsell",
        differs_from_default=action != "upsell",
        owner=owner,
        evidence={"action_id": action, "arm": arm, "summary": f"{action} for {account_id}"},
        alternatives=alternatives,
        model_version="effect-test",
    )


def _serve(store: Store, playbook: Playbook, recs: list[RecommendationRecord]) -> OnlineDecider:
    run = RunRecord(
        run_id="run-1",
        book_source="tests",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
        created_at=AS_OF + timedelta(hours=1),
        finished_at=AS_OF + timedelta(hours=2),
        summary={"accounts": len(recs)},
    )
    store.save_run(run, recs)
    return OnlineDecider(store, playbook)


def _allocated(n: int, upsells: set[int], owners: tuple[str, ...] = ("ana",)) -> list[RecommendationRecord]:
    """``n`` accounts: those in ``upsells`` recommended the upsell, the others the email."""
    return [_rec(f"acct-{i}", "upsell" if i in upsells else "email", owners[i % len(owners)]) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _upsold(decisions: list[DecisionRecord]) -> list[str]:
    return [d.account_id for d in decisions if d.action_id == "upsell"]


def test_a_volume_limit_of_three_gives_at_most_three_accounts_the_action(store: Store) -> None:
    pb = _playbook(max_per_run=3)
    decider = _serve(store, pb, _allocated(10, {0, 1, 2}))
    # Accounts without the upsell first: all three are the run's, so none is left for them.
    made = [decider.decide([DecideRequest(f"acct-{i}")], now=NOW)[0] for i in reversed(range(10))]
    assert sorted(_upsold(made)) == ["acct-0", "acct-1", "acct-2"]  # each keeps the run's own
    blocked = next(d for d in made if d.account_id == "acct-5")
    assert blocked.action_id == "email"
    row = next(a for a in blocked.alternatives if a["action_id"] == "upsell")
    assert row["why"] == "capacity"
    assert row["reason"] == "worth more, but not enough of the run's limit of Upsell call is left for it"
    assert blocked.context["propensities"]["upsell"] == 0.0
    assert decider.snapshot is not None
    assert decider.snapshot.capacity is not None
    assert decider.snapshot.capacity.usage()["volume:upsell"] == {"limit": 3.0, "used": 3.0}


def test_an_account_decided_online_releases_its_recommendation(store: Store) -> None:
    """The run gave the upsell to two accounts; an online `none` for one of them frees its unit."""
    pb = _playbook(max_per_run=2)
    decider = _serve(store, pb, _allocated(6, {0, 1}))
    snoozed = "acct-0"
    store.add_feedback(
        [
            FeedbackEvent(
                event_id="snooze-0",
                account_id=snoozed,
                kind="snoozed",
                ts=NOW - timedelta(hours=1),
                action_id="upsell",
                payload={"snoozed_until": (NOW + timedelta(days=30)).isoformat()},
            )
        ]
    )
    (first,) = decider.decide([DecideRequest(snoozed)], now=NOW)
    assert first.action_id == "email"
    made = decider.decide([DecideRequest(f"acct-{i}") for i in range(2, 6)], now=NOW)
    assert len(_upsold(made)) == 1  # the unit acct-0 gave back, and no more


def test_asking_again_does_not_free_a_play_given(store: Store) -> None:
    """A second decision while the first play is in flight is `none`: the play given still uses its unit."""
    pb = _playbook(max_per_run=3)
    decider = _serve(store, pb, _allocated(10, {0, 1, 2}))
    given: list[str] = []
    for i in range(10):
        (first,) = decider.decide([DecideRequest(f"acct-{i}")], now=NOW)
        (again,) = decider.decide([DecideRequest(f"acct-{i}")], now=NOW + timedelta(minutes=5))
        assert again.action_id == "none"
        given += _upsold([first])
    assert len(given) == 3


def test_a_team_budget_caps_what_online_decisions_spend(store: Store) -> None:
    pb = _playbook(sales_budget=250.0)  # two upsells of $100
    decider = _serve(store, pb, _allocated(8, {0, 1}))
    made = decider.decide([DecideRequest(f"acct-{i}") for i in range(7, -1, -1)], now=NOW)
    assert sorted(_upsold(made)) == ["acct-0", "acct-1"]
    row = next(a for a in made[0].alternatives if a["action_id"] == "upsell")
    assert (row["why"], row["reason"]) == ("capacity", "worth more, but not enough of the sales budget is left for it")


def test_owner_hours_cap_each_owners_online_decisions(store: Store) -> None:
    # 4 hours a week over a 7-day window: two upsells of 2 hours per owner.
    pb = _playbook(hours_per_week=4.0)
    recs = _allocated(12, {0, 1, 2, 3}, owners=("ana", "ben"))  # ana: 0 and 2, ben: 1 and 3
    decider = _serve(store, pb, recs)
    made = decider.decide([DecideRequest(f"acct-{i}") for i in range(11, -1, -1)], now=NOW)
    by_owner: dict[str, int] = {}
    for d in made:
        if d.action_id == "upsell":
            by_owner[str(d.owner)] = by_owner.get(str(d.owner), 0) + 1
    assert by_owner == {"ana": 2, "ben": 2}
    blocked = next(d for d in made if d.account_id == "acct-4")
    row = next(a for a in blocked.alternatives if a["action_id"] == "upsell")
    assert row["reason"] == "worth more, but not enough of ana's hours is left for it"


def test_owner_hours_give_each_owner_their_own_online_limit(store: Store) -> None:
    # ben works part time (2 hours: one upsell), cy is on leave (0), ana has the default 4 (two upsells).
    pb = _playbook(hours_per_week=4.0, owner_hours='owner_hours = { ben = 2.0, cy = 0, "nobody here" = 9 }')
    recs = _allocated(12, set(), owners=("ana", "ben", "cy"))
    decider = _serve(store, pb, recs)
    made = decider.decide([DecideRequest(f"acct-{i}") for i in range(12)], now=NOW)
    by_owner: dict[str, int] = {}
    for d in made:
        if d.action_id == "upsell":
            by_owner[str(d.owner)] = by_owner.get(str(d.owner), 0) + 1
    assert by_owner == {"ana": 2, "ben": 1}
    blocked = next(d for d in made if d.owner == "cy")
    row = next(a for a in blocked.alternatives if a["action_id"] == "upsell")
    assert row["reason"] == "worth more, but not enough of cy's hours is left for it"


def test_the_control_cohorts_default_needs_capacity_too(store: Store) -> None:
    pb = _playbook(max_per_run=1, control_fraction=0.5)
    recs = _allocated(3, {0})
    recs[2] = _rec("acct-2", "email", "ana", arm="control")  # its default (the upsell) found no capacity left
    decider = _serve(store, pb, recs)
    (d,) = decider.decide([DecideRequest("acct-2")], now=NOW)
    assert (d.arm, d.action_id) == ("control", "none")
    row = next(a for a in d.alternatives if a["action_id"] == "upsell")
    assert (row["why"], row["reason"]) == ("capacity", "not enough of the run's limit of Upsell call is left for it")


def test_another_process_decisions_count_at_load_and_at_refresh(store: Store) -> None:
    pb = _playbook(max_per_run=3)
    recs = _allocated(10, set())  # the run gave the upsell to nobody: three units are free
    one = _serve(store, pb, recs)
    other = OnlineDecider(store, pb)  # another server process on the same store, loaded before any decision
    # Decided now, as the server decides (the refresh reads what was logged in the last minute or so).
    assert len(_upsold(one.decide([DecideRequest(f"acct-{i}") for i in range(2)]))) == 2
    other.refresh()  # what its refresh loop does every few seconds
    assert len(_upsold(other.decide([DecideRequest(f"acct-{i}") for i in range(2, 6)]))) == 1
    later = OnlineDecider(store, pb)  # started after: reads every decision logged for the run
    assert _upsold(later.decide([DecideRequest(f"acct-{i}") for i in range(6, 9)])) == []
    one.refresh()
    assert _upsold(one.decide([DecideRequest("acct-9")])) == []


def test_a_decision_not_logged_gives_its_capacity_back(store: Store) -> None:
    pb = _playbook(max_per_run=3)
    decider = _serve(store, pb, _allocated(10, {0, 1}))  # one unit free
    (d0,) = decider.decide([DecideRequest("acct-0", request_id="req-1")], now=NOW)
    assert d0.action_id == "upsell"
    with pytest.raises(ConflictError):  # the request id is acct-0's: nothing logged for acct-5
        decider.decide([DecideRequest("acct-5", request_id="req-1")], now=NOW)
    assert _upsold(decider.decide([DecideRequest("acct-6")], now=NOW)) == ["acct-6"]
    assert _upsold(decider.decide([DecideRequest("acct-7")], now=NOW)) == []


def test_thompson_explores_a_share_epsilon_as_the_run_does(store: Store) -> None:
    """Under thompson, the best allowed option has probability at least 1 − ε, the others ε between them."""
    pb = _playbook(exploration='method = "thompson", epsilon = 0.08')
    # Close values with wide intervals: a Thompson draw alone gives the best barely more than half the time.
    recs = [_rec(f"acct-{i}", "upsell", "ana") for i in range(40)]
    recs = [
        dataclasses.replace(
            r,
            alternatives=[
                {**a, "value_usd": 480.0, "low": 0.0, "high": 960.0} if a["action_id"] == "email" else a
                for a in r.alternatives
            ],
            value_low_usd=0.0,
            value_high_usd=1000.0,
        )
        for r in recs
    ]
    decider = _serve(store, pb, recs)
    made = decider.decide([DecideRequest(r.account_id) for r in recs], now=NOW)
    for d in made:
        probs = d.context["propensities"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert probs["upsell"] >= 1 - 0.08 - 1e-6
        assert 0 < probs["email"] <= 0.08
        assert 0 < probs["none"] <= 0.08
        assert d.propensity == pytest.approx(probs[d.action_id], abs=1e-6)
        if d.action_id != "upsell":
            assert d.arm == "explore"
    assert sum(d.arm == "explore" for d in made) <= 12  # 8 % of 40 expected; a full Thompson draw gives ~19


def test_groups_decided_together_share_the_capacity_and_a_failed_group_gives_it_back(store: Store) -> None:
    """As the server decides what waits together (`decide_groups`): a group that is not logged frees what it took."""
    pb = _playbook(max_per_run=4)
    decider = _serve(store, pb, _allocated(10, {0, 1}))  # two units free
    decider.decide([DecideRequest("acct-0", request_id="req-0")], now=NOW)
    groups = [
        DecideGroup([DecideRequest("acct-5", request_id="req-0")]),  # acct-0's request id: a conflict
        *(DecideGroup([DecideRequest(f"acct-{i}")]) for i in range(6, 9)),
    ]
    results = decider.decide_groups(groups, now=NOW)
    assert isinstance(results[0], ConflictError)
    made = [d for r in results[1:] for d in r]  # type: ignore[union-attr]
    # acct-5's draw held a unit while the groups were decided; it is given back once its group failed.
    assert _upsold(made) == ["acct-6"]
    assert _upsold(decider.decide([DecideRequest("acct-9")], now=NOW)) == ["acct-9"]
    assert _upsold(decider.decide([DecideRequest("acct-4")], now=NOW)) == []
