"""Contract tests: runs and their recommendations, written in one transaction and read back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nextmove.errors import ConfigError, NotFoundError, StoreError
from nextmove.store import RecommendationRecord, RunRecord, Store

T0 = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

PAYLOAD = {
    "nested": {"list": [1, 2.5, None, "x", {"deep": [True, False]}], "empty": {}},
    "float": 0.1 + 0.2,
    "tiny": 1e-300,
    "big": 12345678901234,
    "none": None,
    "text": 'Ünïcode ✓ "quoted"',
}


def make_run(run_id: str = "r1", **changes: object) -> RunRecord:
    run = RunRecord(
        run_id=run_id,
        book_source="books/acme",
        playbook_hash="sha256:abc",
        created_at=T0,
        as_of=T0 - timedelta(days=1),
        params={"horizon_days": 90, "seed": 7},
    )
    return dataclasses.replace(run, **changes)


def make_recommendation(i: int, run_id: str = "r1", **changes: object) -> RecommendationRecord:
    rec = RecommendationRecord(
        run_id=run_id,
        account_id=f"acct-{i:06d}",
        action_id=f"action-{i % 4}",
        arm="model" if i % 10 else "control",
        propensity=0.25 + (i % 50) / 100,
        expected_value_usd=100.0 * i + 0.5,
        owner=f"csm-{i % 3}",
        created_at=T0,
    )
    return dataclasses.replace(rec, **changes)


def full_recommendation() -> RecommendationRecord:
    return RecommendationRecord(
        run_id="r1",
        account_id="acct-full",
        action_id="exec_sponsor_call",
        variant="email-b",
        arm="explore",
        propensity=0.123456789,
        expected_value_usd=-1234.5678,
        value_low_usd=-2000.25,
        value_high_usd=-10.0,
        default_action_id="renewal_reminder",
        differs_from_default=True,
        owner="maria@example.com",
        evidence=PAYLOAD,
        alternatives=[{"action_id": "none", "value_usd": 0.0}, {"action_id": "qbr", "value_usd": None}],
        model_version="effect-2024-05-01",
        created_at=T0,
        health_score=42.5,
        health_band="At risk",
    )


def test_start_run_round_trips_every_field(store: Store) -> None:
    run = make_run(summary=PAYLOAD, finished_at=T0 + timedelta(minutes=3), status="succeeded")
    store.start_run(run)
    assert store.get_run("r1") == run


def test_start_run_rejects_duplicate_run_id(store: Store) -> None:
    store.start_run(make_run())
    with pytest.raises(StoreError, match="already exists"):
        store.start_run(make_run(book_source="other"))
    assert store.get_run("r1").book_source == "books/acme"


def test_finish_run_sets_status_time_and_summary(store: Store) -> None:
    store.start_run(make_run())
    before = datetime.now(UTC)
    store.finish_run("r1", "succeeded", {"accounts": 3, "value_usd": 1.5})
    run = store.get_run("r1")
    assert run.status == "succeeded"
    assert run.summary == {"accounts": 3, "value_usd": 1.5}
    assert run.finished_at is not None
    assert run.finished_at >= before - timedelta(seconds=1)
    store.finish_run("r1", "failed")
    assert store.get_run("r1").summary == {"accounts": 3, "value_usd": 1.5}


def test_finish_run_unknown_run_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no run 'missing'"):
        store.finish_run("missing", "failed")


def test_finish_run_rejects_unknown_status(store: Store) -> None:
    store.start_run(make_run())
    with pytest.raises(ConfigError, match="status"):
        store.finish_run("r1", "done")  # type: ignore[arg-type]


def test_get_run_unknown_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="list_runs"):
        store.get_run("missing")


def test_list_runs_returns_newest_first(store: Store) -> None:
    assert store.list_runs() == []
    assert store.latest_run() is None
    for i in range(5):
        status = "succeeded" if i % 2 == 0 else "failed"
        store.start_run(make_run(f"r{i}", created_at=T0 + timedelta(hours=i), status=status))
    assert [r.run_id for r in store.list_runs()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["r4", "r3"]
    assert [r.run_id for r in store.list_runs(status="failed")] == ["r3", "r1"]
    latest = store.latest_run()
    assert latest is not None
    assert latest.run_id == "r4"
    latest_failed = store.latest_run(status="failed")
    assert latest_failed is not None
    assert latest_failed.run_id == "r3"


def test_store_returns_timestamps_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    naive = datetime(2024, 1, 2, 3, 4, 5, 6)
    store.start_run(make_run(created_at=T0.astimezone(paris), as_of=naive))
    run = store.get_run("r1")
    assert run.created_at == T0
    assert run.created_at.tzinfo == UTC
    assert run.as_of == naive.replace(tzinfo=UTC)
    assert run.as_of is not None
    assert run.as_of.tzinfo == UTC


def test_save_run_round_trips_recommendations(store: Store) -> None:
    recs = [full_recommendation(), make_recommendation(1), make_recommendation(2)]
    run = make_run(status="succeeded", summary={"recommended": 3})
    store.save_run(run, recs)
    assert store.get_run("r1") == run
    assert store.recommendations("r1") == sorted(recs, key=lambda r: r.account_id)
    stored = store.recommendations("r1", account_ids=["acct-full"])[0]
    assert stored.created_at.tzinfo == UTC
    assert isinstance(stored.differs_from_default, bool)


@pytest.mark.parametrize("fail_at", [1, 11_000])
def test_save_run_writes_nothing_when_a_recommendation_fails(store: Store, fail_at: int) -> None:
    def recommendations() -> Iterator[RecommendationRecord]:
        for i in range(12_000):
            # A repeated account_id breaks the primary key in the batch holding `fail_at`.
            yield make_recommendation(0 if i == fail_at else i)

    with pytest.raises(StoreError, match="could not save run 'r1'"):
        store.save_run(make_run(), recommendations())
    with pytest.raises(NotFoundError):
        store.get_run("r1")
    assert store.count_recommendations("r1") == 0


def test_save_run_writes_nothing_when_a_recommendation_names_another_run(store: Store) -> None:
    recs = [make_recommendation(1), make_recommendation(2, run_id="r2")]
    with pytest.raises(StoreError, match="belongs to run 'r2'"):
        store.save_run(make_run(), recs)
    assert store.list_runs() == []
    assert store.count_recommendations("r1") == 0


def test_save_run_writes_nothing_when_the_iterable_raises(store: Store) -> None:
    def recommendations() -> Iterator[RecommendationRecord]:
        yield from (make_recommendation(i) for i in range(6_000))
        raise RuntimeError("feature computation failed")

    with pytest.raises(RuntimeError, match="feature computation failed"):
        store.save_run(make_run(), recommendations())
    assert store.list_runs() == []
    assert store.count_recommendations("r1") == 0


def test_save_run_completes_a_started_run(store: Store) -> None:
    store.start_run(make_run())
    finished = make_run(status="succeeded", finished_at=T0 + timedelta(hours=1), summary={"n": 2})
    store.save_run(finished, [make_recommendation(1), make_recommendation(2)])
    assert store.get_run("r1") == finished
    assert store.count_recommendations("r1") == 2


def test_save_run_failure_keeps_the_started_run_as_it_was(store: Store) -> None:
    store.start_run(make_run())
    with pytest.raises(StoreError):
        store.save_run(make_run(status="succeeded"), [make_recommendation(1)] * 2)
    assert store.get_run("r1") == make_run()
    assert store.count_recommendations("r1") == 0


def test_save_run_refuses_to_overwrite_a_finished_run(store: Store) -> None:
    store.save_run(make_run(status="succeeded"), [make_recommendation(1)])
    with pytest.raises(StoreError, match="already saved"):
        store.save_run(make_run(status="succeeded"), [])
    assert store.count_recommendations("r1") == 1


def test_save_run_refuses_a_run_saved_before_while_running_with_the_same_words(store: Store) -> None:
    # A RunRecord is 'running' unless told otherwise: saving the same one twice hit the
    # recommendations' unique key instead of the error that says to use a new run_id.
    store.save_run(make_run(), [make_recommendation(1)])
    with pytest.raises(StoreError, match=r"already saved with status 'running'.*use a new run_id"):
        store.save_run(make_run(), [make_recommendation(1)])
    assert store.get_run("r1") == make_run()
    assert store.count_recommendations("r1") == 1


def test_recommendations_filters_and_pages(store: Store) -> None:
    recs = [make_recommendation(i) for i in range(50)]
    store.save_run(make_run(), recs)
    store.save_run(make_run("other"), [make_recommendation(i, run_id="other") for i in range(7)])

    assert store.count_recommendations("r1") == 50
    assert store.recommendations("r1") == recs
    by_owner = store.recommendations("r1", owner="csm-1")
    assert by_owner == [r for r in recs if r.owner == "csm-1"]
    assert store.count_recommendations("r1", owner="csm-1") == len(by_owner)
    by_action = store.recommendations("r1", action_id="action-2")
    assert by_action == [r for r in recs if r.action_id == "action-2"]
    both = store.recommendations("r1", owner="csm-0", action_id="action-0")
    assert both == [r for r in recs if r.owner == "csm-0" and r.action_id == "action-0"]
    wanted = {"acct-000003", "acct-000010", "acct-999999"}
    assert [r.account_id for r in store.recommendations("r1", account_ids=wanted)] == [
        "acct-000003",
        "acct-000010",
    ]
    assert store.count_recommendations("r1", account_ids=wanted) == 2

    pages = [store.recommendations("r1", limit=15, offset=o) for o in range(0, 50, 15)]
    assert [len(p) for p in pages] == [15, 15, 15, 5]
    assert [r for page in pages for r in page] == recs
    assert store.recommendations("r1", limit=10, offset=45) == recs[45:]
    assert store.recommendations("missing") == []
    assert store.count_recommendations("other") == 7


def test_shared_accounts_counts_the_accounts_each_other_run_decided_too(store: Store) -> None:
    """Lift's note on overlapping runs asks this: one query, however many accounts, whatever the playbooks."""
    store.save_run(make_run(), [make_recommendation(i) for i in range(50)])
    store.save_run(make_run("later", playbook_hash="edited"), [make_recommendation(i, "later") for i in range(10, 70)])
    store.save_run(make_run("few"), [make_recommendation(i, "few") for i in (0, 49, 50)])
    store.save_run(make_run("apart"), [make_recommendation(i, "apart") for i in range(50, 60)])
    assert store.shared_accounts("r1", ["later", "few", "apart", "missing", "r1"]) == {"later": 40, "few": 2}
    assert store.shared_accounts("r1", []) == {}
    assert store.shared_accounts("missing", ["later"]) == {}


