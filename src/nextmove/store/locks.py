"""Locks on stripes of accounts shared by every process of one store, for the online one-play-in-flight rule.

An online decision reads the account's activity since the run, then logs its decision: two
processes deciding for one account at once must not both read "no play in flight". Threads of one
process serialise on in-process locks; :class:`AccountLocks` (one per store location and process,
shared by every decider on it) adds locks shared by every process of the store:

- PostgreSQL: session advisory locks (``pg_try_advisory_lock``), keyed by the store's schema and
  the stripe, on a connection of their own in autocommit; a process that dies releases them with
  its connection. They are only ever tried (never waited for inside the database), and waited for
  by retrying, so that one connection serves every thread of the process. A statement that fails
  on it drops the connection, and with it every thread's locks: each stripe remembers the
  connection it was taken on, so that its holder finds out (:meth:`AccountLocks.check_held`)
  before committing, and its release does not go to a later connection.

  The server may also end the connection with no statement of ours failing (a restart,
  ``pg_terminate_backend``, a network cut), and another process then takes its stripes at once. So
  the commit itself makes sure of them (:meth:`AccountLocks.fence`): in its own transaction it
  takes a transaction advisory lock on each stripe's *commit key*, then reads in ``pg_locks`` that
  the lock connection still holds the stripes, and logs nothing if it does not. Taking a stripe
  also tries its commit key (shared, for that statement only), and counts as not taken while a
  commit holds it: a process that takes a stripe freed by a dead connection reads the account only
  once a commit under way on it has ended, so it sees that commit's decision.
- SQLite (a file): byte-range locks (``fcntl.lockf``) on a ``…-decide.lock`` file beside the
  database, one byte per stripe; released by the system when the process ends.

The read and the write are two transactions of the store, so the lock is held across both, from
before the read until the decision is committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol, TypeAlias

from nextmove.errors import StoreError
from nextmove.store.base import Store
from nextmove.store.sql import PG_CONNECT_TIMEOUT_S

logger = logging.getLogger(__name__)

STRIPES: Final[int] = 64
"""Stripes the accounts are spread over (their id's CRC-32 modulo this)."""

_WAIT_FIRST_S = 0.0002
_WAIT_MAX_S = 0.005

Fence: TypeAlias = Callable[[Any], None]
"""Run first in the transaction of a commit under stripes, with its DB-API cursor: makes sure they are held
until it ends, or raises :class:`~nextmove.errors.StoreError` so that nothing is committed."""


class SharedStripes(Protocol):
    """Exclusive locks on numbered stripes, shared by the processes of one store."""

    def try_acquire(self, stripe: int) -> bool:
        """Take ``stripe`` if no other process holds it; whether it was taken."""
        ...

    def release(self, stripes: Sequence[int]) -> None:
        """Release ``stripes`` (taken by :meth:`try_acquire`)."""
        ...

    def lost(self, stripes: Sequence[int]) -> list[int]:
        """Those of ``stripes`` (taken by :meth:`try_acquire`, not released yet) let go behind the holder's back."""
        ...

    def fence(self, stripes: Sequence[int]) -> Fence | None:
        """What makes sure, in a commit's transaction, that ``stripes`` are held (None: nothing needs to)."""
        ...

    def close(self) -> None:
        """Release every stripe and what holds them."""
        ...


def acquire(locks: SharedStripes, stripe: int) -> None:
    """Take ``stripe``, waiting (by retrying, with short growing sleeps) while another process holds it."""
    wait = _WAIT_FIRST_S
    while not locks.try_acquire(stripe):
        time.sleep(wait)
        wait = min(wait * 2, _WAIT_MAX_S)


class PostgresStripes:
    """Stripes as PostgreSQL session advisory locks, on a connection of their own (see the module)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._mutex = threading.Lock()
        self._conn: Any = None
        self._space = 0
        self._commit_space = 0
        self._pid = 0
        # Bumped each time the connection is dropped: the server has let go of every lock taken on it.
        self._generation = 0
        self._held: dict[int, int] = {}
        """Stripe → the generation of the connection it was taken on, until released."""

    def _connection(self) -> Any:
        if self._conn is None:
            dialect = self._engine.dialect
            args, kwargs = dialect.create_connect_args(self._engine.url)
            # As the store's own connections: fail within seconds when the server is unreachable.
            kwargs.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
            conn = dialect.connect(*args, **kwargs)
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT current_database() || '.' || coalesce(current_schema(), ''), pg_backend_pid()")
                where, self._pid = cursor.fetchone()
            # Stores in other schemas of the database do not share the locks (advisory locks are per database).
            self._space = zlib.crc32(f"nextmove.decide:{where}".encode()) & 0x7FFFFFFF
            self._commit_space = zlib.crc32(f"nextmove.decide-commit:{where}".encode()) & 0x7FFFFFFF
            self._conn = conn
        return self._conn

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        # The caller holds the mutex, so that what it knows of the connection stays true meanwhile.
        try:
            conn = self._connection()
            with conn.cursor() as cursor:
                cursor.execute(sql, {"space": self._space, "commit": self._commit_space, **params})
                return cursor.fetchone()
        except Exception as exc:  # the driver's errors: the connection (and its locks) may be gone
            self._drop()
            told = " ".join(str(exc).split())  # the driver's message, on one line
            raise StoreError(f"could not lock accounts for an online decision in PostgreSQL: {told}") from exc

    def try_acquire(self, stripe: int) -> bool:
        """Take ``stripe`` if no other process holds it."""
        with self._mutex:
            row = self._run(_TRY_SQL, {"stripe": stripe})
            if row[0]:
                self._held[stripe] = self._generation
            return bool(row[0])

    def release(self, stripes: Sequence[int]) -> None:
        """Release ``stripes`` in one statement; those lost with a dropped connection are only forgotten."""
        with self._mutex:
            taken_on = [self._held.pop(i, None) for i in stripes]
            # A lost stripe is not unlocked on the connection of now: that one never held it.
            live = [i for i, g in zip(stripes, taken_on, strict=True) if g == self._generation]
            if live:
                try:
                    self._run(
                        "SELECT count(pg_advisory_unlock(%(space)s, k)) FROM unnest(%(stripes)s::int[]) AS k",
                        {"stripes": live},
                    )
                except StoreError as exc:
                    # The connection was dropped, and the server let go of its locks with it: released
                    # all the same. Raising would tell a caller whose decision is already committed that
                    # it failed, and a retry would log a second one.
                    logger.warning("%s (the locks went with the connection)", exc)

    def lost(self, stripes: Sequence[int]) -> list[int]:
        """Those of ``stripes`` taken on a connection since dropped (the server let go of them with it)."""
        with self._mutex:
            return [i for i in stripes if self._held.get(i) != self._generation]

    def fence(self, stripes: Sequence[int]) -> Fence:
        """Make sure, in a commit's transaction, that the lock connection still holds ``stripes`` (see the module)."""
        order = sorted(stripes)

        def make_sure(cursor: Any) -> None:
            with self._mutex:
                lost = [i for i in order if self._held.get(i) != self._generation]
                generation, pid = self._generation, self._pid
                params = {"space": self._space, "commit": self._commit_space, "stripes": order, "pid": pid}
            if lost:
                raise lost_locks_error(lost, "a statement on it failed")
            # The commit keys first, in order (as every commit takes them: no two commits wait for each
            # other), so that nobody reads these accounts between the check and this commit's end.
            cursor.execute(_COMMIT_KEYS_SQL, params)
            cursor.execute(_NOT_HELD_SQL, params)
            (gone,) = cursor.fetchone()
            if gone:
                with self._mutex:
                    if self._generation == generation:  # its server session has ended: never use it again
                        self._drop()
                raise lost_locks_error(sorted(gone), "the database server ended it")

        return make_sure

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._generation += 1
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too; it is dropped anyway
                conn.close()

    def close(self) -> None:
        """Close the connection, which releases its locks."""
        with self._mutex:
            self._drop()


_TRY_SQL: Final[str] = """SELECT CASE
    WHEN NOT pg_try_advisory_lock(%(space)s, %(stripe)s) THEN false
    WHEN pg_try_advisory_xact_lock_shared(%(commit)s, %(stripe)s) THEN true
    ELSE NOT pg_advisory_unlock(%(space)s, %(stripe)s)
END"""
"""Take a stripe, unless a commit under it (by a holder whose lock connection died since) is under way."""

_COMMIT_KEYS_SQL: Final[str] = "SELECT count(pg_advisory_xact_lock(%(commit)s, k)) FROM unnest(%(stripes)s::int[]) AS k"

_NOT_HELD_SQL: Final[str] = """SELECT array_agg(k) FROM unnest(%(stripes)s::int[]) AS k WHERE NOT EXISTS (
    SELECT FROM pg_locks AS l
    WHERE l.locktype = 'advisory' AND l.granted AND l.pid = %(pid)s AND l.database = (
        SELECT oid FROM pg_database WHERE datname = current_database()
    ) AND l.classid = %(space)s::bigint::oid AND l.objid = k::bigint::oid AND l.objsubid = 2
)"""
"""The stripes the lock connection (its server process) does not hold, as pg_locks shows two-integer advisory keys."""


def lost_locks_error(stripes: Sequence[int], why: str) -> StoreError:
    """The error of a decision whose cross-process ``stripes`` were let go with the lock connection, ``why``."""
    which = f"stripe {stripes[0]}" if len(stripes) == 1 else f"stripes {', '.join(map(str, stripes))}"
    return StoreError(
        f"the cross-process locks on account {which} were lost with the store's lock connection ({why}), so "
        "another process may be deciding for the same accounts: nothing was logged; retry"
    )


class FileStripes:
    """Stripes as byte-range locks on a file beside a SQLite database (see the module)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._mutex = threading.Lock()

    def _file(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:  # not "held elsewhere": waiting would never end
                raise StoreError(f"cannot open the lock file {self._path} of the SQLite store: {exc}") from exc
        return self._fd

    def try_acquire(self, stripe: int) -> bool:
        """Take ``stripe`` if no other process holds it."""
        import fcntl

        with self._mutex:
            fd = self._file()
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, stripe)
            except BlockingIOError:
                return False
            except PermissionError:  # some systems answer EACCES for a lock held elsewhere
                return False
            return True

    def release(self, stripes: Sequence[int]) -> None:
        """Release ``stripes``."""
        import fcntl

        with self._mutex:
            for stripe in stripes:
                fcntl.lockf(self._file(), fcntl.LOCK_UN, 1, stripe)

    def lost(self, stripes: Sequence[int]) -> list[int]:
        """None: the file stays open, and its locks held, until :meth:`close`, once no decider holds them."""
        return []

    def fence(self, stripes: Sequence[int]) -> None:
        """None needed: the locks cannot be lost behind the holder's back (see :meth:`lost`)."""
        return None

    def close(self) -> None:
        """Close the file, which releases its locks."""
        with self._mutex:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)


