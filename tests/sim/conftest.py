"""Shared simulated books for the lab's tests: a small one for most checks, the default one for scale."""

from __future__ import annotations

import time

import pytest

from nextmove.sim import SimConfig, SimResult, simulate

SMALL = SimConfig(accounts=400, months=9, seed=7)


@pytest.fixture(scope="session")
def small() -> SimResult:
    return simulate(SMALL)


@pytest.fixture(scope="session")
def default_run() -> tuple[SimResult, float]:
    """The default book (4,200 accounts, 18 months) and the seconds it took to simulate."""
    started = time.perf_counter()
    result = simulate(SimConfig())
    return result, time.perf_counter() - started


@pytest.fixture(scope="session")
def default(default_run: tuple[SimResult, float]) -> SimResult:
    return default_run[0]
