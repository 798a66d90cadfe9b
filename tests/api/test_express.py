"""The express lane of POST /v1/decide answers, refuses and audits exactly as the route does."""

from __future__ import annotations

from typing import Any

import httpx
from tests.api.conftest import Served

# A content type the lane leaves to the route (it takes exactly ``application/json``): the same
# call then goes through the framework, which is what the lane's answers are compared with.
ROUTE_ONLY = {"Content-Type": "application/json; charset=utf-8"}


def _post(client: httpx.Client, body: bytes, *, via_route: bool) -> httpx.Response:
    headers = ROUTE_ONLY if via_route else {"Content-Type": "application/json"}
    return client.post("/v1/decide", content=body, headers=headers)


def _audited(served: Served, role: str, resource: str) -> list[tuple[Any, ...]]:
    with served.client("admin") as client:
        items = client.get("/v1/audit", params={"key_id": served.keys.ids[role], "limit": 500}).json()["items"]
    return sorted(
        (e["action"], e["method"], e["path"], e["status"], e["role"], e["resource"], str(e["detail"]))
        for e in items
        if e["resource"] == resource
    )


def test_the_lane_decides_as_the_route_does(served: Served) -> None:
    account = served.recs[3].account_id  # owned by ana
    body = f'{{"account_id": "{account}"}}'.encode()
    with served.client("csm") as client:
        first = _post(client, body, via_route=True)  # verifies the key: the lane only knows keys verified lately
        lane = _post(client, body, via_route=False)
        route = _post(client, body, via_route=True)
    for response in (first, lane, route):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
    (a,), (b,) = lane.json()["decisions"], route.json()["decisions"]
    assert a.keys() == b.keys()
    assert a["account_id"] == b["account_id"] == account
    assert a["decision_id"] != b["decision_id"]
    # One audit entry per decision, the same whichever way it went.
    entries = _audited(served, "csm", f"decide:{account}")
    assert len(entries) == 3
    assert len(set(entries)) == 1
    assert entries[0][:5] == ("change", "POST", "/v1/decide", 200, "csm")


def test_the_lane_refuses_as_the_route_does(served: Served) -> None:
    theirs = served.recs[0].account_id  # owned by ana, not visible to the other CSM
    with served.client("other_csm") as client:
        _post(client, b'{"account_id": "x"}', via_route=True)  # verifies the key
        answers = {
            name: [_post(client, body, via_route=via) for via in (False, True)]
            for name, body in {
                "not visible": f'{{"account_id": "{theirs}"}}'.encode(),
                "not in the run": b'{"account_id": "no-such-account"}',
                "not valid": b'{"account_id": "a", "accounts": [{"account_id": "b"}]}',
                "not json": b"{nope",
            }.items()
        }
    for name, (lane, route) in answers.items():
        assert lane.status_code == route.status_code >= 400, name
        assert lane.json() == route.json(), name
    refused = _audited(served, "other_csm", f"decide:{theirs}")
    assert len(refused) == 2
    assert len(set(refused)) == 1


def test_the_lane_leaves_unknown_keys_to_the_route(served: Served) -> None:
    account = served.recs[3].account_id
    with served.server.client("nm_nosuchkey_secret") as client:
        answers = [_post(client, f'{{"account_id": "{account}"}}'.encode(), via_route=False) for _ in range(2)]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json()["code"] == "unauthenticated"