class AccountLocks:
    """Locks on stripes of accounts: between the threads of this process, then across the store's processes.

    Take stripes in increasing order (or only try them) so that no two holders wait for each other.
    """

    def __init__(self, shared: SharedStripes | None, stripes: int = STRIPES) -> None:
        self.shared = shared
        self._local = [threading.Lock() for _ in range(stripes)]

    def stripe(self, account_id: str) -> int:
        """The stripe of ``account_id`` (the same in every process)."""
        return zlib.crc32(account_id.encode()) % len(self._local)

    def lock(self, stripe: int) -> None:
        """Take ``stripe`` here, then across processes, waiting for both."""
        self._local[stripe].acquire()
        if self.shared is not None:
            try:
                acquire(self.shared, stripe)
            except BaseException:
                self._local[stripe].release()
                raise

    def try_lock(self, stripe: int) -> bool:
        """Take ``stripe`` here and across processes if both are free now; whether it was taken."""
        if not self._local[stripe].acquire(blocking=False):
            return False
        if self.shared is not None:
            try:
                free = self.shared.try_acquire(stripe)
            except BaseException:
                self._local[stripe].release()
                raise
            if not free:
                self._local[stripe].release()
                return False
        return True

    def check_held(self, stripes: Iterable[int]) -> None:
        """Make sure ``stripes`` (locked by the caller) are still held across processes, before committing under them.

        Raises
        ------
        StoreError
            If some were let go behind the caller's back (PostgreSQL: another thread's statement
            failed on the shared lock connection, which was dropped with every lock on it). The
            caller must not commit; it still unlocks them, as always.
        """
        if self.shared is None:
            return
        lost = self.shared.lost(sorted(stripes))
        if lost:
            raise lost_locks_error(lost, "a statement on it failed")

    def fence(self, stripes: Iterable[int]) -> Fence | None:
        """What the commit under ``stripes`` (locked by the caller) runs first in its transaction (``log_decisions``'s
        ``fence``): it makes sure they are held across processes until the commit ends, or raises
        :class:`StoreError` so that nothing is logged. None when nothing needs to (no locks across processes, or
        locks that cannot be lost).
        """
        if self.shared is None:
            return None
        return self.shared.fence(sorted(stripes))

    def unlock(self, stripes: Iterable[int]) -> None:
        """Release ``stripes`` across processes (in one go), then here."""
        order = sorted(stripes, reverse=True)
        try:
            if self.shared is not None and order:
                self.shared.release(order)
        finally:
            for i in order:
                self._local[i].release()


