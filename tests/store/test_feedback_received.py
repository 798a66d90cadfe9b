"""Contract tests: the feedback a store received lately, read through its index (what each server reads at refresh)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from nextmove.store import SCHEMA_VERSION, FeedbackEvent, SqlStore, Store, open_store

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def _event(i: int, received: datetime, **changes: object) -> FeedbackEvent:
    event = FeedbackEvent(
        event_id=f"evt-{i}",
        account_id=f"acct-{i % 3}",
        kind="outcome",
        ts=T0 - timedelta(minutes=i),  # not in the order received
        payload={"decision_id": f"d-{i}", "value_usd": 1.0},
        received_at=received,
    )
    return dataclasses.replace(event, **changes)


def test_feedback_received_since_a_time_and_of_a_kind(store: Store) -> None:
    events = [
        _event(1, T0),
        _event(2, T0 + timedelta(seconds=5)),
        _event(3, T0 + timedelta(seconds=10), kind="done"),
        _event(4, T0 + timedelta(seconds=10)),
    ]
    store.add_feedback(events)
    since = T0 + timedelta(seconds=5)
    assert [e.event_id for e in store.feedback(received_since=since)] == ["evt-4", "evt-3", "evt-2"]  # oldest ts first
    assert [e.event_id for e in store.feedback(received_since=since, kind="outcome")] == ["evt-4", "evt-2"]
    assert [e.event_id for e in store.feedback(kind="outcome")] == ["evt-4", "evt-2", "evt-1"]
    assert store.feedback(received_since=T0 + timedelta(seconds=11)) == []


def _indexes(store_url: str, table: str) -> dict[str, list[str]]:
    engine = sa.create_engine(store_url)
    try:
        return {i["name"]: list(i["column_names"]) for i in sa.inspect(engine).get_indexes(table) if i["name"]}
    finally:
        engine.dispose()


def test_open_store_upgrades_a_version_3_store_with_the_feedback_index_by_received_at(store_url: str, sql) -> None:
    open_store(store_url).close()
    sql("DROP INDEX ix_feedback_events_received_at")
    sql("UPDATE nextmove_meta SET value = '3' WHERE key = 'schema_version'")
    sql(
        "INSERT INTO feedback_events (event_id, account_id, kind, ts, payload, received_at) "
        "VALUES ('e1', 'a1', 'outcome', '2024-01-01 00:00:00', '{}', '2024-01-03 00:00:00')"
    )
    with open_store(store_url) as store:
        assert [e.event_id for e in store.feedback(received_since=datetime(2024, 1, 2, tzinfo=UTC))] == ["e1"]
    assert _indexes(store_url, "feedback_events")["ix_feedback_events_received_at"] == ["received_at"]
    assert sql("SELECT value FROM nextmove_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    open_store(store_url).close()  # nothing left to do


def test_the_feedback_received_lately_is_read_through_its_index(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        assert isinstance(store, SqlStore)
        engine = store._engine
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM feedback_events"
                " WHERE received_at >= '2024-01-01' AND kind = 'outcome'"
            ).fetchall()
    assert any("ix_feedback_events_received_at" in str(row) for row in plan), plan
