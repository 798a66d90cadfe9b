"""API keys: make one (shown once, stored as a salted scrypt hash), read one back from a request, check it.

A key reads ``nm_<key_id>_<secret>``: ``key_id`` is public and finds the stored record, the
secret is checked against its salted hash. Keys are random (256 bits), so the hash only has to
keep a stolen database from yielding usable keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import Final

from nextmove.book.nfc import nfc
from nextmove.errors import ConfigError
from nextmove.store.records import ROLES, ApiKeyRecord, Role

KEY_PREFIX: Final[str] = "nm"
"""Every key starts with ``nm_``, so that a leaked one is easy to recognise (and to scan for)."""

SCRYPT_N: Final[int] = 2**14
SCRYPT_R: Final[int] = 8
SCRYPT_P: Final[int] = 1
DEFAULT_HASH_SCHEME: Final[str] = f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}"
"""The hash scheme of a new key (the CLI's); tests pass a cheaper one."""
_KEY_ID_BYTES: Final[int] = 6
_SECRET_BYTES: Final[int] = 32
_KEY_PATTERN: Final = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{{2 * _KEY_ID_BYTES}}})_([A-Za-z0-9_\-]{{16,128}})$")


def hash_secret(secret: str, salt: bytes, scheme: str) -> bytes:
    """The hash of ``secret`` with ``salt`` under ``scheme`` (``scrypt:N:r:p``).

    Examples
    --------
    >>> len(hash_secret("s3cret", b"salt", "scrypt:1024:8:1"))
    32
    """
    name, _, params = scheme.partition(":")
    parts = params.split(":")
    if name != "scrypt" or len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"unknown API key hash scheme {scheme!r}; expected scrypt:N:r:p")
    n, r, p = (int(x) for x in parts)
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def new_api_key(
    role: str,
    owners: Sequence[str] = (),
    *,
    name: str = "",
    scheme: str = DEFAULT_HASH_SCHEME,
) -> tuple[str, ApiKeyRecord]:
    """A fresh API key and the record to store for it.

    Parameters
    ----------
    role : {"admin", "manager", "csm", "service"}
        What the key may do.
    owners : sequence of str
        ``csm``: the one owner whose accounts it sees; ``manager``: the owners of the team.
    name : str
        A label for people.
    scheme : str
        Hash scheme (tests use a cheaper scrypt cost).

    Returns
    -------
    (str, ApiKeyRecord)
        The key to hand over (shown once; it cannot be recovered) and the record to store.

    Raises
    ------
    ConfigError
        If the role is unknown or its owners do not fit it.

    Examples
    --------
    >>> key, record = new_api_key("csm", ["maria"], scheme="scrypt:1024:8:1")
    >>> key.startswith(f"nm_{record.key_id}_"), verify_api_key(record, key)
    (True, True)
    """
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    # In NFC, as the book's owners are read: an owner typed in another form still names the same accounts.
    cleaned = [nfc(o.strip()) for o in owners if o.strip()]
    if role in ("admin", "service") and cleaned:
        article = "an" if role[:1] in "aeiou" else "a"
        raise ConfigError(f"{article} {role} key sees every account; drop the owners ({', '.join(cleaned)})")
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    salt = secrets.token_bytes(16)
    role_value: Role = role  # type: ignore[assignment]
    record = ApiKeyRecord(
        key_id=key_id,
        role=role_value,
        secret_hash=hash_secret(secret, salt, scheme),
        salt=salt,
        hash_scheme=scheme,
        owners=cleaned,
        name=name,
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a key in the ``nm_<key_id>_<secret>`` form, or None if it is not one.

    Examples
    --------
    >>> parse_api_key("nm_0123456789ab_" + "x" * 20)
    ('0123456789ab', 'xxxxxxxxxxxxxxxxxxxx')
    >>> parse_api_key("hello") is None
    True
    """
    match = _KEY_PATTERN.match(key.strip())
    return None if match is None else (match.group(1), match.group(2))


def verify_api_key(record: ApiKeyRecord, key: str) -> bool:
    """Whether ``key`` is the key of ``record`` (and the record is not revoked); constant-time comparison."""
    parsed = parse_api_key(key)
    if parsed is None or parsed[0] != record.key_id or not record.active:
        return False
    return hmac.compare_digest(hash_secret(parsed[1], record.salt, record.hash_scheme), record.secret_hash)