def test_recommendations_filters_by_health_band(store: Store) -> None:
    bands = ["Healthy", "At risk", "Critical", None]
    recs = [make_recommendation(i, health_band=bands[i % 4], health_score=float(i)) for i in range(12)]
    store.save_run(make_run(), recs)
    at_risk = store.recommendations("r1", health_band="At risk")
    assert at_risk == [r for r in recs if r.health_band == "At risk"]
    assert store.count_recommendations("r1", health_band="Critical", owner="csm-2") == len(
        [r for r in recs if r.health_band == "Critical" and r.owner == "csm-2"]
    )


def test_recommendations_filters_by_a_team_of_owners(store: Store) -> None:
    recs = [make_recommendation(i) for i in range(12)]
    store.save_run(make_run(), recs)
    team = {"csm-0", "csm-2"}
    assert store.recommendations("r1", owners=team, limit=3) == [r for r in recs if r.owner in team][:3]
    assert store.count_recommendations("r1", owners=team) == 8
    assert store.count_recommendations("r1", owners=[]) == 0


def test_recommendations_empty_account_ids_match_nothing(store: Store) -> None:
    store.save_run(make_run(), [make_recommendation(1)])
    assert store.recommendations("r1", account_ids=[]) == []
    assert store.count_recommendations("r1", account_ids=[]) == 0


def test_recommendations_rejects_negative_paging(store: Store) -> None:
    with pytest.raises(ConfigError, match="offset"):
        store.recommendations("r1", offset=-1)
    with pytest.raises(ConfigError, match="limit"):
        store.recommendations("r1", limit=-5)


@pytest.mark.slow
def test_save_run_stores_100k_recommendations(store: Store) -> None:
    store.save_run(make_run(), (make_recommendation(i) for i in range(100_000)))
    assert store.count_recommendations("r1") == 100_000
    assert len(store.recommendations("r1", owner="csm-2", limit=1000)) == 1000


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), datetime(2024, 1, 1), {1, 2}])
def test_save_run_refuses_payloads_that_are_not_json(store: Store, bad: object) -> None:
    recs = [make_recommendation(1), make_recommendation(2, evidence={"signal": bad})]
    with pytest.raises(StoreError, match=r"could not save run 'r1'.*JSON"):
        store.save_run(make_run(), recs)
    assert store.list_runs() == []
