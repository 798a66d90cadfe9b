"""Contract tests: API keys are stored hashed, found by their public id, and revocable; the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nextmove.errors import ConfigError, NotFoundError
from nextmove.store import ApiKeyRecord, AuditEntry, Store
from nextmove.store.keys import new_api_key, parse_api_key, verify_api_key

CHEAP = "scrypt:1024:8:1"


def test_new_api_key_stores_only_a_salted_hash(store: Store) -> None:
    key, record = new_api_key("csm", ["maria"], name="Maria's laptop", scheme=CHEAP)
    store.create_api_key(record)
    stored = store.api_key(record.key_id)
    assert stored == record
    secret = key.rsplit("_", 1)[1]
    assert secret.encode() not in stored.secret_hash
    assert verify_api_key(stored, key)
    assert not verify_api_key(stored, key[:-1] + ("A" if key[-1] != "A" else "B"))
    # Two keys never share a salt, so equal secrets would still hash differently.
    _, other = new_api_key("csm", ["maria"], scheme=CHEAP)
    assert other.salt != record.salt


def test_revoked_key_no_longer_verifies(store: Store) -> None:
    key, record = new_api_key("admin", scheme=CHEAP)
    store.create_api_key(record)
    store.revoke_api_key(record.key_id)
    store.revoke_api_key(record.key_id)  # twice is fine
    stored = store.api_key(record.key_id)
    assert stored.revoked_at is not None
    assert not verify_api_key(stored, key)
    assert [k.key_id for k in store.list_api_keys()] == [record.key_id]


def test_unknown_key_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no API key 'abc'"):
        store.api_key("abc")
    with pytest.raises(NotFoundError):
        store.revoke_api_key("abc")


@pytest.mark.parametrize(
    ("role", "owners", "message"),
    [
        ("boss", [], "role must be one of"),
        ("csm", [], "needs at least one owner"),
        ("csm", ["a", "b"], "one owner's accounts"),
        ("admin", ["a"], "drop the owners"),
    ],
)
def test_new_api_key_rejects_a_role_and_owners_that_do_not_fit(role: str, owners: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        new_api_key(role, owners, scheme=CHEAP)


def test_parse_api_key_refuses_other_shapes() -> None:
    assert parse_api_key("Bearer nm_x") is None
    assert parse_api_key("nm_0123456789ab_short") is None
    assert parse_api_key("nm_0123456789AB_" + "x" * 30) is None


def test_api_key_record_repr_hides_the_hash() -> None:
    _, record = new_api_key("service", scheme=CHEAP)
    assert repr(record.secret_hash) not in repr(record)
    assert isinstance(record, ApiKeyRecord)


def test_audit_log_keeps_entries_newest_first_and_filters(store: Store) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    entries = [
        AuditEntry(
            action="read",
            method="GET",
            path=f"/v1/accounts/a{i}",
            status=200,
            key_id=f"k{i % 2}",
            role="csm",
            resource=f"account:a{i}",
            detail={"i": i},
            ts=t0 + timedelta(minutes=i),
        )
        for i in range(5)
    ]
    store.add_audit(entries[:3])
    store.add_audit(entries[3:])
    store.add_audit([])
    assert store.audit_log() == entries[::-1]
    assert store.audit_log(key_id="k1") == [entries[3], entries[1]]
    assert store.audit_log(since=t0 + timedelta(minutes=3), limit=1) == [entries[4]]
