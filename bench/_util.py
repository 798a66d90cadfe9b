"""Helpers shared by the benchmarks: wall time, peak memory and running a step in its own process.

Peak memory is the process's maximum resident set size, which only grows: a step whose memory must
not be mixed with another's (data generation vs. the code measured) runs in a child process of its
own, see :func:`run_child`, and reports :func:`peak_rss_bytes`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` is carried over from the
    parent through fork and exec, so a child started by a big parent would report the parent's size.
    Elsewhere, ``ru_maxrss`` (macOS reports bytes, others KiB).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (Linux only; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads), in seconds.

    Unlike wall time it hardly depends on what else the machine is doing.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    """Seconds spent in a ``with timed() as t:`` block, set when the block ends."""

    seconds: float = 0.0
    _start: float = field(default=0.0, repr=False)


@contextmanager
def timed() -> Iterator[Timing]:
    """Measure the wall time of a block."""
    t = Timing(_start=time.perf_counter())
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - t._start


def machine() -> str:
    """A one-line description of the machine: host, cores, memory."""
    cores = os.cpu_count() or 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        mem = 0.0
    return f"{platform.node()}, {cores} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def run_child(script: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script args`` with this interpreter and return the JSON object its last stdout line prints.

    The child's stderr passes through; a failing child raises ``RuntimeError`` with its output.
    """
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def fmt_bytes(n: float) -> str:
    """Bytes as MiB or GiB, for printing."""
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / MIB:.0f} MiB"
