"""Promotions and rollbacks at the same time end as if made one after the other.

Two threads, each on a store of its own opened on one database (as two `nextmove models promote`
processes, or two servers' runs finishing at once), promote two runs round after round; after each
round the served run's own effect model is the active one, and the policy versions' ``replaces``
chain walks back through every version. On a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

# The store tests' fixtures (a SQLite file and a PostgreSQL schema per test) serve these tests too.
from tests.store.conftest import pg_admin_url, pg_schema_url, store_url  # noqa: F401

from nextmove.engine.online import POLICY_MODEL_KIND, promote_run, rollback_policy
from nextmove.engine.run import EFFECT_MODEL_KIND
from nextmove.errors import NotFoundError
from nextmove.store import ModelVersionRecord, RunRecord, Store, open_store

T0 = datetime(2026, 6, 1, tzinfo=UTC)
RUNS = ("run-a", "run-b")
ROUNDS = 30


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[Store, Store, Store]]:  # noqa: F811
    """The store opened three times: two promoters' and the checker's."""
    with open_store(store_url) as one, open_store(store_url) as two, open_store(store_url) as checker:
        for i, run_id in enumerate(RUNS):
            checker.save_run(
                RunRecord(
                    run_id=run_id,
                    book_source="tests",
                    playbook_hash="pb",
                    status="succeeded",
                    as_of=T0,
                    created_at=T0 + timedelta(hours=i),
                    finished_at=T0 + timedelta(hours=i, minutes=30),
                    summary={"model_version": f"effect-{run_id}"},
                ),
                [],
            )
            checker.save_model(
                ModelVersionRecord(
                    model_id=f"effect-{run_id}",
                    kind=EFFECT_MODEL_KIND,
                    playbook_hash="pb",
                    blob=b"model",
                    created_at=T0 + timedelta(hours=i),
                )
            )
        yield one, two, checker


def _served_and_effect(store: Store) -> tuple[str, str | None]:
    policy = store.active_model(POLICY_MODEL_KIND)
    assert policy is not None
    effect = store.active_model(EFFECT_MODEL_KIND)
    return json.loads(policy.blob)["run_id"], None if effect is None else effect.model_id


def _chain(store: Store) -> list[str]:
    """The policy versions from the active one back through what each replaced."""
    versions = {v.model_id: v for v in store.list_models(POLICY_MODEL_KIND)}
    active = next(v for v in versions.values() if v.active)
    out = [active.model_id]
    while (replaced := versions[out[-1]].metrics["replaces"]) is not None:
        assert replaced not in out, "the replaces chain loops"
        out.append(replaced)
    return out


def _race(stores: tuple[Store, Store, Store], moves: tuple[Callable[[Store], object], ...]) -> list[str]:
    """Each move on its own store and thread, all at once, round after round; what is wrong after each round."""
    *movers, checker = stores
    start, done = threading.Barrier(len(moves) + 1), threading.Barrier(len(moves) + 1)
    errors: list[BaseException] = []

    def loop(move: Callable[[Store], object], store: Store) -> None:
        for _ in range(ROUNDS):
            start.wait()
            try:
                move(store)
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)
            done.wait()

    threads = [threading.Thread(target=loop, args=(m, s)) for m, s in zip(moves, movers, strict=True)]
    for t in threads:
        t.start()
    wrong: list[str] = []
    try:
        for r in range(ROUNDS):
            start.wait()
            done.wait()
            served, effect = _served_and_effect(checker)
            if effect != f"effect-{served}":
                wrong.append(f"round {r}: run {served} served with {effect}")
    finally:
        for t in threads:
            t.join()
    assert errors == []
    return wrong


def test_two_promotions_at_once_serve_one_run_with_its_own_effect_model(stores: tuple[Store, Store, Store]) -> None:
    moves = tuple(lambda store, run_id=run_id: promote_run(store, run_id) for run_id in RUNS)
    assert _race(stores, moves) == []
    checker = stores[2]
    # Every version replaced the one active when it was saved: the chain holds all of them.
    assert sorted(_chain(checker)) == sorted(v.model_id for v in checker.list_models(POLICY_MODEL_KIND))
    assert len(_chain(checker)) == 2 * ROUNDS


def test_a_rollback_and_a_promotion_at_once_leave_the_served_run_with_its_own_effect_model(
    stores: tuple[Store, Store, Store],
) -> None:
    promote_run(stores[2], "run-a")
    promote_run(stores[2], "run-b")

    def roll_back(store: Store) -> None:
        # Right after another rollback (to run-a's first version), there is nothing to roll back to.
        with contextlib.suppress(NotFoundError):
            rollback_policy(store)

    moves = (lambda store: promote_run(store, "run-b"), roll_back)
    assert _race(stores, moves) == []
