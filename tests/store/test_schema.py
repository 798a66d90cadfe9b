"""Contract tests: the store creates its tables, records its schema version and refuses others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nextmove.engine.online import POLICY_MODEL_KIND, promote_run, rollback_policy, served_run
from nextmove.errors import NotFoundError, StoreError
from nextmove.store import SCHEMA_VERSION, RecommendationRecord, RunRecord, SqlStore, Store, open_store


def test_open_store_creates_tables_and_records_version(store: Store, store_url: str, sql) -> None:
    engine = sa.create_engine(store_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {
        "nextmove_meta",
        "runs",
        "recommendations",
        "feedback_events",
        "model_versions",
        "decisions",
        "api_keys",
        "audit_log",
    } <= tables
    assert sql("SELECT value FROM nextmove_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_open_store_reopens_existing_store_with_data(store_url: str) -> None:
    run = RunRecord(run_id="r1", book_source="books/acme", playbook_hash="h1")
    rec = RecommendationRecord(
        run_id="r1",
        account_id="a1",
        action_id="qbr",
        arm="model",
        propensity=0.8,
        expected_value_usd=10.0,
    )
    with open_store(store_url) as first:
        first.save_run(run, [rec])
    with open_store(store_url) as second:
        assert second.get_run("r1") == run
        assert second.recommendations("r1") == [rec]


def test_open_store_rejects_newer_schema_version(store_url: str, sql) -> None:
    open_store(store_url).close()
    sql("UPDATE nextmove_meta SET value = :v WHERE key = 'schema_version'", v=str(SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="newer nextmove") as info:
        open_store(store_url)
    assert "upgrade" in str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)


def test_open_store_rejects_a_schema_version_without_migration(store_url: str, sql) -> None:
    open_store(store_url).close()
    sql("UPDATE nextmove_meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="no migrations") as info:
        open_store(store_url)
    message = str(info.value)
    assert "schema version 0" in message
    assert f"needs version {SCHEMA_VERSION}" in message


def _make_version_1_store(store_url: str, sql) -> None:
    """A store as nextmove with schema version 1 left it: no decisions, keys, audit, health columns."""
    open_store(store_url).close()
    for table in ("decisions", "api_keys", "audit_log"):
        sql(f"DROP TABLE {table}")
    for column in ("health_score", "health_band"):
        sql(f"ALTER TABLE recommendations DROP COLUMN {column}")
    sql("UPDATE nextmove_meta SET value = '1' WHERE key = 'schema_version'")


def test_open_store_upgrades_a_version_1_store_keeping_its_data(store_url: str, sql) -> None:
    _make_version_1_store(store_url, sql)
    sql(
        "INSERT INTO runs (run_id, created_at, status, book_source, playbook_hash, params, summary) "
        "VALUES ('r1', '2024-01-01 00:00:00', 'succeeded', 'b', 'h', '{}', '{}')"
    )
    sql(
        "INSERT INTO recommendations (run_id, account_id, action_id, arm, propensity, expected_value_usd, "
        "differs_from_default, evidence, alternatives, created_at) "
        "VALUES ('r1', 'a1', 'qbr', 'model', 0.9, 10.0, false, '{}', '[]', '2024-01-01 00:00:00')"
    )
    with open_store(store_url) as store:
        (rec,) = store.recommendations("r1")
        assert (rec.account_id, rec.health_band, rec.health_score) == ("a1", None, None)
        assert store.decisions() == []
        assert store.list_api_keys() == []
    assert sql("SELECT value FROM nextmove_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert "ix_decisions_run_id_ts_decision_id" in _indexes(store_url, "decisions")
    # Opening again finds nothing left to do.
    open_store(store_url).close()


def _add_version_1_run(sql, run_id: str, created_at: str, params: str = "{}") -> None:
    sql(
        "INSERT INTO runs (run_id, created_at, status, book_source, playbook_hash, params, summary) "
        "VALUES (:run_id, :created_at, 'succeeded', 'b', 'h', :params, '{}')",
        run_id=run_id,
        created_at=created_at,
        params=params,
    )


def test_an_upgraded_version_1_store_rolls_back_to_the_run_it_served_before_the_first_promotion(
    store_url: str, sql
) -> None:
    """Version 1 had no policy versions: the newest succeeded run was served, and stays served after the upgrade.

    The first promotion after the upgrade recorded no version it replaced, so `models rollback`
    could not go back to that run: the upgrade now records it as the active policy version.
    """
    _make_version_1_store(store_url, sql)
    _add_version_1_run(sql, "r-old", "2024-01-01 00:00:00")
    _add_version_1_run(sql, "r-new", "2024-02-01 00:00:00")
    with open_store(store_url) as store:
        assert served_run(store).run_id == "r-new"  # type: ignore[union-attr]
        promoted = promote_run(store, "r-old")
        assert served_run(store).run_id == "r-old"  # type: ignore[union-attr]
        back = rollback_policy(store)
        assert served_run(store).run_id == "r-new"  # type: ignore[union-attr]
        # The version the upgrade recorded, which the promotion replaced.
        assert promoted.metrics["replaces"] == back.model_id
        assert back.metrics == {"run_id": "r-new", "started_by": "upgrade", "replaces": None}
    # Opening again records nothing more.
    with open_store(store_url) as store:
        assert len(store.list_models(POLICY_MODEL_KIND)) == 2


def test_an_upgraded_version_1_store_records_no_policy_version_without_a_run_to_serve(store_url: str, sql) -> None:
    _make_version_1_store(store_url, sql)
    sql(
        "INSERT INTO runs (run_id, created_at, status, book_source, playbook_hash, params, summary) "
        "VALUES ('r-failed', '2024-01-01 00:00:00', 'failed', 'b', 'h', '{}', '{}')"
    )
    with open_store(store_url) as store:
        assert store.list_models(POLICY_MODEL_KIND) == []
        assert served_run(store) is None


def test_a_fresh_stores_first_promotion_still_has_nothing_to_roll_back_to(store: Store) -> None:
    for i, run_id in enumerate(("r-old", "r-new")):
        store.save_run(
            RunRecord(
                run_id=run_id,
                book_source="b",
                playbook_hash="h",
                status="succeeded",
                created_at=datetime(2024, 1 + i, 1, tzinfo=UTC),
            ),
            [],
        )
    assert store.list_models(POLICY_MODEL_KIND) == []
    assert promote_run(store, "r-old").metrics["replaces"] is None
    with pytest.raises(NotFoundError, match="made when no policy version was active"):
        rollback_policy(store)


def _indexes(store_url: str, table: str) -> dict[str, list[str]]:
    """The indexes of ``table`` as the database has them: name and columns."""
    engine = sa.create_engine(store_url)
    try:
        return {i["name"]: list(i["column_names"]) for i in sa.inspect(engine).get_indexes(table) if i["name"]}
    finally:
        engine.dispose()


def _make_version_2_store(store_url: str, sql) -> None:
    """A store as nextmove with schema version 2 left it: decisions without their index by run."""
    open_store(store_url).close()
    sql("DROP INDEX ix_decisions_run_id_ts_decision_id")
    sql("UPDATE nextmove_meta SET value = '2' WHERE key = 'schema_version'")


def test_open_store_upgrades_a_version_2_store_with_the_decisions_index_by_run(store_url: str, sql) -> None:
    _make_version_2_store(store_url, sql)
    assert "ix_decisions_run_id_ts_decision_id" not in _indexes(store_url, "decisions")
    sql(
        "INSERT INTO decisions (decision_id, account_id, ts, action_id, arm, propensity, expected_value_usd, "
        "run_id, context, evidence, alternatives) "
        "VALUES ('d1', 'a1', '2024-01-01 00:00:00', 'qbr', 'model', 0.9, 10.0, 'r1', '{}', '{}', '[]')"
    )
    with open_store(store_url) as store:
        assert [p.decision_id for p in store.decision_plays("r1")] == ["d1"]
    assert _indexes(store_url, "decisions")["ix_decisions_run_id_ts_decision_id"] == ["run_id", "ts", "decision_id"]
    assert sql("SELECT value FROM nextmove_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    # Opening again finds nothing left to do.
    open_store(store_url).close()


def test_a_runs_decisions_are_read_through_their_index_by_run(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        assert isinstance(store, SqlStore)
        engine = store._engine
        ran: list[tuple[str, Any]] = []

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if "FROM decisions" in statement:
                ran.append((statement, parameters))

        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            store.decision_plays("r1")
            store.decision_plays("r1", since=datetime(2024, 1, 1, tzinfo=UTC))
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)
        assert len(ran) == 2
        with engine.connect() as conn:
            for statement, parameters in ran:
                plan = " | ".join(
                    str(row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
                assert "USING INDEX ix_decisions_run_id_ts_decision_id (run_id=?" in plan, plan
                assert "SCAN" not in plan, plan
                assert "TEMP B-TREE" not in plan, plan  # read in order: nothing left to sort


def test_open_store_rejects_tables_without_a_version(store_url: str, sql) -> None:
    open_store(store_url).close()
    sql("DELETE FROM nextmove_meta")
    with pytest.raises(StoreError, match="schema_version is None"):
        open_store(store_url)


def test_open_store_rejects_nextmove_tables_without_meta_table(store_url: str, sql) -> None:
    open_store(store_url).close()
    sql("DROP TABLE nextmove_meta")
    with pytest.raises(StoreError, match="no nextmove_meta table"):
        open_store(store_url)


def test_open_store_creates_schema_once_when_opened_concurrently(store_url: str, sql) -> None:
    def open_and_close(_: int) -> None:
        open_store(store_url).close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(open_and_close, range(8)))
    assert sql("SELECT count(*) FROM nextmove_meta") == [(1,)]


def test_open_store_new_sqlite_files_opened_by_many_threads_at_once(tmp_path: Path) -> None:
    # Turning a fresh file to WAL needs it alone for a moment; SQLite answered "database is locked"
    # at once to the other threads (about one fresh file in ten, here), whatever the busy timeout.
    for attempt in range(20):
        url = f"sqlite:///{(tmp_path / f'{attempt}.db').as_posix()}"
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: open_store(url).close(), range(8)))  # noqa: B023 - used at once
