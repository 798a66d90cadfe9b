"""What a client written from docs/api.md meets at the edges: ids with reserved characters, strict filters,
batches refused with each culprit named, failed runs kept, HEAD probes and 405 answers that say what is allowed."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.api.conftest import AS_OF, make_keys, seed_run

import nextmove.api.service
from nextmove.api import ApiConfig, create_app
from nextmove.book.validate import load_book
from nextmove.playbook import Playbook
from nextmove.store import RunRecord, Store, open_store

ODD_IDS = ["A/1", "B?2", "C#3", "D%4", "E 5", "Ünï-6", "a/b/c", "/lead", "trail/", "F%2F7", "..", "plain"]
"""Account ids the data contract allows, each with what a URL path treats specially."""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    """The store, to seed before an app is made over ``url`` (which closes its own store when it is done)."""
    with open_store(url) as opened:
        yield opened


def _ask(app: FastAPI, key: str, calls: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``calls`` against the app in process (the ASGI scope as uvicorn makes it), then close its services."""

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:
            return await calls(client)

    services = app.state.services
    services.audit.start()  # not services.start(): it freezes the test process's objects for the collector
    try:
        return asyncio.run(main())
    finally:
        services.runs.join(30)
        services.close()


def _app(store: Store, playbook: Playbook, **config: Any) -> FastAPI:
    """An app over the store's URL, opening a store of its own as a server does."""
    return create_app(ApiConfig(playbook=playbook, store_url=store.url, refresh_s=3600.0, **config))


def _book(folder: Path, accounts: str, outcomes: str = "account_id,ts,kind\n") -> Path:
    """A folder book of ``accounts.csv`` and ``outcomes.csv``, written whole (a server need not wait for it)."""
    folder.mkdir(exist_ok=True)
    (folder / "accounts.csv").write_text(accounts, encoding="utf-8")
    (folder / "outcomes.csv").write_text(outcomes, encoding="utf-8")
    then = time.time() - 10
    for file in folder.iterdir():
        os.utime(file, (then, then))
    return folder


# ---- account ids ------------------------------------------------------------------------------


def _segment(account_id: str) -> str:
    """``account_id`` percent-encoded as one path segment, its dots included."""
    return urllib.parse.quote(account_id, safe="").replace(".", "%2E")


def test_every_account_id_has_its_page_when_percent_encoded(store: Store, playbook: Playbook) -> None:
    # An id with "/" was a 404 "no such endpoint": the server decodes %2F before it routes the request.
    seed_run(store, playbook, account_ids=ODD_IDS, owners=("ana",))
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        # Dots too, as docs/api.md says: a client drops a path segment ".." it sends as it is.
        return [await client.get(f"/v1/accounts/{_segment(a)}") for a in ODD_IDS]

    answers = _ask(_app(store, playbook), keys.admin, calls)
    assert [r.status_code for r in answers] == [200] * len(ODD_IDS), [r.text for r in answers]
    assert [r.json()["account_id"] for r in answers] == ODD_IDS
    assert all(r.json()["recommendation"]["account_id"] == a for r, a in zip(answers, ODD_IDS, strict=True))


def test_an_id_with_a_slash_is_hidden_from_another_owners_key_like_a_missing_one(
    store: Store, playbook: Playbook
) -> None:
    seed_run(store, playbook, account_ids=["A/1", "B/2"], owners=("ana", "cleo"))
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get(f"/v1/accounts/{quoted}") for quoted in ("A%2F1", "B%2F2", "Z%2F9")]

    own, hidden, missing = _ask(_app(store, playbook), keys.csm, calls)  # the csm is ana
    assert own.status_code == 200
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["message"].replace("B/2", "X") == missing.json()["message"].replace("Z/9", "X")


