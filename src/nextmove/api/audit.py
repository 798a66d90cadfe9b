"""The audit trail: one entry per API request that named a key, saying who read or changed what.

Changes (decisions, feedback, runs) write their entry in the same transaction as the change.
Reads are queued and written in batches by a background thread a fraction of a second later, so
that reading stays fast; a process killed outright can lose the last fraction of a second of
read entries, never a change's.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nextmove.store import AuditEntry, Store

logger = logging.getLogger("nextmove.api")

FLUSH_EVERY_S: Final[float] = 0.2
MAX_QUEUED: Final[int] = 100_000

AUDIT_STATE_KEY: Final[str] = "nextmove_audit"
"""Key in the ASGI scope's ``state`` under which a request records what it read or changed."""


class AuditWriter:
    """Writes queued audit entries in batches from a background thread."""

    def __init__(self, store: Store, flush_every_s: float = FLUSH_EVERY_S) -> None:
        self.store = store
        self.flush_every_s = flush_every_s
        self._queue: queue.Queue[AuditEntry] = queue.Queue(maxsize=MAX_QUEUED)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nextmove-audit", daemon=True)
        # One flush at a time: a flush that finds the queue empty while the background thread is
        # still writing what it took would let a reader (GET /v1/audit) miss those entries.
        self._flushing = threading.Lock()
        self.dropped = 0

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def add(self, entry: AuditEntry) -> None:
        """Queue an entry (dropped, and counted, only if 100,000 are already waiting)."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> int:
        """Write everything queued now, and wait for a write in progress; returns how many entries were written."""
        with self._flushing:
            batch: list[AuditEntry] = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if batch:
                try:
                    self.store.add_audit(batch)
                except Exception:  # the audit thread must outlive a store hiccup; entries are logged instead
                    logger.exception("could not write %d audit entries", len(batch))
                    return 0
            return len(batch)

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.is_set():
            time.sleep(self.flush_every_s)
            self.flush()


class AuditMiddleware:
    """After each request that named a key, queue an audit entry unless the route wrote its own.

    Routes describe what they touched in ``scope["state"]["nextmove_audit"]`` (a dict with
    ``key_id``, ``role``, ``action``, ``resource``, ``detail`` and ``written``).
    """

    def __init__(self, app: ASGIApp, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            info = scope.get("state", {}).get(AUDIT_STATE_KEY)
            if info is not None and not info.get("written"):
                action = info.get("action", "read")
                if status in (401, 403):
                    action = "denied"
                elif status >= 400 and action == "change":
                    action = "change-refused"
                self.writer.add(
                    AuditEntry(
                        action=action,
                        method=scope.get("method", ""),
                        path=scope.get("path", ""),
                        status=status,
                        key_id=info.get("key_id"),
                        role=info.get("role"),
                        resource=info.get("resource", ""),
                        detail=info.get("detail", {}),
                    )
                )
