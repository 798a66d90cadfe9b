"""Failed authentications per client: answered 429 past an allowance, and summarised in the audit trail.

Every request with no valid key used to write an audit entry, committed before its answer: a short
flood wrote thousands of rows. Each client (its IP address; an IPv6 address by its /64 network,
which one machine usually has whole) has a token bucket of failed authentications: ``burst`` at
once, refilled at ``per_minute``. Within it, a refusal is answered 401 and audited as before.
Past it, the answer is 429 with ``Retry-After``, and only the first such refusal of each minute
is written; the others are counted, and the count is written as one summary entry when the
minute is over (on the client's next refusal, at the server's next periodic sweep, or when it
stops).

Only failures count: a request whose key is valid is never refused by this, whatever its client
did before, so a client sharing an address (a proxy, a NAT) with a flood is not shut out.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from nextmove.store import AuditEntry
from nextmove.store.records import utcnow

AUDIT_WINDOW_S: Final[float] = 60.0
"""Past its allowance, a client's refusals are written as one entry per window of this length, plus a count."""
MAX_CLIENTS: Final[int] = 10_000
"""Clients remembered at most; beyond, the one seen longest ago is forgotten (its count written first)."""
ALL_CLIENTS_FACTOR: Final[int] = 10
"""All clients together write at most this many times one client's allowance of refusals one by one:
a flood from many addresses (an IPv6 /48 holds 65,536 /64 networks, each with a whole bucket) is
counted into summary entries past it, as one client's is."""


def client_of(scope: Mapping[str, Any]) -> str:
    """The client an ASGI request counts against: its IP address, an IPv6 one by its /64 network.

    Behind a reverse proxy the address is the proxy's, unless the server is told to trust its
    ``X-Forwarded-For`` (uvicorn's ``FORWARDED_ALLOW_IPS``; 127.0.0.1 is trusted by default).

    Examples
    --------
    >>> client_of({"client": ("203.0.113.7", 51000)})
    '203.0.113.7'
    >>> client_of({"client": ("2001:db8:1:2:aaaa::1", 51000)})
    '2001:db8:1:2::/64'
    >>> client_of({})
    'unknown'
    """
    client = scope.get("client")
    host = client[0] if client else None
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class Refusal:
    """How to answer a failed authentication: 429 or not, audited on its own or only counted."""

    limited: bool
    """Past the client's allowance: answer 429 with ``Retry-After``."""
    audit: bool
    """Write this refusal's own audit entry (else it is counted in the client's summary entry)."""
    retry_after_s: int = 0
    """Seconds until the client's next failed authentication is answered 401 again."""


@dataclass
class _Client:
    tokens: float
    refilled_at: float
    window_at: float | None = None
    """When the current window of counted refusals began (monotonic); None outside one."""
    window_ts: datetime | None = None
    counted: int = 0
    """Refusals of the window not written one by one."""
    last_ts: datetime | None = None
    last_request: tuple[str, str] = ("", "")


