"""Every LightGBM call that sets its process-wide thread count, recorded (tests' helpers).

LightGBM 4 keeps one thread count for the whole process and every call that reads settings sets it
(``num_threads``, 0 or not named: all cores). A call sizes per-thread buffers from it, then runs a
parallel loop that reads it again; another thread's call naming a different count in between made
the loop outrun its buffers (segmentation faults in CI, in ``bench/decide.py --scale`` and under the
API server). See :func:`nextmove.models._crossfit.quiet_lightgbm`.
"""

from __future__ import annotations

import ctypes
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

# The LightGBM calls that set its process-wide thread count from the settings they are given.
SETS_THREADS = re.compile(
    r"^LGBM_(BoosterPredict|DatasetCreate|DatasetGetSubset$|BoosterCreate$|BoosterResetParameter$)"
)
THREADS = re.compile(r"(?:^|\s)(?:num_threads|num_thread|nthread|nthreads|n_jobs)=(-?\d+)")


class Call(NamedTuple):
    """A LightGBM call that set its thread count."""

    thread: str
    """The Python thread that made it."""
    function: str
    """LightGBM's C function (``LGBM_BoosterPredictForMat``)."""
    threads: str | None
    """The ``num_threads`` its settings named (None: not named, all cores)."""
    cap: int
    """LightGBM's process-wide cap on any call's threads as the call started (-1: none)."""
    site: str
    """The innermost line of nextmove's own code the call came from (``models/effect.py:1799``), or ``?``."""
    booster: int | None = None
    """The booster a ``LGBM_BoosterPredictForMat`` predicts with (its handle's address; None for other calls)."""
    trees: tuple[int, int] | None = None
    """The rounds that prediction uses, ``(start, stop)``: all the booster has when it names no ``num_iteration``."""


def cap_now() -> int:
    """LightGBM's process-wide cap on any call's threads (-1: none)."""
    import lightgbm.basic as basic

    out = ctypes.c_int(0)
    basic._safe_call(basic._LIB.LGBM_GetMaxThreads(ctypes.byref(out)))  # type: ignore[attr-defined]
    return int(out.value)


def _rounds(lib: Any, handle: ctypes.c_void_p, start: ctypes.c_int, count: ctypes.c_int) -> tuple[int, int]:
    """The rounds a prediction uses, ``(start, stop)``, as LightGBM's ``GBDT::InitPredict`` reads its arguments."""
    import lightgbm.basic as basic

    total = ctypes.c_int(0)
    basic._safe_call(lib.LGBM_BoosterGetCurrentIteration(handle, ctypes.byref(total)))
    first = min(max(start.value, 0), total.value)
    last = total.value if count.value <= 0 else min(first + count.value, total.value)
    return first, last


def _site(source: str) -> str:
    """The innermost frame of the files under ``source`` on the calling thread's stack, as ``path:line``."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(source):
            return f"{Path(path).relative_to(source).as_posix()}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


@contextmanager
def lightgbm_calls() -> Iterator[list[Call]]:
    """Record every LightGBM call that sets its thread count, from any thread, while the block runs."""
    import lightgbm.basic as basic

    import nextmove

    source = str(Path(nextmove.__file__).parent)
    calls: list[Call] = []
    lock = threading.Lock()
    lib = basic._LIB  # type: ignore[attr-defined]

    class Recorder:
        def __getattr__(self, name: str) -> Any:
            function = getattr(lib, name)
            if not SETS_THREADS.match(name):
                return function

            def call(*args: Any) -> Any:
                settings = [a.value.decode() for a in args if isinstance(a, ctypes.c_char_p) and a.value is not None]
                if settings:  # without a settings string the call leaves the thread count alone
                    named = [m.group(1) for s in settings for m in [THREADS.search(s)] if m]
                    seen = Call(
                        threading.current_thread().name, name, named[-1] if named else None, cap_now(), _site(source)
                    )
                    if name == "LGBM_BoosterPredictForMat":  # (handle, data, …, start_iteration, num_iteration, …)
                        seen = seen._replace(booster=args[0].value, trees=_rounds(lib, args[0], args[7], args[8]))
                    with lock:
                        calls.append(seen)
                return function(*args)

            return call

    basic._LIB = Recorder()  # type: ignore[attr-defined,assignment]
    try:
        yield calls
    finally:
        basic._LIB = lib  # type: ignore[attr-defined]
