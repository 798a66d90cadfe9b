"""What the API serves from: its configuration, the store, the online decider, the book, and batch runs."""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

from polars.exceptions import PanicException

from nextmove._urls import mask_url
from nextmove.api.audit import AuditWriter
from nextmove.api.auth import KeyVerifier
from nextmove.api.decisions import DecisionQueue
from nextmove.api.errors import NotImplementedYetError, NotReadyError
from nextmove.api.limits import AuthFailureLimiter
from nextmove.api.measures import SegmentCache
from nextmove.api.names import AccountIndex
from nextmove.book import CONTRACT, Book
from nextmove.book.contract import FILE_SUFFIXES
from nextmove.book.nfc import nfc_twins, twin_note, twin_of
from nextmove.engine.online import OnlineDecider
from nextmove.errors import BookError, ConfigError, ConflictError, NextmoveError, NotFoundError
from nextmove.models._crossfit import hold_one_lightgbm_thread, one_lightgbm_thread, release_one_lightgbm_thread
from nextmove.playbook import Playbook
from nextmove.settings import AUTH_FAILURES_BURST, AUTH_FAILURES_PER_MINUTE
from nextmove.store import RunRecord, SqlStore, Store, open_store, recorded_source
from nextmove.store.records import utcnow

logger = logging.getLogger("nextmove.api")

MAX_NAMES_LISTED = 40
"""An error lists at most this many of the book's names (signal names, actions, outcome kinds)."""

BOOK_SETTLE_S = 1.0
"""A folder book's files are read again only once none has changed for this long: a writer still at work
(an export rewriting ``touches.csv``) is waited for rather than half of its file served."""
BOOK_FRESH_WAIT_S = 10.0
"""How long a run or a lift waits for a folder book's files to settle before it goes on with the book it has."""

OWNER_CHANGES_KEPT = 8
"""Runs whose :class:`OwnerChanges` against the book served are kept."""
MAX_OWNED_IDS = 10_000
"""At most this many account ids are passed to the store to list some owners' recommendations (far below the
bound parameters SQLite, 32,766, and PostgreSQL, 65,535, take in one statement)."""

BookStamp: TypeAlias = tuple[tuple[str, int, int, int], ...]
"""What a folder book's table files look like: ``(name, size, mtime_ns, inode)`` of each, by name."""


@dataclass(frozen=True)
class ApiConfig:
    """How the API server runs.

    Parameters
    ----------
    store_url
        The store (None: ``NEXTMOVE_STORE_URL`` or the workspace's SQLite file).
    playbook
        The playbook the served runs use.
    book
        The book of business, if the server has it: needed to start runs (``POST /v1/runs``)
        and to show an account's touches and outcomes.
    book_path
        Where the book was loaded from (a folder or URL, its password included: the server reads
        the book again from it); shown to people only through :func:`~nextmove._urls.mask_url`.
    max_body_bytes
        Largest request body accepted.
    refresh_s
        How often the decider looks for a newer run or another active policy version.
    key_ttl_s
        How long a verified API key is trusted before it is checked against the store again.
    out_dir
        Where batch runs started by the API write their files (None: none are written, the runs are kept in
        the store alone; `nextmove report --run RUN_ID` writes a run's report).
    book_refresh_s
        A book in a database is read again in the background at most this often (a folder's files
        are looked at every ``refresh_s`` and read again when they change); a run and a lift read it
        again themselves when it is older than ``refresh_s``.
    book_stamp
        The folder book's files as they were just before ``book`` was read from them
        (:func:`book_stamp`); None: as they are when the services are made.
    auth_failures_burst
        Requests without a valid key one client may make at once before they are answered 429 and
        only summarised in the audit trail (0: no limit); see :mod:`nextmove.api.limits`.
    auth_failures_per_minute
        How fast that allowance comes back, per minute.
    """

    playbook: Playbook
    store_url: str | None = None
    book: Book | None = None
    book_path: str | None = None
    max_body_bytes: int = 1_048_576
    refresh_s: float = 5.0
    key_ttl_s: float = 60.0
    out_dir: Path | None = None
    book_refresh_s: float = 300.0
    book_stamp: BookStamp | None = None
    auth_failures_burst: int = AUTH_FAILURES_BURST
    auth_failures_per_minute: float = AUTH_FAILURES_PER_MINUTE


RUN_RECORDED_WAIT_S = 5.0
"""How long ``POST /v1/runs`` waits for the run it started to be recorded in the store, so that its answer is the
stored run (its resolved ``as_of``, its ``created_at``). Recording follows reading the book again, which takes
milliseconds for a book that has not changed, longer for one being rewritten or read from a database."""


RUN_SAVE_WAIT_S = 30.0
"""How long a server stopping waits for a run it started that is saving (its last stage) to be saved. A run at an
earlier stage is not waited for: it is recorded as failed at once (see :meth:`RunManager.abandon`)."""


class RunAbandonedError(KeyboardInterrupt):
    """Raised in a run's thread at its next step once the server is stopping: the run ends as an interrupted one.

    A :class:`KeyboardInterrupt`, as :class:`~nextmove.errors.Terminated` is, so that the engine cleans
    up after it (its staged files removed, the run marked failed) and records its message as the error.
    """


