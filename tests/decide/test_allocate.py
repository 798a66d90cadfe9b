"""Property and unit tests of the allocation under capacity (exact and Lagrangian)."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.decide.allocate import Resource, _stdout_to_stderr, allocate
from nextmove.errors import ConfigError


def _instance(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray, list[Resource]]:
    rng = np.random.default_rng(seed)
    values = rng.normal(20, 60, (n, k))
    eligible = rng.random((n, k)) < 0.7
    owners = rng.integers(0, max(n // 8, 1), n)
    hours = rng.uniform(0.0, 3.0, k)
    cost = rng.uniform(0, 400, k)
    team = rng.integers(0, 2, k)
    resources = [Resource(f"owner{o}", float(rng.uniform(0, 8)), hours, owners == o) for o in np.unique(owners)]
    resources += [Resource(f"team{t}", float(rng.uniform(0, 50 * n)), np.where(team == t, cost, 0.0)) for t in (0, 1)]
    resources.append(Resource("volume0", float(rng.integers(0, n)), (np.arange(k) == 0).astype(float)))
    return values, eligible, resources


def _check_feasible(values: np.ndarray, eligible: np.ndarray, resources: list[Resource], choice: np.ndarray) -> None:
    chosen = np.flatnonzero(choice >= 0)
    assert eligible[chosen, choice[chosen]].all(), "an ineligible pair was chosen"
    assert (values[chosen, choice[chosen]] > 0).all(), "a pair worth nothing was chosen over doing nothing"
    for r in resources:
        member = None if r.accounts is None else np.isin(np.arange(len(choice)), r.accounts)
        if r.accounts is not None and r.accounts.dtype == bool:
            member = r.accounts
        rows = chosen if member is None else chosen[member[chosen]]
        used = r.per_candidate[choice[rows]].sum()
        assert used <= r.limit + 1e-6, f"{r.name}: used {used} > limit {r.limit}"


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    k=st.integers(1, 6),
    method=st.sampled_from(["exact", "lagrangian"]),
)
def test_allocate_never_exceeds_capacity_nor_picks_ineligible(seed: int, n: int, k: int, method: str) -> None:
    values, eligible, resources = _instance(seed, n, k)
    result = allocate(values, eligible, resources, method=method)  # type: ignore[arg-type]
    _check_feasible(values, eligible, resources, result.choice)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 25), k=st.integers(1, 4))
def test_allocate_lagrangian_never_beats_exact_and_bounds_hold(seed: int, n: int, k: int) -> None:
    values, eligible, resources = _instance(seed, n, k)
    exact = allocate(values, eligible, resources, method="exact")
    lagr = allocate(values, eligible, resources, method="lagrangian")
    assert lagr.total_value <= exact.total_value + 1e-6
    assert lagr.upper_bound is not None
    assert exact.total_value <= lagr.upper_bound + 1e-6


def test_allocate_without_capacity_takes_each_best_positive_value() -> None:
    values = np.array([[3.0, 7.0], [-1.0, -2.0], [5.0, 1.0]])
    result = allocate(values, np.ones_like(values, dtype=bool), [])
    assert result.choice.tolist() == [1, -1, 0]
    assert result.total_value == pytest.approx(12.0)


def test_allocate_zero_limit_allows_only_free_candidates() -> None:
    values = np.array([[3.0, 2.0]])
    hours = Resource("hours", 0.0, np.array([1.0, 0.0]))
    assert allocate(values, np.ones_like(values, dtype=bool), [hours], method="lagrangian").choice.tolist() == [1]


def test_allocate_rejects_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="must match"):
        allocate(np.zeros((2, 2)), np.zeros((2, 3), dtype=bool), [])
    with pytest.raises(ConfigError, match="per_candidate needs 2"):
        allocate(np.zeros((2, 2)), np.zeros((2, 2), dtype=bool), [Resource("r", 1.0, np.ones(3))])


def _owners_instance(
    seed: int, n: int, k: int = 12, per_owner: int = 40
) -> tuple[np.ndarray, np.ndarray, list[Resource]]:
    """A book-like instance: owners with weekly hours on a quarter-hour grid, team budgets, one volume limit."""
    rng = np.random.default_rng(seed)
    values = rng.normal(50, 150, (n, k)) * rng.lognormal(0, 0.8, (n, 1))
    eligible = rng.random((n, k)) < 0.7
    owners = np.arange(n) // per_owner
    hours = np.round(rng.uniform(0.0, 3.0, k) * 4) / 4
    hours[rng.random(k) < 0.2] = 0.0
    cost = rng.uniform(5, 400, k)
    team = rng.integers(0, 4, k)
    resources = [
        Resource(f"owner{o}", float(per_owner * 0.4), hours, np.flatnonzero(owners == o)) for o in np.unique(owners)
    ]
    resources += [Resource(f"team{t}", float(n * 15), np.where(team == t, cost, 0.0)) for t in range(4)]
    resources.append(Resource("volume0", float(n // 20), (np.arange(k) == 0).astype(float)))
    return values, eligible, resources


@pytest.mark.parametrize(("generator", "tolerance"), [("owners", 0.01), ("random", 0.025)])
def test_allocate_lagrangian_close_to_exact(generator: str, tolerance: float) -> None:
    # The acceptance target, within 1 % at 2,000 accounts, is measured by bench/decide.py; 200 accounts keep
    # the exact solver quick here, and a small book of tiny random groups leaves the repair less room.
    for seed in (1,):
        values, eligible, resources = _owners_instance(seed, 200) if generator == "owners" else _instance(seed, 200, 12)
        exact = allocate(values, eligible, resources, method="exact", time_limit_s=60)
        lagr = allocate(values, eligible, resources, method="lagrangian")
        _check_feasible(values, eligible, resources, lagr.choice)
        assert lagr.total_value >= (1 - tolerance) * exact.total_value
        assert lagr.upper_bound is not None
        assert lagr.upper_bound >= exact.total_value - 1e-6


@pytest.mark.parametrize("seed", [0, 3])
def test_allocate_lagrangian_packs_owner_hours_when_a_budget_binds(seed: int) -> None:
    # Owners of 5 hours; plays of 3.5, 2.5 and 3 hours (the last free) under one binding budget. The best use of
    # the budget is two 2.5-hour check-ins on as many owners as it pays for; dropping single picks to fit the
    # budget stranded 2.5 hours of an owner where only a check-in fits, and lost up to 8 %.
    n = 600
    rng = np.random.default_rng(seed)
    values = np.c_[rng.uniform(90, 110, n), rng.uniform(60, 80, n), rng.uniform(40, 50, n)]
    owner = rng.integers(0, n // 10, n)
    resources = [
        Resource(f"hours:{o}", 5.0, np.array([3.5, 2.5, 3.0]), np.flatnonzero(owner == o)) for o in range(n // 10)
    ]
    resources.append(Resource("budget:cs", 800.0, np.array([120.0, 35.0, 0.0])))
    eligible = np.ones(values.shape, dtype=bool)
    exact = allocate(values, eligible, resources, method="exact")
    lagr = allocate(values, eligible, resources, method="lagrangian")
    assert lagr.usage["budget:cs"] <= 800.0 + 1e-9
    assert max(lagr.usage[f"hours:{o}"] for o in range(n // 10)) <= 5.0 + 1e-9
    assert lagr.total_value >= 0.99 * exact.total_value


def test_allocate_accepts_account_positions_like_masks() -> None:
    values, eligible, resources = _owners_instance(3, 60, per_owner=20)
    as_masks = [
        Resource(r.name, r.limit, r.per_candidate, None if r.accounts is None else np.isin(np.arange(60), r.accounts))
        for r in resources
    ]
    a = allocate(values, eligible, resources, method="exact")
    b = allocate(values, eligible, as_masks, method="exact")
    assert a.total_value == pytest.approx(b.total_value)
    with pytest.raises(ConfigError, match="positions in"):
        allocate(values, eligible, [Resource("bad", 1.0, resources[0].per_candidate, np.array([0, 500]))])


def test_allocate_sampled_prices_for_large_books_stay_feasible(monkeypatch: pytest.MonkeyPatch) -> None:
    # The package re-exports the function `allocate`, which hides the module of the same name.
    allocate_module = importlib.import_module("nextmove.decide.allocate")

    monkeypatch.setattr(allocate_module, "SAMPLE_ACCOUNTS", 80)  # 240 accounts > 2 × 80: the sampled path
    values, eligible, resources = _owners_instance(4, 240)
    sampled = allocate(values, eligible, resources, method="lagrangian")
    _check_feasible(values, eligible, resources, sampled.choice)
    exact = allocate(values, eligible, resources, method="exact")
    assert sampled.total_value >= 0.97 * exact.total_value


def test_allocate_reports_gap_to_bound_and_seconds() -> None:
    values, eligible, resources = _owners_instance(5, 200)
    result = allocate(values, eligible, resources, method="lagrangian")
    assert result.gap_to_bound is not None
    assert 0 <= result.gap_to_bound < 0.05
    assert result.seconds > 0
    assert set(result.usage) == {r.name for r in resources}


def test_allocate_auto_falls_back_to_the_lagrangian_when_the_solver_finds_nothing() -> None:
    # ``exact`` does the same (tests/decide/test_allocate_time_limit.py).
    values, eligible, resources = _owners_instance(6, 120)
    result = allocate(values, eligible, resources, method="auto", time_limit_s=1e-9)
    assert result.method == "lagrangian"
    assert result.fallback is not None
    assert "found no solution within its time limit" in result.fallback
    _check_feasible(values, eligible, resources, result.choice)


def test_exact_solver_output_goes_to_stderr_not_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    # HiGHS may print a stray debug line to descriptor 1 during a solve (ERGO-Code/HiGHS#2783); the
    # exact allocation sends descriptor 1 to descriptor 2 meanwhile, so a command's stdout stays clean.
    print("before", flush=True)
    with _stdout_to_stderr():
        os.write(1, b"solver noise\n")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert "solver noise" in err


def test_allocate_exact_takes_the_value_the_solver_left_within_its_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    # HiGHS stops within its relative gap (0.1%): on a large book that can leave an account on a
    # slightly less valuable option although the better one fits. Here the solver is made to do so.
    alloc = importlib.import_module("nextmove.decide.allocate")
    real_milp = alloc.milp

    def within_gap(c: np.ndarray, **kw: object) -> object:
        result = real_milp(c, **kw)
        x = result.x.copy()
        x[0], x[1] = 0.0, 1.0  # account 0: candidate 1 ($999) in place of candidate 0 ($1,000)
        return type(result)(x=x, mip_dual_bound=result.mip_dual_bound, message=result.message)

    monkeypatch.setattr(alloc, "milp", within_gap)
    values = np.array([[1_000.0, 999.0], [500.0, 10.0]])
    budget = Resource("budget", 100.0, np.array([10.0, 10.0]))
    result = allocate(values, np.ones_like(values, dtype=bool), [budget], method="exact")
    assert result.choice.tolist() == [0, 0]
    assert result.total_value == 1_500.0
