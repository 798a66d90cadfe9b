"""Times come back as they went in whatever the PostgreSQL database's default time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from nextmove.store import AuditEntry, FeedbackEvent, open_store

pytestmark = pytest.mark.postgres

# The ends of Python's range: converted into America/Los_Angeles (or Asia/Tokyo) by the driver,
# they fall outside it, and the whole table could not be read any more.
EXTREMES = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def test_store_sessions_use_utc_whatever_the_database_time_zone(pg_zoned_db_url: str) -> None:
    with open_store(pg_zoned_db_url) as store:
        engine = store._engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW timezone")).scalar_one() == "UTC"


def test_store_round_trips_extreme_times_in_a_database_of_another_time_zone(pg_zoned_db_url: str) -> None:
    events = [
        FeedbackEvent(event_id=f"e{i}", account_id="acct-1", kind="done", ts=ts, received_at=ts)
        for i, ts in enumerate(EXTREMES)
    ]
    with open_store(pg_zoned_db_url) as store:
        assert store.add_feedback(events) == len(events)
        store.add_audit([AuditEntry(action="read", method="GET", path="/x", status=200, ts=ts) for ts in EXTREMES])
        assert store.feedback() == events
        assert store.feedback(account_id="acct-1") == events
        assert sorted(e.ts for e in store.audit_log()) == EXTREMES
        assert [a.ts for a in store.activity("acct-1", datetime(1, 1, 1, tzinfo=UTC))] == EXTREMES
    # A store opened again (as `nextmove serve` does at start-up) reads them all.
    with open_store(pg_zoned_db_url) as store:
        assert store.feedback() == events