_REGISTRY: weakref.WeakValueDictionary[str, AccountLocks] = weakref.WeakValueDictionary()
_REGISTRY_LOCK = threading.Lock()


def account_locks(store: Store) -> AccountLocks:
    """The account locks of ``store``'s database, shared by every decider of this process on it.

    Deciders of one process on the same database share the locks (POSIX file locks do not tell a
    process's own holders apart, and two stores opened on one database must still serialise);
    kept while a decider holds them. A store whose processes cannot be told (in-memory SQLite,
    another kind of store) gets locks of its own, between threads only.
    """
    where = _location(store)
    if where is None:
        return AccountLocks(None)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(where)
        if found is None:
            found = AccountLocks(_shared_stripes(store))
            shared = found.shared
            if shared is not None:
                weakref.finalize(found, shared.close)
            _REGISTRY[where] = found
        return found


def _location(store: Store) -> str | None:
    from nextmove.store.sql import SqlStore

    if not isinstance(store, SqlStore):
        return None
    url = store._engine.url  # the store package's own engine; the locks need a connection of their own
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or os.name != "posix":
            return None
        return "sqlite:" + os.path.realpath(url.database)
    return url.render_as_string(hide_password=False)


def _shared_stripes(store: Store) -> SharedStripes | None:
    from nextmove.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    engine = store._engine
    if engine.dialect.name == "postgresql":
        return PostgresStripes(engine)
    if engine.dialect.name == "sqlite" and engine.url.database:
        return FileStripes(f"{engine.url.database}-decide.lock")
    return None
