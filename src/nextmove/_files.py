"""Output folders: checked before any long work starts, written whole or not at all (nothing is made before a write)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nextmove._process import ended_since
from nextmove._signals import signals_held
from nextmove.errors import ConfigError, NextmoveError, WriteError


def check_folder(folder: Path, label: str) -> Path:
    """Check that ``folder`` is, or can be made, a folder to write into; ``label`` names it in errors.

    Nothing is created: a run that fails later leaves no empty folder behind.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     check_folder(Path(d) / "run" / "2026", "--out").exists()
    False
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it" if existing == folder.absolute() else str(existing)
        raise ConfigError(f"cannot make {label} {folder}: {where} is a file, not a folder; give a folder to write into")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write into {label} {folder}: {existing} is not writable; give a folder you can write to"
        )
    return folder


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def write_failure(exc: BaseException) -> str | None:
    """The system's reason a write failed (``no space left on device``), or None when ``exc`` is no such failure.

    An :class:`OSError` with its ``errno``; Polars' errors carry the number only in their text, as
    ``(os error 28)`` (an ``OSError`` for a CSV, a ``ComputeError`` for a Parquet file).

    Examples
    --------
    >>> write_failure(OSError(28, "No space left on device"))
    'no space left on device'
    >>> write_failure(RuntimeError("parquet: underlying IO error: No space left on device (os error 28)"))
    'no space left on device'
    >>> write_failure(ValueError("bad")) is None
    True
    """
    if isinstance(exc, NextmoveError):
        return None
    number = exc.errno if isinstance(exc, OSError) else None
    if number is None and (found := _OS_ERROR.search(str(exc))) is not None:
        number = int(found[1])
    return None if number is None else os.strerror(number)[:1].lower() + os.strerror(number)[1:]


@contextmanager
def writing(what: str, kept: str | None = None) -> Iterator[None]:
    """Within the block, a write that fails (a full disk …) raises :class:`WriteError` naming ``what`` and ``kept``.

    ``what`` says what could not be written and where, ``kept`` what is left (the block removes
    its own half-written files first); without it, the caller adds it. Other errors go through as
    they are.

    Examples
    --------
    >>> with writing("the report /full/report.html", "the earlier report is left as it was"):
    ...     raise OSError(28, "No space left on device")
    Traceback (most recent call last):
    nextmove.errors.WriteError: cannot write the report /full/report.html: no space left on device; the earlier ...
    """
    try:
        yield
    except Exception as exc:
        reason = write_failure(exc)
        if reason is None:
            raise
        raise WriteError(f"cannot write {what}: {reason}" + ("" if kept is None else f"; {kept}")) from exc


STAGING_PREFIX = ".nextmove-staging-"
"""Name of the hidden temporary folder a run writes into inside its output folder (``.nextmove-staging-*.tmp``)."""

_OWNER = re.compile(r"^(?P<host>.*)-(?P<pid>[0-9]+)-[^-]*\.tmp$")


def _host() -> str:
    """This machine's name as a staging folder carries it (no ``-``, which separates the parts)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _staging_prefix() -> str:
    """This process's staging prefix: ``.nextmove-staging-HOST-PID-`` (names who may sweep the folder up)."""
    return f"{STAGING_PREFIX}{_host()}-{os.getpid()}-"


OWNERLESS_STAGING_AGE_S = 24 * 3600
"""Age after which a staging folder that names no writer (made by a version before they did) is removed."""

FOREIGN_STAGING_AGE_S = 7 * 24 * 3600
"""Age after which a staging folder of another host is removed (a container gets a new host name per run)."""


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def sweep_stale_staging(target: Path) -> list[Path]:
    """Remove the staging folders in ``target`` left by processes of this machine that no longer run.

    A process killed outright (``kill -9``, an out-of-memory kill) cannot remove its own staging
    folder, and it holds the run's personal data. A folder's name carries its writer's host and
    process id; one of this host whose process is gone is removed. A staging folder that names no
    writer (made by a version before they did) is removed once it is a day old
    (:data:`OWNERLESS_STAGING_AGE_S`), one of another host (an output folder on a shared drive, a
    container with a new host name per run) once it is a week old (:data:`FOREIGN_STAGING_AGE_S`).
    Folders of live processes, or named otherwise, are left alone.
    Returns the folders removed.
    """
    removed: list[Path] = []
    if not target.is_dir():
        return removed
    host = _host()
    for entry in target.iterdir():
        if not entry.name.startswith(STAGING_PREFIX) or not entry.is_dir() or entry.is_symlink():
            continue
        owner = _OWNER.match(entry.name[len(STAGING_PREFIX) :])
        if owner is None:
            # Named by a version before folders carried their writer: removed once surely abandoned.
            if _age_seconds(entry) > OWNERLESS_STAGING_AGE_S:
                shutil.rmtree(entry, ignore_errors=True)
                if not entry.exists():
                    removed.append(entry)
            continue
        if owner["host"] != host:
            if _age_seconds(entry) > FOREIGN_STAGING_AGE_S:
                shutil.rmtree(entry, ignore_errors=True)
                if not entry.exists():
                    removed.append(entry)
            continue
        try:
            made_at = entry.stat().st_mtime
        except OSError:
            continue
        if not ended_since(int(owner["pid"]), made_at):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


