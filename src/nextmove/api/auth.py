"""Who is asking: API keys checked against their stored hashes, roles, and which accounts a key may see."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Final, Literal

from nextmove.api.errors import ForbiddenError, UnauthenticatedError
from nextmove.book.nfc import nfc
from nextmove.errors import NotFoundError
from nextmove.store import ApiKeyRecord, Role, Store
from nextmove.store.keys import DEFAULT_HASH_SCHEME, parse_api_key, verify_api_key

KEY_HELP: Final[str] = (
    "send an API key as `Authorization: Bearer nm_…` (or `X-API-Key: nm_…`); an admin creates one with "
    "`nextmove keys create --role csm --owner NAME`"
)

RefusalReason = Literal["unknown_key", "wrong_secret", "revoked", "revoked_wrong_secret"]
"""Why a presented key was refused (kept in the audit trail; the client is told only ``revoked`` apart)."""

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

    A refused key is told the same, at the same cost, whether no key has its id, its secret is
    wrong or it was revoked: an id with no key is hashed all the same (against a stand-in of the
    store's hash scheme), and so is another secret with the id of a key verified lately, so that
    neither the answer nor its time tells which ids exist. Only the holder of a revoked key (its
    secret right) is told that it was revoked. Why a key was refused is kept for the audit trail
    (:meth:`refusal_reason`).
    """

    def __init__(self, store: Store, ttl_s: float = 60.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, _Cached] = {}
        self._gates: dict[str, threading.Lock] = {}
        self._refused: dict[bytes, tuple[float, RefusalReason]] = {}
        self._lock = threading.Lock()
        # What an id with no key is checked against: a hash no secret gives (random), of the scheme
        # of the last key read from the store (the CLI's until one is read).
        self._stand_in_salt = secrets.token_bytes(16)
        self._stand_in_hash = secrets.token_bytes(32)
        self._scheme = DEFAULT_HASH_SCHEME

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
                refused = self._refused.get(digest)
            verified = cached if cached is not None and hmac.compare_digest(cached.digest, digest) else None
            if verified is not None and now - verified.checked_at < self.ttl_s:
                return verified.principal
            if refused is not None and now - refused[0] < self.ttl_s:
                raise _refusal(key_id, refused[1])
            # Another secret with the id of a key verified lately is checked like any other: refused
            # from memory, it would answer faster than an id with no key, and so tell which ids are in use.
            principal, secret_hash = self._check(key_id, presented, digest, now, verified)
            with self._lock:
                self._cache[key_id] = _Cached(digest, principal, now, secret_hash)
            return principal

    def refusal_reason(self, presented: str | None) -> RefusalReason | None:
        """Why ``presented`` was refused within ``ttl_s`` (for the audit trail), or None if it was not.

        ``unknown_key`` (no key has its id), ``wrong_secret``, ``revoked`` (its secret right) or
        ``revoked_wrong_secret``. The client is told only ``revoked`` apart from the others.
        """
        if not presented or parse_api_key(presented) is None:
            return None
        digest = hashlib.sha256(presented.strip().encode()).digest()
        with self._lock:
            refused = self._refused.get(digest)
        return None if refused is None or time.monotonic() - refused[0] >= self.ttl_s else refused[1]

    def _check(
        self, key_id: str, presented: str, digest: bytes, now: float, verified: _Cached | None
    ) -> tuple[Principal, bytes]:
        try:
            record: ApiKeyRecord | None = self.store.api_key(key_id)
        except NotFoundError:
            record = None
        reason: RefusalReason
        if record is None:
            # Hashed all the same, at the cost of a known key's check: a quick refusal would tell it has no key.
            verify_api_key(self._stand_in(key_id), presented)
            reason = "unknown_key"
        else:
            self._scheme = record.hash_scheme
            same_key = verified is not None and hmac.compare_digest(verified.secret_hash, record.secret_hash)
            # A revoked key's secret is checked too: only its holder is told that it was revoked.
            right = same_key or verify_api_key(replace(record, revoked_at=None), presented)
            if right and record.active:
                return principal_of(record), record.secret_hash
            reason = "wrong_secret" if record.active else ("revoked" if right else "revoked_wrong_secret")
        if reason != "wrong_secret":
            self.forget(key_id)
        self._refuse(digest, now, reason)
        raise _refusal(key_id, reason)

    def _stand_in(self, key_id: str) -> ApiKeyRecord:
        """A record for an id with no key, which no secret matches, hashed as the store's keys are."""
        return ApiKeyRecord(
            key_id=key_id,
            role="service",
            secret_hash=self._stand_in_hash,
            salt=self._stand_in_salt,
            hash_scheme=self._scheme,
        )

    def _refuse(self, digest: bytes, now: float, reason: RefusalReason) -> None:
        with self._lock:
            if len(self._refused) > 10_000:
                self._refused.clear()
            self._refused[digest] = (now, reason)

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking it)."""
        with self._lock:
            self._cache.pop(key_id, None)


def _refusal(key_id: str, reason: RefusalReason) -> UnauthenticatedError:
    """What a refused key is told: the same for every reason, but ``revoked`` (the secret was right)."""
    if reason == "revoked":
        return UnauthenticatedError(f"the API key {key_id} was revoked: {KEY_HELP}")
    return UnauthenticatedError(
        f"the API key {key_id} is not valid: no key has that id, or its secret is wrong; {KEY_HELP}"
    )


def principal_of(record: ApiKeyRecord) -> Principal:
    """The principal a stored key stands for (its owners in NFC, as the book's are read, whatever form a key kept)."""
    owners = frozenset(nfc(owner) for owner in record.owners)
    return Principal(record.key_id, record.role, owners, record.name)


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