def test_a_path_or_query_that_is_not_utf8_once_decoded_is_refused_with_a_422(store: Store, playbook: Playbook) -> None:
    # /v1/accounts/%C0%AE%C0%AE was looked up as four U+FFFD and answered 404 naming them, while docs/api.md
    # promises a 422 for text with invalid Unicode.
    seed_run(store, playbook, account_ids=["A-1", "\ufffd"], owners=("ana",))
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.get("/v1/accounts/%C0%AE%C0%AE"),
            await client.get("/v1/accounts/%ED%A0%80"),  # a lone surrogate, as UTF-8 would encode it
            await client.get("/v1/recommendations?owner=%FF"),
            await client.get("/v1/accounts/%EF%BF%BD"),  # U+FFFD itself, as its UTF-8 bytes: a valid id
            await client.get("/v1/recommendations?owner=%C3%9C"),
        ]

    bad_path, surrogate, bad_query, replacement, good_query = _ask(_app(store, playbook), keys.admin, calls)
    for answer, field in ((bad_path, "path"), (surrogate, "path"), (bad_query, "query")):
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["code"] == "invalid_request"
        assert "not valid UTF-8" in body["message"]
        assert "\ufffd" not in body["message"]
        assert body["problems"][0]["field"] == field
    assert replacement.status_code == 200, replacement.text
    assert replacement.json()["account_id"] == "\ufffd"
    assert good_query.status_code == 200, good_query.text


# ---- recommendation filters -------------------------------------------------------------------


def test_recommendation_filters_refuse_what_no_recommendation_can_have(store: Store, playbook: Playbook) -> None:
    # band=critical, band=Nope, action=bogus and a typo (acton=) all answered 200 with a page that looked right.
    seed_run(store, playbook)
    keys = make_keys(store)
    asked = [
        "band=critical",
        "band=Nope",
        "action=bogus",
        "acton=nurture_email",
        "band=Critical&band=Healthy",
        "band=Critical",
        "action=none",
        f"action={playbook.action_ids[0]}&band=At%20risk&owner=ana&limit=5&offset=0",
    ]

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get(f"/v1/recommendations?{query}") for query in asked]

    answers = dict(zip(asked, _ask(_app(store, playbook), keys.admin, calls), strict=True))
    for query in asked[:5]:
        assert answers[query].status_code == 422, (query, answers[query].text)
        assert answers[query].json()["code"] == "invalid_request"
    critical = answers["band=critical"].json()
    assert "did you mean 'Critical'?" in critical["message"]
    assert "Healthy, At risk, Critical" in critical["message"] or "Critical, At risk, Healthy" in critical["message"]
    assert critical["problems"][0]["field"] == "query parameter band"
    bogus = answers["action=bogus"].json()["message"]
    assert playbook.action_ids[0] in bogus
    assert "none" in bogus
    typo = answers["acton=nurture_email"].json()
    assert typo["problems"] == [
        {
            "field": "query parameter acton",
            "problem": "this endpoint takes no parameter 'acton': did you mean 'action'? it takes owner, band, "
            "action, run_id, limit, offset",
        }
    ]
    assert "given 2 times" in answers["band=Critical&band=Healthy"].json()["message"]
    assert answers["band=Critical"].status_code == 200
    assert answers["band=Critical"].json()["total"] == 10
    assert {r["health_band"] for r in answers["band=Critical"].json()["items"]} == {"Critical"}
    assert answers["action=none"].status_code == 200
    assert answers[asked[-1]].status_code == 200


