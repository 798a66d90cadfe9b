"""Runs through the API: POST /v1/runs answers with the run as stored, as GET /v1/runs/{run_id} shows it;
GET /v1/lift without a run_id says why no run is served and which one it could measure."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from polars.exceptions import PanicException
from tests.api.conftest import Keys, ended_process, make_keys

import nextmove.api.routes as routes
import nextmove.api.service as service
from nextmove.api import ApiConfig, create_app
from nextmove.api.service import Services
from nextmove.book import default_as_of
from nextmove.book.validate import load_book
from nextmove.engine.online import promote_run
from nextmove.engine.run import RUN_STAGES
from nextmove.engine.run_process import run_process
from nextmove.errors import BookError
from nextmove.features.history import resolve_as_of
from nextmove.playbook import Playbook
from nextmove.store import RunRecord, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _book_app(tmp_path: Path, store: Store, playbook: Playbook) -> tuple[FastAPI, Keys]:
    """An in-process app over a two-account folder book, with keys of every role."""
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,owner,arr\na1,ana,12000\na2,ana,9000\n", encoding="utf-8")
    (folder / "touches.csv").write_text(
        "account_id,action_id,ts\na1,nurture_email,2026-05-03T10:00:00Z\na2,nurture_email,2026-05-04T10:00:00Z\n",
        encoding="utf-8",
    )
    then = time.time() - 10  # written whole: the server need not wait for the files to settle
    for file in folder.iterdir():
        os.utime(file, (then, then))
    book = load_book(str(folder), playbook=playbook)
    config = ApiConfig(playbook=playbook, book=book, book_path=str(folder), refresh_s=3600.0)
    return create_app(config, store=store), make_keys(store)


class EngineStandIn:
    """Records the run as the engine does (its as_of resolved from the book), reports a step, then waits.

    ``before_recording`` runs first (a slow book read, a failure); the run ends when ``release`` is set.
    """

    def __init__(self, before_recording: Callable[[], None] = lambda: None) -> None:
        self.before_recording = before_recording
        self.release = threading.Event()

    def __call__(self, book: Any, playbook: Playbook, **kwargs: Any) -> Any:
        self.before_recording()
        store: Store = kwargs["store"]
        run_id: str = kwargs["run_id"]
        record = RunRecord(
            run_id=run_id,
            book_source=book.source,
            playbook_hash=playbook.content_hash(),
            as_of=resolve_as_of(book, kwargs["as_of"]),
            params={"seed": kwargs["seed"], "promote": kwargs["promote"], "process": {"pid": os.getpid()}},
        )
        store.start_run(record)
        kwargs["progress"]("features: a point-in-time snapshot")
        self.release.wait(30)
        store.finish_run(run_id, "failed", {"error": "stopped by the test"})
        return type("Result", (), {"run_id": run_id})()


def _ask(app: FastAPI, keys: Keys, calls: Callable[[httpx.AsyncClient], Any]) -> Any:
    services: Services = app.state.services

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {keys.admin}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:
            return await calls(client)

    services.audit.start()  # not services.start(): it freezes the test process's objects for the collector
    try:
        return asyncio.run(main())
    finally:
        services.runs.join(30)
        services.close()


@pytest.mark.parametrize("asked", [None, "2026-05-01T12:00:00Z"])
def test_a_started_run_is_answered_as_stored(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch, asked: str | None
) -> None:
    app, keys = _book_app(tmp_path, store, playbook)
    engine = EngineStandIn()
    monkeypatch.setattr(service, "engine_run_function", lambda: engine)

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, RunRecord]:
        started = await client.post("/v1/runs", json={} if asked is None else {"as_of": asked})
        shown = await client.get(f"/v1/runs/{started.json()['run_id']}")
        stored = store.get_run(started.json()["run_id"])
        engine.release.set()
        return started, shown, stored

    started, shown, stored = _ask(app, keys, calls)
    assert started.status_code == 202, started.text
    run = started.json()
    expected = default_as_of(app.state.services.config.book) if asked is None else stored.as_of
    assert run["as_of"] is not None
    assert run["as_of"] == shown.json()["as_of"] == expected.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert run["created_at"] == shown.json()["created_at"]
    assert run["created_at"].rstrip("Z") == stored.created_at.replace(tzinfo=None).isoformat()
    assert run["params"] == shown.json()["params"] == stored.params
    assert run["status"] == "running"


def test_a_run_not_recorded_yet_is_answered_as_accepted_and_shown_alike_until_it_is(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, keys = _book_app(tmp_path, store, playbook)
    reading = threading.Event()
    engine = EngineStandIn(before_recording=lambda: reading.wait(30))  # the book is still being read
    monkeypatch.setattr(service, "engine_run_function", lambda: engine)
    monkeypatch.setattr(routes, "RUN_RECORDED_WAIT_S", 0.2, raising=False)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        started = await client.post("/v1/runs", json={"seed": 4})
        run_id = started.json()["run_id"]
        await asyncio.sleep(0.05)
        before = await client.get(f"/v1/runs/{run_id}")
        reading.set()
        deadline = time.monotonic() + 30
        while not store.list_runs(5) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        after = await client.get(f"/v1/runs/{run_id}")
        engine.release.set()
        return [started, before, after]

    started, before, after = _ask(app, keys, calls)
    assert started.status_code == 202, started.text
    accepted = started.json()
    # Not recorded within the wait: as accepted, and GET shows the very same run until it is recorded.
    assert accepted["as_of"] is None
    assert accepted["params"] == {"seed": 4, "promote": True}
    assert accepted["playbook_hash"] == playbook.content_hash()
    assert before.json() == accepted
    recorded = after.json()
    assert recorded["as_of"] == default_as_of(app.state.services.config.book).isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert recorded["created_at"] >= accepted["created_at"]


def test_a_run_that_fails_before_it_is_recorded_is_answered_failed_with_why(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, keys = _book_app(tmp_path, store, playbook)

    def broken_book() -> None:
        raise BookError("the book at book no longer loads: duplicate account_id 'a1'")

    engine = EngineStandIn(before_recording=broken_book)
    monkeypatch.setattr(service, "engine_run_function", lambda: engine)

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        started = await client.post("/v1/runs", json={})
        return started, await client.get(f"/v1/runs/{started.json()['run_id']}")

    started, shown = _ask(app, keys, calls)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "failed"
    assert "duplicate account_id" in started.json()["error"]
    assert started.json() == shown.json()


def test_a_run_whose_engine_panics_is_answered_failed_with_why_not_running_for_ever(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Polars panic (pyo3's PanicException) is a BaseException, not an Exception: it killed the run's thread.
    app, keys = _book_app(tmp_path, store, playbook)

    def panics() -> None:
        raise PanicException("called `Result::unwrap()` on an `Err` value: unable to parse time zone: '+05:30'")

    monkeypatch.setattr(service, "engine_run_function", lambda: EngineStandIn(before_recording=panics))

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, RunRecord]:
        started = await client.post("/v1/runs", json={})
        run_id = started.json()["run_id"]
        return started, await client.get(f"/v1/runs/{run_id}"), store.get_run(run_id)

    started, shown, stored = _ask(app, keys, calls)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == shown.json()["status"] == stored.status == "failed"
    assert "unable to parse time zone" in shown.json()["error"]


def test_a_book_whose_reading_panics_is_not_served_and_a_run_on_it_says_why(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nextmove.book.validate as validate

    app, keys = _book_app(tmp_path, store, playbook)
    services: Services = app.state.services
    served = services.config.book
    engine = EngineStandIn()
    monkeypatch.setattr(service, "engine_run_function", lambda: engine)

    def panics(path: str, **kwargs: Any) -> Any:
        raise PanicException("called `Result::unwrap()` on an `Err` value\nHint: a second line")

    monkeypatch.setattr(validate, "load_book", panics)
    accounts = tmp_path / "book" / "accounts.csv"
    accounts.write_text("account_id,owner,arr\na1,ana,12000\na2,ana,9000\na3,bo,1000\n", encoding="utf-8")
    then = time.time() - 10
    os.utime(accounts, (then, then))

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        started = await client.post("/v1/runs", json={})
        engine.release.set()
        return started, await client.get(f"/v1/runs/{started.json()['run_id']}")

    started, shown = _ask(app, keys, calls)
    assert started.status_code == 202, started.text
    assert shown.json()["status"] == "failed", shown.text
    assert "no longer loads: reading it failed (PanicException: called" in shown.json()["error"]
    assert "second line" not in shown.json()["error"]
    assert services.config.book is served  # the last good book is still served
    assert services.book_problem == shown.json()["error"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'lift.db').as_posix()}"


def _lift_without_run_id(url: str, playbook: Playbook, status: int = 404) -> httpx.Response:
    with open_store(url) as store:
        keys = make_keys(store)
    app = create_app(ApiConfig(playbook=playbook, store_url=url, refresh_s=3600.0))

    async def calls(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/v1/lift")

    answer: httpx.Response = _ask(app, keys, calls)
    assert answer.status_code == status, answer.text
    return answer


def _save_run(url: str, playbook_hash: str, run_id: str, **params: Any) -> None:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    run = RunRecord(
        run_id=run_id,
        book_source="tests",
        playbook_hash=playbook_hash,
        status="succeeded",
        as_of=when,
        created_at=when,
        finished_at=when,
        params=params,
    )
    with open_store(url) as store:
        store.save_run(run, [])


def test_lift_without_a_run_says_the_store_has_none_and_how_to_make_one(url: str, playbook: Playbook) -> None:
    message = _lift_without_run_id(url, playbook).json()["message"]
    assert "no succeeded run" in message
    assert "POST /v1/runs" in message


def test_lift_without_a_served_run_names_the_succeeded_one_and_what_to_do(url: str, playbook: Playbook) -> None:
    _save_run(url, playbook.content_hash(), "run-quiet", promote=False)
    message = _lift_without_run_id(url, playbook).json()["message"]
    assert "no succeeded run" not in message
    assert "no run is served" in message
    assert "promote=false" in message
    assert "run_id=" in message
    assert "'run-quiet'" in message
    assert "nextmove models promote RUN_ID" in message


def test_lift_without_a_served_run_says_why_the_run_to_serve_is_not(url: str, playbook: Playbook) -> None:
    """The store's run to serve was made under another playbook: a 409 decider_not_ready, as decisions and
    GET /v1/recommendations answer (it was a 404 not_found), naming the run, both hashes and what to do."""
    _save_run(url, "another-playbook", "run-other")
    answer = _lift_without_run_id(url, playbook, status=409).json()
    assert answer["code"] == "decider_not_ready"
    message = answer["message"]
    assert "no run is served" in message
    assert "'run-other', was made under playbook another-playbook" in message  # the run to serve, and why it is not
    assert f"not the server's ({playbook.content_hash()})" in message
    assert "run_id=run-other" in message
    assert "POST /v1/runs" in message
    _save_run(url, playbook.content_hash(), "run-quiet", promote=False)
    answer = _lift_without_run_id(url, playbook, status=409).json()
    assert answer["code"] == "decider_not_ready"
    assert "'run-quiet': measure it with run_id=run-quiet" in answer["message"]  # measurable under this playbook


def test_lift_recommendations_and_decisions_answer_alike_when_the_run_to_serve_is_another_playbooks(
    url: str, playbook: Playbook
) -> None:
    """One situation, one answer: the run to serve was made under another playbook, so GET /v1/lift without
    run_id answers the 409 decider_not_ready of POST /v1/decide and GET /v1/recommendations (it answered 404)."""
    _save_run(url, "another-playbook", "run-other")
    app, keys = _app_over(url, playbook)

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.get("/v1/lift"),
            await client.get("/v1/recommendations"),
            await client.post("/v1/decide", json={"account_id": "a0"}),
        ]

    answers = _ask(app, keys, calls)
    assert [a.status_code for a in answers] == [409, 409, 409], [a.text for a in answers]
    assert {a.json()["code"] for a in answers} == {"decider_not_ready"}


def _app_over(url: str, playbook: Playbook) -> tuple[FastAPI, Keys]:
    with open_store(url) as store:
        keys = make_keys(store)
    return create_app(ApiConfig(playbook=playbook, store_url=url, refresh_s=3600.0)), keys


def test_recommendations_and_lift_of_a_run_that_has_not_succeeded_answer_409_with_why(
    url: str, playbook: Playbook
) -> None:
    with open_store(url) as store:
        store.start_run(RunRecord(run_id="run-failed", book_source="b", playbook_hash=playbook.content_hash()))
        store.finish_run("run-failed", "failed", {"error": "BookError: accounts.csv row 7: duplicate account_id"})
        killed = RunRecord(
            run_id="run-killed",
            book_source="b",
            playbook_hash=playbook.content_hash(),
            params={"process": ended_process()},
        )
        store.start_run(killed)
        going = RunRecord(
            run_id="run-going",
            book_source="b",
            playbook_hash=playbook.content_hash(),
            params={"process": run_process()},
        )
        store.start_run(going)
    app, keys = _app_over(url, playbook)

    async def calls(client: httpx.AsyncClient) -> dict[tuple[str, str], httpx.Response]:
        return {
            (path, run_id): await client.get(path, params={"run_id": run_id})
            for path in ("/v1/recommendations", "/v1/lift")
            for run_id in ("run-failed", "run-killed", "run-going")
        }

    answers = _ask(app, keys, calls)
    for (path, run_id), answer in answers.items():
        assert answer.status_code == 409, (path, run_id, answer.text)
        body = answer.json()
        assert body["code"] == ("run_not_finished" if run_id == "run-going" else "run_failed"), (path, body)
        assert f"run '{run_id}' is " in body["message"]
    assert "duplicate account_id" in answers["/v1/recommendations", "run-failed"].json()["message"]
    assert "will never finish" in answers["/v1/lift", "run-killed"].json()["message"]
    assert "only a succeeded run's decisions can be measured" in answers["/v1/lift", "run-going"].json()["message"]


def test_a_run_saved_but_never_promoted_says_so_and_how_to_serve_it(url: str, playbook: Playbook) -> None:
    """A run killed between its save and its promotion (two transactions) is never served: GET /v1/runs says why."""
    with open_store(url) as store:
        for run_id, params in (
            ("run-stale", {"promote": True, "process": ended_process()}),  # older than the served run: replaced
            ("run-promoted", {"promote": True, "process": ended_process()}),
            ("run-unpromoted", {"promote": True, "process": ended_process()}),
            ("run-kept", {"promote": False, "process": ended_process()}),  # promote=false: never meant to be served
            ("run-promoting", {"promote": True, "process": run_process()}),  # its process may be promoting it now
        ):
            now = datetime.now(UTC)
            run = RunRecord(
                run_id=run_id,
                book_source="tests",
                playbook_hash=playbook.content_hash(),
                status="succeeded",
                as_of=datetime(2026, 6, 1, tzinfo=UTC),
                created_at=now,
                finished_at=now,
                params=params,
            )
            store.save_run(run, [])
            if run_id == "run-promoted":
                promote_run(store, run_id)
    app, keys = _app_over(url, playbook)

    async def calls(client: httpx.AsyncClient) -> dict[str, Any]:
        listed = await client.get("/v1/runs")
        one = await client.get("/v1/runs/run-unpromoted")
        return {"listed": listed.json()["items"], "one": one.json()}

    answers = _ask(app, keys, calls)
    errors = {r["run_id"]: r["error"] for r in answers["listed"]}
    note = errors["run-unpromoted"]
    assert note is not None
    assert "saved but never promoted" in note
    assert "ended before promotion" in note
    assert "`nextmove models promote run-unpromoted`" in note
    assert answers["one"]["error"] == note
    assert answers["one"]["served"] is False
    assert errors["run-promoted"] is errors["run-kept"] is errors["run-promoting"] is None
    assert errors["run-stale"] is None  # promoting it would roll decisions back: not advised (as `models list`)


class SlowEngine:
    """Records the run, reports ``steps``, then works on until released, as a run fitting its models (a step of
    minutes) does; then reports its next step, unless it was at its last stage (saving), after which the engine
    reports none before the run is saved."""

    def __init__(self, steps: tuple[str, ...]) -> None:
        self.steps = steps
        self.at_step = threading.Event()
        self.release = threading.Event()
        self.stopped: BaseException | None = None

    def __call__(self, book: Any, playbook: Playbook, **kwargs: Any) -> Any:
        store: Store = kwargs["store"]
        run_id: str = kwargs["run_id"]
        record = RunRecord(run_id=run_id, book_source=book.source, playbook_hash=playbook.content_hash())
        store.start_run(record)
        for step in self.steps:
            kwargs["progress"](step)
        self.at_step.set()
        self.release.wait(30)
        if self.steps[-1] != RUN_STAGES[-1]:
            try:
                kwargs["progress"]("the next step")
            except BaseException as exc:  # the engine records why, unless the run was recorded failed already
                self.stopped = exc
                raise
        store.save_run(replace(record, status="succeeded", finished_at=datetime.now(UTC)), [])
        return type("Result", (), {"run_id": run_id})()


def _stop_server_during_a_run(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch, engine: SlowEngine
) -> RunRecord:
    """Start a run through the API, stop the server as its lifespan does on SIGTERM; the run as stored then."""
    monkeypatch.setattr(service, "engine_run_function", lambda: engine)
    app, keys = _book_app(tmp_path, store, playbook)
    services: Services = app.state.services

    async def main() -> str:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {keys.admin}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:
            started = await client.post("/v1/runs", json={})
        assert started.status_code == 202, started.text
        run_id: str = started.json()["run_id"]
        return run_id

    services.audit.start()
    run_id = asyncio.run(main())
    assert engine.at_step.wait(30)
    if engine.steps[-1] == RUN_STAGES[-1]:
        threading.Timer(0.3, engine.release.set).start()  # the save takes a moment: the server waits for it
    services.close()
    with open_store(store.url) as reopened:
        stopped = reopened.get_run(run_id)
    engine.release.set()
    services.runs.join(30)
    return stopped


def test_a_run_going_when_the_server_stops_is_recorded_failed_with_why(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = SlowEngine(RUN_STAGES[:2])
    stopped = _stop_server_during_a_run(tmp_path, store, playbook, monkeypatch, engine)
    # Recorded failed as the server stopped, not left running for ever; the run itself goes no further.
    assert stopped.status == "failed"
    assert stopped.error is not None
    assert "the server stopped" in stopped.error
    assert f"at its step {RUN_STAGES[1]!r}" in stopped.error
    assert "will never finish" in stopped.error
    assert isinstance(engine.stopped, KeyboardInterrupt)


def test_a_run_saving_when_the_server_stops_is_waited_for(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = SlowEngine(RUN_STAGES)
    stopped = _stop_server_during_a_run(tmp_path, store, playbook, monkeypatch, engine)
    assert stopped.status == "succeeded"


def test_recommendations_without_run_id_refuse_a_run_made_under_another_playbook_as_decisions_do(
    url: str, playbook: Playbook
) -> None:
    """The store's run to serve was made under another playbook: the server serves none (decide answers 409), so
    GET /v1/recommendations must not list that run's recommendations as the served ones (it did)."""
    from nextmove.store import RecommendationRecord

    when = datetime(2026, 6, 1, tzinfo=UTC)
    run = RunRecord(
        run_id="run-other", book_source="tests", playbook_hash="another-playbook", status="succeeded", as_of=when
    )
    recs = [
        RecommendationRecord(
            run_id="run-other", account_id=f"a{k}", action_id="retired_call", arm="model", propensity=1.0,
            expected_value_usd=10.0,
        )
        for k in range(3)
    ]  # fmt: skip
    with open_store(url) as store:
        store.save_run(run, recs)
    app, keys = _app_over(url, playbook)

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        listed = await client.get("/v1/recommendations")
        decided = await client.post("/v1/decide", json={"account_id": "a0"})
        asked = await client.get("/v1/recommendations", params={"run_id": "run-other"})
        return listed, decided, asked

    listed, decided, asked = _ask(app, keys, calls)
    assert decided.status_code == 409, decided.text
    assert listed.status_code == 409, listed.text
    assert listed.json()["code"] == decided.json()["code"] == "decider_not_ready"
    message = listed.json()["message"]
    assert "'run-other', was made under playbook another-playbook" in message
    assert f"not the server's ({playbook.content_hash()})" in message
    assert "run_id=run-other" in message
    assert asked.status_code == 200, asked.text  # asked for by run_id: listed, as the docs say
    assert [r["account_id"] for r in asked.json()["items"]] == ["a0", "a1", "a2"]
