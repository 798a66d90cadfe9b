"""The exact allocation at its time limit: no solution from HiGHS is no reason to fail a run.

Doing nothing everywhere is always feasible, but HiGHS may reach no solution within its time limit
on a large book (20,000 accounts: a run with ``--allocation exact`` exited 2, "bad input", saying
``use method='lagrangian'``). The Lagrangian then allocates, with ``exact`` as with ``auto``, and the
run says so in its notes and its summary. A time limit of 1e-9 s stops HiGHS before its presolve,
so these tests force the case without timing anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.decide.allocate import Resource, allocate
from nextmove.decide.policy import DecisionOptions
from nextmove.errors import ConfigError
from nextmove.sim import SimConfig, simulate, write_book

runner = CliRunner()


def _instance() -> tuple[np.ndarray, np.ndarray, list[Resource]]:
    """Owners with a few hours each and a team budget: small, so both methods solve it at once."""
    rng = np.random.default_rng(3)
    n, k = 80, 4
    values = rng.normal(40, 60, (n, k))
    eligible = rng.random((n, k)) < 0.8
    owners = np.arange(n) // 10
    hours = np.array([0.5, 1.0, 0.0, 2.0])
    resources = [Resource(f"owner{o}", 3.0, hours, np.flatnonzero(owners == o)) for o in np.unique(owners)]
    resources.append(Resource("budget", 500.0, np.array([0.0, 40.0, 25.0, 0.0])))
    return values, eligible, resources


def test_exact_without_a_solution_in_time_falls_back_to_the_lagrangian_and_says_why() -> None:
    values, eligible, resources = _instance()
    result = allocate(values, eligible, resources, method="exact", time_limit_s=1e-9)
    assert result.method == "lagrangian"
    assert result.fallback == "the exact solver (HiGHS) found no solution within its time limit of 1e-09 s"
    assert result.gap_to_bound is not None  # the Lagrangian's bound: how far from the best it can be
    lagrangian = allocate(values, eligible, resources, method="lagrangian")
    assert lagrangian.fallback is None
    assert np.array_equal(result.choice, lagrangian.choice)
    assert result.total_value > 0
    # Within every capacity.
    for r in resources:
        rows = np.flatnonzero(result.choice >= 0)
        if r.accounts is not None:
            rows = np.intersect1d(rows, r.accounts)
        assert r.per_candidate[result.choice[rows]].sum() <= r.limit + 1e-9


def test_exact_with_time_enough_keeps_its_solution_and_its_gap() -> None:
    values, eligible, resources = _instance()
    result = allocate(values, eligible, resources, method="exact", time_limit_s=60)
    assert result.method == "exact"
    assert result.fallback is None
    assert result.gap_to_bound is not None
    assert result.gap_to_bound <= 1e-3 + 1e-9


@pytest.mark.parametrize("limit", [0.0, -1.0, float("nan")])
def test_a_time_limit_not_above_zero_is_refused(limit: float) -> None:
    values, eligible, resources = _instance()
    with pytest.raises(ConfigError, match="time_limit_s must be a number of seconds > 0"):
        allocate(values, eligible, resources, method="exact", time_limit_s=limit)
    with pytest.raises(ConfigError, match="time_limit_s must be a number of seconds > 0"):
        DecisionOptions(time_limit_s=limit)


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exact-time-limit") / "book"
    write_book(simulate(SimConfig(accounts=120, months=9, seed=5)), folder)
    return folder


def test_run_with_exact_and_no_solution_in_time_succeeds_on_the_lagrangian(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", "--book", str(book_dir), "--out", str(out), "--no-store", "--jobs", "1", "--trees", "20"]
    result = runner.invoke(app, [*args, "--allocation", "exact", "--exact-time-limit", "1e-9"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "method='lagrangian'" not in text
    said = "note: the exact solver (HiGHS) found no solution within its time limit of 1e-09 s, so the Lagrangian"
    assert said in text
    assert "--exact-time-limit gives HiGHS longer" in text
    assert "Allocation: lagrangian" in text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    allocation = summary["allocation"]
    assert allocation["method"] == "lagrangian"
    assert allocation["fallback"].startswith("the exact solver (HiGHS) found no solution within its time limit")
    assert allocation["gap_to_bound"] is not None


def test_run_refuses_an_exact_time_limit_of_zero_in_the_cli_words(book_dir: Path, tmp_path: Path) -> None:
    args = ["run", "--book", str(book_dir), "--out", str(tmp_path / "out"), "--no-store"]
    result = runner.invoke(app, [*args, "--allocation", "exact", "--exact-time-limit", "0"])
    assert result.exit_code == 2, result.output
    assert "--exact-time-limit) must be a number of seconds > 0, got 0.0" in " ".join(result.output.split())
