"""The SQL store: SQLAlchemy Core over a SQLite file (the default) or PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.pool import StaticPool

from nextmove._urls import HIDDEN, mask_unparsed_url, mask_url, url_secrets
from nextmove.errors import (
    ConfigError,
    ConflictError,
    NextmoveError,
    NotFoundError,
    NotInStoreError,
    StoreError,
    StoreURLError,
)
from nextmove.settings import Settings
from nextmove.store import schema
from nextmove.store.base import ModelsChangedError, Store
from nextmove.store.records import (
    POLICY_MODEL_KIND,
    RUN_STATUSES,
    ActivityRecord,
    ApiKeyRecord,
    AuditEntry,
    DecisionPlay,
    DecisionRecord,
    FeedbackEvent,
    HoldEvent,
    ModelVersionRecord,
    RecommendationRecord,
    RunRecord,
    RunStatus,
    policy_version,
    request_id_conflict,
    utcnow,
)

BATCH_ROWS: Final[int] = 5000
"""Rows sent per executemany: large enough to be fast, small enough to bound memory."""

SUPPORTED_URLS: Final[str] = (
    "sqlite:////absolute/path/nextmove.db or sqlite:///relative/path/nextmove.db (SQLite) "
    "or postgresql+psycopg://user:password@host:5432/dbname (PostgreSQL)"
)

SQLITE_BUSY_TIMEOUT_MS: Final[int] = 30_000
PG_CONNECT_TIMEOUT_S: Final[int] = 10

# Execution option that marks a write transaction (SQLite then takes the write lock at BEGIN).
_WRITE_OPTION: Final[str] = "nextmove_write"
# Execution option of a write that may skip the flush to disk at commit (decisions, audit of
# reads): committed before the call returns, so it survives the server process being killed,
# but an OS crash or power loss may lose the last fraction of a second of such writes.
_RELAXED_OPTION: Final[str] = "nextmove_relaxed_sync"
# Execution option of a SQLite write when a background thread checkpoints the write-ahead log
# (SqlStore.checkpoint_in_background): the write's connection never checkpoints it itself.
_MANUAL_CHECKPOINT_OPTION: Final[str] = "nextmove_manual_checkpoint"
# Key of the PostgreSQL advisory lock that serialises schema creation ("nextmove" in ASCII).
_PG_SCHEMA_LOCK: Final[int] = int.from_bytes(b"nextmove", "big")
# Key of the one that every change of the model versions takes (per database: stores in two schemas share it).
_PG_MODELS_LOCK: Final[int] = int.from_bytes(b"nm.model", "big")

_RUN_COLUMNS: Final = tuple(c.name for c in schema.runs.columns)
_REC_COLUMNS: Final = tuple(c.name for c in schema.recommendations.columns)
_FEEDBACK_COLUMNS: Final = tuple(c.name for c in schema.feedback_events.columns)
_MODEL_COLUMNS: Final = tuple(c.name for c in schema.model_versions.columns)
_DECISION_COLUMNS: Final = tuple(c.name for c in schema.decisions.columns)
_KEY_COLUMNS: Final = tuple(c.name for c in schema.api_keys.columns)
_AUDIT_COLUMNS: Final = tuple(c.name for c in schema.audit_log.columns if c.name != "entry_id")

logger = logging.getLogger(__name__)

_INSERT_AUDIT: Final = sa.insert(schema.audit_log)
# The unique index of decisions.request_id, named by the metadata's naming convention.
_REQUEST_ID_UNIQUE: Final[str] = "uq_decisions_request_id"

CHECKPOINT_EVERY_S: Final[float] = 1.0
"""How often :meth:`SqlStore.checkpoint_in_background` moves the SQLite write-ahead log into the database."""

_T = TypeVar("_T")

_OLDEST_MIGRATABLE: Final[int] = 1
"""The oldest schema version this nextmove upgrades in place (by adding tables, columns and indexes)."""


def open_store(url: str | None = None, settings: Settings | None = None, *, create: bool = True) -> Store:
    """Open (and if needed create) the store at ``url``.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL of the store: ``sqlite:////absolute/path/nextmove.db`` (four slashes;
        three for a path relative to the current folder, ``sqlite:///~/nextmove.db`` for one in
        the home folder) or ``postgresql+psycopg://user:password@host:5432/dbname``
        (``postgresql://`` means the same). None: ``settings.resolved_store_url()``, i.e.
        ``NEXTMOVE_STORE_URL`` or the SQLite file ``nextmove.db`` in the workspace.
        ``sqlite://`` is an in-memory store for tests, usable from one thread only.
    settings : Settings, optional
        Where to read the URL from when ``url`` is None; default ``Settings()``.
    create : bool
        False for a caller that needs a store already there (the commands that read one): a
        SQLite file that does not exist, or a database without nextmove's tables, is a
        :class:`~nextmove.errors.NotFoundError`; nothing is created and the database is left as
        it was. True: an empty database gets nextmove's tables.

    Returns
    -------
    Store
        The open store; close it with ``close()`` or use it as a context manager.

    Raises
    ------
    StoreError
        If the URL's scheme or options are not supported (a :class:`~nextmove.errors.StoreURLError`),
        the database cannot be reached, it holds a store of another schema version, or it holds
        another application's tables and none of nextmove's (``create=True``; a
        :class:`~nextmove.errors.StoreURLError` too).
    NotFoundError
        With ``create=False``, if there is no nextmove store at ``url``.

    Examples
    --------
    >>> with open_store("sqlite://") as store:
    ...     store.start_run(RunRecord(run_id="r1", book_source="demo", playbook_hash="h"))
    ...     store.latest_run().run_id
    'r1'
    """
    raw = url if url is not None else (settings or Settings()).resolved_store_url()
    parsed = _parse_url(raw)
    path = _sqlite_path(parsed)
    if path is not None and not path.exists():
        meant = _absolute_meant(path)
        if not create:
            raise NotFoundError(
                f"there is no store at {path}: `nextmove run` writes one (--store, or NEXTMOVE_STORE_URL); "
                "pass --store with the URL the run used" + (f"; {meant}" if meant else "")
            )
        if meant:
            logger.warning("a new SQLite store will be made at %s; %s", path.absolute(), meant)
    engine = _create_engine(parsed)
    try:
        return SqlStore(engine, create=create)
    except BaseException:
        engine.dispose()
        raise


def _sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (also of SQLite's ``file:`` URI form, ``?uri=true``); None: PostgreSQL, in memory."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = str(url.database)
    if url.query.get("uri") in ("true", "1") and database.startswith("file:"):
        database = database.removeprefix("file:")
        if database.startswith("//"):  # file://host/path: the host is empty or localhost
            database = "/" + database[2:].partition("/")[2]
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            return None
    return Path(database)


_DAMAGED_SQLITE: Final = re.compile(r"malformed|not a database|unsupported file format", re.IGNORECASE)
"""SQLite's words for a file that is damaged, or no SQLite database at all."""

_DAMAGED_HINT: Final[str] = (
    "the SQLite file is damaged (or is no SQLite database): restore it from a backup, or give --store a new "
    "file to start a new store (the damaged one is left as it is)"
)

_DISK_TROUBLE: Final = re.compile(r"disk I/O error|disk is full", re.IGNORECASE)
"""SQLite's words when it cannot write the disk: full (``SQLITE_FULL``), or so full that it cannot make its
write-ahead log beside the file (``SQLITE_IOERR``), or failing."""

_PG_NOT_ALLOWED: Final[str] = "42501"
"""PostgreSQL's SQLSTATE of "permission denied" and "must be owner of table …" (insufficient_privilege)."""


def sqlite_open_hint(path: Path | None, reason: str) -> str:
    """What to check when a SQLite store cannot be opened, from SQLite's ``reason`` and where the file lies.

    A damaged file is not a folder's fault; a file on a read-only mount can be read by no one, as
    SQLite in WAL mode writes beside it (``FILE-wal``, ``FILE-shm``) even to read.

    Examples
    --------
    >>> print(sqlite_open_hint(Path("s.db"), "database disk image is malformed"))
    ... # doctest: +ELLIPSIS
    the SQLite file is damaged (or is no SQLite database): restore it from a backup, or ...
    """
    if _DAMAGED_SQLITE.search(reason):
        return _DAMAGED_HINT
    folder = None if path is None else path.absolute().parent
    if folder is not None and folder.is_dir():
        readonly = False
        with contextlib.suppress(OSError, AttributeError):  # no statvfs on Windows
            readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        name = path.name if path is not None else "FILE"
        beside = f"SQLite writes beside the file even to read it ({name}-wal, {name}-shm)"
        if readonly:
            return (
                f"{folder} is on a read-only mount, and {beside}: copy the file to a writable folder and "
                "give --store the copy, or mount it read-write"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            return (
                f"{folder} is not writable by this user, and {beside}: copy the file to a writable folder and "
                "give --store the copy, or let this user write the folder"
            )
        if _DISK_TROUBLE.search(reason):
            return _disk_hint(folder)
    return "check that the file's folder exists and is writable and that the file, if it exists, is a SQLite database"


def _disk_hint(folder: Path) -> str:
    """What to do when SQLite cannot write the disk holding ``folder``: it may be full (how much is free on it)."""
    left = ""
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(folder).free
        left = f" ({free / 1e6:,.1f} MB free)" if free >= 1e6 else f" ({free:,} bytes free)"
    return (
        f"the disk holding {folder}{left} may be full, or failing: free some space on it (SQLite writes its "
        "write-ahead log beside the file), or give --store a file on another disk"
    )


def _absolute_meant(path: Path) -> str | None:
    """A note when a relative SQLite path looks like an absolute one written with three slashes, else None.

    ``sqlite:///tmp/x.db`` is ``tmp/x.db`` in the current folder; ``sqlite:////tmp/x.db`` is
    ``/tmp/x.db``. The path looks meant as absolute when its first folder is not in the current
    folder but is at the root (``tmp``, ``home``, ``srv`` …).
    """
    if path.is_absolute() or len(path.parts) < 2:
        return None
    top = path.parts[0]
    if Path(top).exists() or not (Path("/") / top).is_dir():
        return None
    return (
        f"sqlite:///{path.as_posix()} (three slashes) is the path {path.as_posix()} relative to the current "
        f"folder; for the absolute path /{path.as_posix()} write sqlite:////{path.as_posix()} (four slashes)"
    )


class SqlStore:
    """The store over a SQLAlchemy engine (SQLite or PostgreSQL); see :class:`Store`.

    Prefer :func:`open_store`, which builds the engine with the settings this class relies
    on (SQLite: foreign keys, busy timeout and write transactions that lock at ``BEGIN``).
    Creating one checks the database is reachable and refuses a database of another schema
    version; with ``create``, it creates the tables in an empty database and puts a SQLite file
    in WAL mode. A store already at this schema version is checked without taking the write lock.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The engine; the store disposes it on :meth:`close`.
    create : bool
        Whether an empty database gets nextmove's tables (True), or is a
        :class:`~nextmove.errors.NotFoundError` and is left as it was (False).

    Raises
    ------
    StoreError
        If the database cannot be reached, is of another schema version, or holds another
        application's tables and none of nextmove's.
    NotFoundError
        Without ``create``, if the database holds none of nextmove's tables.
    """

    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._relaxed_write_engine = engine.execution_options(**{_WRITE_OPTION: True, _RELAXED_OPTION: True})
        self._url = mask_url(engine.url)
        self._closed = False
        # SQLite lets one writer in at a time and makes the others retry with growing sleeps
        # (its busy handler), so threads of one process that write at once would wait far longer
        # than the writes take: they queue on this lock instead. Other processes still meet the
        # busy timeout. PostgreSQL locks rows, not the database, and needs no such lock.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        self._hot = _HotPath(engine.dialect)
        self._in_memory = engine.dialect.name == "sqlite" and _sqlite_path(engine.url) is None
        self._driver_errors: tuple[type[Exception], ...] = (engine.dialect.loaded_dbapi.Error,)
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._check_reachable()
        self._prepare_schema(create=create)

    def __repr__(self) -> str:
        return f"SqlStore(url={self._url!r})"

    @property
    def url(self) -> str:
        """The store's URL, with the password hidden."""
        return self._url

    # --- runs ---------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        """Record that a run has started; see :meth:`Store.start_run`."""
        with self._errors(f"start run {run.run_id!r}"), self._write() as conn:
            if self._run_status(conn, run.run_id) is not None:
                raise StoreError(
                    f"run {run.run_id!r} already exists in the store at {self._url}; start each run with a new run_id"
                )
            conn.execute(sa.insert(schema.runs).values(_row(run, _RUN_COLUMNS)))

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Mark a run finished now; see :meth:`Store.finish_run`."""
        if status not in RUN_STATUSES:
            raise ConfigError(f"status must be one of {', '.join(RUN_STATUSES)}; got {status!r}")
        values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
        if summary is not None:
            values["summary"] = summary
        with self._errors(f"finish run {run_id!r}"), self._write() as conn:
            result = conn.execute(sa.update(schema.runs).where(schema.runs.c.run_id == run_id).values(values))
            if result.rowcount == 0:
                raise self._missing("run", run_id, "list_runs()")

    def save_run(self, run: RunRecord, recommendations: Iterable[RecommendationRecord]) -> None:
        """Write a run and its recommendations in one transaction; see :meth:`Store.save_run`."""
        insert_recommendations = sa.insert(schema.recommendations)
        with self._errors(f"save run {run.run_id!r}"), self._write() as conn:
            status = self._run_status(conn, run.run_id, lock=True)
            row = _row(run, _RUN_COLUMNS)
            # A run still 'running' was either recorded by start_run (no recommendations yet: this
            # save completes it) or saved before with status 'running' (it has them: refused as a
            # finished run is, rather than with the recommendations' unique-key error).
            saved = status is not None and (
                status != "running"
                or conn.execute(
                    sa.select(schema.recommendations.c.run_id)
                    .where(schema.recommendations.c.run_id == run.run_id)
                    .limit(1)
                ).first()
                is not None
            )
            if saved:
                raise StoreError(
                    f"run {run.run_id!r} was already saved with status {status!r} in the store "
                    f"at {self._url}; a saved run is not overwritten, use a new run_id"
                )
            if status is None:
                conn.execute(sa.insert(schema.runs).values(row))
            else:
                conn.execute(sa.update(schema.runs).where(schema.runs.c.run_id == run.run_id).values(row))
            for batch in _batches(recommendations, BATCH_ROWS):
                rows = [self._recommendation_row(rec, run.run_id) for rec in batch]
                conn.execute(insert_recommendations, rows)

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``; see :meth:`Store.get_run`."""
        query = sa.select(schema.runs).where(schema.runs.c.run_id == run_id)
        with self._errors(f"read run {run_id!r}"), self._read() as conn:
            row = conn.execute(query).mappings().one_or_none()
        if row is None:
            raise self._missing("run", run_id, "list_runs()")
        return RunRecord(**row)

    def list_runs(self, limit: int = 20, *, status: RunStatus | None = None) -> list[RunRecord]:
        """The most recent runs, newest first; see :meth:`Store.list_runs`."""
        _check_count("limit", limit)
        query = (
            sa.select(schema.runs).order_by(schema.runs.c.created_at.desc(), schema.runs.c.run_id.desc()).limit(limit)
        )
        if status is not None:
            query = query.where(schema.runs.c.status == status)
        with self._errors("list runs"), self._read() as conn:
            return [RunRecord(**row) for row in conn.execute(query).mappings()]

    def latest_run(self, *, status: RunStatus | None = None) -> RunRecord | None:
        """The newest run, or None; see :meth:`Store.latest_run`."""
        found = self.list_runs(1, status=status)
        return found[0] if found else None

    # --- recommendations ----------------------------------------------------------------

    def recommendations(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        action_id: str | None = None,
        account_ids: Collection[str] | None = None,
        health_band: str | None = None,
        owners: Collection[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RecommendationRecord]:
        """A run's recommendations by account; see :meth:`Store.recommendations`."""
        _check_count("offset", offset)
        if limit is not None:
            _check_count("limit", limit)
        table = schema.recommendations
        query = (
            sa.select(table)
            .where(*_recommendation_filters(run_id, owner, action_id, account_ids, health_band, owners))
            .order_by(table.c.account_id)
            .limit(limit)
            .offset(offset)
        )
        with self._errors(f"read the recommendations of run {run_id!r}"), self._read() as conn:
            return [RecommendationRecord(**row) for row in conn.execute(query).mappings()]

    def count_recommendations(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        action_id: str | None = None,
        account_ids: Collection[str] | None = None,
        health_band: str | None = None,
        owners: Collection[str] | None = None,
    ) -> int:
        """How many recommendations match; see :meth:`Store.count_recommendations`."""
        query = (
            sa.select(sa.func.count())
            .select_from(schema.recommendations)
            .where(*_recommendation_filters(run_id, owner, action_id, account_ids, health_band, owners))
        )
        with self._errors(f"count the recommendations of run {run_id!r}"), self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def recommendation_values(
        self,
        run_id: str,
        fields: Mapping[str, Sequence[str | int]],
        *,
        action_id: str | None = None,
        account_ids: Collection[str] | None = None,
        batch_rows: int = 10_000,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Some values of a run's recommendations, streamed in batches; see :meth:`Store.recommendation_values`."""
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be 1 or more; got {batch_rows}")
        filters = _recommendation_filters(run_id, None, action_id, account_ids)
        query, values = _recommendation_values_query(fields, self._engine.dialect.name, filters)
        return self._streamed_values(run_id, query, values, batch_rows)

    def _streamed_values(
        self,
        run_id: str,
        query: sa.Select[Any],
        values: Callable[[Sequence[Any]], tuple[Any, ...]],
        batch_rows: int,
    ) -> Iterator[list[tuple[Any, ...]]]:
        with self._errors(f"read the recommendations of run {run_id!r}"), self._read() as conn:
            # yield_per streams: a server-side cursor on PostgreSQL, fetchmany on SQLite.
            result = conn.execution_options(yield_per=batch_rows).execute(query)
            for batch in result.partitions():
                yield [values(row) for row in batch]

    def shared_accounts(self, run_id: str, others: Collection[str]) -> dict[str, int]:
        """How many accounts each of ``others`` shares with ``run_id``; see :meth:`Store.shared_accounts`."""
        if not others:
            return {}
        mine, theirs = schema.recommendations.alias("mine"), schema.recommendations.alias("theirs")
        query = (
            sa.select(theirs.c.run_id, sa.func.count())
            .select_from(mine.join(theirs, mine.c.account_id == theirs.c.account_id))
            .where(mine.c.run_id == run_id, theirs.c.run_id.in_(sorted(set(others) - {run_id})))
            .group_by(theirs.c.run_id)
        )
        with self._errors(f"count the accounts other runs share with run {run_id!r}"), self._read() as conn:
            return {str(other): int(n) for other, n in conn.execute(query)}

    # --- feedback -----------------------------------------------------------------------

    def add_feedback(self, events: Sequence[FeedbackEvent], *, audit: Sequence[AuditEntry] = ()) -> int:
        """Store new feedback events, ignoring known ones; see :meth:`Store.add_feedback`."""
        # The first copy of an event id wins, as it does against stored events; a copy that says
        # something else is another event under the same id, refused like one stored before.
        unique: dict[str, FeedbackEvent] = {}
        for feedback_event in events:
            first = unique.setdefault(feedback_event.event_id, feedback_event)
            if not first.same_event_as(feedback_event):
                raise _event_id_conflict(feedback_event.event_id)
        if not unique:
            if audit:
                self.add_audit(audit)
            return 0
        received_at = utcnow()
        # Inserting in event_id order makes concurrent senders of overlapping batches wait for
        # each other's keys in the same order; any other order can deadlock PostgreSQL.
        rows = [
            {**_row(item, _FEEDBACK_COLUMNS), "received_at": item.received_at or received_at}
            for item in (unique[key] for key in sorted(unique))
        ]
        table = schema.feedback_events
        inserted: set[str] = set()
        with self._errors(f"add {len(rows)} feedback events"), self._write() as conn:
            # ON CONFLICT DO NOTHING, not a check-then-insert, so that two senders of the same
            # event at once store it once; RETURNING counts only the rows really inserted.
            insert = _insert_ignoring_conflicts(conn, table, "event_id").returning(table.c.event_id)
            for batch in _batches(rows, BATCH_ROWS):
                inserted.update(conn.execute(insert, batch).scalars())
            # An id stored before is a retry only if it is the same event: anything else (another
            # account's event, another body) would be dropped silently. Refused, the whole batch
            # rolls back. Read after the insert, so a concurrent sender's event is seen committed.
            known = sorted(set(unique) - inserted)
            for batch_ids in _batches(known, BATCH_ROWS):
                query = sa.select(table).where(table.c.event_id.in_(batch_ids)).order_by(table.c.event_id)
                for row in conn.execute(query).mappings():
                    if not unique[row["event_id"]].same_event_as(FeedbackEvent(**row)):
                        raise _event_id_conflict(row["event_id"])
            _insert_audit(conn, audit)
        return len(inserted)

    def count_feedback(self) -> int:
        """How many feedback events the store holds; see :meth:`Store.count_feedback`."""
        query = sa.select(sa.func.count()).select_from(schema.feedback_events)
        with self._errors("count feedback events"), self._read() as conn:
            return int(conn.execute(query).scalar_one())

    # --- decisions ----------------------------------------------------------------------

    def log_decisions(
        self,
        decisions: Sequence[DecisionRecord],
        *,
        audit: Sequence[AuditEntry] = (),
        fence: Callable[[Any], None] | None = None,
    ) -> list[DecisionRecord]:
        """Log decisions made online; see :meth:`Store.log_decisions`."""
        asked = sorted({d.request_id for d in decisions if d.request_id is not None})
        with self._errors(f"log {len(decisions)} decisions"):
            # Another writer (a second server on a PostgreSQL store) may log one of these request ids
            # between the look-up and the insert: the unique index then refuses the insert, and the
            # whole transaction is tried again, finding that decision and returning it as for a retry.
            # Each conflict settles at least one request id, so this ends.
            attempt = 0
            while True:
                try:
                    return self._log_decisions_once(decisions, asked, audit, fence)
                except self._driver_errors as exc:
                    if attempt >= len(asked) or not _is_request_id_conflict(exc):
                        raise
                    attempt += 1
                    logger.debug("request id logged concurrently; looking it up again: %s", exc)

    def _log_decisions_once(
        self,
        decisions: Sequence[DecisionRecord],
        asked: Sequence[str],
        audit: Sequence[AuditEntry],
        fence: Callable[[Any], None] | None,
    ) -> list[DecisionRecord]:
        with self._relaxed_driver_write() as cursor:
            if fence is not None:
                fence(cursor)
            known: dict[str, DecisionRecord] = {}
            for batch in _batches(asked, BATCH_ROWS):
                known.update({d.request_id: d for d in self._hot.decisions_asked(cursor, batch) if d.request_id})
            out: list[DecisionRecord] = []
            new_rows: list[dict[str, Any]] = []
            for decision in decisions:
                if decision.request_id is not None and decision.request_id in known:
                    out.append(_retried(known[decision.request_id], decision))
                    continue
                if decision.request_id is not None:
                    # A request id sent twice in one batch is one decision too.
                    known[decision.request_id] = decision
                new_rows.append(_row(decision, _DECISION_COLUMNS))
                out.append(decision)
            self._hot.insert(cursor, self._hot.insert_decision, new_rows)
            self._hot.insert(cursor, self._hot.insert_audit, [_row(entry, _AUDIT_COLUMNS) for entry in audit])
        return out

    def decisions(
        self,
        *,
        account_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DecisionRecord]:
        """Logged decisions, newest first; see :meth:`Store.decisions`."""
        _check_count("offset", offset)
        if limit is not None:
            _check_count("limit", limit)
        table = schema.decisions
        query = sa.select(table).order_by(table.c.ts.desc(), table.c.decision_id.desc()).limit(limit).offset(offset)
        if account_id is not None:
            query = query.where(table.c.account_id == account_id)
        if since is not None:
            query = query.where(table.c.ts >= since)
        with self._errors("read decisions"), self._read() as conn:
            return [DecisionRecord(**row) for row in conn.execute(query).mappings()]

    def decision_plays(self, run_id: str, *, since: datetime | None = None) -> list[DecisionPlay]:
        """What the decisions of a run gave, oldest first; see :meth:`Store.decision_plays`."""
        table = schema.decisions
        query = (
            sa.select(table.c.decision_id, table.c.account_id, table.c.ts, table.c.action_id, table.c.variant)
            .where(table.c.run_id == run_id)
            .order_by(table.c.ts, table.c.decision_id)
        )
        if since is not None:
            query = query.where(table.c.ts >= since)
        with self._errors(f"read the decisions of run {run_id!r}"), self._read() as conn:
            return [DecisionPlay(*row) for row in conn.execute(query)]

    def activity(self, account_id: str, since: datetime) -> list[ActivityRecord]:
        """Plays decided, done or dismissed for an account since a time; see :meth:`Store.activity`."""
        self._check_open()
        with self._errors(f"read the activity of account {account_id!r}"):
            out = self._hot.activity(self._engine, account_id, since)
        return sorted(out, key=lambda r: (r.ts, r.record_id))

    def get_decision(self, decision_id: str) -> DecisionRecord:
        """The decision ``decision_id``; see :meth:`Store.get_decision`."""
        table = schema.decisions
        with self._errors(f"read decision {decision_id!r}"), self._read() as conn:
            row = conn.execute(sa.select(table).where(table.c.decision_id == decision_id)).mappings().one_or_none()
        if row is None:
            raise self._missing("decision", decision_id, "decisions()")
        return DecisionRecord(**row)

    # --- API keys -----------------------------------------------------------------------

    def create_api_key(self, record: ApiKeyRecord, *, audit: Sequence[AuditEntry] = ()) -> None:
        """Store a new API key; see :meth:`Store.create_api_key`."""
        table = schema.api_keys
        with self._errors(f"create API key {record.key_id!r}"), self._write() as conn:
            if conn.execute(sa.select(table.c.key_id).where(table.c.key_id == record.key_id)).first() is not None:
                raise StoreError(f"API key {record.key_id!r} already exists in the store at {self._url}")
            conn.execute(sa.insert(table).values(_row(record, _KEY_COLUMNS)))
            _insert_audit(conn, audit)

    def api_key(self, key_id: str) -> ApiKeyRecord:
        """The API key ``key_id`` (also when revoked); see :meth:`Store.api_key`."""
        table = schema.api_keys
        with self._errors(f"read API key {key_id!r}"), self._read() as conn:
            row = conn.execute(sa.select(table).where(table.c.key_id == key_id)).mappings().one_or_none()
        if row is None:
            raise self._missing("API key", key_id, "list_api_keys()")
        return ApiKeyRecord(**row)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, revoked ones too, oldest first; see :meth:`Store.list_api_keys`."""
        table = schema.api_keys
        with self._errors("list API keys"), self._read() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.created_at, table.c.key_id)).mappings()
            return [ApiKeyRecord(**row) for row in rows]

    def revoke_api_key(self, key_id: str, *, audit: Sequence[AuditEntry] = ()) -> None:
        """Revoke the API key ``key_id`` now; see :meth:`Store.revoke_api_key`."""
        table = schema.api_keys
        with self._errors(f"revoke API key {key_id!r}"), self._write() as conn:
            result = conn.execute(
                sa.update(table)
                .where(table.c.key_id == key_id, table.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if (
                result.rowcount == 0
                and conn.execute(sa.select(table.c.key_id).where(table.c.key_id == key_id)).first() is None
            ):
                raise self._missing("API key", key_id, "list_api_keys()")
            _insert_audit(conn, audit)

    # --- audit log ----------------------------------------------------------------------

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log; see :meth:`Store.add_audit`."""
        if not entries:
            return
        with self._errors(f"write {len(entries)} audit entries"), self._write(relaxed=True) as conn:
            _insert_audit(conn, entries)

    def audit_log(
        self,
        *,
        key_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = 100,
    ) -> list[AuditEntry]:
        """Audit entries, newest first; see :meth:`Store.audit_log`."""
        if limit is not None:
            _check_count("limit", limit)
        table = schema.audit_log
        query = sa.select(table).order_by(table.c.ts.desc(), table.c.entry_id.desc()).limit(limit)
        if key_id is not None:
            query = query.where(table.c.key_id == key_id)
        if since is not None:
            query = query.where(table.c.ts >= since)
        with self._errors("read the audit log"), self._read() as conn:
            return [
                AuditEntry(**{k: v for k, v in row.items() if k != "entry_id"})
                for row in conn.execute(query).mappings()
            ]

    def count_audit(self, *, before: datetime) -> int:
        """How many audit entries were made before ``before``; see :meth:`Store.count_audit`."""
        table = schema.audit_log
        query = sa.select(sa.func.count()).select_from(table).where(table.c.ts < before)
        with self._errors("count audit entries"), self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def delete_audit(self, *, before: datetime, record: Callable[[int], Sequence[AuditEntry]] | None = None) -> int:
        """Delete the audit entries made before ``before``; see :meth:`Store.delete_audit`."""
        table = schema.audit_log
        query = sa.delete(table).where(table.c.ts < before)
        with self._errors("delete old audit entries"), self._write() as conn:
            deleted = int(conn.execute(query).rowcount)
            if record is not None:
                _insert_audit(conn, record(deleted))
            return deleted

    def feedback(
        self,
        account_id: str | None = None,
        run_id: str | None = None,
        *,
        received_since: datetime | None = None,
        kind: str | None = None,
    ) -> list[FeedbackEvent]:
        """Stored feedback events, oldest first; see :meth:`Store.feedback`."""
        table = schema.feedback_events
        query = sa.select(table).order_by(table.c.ts, table.c.event_id)
        if account_id is not None:
            query = query.where(table.c.account_id == account_id)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        if received_since is not None:
            query = query.where(table.c.received_at >= received_since)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self._errors("read feedback events"), self._read() as conn:
            return [FeedbackEvent(**row) for row in conn.execute(query).mappings()]

    def hold_events(self, account_id: str | None = None, *, until: datetime | None = None) -> list[HoldEvent]:
        """Snoozes and dismissals with the actions they name, oldest first; see :meth:`Store.hold_events`."""
        self._check_open()
        whose = "" if account_id is None else f" of account {account_id!r}"
        with self._errors(f"read the snoozed and dismissed feedback{whose}"):
            out = self._hot.hold_events(self._engine, account_id, until)
        return sorted(out, key=lambda h: (h.event.ts, h.event.event_id))

    def done_events(self, *, after: datetime | None = None, before: datetime) -> list[HoldEvent]:
        """``done`` events in a time range with the actions they name, oldest first; see :meth:`Store.done_events`."""
        self._check_open()
        with self._errors("read the done feedback"):
            out = self._hot.done_events(self._engine, after, before)
        return sorted(out, key=lambda h: (h.event.ts, h.event.event_id))

    # --- models -------------------------------------------------------------------------

    def save_model(self, record: ModelVersionRecord) -> None:
        """Store a model version; see :meth:`Store.save_model`."""
        with self._errors(f"save model {record.model_id!r}"), self._write() as conn:
            self._lock_models(conn)
            self._insert_model(conn, record)
            if record.active:
                self._activate(conn, record.model_id, record.kind)

    def _insert_model(self, conn: Connection, record: ModelVersionRecord) -> None:
        table = schema.model_versions
        exists = conn.execute(sa.select(table.c.model_id).where(table.c.model_id == record.model_id)).first()
        if exists is not None:
            raise StoreError(
                f"model {record.model_id!r} already exists in the store at {self._url}; "
                "model versions are immutable, save it under a new model_id"
            )
        # Inserted inactive, then activated in the same transaction, so the
        # one-active-per-kind rule is kept by the same code path as activate_model.
        conn.execute(sa.insert(table).values({**_row(record, _MODEL_COLUMNS), "active": False}))

    def activate_models(
        self,
        model_ids: Sequence[str],
        *,
        new: ModelVersionRecord | None = None,
        expect_active: Mapping[str, str | None] | None = None,
    ) -> None:
        """Save ``new`` and activate ``model_ids`` in one transaction, if the active ones are as expected.

        See :meth:`Store.activate_models`.
        """
        table = schema.model_versions
        doing = f"activate models {', '.join(repr(m) for m in model_ids)}" + (
            "" if new is None else f" and save model {new.model_id!r}"
        )
        with self._errors(doing), self._write() as conn:
            self._lock_models(conn)
            for kind, expected in (expect_active or {}).items():
                active = conn.execute(
                    sa.select(table.c.model_id).where(table.c.kind == kind, table.c.active)
                ).scalar_one_or_none()
                if active != expected:
                    raise ModelsChangedError(
                        f"the active {kind!r} model in the store at {self._url} is {active!r}, not {expected!r} "
                        "as expected: another process changed it meanwhile; nothing was changed"
                    )
            if new is not None:
                self._insert_model(conn, new)
            for model_id in model_ids:
                of_kind = conn.execute(sa.select(table.c.kind).where(table.c.model_id == model_id)).scalar_one_or_none()
                if of_kind is None:
                    raise self._missing("model", model_id, "list_models()")
                self._activate(conn, model_id, str(of_kind))
            if new is not None and new.active:
                self._activate(conn, new.model_id, new.kind)

    def load_model(self, model_id: str) -> ModelVersionRecord:
        """The model version ``model_id``; see :meth:`Store.load_model`."""
        table = schema.model_versions
        with self._errors(f"load model {model_id!r}"), self._read() as conn:
            row = conn.execute(sa.select(table).where(table.c.model_id == model_id)).mappings().one_or_none()
        if row is None:
            raise self._missing("model", model_id, "list_models()")
        return ModelVersionRecord(**row)

    def active_model(self, kind: str) -> ModelVersionRecord | None:
        """The active model of ``kind``, or None; see :meth:`Store.active_model`."""
        table = schema.model_versions
        query = sa.select(table).where(table.c.kind == kind, table.c.active)
        with self._errors(f"read the active {kind!r} model"), self._read() as conn:
            row = conn.execute(query).mappings().one_or_none()
        return None if row is None else ModelVersionRecord(**row)

    def activate_model(self, model_id: str) -> None:
        """Make ``model_id`` the one active model of its kind; see :meth:`Store.activate_model`."""
        table = schema.model_versions
        with self._errors(f"activate model {model_id!r}"), self._write() as conn:
            self._lock_models(conn)
            kind = conn.execute(sa.select(table.c.kind).where(table.c.model_id == model_id)).scalar_one_or_none()
            if kind is None:
                raise self._missing("model", model_id, "list_models()")
            self._activate(conn, model_id, kind)

    def list_models(self, kind: str | None = None) -> list[ModelVersionRecord]:
        """Model versions, newest first; see :meth:`Store.list_models`."""
        table = schema.model_versions
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.model_id.desc())
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self._errors("list models"), self._read() as conn:
            return [ModelVersionRecord(**row) for row in conn.execute(query).mappings()]

    # --- lifetime -----------------------------------------------------------------------

    def checkpoint_in_background(self, every_s: float = CHECKPOINT_EVERY_S) -> bool:
        """Copy SQLite's write-ahead log into the database from a thread of its own, every ``every_s`` seconds.

        SQLite otherwise does it inside whichever commit takes the log past 1,000 pages: that
        commit, and every write waiting behind it, stalls for many milliseconds. A server that
        answers in milliseconds calls this once: its writes then never checkpoint themselves.
        Commits wait for the disk exactly as before; the checkpoint is PASSIVE, so it never makes
        a reader or a writer wait. The thread stops with :meth:`close`.

        Returns whether the thread runs: False for PostgreSQL and in-memory SQLite, which have no
        such log, and when it runs already.
        """
        if every_s <= 0:
            raise ConfigError(f"every_s must be above 0; got {every_s}")
        has_log = self._engine.dialect.name == "sqlite" and not self._in_memory
        if not has_log or self._checkpointer is not None:
            return False
        self._check_open()
        options = {_MANUAL_CHECKPOINT_OPTION: True}
        self._write_engine = self._write_engine.execution_options(**options)
        self._relaxed_write_engine = self._relaxed_write_engine.execution_options(**options)
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(every_s,), name="nextmove-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()
        return True

    def checkpoint(self) -> tuple[int, int, int]:
        """Run one PASSIVE checkpoint of SQLite's write-ahead log now: (busy, pages in the log, pages copied).

        Raises
        ------
        StoreError
            If the store is not a SQLite file or the checkpoint fails.
        """
        self._check_open()
        if self._engine.dialect.name != "sqlite":
            raise StoreError(f"the store at {self._url} is not SQLite: it has no write-ahead log to checkpoint")
        with self._errors("checkpoint the write-ahead log"), _driver_cursor(self._engine) as (_, cursor):
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            row = cursor.fetchone()
        busy, log_pages, copied = row if row is not None else (0, 0, 0)
        return int(busy), int(log_pages), int(copied)

    def check_writable(self) -> None:
        """Check the store takes writes, by a change rolled back: a server checks it before it starts.

        A store that opens and reads may still refuse every write (a read-only SQLite file,
        a read-only mount, a PostgreSQL user allowed only to read or a standby server);
        a server over it would answer every request it must log with an error.

        Raises
        ------
        StoreError
            If the store refuses the write, saying what to check.
        """
        self._check_open()
        meta = schema.meta
        # Changes nothing, but is a write all the same: a read-only database refuses it.
        probe = sa.update(meta).where(meta.c.key == schema.META_SCHEMA_VERSION_KEY).values(value=meta.c.value)
        try:
            with self._write_lock, self._write_engine.connect() as conn:
                transaction = conn.begin()
                try:
                    conn.execute(probe)
                finally:
                    transaction.rollback()
        except (sa_exc.SQLAlchemyError, self._driver_errors[0]) as exc:
            if self._engine.dialect.name == "sqlite":
                hint = "check that this user may write the SQLite file and its folder (not on a read-only mount)"
            else:
                hint = "check that the database user may write the store's tables (and the server is no standby)"
            raise StoreError(f"the store at {self._url} cannot be written: {self._reason(exc)}; {hint}") from exc

    def _checkpoint_loop(self, every_s: float) -> None:
        while not self._stop_checkpoints.wait(every_s):
            started = time.perf_counter()
            try:
                _busy, log_pages, copied = self.checkpoint()
            except StoreError as exc:  # the thread must outlive a hiccup; the next round tries again
                if self._closed:
                    return
                logger.warning("%s", exc)
                continue
            logger.debug(
                "checkpoint: %d of %d pages in %.1f ms", copied, log_pages, (time.perf_counter() - started) * 1e3
            )

    def close(self) -> None:
        """Release the store's connections; the store cannot be used afterwards."""
        self._closed = True
        self._stop_checkpoints.set()
        if self._checkpointer is not None and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(timeout=30)
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------

    def _check_reachable(self) -> None:
        try:
            with self._engine.connect():
                pass
        except sa_exc.DBAPIError as exc:
            if self._engine.dialect.name == "postgresql" and _is_bad_option(exc):
                raise StoreURLError(
                    f"the store URL {self._url} has an option PostgreSQL does not accept: {self._reason(exc)}; "
                    "fix or remove it in the URL's query string (after ?) or in NEXTMOVE_STORE_URL"
                ) from exc
            if self._engine.dialect.name == "sqlite":
                hint = sqlite_open_hint(_sqlite_path(self._engine.url), self._reason(exc))
            else:
                hint = (
                    "check that the PostgreSQL server is running and accepts connections at "
                    "that host and port, that the database exists, and that the user and "
                    "password are right (the URL comes from NEXTMOVE_STORE_URL unless given)"
                )
            raise StoreError(f"cannot connect to the store at {self._url}: {self._reason(exc)}; {hint}") from exc

    def _prepare_schema(self, *, create: bool) -> None:
        # Most opens find the store as this nextmove left it: checking it only reads, so a reader
        # never waits (up to the busy timeout) for the write lock another process holds.
        with self._errors("read the store's tables"), self._read() as conn:
            stored = self._checked_version(conn, create=create)
        if create:
            # Before the write transaction: SQLite cannot change the journal mode inside one.
            self._ensure_wal()
        if stored == schema.SCHEMA_VERSION:
            return
        with self._errors("prepare the store's tables"), self._write() as conn:
            if conn.dialect.name == "postgresql":
                # Two processes opening one empty database must not both create the tables.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
            # Again under the write lock: another process may have created or upgraded it since.
            stored = self._checked_version(conn, create=create)
            if stored is None:
                schema.metadata.create_all(conn)
                conn.execute(
                    sa.insert(schema.meta).values(key=schema.META_SCHEMA_VERSION_KEY, value=str(schema.SCHEMA_VERSION))
                )
            elif stored < schema.SCHEMA_VERSION:
                # In the same transaction as the version check: the upgrade lands whole or not at all.
                try:
                    self._migrate(conn, stored)
                except sa_exc.DBAPIError as exc:
                    raise self._upgrade_failed(stored, exc) from exc

    def _upgrade_failed(self, stored: int, exc: sa_exc.DBAPIError) -> StoreError:
        """Why the store could not be upgraded from schema version ``stored``, and what to do.

        On PostgreSQL the upgrade changes the tables (an index added, in version 3), which only
        their owner may do: a role granted only to read and write their rows cannot, until the
        owner has opened the store once with this nextmove.
        """
        upgrade = (
            f"the store at {self._url} has schema version {stored} and this nextmove needs version "
            f"{schema.SCHEMA_VERSION}: it upgrades the store in place, once"
        )
        reason = self._told(exc)
        if self._engine.dialect.name != "postgresql" or getattr(exc.orig, "sqlstate", None) != _PG_NOT_ALLOWED:
            return StoreError(f"{upgrade}, and the upgrade failed: {reason}")
        who, owners = "this user", ""
        try:
            with self._read() as conn:
                user = conn.execute(sa.select(sa.func.current_user())).scalar_one()
                found = conn.execute(
                    sa.text(
                        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename = ANY(:names) ORDER BY tableowner"
                    ),
                    {"names": sorted(schema.TABLE_NAMES)},
                ).scalars()
                who = f"the store's user {user!r}"
                owners = ", ".join(repr(o) for o in found)
        except sa_exc.SQLAlchemyError:
            pass  # the advice holds without the names
        return StoreError(
            f"{upgrade}, which only the owner of its tables{f' ({owners})' if owners else ''} may do, and {who} is "
            f"not ({reason}): run any nextmove command once as the tables' owner (`nextmove models list --store` "
            "with a URL of that user), then other users can use the store"
        )

    def _checked_version(self, conn: Connection, *, create: bool) -> int | None:
        """The store's schema version, one this nextmove can use; None for an empty database it may create a store in.

        Raises what keeps the database from being used: a newer or too old schema version, damaged
        nextmove tables, no nextmove tables at all (without ``create``), or another application's
        tables and none of nextmove's.
        """
        existing = set(sa.inspect(conn).get_table_names())
        if not existing & schema.TABLE_NAMES:
            others = ", ".join(sorted(existing)[:5]) + (", …" if len(existing) > 5 else "")
            if not create:
                held = f"it holds other tables ({others}) and" if existing else "it holds"
                raise NotFoundError(
                    f"there is no nextmove store at {self._url}: {held} none of nextmove's tables; "
                    "`nextmove run` writes one (--store, or NEXTMOVE_STORE_URL); pass --store with the URL the run used"
                )
            if existing:
                # docs/store.md: nextmove creates its tables in an empty database (or schema), and
                # never among another application's, which it would leave them in.
                own_schema = (
                    ", or give the store a PostgreSQL schema of its own (CREATE SCHEMA nextmove, then add "
                    "?options=-csearch_path%3Dnextmove to the URL)"
                    if conn.dialect.name == "postgresql"
                    else ""
                )
                raise StoreURLError(
                    f"the database at {self._url} is not a nextmove store: it holds other tables ({others}) and none "
                    f"of nextmove's, and nextmove does not add its tables to another application's database; point "
                    f"--store (or NEXTMOVE_STORE_URL) at an empty database or an existing nextmove store{own_schema}"
                )
            return None
        stored = self._stored_version(conn, existing)
        if stored > schema.SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self._url} was written by a newer nextmove (schema version "
                f"{stored}; this nextmove knows version {schema.SCHEMA_VERSION}): upgrade "
                "nextmove (`pip install -U nextmove`) to use it"
            )
        if stored < _OLDEST_MIGRATABLE:
            raise StoreError(
                f"the store at {self._url} has schema version {stored} but this nextmove needs "
                f"version {schema.SCHEMA_VERSION}, and no migrations exist from version {stored}: use the "
                "nextmove release that wrote it, or point NEXTMOVE_STORE_URL at a new database"
            )
        return stored

    def _ensure_wal(self) -> None:
        """Put a SQLite file in WAL mode (kept in the file): readers (the dashboard) then work while a run writes."""
        if self._engine.dialect.name != "sqlite" or self._in_memory:
            return
        with self._errors("put the SQLite file in WAL mode"), _driver_cursor(self._engine) as (_, cursor):
            _enable_wal(cursor)

    def _migrate(self, conn: Connection, stored: int) -> None:
        if stored < 2:
            for name in schema.ADDED_IN_VERSION_2:
                schema.metadata.tables[name].create(conn, checkfirst=True)
            present = {c["name"] for c in sa.inspect(conn).get_columns("recommendations")}
            for table_name, column_name in schema.COLUMNS_ADDED_IN_VERSION_2:
                if column_name in present:
                    continue
                column = schema.metadata.tables[table_name].c[column_name]
                column_type = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {column_name} {column_type}")
            _record_served_run(conn)
        # A table version 2 added has them already when the upgrade comes from version 1.
        wanted = {str(i.name): i for table in schema.metadata.tables.values() for i in table.indexes}
        if stored < 3:
            for name in schema.INDEXES_ADDED_IN_VERSION_3:
                wanted[name].create(conn, checkfirst=True)
        if stored < 4:
            for name in schema.INDEXES_ADDED_IN_VERSION_4:
                wanted[name].create(conn, checkfirst=True)
        if stored < 5:
            moved = _move_claimed_key_ids(conn)
            if moved:
                logger.info("moved the claimed key id of %d refused requests' audit entries to their detail", moved)
        conn.execute(
            sa.update(schema.meta)
            .where(schema.meta.c.key == schema.META_SCHEMA_VERSION_KEY)
            .values(value=str(schema.SCHEMA_VERSION))
        )
        logger.info("upgraded the store at %s from schema version %s to %s", self._url, stored, schema.SCHEMA_VERSION)

    def _stored_version(self, conn: Connection, existing: set[str]) -> int:
        unknown = (
            f"the database at {self._url} holds nextmove tables "
            f"({', '.join(sorted(existing & schema.TABLE_NAMES))}) but "
        )
        if schema.meta.name not in existing:
            raise StoreError(
                unknown + f"no {schema.meta.name} table, so its schema version is unknown; "
                "point NEXTMOVE_STORE_URL at an empty database or a nextmove store"
            )
        value = conn.execute(
            sa.select(schema.meta.c.value).where(schema.meta.c.key == schema.META_SCHEMA_VERSION_KEY)
        ).scalar_one_or_none()
        if value is not None and value.strip().isdigit():
            return int(value)
        raise StoreError(
            unknown + f"its {schema.META_SCHEMA_VERSION_KEY} is {value!r}, not a whole number; the store is damaged"
        )

    def _lock_models(self, conn: Connection) -> None:
        # Every change of the model versions takes it first, so that one that reads the versions
        # before changing them (activate_models) sees no other change meanwhile. SQLite: the write
        # transaction's own lock (BEGIN IMMEDIATE) does it.
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MODELS_LOCK)))

    def _activate(self, conn: Connection, model_id: str, kind: str) -> None:
        table = schema.model_versions
        # Lock every version of the kind, in model_id order, before changing any: concurrent
        # activations on PostgreSQL then queue up behind each other instead of racing on the
        # one-active index, and the fixed order keeps them from deadlocking.
        locked = conn.execute(
            sa.select(table.c.model_id).where(table.c.kind == kind).order_by(table.c.model_id).with_for_update()
        ).scalars()
        if model_id not in set(locked):
            # Deleted between looking up its kind and locking it.
            raise self._missing("model", model_id, "list_models()")
        # Deactivate before activating: the partial unique index is checked row by row.
        conn.execute(
            sa.update(table)
            .where(table.c.kind == kind, table.c.active, table.c.model_id != model_id)
            .values(active=False)
        )
        conn.execute(sa.update(table).where(table.c.model_id == model_id).values(active=True))

    def _run_status(self, conn: Connection, run_id: str, *, lock: bool = False) -> str | None:
        query = sa.select(schema.runs.c.status).where(schema.runs.c.run_id == run_id)
        if lock:
            query = query.with_for_update()
        status: str | None = conn.execute(query).scalar_one_or_none()
        return status

    def _recommendation_row(self, rec: RecommendationRecord, run_id: str) -> dict[str, Any]:
        if rec.run_id != run_id:
            raise StoreError(
                f"recommendation for account {rec.account_id!r} belongs to run {rec.run_id!r}, "
                f"not to run {run_id!r} being saved; nothing was written"
            )
        return _row(rec, _REC_COLUMNS)

    def _missing(self, what: str, key: str, lister: str) -> NotInStoreError:
        return NotInStoreError(what, key, store_url=self._url, lister=lister)

    def _reason(self, exc: BaseException) -> str:
        # The driver's own message, on one line, without anything that looks like the password.
        orig = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig is not None else exc
        text = " ".join(str(orig).split())
        for secret in url_secrets(self._engine.url):
            text = text.replace(secret, HIDDEN)
        return text

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except NextmoveError:
            raise
        except (sa_exc.SQLAlchemyError, _NotJSONError) as exc:
            raise StoreError(f"could not {doing} in the store at {self._url}: {self._told(exc)}") from exc
        except self._driver_errors as exc:  # the hot path's statements go to the driver directly
            raise StoreError(f"could not {doing} in the store at {self._url}: {self._told(exc)}") from exc

    def _told(self, exc: BaseException) -> str:
        """The driver's reason (:meth:`_reason`), and what to do when it says a SQLite file is damaged."""
        reason = self._reason(exc)
        if self._engine.dialect.name == "sqlite" and _DAMAGED_SQLITE.search(reason) is not None:
            return f"{reason}; {_DAMAGED_HINT}"
        return reason

    @contextmanager
    def _write(self, *, relaxed: bool = False) -> Iterator[Connection]:
        self._check_open()
        engine = self._relaxed_write_engine if relaxed else self._write_engine
        with self._write_lock, engine.begin() as conn:
            if relaxed and conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield conn

    @contextmanager
    def _relaxed_driver_write(self) -> Iterator[Any]:
        """What ``_write(relaxed=True)`` does, on a driver connection of the pool: yields its cursor.

        For the online hot path (see :class:`_HotPath`): a SQLAlchemy connection and transaction
        cost about 0.1 ms more per commit than the driver's own.
        """
        self._check_open()
        with self._write_lock, _driver_cursor(self._engine) as (raw, cursor):
            try:
                if self._engine.dialect.name == "sqlite":
                    _begin_sqlite(
                        cursor,
                        raw.info,
                        immediate=True,
                        relaxed=True,
                        manual_checkpoint=self._checkpointer is not None,
                        in_memory=self._in_memory,
                    )
                else:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                yield cursor
                raw.commit()
            except BaseException:
                raw.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_open()
        with self._engine.connect() as conn:
            yield conn

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._url} is closed; open it again with open_store()")


