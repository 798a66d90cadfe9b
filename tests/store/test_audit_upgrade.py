"""Upgrading to schema version 5: audit entries of refused keys written before stop counting as the claimed key's.

Before, the API filed a request refused for its key (no key has that id, a wrong secret, a revoked
key) under the key id it claimed, with no role: anyone could write `denied` entries under the
admin key's public id, and the audit listing for that key showed them as its own. Today such an
entry has ``key_id`` null and the id in ``detail.claimed_key_id``; the upgrade moves the old ones so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from nextmove.store import SCHEMA_VERSION, AuditEntry, open_store

ADMIN = "a1b2c3d4e5f6"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _add_entry(sql, minute: int, path: str, status: int, key_id: str | None, role: str | None, detail: object) -> None:
    action = "denied" if status == 401 else "read"
    sql(
        "INSERT INTO audit_log (ts, key_id, role, action, method, path, resource, status, detail) "
        "VALUES (:ts, :key_id, :role, :action, 'GET', :path, '', :status, :detail)",
        ts=f"2026-06-01 00:{minute:02d}:00",
        key_id=key_id,
        role=role,
        action=action,
        path=path,
        status=status,
        detail=json.dumps(detail),
    )


def test_upgrading_to_version_5_moves_a_refused_keys_claimed_id_out_of_key_id(store_url: str, sql) -> None:
    open_store(store_url).close()
    # As a version-4 store holds them: the admin key's own reads, then refusals written by older releases
    # under the id they claimed (no role), one with an empty id (nm__…), and a refusal as written today.
    _add_entry(sql, 1, "/v1/runs", 200, ADMIN, "admin", {})
    _add_entry(sql, 2, "/v1/forged-1", 401, ADMIN, None, {})
    _add_entry(sql, 3, "/v1/forged-2", 401, ADMIN, None, {"client": "10.0.0.9"})
    _add_entry(sql, 4, "/v1/empty-claim", 401, "", None, {})
    _add_entry(sql, 5, "/v1/today", 401, None, None, {"claimed_key_id": ADMIN, "reason": "wrong_secret"})
    _add_entry(sql, 6, "/v1/accounts/a1", 200, ADMIN, "admin", {"note": "own"})
    sql("UPDATE nextmove_meta SET value = '4' WHERE key = 'schema_version'")
    with open_store(store_url) as store:
        # The key's listing shows only what the key did.
        assert [e.path for e in store.audit_log(key_id=ADMIN)] == ["/v1/accounts/a1", "/v1/runs"]
        assert store.audit_log(key_id="") == []
        entries = {e.path: e for e in store.audit_log()}
    assert {p: (e.key_id, e.role, e.detail) for p, e in entries.items()} == {
        "/v1/runs": (ADMIN, "admin", {}),
        "/v1/forged-1": (None, None, {"claimed_key_id": ADMIN}),
        "/v1/forged-2": (None, None, {"client": "10.0.0.9", "claimed_key_id": ADMIN}),
        "/v1/empty-claim": (None, None, {}),
        "/v1/today": (None, None, {"claimed_key_id": ADMIN, "reason": "wrong_secret"}),
        "/v1/accounts/a1": (ADMIN, "admin", {"note": "own"}),
    }
    assert sql("SELECT value FROM nextmove_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    with open_store(store_url) as store:  # nothing left to do
        assert len(store.audit_log()) == 6


def test_a_version_5_store_keeps_entries_it_is_given_with_a_key_id_and_no_role(store_url: str) -> None:
    """Only the upgrade moves such ids: once at version 5, what the store is given is kept as given."""
    with open_store(store_url) as store:
        store.add_audit([AuditEntry(action="read", method="GET", path="/x", status=200, key_id="k1", ts=T0)])
    with open_store(store_url) as store:
        assert [e.key_id for e in store.audit_log(key_id="k1")] == ["k1"]
