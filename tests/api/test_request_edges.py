"""Requests at the API's edges: times that are numbers, run notes naming other owners' accounts, bodies the
parser cannot read, retried request ids with other signals, blank or NUL ids, trailing slashes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.api.conftest import AS_OF, make_keys, seed_run

from nextmove.api import ApiConfig, create_app
from nextmove.book.validate import load_book
from nextmove.playbook import Playbook
from nextmove.store import RunRecord, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The store, to seed before an app is made over its URL (the app opens a store of its own)."""
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _app(store: Store, playbook: Playbook, **config: Any) -> FastAPI:
    return create_app(ApiConfig(playbook=playbook, store_url=store.url, refresh_s=3600.0, **config))


def _ask(app: FastAPI, key: str, calls: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``calls`` against the app in process, then close its services."""

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:
            return await calls(client)

    services = app.state.services
    services.audit.start()
    try:
        return asyncio.run(main())
    finally:
        services.runs.join(30)
        services.close()


# ---- times are ISO 8601 text, never a number of seconds ------------------------------------------


def test_a_time_sent_as_a_number_is_refused_not_read_as_seconds_since_1970(store: Store, playbook: Playbook) -> None:
    # "ts": "20261124" was read as 20,261,124 seconds after 1970 (1970-08-23), silently: a dismissal dated
    # so held nothing back. The audit's since=0.5 and a run's as_of alike.
    recs = seed_run(store, playbook)
    account = recs[0].account_id
    keys = make_keys(store)

    def event(n: int, **fields: Any) -> dict[str, Any]:
        return {"events": [{"event_id": f"t-{n}", "account_id": account, "kind": "done", **fields}]}

    refused_bodies = [
        ("/v1/feedback", event(1, ts="20261124"), "events.0.ts"),
        ("/v1/feedback", event(2, ts=20261124), "events.0.ts"),
        ("/v1/feedback", event(3, ts=1.5e9), "events.0.ts"),
        ("/v1/feedback", event(4, ts="0.5"), "events.0.ts"),
        ("/v1/feedback", event(5, kind="snoozed", snoozed_until="20261231"), "events.0.snoozed_until"),
        ("/v1/runs", {"as_of": "20260101"}, "as_of"),
        ("/v1/runs", {"as_of": 0}, "as_of"),
    ]

    async def calls(client: httpx.AsyncClient) -> dict[str, Any]:
        return {
            "bodies": [await client.post(path, json=body) for path, body, _ in refused_bodies],
            "since": [await client.get("/v1/audit", params={"since": v}) for v in ("0.5", "1700000000", "20260105")],
            "kept": [
                await client.post("/v1/feedback", json=event(10, ts="2026-01-05T11:30+02")),
                await client.post("/v1/feedback", json=event(11, ts="2026-01-05 09:30:00 UTC")),
                await client.post("/v1/feedback", json=event(12, ts="2026-01-05")),
            ],
            "since_ok": await client.get("/v1/audit", params={"since": "2026-01-05 09:30 UTC"}),
        }

    answers = _ask(_app(store, playbook), keys.admin, calls)
    refused = [*zip(answers["bodies"], [f for *_, f in refused_bodies], strict=True)]
    refused += [(a, "query parameter since") for a in answers["since"]]
    for answer, field in refused:
        assert answer.status_code == 422, (field, answer.text)
        body = answer.json()
        assert body["code"] == "invalid_request"
        assert [p["field"] for p in body["problems"]] == [field]
        problem = body["problems"][0]["problem"]
        assert "is a number, not a time" in problem, problem
        assert "ISO 8601" in problem, problem
        assert "+02" in problem, problem
    assert "write 2026-11-24" in answers["bodies"][0].json()["message"]
    assert [a.status_code for a in answers["kept"]] == [200, 200, 200], [a.text for a in answers["kept"]]
    assert answers["since_ok"].status_code == 200, answers["since_ok"].text
    stored = {e.event_id: e.ts for e in store.feedback(account_id=account)}
    assert stored == {
        "t-10": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        "t-11": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        "t-12": datetime(2026, 1, 5, tzinfo=UTC),
    }


def test_a_plus_sent_unencoded_in_a_query_time_is_refused_saying_how_to_encode_it(
    store: Store, playbook: Playbook
) -> None:
    # since=2026-01-05T09:30:00+02:00 written as is: the query string reads the + as a space.
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.get("/v1/audit?since=2026-01-05T09:30:00+02:00"),
            await client.get("/v1/audit?since=2026-01-05T09:30:00%2B02:00"),
        ]

    unencoded, encoded = _ask(_app(store, playbook), keys.admin, calls)
    assert unencoded.status_code == 422, unencoded.text
    (problem,) = unencoded.json()["problems"]
    assert problem["field"] == "query parameter since"
    assert "write it %2B (2026-01-05T09:30:00%2B02:00)" in problem["problem"], problem
    assert encoded.status_code == 200, encoded.text


# ---- a run's notes do not name other owners' accounts to a scoped key ----------------------------


def _book(folder: Path, accounts: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "accounts.csv").write_text(accounts, encoding="utf-8")
    (folder / "outcomes.csv").write_text("account_id,ts,kind\n", encoding="utf-8")
    then = time.time() - 10
    for file in folder.iterdir():
        os.utime(file, (then, then))
    return folder


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_a_runs_notes_do_not_name_other_owners_accounts_to_a_scoped_key(
    tmp_path: Path, store: Store, playbook: Playbook
) -> None:
    # A manager's GET /v1/runs showed "142 accounts gone by their churn … (<script>, K00010, K00016 and 139 more)":
    # accounts of every owner, while docs/api.md promises a scoped key is never told one outside its scope.
    owners = {"A01": "ana", "B02": "ben", "C03": "cleo", "C04": "cleo", "<script>": "cleo", "30": "cleo"}
    folder = _book(tmp_path / "book", "account_id,owner,arr\n" + "".join(f"{a},{o},1\n" for a, o in owners.items()))
    book = load_book(str(folder), playbook=playbook)
    # Gone accounts (C04, <script>, 30) are in the book, not in the run.
    recs = seed_run(open_store("sqlite://"), playbook, account_ids=["A01", "B02", "C03"], owners=("ana", "ben", "cleo"))
    notes = [
        "4 accounts gone by their churn show signals or touches 30 days or more after it (<script>, A01, C04 "
        "and 1 more): they are left out as gone",
        "the signals table has 2 rows that repeat an earlier row (the first: C03's nps at 2026-01-05 10:00 UTC)",
        "2 of the 3 scored accounts have no signal row. Highest scored: C03 (85, Healthy), B02 (80, Healthy)",
        "3 accounts (30, 'C04' and B02) were not seen for 30 days",
    ]
    run = RunRecord(
        run_id="run-1",
        book_source="tests",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
        created_at=AS_OF,
        finished_at=AS_OF,
        summary={"accounts": 3, "notes": notes, "examples": {"C03": 1, "A01": 2}},
    )
    store.save_run(run, [replace(r, run_id="run-1") for r in recs])
    keys = make_keys(store)  # the manager's team: ana and ben

    async def calls(client: httpx.AsyncClient) -> dict[str, list[Any]]:
        shown: dict[str, list[Any]] = {}
        for role in ("admin", "manager"):  # the roles that read runs
            auth = {"Authorization": f"Bearer {keys.of(role)}"}
            listed = await client.get("/v1/runs", headers=auth)
            one = await client.get("/v1/runs/run-1", headers=auth)
            shown[role] = [listed, one]
        return shown

    shown = _ask(_app(store, playbook, book=book, book_path=str(folder)), keys.admin, calls)
    sees = {"admin": {"ana", "ben", "cleo"}, "manager": {"ana", "ben"}}
    for role, answers in shown.items():
        assert [a.status_code for a in answers] == [200, 200], role
        listed, one = (a.json() for a in answers)
        assert listed["items"][0] == one
        texts = list(_strings(one))
        for account_id, owner in owners.items():
            # As a word of a text, so that "30 days" is not taken for account "30".
            pattern = re.compile(rf"(?:^|[\s(,:'])({re.escape(account_id)})(?:$|[\s),:';.]|'s)")
            named = any(pattern.search(t) for t in texts if t not in ("30 days",))
            if owner in sees[role]:
                assert named, (role, account_id, texts)
            elif account_id != "30":
                assert not named, (role, account_id, texts)
    admin_notes = shown["admin"][1].json()["summary"]["notes"]
    assert admin_notes == notes
    manager_notes = shown["manager"][1].json()["summary"]["notes"]
    assert manager_notes[0] == (
        "4 accounts gone by their churn show signals or touches 30 days or more after it (an account outside this "
        "key's scope, A01, an account outside this key's scope and 1 more): they are left out as gone"
    )
    assert manager_notes[2].endswith(
        "Highest scored: an account outside this key's scope (85, Healthy), B02 (80, Healthy)"
    )
    assert manager_notes[3] == "3 accounts (2 accounts outside this key's scope and B02) were not seen for 30 days"
    assert shown["manager"][1].json()["summary"]["examples"] == {
        "an account outside this key's scope": 1,
        "A01": 2,
    }


# ---- bodies the parser cannot read --------------------------------------------------------------


def test_a_body_nested_too_deep_or_not_utf8_is_a_400_that_says_what_to_fix(store: Store, playbook: Playbook) -> None:
    # Both were answered "There was an error parsing the body": valid JSON nested a thousand levels deep
    # (the parser's recursion gives up) and a body sent as latin-1.
    recs = seed_run(store, playbook)
    keys = make_keys(store)
    depth = 5000
    payload = "[" * depth + "1" + "]" * depth
    deep = f'{{"events":[{{"event_id":"deep","account_id":"{recs[0].account_id}","kind":"done","payload":{payload}}}]}}'
    latin1 = '{"account_id":"\xdc-1"}'.encode("latin-1")

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        json_type = {"Content-Type": "application/json"}
        return [
            await client.post("/v1/feedback", content=deep.encode(), headers=json_type),
            await client.post("/v1/decide", content=deep.encode(), headers=json_type),
            await client.post(
                "/v1/decide", content=latin1, headers={"Content-Type": "application/json; charset=latin-1"}
            ),
            await client.post("/v1/decide", content=latin1, headers=json_type),  # the express lane's try first
            await client.post("/v1/feedback", content=b'{"events": [', headers=json_type),
        ]

    too_deep, too_deep_decide, declared, undeclared, broken = _ask(_app(store, playbook), keys.admin, calls)
    for answer in (too_deep, too_deep_decide):
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "bad_request"
        assert "nests too deep" in answer.json()["message"]
        assert "at most 100 levels" in answer.json()["message"]
    for answer in (declared, undeclared):
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "bad_request"
        message = answer.json()["message"]
        assert "is not UTF-8" in message, message
        assert "b'\\xdc' at offset 15" in message, message
        assert "send the JSON encoded as UTF-8" in message
    assert "charset=latin-1" in declared.json()["message"]
    assert "charset" not in undeclared.json()["message"]
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["message"]


# ---- a request_id is a retry of the same request only ---------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_a_request_id_sent_again_with_other_signals_is_a_conflict_not_the_first_decision(
    store: Store, playbook: Playbook, content_type: str
) -> None:
    # A retried request_id with other fresh signals silently got the first decision (made from the first
    # signals), while feedback answers 409 for an event_id sent again with another body.
    recs = seed_run(store, playbook)
    a, b = recs[0].account_id, recs[1].account_id
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        async def decide(body: dict[str, Any]) -> httpx.Response:
            return await client.post("/v1/decide", content=json.dumps(body), headers={"Content-Type": content_type})

        return [
            await decide({"account_id": a, "signals": {"nps": 4}, "request_id": "r1"}),
            await decide({"account_id": a, "signals": {"nps": 4.0}, "request_id": "r1"}),  # a retry
            await decide({"account_id": a, "signals": {"nps": 9}, "request_id": "r1"}),
            await decide({"account_id": a, "request_id": "r1"}),
            # Named twice in a batch: a copy with other signals is not the same request either.
            await decide(
                {
                    "accounts": [
                        {"account_id": b, "signals": {"nps": 1}, "request_id": "r2"},
                        {"account_id": b, "signals": {"nps": 2}, "request_id": "r2"},
                    ]
                }
            ),
            # A logged request id sent again in a batch that names its account twice.
            await decide({"accounts": [{"account_id": a, "request_id": "r1"}, {"account_id": a}]}),
        ]

    first, retry, other, none, copies, logged_twice = _ask(_app(store, playbook), keys.admin, calls)
    assert first.status_code == retry.status_code == 200
    assert retry.json()["decisions"][0]["decision_id"] == first.json()["decisions"][0]["decision_id"]
    for answer, differ in ((other, "nps"), (none, "nps"), (copies, "nps"), (logged_twice, "nps")):
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body["code"] == "conflict"
        assert "request_id" in body["message"]
        assert f"other fresh signals ({differ} differ)" in body["message"]
    assert [d.request_id for d in store.decisions(limit=10)] == ["r1"]  # nothing else was logged


# ---- ids and paths ----------------------------------------------------------------------------------


def test_a_blank_or_nul_id_in_a_path_or_query_is_an_invalid_request_naming_the_parameter(
    store: Store, playbook: Playbook
) -> None:
    # They were answered 422 config_invalid without problems: the code docs/api.md gives values the server
    # cannot use, not requests that do not match the API.
    seed_run(store, playbook)
    keys = make_keys(store)
    asked = [
        ("/v1/accounts/%00", "path parameter account_id"),
        ("/v1/accounts/%20%20", "path parameter account_id"),
        ("/v1/runs/a%00b", "path parameter run_id"),
        ("/v1/runs/%20", "path parameter run_id"),
        ("/v1/recommendations?run_id=%00", "query parameter run_id"),
        ("/v1/recommendations?owner=", "query parameter owner"),
        ("/v1/audit?key_id=%00", "query parameter key_id"),
        ("/v1/audit?key_id=%20", "query parameter key_id"),
        ("/v1/lift?run_id=x%00", "query parameter run_id"),
    ]

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get(path) for path, _ in asked]

    for answer, (path, field) in zip(_ask(_app(store, playbook), keys.admin, calls), asked, strict=True):
        assert answer.status_code == 422, (path, answer.text)
        body = answer.json()
        assert body["code"] == "invalid_request", path
        assert [p["field"] for p in body["problems"]] == [field], path
        assert field in body["message"], path


def test_a_trailing_slash_is_a_404_naming_the_path_without_it_not_a_redirect(store: Store, playbook: Playbook) -> None:
    # GET /v1/runs/ answered 307 with a Location built from the client's Host header.
    seed_run(store, playbook, account_ids=["trail/", "plain"], owners=("ana",))
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        spoofed = {"Host": "evil.example"}
        return [
            await client.get("/v1/runs/", headers=spoofed),
            await client.get("/healthz/"),
            await client.post("/v1/feedback/", json={"events": []}),
            await client.get("/v1/nothing/"),
            await client.get("/v1/runs"),
            await client.get("/v1/accounts/trail/"),  # an id that ends in "/" is still an account
        ]

    runs, healthz, feedback, nothing, plain, account = _ask(_app(store, playbook), keys.admin, calls)
    for answer, path in ((runs, "/v1/runs"), (healthz, "/healthz"), (feedback, "/v1/feedback")):
        assert answer.status_code == 404, answer.text
        assert "location" not in answer.headers
        assert answer.json()["code"] == "not_found"
        assert f"call {path}" in answer.json()["message"]
    assert nothing.status_code == 404
    assert "call" not in nothing.json()["message"]
    assert plain.status_code == 200
    assert account.status_code == 200
    assert account.json()["account_id"] == "trail/"