@dataclass
class RunProgress:
    """A batch run started by this server: its id, its steps so far and its error, if any.

    ``accepted`` is the run as the server accepted it (the ``as_of`` asked for, if any; ``created_at``
    when it was accepted), shown until the engine records the run in the store; ``recorded`` is set
    once the engine has (it reports its first step right after), or once the run has ended.
    """

    run_id: str
    steps: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    accepted: RunRecord | None = None
    recorded: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    abandoned: bool = False
    """Whether the run was given up (the server is stopping): its next step raises :class:`RunAbandonedError`."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def report(self, step: str) -> None:
        """Note a step of the run (the engine's ``progress`` callback); once abandoned, stop the run instead.

        Raises
        ------
        RunAbandonedError
            If :meth:`abandon` was called: the run goes no further than the step it was at.
        """
        with self._lock:
            if self.abandoned:
                raise RunAbandonedError(abandoned_text(self.steps[-1] if self.steps else None))
            self.steps.append(step)
        self.recorded.set()

    def report_done(self) -> None:
        """Note that the run is over (its last step, ``done``), even if the server is stopping by now."""
        with self._lock:
            self.steps.append("done")
        self.recorded.set()

    def abandon(self) -> str | None:
        """Make the run's next step stop it; returns the step it is at (None before its first).

        Under the lock :meth:`report` takes: a run at a step before its last cannot reach the next one.
        """
        with self._lock:
            self.abandoned = True
            return self.steps[-1] if self.steps else None

    def end(self) -> None:
        """Mark the run ended (succeeded or failed)."""
        self.done = True
        self.recorded.set()


def abandoned_text(step: str | None) -> str:
    """The error of a run given up because the server stopped, at ``step`` (None: before its first).

    Examples
    --------
    >>> print(abandoned_text("Fitting the effect models").split(", ", 1)[1])
    at its step 'Fitting the effect models': it was given up and will never finish; start a new run (POST /v1/runs)
    """
    at = "before its first step" if step is None else f"at its step {step!r}"
    return (
        f"the server stopped (`nextmove serve` was shut down: SIGTERM or Ctrl-C) while this run was going, {at}: "
        "it was given up and will never finish; start a new run (POST /v1/runs)"
    )


RunFunction = Callable[..., Any]


def engine_run_function() -> RunFunction:
    """``nextmove.engine.run.run``, or :class:`NotImplementedYetError` when this nextmove has no batch run."""
    try:
        from nextmove.engine.run import run  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise NotImplementedYetError(
            f"this nextmove has no batch run (nextmove.engine.run: {exc}); run one elsewhere, the API serves any run "
            "in its store"
        ) from None
    function: RunFunction = run
    return function


class RunManager:
    """Starts batch runs in a background thread, one at a time, and keeps their progress."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()
        self._runs: dict[str, RunProgress] = {}
        self._thread: threading.Thread | None = None

    def progress(self, run_id: str) -> RunProgress | None:
        """Progress of a run started by this server (None for other runs)."""
        with self._lock:
            return self._runs.get(run_id)

    def start(self, *, as_of: datetime | None, seed: int, promote: bool) -> RunProgress:
        """Start a run of the server's book now; returns its progress (with its id) at once.

        Raises
        ------
        NotReadyError
            If the server has no book.
        ConflictError
            If a run started by this server is still going.
        NotImplementedYetError
            If this nextmove has no batch run.
        """
        config = self.services.config
        if config.book is None:
            raise NotReadyError(
                "this server has no book of business to run on: start it with `nextmove serve --book PATH`"
            )
        function = engine_run_function()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                going = next((r.run_id for r in self._runs.values() if not r.done), "?")
                raise ConflictError(f"run {going!r} is still going; wait for it (GET /v1/runs/{going}) and try again")
            run_id = f"run-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
            accepted = RunRecord(
                run_id=run_id,
                book_source=mask_url(recorded_source(config.book_path or config.book.source)),
                playbook_hash=config.playbook.content_hash(),
                as_of=as_of,
                params={"seed": seed, "promote": promote},
            )
            progress = RunProgress(run_id, accepted=accepted)
            self._runs[run_id] = progress
            self._thread = threading.Thread(
                target=self._work,
                args=(function, progress, as_of, seed, promote),
                name=f"nextmove-run-{run_id}",
                daemon=True,
            )
            self._thread.start()
        return progress

    def _work(
        self, function: RunFunction, progress: RunProgress, as_of: datetime | None, seed: int, promote: bool
    ) -> None:
        # LightGBM capped at one thread for as long as this thread computes (the server holds the cap
        # too, but a run abandoned at shutdown outlives the server's hold): see Services.start.
        with one_lightgbm_thread():
            self._run(function, progress, as_of, seed, promote)

    def _run(
        self, function: RunFunction, progress: RunProgress, as_of: datetime | None, seed: int, promote: bool
    ) -> None:
        services = self.services
        try:
            # The book as it is now, not as it was when the server started: a server left running for
            # weeks would otherwise decide on weeks-old touches (cooldowns run out, plays in flight
            # forgotten) and score accounts that have churned since.
            book = services.fresh_book()
            config = services.config
            result = function(
                book,
                config.playbook,
                as_of=as_of,
                store=services.store,
                out_dir=config.out_dir,
                seed=seed,
                progress=progress.report,
                run_id=progress.run_id,
                promote=promote,
                # One thread: the server keeps answering decisions while a run fits and projects (and
                # every LightGBM call uses one anyway while the server's cap is held: Services.start).
                jobs=1,
            )
            run_id = str(getattr(result, "run_id", progress.run_id))
            if run_id != progress.run_id:
                with self._lock:
                    self._runs[run_id] = progress
            if promote:
                # The run saved and activated its policy version (as every promoted run does): serve it now.
                self._serve(run_id)
            progress.report_done()
        except RunAbandonedError as exc:
            progress.error = str(exc)
            logger.warning("run %s stopped: %s", progress.run_id, exc)
        except NextmoveError as exc:
            progress.error = str(exc)
            logger.warning("run %s failed: %s", progress.run_id, exc)
        except (Exception, PanicException) as exc:  # a failed run must be reported, not kill the thread silently
            progress.error = f"{type(exc).__name__}: {exc}"
            logger.error("run %s failed:\n%s", progress.run_id, traceback.format_exc())
        finally:
            if progress.error is not None:
                self._record_failed(progress, progress.error)
            progress.end()

    def _serve(self, run_id: str) -> None:
        """Serve the run just saved and promoted, if it can be read now; else the refresh loop serves it later.

        The run has succeeded by now, whatever this read meets (the store's connections cut, say): it
        must not be reported failed while the store has it succeeded and every server serves it.
        """
        try:
            self.services.decider.refresh()
        except NextmoveError as exc:
            logger.warning(
                "run %s succeeded, but this server could not serve it yet (it tries again every %g s): %s",
                run_id,
                self.services.config.refresh_s,
                exc,
            )
        except (Exception, PanicException):  # a bug in reading it: not the run's failure either
            logger.error(
                "run %s succeeded, but this server could not serve it yet:\n%s", run_id, traceback.format_exc()
            )

    def _record_failed(self, progress: RunProgress, error: str) -> None:
        """Keep a run that failed before the engine recorded it (its book no longer validates) as failed in the store.

        The engine records a run before its first step, and as failed if that step fails; a run that
        never got there (the book read again for it does not validate, an option refused) would
        otherwise be known only to this process: missing from ``GET /v1/runs`` and gone after a
        restart.
        """
        store = self.services.store
        try:
            store.get_run(progress.run_id)
            return  # recorded by the engine, which recorded its failure too
        except NotFoundError:
            pass
        except NextmoveError as exc:
            logger.warning("run %s: could not look it up to record its failure: %s", progress.run_id, exc)
            return
        accepted = progress.accepted or RunRecord(
            run_id=progress.run_id, book_source="", playbook_hash=self.services.config.playbook.content_hash()
        )
        failed = replace(accepted, status="failed", finished_at=utcnow(), summary={"error": error})
        try:
            store.save_run(failed, [])
        except NextmoveError as exc:
            logger.warning("run %s: could not record its failure in the store: %s", progress.run_id, exc)

    def record(self, run_id: str, *, wait_s: float = 0.0) -> RunRecord:
        """The run as the store has it; for a run started here and not recorded yet, as it was accepted.

        A run started here that failed before the engine recorded it (its book no longer validates,
        say) is recorded ``failed`` as it ends, and until then answered so. With ``wait_s``, a run
        started here is first waited for until it is recorded or has ended, for at most that long.

        Raises
        ------
        NotFoundError
            If the store has no such run and this server did not start it.
        """
        progress = self.progress(run_id)
        if progress is not None and wait_s > 0:
            progress.recorded.wait(wait_s)
        try:
            return self.services.store.get_run(run_id)
        except NotFoundError:
            if progress is None or progress.accepted is None:
                raise
            if progress.error is not None:
                return replace(progress.accepted, status="failed", summary={"error": progress.error})
            return progress.accepted

    def join(self, timeout: float | None = None) -> None:
        """Wait for the current run's thread (tests and shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def abandon(self, *, save_wait_s: float = RUN_SAVE_WAIT_S) -> str | None:
        """At shutdown: record a run this server started and is still going as failed, saying why; its run id.

        The run's thread cannot be stopped from outside, and would die with the process, leaving the
        run ``running`` in the store for ever. So it is told to stop at its next step
        (:meth:`RunProgress.abandon`) and, since a step can take minutes, recorded as failed now, with
        the step it was at: it can no longer reach its save. A run already saving (its last stage) is
        waited for, up to ``save_wait_s``, since it is about to succeed; one not recorded yet (its book
        being read) is waited for as long, to record itself and stop at its first step.
        """
        with self._lock:
            thread = self._thread
            progress = next((r for r in self._runs.values() if not r.done), None)
        if thread is None or not thread.is_alive() or progress is None:
            return None
        step = progress.abandon()
        if step is not None and step in _last_steps():
            thread.join(save_wait_s)
            if thread.is_alive():
                logger.warning("run %s was still being saved when the server stopped", progress.run_id)
            return progress.run_id
        if step is None:
            thread.join(save_wait_s)
            if not thread.is_alive():
                return progress.run_id
        error = abandoned_text(step)
        try:
            if self.services.store.get_run(progress.run_id).status == "running":
                self.services.store.finish_run(progress.run_id, "failed", {"error": error})
        except NotFoundError:
            pass  # not recorded: there is nothing left running
        except NextmoveError as exc:
            logger.warning("run %s could not be recorded as failed as the server stopped: %s", progress.run_id, exc)
        progress.error = error
        logger.warning("run %s: %s", progress.run_id, error)
        return progress.run_id


def _last_steps() -> tuple[str, ...]:
    """The steps after which a run no longer reports one before it is saved: its last stage, and "done"."""
    from nextmove.engine.run import RUN_STAGES

    return (RUN_STAGES[-1], "done")


class RunSegments:
    """The behavioral segments ``GET /v1/segments`` answers: those of the served run.

    A run keeps its segments in its summary (``summary["segments"]``, what its report, its
    ``summary.json`` and its recommendations' ``segment_name`` show): the answer is those, never
    a new clustering, which with another seed or settings can find other segments for the same
    book and time. A served run without stored segments (made with ``segments=False``, or whose
    segmenting failed) is clustered again at its ``as_of`` with its own seed (its
    ``params["seed"]``); without a served run, with seed 0 at the book's latest data.

    Parameters
    ----------
    served
        Returns the run served now (None when there is none).
    """

    def __init__(self, served: Callable[[], RunRecord | None]) -> None:
        self._served = served
        self._lock = threading.Lock()
        self._caches: dict[int, SegmentCache] = {}

    def report(self, book: Book | None, playbook: Playbook, as_of: datetime | None) -> dict[str, Any]:
        """Segments of the served run when it decided at ``as_of``; else clustered at ``as_of`` (seed 0)."""
        run = self._served()
        if run is not None and run.as_of != as_of:
            run = None  # another run is served since the caller asked: answer what it asked
        stored = run.summary.get("segments") if run is not None else None
        if isinstance(stored, Mapping) and isinstance(stored.get("segments"), list):
            return stored_segments(stored)
        seed = run_seed(run)
        with self._lock:
            cache = self._caches.setdefault(seed, SegmentCache(seed=seed))
        return cache.report(book, playbook, as_of)


def run_seed(run: RunRecord | None) -> int:
    """The seed a run was made with (``params["seed"]``), 0 when it has none (as a run's default).

    Examples
    --------
    >>> run_seed(None), run_seed(RunRecord(run_id="r", book_source="b", playbook_hash="h", params={"seed": 3}))
    (0, 3)
    """
    seed = run.params.get("seed") if run is not None else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def stored_segments(block: Mapping[str, Any]) -> dict[str, Any]:
    """A run's stored segments (``SegmentReport.to_dict()``) in the shape ``GET /v1/segments`` answers.

    ``as_of, accounts, k, silhouette`` (of the chosen ``k``) and per segment ``id, name, accounts,
    traits``, as when the API clusters the book itself.

    Examples
    --------
    >>> stored_segments({"as_of": "2025-01-01T00:00:00+00:00", "accounts": 3, "k": 2,
    ...                  "silhouettes": {"2": 0.4}, "segments": [{"id": 0, "name": "Heavy users",
    ...                  "accounts": 3, "share": 1.0, "traits": []}]})["segments"]
    [{'id': 0, 'name': 'Heavy users', 'accounts': 3, 'traits': []}]
    """
    k = block.get("k")
    silhouettes = block.get("silhouettes")
    silhouette = silhouettes.get(str(k)) if isinstance(silhouettes, Mapping) else None
    return {
        "as_of": block.get("as_of"),
        "accounts": block.get("accounts"),
        "k": k,
        "silhouette": silhouette,
        "segments": [
            {key: s.get(key) for key in ("id", "name", "accounts", "traits")}
            for s in block.get("segments") or []
            if isinstance(s, Mapping)
        ],
    }


def book_stamp(path: str | None) -> BookStamp | None:
    """What the table files of a folder book look like now; None for a database book (or none).

    Only the contract's tables count (``accounts.csv`` or ``.parquet``, …, names in any case): a
    file added, removed, rewritten or replaced by another (a rename over it) changes the stamp.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "accounts.csv").write_text("account_id\\na1\\n")
    >>> _ = (folder / "notes.txt").write_text("not a table")
    >>> [name for name, *_ in book_stamp(str(folder))], book_stamp("sqlite:///book.db")
    (['accounts.csv'], None)
    """
    if path is None or "://" in path:
        return None
    folder = Path(path)
    wanted = {f"{name}{suffix}" for name in CONTRACT for suffix in FILE_SUFFIXES}
    try:
        files = sorted(p for p in folder.iterdir() if p.name.lower() in wanted)
    except OSError:
        return ()
    out = []
    for file in files:
        try:
            st = file.stat()
        except OSError:  # removed meanwhile: the next look sees it gone
            continue
        out.append((file.name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


class BookKeeper:
    """The server's book, read again when it changes, and never half of it.

    A folder's table files are compared with what they were when the book was read (sizes,
    modification times, inodes: :func:`book_stamp`); once they have changed and then been left
    alone for :data:`BOOK_SETTLE_S`, the book is loaded and validated again, and kept only if the
    files did not change while they were read. A book in a database cannot be looked at that
    cheaply: it is read again when the copy held is older than asked (and kept only if it differs).

    A book that no longer validates is not served: the last good one stays, and :attr:`problem`
    says what is wrong (it is logged once per change of the files).

    Parameters
    ----------
    path
        The folder or database URL the book was read from.
    book
        The book read from it.
    playbook
        The playbook it is validated against.
    stamp
        The folder's files just before ``book`` was read (None: as they are now).
    load
        Reads and validates a book (default :func:`~nextmove.book.validate.load_book`).
    """

    def __init__(
        self,
        path: str,
        book: Book,
        playbook: Playbook,
        *,
        stamp: BookStamp | None = None,
        settle_s: float = BOOK_SETTLE_S,
        load: Callable[..., Book] | None = None,
    ) -> None:
        self.path = path
        self.shown = mask_url(path)
        """``path`` as logs and errors show it: a database URL's passwords hidden."""
        self.playbook = playbook
        self.settle_s = settle_s
        self._load = load
        self._book = book
        self._stamp = stamp if stamp is not None else book_stamp(path)
        self._failed: BookStamp | None = None
        self._seen: tuple[BookStamp, float] | None = None
        self._read_at = time.monotonic()
        self._lock = threading.Lock()
        self.loaded_at = utcnow()
        """When the book served was read (UTC)."""
        self.problem: str | None = None
        """Why the book as it is now is not served (it no longer validates), None when it is."""

    @property
    def book(self) -> Book:
        """The book served: the latest that validated."""
        return self._book

    @property
    def in_database(self) -> bool:
        """Whether the book is read from a database (else from a folder's files)."""
        return self._stamp is None

    def refresh(self, *, max_age_s: float, wait_s: float = 0.0) -> bool:
        """Read the book again if it changed; returns whether another book is served now.

        Parameters
        ----------
        max_age_s
            A database book is read again if the copy held is older than this (a folder's files
            are looked at every time, and read only when they changed).
        wait_s
            How long to wait for a folder's files that are being written to settle (0: look
            again on the next call).
        """
        with self._lock:
            if self.in_database:
                return self._refresh_database(max_age_s)
            return self._refresh_files(wait_s)

    def _refresh_database(self, max_age_s: float) -> bool:
        if time.monotonic() - self._read_at < max_age_s:
            return False
        self._read_at = time.monotonic()
        loaded = self._read()
        if loaded is None:
            return False
        if _same_book(loaded, self._book):
            self.problem = None  # it loads again, as the book served
            return False
        self._use(loaded, None)
        return True

    def _refresh_files(self, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        while True:
            before = book_stamp(self.path) or ()
            if before == self._stamp:
                self.problem = self._failed = None  # put back as it was read
                return False
            if before == self._failed:
                return False
            # Quiet for as long as the files' newest change is old, or as this stamp has been seen
            # unchanged (mtimes may come from another clock, a network share's, even the future).
            now = time.monotonic()
            if self._seen is None or self._seen[0] != before:
                self._seen = (before, now)
            quiet = max(now - self._seen[1], time.time() - _newest_change_s(before))
            unsettled = self.settle_s - quiet
            if unsettled <= 0:
                loaded = self._read()
                after = book_stamp(self.path) or ()
                if after == before:
                    if loaded is None:
                        self._failed = before
                        return False
                    self._use(loaded, before)
                    return True
                unsettled = self.settle_s  # the files changed while they were read: look again once they settle
            if time.monotonic() + unsettled > deadline:
                return False
            time.sleep(unsettled)

    def _read(self) -> Book | None:
        load = self._load
        if load is None:
            from nextmove.book.validate import load_book

            load = load_book
        try:
            return load(self.path, playbook=self.playbook)
        except NextmoveError as exc:
            reason = str(exc)
        except (Exception, PanicException) as exc:  # a reader's bug (Polars panics are no Exception) is no reason
            # to stop serving: the book is as unusable as one that does not validate, and is reported so.
            logger.error("reading the book at %s failed:\n%s", self.shown, traceback.format_exc())
            reason = f"reading it failed ({type(exc).__name__}: {_first_line(exc)})"
        problem = (
            f"the book at {self.shown} no longer loads: {reason}; still serving the book read at "
            f"{self.loaded_at:%Y-%m-%d %H:%M:%S} UTC until it is fixed"
        )
        if problem != self.problem:
            logger.error("%s", problem)
        self.problem = problem
        return None

    def _use(self, book: Book, stamp: BookStamp | None) -> None:
        self._book = book
        self._stamp = stamp
        self._failed = None
        self.problem = None
        self.loaded_at = utcnow()
        logger.warning(
            "the book at %s changed: read again (%d accounts, %d signals, %d touches, %d outcomes)",
            self.shown,
            book.accounts.height,
            book.signals.height,
            book.touches.height,
            book.outcomes.height,
        )


def _first_line(exc: BaseException) -> str:
    """An error's message up to its first line break (a Polars panic's runs on with a backtrace hint)."""
    return (str(exc).strip().splitlines() or [""])[0]


def _newest_change_s(stamp: BookStamp) -> float:
    """The time (epoch seconds) the newest of a stamp's files was changed (0 for no file)."""
    return max((mtime_ns for _, _, mtime_ns, _ in stamp), default=0) / 1e9


def _same_book(a: Book, b: Book) -> bool:
    return all(
        x.schema == y.schema and x.equals(y)
        for x, y in ((a.accounts, b.accounts), (a.signals, b.signals), (a.touches, b.touches), (a.outcomes, b.outcomes))
    )


@dataclass
class OwnerChanges:
    """How the book served differs from a run in its accounts' owners (see :meth:`Services.owner_of`)."""

    moved: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """The run's accounts whose owner in the book is another: id → (the run's owner, the book's)."""
    absent: dict[str, str | None] = field(default_factory=dict)
    """The run's accounts the book no longer has: id → the run's owner, which is still theirs."""


class Services:
    """Everything a request may need, made once per server process."""

    def __init__(self, config: ApiConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else open_store(config.store_url)
        self.verifier = KeyVerifier(self.store, ttl_s=config.key_ttl_s)
        self.audit = AuditWriter(self.store)
        self.auth_failures = AuthFailureLimiter(
            config.auth_failures_burst, config.auth_failures_per_minute, write=self.audit.add
        )
        self.decider = OnlineDecider(self.store, config.playbook, refresh_s=config.refresh_s, book=config.book)
        self.decisions = DecisionQueue(self.decider)
        self.runs = RunManager(self)
        self.segments = RunSegments(self.served_run)
        self.books: BookKeeper | None = None
        """Reads the book again when it changes (a book read from ``book_path``; None without one)."""
        if config.book is not None and config.book_path:
            self.books = BookKeeper(config.book_path, config.book, config.playbook, stamp=config.book_stamp)
        self._book_lock = threading.Lock()
        self._owners: dict[str, str | None] = {}
        self._changes: dict[str, tuple[dict[str, str | None], OwnerChanges]] = {}
        self._changes_lock = threading.Lock()
        self._signal_names: frozenset[str] | None = None
        self._id_twins: dict[str, str] = {}
        self._account_index: tuple[dict[str, str | None], str | None, AccountIndex] | None = None
        self.outcome_kinds: tuple[str, ...] = ()
        """Outcome kinds feedback may report: those the playbook's objectives measure, and the book's."""
        self._know_book(config.book)
        self._stop = threading.Event()
        self._spared: object = None
        self._refresher = threading.Thread(target=self._refresh_loop, name="nextmove-refresh", daemon=True)
        self._book_watcher = threading.Thread(target=self._book_loop, name="nextmove-book", daemon=True)
        self._lightgbm_capped = False

    def start(self) -> None:
        """Start the background threads (audit writer, decision queue, decider refresh, SQLite checkpoints).

        What is alive by now (the modules, the served run's views) is first put out of the
        garbage collector's reach: see :func:`spare_from_gc`.

        Every LightGBM call of the process is capped at one thread from now until :meth:`close`
        (:func:`~nextmove.models._crossfit.one_lightgbm_thread`). LightGBM keeps one thread count for
        the whole process, set by every call from the count it names; a batch run (``POST /v1/runs``)
        computes on a thread of its own while request threads rescore decisions with the served
        model, and a call naming another count than one beside them can crash the server, losing
        every request in flight. Decisions use one thread anyway, and so does the run's training.
        """
        if not self._lightgbm_capped:
            hold_one_lightgbm_thread()
            self._lightgbm_capped = True
        spare_from_gc(collect=True)
        self._spared = self.decider.snapshot
        if isinstance(self.store, SqlStore):
            # No request's commit then pays for SQLite's checkpoint of its write-ahead log.
            self.store.checkpoint_in_background()
        self.audit.start()
        self.decisions.start()
        self._refresher.start()
        if self.books is not None:
            self._book_watcher.start()

    def close(self) -> None:
        """Stop the background threads and close the store; a run still going is recorded as failed first."""
        self._stop.set()
        # What is waiting to be written first: abandon() may wait up to RUN_SAVE_WAIT_S for a run saving.
        self.decisions.close()
        self.auth_failures.close()  # its counts of refusals not written one by one, before the last audit flush
        self.audit.close()
        self.runs.abandon()
        if self._refresher.is_alive():
            self._refresher.join(timeout=5)
        if self._book_watcher.is_alive():
            self._book_watcher.join(timeout=5)
        self.decider.close()
        if self._lightgbm_capped:  # nothing of the server's decides any more; a run still going holds its own
            self._lightgbm_capped = False
            release_one_lightgbm_thread()
        self.store.close()

    def owner_of(self, account_id: str) -> str | None:
        """The account's owner, which decides the ``manager`` and ``csm`` keys that see it (None if unknown).

        As the book served says it now, when the server has a book that has the account (an account
        handed to another owner since the run is that owner's at once, not the run's owner's until the
        next run); else as the served run saw it (no book, or an account the book no longer has).
        """
        owners = self._owners
        if account_id in owners:
            return owners[account_id]
        return self.decider.owner_of(account_id)

    def owner_changes(self, run_id: str) -> OwnerChanges:
        """How the owners of ``run_id``'s accounts in the book served differ from the run's (nothing without a book).

        Read from the store (two columns of the run) once per run and book served, and kept: usually a
        handful of accounts handed over since the run.
        """
        owners = self._owners
        if not owners:
            return OwnerChanges()
        with self._changes_lock:
            cached = self._changes.get(run_id)
        if cached is not None and cached[0] is owners:
            return cached[1]
        changes = OwnerChanges()
        fields = {"account_id": ("account_id",), "owner": ("owner",)}
        for batch in self.store.recommendation_values(run_id, fields):
            for account_id, owner in batch:
                if account_id not in owners:
                    changes.absent[account_id] = owner
                elif owners[account_id] != owner:
                    changes.moved[account_id] = (owner, owners[account_id])
        with self._changes_lock:
            if len(self._changes) >= OWNER_CHANGES_KEPT:
                self._changes.clear()
            self._changes[run_id] = (owners, changes)
        return changes

    def account_index(self) -> AccountIndex:
        """The accounts the server knows, to find where a run's notes name one: the book's and the served run's.

        Made once per book and served run (a set of their ids). The served run's accounts are read from
        the store once (without a book, all of them; with one, those the book no longer has).
        """
        owners = self._owners
        run = self.served_run()
        run_id = None if run is None else run.run_id
        cached = self._account_index
        if cached is not None and cached[0] is owners and cached[1] == run_id:
            return cached[2]
        ids: set[str] = set(owners)
        if run_id is not None and owners:
            ids.update(self.owner_changes(run_id).absent)
        elif run_id is not None:
            for batch in self.store.recommendation_values(run_id, {"account_id": ("account_id",)}):
                ids.update(account_id for (account_id,) in batch)
        index = AccountIndex(ids)
        self._account_index = (owners, run_id, index)
        return index

    def owned_account_ids(self, run_id: str, owners: frozenset[str]) -> list[str] | None:
        """The accounts whose owner (:meth:`owner_of`) is one of ``owners``, among the book's and ``run_id``'s.

        None when there are more than :data:`MAX_OWNED_IDS` (too many to pass to the store as ids):
        :meth:`owned_recommendation_ids` then finds them.
        """
        absent = self.owner_changes(run_id).absent
        found = [a for a, owner in self._owners.items() if owner in owners]
        found += [a for a, owner in absent.items() if owner in owners]
        return found if len(found) <= MAX_OWNED_IDS else None

    def owned_recommendation_ids(
        self, run_id: str, owners: frozenset[str], *, action_id: str | None, health_band: str | None
    ) -> list[str]:
        """The ids of ``run_id``'s recommendations (of ``action_id``, in ``health_band``) whose owner is one of
        ``owners`` by :meth:`owner_of`'s rule, ordered by account id as the store orders a page.

        Streams three columns of the whole run (half a second for 50,000 accounts): for owners of more
        accounts than :meth:`owned_account_ids` lists.
        """
        moved = self.owner_changes(run_id).moved
        fields = {"account_id": ("account_id",), "owner": ("owner",), "health_band": ("health_band",)}
        found = []
        for batch in self.store.recommendation_values(run_id, fields, action_id=action_id):
            for account_id, owner, band in batch:
                now = moved[account_id][1] if account_id in moved else owner
                if now in owners and (health_band is None or band == health_band):
                    found.append(account_id)
        return found

    def knows_account(self, account_id: str, *, look_again: bool = True) -> bool:
        """Whether the served run or the book has the account.

        An account in neither is looked for once more (``look_again``) in a folder book whose files
        changed since they were read (an account added since), without waiting for the background
        look. A caller checking many accounts passes False, then looks again once for those unknown.
        """
        snap = self.decider.snapshot
        if (snap is not None and snap.account(account_id) is not None) or account_id in self._owners:
            return True
        if look_again and self.books is not None and not self.books.in_database:
            self.refresh_book()
        return account_id in self._owners

    def id_twin_note(self, account_id: str) -> str:
        """For an unknown ``account_id``: ``"; "`` and why, when a book's id differs from it only by its Unicode form.

        Such ids print alike, so a 404 naming the id alone would name the account the client sees in the book.
        Empty otherwise: ids are matched as written (:mod:`nextmove.book.nfc`).
        """
        known = twin_of(account_id, self._id_twins)
        return "" if known is None else f"; {twin_note(account_id, known, 'in the book')}"

    @property
    def book_problem(self) -> str | None:
        """Why the book as it is now is not served (it changed and no longer validates), None if it is."""
        return None if self.books is None else self.books.problem

    def refresh_book(self, *, fresh: bool = False) -> bool:
        """Read the book again if it changed, and serve it; returns whether another book is served now.

        A folder's files are looked at (and read when they changed); a database book is read again
        when the copy held is older than ``book_refresh_s``, or, ``fresh``, than ``refresh_s``.
        With ``fresh``, files being written are waited for (up to :data:`BOOK_FRESH_WAIT_S`). A book
        that does not validate is not served: :attr:`book_problem` says why.
        """
        books = self.books
        if books is None:
            return False
        config = self.config
        max_age_s = config.refresh_s if fresh else config.book_refresh_s
        books.refresh(max_age_s=max_age_s, wait_s=BOOK_FRESH_WAIT_S if fresh else 0.0)
        with self._book_lock:  # two threads that each read it again serve the latest, once
            book = books.book
            if book is self.config.book:
                return False
            self._serve_book(book)
            return True

    def fresh_book(self) -> Book | None:
        """The book as it is now (read again if it changed), for a run.

        Raises
        ------
        BookError
            If the book changed and no longer validates: a run on the last good copy would decide on
            data that is not the book's any more.
        """
        self.refresh_book(fresh=True)
        if self.book_problem is not None:
            raise BookError(self.book_problem)
        return self.config.book

    def _serve_book(self, book: Book) -> None:
        self._know_book(book)
        self.decider.use_book(book)
        self.segments = RunSegments(self.served_run)  # segments clustered on the old book are not this one's
        self.config = replace(self.config, book=book)

    def _know_book(self, book: Book | None) -> None:
        self._owners = _book_owners(book)
        self._id_twins = nfc_twins(book.accounts.get_column("account_id")) if book is not None else {}
        self._signal_names = frozenset(book.signal_names) if book is not None else None
        kinds = {objective.outcome for objective in self.config.playbook.objectives.values()}
        if book is not None:
            kinds |= set(book.outcomes.get_column("kind").unique().drop_nulls().to_list())
        self.outcome_kinds = tuple(sorted(kinds))

    def check_signals(self, signals: Sequence[Mapping[str, float]]) -> None:
        """Refuse fresh signals the server's book does not have (one mapping per account asked for).

        Rescoring reads a signal only by a name the book has: any other would be ignored while the
        receipt says the account was rescored. Without a book every name is taken (and only logged).

        Raises
        ------
        ConfigError
            Naming the unknown signals and the book's.
        """
        known = self._signal_names
        if known is None:
            return
        unknown = sorted({name for one in signals for name in one if name not in known})
        if unknown:
            names = sorted(known)
            listed = ", ".join(names[:MAX_NAMES_LISTED]) + (
                f" … ({len(names)} in all)" if len(names) > MAX_NAMES_LISTED else ""
            )
            raise ConfigError(
                f"signals: the book has no signal {', '.join(repr(n) for n in unknown)}; send only the book's "
                f"signal names: {listed or '(the book has no signals)'}"
            )

    def served_run(self) -> RunRecord | None:
        """The run online decisions come from, if any."""
        snap = self.decider.snapshot
        return None if snap is None else snap.run

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.config.refresh_s):
            self.auth_failures.sweep()
            try:
                self.decider.refresh()
            except NextmoveError as exc:
                logger.warning("could not refresh the served run: %s", exc)
            snap = self.decider.snapshot
            if snap is not None and snap is not self._spared:  # a new run is served (refreshed or promoted)
                spare_from_gc(collect=False)
                self._spared = snap

    def _book_loop(self) -> None:
        # A thread of its own: reading a large book again takes seconds, which must not hold up
        # the served run's refresh.
        while not self._stop.wait(self.config.refresh_s):
            try:
                self.refresh_book()
            except (Exception, PanicException):  # the loop must outlive any failure; the book served stays
                logger.error("could not look at the book for changes:\n%s", traceback.format_exc())


def spare_from_gc(*, collect: bool) -> None:
    """Move every object alive now out of the reach of the garbage collector's full collections.

    A full collection walks every tracked object: with the imported modules and a served run's
    views, a few hundred thousand, which stops the server for a few hundred milliseconds, many
    times a decision's target latency. Frozen objects are still freed by reference counting when
    nothing refers to them any more (the views of a replaced run hold no reference cycles); only
    cyclic garbage frozen with them would stay, which ``collect`` first clears (a pause of its
    own, so only at start-up).
    """
    if collect:
        gc.collect()
    gc.freeze()


def _book_owners(book: Book | None) -> dict[str, str | None]:
    if book is None:
        return {}
    accounts = book.accounts
    owners = accounts.get_column("owner").to_list() if "owner" in accounts.columns else [None] * accounts.height
    return dict(zip(accounts.get_column("account_id").to_list(), owners, strict=True))