def test_recommendation_filters_take_the_cache_buster_and_ignore_it(store: Store, playbook: Playbook) -> None:
    # jQuery (cache: false), browsers' fetch wrappers and many HTTP clients append _=<time>: it was a 422.
    seed_run(store, playbook)
    keys = make_keys(store)
    asked = [
        "band=Critical",
        "band=Critical&_=1700000000000",
        "_=1700000000000&band=Critical",
        "band=Critical&_=",
        "band=Critical&_=1&_=2",
        "_=1&acton=nurture_email",
        "_x=1&band=Critical",
        "__=1&band=Critical",
    ]

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get(f"/v1/recommendations?{query}") for query in asked]

    answers = dict(zip(asked, _ask(_app(store, playbook), keys.admin, calls), strict=True))
    plain = answers["band=Critical"]
    assert plain.status_code == 200
    for query in asked[1:5]:
        assert answers[query].status_code == 200, (query, answers[query].text)
        assert answers[query].json() == plain.json(), query
    # Everything else stays strict: a typo next to the cache-buster, and names that only look like it.
    for query, name in [(asked[5], "acton"), (asked[6], "_x"), (asked[7], "__")]:
        assert answers[query].status_code == 422, (query, answers[query].text)
        assert [p["field"] for p in answers[query].json()["problems"]] == [f"query parameter {name}"]


# ---- owners: the book's as it is now decide what a key sees --------------------------------------


