"""The decision queue: one thread makes and logs the API's decisions, many per transaction under load.

``POST /v1/decide`` hands its accounts to the queue and awaits the answer; the queue's thread
takes whatever is waiting (up to ``max_batch`` calls), decides each call with
:meth:`OnlineDecider.decide_groups` and logs them all in one transaction. A call is answered only
after its decisions are committed, as before: batching changes how many commits a burst costs,
not what an answer promises. At a few requests at a time the batch is one call and the cost is
that of a worker thread; after a stall (a busy machine, a slow disk) the backlog drains in a few
commits instead of one per request, which is what keeps the tail latency short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from nextmove.engine.online import DecideGroup, OnlineDecider
from nextmove.errors import NextmoveError
from nextmove.store import DecisionRecord

logger = logging.getLogger("nextmove.api")

MAX_WAITING: Final[int] = 10_000
"""Calls waiting at most; beyond, a call is refused with 503 at once rather than queued for seconds."""
MAX_BATCH: Final[int] = 64
"""Calls decided and logged in one transaction at most."""

_T = TypeVar("_T")


class OverloadedError(NextmoveError):
    """Too many decisions are waiting, or the server is stopping: retry in a moment."""

    exit_code = 1
    http_status = 503
    code = "overloaded"


@dataclass
class _Call(Generic[_T]):
    group: DecideGroup
    check: Callable[[], None] | None
    render: Callable[[list[DecisionRecord]], _T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[_T]


class DecisionQueue:
    """Decides and logs the calls handed to it in one background thread, in order, batching what waits."""

    def __init__(self, decider: OnlineDecider, *, max_waiting: int = MAX_WAITING, max_batch: int = MAX_BATCH) -> None:
        self.decider = decider
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        # A SimpleQueue (C, no condition variable): its put is a fraction of Queue's, on every request.
        self._queue: queue.SimpleQueue[_Call[object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="nextmove-decide", daemon=True)
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        """Transactions' worth of calls served so far (for tests and figures)."""

    def start(self) -> None:
        """Start the thread (again: no-op)."""
        with self._lock:
            if not self._closed and not self._thread.is_alive():
                self._thread.start()

    async def decide(
        self,
        group: DecideGroup,
        render: Callable[[list[DecisionRecord]], _T],
        *,
        check: Callable[[], None] | None = None,
    ) -> _T:
        """Decide and log ``group``; ``render(decisions)`` (run in the queue's thread) is the answer.

        ``check`` runs in the queue's thread before the group is decided (e.g. that the key may see
        the accounts, which may read the store); an error it raises is the call's.

        Raises
        ------
        OverloadedError
            If ``max_waiting`` calls are waiting already, or the queue is closed.
        NextmoveError
            What deciding raised for this group (e.g. :class:`NotFoundError`).
        """
        if not self._thread.is_alive():
            self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        call = _Call(group, check, render, loop, future)
        with self._lock:
            if self._closed:
                raise OverloadedError("the server is stopping; send the request again to its next start")
            if self._queue.qsize() >= self.max_waiting:
                raise OverloadedError(f"{self.max_waiting:,} decisions are waiting already; retry in a moment")
            self._queue.put(call)  # type: ignore[arg-type]
        return await future

    def close(self) -> None:
        """Answer every call queued so far, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._thread.is_alive()
        if started:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._serve(batch)

    def _serve(self, batch: list[_Call[object]]) -> None:
        settled: list[tuple[_Call[object], object]] = []
        try:
            self._decide(batch, settled)
        finally:
            _settle(settled)

    def _decide(self, batch: list[_Call[object]], settled: list[tuple[_Call[object], object]]) -> None:
        ready: list[_Call[object]] = []
        for call in batch:
            try:
                if call.check is not None:
                    call.check()
                ready.append(call)
            except Exception as exc:  # the call's own error, answered to it alone
                settled.append((call, exc))
        if not ready:
            return
        self.batches += 1
        try:
            results: list[list[DecisionRecord] | NextmoveError] | list[Exception] = self.decider.decide_groups(
                [c.group for c in ready]
            )
        except NextmoveError as exc:
            # A store failure (its lock connection cut, say): every call is answered with it (a 503
            # store_unavailable, to retry), so one line says why; the traceback is for debugging.
            logger.warning("could not decide %d calls: %s", len(ready), exc)
            logger.debug("could not decide %d calls", len(ready), exc_info=True)
            failed: list[Exception] = [exc] * len(ready)
            results = failed
        except Exception as exc:  # the thread must outlive a bug too: every call gets the error
            logger.exception("could not decide %d calls", len(ready))
            results = [exc] * len(ready)
        for call, result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                settled.append((call, result))
                continue
            try:
                settled.append((call, call.render(result)))
            except Exception as exc:
                settled.append((call, exc))


def _settle(settled: list[tuple[_Call[object], object]]) -> None:
    """Answer the calls, with one wake-up of each event loop for the batch rather than one per call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call[object], object]]] = {}
    for call, outcome in settled:
        by_loop.setdefault(call.loop, []).append((call, outcome))
    for loop, answers in by_loop.items():
        # A closed event loop refuses: nobody waits for the answers any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[_Call[object], object]]) -> None:
    for call, outcome in answers:
        if call.future.done():  # the client went away and the request was cancelled
            continue
        if isinstance(outcome, BaseException):
            call.future.set_exception(outcome)
        else:
            call.future.set_result(outcome)
