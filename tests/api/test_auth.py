"""API keys: hashed once per key, checked against the store again every ``ttl_s``, revocation honoured.

A refused key is told the same, at the cost of a hash, whatever was wrong with it (but its holder
that it was revoked); the audit trail says what was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.api.conftest import CHEAP_HASH, Keys, make_keys, seed_run

import nextmove.api.auth as auth
from nextmove.api import ApiConfig, create_app
from nextmove.api.auth import KeyVerifier
from nextmove.api.errors import UnauthenticatedError
from nextmove.api.service import Services
from nextmove.playbook import Playbook
from nextmove.store import ApiKeyRecord, Store, open_store
from nextmove.store.keys import SCRYPT_N, SCRYPT_P, SCRYPT_R, new_api_key, verify_api_key


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


# ---- refusals: one answer, one cost, whatever was wrong with the key ----------------------------


def test_an_id_with_no_key_and_a_revoked_key_are_hashed_like_a_wrong_secret(store: Store, hashes: list[str]) -> None:
    key, record = new_api_key("service", scheme=CHEAP_HASH)
    store.create_api_key(record)
    gone_key, gone = new_api_key("service", scheme=CHEAP_HASH)
    store.create_api_key(gone)
    store.revoke_api_key(gone.key_id)
    verifier = KeyVerifier(store, ttl_s=60.0)
    verifier.authenticate(key)
    nobody = f"nm_{'0' * 12}_{'x' * 40}"
    for presented in (nobody, f"nm_{record.key_id}_{'x' * 40}", f"nm_{gone.key_id}_{'x' * 40}", gone_key):
        with pytest.raises(UnauthenticatedError):
            verifier.authenticate(presented)
    # The id with no key, another secret of a key verified lately, the revoked key's wrong and right secrets.
    assert hashes == [record.key_id, "0" * 12, record.key_id, gone.key_id, gone.key_id]
    assert verifier.refusal_reason(nobody) == "unknown_key"
    assert verifier.refusal_reason(gone_key) == "revoked"
    assert verifier.refusal_reason(key) is None
    assert verifier.authenticate(key).role == "service"  # the real key still works, unhashed
    assert len(hashes) == 5


def test_an_id_with_no_key_is_hashed_with_the_scheme_of_the_stores_keys(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    schemes: list[str] = []

    def seen(record: ApiKeyRecord, key: str) -> bool:
        schemes.append(record.hash_scheme)
        return verify_api_key(record, key)

    monkeypatch.setattr(auth, "verify_api_key", seen)
    verifier = KeyVerifier(store)
    nobody = f"nm_{'0' * 12}_{'x' * 40}"
    with pytest.raises(UnauthenticatedError):
        verifier.authenticate(nobody)
    key, record = new_api_key("admin", scheme=CHEAP_HASH)
    store.create_api_key(record)
    verifier.authenticate(key)
    with pytest.raises(UnauthenticatedError):
        verifier.authenticate(f"nm_{'1' * 12}_{'x' * 40}")
    # Before any key is read, the scheme new keys get (the CLI's).
    assert schemes == [f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}", CHEAP_HASH, CHEAP_HASH]


def _app(tmp_path: Path, playbook: Playbook) -> tuple[FastAPI, Keys, str]:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as opened:
        seed_run(opened, playbook)
        keys = make_keys(opened)
    return create_app(ApiConfig(playbook=playbook, store_url=url, refresh_s=3600.0)), keys, url


def _get_all(app: FastAPI, requests: list[tuple[str, str]]) -> list[httpx.Response]:
    """``GET`` each ``(path, key)`` in turn through the app (its audit writer running), then close it."""
    services: Services = app.state.services

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove") as client:
            return [await client.get(path, headers={"Authorization": f"Bearer {key}"}) for path, key in requests]

    services.audit.start()
    try:
        return asyncio.run(main())
    finally:
        services.close()


def test_a_refused_key_is_told_the_same_whether_no_key_has_its_id_it_was_revoked_or_its_secret_is_wrong(
    tmp_path: Path, playbook: Playbook
) -> None:
    app, keys, url = _app(tmp_path, playbook)
    with open_store(url) as opened:
        gone_key, gone = new_api_key("admin", scheme=CHEAP_HASH)
        opened.create_api_key(gone)
        opened.revoke_api_key(gone.key_id)
    known = keys.ids["admin"]
    wrong = "x" * 43
    refused = {
        "unknown_key": f"nm_{'0' * 12}_{wrong}",
        "wrong_secret": f"nm_{known}_{wrong}",
        "revoked_wrong_secret": f"nm_{gone.key_id}_{wrong}",
    }
    answers = _get_all(
        app,
        [
            ("/v1/runs", keys.admin),  # the admin key is verified lately: another secret with its id is no quicker
            *(("/v1/runs", key) for key in refused.values()),
            ("/v1/runs", gone_key),
        ],
    )
    assert answers[0].status_code == 200
    *told, holder = answers[1:]
    assert [a.status_code for a in told] == [401, 401, 401]
    bodies = [a.text.replace(key.split("_")[1], "<id>") for a, key in zip(told, refused.values(), strict=True)]
    assert bodies[0] == bodies[1] == bodies[2], bodies
    assert told[0].json()["code"] == "unauthenticated"
    assert "nextmove keys create" in told[0].json()["message"]
    # The holder of the revoked key (its secret right) is told that it was revoked.
    assert holder.status_code == 401
    assert f"the API key {gone.key_id} was revoked" in holder.json()["message"]
    # The trail says what was wrong with each, under the id it claimed.
    with open_store(url) as opened:
        denied = [e for e in opened.audit_log(limit=100) if e.action == "denied"]
    assert sorted((e.detail["claimed_key_id"], e.detail.get("reason")) for e in denied) == sorted(
        [
            ("0" * 12, "unknown_key"),
            (known, "wrong_secret"),
            (gone.key_id, "revoked_wrong_secret"),
            (gone.key_id, "revoked"),
        ]
    )
    assert all(e.key_id is None and e.status == 401 for e in denied)