class _HotPath:
    """The statements of an online decision as the driver's own SQL, with the columns' own conversions.

    Each decision reads its account's activity and logs its record. Through SQLAlchemy Core a
    statement costs a cache lookup, an execution context and per-row processing: 0.2-0.3 ms
    where the driver takes 0.02 ms, several times a decision's own work. Here the SQL is written
    once per dialect and the values are converted by the tables' column types (the same
    functions Core would call), so what is stored and read back does not change.
    """

    def __init__(self, dialect: Dialect) -> None:
        mark = self._mark = "%({})s" if dialect.name == "postgresql" else ":{}"

        def insert(table: sa.Table, columns: Sequence[str]) -> tuple[str, dict[str, Callable[[Any], Any]]]:
            names = ", ".join(columns)
            values = ", ".join(mark.format(c) for c in columns)
            return f"INSERT INTO {table.name} ({names}) VALUES ({values})", _bind_processors(table, columns, dialect)

        self.insert_decision = insert(schema.decisions, _DECISION_COLUMNS)
        self.insert_audit = insert(schema.audit_log, _AUDIT_COLUMNS)
        self._decision_results: dict[str, Callable[[Any], Any]] = {}
        for name in _DECISION_COLUMNS:
            # Strings and floats come back from both drivers as they are stored; times and JSON are converted.
            column_type = schema.decisions.c[name].type
            if isinstance(column_type, schema.UTCDateTime | sa.JSON):
                process = column_type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:
                    self._decision_results[name] = process
        account, since = mark.format("account_id"), mark.format("since")
        # One statement, so that both halves read one snapshot (and PostgreSQL answers in one round trip).
        self.activity_sql = (
            "SELECT 'decision', decision_id, 'decided', action_id, ts, NULL, variant, run_id FROM decisions"
            f" WHERE account_id = {account} AND ts >= {since} AND action_id != 'none'"
            " UNION ALL "
            "SELECT 'feedback', event_id, kind, action_id, ts, payload, NULL, NULL FROM feedback_events"
            f" WHERE account_id = {account} AND ts >= {since} AND kind IN ('done', 'dismissed')"
        )
        # Snoozes and dismissals with the actions of the decision and the run's recommendation they name,
        # both by primary key: one statement for an account's (a decision's read) or the whole book's (a run's).
        named = (
            "json_extract(f.payload, '$.decision_id')" if dialect.name == "sqlite" else "(f.payload ->> 'decision_id')"
        )
        holds = (
            "SELECT f.event_id, f.run_id, f.account_id, f.action_id, f.kind, f.reason, f.ts, f.payload,"
            " f.received_at, d.action_id, r.action_id FROM feedback_events f"
            f" LEFT JOIN decisions d ON d.decision_id = {named}"
            " LEFT JOIN recommendations r ON r.run_id = f.run_id AND r.account_id = f.account_id"
            " WHERE f.kind IN ('snoozed', 'dismissed')"
        )
        until = mark.format("until")
        self.holds_sql: dict[tuple[bool, bool], str] = {
            (one, bounded): holds
            + (f" AND f.account_id = {account}" if one else "")
            + (f" AND f.ts <= {until}" if bounded else "")
            for one in (False, True)
            for bounded in (False, True)
        }
        # The plays reported done in a time range, with the same joins: the batch run's read of them.
        after, before = mark.format("after"), mark.format("before")
        done = holds.replace("f.kind IN ('snoozed', 'dismissed')", "f.kind = 'done'") + f" AND f.ts < {before}"
        self.done_sql: dict[bool, str] = {False: done, True: done + f" AND f.ts > {after}"}
        ts_type = schema.decisions.c.ts.type.dialect_impl(dialect)
        self._since: Callable[[Any], Any] = ts_type.bind_processor(dialect) or _same
        self._ts: Callable[[Any], Any] = ts_type.result_processor(dialect, None) or _same
        self._payload: Callable[[Any], Any] | None = schema.feedback_events.c.payload.type.dialect_impl(
            dialect
        ).result_processor(dialect, None)

    def activity(self, engine: Engine, account_id: str, since: datetime) -> list[ActivityRecord]:
        """The account's activity since ``since``, unsorted, on a connection of ``engine``'s pool."""
        # Closing the connection returns it to the pool, which ends PostgreSQL's transaction.
        with _driver_cursor(engine) as (_, cursor):
            cursor.execute(self.activity_sql, {"account_id": account_id, "since": self._since(since)})
            rows = cursor.fetchall()
        out: list[ActivityRecord] = []
        for source, record_id, kind, action_id, ts, payload, variant, decided_in in rows:
            named = None
            if source == "feedback":
                if payload is not None and self._payload is not None:
                    payload = self._payload(payload)
                named = payload.get("decision_id") if isinstance(payload, dict) else None
            out.append(
                ActivityRecord(
                    source=source,
                    record_id=record_id,
                    kind=kind,
                    action_id=action_id,
                    ts=self._ts(ts),
                    decision_id=None if named is None else str(named),
                    variant=variant,
                    run_id=decided_in,
                )
            )
        return out

    def hold_events(self, engine: Engine, account_id: str | None, until: datetime | None) -> list[HoldEvent]:
        """The snoozes and dismissals of one account (None: all), at or before ``until`` if given, unsorted."""
        params: dict[str, Any] = {}
        if account_id is not None:
            params["account_id"] = account_id
        if until is not None:
            params["until"] = self._since(until)
        return self._hold_events(engine, self.holds_sql[account_id is not None, until is not None], params)

    def done_events(self, engine: Engine, after: datetime | None, before: datetime) -> list[HoldEvent]:
        """The ``done`` events after ``after`` (if given) and before ``before``, unsorted."""
        params: dict[str, Any] = {"before": self._since(before)}
        if after is not None:
            params["after"] = self._since(after)
        return self._hold_events(engine, self.done_sql[after is not None], params)

    def _hold_events(self, engine: Engine, sql: str, params: dict[str, Any]) -> list[HoldEvent]:
        """The feedback events ``sql`` selects (the columns of ``holds_sql``), with the actions they name."""
        with _driver_cursor(engine) as (_, cursor):
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        out: list[HoldEvent] = []
        for event_id, run_id, account, action_id, kind, reason, ts, payload, received_at, decided, recommended in rows:
            if payload is not None and self._payload is not None:
                payload = self._payload(payload)
            event = FeedbackEvent(
                event_id=event_id,
                account_id=account,
                kind=kind,
                ts=self._ts(ts),
                run_id=run_id,
                action_id=action_id,
                reason=reason,
                payload=payload if isinstance(payload, dict) else {},
                received_at=None if received_at is None else self._ts(received_at),
            )
            out.append(HoldEvent(event=event, decision_action_id=decided, run_action_id=recommended))
        return out

    def decisions_asked(self, cursor: Any, request_ids: Sequence[str]) -> list[DecisionRecord]:
        """The logged decisions of these request ids, read on the driver's ``cursor``."""
        if not request_ids:
            return []
        marks = ", ".join(self._mark.format(f"r{i}") for i in range(len(request_ids)))
        cursor.execute(
            f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions WHERE request_id IN ({marks})",
            {f"r{i}": r for i, r in enumerate(request_ids)},
        )
        out = []
        for row in cursor.fetchall():
            values = dict(zip(_DECISION_COLUMNS, row, strict=True))
            for name, process in self._decision_results.items():
                values[name] = process(values[name])
            out.append(DecisionRecord(**values))
        return out

    def insert(
        self, cursor: Any, statement: tuple[str, dict[str, Callable[[Any], Any]]], rows: list[dict[str, Any]]
    ) -> None:
        """Insert ``rows`` (column → value, as in the records) on the driver's ``cursor``."""
        if not rows:
            return
        sql, processors = statement
        for row in rows:
            for name, process in processors.items():
                row[name] = process(row[name])
        for batch in _batches(rows, BATCH_ROWS):
            cursor.executemany(sql, batch)