class AuthFailureLimiter:
    """A token bucket of failed authentications per client, and the audit entries that summarise the rest.

    Parameters
    ----------
    burst
        Failed authentications a client may make at once before it is answered 429 (0: no limit).
    per_minute
        How fast the allowance comes back, per minute.
    write
        Queues an audit entry (the summary entries), e.g. :meth:`AuditWriter.add`.
    window_s
        Past the allowance, one refusal per window is written, then a count of the others.
    max_clients
        Clients remembered at most.
    clock
        Monotonic seconds (tests pass their own).

    Examples
    --------
    >>> written = []
    >>> limiter = AuthFailureLimiter(2, 60.0, write=written.append, clock=lambda: 0.0)
    >>> [(r.limited, r.audit) for r in (limiter.refuse("10.0.0.1", "GET", "/v1/runs") for _ in range(5))]
    [(False, True), (False, True), (True, True), (True, False), (True, False)]
    >>> limiter.close()
    >>> [(e.status, e.detail["refusals_not_listed"]) for e in written]
    [(429, 2)]
    """

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        write: Callable[[AuditEntry], object],
        window_s: float = AUDIT_WINDOW_S,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.per_minute = per_minute
        self.write = write
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()
        # Refusals audited one by one, over all clients: a bucket ALL_CLIENTS_FACTOR times a client's.
        self._all = _Client(tokens=float(burst * ALL_CLIENTS_FACTOR), refilled_at=clock())

    @property
    def enabled(self) -> bool:
        """Whether failed authentications are limited at all (``burst`` > 0 and ``per_minute`` > 0)."""
        return self.burst > 0 and self.per_minute > 0

    def refuse(self, client: str, method: str, path: str) -> Refusal:
        """Count a failed authentication of ``client`` (``method path``); how to answer and audit it."""
        if not self.enabled:
            return Refusal(limited=False, audit=True)
        now = self.clock()
        rate_s = self.per_minute / 60.0
        with self._lock:
            state = self._clients.get(client)
            if state is None:
                state = self._clients[client] = _Client(tokens=float(self.burst), refilled_at=now)
                self._forget_oldest()
            else:
                self._clients.move_to_end(client)
                state.tokens = min(float(self.burst), state.tokens + (now - state.refilled_at) * rate_s)
                state.refilled_at = now
            if state.window_at is not None and now - state.window_at >= self.window_s:
                self._close_window(client, state)
            if state.tokens >= 1.0:
                state.tokens -= 1.0
                return Refusal(limited=False, audit=self._audit_one(now, method, path))
            retry_after_s = max(1, math.ceil((1.0 - state.tokens) / rate_s))
            state.last_ts = utcnow()
            state.last_request = (method, path)
            if state.window_at is None:
                state.window_at, state.window_ts = now, state.last_ts
                return Refusal(limited=True, audit=self._audit_one(now, method, path), retry_after_s=retry_after_s)
            state.counted += 1
            return Refusal(limited=True, audit=False, retry_after_s=retry_after_s)

    def _audit_one(self, now: float, method: str, path: str) -> bool:
        """Whether all clients' allowance of refusals audited one by one has room; else count it (lock held)."""
        whole = float(self.burst * ALL_CLIENTS_FACTOR)
        rate_s = self.per_minute * ALL_CLIENTS_FACTOR / 60.0
        every = self._all
        every.tokens = min(whole, every.tokens + (now - every.refilled_at) * rate_s)
        every.refilled_at = now
        if every.window_at is not None and now - every.window_at >= self.window_s:
            self._close_window("*", every)
        if every.tokens >= 1.0:
            every.tokens -= 1.0
            return True
        every.last_ts = utcnow()
        every.last_request = (method, path)
        if every.window_at is None:
            every.window_at, every.window_ts = now, every.last_ts
        every.counted += 1
        return False

    def sweep(self) -> None:
        """Write the summary of every window that is over; forget clients whose allowance is whole again."""
        if not self.enabled:
            return
        now = self.clock()
        rate_s = self.per_minute / 60.0
        with self._lock:
            for client, state in list(self._clients.items()):
                if state.window_at is not None and now - state.window_at >= self.window_s:
                    self._close_window(client, state)
                whole = state.tokens + (now - state.refilled_at) * rate_s >= self.burst
                if whole and state.window_at is None:
                    del self._clients[client]
            if self._all.window_at is not None and now - self._all.window_at >= self.window_s:
                self._close_window("*", self._all)

    def close(self) -> None:
        """Write the summary of every open window (the server stops)."""
        with self._lock:
            for client, state in self._clients.items():
                self._close_window(client, state)
            self._clients.clear()
            self._close_window("*", self._all)

    def _forget_oldest(self) -> None:
        while len(self._clients) > self.max_clients:
            client, state = self._clients.popitem(last=False)
            self._close_window(client, state)

    def _close_window(self, client: str, state: _Client) -> None:
        if state.counted:
            method, path = state.last_request
            self.write(
                AuditEntry(
                    action="denied",
                    method=method,
                    path=path,
                    status=429,
                    resource=f"client:{client}",
                    detail={
                        "client": client,
                        "refusals_not_listed": state.counted,
                        "from": None if state.window_ts is None else state.window_ts.isoformat(),
                        "to": None if state.last_ts is None else state.last_ts.isoformat(),
                    },
                    ts=state.last_ts or utcnow(),
                )
            )
        state.window_at = state.window_ts = None
        state.counted = 0
