"""Whether a process of this machine has ended: what tells a run or a folder left by a killed process."""

from __future__ import annotations

import os


def ended_since(pid: int, since: float) -> bool:
    """Whether process ``pid`` of this machine, known alive at ``since`` (a POSIX time), has ended since.

    Ended when the pid is gone, or belongs to a process started after ``since`` (the pid was reused,
    as a restarted container's process may well get the killed one's). False when it lives or cannot
    be told (no ``/proc``).

    Examples
    --------
    >>> import time
    >>> ended_since(os.getpid(), time.time())  # this very process
    False
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    try:
        started = os.stat(f"/proc/{pid}").st_ctime
    except OSError:
        return False
    return started > since