@contextmanager
def _driver_cursor(engine: Engine) -> Iterator[tuple[Any, Any]]:
    """A pooled driver connection of ``engine`` and a cursor on it, both closed on the way out."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            yield raw, cursor
        finally:
            cursor.close()
    finally:
        raw.close()


def _bind_processors(table: sa.Table, columns: Sequence[str], dialect: Dialect) -> dict[str, Callable[[Any], Any]]:
    out: dict[str, Callable[[Any], Any]] = {}
    for name in columns:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            out[name] = process
    return out


def _same(value: Any) -> Any:
    return value


_SERVABLE_RUNS_SCANNED: Final[int] = 100
"""Succeeded runs looked through for the one served (the engine's ``SERVABLE_RUNS_SCANNED``)."""


def _record_served_run(conn: Connection) -> None:
    """Record the run a version-1 store serves as its active ``policy`` version (upgrading it to version 2).

    Version 1 had no policy versions: the newest succeeded run not started with ``promote=False``
    was served (the engine's ``servable_run``, which serves it still while no version is active).
    The first promotion after the upgrade would then record no version it replaces, and
    ``models rollback`` could not return to the run served before it. The version saved here is
    the one :func:`~nextmove.engine.online.promote_run` would save (``replaces`` null: none was
    active before), in the upgrade's transaction. Nothing is recorded when no run is served or a
    policy version is active already.
    """
    versions = schema.model_versions
    active = conn.execute(
        sa.select(versions.c.model_id).where(versions.c.kind == POLICY_MODEL_KIND, versions.c.active)
    ).first()
    if active is not None:
        return
    runs = schema.runs
    candidates = conn.execute(
        sa.select(runs.c.run_id, runs.c.playbook_hash, runs.c.as_of, runs.c.params)
        .where(runs.c.status == "succeeded")
        .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        .limit(_SERVABLE_RUNS_SCANNED)
    ).all()
    served = next(
        (r for r in candidates if not isinstance(r.params, dict) or r.params.get("promote") is not False), None
    )
    if served is None:
        return
    record = policy_version(
        served.run_id, served.playbook_hash, served.as_of, {"started_by": "upgrade", "replaces": None}
    )
    conn.execute(sa.insert(versions).values(_row(record, _MODEL_COLUMNS)))


def _move_claimed_key_ids(conn: Connection) -> int:
    """Move the key id of audit entries written for a refused key into their detail (schema version 5); how many.

    Before version 5 the API filed a request refused for its key under the key id the key
    claimed (``nm_<key_id>_<secret>``, parsed before the key was verified), with no role: anyone
    could fill a real key's entries with such refusals. A verified key always has a role, so an
    entry with a key id and no role is such a refusal: its key id goes to
    ``detail.claimed_key_id`` and ``key_id`` becomes null, as today's code writes it. An empty
    claimed id (``nm__…``) is dropped, as today's code claims none for it.
    """
    key = schema.CLAIMED_KEY_IDS_MOVED_IN_VERSION_5
    if conn.dialect.name == "postgresql":
        claimed = f"(CAST(detail AS jsonb) || jsonb_build_object('{key}', key_id))::json"
    else:
        claimed = f"json_set(detail, '$.{key}', key_id)"
    result = conn.execute(
        sa.text(
            f"UPDATE {schema.audit_log.name} SET detail = CASE WHEN key_id = '' THEN detail ELSE {claimed} END, "
            "key_id = NULL WHERE key_id IS NOT NULL AND role IS NULL"
        )
    )
    return int(result.rowcount or 0)


def _row(record: Any, columns: Sequence[str]) -> dict[str, Any]:
    # getattr per column, not dataclasses.asdict: asdict deep-copies every JSON payload.
    return {name: getattr(record, name) for name in columns}


def _insert_audit(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    if entries:
        conn.execute(_INSERT_AUDIT, [_row(entry, _AUDIT_COLUMNS) for entry in entries])


def _retried(logged: DecisionRecord, asked: DecisionRecord) -> DecisionRecord:
    """The decision logged for a request id, if ``asked`` is a retry of it (:func:`request_id_conflict`); else a
    conflict."""
    conflict = request_id_conflict(logged, asked.account_id, asked.context.get("signals") or {})
    if conflict is not None:
        raise conflict
    return logged


def _event_id_conflict(event_id: str) -> ConflictError:
    """The error of an ``event_id`` already used for another event; neither its account nor its body is named."""
    return ConflictError(
        f"event_id {event_id!r} is already used for another event (another account, or another body); "
        "send a new event_id for a new event (resend one only to retry the same event)"
    )


def _is_request_id_conflict(exc: BaseException) -> bool:
    """Whether a driver error is the unique index of ``decisions.request_id`` refusing a second decision."""
    # psycopg names the constraint; sqlite3 names the column.
    text = str(exc)
    return _REQUEST_ID_UNIQUE in text or "UNIQUE constraint failed: decisions.request_id" in text


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more; got {value}")


def _recommendation_filters(
    run_id: str,
    owner: str | None,
    action_id: str | None,
    account_ids: Collection[str] | None,
    health_band: str | None = None,
    owners: Collection[str] | None = None,
) -> list[sa.ColumnElement[bool]]:
    table = schema.recommendations
    filters = [table.c.run_id == run_id]
    if owner is not None:
        filters.append(table.c.owner == owner)
    if action_id is not None:
        filters.append(table.c.action_id == action_id)
    if health_band is not None:
        filters.append(table.c.health_band == health_band)
    if owners is not None:
        filters.append(table.c.owner.in_(sorted(owners)))
    if account_ids is not None:
        # An empty collection renders as an always-false IN, so it matches nothing.
        filters.append(table.c.account_id.in_(list(account_ids)))
    return filters


def _recommendation_values_query(
    fields: Mapping[str, Sequence[str | int]], dialect: str, filters: Sequence[sa.ColumnElement[bool]]
) -> tuple[sa.Select[Any], Callable[[Sequence[Any]], tuple[Any, ...]]]:
    """The query of :meth:`Store.recommendation_values`, and how to make each row's values of what it selects.

    The database follows each JSON path, so the rest of the document never leaves it, and reads each
    document once. SQLite selects, per JSON column, one ``json_extract`` of all its paths: a JSON
    array of them, which keeps each number's digits (SQLAlchemy's own SQLite path wraps
    ``json_extract`` in ``json_quote``, which rounds a number to 15 digits, and reads the document
    once per path). PostgreSQL reads a ``json`` document again for each ``#>``: a subquery takes
    each column down to its paths' common prefix once (``OFFSET 0`` keeps the planner from folding
    it into the outer query), and the outer query follows each path from there.
    """
    table = schema.recommendations
    plain: dict[str, str] = {}  # value name -> its column
    in_json: dict[str, list[tuple[str, tuple[str | int, ...]]]] = {}  # JSON column -> [(value name, path in it)]
    for name, path in fields.items():
        if not path or not isinstance(path[0], str) or path[0] not in table.c:
            raise ConfigError(
                f"the value {name!r} must start at a column of recommendations "
                f"({', '.join(table.c.keys())}); got the path {list(path)!r}"
            )
        steps = tuple(path[1:])
        if not steps:
            plain[name] = path[0]
            continue
        if not isinstance(table.c[path[0]].type, sa.JSON):
            raise ConfigError(
                f"the value {name!r} goes into the column {path[0]!r}, which is not JSON; got {list(path)!r}"
            )
        if any(
            isinstance(s, bool) or not isinstance(s, int | str) or (isinstance(s, str) and ('"' in s or not s))
            for s in steps
        ):
            raise ConfigError(
                f"the value {name!r} must go into its JSON column by keys (without double quotes) and list "
                f"positions; got {list(path)!r}"
            )
        in_json.setdefault(path[0], []).append((name, steps))
    if dialect == "sqlite":
        return _sqlite_values_query(fields, plain, in_json, filters)
    inner: list[sa.ColumnElement[Any]] = [table.c.account_id.label("account_key")]
    inner += [table.c[c].label(f"column_{c}") for c in dict.fromkeys(plain.values())]
    # Each value is read in the outer query from (inner column label, the path left to follow from it).
    read_from: dict[str, tuple[str, tuple[str | int, ...]]] = {name: (f"column_{c}", ()) for name, c in plain.items()}
    for column_name, paths in in_json.items():
        column = table.c[column_name]
        prefix = _common_prefix([steps for _, steps in paths])
        if prefix:
            inner.append(column[prefix].label(f"json_{column_name}"))
            read_from |= {name: (f"json_{column_name}", steps[len(prefix) :]) for name, steps in paths}
        else:  # nothing in common: each path on its own, never the whole document
            inner += [column[steps].label(f"value_{name}") for name, steps in paths]
            read_from |= {name: (f"value_{name}", ()) for name, _ in paths}
    sub = sa.select(*inner).where(*filters).offset(0).subquery()
    outer: list[sa.ColumnElement[Any]] = []
    for name in fields:
        label, rest = read_from[name]
        outer.append((sub.c[label][rest] if rest else sub.c[label]).label(name))
    return sa.select(*outer).order_by(sub.c.account_key), tuple


def _common_prefix(paths: Sequence[tuple[str | int, ...]]) -> tuple[str | int, ...]:
    """The steps every path starts with (``("account",)`` of ``("account", "arr")`` and ``("account", "name")``)."""
    prefix = paths[0]
    for steps in paths[1:]:
        same = 0
        while same < min(len(prefix), len(steps)) and prefix[same] == steps[same]:
            same += 1
        prefix = prefix[:same]
    return prefix


def _sqlite_values_query(
    fields: Mapping[str, Sequence[str | int]],
    plain: Mapping[str, str],
    in_json: Mapping[str, Sequence[tuple[str, tuple[str | int, ...]]]],
    filters: Sequence[sa.ColumnElement[bool]],
) -> tuple[sa.Select[Any], Callable[[Sequence[Any]], tuple[Any, ...]]]:
    """SQLite's query of :func:`_recommendation_values_query`: one ``json_extract`` array per JSON column."""
    table = schema.recommendations
    selected: list[sa.ColumnElement[Any]] = []
    at: dict[str, tuple[int, int | None]] = {}  # value name -> (position in the select, index in its array)
    for name, column_name in plain.items():
        at[name] = (len(selected), None)
        selected.append(table.c[column_name].label(name))
    for column_name, paths in in_json.items():
        json_paths = ["$" + "".join(f"[{s}]" if isinstance(s, int) else f'."{s}"' for s in steps) for _, steps in paths]
        for i, (name, _) in enumerate(paths):
            at[name] = (len(selected), i)
        # json_extract of one path gives an SQL value (objects as text, booleans as 0/1), of two or more a JSON array.
        extract = sa.func.json_extract(table.c[column_name], *(json_paths * 2 if len(json_paths) == 1 else json_paths))
        selected.append(extract.label(f"{column_name}__values"))
    order = [at[name] for name in fields]
    arrays = sorted({pos for pos, i in order if i is not None})
    query = sa.select(*selected).where(*filters).order_by(table.c.account_id)

    def values(row: Sequence[Any]) -> tuple[Any, ...]:
        parsed = {pos: None if row[pos] is None else json.loads(row[pos]) for pos in arrays}
        return tuple(
            row[pos] if i is None else (None if (array := parsed[pos]) is None else array[i]) for pos, i in order
        )

    return query, values


def _insert_ignoring_conflicts(conn: Connection, table: sa.Table, key: str) -> sqlite.Insert | postgresql.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])


