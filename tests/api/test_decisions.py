"""The decision queue: every call answered once its decisions are logged, batches under load, errors kept apart."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api.conftest import seed_run

from nextmove.api.decisions import DecisionQueue, OverloadedError
from nextmove.engine.online import DecideGroup, DecideRequest, OnlineDecider
from nextmove.errors import NotFoundError, StoreError
from nextmove.playbook import Playbook
from nextmove.store import DecisionRecord, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _ids(made: list[DecisionRecord]) -> list[str]:
    return [d.decision_id for d in made]


def _group(account_id: str) -> DecideGroup:
    return DecideGroup([DecideRequest(account_id)], key_id="k")


def test_calls_waiting_behind_a_slow_one_are_decided_in_one_batch(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook, accounts=24)
    queue = DecisionQueue(OnlineDecider(store, playbook))
    entered, release = threading.Event(), threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(30)

    async def main() -> list[list[str] | BaseException]:
        first = asyncio.ensure_future(queue.decide(_group(recs[0].account_id), _ids, check=slow))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        # The thread is busy with the first call: the others wait, then go together.
        rest = [asyncio.ensure_future(queue.decide(_group(r.account_id), _ids)) for r in recs[1:]]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    try:
        answers = asyncio.run(main())
    finally:
        release.set()
        queue.close()
    assert all(isinstance(a, list) and len(a) == 1 for a in answers)
    logged = {d.decision_id: d.account_id for d in store.decisions()}
    assert [logged[a[0]] for a in answers if isinstance(a, list)] == [r.account_id for r in recs]
    assert queue.batches == 2


def test_a_failing_call_fails_alone(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    queue = DecisionQueue(OnlineDecider(store, playbook))

    def refuse() -> None:
        raise NotFoundError("not visible to this key")

    async def main() -> list[list[str] | BaseException]:
        calls = [
            queue.decide(_group(recs[0].account_id), _ids),
            queue.decide(_group("nope"), _ids),
            queue.decide(_group(recs[1].account_id), _ids, check=refuse),
            queue.decide(_group(recs[2].account_id), _ids),
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        ok, missing, refused, also_ok = asyncio.run(main())
    finally:
        queue.close()
    assert isinstance(missing, NotFoundError)
    assert "nope" in str(missing)
    assert isinstance(refused, NotFoundError)
    assert isinstance(ok, list)
    assert isinstance(also_ok, list)
    assert {d.decision_id for d in store.decisions()} == {*ok, *also_ok}


def test_a_full_queue_refuses_at_once_and_a_closed_one_refuses_too(store: Store, playbook: Playbook) -> None:
    recs = seed_run(store, playbook)
    queue = DecisionQueue(OnlineDecider(store, playbook), max_waiting=1)
    entered, release = threading.Event(), threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(30)

    async def main() -> tuple[object, object, object]:
        busy = asyncio.ensure_future(queue.decide(_group(recs[0].account_id), _ids, check=slow))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(queue.decide(_group(recs[1].account_id), _ids))
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="waiting already"):
            await queue.decide(_group(recs[2].account_id), _ids)
        release.set()
        return tuple(await asyncio.gather(busy, waiting, return_exceptions=True))

    try:
        busy, waiting, *_ = asyncio.run(main())
    finally:
        release.set()
        queue.close()
    assert isinstance(busy, list)
    assert isinstance(waiting, list)

    async def after_close() -> None:
        await queue.decide(_group(recs[3].account_id), _ids)

    with pytest.raises(OverloadedError, match="stopping"):
        asyncio.run(after_close())
    assert len(store.decisions()) == 2


@pytest.mark.parametrize(
    "failure", [StoreError("could not lock accounts: terminating connection"), RuntimeError("a bug")]
)
def test_a_batch_the_store_fails_is_one_warning_line_and_a_bug_a_traceback(
    store: Store,
    playbook: Playbook,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
) -> None:
    # A store failure (the lock connection cut) is answered 503 to every call of the batch, and retried by
    # the clients: the log says so in one line per batch, its traceback kept for debugging.
    recs = seed_run(store, playbook)
    decider = OnlineDecider(store, playbook)
    queue = DecisionQueue(decider)

    def fails(groups: object) -> object:
        raise failure

    monkeypatch.setattr(decider, "decide_groups", fails)

    async def main() -> list[object]:
        calls = [queue.decide(_group(r.account_id), _ids) for r in recs[:2]]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        with caplog.at_level(logging.DEBUG, logger="nextmove.api"):
            answers = asyncio.run(main())
    finally:
        queue.close()
    assert answers == [failure, failure]
    told = [r for r in caplog.records if r.name == "nextmove.api" and r.levelno > logging.DEBUG]
    assert told
    for record in told:
        assert record.getMessage().startswith("could not decide")
        if isinstance(failure, StoreError):
            assert record.levelno == logging.WARNING
            assert record.exc_info is None
            assert record.getMessage().endswith(": could not lock accounts: terminating connection")
        else:
            assert record.levelno == logging.ERROR
            assert record.exc_info is not None
    if isinstance(failure, StoreError):
        debug = [r for r in caplog.records if r.name == "nextmove.api" and r.levelno == logging.DEBUG]
        assert len(debug) == len(told)
        assert all(r.exc_info is not None for r in debug)
