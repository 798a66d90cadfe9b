"""Which process made a run, so that a run killed outright (left ``running`` forever) can be told apart."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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
    process = run.params.get("process")
    if run.status != "running" or not isinstance(process, Mapping):
        return None
    pid = process.get("pid")
    if process.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        alive = False
    except PermissionError:
        alive = True
    else:
        alive = True
    if alive:
        try:
            started = datetime.fromtimestamp(os.stat(f"/proc/{pid}").st_ctime, tz=UTC)
        except OSError:
            return None
        # The pid was reused by a later process: the run's own one has ended.
        if started <= run.created_at:
            return None
    return (
        f"run {run.run_id!r} is recorded as running, but its process (pid {pid} on {process.get('host')}) has ended: "
        "it was interrupted and will never finish; it is not served and its model was not made active. "
        "Start a new run"
    )
