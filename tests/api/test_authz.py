"""Who may do what: every endpoint × every role against a real server, on SQLite and PostgreSQL.

Accounts in the seeded run: acct-000 is ana's, acct-001 ben's, acct-002 cleo's. The manager's
team is ana and ben; the CSM is ana; the other CSM is cleo. A key that may not see an account
gets 404, exactly as for an account that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.api.conftest import Served

ROLES = ("anonymous", "bogus", "admin", "manager", "csm", "other_csm", "service")
BOGUS_KEY = "nm_000000000000_" + "x" * 43


def _feedback(account: str) -> dict[str, Any]:
    return {"events": [{"event_id": f"authz-{uuid.uuid4().hex}", "account_id": account, "kind": "done"}]}


# (name, method, path, body) → expected status per role, in ROLES order.
MATRIX: list[tuple[str, str, str, Any, tuple[int, ...]]] = [
    ("healthz", "GET", "/healthz", None, (200, 200, 200, 200, 200, 200, 200)),
    ("readyz", "GET", "/readyz", None, (200, 200, 200, 200, 200, 200, 200)),
    ("decide own", "POST", "/v1/decide", {"account_id": "acct-000"}, (401, 401, 200, 200, 200, 404, 200)),
    ("decide cleo's", "POST", "/v1/decide", {"account_id": "acct-002"}, (401, 401, 200, 404, 404, 200, 200)),
    ("decide unknown", "POST", "/v1/decide", {"account_id": "ghost"}, (401, 401, 404, 404, 404, 404, 404)),
    ("feedback own", "POST", "/v1/feedback", "acct-000", (401, 401, 200, 200, 200, 404, 200)),
    ("feedback ben's", "POST", "/v1/feedback", "acct-001", (401, 401, 200, 200, 404, 404, 200)),
    ("account own", "GET", "/v1/accounts/acct-000", None, (401, 401, 200, 200, 200, 404, 403)),
    ("account cleo's", "GET", "/v1/accounts/acct-002", None, (401, 401, 200, 404, 404, 200, 403)),
    ("account unknown", "GET", "/v1/accounts/ghost", None, (401, 401, 404, 404, 404, 404, 403)),
    ("recommendations", "GET", "/v1/recommendations", None, (401, 401, 200, 200, 200, 200, 403)),
    ("runs", "GET", "/v1/runs", None, (401, 401, 200, 200, 403, 403, 403)),
    ("run", "GET", "/v1/runs/run-1", None, (401, 401, 200, 200, 403, 403, 403)),
    ("start run", "POST", "/v1/runs", {}, (401, 401, 409, 403, 403, 403, 403)),
    ("lift", "GET", "/v1/lift", None, (401, 401, 409, 409, 403, 403, 403)),
    ("segments", "GET", "/v1/segments", None, (401, 401, 409, 409, 403, 403, 403)),
    ("audit", "GET", "/v1/audit", None, (401, 401, 200, 403, 403, 403, 403)),
]


def _headers(served: Served, role: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    key = BOGUS_KEY if role == "bogus" else served.keys.of(role)
    return {"Authorization": f"Bearer {key}"}


def test_the_matrix_covers_every_endpoint_of_the_openapi_document(served: Served) -> None:
    with served.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    tested = {(m, "/v1/accounts/{account_id}" if p.startswith("/v1/accounts/") else p) for _, m, p, _, _ in MATRIX}
    tested = {(m, "/v1/runs/{run_id}" if p == "/v1/runs/run-1" else p) for m, p in tested}
    assert documented == tested


@pytest.mark.parametrize("case", MATRIX, ids=[c[0] for c in MATRIX])
def test_every_endpoint_answers_every_role_as_the_matrix_says(served: Served, case: tuple[Any, ...]) -> None:
    name, method, path, body, expected = case
    got = []
    with served.client() as client:
        for role in ROLES:
            payload = _feedback(body) if path == "/v1/feedback" else body
            response = client.request(method, path, json=payload, headers=_headers(served, role))
            got.append(response.status_code)
            if response.status_code >= 400:
                error = response.json()
                assert set(error) >= {"status", "code", "message"}, (name, role, error)
    assert tuple(got) == expected, dict(zip(ROLES, got, strict=True))


def test_a_hidden_account_looks_exactly_like_a_missing_one(served: Served) -> None:
    with served.client("csm") as client:
        hidden = client.get("/v1/accounts/acct-002")
        missing = client.get("/v1/accounts/ghost")
    assert hidden.json()["code"] == missing.json()["code"] == "not_found"
    assert hidden.json()["message"].replace("acct-002", "X") == missing.json()["message"].replace("ghost", "X")


def test_recommendations_show_each_key_only_its_accounts(served: Served) -> None:
    seen = {}
    for role in ("admin", "manager", "csm", "other_csm"):
        with served.client(role) as client:
            page = client.get("/v1/recommendations", params={"limit": 500}).json()
        seen[role] = {r["owner"] for r in page["items"]}
        if role == "csm":
            with served.client(role) as client:
                other = client.get("/v1/recommendations", params={"owner": "cleo"}).json()
            assert other["items"] == []
    assert seen == {
        "admin": {"ana", "ben", "cleo"},
        "manager": {"ana", "ben"},
        "csm": {"ana"},
        "other_csm": {"cleo"},
    }


def test_a_request_with_a_valid_key_refused_before_its_route_is_audited(served: Served) -> None:
    # Refused before any route looked at the key (the body, its type or size, the path, the method), such a
    # request left no audit entry, while docs/api.md says every request with a key is in the trail.
    nowhere = f"/v1/nowhere-{uuid.uuid4().hex[:8]}"
    deep = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    big = b'{"events": ["' + b"x" * (2 * 1024 * 1024) + b'"]}'
    json_type = {"Content-Type": "application/json"}

    def chunks() -> Any:
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/v1/decide", {"content": b"{nope", "headers": json_type}, 400),
        ("POST", "/v1/feedback", {"content": deep, "headers": json_type}, 400),
        ("POST", "/v1/feedback", {"content": big, "headers": json_type}, 413),
        ("POST", "/v1/feedback", {"content": chunks(), "headers": json_type}, 413),
        ("POST", "/v1/feedback", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}, 415),
        ("GET", nowhere, {}, 404),
        ("DELETE", "/v1/runs", {}, 405),
        ("GET", "/v1/accounts/%C0%AE%C0%AE", {}, 422),
    ]
    since = datetime.now(UTC).isoformat()  # the server runs on this machine's clock
    with served.client("csm") as client:
        for method, path, kwargs, status in calls:
            answer = client.request(method, path, **kwargs)
            assert answer.status_code == status, (method, path, answer.text[:200])
    with served.client() as client:  # no key, and a key that is not valid: not audited, as before
        assert client.get(nowhere).status_code == 404
        assert client.get(nowhere, headers={"Authorization": f"Bearer {BOGUS_KEY}"}).status_code == 404
    with served.client("admin") as admin:
        items = admin.get("/v1/audit", params={"since": since, "limit": 500}).json()["items"]
    mine = [e for e in items if e["key_id"] == served.keys.ids["csm"]]
    got = sorted((e["method"], e["path"], e["status"]) for e in mine)
    assert got == sorted((m, p, s) for m, p, _, s in calls), got  # a path that is not UTF-8: as it was sent
    for entry in mine:
        assert entry["role"] == "csm"
        assert entry["action"] == ("read" if entry["method"] == "GET" else "change-refused")
        assert entry["detail"] == {"refused_before_route": True}  # what was refused, never its body
    assert [e for e in items if e["path"] == nowhere and e["key_id"] != served.keys.ids["csm"]] == []
