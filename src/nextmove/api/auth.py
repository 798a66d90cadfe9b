"""Who is asking: API keys checked against their stored hashes, roles, and which accounts a key may see."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Final

from nextmove.api.errors import ForbiddenError, UnauthenticatedError
from nextmove.errors import NotFoundError
from nextmove.store import ApiKeyRecord, Role, Store
from nextmove.store.keys import parse_api_key, verify_api_key

KEY_HELP: Final[str] = (
    "send an API key as `Authorization: Bearer nm_…` (or `X-API-Key: nm_…`); an admin creates one with "
    "`nextmove keys create --role csm --owner NAME`"
)

ENDPOINT_ROLES: Final[dict[str, frozenset[str]]] = {
    "decide": frozenset({"admin", "manager", "csm", "service"}),
    "feedback": frozenset({"admin", "manager", "csm", "service"}),
    "accounts": frozenset({"admin", "manager", "csm"}),
    "recommendations": frozenset({"admin", "manager", "csm"}),
    "runs:read": frozenset({"admin", "manager"}),
    "runs:start": frozenset({"admin"}),
    "lift": frozenset({"admin", "manager"}),
    "segments": frozenset({"admin", "manager"}),
    "audit": frozenset({"admin"}),
}
"""Which roles may use each group of endpoints; within it, ``manager`` and ``csm`` see only their accounts."""


@dataclass(frozen=True)
class Principal:
    """An authenticated API key: its id, role and the owners whose accounts it sees."""

    key_id: str
    role: Role
    owners: frozenset[str]
    name: str = ""

    @property
    def sees_everything(self) -> bool:
        """``admin`` and ``service`` keys are not limited to some owners' accounts."""
        return self.role in ("admin", "service")

    def sees_owner(self, owner: str | None) -> bool:
        """Whether accounts of ``owner`` are visible to this key.

        Examples
        --------
        >>> Principal("k", "csm", frozenset({"maria"})).sees_owner("joe")
        False
        """
        return self.sees_everything or (owner is not None and owner in self.owners)

    def require(self, endpoint: str) -> None:
        """Raise :class:`ForbiddenError` unless the role may use ``endpoint``'s group."""
        allowed = ENDPOINT_ROLES[endpoint]
        if self.role not in allowed:
            raise ForbiddenError(
                f"this endpoint needs a key with role {' or '.join(sorted(allowed))}; this key ({self.key_id}) is "
                f"{self.role!r}: ask an admin for a key of the right role"
            )

    def require_account(self, account_id: str, owner: str | None) -> None:
        """Raise :class:`NotFoundError` (never 403: the account's existence is not revealed) if it is not visible."""
        if not self.sees_owner(owner):
            raise NotFoundError(f"no account {account_id!r} visible to this key")


@dataclass
class _Cached:
    digest: bytes
    principal: Principal
    checked_at: float
    secret_hash: bytes
    """The stored hash the key was verified against: while the store keeps it, the key needs no new hash."""


class KeyVerifier:
    """Checks presented keys against the store, caching a verified key for ``ttl_s`` seconds.

    scrypt makes each check cost tens of milliseconds on purpose; the cache keeps that to the
    first request of a key, comparing a SHA-256 of the presented key in constant time meanwhile.
    Every ``ttl_s`` the key's record is read again: a key revoked in the store stops working within
    ``ttl_s`` seconds (at once in the process that revoked it, see :meth:`forget`), and a changed
    role or scope applies. The hash is not computed again while the record keeps the hash the key
    was verified against: the same SHA-256 means the same key.
    """

    def __init__(self, store: Store, ttl_s: float = 60.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, _Cached] = {}
        self._gates: dict[str, threading.Lock] = {}
        self._refused: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def cached(self, presented: str | None) -> Principal | None:
        """The principal of a key verified within ``ttl_s`` (no I/O), or None if it must be checked."""
        parsed = parse_api_key(presented) if presented else None
        if parsed is None:
            return None
        with self._lock:
            cached = self._cache.get(parsed[0])
        if cached is None or time.monotonic() - cached.checked_at >= self.ttl_s:
            return None
        digest = hashlib.sha256(presented.strip().encode()).digest()  # type: ignore[union-attr]
        return cached.principal if hmac.compare_digest(cached.digest, digest) else None

    def authenticate(self, presented: str | None) -> Principal:
        """The principal of a presented key, or :class:`UnauthenticatedError` (may read the store).

        Concurrent first requests with one key wait for a single check (the hash costs tens of
        milliseconds of CPU and memory on purpose; a burst of new connections must not pay it
        once each), and a key found invalid is refused from memory for ``ttl_s`` seconds.
        """
        if not presented:
            raise UnauthenticatedError(f"no API key: {KEY_HELP}")
        parsed = parse_api_key(presented)
        if parsed is None:
            raise UnauthenticatedError(f"the API key is not in the nm_<id>_<secret> form: {KEY_HELP}")
        key_id = parsed[0]
        digest = hashlib.sha256(presented.strip().encode()).digest()
        with self._lock:
            gate = self._gates.setdefault(key_id, threading.Lock())
        with gate:
            now = time.monotonic()
            with self._lock:
                cached = self._cache.get(key_id)
                refused_at = self._refused.get(digest)
            if cached is not None and now - cached.checked_at < self.ttl_s:
                if hmac.compare_digest(cached.digest, digest):
                    return cached.principal
                raise UnauthenticatedError(f"the API key {key_id} is not valid: {KEY_HELP}")
            if refused_at is not None and now - refused_at < self.ttl_s:
                raise UnauthenticatedError(f"the API key {key_id} is not valid: {KEY_HELP}")
            verified = cached if cached is not None and hmac.compare_digest(cached.digest, digest) else None
            principal, secret_hash = self._check(key_id, presented, digest, now, verified)
            with self._lock:
                self._cache[key_id] = _Cached(digest, principal, now, secret_hash)
            return principal

    def _check(
        self, key_id: str, presented: str, digest: bytes, now: float, verified: _Cached | None
    ) -> tuple[Principal, bytes]:
        try:
            record = self.store.api_key(key_id)
        except NotFoundError:
            self.forget(key_id)
            self._refuse(digest, now)
            raise UnauthenticatedError(f"unknown API key {key_id}: {KEY_HELP}") from None
        if not record.active:
            self.forget(key_id)
            self._refuse(digest, now)
            raise UnauthenticatedError(f"the API key {key_id} was revoked: {KEY_HELP}")
        same_key = verified is not None and hmac.compare_digest(verified.secret_hash, record.secret_hash)
        if not same_key and not verify_api_key(record, presented):
            self._refuse(digest, now)
            raise UnauthenticatedError(f"the API key {key_id} is not valid: {KEY_HELP}")
        return principal_of(record), record.secret_hash

    def _refuse(self, digest: bytes, now: float) -> None:
        with self._lock:
            if len(self._refused) > 10_000:
                self._refused.clear()
            self._refused[digest] = now

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking it)."""
        with self._lock:
            self._cache.pop(key_id, None)


def principal_of(record: ApiKeyRecord) -> Principal:
    """The principal a stored key stands for."""
    return Principal(record.key_id, record.role, frozenset(record.owners), record.name)


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer …`` or ``X-API-Key``.

    Examples
    --------
    >>> presented_key("Bearer nm_abc", None)
    'nm_abc'
    """
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None if x_api_key is None else x_api_key.strip()
    return None if x_api_key is None else x_api_key.strip()
