"""Requests without a valid key: past a client's allowance, answered 429 and summarised in the audit trail.

A request with a valid key is never refused by the limit, on the route or the express lane of POST /v1/decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from tests.api.conftest import Keys, make_keys, seed_run
from typer.testing import CliRunner

from nextmove.api import ApiConfig, create_app
from nextmove.api.limits import AuthFailureLimiter
from nextmove.api.service import Services
from nextmove.playbook import Playbook
from nextmove.settings import AUTH_FAILURES_BURST, AUTH_FAILURES_PER_MINUTE, Settings
from nextmove.store import AuditEntry, open_store

BOGUS = {"Authorization": "Bearer nm_000000000000_" + "x" * 43}
FLOOD = 120


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(burst: int = 3, per_minute: float = 60.0) -> tuple[AuthFailureLimiter, list[AuditEntry], Clock]:
    written: list[AuditEntry] = []
    clock = Clock()
    return AuthFailureLimiter(burst, per_minute, write=written.append, clock=clock), written, clock


def test_a_client_past_its_allowance_is_limited_until_it_comes_back() -> None:
    limiter, _, clock = _limiter(burst=3, per_minute=60.0)
    answers = [limiter.refuse("10.0.0.1", "GET", "/v1/runs") for _ in range(5)]
    assert [a.limited for a in answers] == [False, False, False, True, True]
    assert answers[3].retry_after_s == 1  # one a second comes back
    assert not limiter.refuse("10.0.0.2", "GET", "/v1/runs").limited  # another client has its own
    clock.now += 2.0
    assert [limiter.refuse("10.0.0.1", "GET", "/v1/runs").limited for _ in range(3)] == [False, False, True]


def test_past_the_allowance_one_refusal_a_minute_is_written_and_the_rest_counted() -> None:
    limiter, written, clock = _limiter(burst=2, per_minute=1.0)
    first = [limiter.refuse("10.0.0.1", "GET", "/v1/runs") for _ in range(50)]
    assert [(a.limited, a.audit) for a in first[:4]] == [(False, True), (False, True), (True, True), (True, False)]
    assert sum(a.audit for a in first) == 3
    assert first[-1].retry_after_s == 60
    limiter.sweep()
    assert written == []  # the minute is not over
    clock.now += 61.0  # one more allowed by now: answered 401 and written, then the minute's count
    later = [limiter.refuse("10.0.0.1", "POST", "/v1/decide") for _ in range(4)]
    assert [(a.limited, a.audit) for a in later] == [(False, True), (True, True), (True, False), (True, False)]
    ((summary,),) = [written]
    assert (summary.action, summary.status, summary.key_id, summary.method, summary.path) == (
        "denied",
        429,
        None,
        "GET",
        "/v1/runs",
    )
    assert summary.detail["client"] == "10.0.0.1"
    assert summary.detail["refusals_not_listed"] == 47
    clock.now += 61.0
    limiter.sweep()
    assert [e.detail["refusals_not_listed"] for e in written] == [47, 2]
    limiter.close()
    assert len(written) == 2  # nothing left to count


def test_counts_are_written_when_the_server_stops_or_a_client_is_forgotten() -> None:
    written: list[AuditEntry] = []
    limiter = AuthFailureLimiter(1, 1.0, write=written.append, clock=Clock(), max_clients=2)
    for client in ("10.0.0.1", "10.0.0.2"):
        for _ in range(4):
            limiter.refuse(client, "GET", "/v1/audit")
    limiter.refuse("10.0.0.3", "GET", "/v1/audit")  # the third client: the first one is forgotten, its count kept
    assert [(e.detail["client"], e.detail["refusals_not_listed"]) for e in written] == [("10.0.0.1", 2)]
    limiter.close()
    assert [(e.detail["client"], e.detail["refusals_not_listed"]) for e in written] == [
        ("10.0.0.1", 2),
        ("10.0.0.2", 2),
    ]


def test_a_burst_of_zero_turns_the_limit_off() -> None:
    limiter, written, _ = _limiter(burst=0)
    assert all(not a.limited and a.audit for a in (limiter.refuse("10.0.0.1", "GET", "/") for _ in range(500)))
    limiter.close()
    assert written == []


# ---- through the app ----------------------------------------------------------------------------


Calls = Callable[[Callable[..., Awaitable[httpx.Response]]], Awaitable[Any]]


def _app(tmp_path: Path, playbook: Playbook, **config: Any) -> tuple[FastAPI, Keys, str]:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook)
        keys = make_keys(store)
    return create_app(ApiConfig(playbook=playbook, store_url=url, refresh_s=3600.0, **config)), keys, url


def _run(app: FastAPI, calls: Calls) -> Any:
    """Run ``calls(send)``; ``send(method, path, client=IP, **kwargs)`` sends a request from that client."""
    services: Services = app.state.services

    async def main() -> Any:
        clients: dict[str, httpx.AsyncClient] = {}

        async def send(method: str, path: str, *, client: str = "198.51.100.7", **kwargs: Any) -> httpx.Response:
            if client not in clients:
                transport = httpx.ASGITransport(app=app, client=(client, 40000))
                clients[client] = httpx.AsyncClient(transport=transport, base_url="http://nextmove")
            return await clients[client].request(method, path, **kwargs)

        try:
            return await calls(send)
        finally:
            for one in clients.values():
                await one.aclose()

    services.audit.start()  # not services.start(): it freezes the test process's objects for the collector
    try:
        return asyncio.run(main())
    finally:
        services.close()


def _denied(url: str) -> list[AuditEntry]:
    with open_store(url) as store:
        return [e for e in store.audit_log(limit=10_000) if e.action == "denied"]


def test_a_flood_without_a_valid_key_is_answered_429_and_summarised_in_the_audit_trail(
    tmp_path: Path, playbook: Playbook
) -> None:
    app, _, url = _app(tmp_path, playbook, auth_failures_burst=5, auth_failures_per_minute=1.0)

    async def calls(send: Callable[..., Awaitable[httpx.Response]]) -> list[httpx.Response]:
        flood = [await send("GET", "/v1/recommendations", headers=BOGUS if i % 2 else {}) for i in range(FLOOD)]
        elsewhere = await send("GET", "/v1/recommendations", client="203.0.113.9")
        return [*flood, elsewhere]

    *flood, elsewhere = _run(app, calls)
    assert [r.status_code for r in flood] == [401] * 5 + [429] * (FLOOD - 5)
    limited = flood[-1]
    assert limited.json()["code"] == "too_many_requests"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "198.51.100.7" in limited.json()["message"]
    assert "nextmove keys create" in limited.json()["message"]  # still says how to get a key
    assert elsewhere.status_code == 401  # another client is not limited by this one
    denied = _denied(url)
    # 5 refusals within the allowance, the first one past it, the other clients' one, and one count.
    assert len(denied) == 8
    summary = [e for e in denied if "refusals_not_listed" in e.detail]
    assert [(e.status, e.detail["refusals_not_listed"], e.detail["client"]) for e in summary] == [
        (429, FLOOD - 6, "198.51.100.7")
    ]
    assert sorted(e.status for e in denied if e.detail.get("rate_limited")) == [429]
    assert {e.detail["client"] for e in denied} == {"198.51.100.7", "203.0.113.9"}
    assert all(e.key_id is None for e in denied)
    assert any(e.detail.get("claimed_key_id") == "000000000000" for e in denied)


def test_a_valid_key_from_a_limited_client_is_answered_on_the_route_and_the_lane_alike(
    tmp_path: Path, playbook: Playbook
) -> None:
    app, keys, _ = _app(tmp_path, playbook, auth_failures_burst=2, auth_failures_per_minute=1.0)
    body = b'{"account_id": "acct-000"}'
    lane = {"Content-Type": "application/json"}
    route = {"Content-Type": "application/json; charset=utf-8"}  # a type the lane leaves to the route

    def key(role: str, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {keys.of(role)}"}

    async def calls(send: Callable[..., Awaitable[httpx.Response]]) -> dict[str, httpx.Response]:
        for _ in range(5):
            await send("GET", "/v1/recommendations", headers=BOGUS)
        return {
            # A key not verified yet (the route checks it) and then verified lately (the lane takes it).
            "first": await send("POST", "/v1/decide", content=body, headers=key("admin", route)),
            "lane": await send("POST", "/v1/decide", content=body, headers=key("admin", lane)),
            "route": await send("POST", "/v1/decide", content=body, headers=key("admin", route)),
            "read": await send("GET", "/v1/recommendations", headers={"Authorization": f"Bearer {keys.manager}"}),
            "bogus lane": await send("POST", "/v1/decide", content=body, headers={**BOGUS, **lane}),
            "bogus route": await send("POST", "/v1/decide", content=body, headers={**BOGUS, **route}),
            "none lane": await send("POST", "/v1/decide", content=body, headers=lane),
        }

    answers = _run(app, calls)
    for name in ("first", "lane", "route", "read"):
        assert answers[name].status_code == 200, (name, answers[name].text)
    for name in ("bogus lane", "bogus route", "none lane"):
        assert answers[name].status_code == 429, (name, answers[name].text)
        assert answers[name].headers["retry-after"] == answers["bogus lane"].headers["retry-after"]
    assert answers["bogus lane"].json() == answers["bogus route"].json()


def test_the_limit_comes_from_the_settings_and_the_serve_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextmove.cli import app as cli

    assert (Settings().auth_failures_burst, Settings().auth_failures_per_minute) == (
        AUTH_FAILURES_BURST,
        AUTH_FAILURES_PER_MINUTE,
    )
    assert (ApiConfig.auth_failures_burst, ApiConfig.auth_failures_per_minute) == (  # type: ignore[misc]
        AUTH_FAILURES_BURST,
        AUTH_FAILURES_PER_MINUTE,
    )
    served: list[Services] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app.state.services))
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    monkeypatch.setenv("NEXTMOVE_AUTH_FAILURES_BURST", "7")
    monkeypatch.setenv("NEXTMOVE_AUTH_FAILURES_PER_MINUTE", "3")
    runner = CliRunner()
    from_env = runner.invoke(cli, ["serve", "--store", url])
    given = runner.invoke(cli, ["serve", "--store", url, "--auth-failures-burst", "0"])
    assert from_env.exit_code == given.exit_code == 0, from_env.output + given.output
    limits = [(s.auth_failures.burst, s.auth_failures.per_minute, s.auth_failures.enabled) for s in served]
    assert limits == [(7, 3.0, True), (0, 3.0, False)]
    for services in served:
        services.close()


def test_a_flood_from_many_addresses_is_summarised_like_one_clients() -> None:
    # Each new address starts with a whole bucket: 2,000 addresses (an IPv6 /48 holds 65,536 /64s)
    # would each write their refusals one by one. All clients together write at most ten times one
    # client's allowance; the rest is counted into a summary entry.
    from nextmove.api.limits import ALL_CLIENTS_FACTOR, AuthFailureLimiter

    written: list[object] = []
    limiter = AuthFailureLimiter(5, 1.0, write=written.append, clock=lambda: 0.0)
    refusals = [limiter.refuse(f"2001:db8:0:{i:x}::/64", "GET", "/v1/runs") for i in range(2000)]
    audited = sum(r.audit for r in refusals)
    assert audited == 5 * ALL_CLIENTS_FACTOR
    assert not any(r.limited for r in refusals)  # each address is within its own allowance: 401, not 429
    limiter.close()
    (summary,) = written
    assert summary.detail["refusals_not_listed"] == 2000 - audited  # type: ignore[attr-defined]
