"""One error tree for nextmove: every error says what to fix, and carries its exit code and HTTP status."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar


class NextmoveError(Exception):
    """Base of every error nextmove raises on purpose.

    Each subclass carries the exit code the CLI returns and the HTTP status the API answers
    with, so that one handler in each face maps errors the same way.
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "error"


class BookError(NextmoveError):
    """The book of business cannot be read or breaks the data contract."""

    exit_code = 2
    http_status = 422
    code = "book_invalid"


class PlaybookError(NextmoveError):
    """The playbook is missing, malformed, or refers to something that does not exist."""

    exit_code = 2
    http_status = 422
    code = "playbook_invalid"


class StoreError(NextmoveError):
    """The store (SQLite or PostgreSQL) cannot be reached, is of another schema version, or refused a write."""

    exit_code = 3
    http_status = 503
    code = "store_unavailable"


class NotFoundError(NextmoveError):
    """A run, recommendation, model or account asked for does not exist (or is not visible)."""

    exit_code = 4
    http_status = 404
    code = "not_found"


class ConflictError(NextmoveError):
    """The request conflicts with what the store or the server holds (a run already going, a request id
    already used for another request)."""

    exit_code = 1
    http_status = 409
    code = "conflict"


class NotInStoreError(NotFoundError):
    """A record asked for by its id is not in the store.

    Its message is for Python callers (the store's URL, the method that lists such records); the
    faces word it their own way from ``what`` and ``key`` (an API client sees neither the URL nor
    a Python method, the CLI names its own command).
    """

    def __init__(self, what: str, key: str, *, store_url: str, lister: str) -> None:
        super().__init__(f"no {what} {key!r} in the store at {store_url}; {lister} lists them")
        self.what = what
        self.key = key
        self.store_url = store_url
        self.lister = lister


class NotFittedError(NextmoveError, ValueError):
    """A model was asked to predict before it was fitted."""

    exit_code = 1
    http_status = 409
    code = "not_fitted"


class ConfigError(NextmoveError):
    """A setting or argument has a value nextmove cannot use."""

    exit_code = 2
    http_status = 422
    code = "config_invalid"


class RunNotSucceededError(ConfigError):
    """A run named by its id has not succeeded, so it has no decisions to report, list or measure.

    Its code says what the caller can do: ``run_not_finished`` for a run still going (ask again
    once it has succeeded); :class:`RunFailedError` for one that never will. A
    :class:`ConfigError` for the command line (the ``--run`` given cannot be used: exit 2); a 409
    for the API, which answers with the run's status and why.
    """

    http_status = 409
    code = "run_not_finished"


class RunFailedError(RunNotSucceededError):
    """A run named by its id failed, or was interrupted (its process ended while it was ``running``): it never
    will succeed."""

    code = "run_failed"


class StoreURLError(ConfigError, StoreError):
    """The store URL cannot be read or names an unsupported database: the user's input, not an outage.

    A :class:`StoreError` (for callers that catch those), with a :class:`ConfigError`'s exit code 2
    and HTTP status 422: the CLI exits 2, as for any other bad option, not 3 (store unavailable).
    """


class NothingToLearnError(ConfigError):
    """No past decision's outcome horizon is over (or seen long enough): a model has nothing to learn from.

    ``ready_on`` is when the earliest decision's horizon is over (None when unknown), so a caller can
    say when to come back or what else to change.
    """

    def __init__(self, message: str, *, ready_on: datetime | None = None) -> None:
        super().__init__(message)
        self.ready_on = ready_on


class MissingExtraError(NextmoveError, ImportError):
    """An optional dependency is not installed; the message gives the pip line to run."""

    exit_code = 1
    http_status = 501
    code = "missing_extra"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"this feature needs the optional package {package!r}: run `pip install 'nextmove[{extra}]'`")
        self.package = package
        self.extra = extra


class WriteError(NextmoveError):
    """A file could not be written: the disk is full, or its folder went read-only or away meanwhile.

    Not a bug, nor bad input: free space (or fix the folder) and run the command again. Nothing
    half-written is left behind; the message names what could not be written, where, the system's
    reason ("no space left on device") and what was kept. The CLI exits 5.
    """

    exit_code = 5
    http_status = 500
    code = "write_failed"


class RunFilesError(WriteError):
    """A run's files could not be written into its output folder; ``saved``: the run itself is in the store.

    A run saved (and served) before its files failed is whole in the store: the command line says
    how to write its report from there.
    """

    def __init__(self, message: str, *, run_id: str, saved: bool) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.saved = saved


INTERRUPTED = "interrupted by the user (Ctrl-C)"
"""What a run stopped by Ctrl-C (a plain :class:`KeyboardInterrupt`) records as its error."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM: a timeout, systemd, Docker or Kubernetes).

    A :class:`KeyboardInterrupt`, so that whatever cleans up after Ctrl-C (a run marked failed in
    the store, its half-written files removed) cleans up after it too. The command line raises it
    from its SIGTERM handler and exits 143.
    """

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(f"stopped by {signal_name} (a timeout, or a service manager stopping it)")
        self.signal_name = signal_name


def failure_text(exc: BaseException) -> str:
    """What a failed job records as its error: readable for an interruption, else the exception's type and message.

    Examples
    --------
    >>> failure_text(KeyboardInterrupt()), failure_text(ValueError("bad"))
    ('interrupted by the user (Ctrl-C)', 'ValueError: bad')
    >>> failure_text(Terminated())
    'stopped by SIGTERM (a timeout, or a service manager stopping it)'
    """
    if isinstance(exc, KeyboardInterrupt):
        return str(exc) or INTERRUPTED
    return f"{type(exc).__name__}: {exc}"