class _NotJSONError(Exception):
    """A JSON field holds a value JSON cannot represent."""


# json.dumps(value, allow_nan=False) would build this encoder on every call: a fifth of the
# encoding time of a decision's receipt. An encoder keeps no state between calls.
_JSON_ENCODER: Final = json.JSONEncoder(allow_nan=False)


def _to_json(value: Any) -> str:
    # NaN and infinity are not JSON: PostgreSQL refuses them and SQLite would keep them, so
    # both backends refuse them here, with the same message, rather than differ. The error
    # gets its own type because psycopg lets serialiser errors through unwrapped.
    try:
        return _JSON_ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise _NotJSONError(f"a JSON field holds a value JSON cannot represent: {exc}") from exc


def _parse_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except (sa_exc.ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise StoreURLError(
            f"cannot read the store URL {mask_unparsed_url(raw)!r}; expected {SUPPORTED_URLS} "
            "(set it with NEXTMOVE_STORE_URL)"
        ) from exc
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return _home_expanded(url)
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        # Plain postgresql:// would pick psycopg2, which nextmove does not depend on.
        return url.set(drivername="postgresql+psycopg")
    raise StoreURLError(
        f"unsupported store URL {mask_url(url)}: scheme {url.drivername!r} is not one of "
        f"sqlite, postgresql+psycopg; use {SUPPORTED_URLS}"
    )


def _home_expanded(url: URL) -> URL:
    """A SQLite URL whose path starts with ``~`` (``sqlite:///~/x.db``), with the home folder in its place.

    SQLite would take ``~`` as a folder's name and make a folder named ``~`` in the current
    one (which ``rm -rf ~`` then deletes the home folder with); the shell does not expand it
    inside a URL.
    """
    database = url.database
    if not database or not database.startswith("~"):
        return url
    try:
        return url.set(database=str(Path(database).expanduser()))
    except RuntimeError as exc:  # no home folder known (HOME unset), or no such user for ~name
        raise StoreURLError(
            f"cannot find the home folder of the SQLite path {database!r} ({exc}); write the path in full, "
            "e.g. sqlite:////home/me/nextmove.db (four slashes for an absolute path)"
        ) from exc


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        # Fail within seconds, not minutes, when a firewall drops packets to the server.
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    try:
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, json_serializer=_to_json)
    except ImportError as exc:
        raise StoreError(f"the PostgreSQL store needs psycopg 3: run `pip install 'psycopg[binary]'` ({exc})") from exc
    # insert=True: before SQLAlchemy's own connect handlers, so nothing reads a time in another zone.
    event.listen(engine, "connect", _set_pg_session_utc, insert=True)
    return engine