@pytest.mark.parametrize("max_named", [10_000, 0], ids=["named", "streamed"])
def test_an_account_handed_to_another_owner_in_the_book_is_theirs_at_once_not_at_the_next_run(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch, max_named: int
) -> None:
    # The served run's owner decided: once a2 was handed from ana to cleo in accounts.csv and the server had
    # read the book again, ana's key still read, decided and sent feedback for a2, and cleo's got 404s.
    accounts = "account_id,owner,arr\na1,ana,1000\na2,{a2},1000\na3,cleo,1000\ngone,ana,1000\n"
    folder = _book(tmp_path / "book", accounts.format(a2="ana"))
    book = load_book(str(folder), playbook=playbook)
    seed_run(store, playbook, account_ids=["a1", "a2", "a3", "gone"], owners=("ana", "ana", "cleo", "ana"))
    keys = make_keys(store)  # csm: ana; other_csm: cleo; manager: ana and ben
    app = _app(store, playbook, book=book, book_path=str(folder))
    # The list names the accounts an owner has now to the store, or reads the run's owners past this many.
    monkeypatch.setattr(nextmove.api.service, "MAX_OWNED_IDS", max_named)

    def feedback(account_id: str) -> dict[str, Any]:
        return {
            "events": [{"event_id": f"fb-{account_id}-{os.urandom(4).hex()}", "account_id": account_id, "kind": "done"}]
        }

    async def one_key(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {key}"}
        page = (await client.get("/v1/recommendations", headers=auth)).json()
        return {
            "account": await client.get("/v1/accounts/a2", headers=auth),
            "decide": (await client.post("/v1/decide", json={"account_id": "a2"}, headers=auth)).status_code,
            "feedback": (await client.post("/v1/feedback", json=feedback("a2"), headers=auth)).status_code,
            "listed": {r["account_id"]: r["owner"] for r in page["items"]},
            "total": page["total"],
        }

    async def calls(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        before = await one_key(client, keys.csm)
        # a2 goes to cleo, and "gone" leaves the book: the run's owner still decides for an account the book lacks.
        _book(folder, accounts.format(a2="cleo").replace("gone,ana,1000\n", ""))
        assert app.state.services.refresh_book()  # what the server's look at the book every --refresh-s does
        after = [await one_key(client, k) for k in (keys.csm, keys.other_csm, keys.manager, keys.admin)]
        cleos = (await client.get("/v1/recommendations", params={"owner": "cleo"})).json()  # the admin's key
        at_risk = await client.get(
            "/v1/recommendations", params={"band": "At risk"}, headers={"Authorization": f"Bearer {keys.other_csm}"}
        )
        return [before, *after, {r["account_id"]: r["owner"] for r in cleos["items"]}, at_risk.json()]

    before, ana, cleo, manager, admin, owned_by_cleo, cleos_at_risk = _ask(app, keys.admin, calls)
    assert before["account"].status_code == 200
    assert before["listed"] == {"a1": "ana", "a2": "ana", "gone": "ana"}
    assert (ana["account"].status_code, ana["decide"], ana["feedback"]) == (404, 404, 404)
    assert ana["account"].json()["message"] == "no account 'a2' visible to this key"
    assert ana["listed"] == {"a1": "ana", "gone": "ana"}
    assert ana["total"] == 2
    assert (cleo["account"].status_code, cleo["decide"], cleo["feedback"]) == (200, 200, 200)
    assert cleo["account"].json()["owner"] == cleo["account"].json()["recommendation"]["owner"] == "cleo"
    assert cleo["listed"] == {"a2": "cleo", "a3": "cleo"}
    assert cleo["total"] == 2
    assert manager["listed"] == {"a1": "ana", "gone": "ana"}
    assert manager["account"].status_code == 404
    assert admin["listed"] == {"a1": "ana", "a2": "cleo", "a3": "cleo", "gone": "ana"}
    assert owned_by_cleo == {"a2": "cleo", "a3": "cleo"}
    assert [r["account_id"] for r in cleos_at_risk["items"]] == ["a2"]  # the other filters still apply
    assert cleos_at_risk["total"] == 1


# ---- receipts: comparables of other owners are not named -----------------------------------------


def _with_comparables(store: Store, playbook: Playbook, ids: list[str], owners: tuple[str, ...]) -> dict[str, str]:
    """A served run whose every receipt names three other accounts of the run as comparables; each account's owner."""
    recs = seed_run(open_store("sqlite://"), playbook, account_ids=ids, owners=owners, control_every=0)
    with_comparables = []
    for i, rec in enumerate(recs):
        comparables = [
            {
                "account_id": ids[(i + k) % len(ids)],
                "action_id": rec.action_id,
                "ts": "2026-02-10T00:00:00+00:00",
                "outcome": "churn within 90 days: none",
                "similarity": 0.5,
            }
            for k in (1, 2, 3)
        ]
        with_comparables.append(replace(rec, evidence={**rec.evidence, "comparables": comparables}))
    run = RunRecord(
        run_id="run-1",
        book_source="tests",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
        created_at=AS_OF,
        finished_at=AS_OF,
    )
    store.save_run(run, with_comparables)
    return {r.account_id: str(r.owner) for r in recs}


def test_receipts_do_not_name_comparable_accounts_a_scoped_key_may_not_see(store: Store, playbook: Playbook) -> None:
    # Each receipt's comparables named other accounts with their action, date and outcome: 28 of the 36 comparables
    # a csm key was listed belonged to other owners, while a csm key never gets other accounts' data.
    ids = [f"acct-{i}" for i in range(6)]
    owner_of = _with_comparables(store, playbook, ids, ("ana", "ben", "cleo"))
    keys = make_keys(store)
    sees = {"csm": {"ana"}, "manager": {"ana", "ben"}, "admin": {"ana", "ben", "cleo"}}

    async def calls(client: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
        shown: dict[str, list[dict[str, Any]]] = {}
        for role in sees:
            auth = {"Authorization": f"Bearer {keys.of(role)}"}
            page = (await client.get("/v1/recommendations", headers=auth)).json()
            found = [c for item in page["items"] for c in item["evidence"]["comparables"]]
            body = {"accounts": [{"account_id": "acct-0"}, {"account_id": "acct-3"}]}
            for content_type in ("application/json", "application/json; charset=utf-8"):  # the lane, and the route
                decided = await client.post(
                    "/v1/decide", content=json.dumps(body), headers={**auth, "Content-Type": content_type}
                )
                assert decided.status_code == 200, decided.text
                found += [c for d in decided.json()["decisions"] for c in d["evidence"]["comparables"]]
            account = (await client.get("/v1/accounts/acct-0", headers=auth)).json()
            found += account["recommendation"]["evidence"]["comparables"]
            found += [c for d in account["decisions"] for c in d["evidence"]["comparables"]]
            shown[role] = found
        return shown

    shown = _ask(_app(store, playbook), keys.admin, calls)
    stored = [c for d in store.decisions(limit=100) for c in d.evidence["comparables"]]
    assert {owner_of[c["account_id"]] for c in stored} == {"ana", "ben", "cleo"}  # the decisions kept their ids
    for role, owners in sees.items():
        found = shown[role]
        named = {c["account_id"] for c in found if c["account_id"] is not None}
        assert {owner_of[a] for a in named} == owners, role
        withheld = [c for c in found if c["account_id"] is None]
        assert bool(withheld) == (role != "admin"), role
        # What followed is still shown; only which account it was is not.
        assert all(c["outcome"] == "churn within 90 days: none" and c["similarity"] == 0.5 for c in found)


# ---- decide: a batch is all or nothing, and says which accounts and why ------------------------


def test_a_batch_refused_names_each_account_its_place_and_why(tmp_path: Path, store: Store, playbook: Playbook) -> None:
    # One churned or unknown account made the whole batch a 404 that named only "no account in run".
    folder = _book(
        tmp_path / "book",
        "account_id,owner,arr,contract_start\na1,ana,1000,\na2,ana,1000,\ngone,ana,1000,\nnewbie,ana,1000,\n"
        "back,ana,1000,2026-07-01T00:00:00Z\n",
        "account_id,ts,kind\ngone,2026-03-02T00:00:00Z,churn\nback,2026-02-01T00:00:00Z,churn\n",
    )
    book = load_book(str(folder), playbook=playbook)
    seed_run(store, playbook, account_ids=["a1", "a2"], owners=("ana",))
    keys = make_keys(store)
    batch = {"accounts": [{"account_id": a} for a in ("a1", "gone", "a2", "ghost", "newbie", "back")]}

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post("/v1/decide", json=batch),
            await client.post("/v1/decide", json={"account_id": "gone"}),
        ]

    refused, single = _ask(_app(store, playbook, book=book), keys.admin, calls)
    assert store.decisions(limit=100) == []  # nothing of the batch was decided
    assert refused.status_code == 404, refused.text
    error = refused.json()
    assert error["code"] == "not_found"
    assert "a batch is decided all or nothing" in error["message"]
    assert [(p["field"], p["index"], p["account_id"]) for p in error["problems"]] == [
        ("accounts.1.account_id", 1, "gone"),
        ("accounts.3.account_id", 3, "ghost"),
        ("accounts.4.account_id", 4, "newbie"),
        ("accounts.5.account_id", 5, "back"),
    ]
    problems = [p["problem"] for p in error["problems"]]
    assert "is gone: its 'churn' outcome on 2026-03-02 ended it" in problems[0]
    assert problems[1] == "no account 'ghost' in run 'run-1' or the book; GET /v1/recommendations lists the accounts"
    assert "is in the book but not in run 'run-1', decided as of 2026-06-01" in problems[2]
    assert "is in the book but not in run 'run-1'" in problems[3]  # churned, but started again since
    assert single.status_code == 404
    assert single.json()["problems"][0]["field"] == "account_id"
    assert single.json()["message"] == single.json()["problems"][0]["problem"]


def test_a_batch_names_an_account_at_a_gone_stage_as_gone(tmp_path: Path, store: Store, playbook: Playbook) -> None:
    # An account the run left out for its stage (gone_stages) was said to be "not a customer then, or added since".
    folder = _book(
        tmp_path / "book",
        "account_id,owner,arr,lifecycle_stage\na1,ana,1000,adoption\nleft,ana,1000,lapsed\n",
        "account_id,ts,kind\na1,2026-01-02T00:00:00Z,expansion\n",
    )
    gone_playbook = playbook.model_copy(update={"gone_stages": ["lapsed"]})
    book = load_book(str(folder), playbook=gone_playbook)
    seed_run(store, gone_playbook, account_ids=["a1"], owners=("ana",))
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/decide", json={"accounts": [{"account_id": "a1"}, {"account_id": "left"}]})

    refused = _ask(_app(store, gone_playbook, book=book), keys.admin, calls)
    assert refused.status_code == 404, refused.text
    problems = refused.json()["problems"]
    assert [p["account_id"] for p in problems] == ["left"]
    assert problems[0]["problem"] == (
        "account 'left' is gone: its lifecycle_stage 'lapsed' is one of the playbook's gone_stages; "
        "a gone account is not decided for"
    )


def test_a_batch_names_the_accounts_a_key_may_not_see_as_it_names_missing_ones(
    store: Store, playbook: Playbook
) -> None:
    recs = seed_run(store, playbook)
    keys = make_keys(store)
    anas = [r.account_id for r in recs if r.owner == "ana"]
    cleos = [r.account_id for r in recs if r.owner == "cleo"]

    async def calls(client: httpx.AsyncClient) -> httpx.Response:
        batch = [anas[0], cleos[0], anas[1], "ghost"]
        return await client.post("/v1/decide", json={"accounts": [{"account_id": a} for a in batch]})

    refused = _ask(_app(store, playbook), keys.csm, calls)
    assert refused.status_code == 404
    problems = refused.json()["problems"]
    assert [p["index"] for p in problems] == [1, 3]
    assert problems[0]["problem"].replace(cleos[0], "X") == problems[1]["problem"].replace("ghost", "X")


# ---- runs -------------------------------------------------------------------------------------


def test_a_run_whose_book_no_longer_validates_is_kept_failed_in_the_store(
    tmp_path: Path, store: Store, playbook: Playbook
) -> None:
    # It answered 202 "failed" with the right error, but GET /v1/runs never listed it and a restart forgot it.
    folder = _book(tmp_path / "book", "account_id,owner,arr\na1,ana,1000\na2,ana,1000\n")
    book = load_book(str(folder), playbook=playbook)
    keys = make_keys(store)
    app = _app(store, playbook, book=book, book_path=str(folder))
    _book(folder, "account_id,owner,arr\na1,ana,1000\na1,ana,1000\n")  # a duplicate account_id since

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        started = await client.post("/v1/runs", json={})
        return started, await client.get("/v1/runs")

    started, listed = _ask(app, keys.admin, calls)
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["status"] == "failed"
    assert "duplicate" in run["error"]
    assert [(r["run_id"], r["status"]) for r in listed.json()["items"]] == [(run["run_id"], "failed")]
    stored = store.get_run(run["run_id"])
    assert stored.status == "failed"
    assert stored.error == run["error"]
    assert stored.finished_at is not None

    async def again(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"/v1/runs/{run['run_id']}")

    after_restart = _ask(_app(store, playbook), keys.admin, again)
    assert after_restart.status_code == 200
    assert after_restart.json()["status"] == "failed"
    assert after_restart.json()["error"] == run["error"]


# ---- probes and methods -----------------------------------------------------------------------


def test_head_probes_answer_as_get_does(store: Store, playbook: Playbook) -> None:
    # Load balancers probe with HEAD: it was a 405.
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.head("/healthz"), await client.head("/readyz"), await client.get("/healthz")]

    healthz, readyz, got = _ask(_app(store, playbook), keys.admin, calls)
    assert healthz.status_code == readyz.status_code == 200
    assert healthz.headers["content-type"] == got.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/runs", "GET, POST"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("GET", "/v1/decide", "POST"),
        ("POST", "/v1/accounts/A%2F1", "GET"),
    ],
)
def test_a_405_names_the_methods_the_endpoint_takes(
    store: Store, playbook: Playbook, method: str, path: str, allowed: str
) -> None:
    keys = make_keys(store)

    async def calls(client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(method, path)

    answer = _ask(_app(store, playbook), keys.admin, calls)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.json()["message"] == f"this endpoint takes {allowed} only; GET /openapi.json lists the methods"
