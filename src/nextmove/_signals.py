"""Steps that Ctrl-C or SIGTERM must not cut in two: a failed job's cleanup, the moves of its files into place."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, ParamSpec

P = ParamSpec("P")

HELD = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a command (Ctrl-C; a timeout, systemd, Docker or Kubernetes)."""


@contextmanager
def signals_held(*, redeliver: bool = True, signals: tuple[signal.Signals, ...] = HELD) -> Iterator[list[int]]:
    """Within the block, ``signals`` that come wait; with ``redeliver``, the first is raised again once it ends.

    The block runs whole: a Ctrl-C or SIGTERM that comes meanwhile is kept, and after the block its
    own handler runs as it would have (a :class:`KeyboardInterrupt` or
    :class:`~nextmove.errors.Terminated` from the line after the block). Without ``redeliver`` it
    is dropped (a cleanup of a job that is stopping already). Yields the signals that came. Only in
    the main thread (the one Python runs signal handlers in); elsewhere the block runs as it is.

    Examples
    --------
    >>> with signals_held() as came:
    ...     pass  # a signal sent here is raised on the line after the block (tests/test_signals.py)
    >>> came
    []
    """
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return

    def hold(signum: int, _frame: object) -> None:
        came.append(signum)

    previous: dict[int, Callable[[int, FrameType | None], Any] | int] = {}
    try:
        for signum in signals:
            handler = signal.getsignal(signum)
            if handler is None:  # set outside Python: left alone
                continue
            previous[signum] = handler
            # Runs a signal that came before with the handler it found (a KeyboardInterrupt here is that one's).
            signal.signal(signum, hold)
        yield came
    finally:
        for held, handler in reversed(previous.items()):
            signal.signal(held, handler)
    if redeliver and came:
        signal.raise_signal(came[0])


def clean_up(step: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
    """Run ``step(*args, **kwargs)``, a failed or stopped job's cleanup, whole: Ctrl-C meanwhile is ignored.

    The job is stopping already; a second Ctrl-C, or a stray one, would cut its cleanup short (a
    run left ``running`` in the store, a staging folder with personal data left behind). SIGTERM
    keeps its handler: the first stops a command as Ctrl-C does, a second one at once
    (:func:`nextmove.cli._common.sigterm_as_interrupt`).

    Call it from the ``except`` block, and once more if it raises :class:`KeyboardInterrupt`:
    a Ctrl-C that lands in Polars code raises twice, Polars' own :class:`KeyboardInterrupt` and then
    Python's, at the next call made (it is this call, which then did nothing)::

        except BaseException:
            try:
                clean_up(staged.discard)
            except KeyboardInterrupt:
                clean_up(staged.discard)
            raise

    Examples
    --------
    >>> clean_up(print, "cleaned up")
    cleaned up
    """
    with signals_held(redeliver=False, signals=(signal.SIGINT,)):
        step(*args, **kwargs)