def _set_pg_session_utc(dbapi_connection: Any, _record: Any) -> None:
    """Make a new PostgreSQL connection's session time zone UTC, whatever the server's or database's default.

    psycopg hands back a ``timestamptz`` converted into the session's zone, before the store's
    own conversion to UTC. In a zone other than UTC a stored time near the ends of Python's range
    (year 1, year 9999) then falls outside it once converted, and every read of the table failed
    with "timestamp too small (before year 1)". The URL's ``options`` are left to the user (a
    ``search_path`` in it must survive), hence a SET on connect rather than a startup option.
    """
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
    finally:
        dbapi_connection.autocommit = autocommit


# libpq's words for an option it does not know or a value it does not take (?sslmode=bogus,
# ?foo=1, ?connect_timeout=abc, ?keepalives=x), and the server's for an ?options=-c… it refuses.
_BAD_OPTION: Final = re.compile(
    r"invalid connection option|invalid \w+ value|invalid integer value|bad value for|"
    r"unrecognized configuration parameter|invalid value for parameter",
    re.IGNORECASE,
)


def _is_bad_option(exc: sa_exc.DBAPIError) -> bool:
    """Whether connecting to PostgreSQL failed on an option of the URL, not on the server being unreachable."""
    return _BAD_OPTION.search(str(exc.orig)) is not None


