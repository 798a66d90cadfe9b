"""Which process made a run, so that a run killed outright (left ``running`` forever) can be told apart."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Mapping
from typing import Any

from nextmove._process import ended_since
from nextmove.errors import RunFailedError, RunNotSucceededError
from nextmove.store import RunRecord


def run_process() -> dict[str, Any]:
    """Where this process runs (host and pid), kept in a run's ``params`` to tell an interrupted run later."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def interrupted_run_note(run: RunRecord) -> str | None:
    """Why a run will never succeed, where the store can tell; else None.

    A failed run: the error it was recorded with (:attr:`~nextmove.store.RunRecord.error`), so that
    whoever lists runs sees why, not only a status. A run recorded as ``running``: that it was
    interrupted, if its process on this host has ended.

    A run killed outright (SIGKILL, a lost machine) cannot mark itself failed, so it stays ``running``
    in the store. It is never served (only a succeeded run is), and its effect model was never made
    active. Its process is known ended when its pid is gone, or now belongs to a process started after
    the run was. A run of another host, or of a nextmove that did not record its process, is not judged.
    """
    if run.error is not None:
        return run.error
    if run.status != "running" or not process_ended(run):
        return None
    return (
        f"run {run.run_id!r} is recorded as running, but its process ({_process_shown(run)}) has ended: "
        "it was interrupted and will never finish; it is not served and its model was not made active. "
        "Start a new run"
    )


def process_ended(run: RunRecord) -> bool:
    """Whether the process that made ``run`` is known to have ended (False when it lives, or cannot be told).

    Its process is known ended when its pid is gone, or now belongs to a process started after the
    run was. A run of another host, or of a nextmove that did not record its process, is not judged.
    """
    process = run.params.get("process")
    if not isinstance(process, Mapping):
        return False
    pid = process.get("pid")
    if process.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return ended_since(pid, run.created_at.timestamp())


def _process_shown(run: RunRecord) -> str:
    process = run.params.get("process")
    if not isinstance(process, Mapping):
        return "unknown"
    return f"pid {process.get('pid')} on {process.get('host')}"


def unpromoted_run_note(run: RunRecord, *, promoted: Collection[str], served: RunRecord | None) -> str | None:
    """Why a succeeded run that was to be served is not, when its process ended between saving and promoting it.

    A run is saved (:meth:`~nextmove.store.Store.save_run`) and then promoted (a ``policy`` version
    naming it, its effect model made active) in two transactions: a process killed in between
    leaves it ``succeeded``, never served. ``promoted`` are the ids of the runs some ``policy``
    version names (promoted, whether served now or not); ``served`` the run served now. A run
    started with ``promote=False``, or whose process is still alive (it may be promoting it now),
    or cannot be told (:func:`process_ended`), or not newer than the served run (the runs promoted
    since replaced it anyway), gets None.
    """
    if run.status != "succeeded" or run.params.get("promote", True) is False:
        return None
    if run.run_id in promoted or not process_ended(run):
        return None
    if served is not None and (run.run_id == served.run_id or run.created_at <= served.created_at):
        return None  # older than the run served now: the runs promoted since replaced it anyway
    return (
        f"run {run.run_id!r} was saved but never promoted: its process ({_process_shown(run)}) ended before "
        f"promotion, so it is not served and its effect model was not made active; "
        f"`nextmove models promote {run.run_id}` serves it"
    )


def require_succeeded(run: RunRecord, refusal: str, *, error: str | None = None) -> RunRecord:
    """``run`` if it succeeded; else an error with its status and why, for a report, a list or a measure of it.

    ``refusal`` says what only a succeeded run has (``"only a succeeded run's decisions can be
    measured"``); ``error`` is why the run failed where the caller knows better than the store (a
    run this very process started). A run that failed, or whose process has ended while it was
    ``running`` (:func:`interrupted_run_note`), never will succeed: :class:`RunFailedError`. One
    still going may: :class:`RunNotSucceededError`.

    Examples
    --------
    >>> run = RunRecord(run_id="r1", book_source="b", playbook_hash="h", status="failed", summary={"error": "x"})
    >>> require_succeeded(run, "only a succeeded run can be reported")
    Traceback (most recent call last):
    ...
    nextmove.errors.RunFailedError: run 'r1' is failed: only a succeeded run can be reported. It failed: x
    """
    if run.status == "succeeded":
        return run
    head = f"run {run.run_id!r} is {run.status}: {refusal}"
    why = error if error is not None else interrupted_run_note(run)
    if run.status == "failed":
        raise RunFailedError(f"{head}. It failed: {why or 'no reason was recorded'}")
    if why is not None:
        raise RunFailedError(f"{head}. {why[0].upper()}{why[1:]}")
    raise RunNotSucceededError(f"{head}. It has not finished yet: ask again once it has succeeded")
