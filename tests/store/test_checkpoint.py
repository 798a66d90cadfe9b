"""SQLite's write-ahead log checkpointed by a background thread instead of inside a commit."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nextmove.errors import ConfigError, StoreError
from nextmove.store import AuditEntry, SqlStore, open_store


def _entries(n: int, size: int) -> list[AuditEntry]:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        AuditEntry(action="read", method="GET", path="/x", status=200, detail={"pad": "x" * size}, ts=ts + timedelta(i))
        for i in range(n)
    ]


def _open(tmp_path: Path) -> SqlStore:
    store = open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}")
    assert isinstance(store, SqlStore)
    return store


def test_writes_leave_the_checkpoint_to_the_background_thread(tmp_path: Path) -> None:
    wal = tmp_path / "nextmove.db-wal"
    with _open(tmp_path) as store:
        assert store.checkpoint_in_background(every_s=3600.0)  # started, but not due within the test
        for _ in range(12):  # ~2,400 pages of 4 KiB: past SQLite's automatic checkpoint at 1,000
            store.add_audit(_entries(200, 4000))
        # Without the automatic checkpoint the log was never restarted: it holds every page written.
        assert wal.stat().st_size > 2_000 * 4096
        busy, log_pages, copied = store.checkpoint()
        assert (busy, copied) == (0, log_pages)
        assert log_pages > 2_000
        assert len(store.audit_log(limit=None)) == 2_400


def test_the_background_thread_checkpoints_every_interval(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nextmove.store.sql")
    with _open(tmp_path) as store:
        assert store.checkpoint_in_background(every_s=0.05)
        assert not store.checkpoint_in_background(every_s=0.05)  # once is enough
        store.add_audit(_entries(10, 100))
        deadline = time.monotonic() + 10
        while not any("checkpoint:" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert any("checkpoint:" in r.getMessage() for r in caplog.records)


def test_checkpointing_is_sqlite_files_only(tmp_path: Path) -> None:
    with open_store("sqlite://") as memory:
        assert isinstance(memory, SqlStore)
        assert not memory.checkpoint_in_background()
    with _open(tmp_path) as store, pytest.raises(ConfigError, match="every_s"):
        store.checkpoint_in_background(every_s=0)


def test_checkpointing_is_not_needed_on_postgres(pg_schema_url: str) -> None:
    with open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        assert not store.checkpoint_in_background()
        with pytest.raises(StoreError, match="not SQLite"):
            store.checkpoint()
