"""The server's services: the served run is kept out of the garbage collector's full collections."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from tests.api.conftest import AS_OF, seed_run

from nextmove.api import ApiConfig
from nextmove.api.measures import SegmentCache
from nextmove.api.service import RunSegments, Services
from nextmove.engine.run import run
from nextmove.playbook import Playbook
from nextmove.sim import SimConfig, simulate
from nextmove.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _frozen(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects(generation=None)) is False and gc.is_tracked(obj)


def test_the_served_run_is_frozen_at_start_and_again_when_a_new_run_is_served(store: Store, playbook: Playbook) -> None:
    seed_run(store, playbook, run_id="run-1")
    services = Services(ApiConfig(playbook=playbook, refresh_s=0.05), store=store)
    try:
        services.start()
        first = services.decider.snapshot
        assert first is not None
        assert gc.get_freeze_count() > 0
        assert _frozen(first)
        seed_run(store, playbook, run_id="run-2", seed=1, as_of=AS_OF + timedelta(days=7))
        services.decider.promote_run("run-2")
        second = services.decider.snapshot
        assert second is not None
        assert second is not first
        deadline = time.monotonic() + 30
        while not _frozen(second) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _frozen(second)
    finally:
        services._stop.set()
        services.decisions.close()
        services.audit.close()
        gc.unfreeze()


def test_segments_are_the_served_runs_own_not_a_new_clustering(store: Store) -> None:
    # A small lab book whose clustering depends on the seed: k-means seeded 0 finds 2 segments, 3 finds 7.
    lab = simulate(SimConfig(accounts=200, months=6, seed=0))
    playbook = lab.config.resolved_playbook()
    result = run(
        lab.book,
        playbook,
        as_of=lab.as_of,
        store=store,
        seed=3,
        effect_params={"n_folds": 2, "n_estimators": 25, "n_draws": 60},
        evidence=False,
        evaluate=False,
    )
    stored = result.summary["segments"]
    services = Services(ApiConfig(playbook=playbook, book=lab.book), store=store)
    try:
        served = services.served_run()
        assert served is not None
        assert served.run_id == result.run_id
        data = services.segments.report(lab.book, playbook, served.as_of)
    finally:
        services.decider.close()
    shown = [(s["name"], s["accounts"]) for s in data["segments"]]
    assert data["k"] == stored["k"] == len(shown)
    assert shown == [(s["name"], s["accounts"]) for s in stored["segments"]]
    assert {name for name, _ in shown} == set(result.recommendations.get_column("segment_name").drop_nulls().to_list())
    assert data["accounts"] == stored["accounts"]
    # The clustering the API used to answer (seed 0) finds other segments for the same book and time.
    assert SegmentCache().report(lab.book, playbook, served.as_of)["k"] != stored["k"]
    # A served run that kept no segments is clustered again with its own seed.
    bare = replace(served, summary={k: v for k, v in served.summary.items() if k != "segments"})
    again = RunSegments(lambda: bare).report(lab.book, playbook, served.as_of)
    assert again == SegmentCache(seed=3).report(lab.book, playbook, served.as_of)
    # The same clusters as the run's (the run lists them by response, the clustering by id).
    assert sorted((s["name"], s["accounts"]) for s in again["segments"]) == sorted(shown)
