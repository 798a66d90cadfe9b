"""API keys: hashed once per key, checked against the store again every ``ttl_s``, revocation honoured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api.conftest import CHEAP_HASH

import nextmove.api.auth as auth
from nextmove.api.auth import KeyVerifier
from nextmove.api.errors import UnauthenticatedError
from nextmove.store import ApiKeyRecord, Store, open_store
from nextmove.store.keys import new_api_key, verify_api_key


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key ids hashed by the verifier, in order."""
    seen: list[str] = []

    def counting(record: ApiKeyRecord, key: str) -> bool:
        seen.append(record.key_id)
        return verify_api_key(record, key)

    monkeypatch.setattr(auth, "verify_api_key", counting)
    return seen


def test_a_key_is_hashed_once_and_its_record_read_again_after_the_ttl(store: Store, hashes: list[str]) -> None:
    key, record = new_api_key("csm", ["ana"], scheme=CHEAP_HASH)
    store.create_api_key(record)
    verifier = KeyVerifier(store, ttl_s=0.0)  # every request past the ttl
    assert verifier.authenticate(key).owners == frozenset({"ana"})
    assert verifier.authenticate(key).role == "csm"
    assert verifier.authenticate(key).role == "csm"
    assert hashes == [record.key_id]
    store.revoke_api_key(record.key_id)
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verifier.authenticate(key)


def test_another_secret_with_a_known_key_id_is_hashed_and_refused(store: Store, hashes: list[str]) -> None:
    key, record = new_api_key("service", scheme=CHEAP_HASH)
    store.create_api_key(record)
    verifier = KeyVerifier(store, ttl_s=0.0)
    verifier.authenticate(key)
    forged = f"nm_{record.key_id}_{'x' * 40}"
    with pytest.raises(UnauthenticatedError, match="not valid"):
        verifier.authenticate(forged)
    assert hashes == [record.key_id, record.key_id]
    assert verifier.authenticate(key).role == "service"  # the real key still works, unhashed
    assert len(hashes) == 2


def test_a_key_id_stored_again_with_another_hash_needs_the_new_secret(store: Store, hashes: list[str]) -> None:
    old_key, old = new_api_key("admin", scheme=CHEAP_HASH)
    store.create_api_key(old)
    verifier = KeyVerifier(store, ttl_s=0.0)
    verifier.authenticate(old_key)
    # The record under the same id now holds another secret's hash (e.g. restored from elsewhere).
    _, other = new_api_key("admin", scheme=CHEAP_HASH)
    replaced = ApiKeyRecord(
        key_id=old.key_id,
        role=old.role,
        secret_hash=other.secret_hash,
        salt=other.salt,
        hash_scheme=other.hash_scheme,
    )
    verifier.store = _Replaced(store, replaced)  # type: ignore[assignment]
    with pytest.raises(UnauthenticatedError, match="not valid"):
        verifier.authenticate(old_key)
    assert hashes == [old.key_id, old.key_id]


class _Replaced:
    """A store whose one key record is ``record``."""

    def __init__(self, store: Store, record: ApiKeyRecord) -> None:
        self.store = store
        self.record = record

    def api_key(self, key_id: str) -> ApiKeyRecord:
        assert key_id == self.record.key_id
        return self.record