def _enable_wal(cursor: Any) -> None:
    """Put the SQLite file in WAL mode (kept in the file: later connections find it so).

    Converting a fresh file needs it to itself for a moment, and SQLite answers "database is
    locked" at once, without its busy handler, to a connection that tries while another does
    (seen when four threads open a new store together). So it tries again until the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # sqlite3.OperationalError; the driver's module is not imported here
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _create_private(path: Path) -> None:
    """Create a new SQLite file readable by its owner only (0600); leave a file that exists as it is.

    SQLite creates its file 0644 (less the umask), and its ``-wal`` and ``-shm`` files with the
    database file's mode: a store holds customer data and the hashes of API keys, which no other
    user of the machine should read. An existing file keeps the mode its owner gave it. A file
    that cannot be made here is left to SQLite, which says why.
    """
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _create_sqlite_engine(url: URL) -> Engine:
    in_memory = _sqlite_path(url) is None
    if in_memory:
        # One shared connection, or each checkout would see its own empty database.
        engine = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}, json_serializer=_to_json
        )
    else:
        path = _sqlite_path(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of the SQLite store {str(path)!r}: {exc}") from exc
            if url.query.get("mode") not in ("ro", "rw"):  # modes that must not create the file
                _create_private(path)
        engine = sa.create_engine(url, json_serializer=_to_json)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see on_begin): the sqlite3 module would
        # otherwise begin transactions lazily, only before the first write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                # FULL, not NORMAL: a commit (an accepted feedback event) survives a power
                # loss too, not only a crash of the process. Per connection: the file is
                # unchanged. (WAL, which is kept in the file, is set by SqlStore once it knows
                # the file is a nextmove store or an empty one it may make one of.)
                cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        cursor = conn.connection.cursor()
        try:
            _begin_sqlite(
                cursor,
                conn.info,
                immediate=options.get(_WRITE_OPTION, False),
                relaxed=options.get(_RELAXED_OPTION, False),
                manual_checkpoint=options.get(_MANUAL_CHECKPOINT_OPTION, False),
                in_memory=in_memory,
            )
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    return engine


def _begin_sqlite(
    cursor: Any, info: dict[Any, Any], *, immediate: bool, relaxed: bool, manual_checkpoint: bool, in_memory: bool
) -> None:
    # A write transaction takes the write lock at BEGIN; taking it later, on the first
    # write after reads, can fail at once with "database is locked" under concurrency.
    # The statements go to the driver's cursor: through exec_driver_sql each would cost an
    # execution context, more than SQLite takes to run it, on every transaction.
    if immediate and not in_memory:
        # The flush level is per connection and cannot change inside a transaction.
        level = "NORMAL" if relaxed else "FULL"
        if info.get(_RELAXED_OPTION) != level:
            cursor.execute(f"PRAGMA synchronous = {level}")
            info[_RELAXED_OPTION] = level
        if manual_checkpoint and not info.get(_MANUAL_CHECKPOINT_OPTION):
            cursor.execute("PRAGMA wal_autocheckpoint = 0")
            info[_MANUAL_CHECKPOINT_OPTION] = True
    cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
