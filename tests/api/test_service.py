"""The server's services: the served run is kept out of the garbage collector's full collections."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.api.conftest import AS_OF, seed_run

from nextmove.api import ApiConfig
from nextmove.api.service import Services
from nextmove.playbook import Playbook
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
