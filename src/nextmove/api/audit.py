"""The audit trail: one entry per API request that named a key, saying who read or changed what.

Changes (decisions, feedback, runs) write their entry in the same transaction as the change.
Every other entry (reads, refusals) is committed before the answer leaves: the middleware holds
the response's start until the writer thread has committed it, so a process killed outright
loses no entry of an answer a client got. The writer commits whatever waits in one transaction
(a group commit), so a burst of reads costs a few commits rather than one each; like decisions,
these commits skip the wait for the disk flush (see docs/store.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nextmove.api.auth import KeyVerifier, Principal, presented_key
from nextmove.api.errors import error_body, utf8_once_decoded
from nextmove.errors import NextmoveError
from nextmove.store import AuditEntry, Store

logger = logging.getLogger("nextmove.api")

FLUSH_EVERY_S: Final[float] = 0.2
"""How long the writer thread waits for an entry before checking whether it should stop."""
MAX_QUEUED: Final[int] = 100_000

DENIED_STATUSES: Final[frozenset[int]] = frozenset({401, 403, 429})
"""Answers audited as ``denied``: no valid key, a role that may not, too many requests without a valid key."""

AUDIT_STATE_KEY: Final[str] = "nextmove_audit"
"""Key in the ASGI scope's ``state`` under which a request records what it read or changed."""


class AuditWriter:
    """Commits queued audit entries from a background thread, all that wait in one transaction."""

    def __init__(self, store: Store, flush_every_s: float = FLUSH_EVERY_S) -> None:
        self.store = store
        self.flush_every_s = flush_every_s
        self._queue: queue.Queue[tuple[AuditEntry, Future[bool]]] = queue.Queue(maxsize=MAX_QUEUED)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nextmove-audit", daemon=True)
        # One write at a time: a flush that finds the queue empty while the background thread is
        # still writing what it took would let a reader (GET /v1/audit) miss those entries.
        self._flushing = threading.Lock()
        self.dropped = 0

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def add(self, entry: AuditEntry) -> Future[bool]:
        """Queue an entry; the future says, once it is done, whether the entry was committed.

        False when the store refused the write (logged) or 100,000 entries were already waiting
        (the entry is dropped and counted).
        """
        future: Future[bool] = Future()
        try:
            self._queue.put_nowait((entry, future))
        except queue.Full:
            self.dropped += 1
            future.set_result(False)
        return future

    async def write(self, entry: AuditEntry) -> bool:
        """Queue an entry and wait, without blocking the event loop, until it is committed; whether it was."""
        return await asyncio.wrap_future(self.add(entry))

    def flush(self) -> int:
        """Write everything queued now, and wait for a write in progress; returns how many entries were written."""
        return self._write_waiting()

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=self.flush_every_s)
            except queue.Empty:
                continue
            self._write_waiting(first)

    def _write_waiting(self, first: tuple[AuditEntry, Future[bool]] | None = None) -> int:
        with self._flushing:
            batch = [first] if first is not None else []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return 0
            try:
                self.store.add_audit([entry for entry, _ in batch])
            except Exception:  # the audit thread must outlive a store hiccup; the waiting answers are refused
                logger.exception("could not write %d audit entries", len(batch))
                written = False
            else:
                written = True
            for _, future in batch:
                future.set_result(written)
            return len(batch) if written else 0


