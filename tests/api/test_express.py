"""The express lane of POST /v1/decide answers, refuses and audits exactly as the route does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.api.conftest import Served, make_keys, seed_run

import nextmove.api.express
from nextmove.api import ApiConfig, create_app
from nextmove.api.errors import InvalidRequestError
from nextmove.api.service import Services
from nextmove.errors import StoreError
from nextmove.playbook import Playbook
from nextmove.store import open_store

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
    assert answers["not json"][0].json()["code"] == "bad_request"
    refused = _audited(served, "other_csm", f"decide:{theirs}")
    assert len(refused) == 2
    assert len(set(refused)) == 1


def test_the_lane_leaves_unknown_keys_to_the_route(served: Served) -> None:
    account = served.recs[3].account_id
    with served.server.client("nm_nosuchkey_secret") as client:
        answers = [_post(client, f'{{"account_id": "{account}"}}'.encode(), via_route=False) for _ in range(2)]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json()["code"] == "unauthenticated"


Refusals = list[tuple[httpx.Response, httpx.Response]]


def _lane_and_route(
    tmp_path: Path,
    playbook: Playbook,
    monkeypatch: pytest.MonkeyPatch,
    bodies: list[bytes],
    *,
    before: Callable[[Services], None],
) -> tuple[Refusals, int]:
    """Each body sent down the lane and then the route of an in-process app, after ``before(services)``.

    Returns the answers and how many calls the lane decided itself.
    """
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        recs = seed_run(store, playbook)
        keys = make_keys(store)
    app: FastAPI = create_app(ApiConfig(playbook=playbook, store_url=url))
    services: Services = app.state.services
    lane_calls = 0
    decide_now = nextmove.api.express.decide_now

    async def counted(*args: Any) -> bytes:
        nonlocal lane_calls
        lane_calls += 1
        return await decide_now(*args)

    monkeypatch.setattr(nextmove.api.express, "decide_now", counted)

    async def main() -> Refusals:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {keys.admin}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:

            def post(body: bytes, *, via_route: bool) -> Awaitable[httpx.Response]:
                return client.post(
                    "/v1/decide",
                    content=body,
                    headers=ROUTE_ONLY if via_route else {"Content-Type": "application/json"},
                )

            # Verifies the key (the lane only knows keys verified lately) and decides once.
            first = await post(f'{{"account_id": "{recs[0].account_id}"}}'.encode(), via_route=True)
            assert first.status_code == 200, first.text
            before(services)
            return [(await post(body, via_route=False), await post(body, via_route=True)) for body in bodies]

    services.audit.start()  # not services.start(): it freezes the test process's objects for the collector
    try:
        answers = asyncio.run(main())
    finally:
        services.close()
    return answers, lane_calls


def test_the_lane_answers_a_refusal_with_problems_as_the_route_does(
    tmp_path: Path, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No decide refusal lists problems today; the lane must answer one as the route does when one does.
    problems = [{"field": "signals.bogus", "problem": "the book has no signal 'bogus'"}]

    def refuse(_signals: object) -> None:
        raise InvalidRequestError("signals: the book has no signal 'bogus'", problems)

    answers, lane_calls = _lane_and_route(
        tmp_path,
        playbook,
        monkeypatch,
        [b'{"account_id": "acct-001", "signals": {"bogus": 1.0}}'],
        before=lambda services: monkeypatch.setattr(services, "check_signals", refuse),
    )
    assert lane_calls == 1
    ((lane, route),) = answers
    assert lane.status_code == route.status_code == 422
    assert lane.json() == route.json()
    assert lane.json()["problems"] == problems


def test_the_lane_refuses_as_the_route_does_when_the_audit_entry_cannot_be_written(
    tmp_path: Path, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_entries: object) -> None:
        raise StoreError("the store is gone")

    answers, lane_calls = _lane_and_route(
        tmp_path,
        playbook,
        monkeypatch,
        [b'{"account_id": "no-such-account"}'],
        before=lambda services: monkeypatch.setattr(services.store, "add_audit", broken),
    )
    assert lane_calls == 1
    ((lane, route),) = answers
    # The client never gets a refusal the audit trail does not show, whichever way the call went.
    assert lane.status_code == route.status_code == 503
    assert lane.json() == route.json()
    assert lane.json()["code"] == "store_unavailable"


def test_the_lane_refuses_deeply_nested_json_as_the_route_does(
    tmp_path: Path, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # json.loads raises RecursionError (not ValueError) on JSON nested past its recursion limit: the lane
    # answered a 500 internal_error with a traceback in the log, while the route answers 400.
    deep = b'{"account_id": "acct-001", "signals": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}"
    answers, lane_calls = _lane_and_route(tmp_path, playbook, monkeypatch, [deep], before=lambda services: None)
    assert lane_calls == 0
    ((lane, route),) = answers
    assert lane.status_code == route.status_code == 400, lane.text
    assert lane.json() == route.json()
    assert lane.json()["code"] == "bad_request"
