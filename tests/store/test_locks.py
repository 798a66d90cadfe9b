"""The account locks shared by a store's processes: errors that must not read as "held elsewhere", locks lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.store.conftest import terminate_lock_connection

from nextmove.errors import StoreError
from nextmove.store import open_store
from nextmove.store.locks import AccountLocks, FileStripes, PostgresStripes
from nextmove.store.sql import SqlStore


def test_a_lock_file_that_cannot_be_opened_is_a_store_error_not_a_wait(tmp_path: Path) -> None:
    # A folder in place of the lock file: opening it fails every time, so waiting would never end.
    (tmp_path / "nextmove.db-decide.lock").mkdir()
    stripes = FileStripes(str(tmp_path / "nextmove.db-decide.lock"))
    with pytest.raises(StoreError, match="cannot open the lock file"):
        stripes.try_acquire(3)
    locks = AccountLocks(stripes)
    with pytest.raises(StoreError):
        locks.lock(3)
    # The in-process lock was given back: once the file can be opened, the stripe is taken at once.
    (tmp_path / "nextmove.db-decide.lock").rmdir()
    assert locks.try_lock(3)
    locks.unlock([3])
    stripes.close()


def test_file_stripes_are_taken_released_and_taken_again(tmp_path: Path) -> None:
    stripes = FileStripes(str(tmp_path / "store.db-decide.lock"))
    locks = AccountLocks(stripes)
    locks.lock(5)
    locks.unlock([5])
    locks.lock(5)
    assert locks.fence([5]) is None  # a file's locks cannot be lost while it is open: the commit need not look
    locks.unlock([5])
    stripes.close()


@pytest.mark.postgres
def test_postgres_unlock_after_the_lock_connection_died_does_not_raise(pg_schema_url: str) -> None:
    # A decision committed under its stripe, then the lock connection died: the server let go of the
    # lock, so the release has nothing to do, and must not tell the caller its decision failed.
    with open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        stripes = PostgresStripes(store._engine)
        elsewhere = PostgresStripes(store._engine)
        try:
            locks = AccountLocks(stripes)
            locks.lock(1)
            locks.check_held([1])
            terminate_lock_connection(pg_schema_url, stripes)
            locks.unlock([1])  # the unlock statement fails on the dead connection, which is dropped
            assert stripes._conn is None
            assert elsewhere.try_acquire(1)  # the server let go of it
            elsewhere.release([1])
            assert locks.try_lock(1)  # this thread's own lock was released too, and a new connection works
            locks.unlock([1])
        finally:
            elsewhere.close()
            stripes.close()


def test_postgres_stripes_lost_with_the_lock_connection_are_found_out_and_not_released_on_the_next(
    pg_schema_url: str,
) -> None:
    with open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        stripes = PostgresStripes(store._engine)
        elsewhere = PostgresStripes(store._engine)  # another process of the store
        try:
            locks = AccountLocks(stripes)
            # Two deciding threads hold stripes 1 and 2 on the process's one lock connection.
            holders = [threading.Thread(target=locks.lock, args=(i,)) for i in (1, 2)]
            for holder in holders:
                holder.start()
            for holder in holders:
                holder.join(timeout=30)
            assert not elsewhere.try_acquire(1)
            assert not elsewhere.try_acquire(2)

            terminate_lock_connection(pg_schema_url, stripes)
            # A third thread's statement fails on the dead connection, which is dropped.
            with pytest.raises(StoreError, match="could not lock accounts"):
                locks.try_lock(3)
            # The server let go of both holders' stripes: another process takes one at once.
            assert elsewhere.try_acquire(2)
            # A holder's release forgets its lost stripe, without a new connection (which never held it)...
            locks.unlock([2])
            assert stripes._conn is None
            # ...and the other holder finds out before committing under its stripe.
            with pytest.raises(StoreError, match="stripe 1 were lost"):
                locks.check_held([1])
            locks.unlock([1])
            assert stripes._conn is None
            assert not locks.try_lock(2)  # the other process's lock was left alone
            # Stripes taken on the next connection are held, checked and released as usual.
            locks.lock(1)
            locks.check_held([1])
            elsewhere.release([2])
            locks.lock(2)
            locks.check_held([1, 2])
            locks.unlock([1, 2])
            assert elsewhere.try_acquire(1)
            assert elsewhere.try_acquire(2)
        finally:
            elsewhere.close()
            stripes.close()


@pytest.mark.postgres
def test_postgres_stripes_lost_with_no_failed_statement_are_found_out_in_the_commit_and_waited_for(
    pg_schema_url: str,
) -> None:
    with open_store(pg_schema_url) as store:
        assert isinstance(store, SqlStore)
        stripes = PostgresStripes(store._engine)
        elsewhere = PostgresStripes(store._engine)  # another process of the store
        raw = store._engine.raw_connection()  # a commit's connection
        cursor = raw.cursor()
        try:
            locks = AccountLocks(stripes)
            locks.lock(1)
            locks.lock(2)
            # The server ends the lock connection (a restart, pg_terminate_backend) and nothing of ours fails...
            terminate_lock_connection(pg_schema_url, stripes)
            locks.check_held([1, 2])  # ...so the process cannot know it
            assert elsewhere.try_acquire(2)
            fence = locks.fence([1, 2])
            assert fence is not None
            with pytest.raises(StoreError, match=r"stripes 1, 2 were lost .*\(the database server ended it\)"):
                fence(cursor)
            raw.rollback()
            assert stripes._conn is None  # dropped: the stripes are forgotten, not released on a new one
            locks.unlock([1, 2])
            elsewhere.release([2])

            # A commit that found its stripe held keeps it from other processes until it ends, even once the
            # lock connection is gone: taking the stripe counts as not taken until then.
            locks.lock(3)
            fence = locks.fence([3])
            assert fence is not None
            fence(cursor)
            terminate_lock_connection(pg_schema_url, stripes)
            assert not elsewhere.try_acquire(3)
            assert not elsewhere.try_acquire(3)
            raw.commit()
            assert elsewhere.try_acquire(3)
            elsewhere.release([3])
            locks.unlock([3])
            assert locks.try_lock(3)  # the tries that found the commit under way kept nothing of the stripe
            locks.unlock([3])
        finally:
            cursor.close()
            raw.close()
            elsewhere.close()
            stripes.close()