CHANGE_METHODS: Final[frozenset[str]] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods whose request, refused before its route ran, is audited as ``change-refused`` (others as ``read``)."""


class AuditMiddleware:
    """For each request that named a key, commit an audit entry before the answer leaves (unless the route wrote one).

    A refusal of a client past its allowance of failed authentications is only counted, in a
    summary entry (the route marks it ``written``): see :mod:`nextmove.api.limits`.

    Routes describe what they touched in ``scope["state"]["nextmove_audit"]`` (a dict with
    ``key_id``, ``role``, ``action``, ``resource``, ``detail`` and ``written``). An answer whose
    entry the store refuses is replaced by a 503 ``store_unavailable``: the client never gets what
    the trail does not show.

    A request refused before any route looked at its key (a body that is not JSON or is too large
    or too deep, another content type, an unknown path, a method the path does not take, a path that
    is not UTF-8) has no such record: with a ``verifier``, its key is looked up here, and if it is
    valid the refusal is audited with the key's id and role, its status and ``detail.refused_before_route``
    (never its body). A key that is not valid is not audited for it, as without a key.

    A request refused for its key (the route's 401, or 429 past the client's allowance) is told the
    same whatever was wrong with the key; its entry says what was, in ``detail.reason`` (see
    :meth:`KeyVerifier.refusal_reason`).
    """

    def __init__(self, app: ASGIApp, writer: AuditWriter, verifier: KeyVerifier | None = None) -> None:
        self.app = app
        self.writer = writer
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def audited_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the answer was replaced: drop the rest of the route's
            if message["type"] == "http.response.start":
                status = int(message["status"])
                await self._note_unrouted(scope, status)
                entry = self._entry(scope, status)
                if entry is not None and not await self.writer.write(entry):
                    refused = True
                    await send_unaudited(send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except BaseException:
            # No answer was sent (the server's error handler, outside, answers 500): audit that one.
            await self._note_unrouted(scope, 500)
            entry = self._entry(scope, 500)
            if entry is not None:
                await self.writer.write(entry)
            raise

    async def _note_unrouted(self, scope: Scope, status: int) -> None:
        """Record the principal of a request refused before a route looked at its key, if its key is valid."""
        if status < 400 or self.verifier is None:
            return
        state = scope.setdefault("state", {})
        if AUDIT_STATE_KEY in state:  # a route has recorded the request (and audits it, or knows why not)
            return
        principal = await self._principal(scope, self.verifier)
        if principal is None:
            return
        state[AUDIT_STATE_KEY] = {
            "key_id": principal.key_id,
            "role": principal.role,
            "action": "change-refused" if scope.get("method", "") in CHANGE_METHODS else "read",
            "resource": "",
            "detail": {"refused_before_route": True},
        }

    @staticmethod
    async def _principal(scope: Scope, verifier: KeyVerifier) -> Principal | None:
        key = _presented(scope)
        if not key:
            return None
        principal = verifier.cached(key)
        if principal is not None:
            return principal
        try:  # a store read and a deliberately slow hash, off the event loop, as the routes check a key
            found: Principal = await run_in_threadpool(verifier.authenticate, key)
        except NextmoveError:  # not a valid key (or the store cannot say): not audited, as without a key
            return None
        return found

    def _entry(self, scope: Scope, status: int) -> AuditEntry | None:
        """The entry of the request's answer, once (None without a key or if the route wrote its own)."""
        info = scope.get("state", {}).get(AUDIT_STATE_KEY)
        if info is None or info.get("written"):
            return None
        info["written"] = True
        action = info.get("action", "read")
        if status in DENIED_STATUSES:
            action = "denied"
        elif status >= 400 and action == "change":
            action = "change-refused"
        detail = info.get("detail", {})
        if action == "denied" and info.get("key_id") is None and self.verifier is not None:
            # The client is told the same whatever was wrong with its key; the trail says what it was.
            reason = self.verifier.refusal_reason(_presented(scope))
            if reason is not None:
                detail = {**detail, "reason": reason}
        return AuditEntry(
            action=action,
            method=scope.get("method", ""),
            path=audited_path(scope),
            status=status,
            key_id=info.get("key_id"),
            role=info.get("role"),
            resource=info.get("resource", ""),
            detail=detail,
        )


def _presented(scope: Scope) -> str | None:
    """The key a request sends (``Authorization: Bearer …`` or ``X-API-Key``), unverified."""
    headers: dict[bytes, str] = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name, value.decode("latin-1"))
    return presented_key(headers.get(b"authorization"), headers.get(b"x-api-key"))


def audited_path(scope: Scope) -> str:
    """The request's path for the trail: as decoded, or as sent (percent-encoded) when it is not UTF-8 once decoded.

    The server decodes such a path with its invalid bytes replaced by U+FFFD, which says nothing of what was sent.

    Examples
    --------
    >>> audited_path({"path": "/v1/accounts/\ufffd\ufffd", "raw_path": b"/v1/accounts/%C0%AE"})
    '/v1/accounts/%C0%AE'
    >>> audited_path({"path": "/v1/accounts/A/1", "raw_path": b"/v1/accounts/A%2F1"})
    '/v1/accounts/A/1'
    """
    raw = scope.get("raw_path")
    if raw and not utf8_once_decoded(raw):
        return bytes(raw).decode("latin-1")
    return str(scope.get("path", ""))


async def send_unaudited(send: Send) -> None:
    """Answer 503 ``store_unavailable`` in place of an answer whose audit entry the store refused."""
    body = json.dumps(
        error_body(503, "store_unavailable", "the audit trail could not be written, so nothing is answered; retry")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