class StagedFiles:
    """Files written into a hidden temporary folder inside ``target``, moved into ``target`` only by :meth:`publish`.

    A job that writes several files (a run: recommendations, summary, report) writes them all into
    :attr:`folder`; once the whole job has succeeded, :meth:`publish` moves each into ``target``
    with :func:`os.replace` (atomic per file, and the folder is on the same filesystem, so each move
    is a rename: the files change one after the other within milliseconds). A job that fails calls
    :meth:`discard` instead: the temporary folder is removed, and so are ``target`` and its parents
    if it made them, so ``target`` is left exactly as it was (or absent). Other files in ``target``
    are never touched. The temporary folder lies inside ``target`` rather than beside it, so it
    needs no more permission than the files themselves (an ``--out`` that is a mounted volume's
    root, or whose parent is not writable, works), and is on the same filesystem even when
    ``target`` is a symbolic link or a mount point. Nothing is created until :attr:`folder` is
    first used; then the staging folders that killed processes of this machine left in ``target``
    are removed (:func:`sweep_stale_staging`).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> staged = StagedFiles(out)
    >>> _ = (staged.folder / "summary.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir())  # only the hidden temporary folder so far
    ... # doctest: +ELLIPSIS
    ['.nextmove-staging-...tmp']
    >>> staged.publish()["summary.json"] == out / "summary.json"
    True
    >>> sorted(p.name for p in out.iterdir())
    ['summary.json']
    >>> failed = StagedFiles(out)
    >>> _ = (failed.folder / "summary.json").write_text("half")
    >>> failed.discard()
    >>> (out / "summary.json").read_text(), sorted(p.name for p in out.iterdir())
    ('{}', ['summary.json'])
    """

    def __init__(self, target: Path | str) -> None:
        self.target = Path(target)
        self._folder: Path | None = None
        self._made: list[Path] = []  # folders made for the target (outermost first), removed again by discard

    @property
    def folder(self) -> Path:
        """The temporary folder to write into (made on first use, with ``target`` if missing)."""
        if self._folder is None:
            missing: list[Path] = []
            at = self.target.absolute()
            while not at.exists() and at != at.parent:
                missing.append(at)
                at = at.parent
            for made in reversed(missing):
                try:
                    made.mkdir()
                except FileExistsError:
                    continue  # made meanwhile by someone else: theirs, not removed by discard
                self._made.append(made)
            sweep_stale_staging(self.target)
            self._folder = Path(tempfile.mkdtemp(prefix=_staging_prefix(), suffix=".tmp", dir=self.target))
        return self._folder

    def publish(self) -> dict[str, Path]:
        """Move every file of :attr:`folder` into ``target`` (replacing any of the same name); name → its path.

        In name order, so ``summary.json`` comes after ``recommendations.*``. An empty mapping when
        nothing was written. A Ctrl-C or SIGTERM that comes meanwhile is raised once every file is
        moved (:func:`~nextmove._signals.signals_held`).
        """
        if self._folder is None:
            return {}
        published: dict[str, Path] = {}
        # Ctrl-C or SIGTERM during the moves waits until they end: never some files new, some old.
        with signals_held():
            for entry in sorted(self._folder.iterdir()):
                destination = self.target / entry.name
                os.replace(entry, destination)
                published[entry.name] = destination
            self._folder.rmdir()
            self._folder = None
            self._made = []
        return published

    def discard(self) -> None:
        """Remove :attr:`folder` and what was written in it, and the folders made for it: ``target`` is as it was."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        for made in reversed(self._made):
            try:
                made.rmdir()
            except OSError:
                break  # not empty: someone else wrote there meanwhile
        self._made = []
