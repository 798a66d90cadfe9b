"""Allocation under capacity: one candidate (or nothing) per account, maximising total value.

Exactly with SciPy's HiGHS mixed-integer solver where the size allows, and by dual prices
(Lagrangian relaxation, then per-group knapsacks, a greedy repair and local improvements) for
large books. Both respect every capacity; the Lagrangian also gives a proven upper bound, so the
distance to the best possible allocation is known even when the exact solver cannot run.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from nextmove.errors import ConfigError

Method = Literal["auto", "exact", "lagrangian"]
EXACT_MAX_VARIABLES = 10_000
"""``auto`` solves exactly up to this many (account, candidate) pairs with positive value (and, as ``exact``
does, falls back to the Lagrangian if the solver finds no solution within its time limit)."""

EXACT_MIP_REL_GAP = 1e-3
"""Relative optimality gap at which HiGHS stops; the local improvements after it take what is left in reach."""

REPAIR_ROUNDS = 20
"""At most this many rounds of upgrades, swaps and fills end every solve (they stop when nothing moves)."""

FIT_STEPS = 14
"""Bisection steps of the Lagrangian's search for the lowest global prices at which every group's knapsack fits."""

FIT_MIN_GAP = 0.01
"""That search runs only when the best allocation so far is further than this share below the groups' dual value.

At 0.2 % it ran on the 100,000-account bench (0.45 % from its bound), took 3 s of the allocation's 4 s and
found nothing better; the shortfalls it mends were 2–11 % from the bound."""

DP_MAX_UNITS = 400
"""Capacity resolution of the per-group knapsacks: a group's limit is split into at most this many units."""

_EPS = 1e-9


@dataclass(frozen=True)
class Resource:
    """A capacity shared by a set of accounts: ``Σ per_candidate[k]`` over the chosen pairs ≤ ``limit``.

    ``per_candidate[k]`` is how much candidate ``k`` uses (an action's effort hours, its cost, 1
    for a volume limit). ``accounts`` says which accounts draw on it: a boolean mask over the
    accounts, an array of account positions (cheaper for many small resources, such as one per
    owner in a book of a million accounts), or None for all of them (a team budget).

    Examples
    --------
    >>> Resource("owner:ana", 24.0, np.array([2.0, 0.0]), np.array([0, 3, 4])).limit
    24.0
    """

    name: str
    limit: float
    per_candidate: np.ndarray
    accounts: np.ndarray | None = None


@dataclass(frozen=True)
class Allocation:
    """The chosen candidate per account (−1 = nothing), its total value and how it was solved."""

    choice: np.ndarray
    total_value: float
    method: str
    usage: dict[str, float] = field(default_factory=dict)
    """Resource name → amount used."""
    prices: dict[str, float] = field(default_factory=dict)
    """Resource name → dual price per unit (Lagrangian), for the resources that bind."""
    upper_bound: float | None = None
    """A proven upper bound on the best total value, when the method gives one."""
    seconds: float = 0.0
    """Wall time of the solve."""
    fallback: str | None = None
    """Why the Lagrangian allocated when the exact solver was asked for (it found no solution within its time
    limit); None when the method asked for (or the one ``auto`` chose) solved it."""

    @property
    def gap_to_bound(self) -> float | None:
        """``(upper_bound − total_value) / upper_bound``: how far from the best possible, at most (None: no bound)."""
        if self.upper_bound is None or self.upper_bound <= 0:
            return None
        return max(0.0, (self.upper_bound - self.total_value) / self.upper_bound)


class _Problem:
    """The allocation problem in the shapes the solvers need.

    Global resources (every account) are dense rows ``wg`` (resources × candidates). Resources of
    a subset of accounts ("local": one owner's hours) are ``wl`` with a sparse membership matrix
    ``member`` (accounts × local resources). When every account draws on at most one local
    resource (the usual case: owners partition the book), ``group[i]`` is that resource (−1: none)
    and each group can be solved exactly as a knapsack.
    """

    def __init__(self, values: np.ndarray, eligible: np.ndarray, resources: Sequence[Resource]) -> None:
        n, k = values.shape
        self.n, self.k = n, k
        self.values = values
        self.resources = list(resources)
        self.is_global = np.array([r.accounts is None for r in resources], dtype=bool)
        self.g_idx = np.flatnonzero(self.is_global)
        self.l_idx = np.flatnonzero(~self.is_global)
        self.wg = self._weights(self.g_idx)
        self.wl = self._weights(self.l_idx)
        self.lg: np.ndarray = np.array([resources[int(j)].limit for j in self.g_idx], dtype=np.float64)
        self.ll: np.ndarray = np.array([resources[int(j)].limit for j in self.l_idx], dtype=np.float64)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for pos, j in enumerate(self.l_idx):
            members = _member_rows(resources[int(j)].accounts, n)
            rows.append(members)
            cols.append(np.full(members.size, pos, dtype=np.int64))
        r_all = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c_all = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        self.member = sparse.csr_matrix((np.ones(r_all.size), (r_all, c_all)), shape=(n, len(self.l_idx)))
        self.member.sum_duplicates()
        self.member.data[:] = 1.0
        self.member_t = self.member.T.tocsr()
        per_account = np.diff(self.member.indptr)
        self.partition = bool((per_account <= 1).all())
        self.group = np.full(n, -1, dtype=np.int64)
        if self.partition and self.member.nnz:
            has = per_account == 1
            self.group[has] = self.member.indices[self.member.indptr[:-1][has]]
        # A pair is usable when it is eligible, worth more than nothing and fits each of its resources alone.
        self.usable = eligible & np.isfinite(values) & (values > 0) & self.fits(self.lg, self.ll)
        self.scale = np.concatenate([np.maximum(self.lg, 1e-12), np.maximum(self.ll, 1e-12)])

    def _weights(self, idx: np.ndarray) -> np.ndarray:
        if idx.size == 0:
            return np.zeros((0, self.k))
        return np.vstack([np.asarray(self.resources[j].per_candidate, dtype=float) for j in idx])

    # ---- evaluation ------------------------------------------------------------------------------

    def value(self, choice: np.ndarray) -> float:
        """Total value of an allocation."""
        rows = np.flatnonzero(choice >= 0)
        return float(self.values[rows, choice[rows]].sum())

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The local memberships of accounts ``rows``: (position in ``rows``, local resource), sorted by position."""
        if self.partition:
            g = self.group[rows]
            pos = np.flatnonzero(g >= 0)
            return pos, g[pos]
        sub = self.member[rows].tocoo()
        return sub.row.astype(np.int64), sub.col.astype(np.int64)

    def usage(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Use of each global and each local resource by an allocation."""
        rows = np.flatnonzero(choice >= 0)
        picked = choice[rows]
        ug = self.wg[:, picked].sum(axis=1) if self.wg.size else np.zeros(0)
        if not self.l_idx.size:
            return ug, np.zeros(0)
        pos, col = self.entries(rows)
        ul = np.bincount(col, weights=self.wl[col, picked[pos]], minlength=self.l_idx.size)
        return ug, ul

    def fits(self, rem_g: np.ndarray, rem_l: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(accounts × candidates) True where the candidate alone fits what is left of the account's resources."""
        rows = np.arange(self.n) if rows is None else rows
        ok_g = (self.wg <= rem_g[:, None] + _EPS).all(axis=0) if self.wg.size else np.ones(self.k, dtype=bool)
        out = np.broadcast_to(ok_g, (rows.size, self.k)).copy()
        if self.l_idx.size:
            pos, col = self.entries(rows)
            too_big = self.wl[col] > rem_l[col][:, None] + _EPS
            out &= ~_any_per_row(too_big, pos, rows.size)
        return out

    def price(self, lam_g: np.ndarray, lam_l: np.ndarray) -> np.ndarray:
        """(accounts × candidates) the priced use of every pair: Σ price per unit × use."""
        pg = lam_g @ self.wg if self.wg.size else np.zeros(self.k)
        if not self.l_idx.size:
            return np.broadcast_to(pg, (self.n, self.k)).copy()
        if self.partition:
            local = lam_l[:, None] * self.wl
            out = np.where((self.group >= 0)[:, None], local[np.maximum(self.group, 0)], 0.0)
            return out + pg[None, :]
        priced: np.ndarray = np.asarray(self.member @ (lam_l[:, None] * self.wl)) + pg[None, :]
        return priced

    def report(self, choice: np.ndarray, method: str, started: float, **kw: object) -> Allocation:
        ug, ul = self.usage(choice)
        usage: dict[str, float] = {}
        for pos, j in enumerate(self.g_idx):
            usage[self.resources[j].name] = float(ug[pos])
        for pos, j in enumerate(self.l_idx):
            usage[self.resources[j].name] = float(ul[pos])
        usage = {r.name: usage.get(r.name, 0.0) for r in self.resources}
        return Allocation(
            choice,
            self.value(choice),
            method,
            usage,
            seconds=time.perf_counter() - started,
            **kw,  # type: ignore[arg-type]
        )


def _member_rows(accounts: np.ndarray | None, n: int) -> np.ndarray:
    arr = np.asarray(accounts)
    if arr.dtype == bool:
        return np.flatnonzero(arr).astype(np.int64)
    return np.unique(arr.astype(np.int64))


def _validate(values: np.ndarray, eligible: np.ndarray, resources: Sequence[Resource]) -> None:
    if values.ndim != 2:
        raise ConfigError(f"values must be a 2-D array (accounts × candidates), got shape {values.shape}")
    if eligible.shape != values.shape:
        raise ConfigError(f"eligible has shape {eligible.shape}, values {values.shape}: they must match")
    n = values.shape[0]
    for r in resources:
        if np.shape(r.per_candidate) != (values.shape[1],):
            raise ConfigError(f"resource {r.name!r}: per_candidate needs {values.shape[1]} entries")
        if r.accounts is not None:
            acc = np.asarray(r.accounts)
            if acc.dtype == bool:
                if acc.shape != (n,):
                    raise ConfigError(f"resource {r.name!r}: accounts mask needs {n} entries")
            elif (
                acc.ndim != 1
                or not np.issubdtype(acc.dtype, np.integer)
                or (acc.size and not 0 <= acc.min() <= acc.max() < n)
            ):
                raise ConfigError(
                    f"resource {r.name!r}: accounts must be a boolean mask or positions in [0, {n}), got {acc.dtype} "
                    f"of shape {acc.shape}"
                )
        if r.limit < 0 or not np.isfinite(r.limit):
            raise ConfigError(f"resource {r.name!r}: limit must be a finite number ≥ 0, got {r.limit}")
        if (np.asarray(r.per_candidate) < 0).any() or not np.isfinite(np.asarray(r.per_candidate, dtype=float)).all():
            raise ConfigError(f"resource {r.name!r}: usage must be finite and ≥ 0")
    names = [r.name for r in resources]
    if len(names) != len(set(names)):
        raise ConfigError("resource names must be unique")


def allocate(
    values: np.ndarray,
    eligible: np.ndarray,
    resources: Sequence[Resource],
    *,
    method: Method = "auto",
    time_limit_s: float = 30.0,
    iterations: int | None = None,
) -> Allocation:
    """Choose at most one candidate per account to maximise total value within every capacity.

    Parameters
    ----------
    values
        Dollar value of each (account, candidate); doing nothing is worth 0 and is implicit.
    eligible
        Boolean mask of allowed pairs; an ineligible pair is never chosen.
    resources
        Capacities (owner hours, team budgets, per-action volume limits …).
    method
        ``exact`` (HiGHS MILP), ``lagrangian`` (dual prices, per-group knapsacks, greedy repair
        and local improvement), or ``auto`` (exact up to ``EXACT_MAX_VARIABLES`` positive-value pairs).
    time_limit_s
        Time limit of the exact solver; it returns its best solution so far, and when it has none
        (doing nothing everywhere is always feasible, but HiGHS may not reach any solution on a large
        book), the Lagrangian allocates instead and :attr:`Allocation.fallback` says so.
    iterations
        Subgradient iterations of the Lagrangian (default: 300, down to 40 for large books).

    Returns
    -------
    Allocation
        ``choice[i]`` is the chosen candidate index of account ``i``, or −1 for nothing.

    Raises
    ------
    ConfigError
        If the shapes disagree, a limit or a usage is negative, ``method`` is unknown or ``time_limit_s`` is not > 0.

    Examples
    --------
    >>> v = np.array([[5.0, 3.0], [4.0, 1.0], [2.0, -1.0]])
    >>> hours = Resource("hours", 2.0, np.array([1.0, 1.0]))
    >>> allocate(v, np.ones_like(v, dtype=bool), [hours], method="exact").choice.tolist()
    [0, 0, -1]
    >>> allocate(v, np.ones_like(v, dtype=bool), [hours], method="lagrangian").choice.tolist()
    [0, 0, -1]
    """
    started = time.perf_counter()
    values = np.asarray(values, dtype=float)
    eligible = np.asarray(eligible, dtype=bool)
    _validate(values, eligible, resources)
    if method not in ("auto", "exact", "lagrangian"):
        raise ConfigError(f"method must be 'auto', 'exact' or 'lagrangian', got {method!r}")
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, int | float) or not time_limit_s > 0:
        raise ConfigError(f"time_limit_s must be a number of seconds > 0, got {time_limit_s!r}")
    problem = _Problem(values, eligible, resources)
    n_pairs = int(problem.usable.sum())
    if method == "auto":
        method = "exact" if n_pairs <= EXACT_MAX_VARIABLES else "lagrangian"
    if n_pairs == 0:
        return problem.report(np.full(values.shape[0], -1), method, started, upper_bound=0.0)
    why = None
    if method == "exact":
        try:
            return _exact(problem, time_limit_s, started)
        except _NoSolutionError as exc:
            # Doing nothing everywhere is feasible, but HiGHS reached no solution: price the capacities instead.
            why = str(exc)
    if iterations is None:
        iterations = int(min(300, max(40, 1e8 // max(values.size, 1))))
    result = _lagrangian(problem, iterations, started)
    return result if why is None else replace(result, fallback=why)


# ---- exact ---------------------------------------------------------------------------------------


class _NoSolutionError(Exception):
    """HiGHS stopped (its time limit) without any solution: :func:`allocate` falls back to the Lagrangian."""


def _exact(problem: _Problem, time_limit_s: float, started: float) -> Allocation:
    rows, cols = np.nonzero(problem.usable)
    n_var = rows.size
    n_acc = problem.n
    one_each = sparse.csr_matrix((np.ones(n_var), (rows, np.arange(n_var))), shape=(n_acc, n_var))
    blocks: list[sparse.csr_matrix] = [one_each]
    ub: list[np.ndarray] = [np.ones(n_acc)]
    if problem.wg.size:
        blocks.append(sparse.csr_matrix(problem.wg[:, cols]))
        ub.append(problem.lg)
    if problem.l_idx.size:
        # usage[j, t] = wl[j, cols[t]] if account rows[t] draws on local resource j.
        member = problem.member_t[:, rows]
        blocks.append(member.multiply(problem.wl[:, cols]).tocsr())
        ub.append(problem.ll)
    a = sparse.vstack(blocks).tocsr()
    with _stdout_to_stderr():
        result = milp(
            -problem.values[rows, cols],
            constraints=LinearConstraint(a, -np.inf, np.concatenate(ub)),
            integrality=np.ones(n_var),
            bounds=Bounds(0, 1),
            options={"time_limit": time_limit_s, "mip_rel_gap": EXACT_MIP_REL_GAP, "disp": False},
        )
    if result.x is None:
        solver = "the exact solver (HiGHS)"
        if result.status == 1:
            raise _NoSolutionError(f"{solver} found no solution within its time limit of {time_limit_s:g} s")
        raise _NoSolutionError(f"{solver} stopped without a solution ({result.message})")
    x = result.x > 0.5
    choice = np.full(n_acc, -1)
    choice[rows[x]] = cols[x]
    # HiGHS stops within its relative gap (and its time limit): a pass of upgrades, swaps and fills
    # takes the value it left where a more valuable option fits what every resource has left, so no
    # account is left with a better option that capacity would allow.
    choice = _improve(problem, choice, rounds=REPAIR_ROUNDS)
    bound = getattr(result, "mip_dual_bound", None)
    return problem.report(choice, "exact", started, upper_bound=None if bound is None else -float(bound))


_REDIRECT_LOCK = threading.Lock()


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what is written to file descriptor 1 to descriptor 2 for the duration.

    SciPy's HiGHS prints ``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();``
    to the process's standard output on some instances, whatever ``disp`` says (a stray debug print,
    ERGO-Code/HiGHS#2783), which would corrupt a command's JSON on stdout. One redirect at a time
    (a lock), so concurrent solves cannot restore each other's descriptors in the wrong order.
    """
    with _REDIRECT_LOCK:
        if sys.stdout is not None:
            sys.stdout.flush()
        try:
            saved: int | None = os.dup(1)
            os.dup2(2, 1)
        except OSError:  # no descriptor 1 or 2 (a detached process): nothing to guard
            saved = None
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 1)
                os.close(saved)


# ---- Lagrangian ----------------------------------------------------------------------------------


SAMPLE_ACCOUNTS = 40_000
"""Above twice this many accounts (with owner-like groups), global prices are learned on a sample of whole groups."""


def _lagrangian(problem: _Problem, iterations: int, started: float, knapsack_rounds: int | None = None) -> Allocation:
    """Subgradient ascent on the dual prices, then the best of several feasible allocations built from them.

    Constraints are normalised by their limits so one step size serves owner hours and dollar
    budgets alike (Polyak steps toward the best feasible value found so far). The feasible
    allocations: a greedy repair in order of priced value, and (when accounts fall in
    single-resource groups, such as owners) an exact knapsack per group at global prices refined
    for it, made feasible for the global resources; each is then filled and improved by upgrades
    and swaps. The best dual value is a proven upper bound.
    """
    if problem.partition and problem.l_idx.size and problem.n > 2 * SAMPLE_ACCOUNTS:
        return _lagrangian_sampled(problem, iterations, started)
    n_g = problem.g_idx.size
    lam = np.zeros(n_g + problem.l_idx.size)  # price per unit of normalised usage (usage / limit)
    idx = np.arange(problem.n)
    masked = np.where(problem.usable, problem.values, -np.inf)
    best_choice = _improve(problem, _greedy(problem, problem.values))
    best_value = problem.value(best_choice)
    best_bound, best_lam = np.inf, lam.copy()
    theta, stall = 2.0, 0
    for it in range(iterations):
        per_unit = lam / problem.scale
        reduced = masked - problem.price(per_unit[:n_g], per_unit[n_g:])
        pick = reduced.argmax(axis=1)
        gain = reduced[idx, pick]
        take = gain > 0
        bound = float(gain[take].sum() + lam.sum())
        if bound < best_bound - 1e-9:
            best_bound, best_lam, stall = bound, lam.copy(), 0
        else:
            stall += 1
            if stall >= 10:
                theta, stall = theta / 2, 0
        ug, ul = problem.usage(np.where(take, pick, -1))
        subgrad = np.concatenate([ug, ul]) / problem.scale - 1.0
        subgrad[(lam <= 0) & (subgrad < 0)] = 0.0
        norm = float(subgrad @ subgrad)
        if it % 25 == 24:
            priced_now = problem.values - problem.price(per_unit[:n_g], per_unit[n_g:])
            candidate = _improve(problem, _greedy(problem, priced_now))
            value = problem.value(candidate)
            if value > best_value:
                best_value, best_choice = value, candidate
        if norm < 1e-12 or best_bound - best_value <= 1e-4 * max(abs(best_bound), 1.0) or theta < 1e-3:
            break
        lam = np.maximum(0.0, lam + theta * max(bound - best_value, 1e-9 * abs(bound)) / norm * subgrad)
    per_unit = best_lam / problem.scale
    priced = problem.values - problem.price(per_unit[:n_g], per_unit[n_g:])
    candidate = _improve(problem, _greedy(problem, priced))
    if problem.value(candidate) > best_value:
        best_value, best_choice = problem.value(candidate), candidate
    price_g = per_unit[:n_g]
    if problem.partition and problem.l_idx.size:
        rounds = knapsack_rounds or max(3, min(40, int(6e6 // max(problem.n * problem.k, 1))))
        candidate, price_g, dual = _knapsack_search(problem, priced, price_g, rounds)
        best_bound = min(best_bound, dual)
        if problem.value(candidate) > best_value:
            best_value, best_choice = problem.value(candidate), candidate
    # Until nothing moves: no account is left with a more valuable option that fits what is left.
    best_choice = _improve(problem, best_choice, rounds=REPAIR_ROUNDS)
    prices = _named_prices(problem, price_g, per_unit[n_g:])
    bound_value = best_bound if math.isfinite(best_bound) else None
    return problem.report(best_choice, "lagrangian", started, prices=prices, upper_bound=bound_value)


def _named_prices(problem: _Problem, price_g: np.ndarray, price_l: np.ndarray) -> dict[str, float]:
    names = [problem.resources[j].name for j in (*problem.g_idx, *problem.l_idx)]
    per_unit = np.concatenate([price_g, price_l])
    return {name: float(p) for name, p in zip(names, per_unit, strict=True) if p > 0}


def _lagrangian_sampled(problem: _Problem, iterations: int, started: float) -> Allocation:
    """For very large books: global prices learned on a sample of whole groups, then exact group knapsacks on all.

    The sample keeps whole groups (owners) and scales the global limits by its share of the
    accounts; its prices for the global resources then price the full book, whose groups are each
    solved exactly, made feasible, filled and improved. The bound is the partial Lagrangian at
    those prices (valid when the knapsack grid is exact).
    """
    rng = np.random.default_rng(0)
    sizes = np.bincount(problem.group[problem.group >= 0], minlength=problem.l_idx.size)
    order = rng.permutation(problem.l_idx.size)
    share_target = SAMPLE_ACCOUNTS / problem.n
    taken = order[: int(np.searchsorted(np.cumsum(sizes[order]), SAMPLE_ACCOUNTS)) + 1]
    in_sample = np.zeros(problem.l_idx.size, dtype=bool)
    in_sample[taken] = True
    ungrouped = np.flatnonzero(problem.group < 0)
    extra = ungrouped[rng.random(ungrouped.size) < share_target]
    grouped = np.flatnonzero((problem.group >= 0) & in_sample[np.maximum(problem.group, 0)])
    rows = np.sort(np.concatenate([grouped, extra]))
    share = rows.size / problem.n
    position = np.full(problem.n, -1)
    position[rows] = np.arange(rows.size)
    resources: list[Resource] = []
    for pos, j in enumerate(problem.g_idx):
        r = problem.resources[j]
        resources.append(Resource(r.name, problem.lg[pos] * share, problem.wg[pos]))
    for g in taken:
        members = position[(problem.group == g)]
        members = members[members >= 0]
        r = problem.resources[problem.l_idx[g]]
        resources.append(Resource(r.name, problem.ll[g], problem.wl[g], members))
    eligible = problem.usable[rows]
    sample_problem = _Problem(problem.values[rows], eligible, resources)
    sample = _lagrangian(sample_problem, min(iterations, 100), time.perf_counter(), knapsack_rounds=5)
    price_g = np.array([sample.prices.get(problem.resources[j].name, 0.0) for j in problem.g_idx])
    priced = problem.values - (price_g @ problem.wg if problem.wg.size else 0.0)
    choice, price_g, dual = _knapsack_search(problem, priced, price_g, rounds=2)
    choice = _improve(problem, choice, rounds=REPAIR_ROUNDS)
    return problem.report(
        choice,
        "lagrangian",
        started,
        prices=_named_prices(problem, price_g, np.zeros(problem.l_idx.size)),
        upper_bound=dual if math.isfinite(dual) else None,
    )


def _knapsack_search(
    problem: _Problem, priced: np.ndarray, price_g: np.ndarray, rounds: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact group knapsacks at global prices refined by subgradient steps on the global resources alone.

    With the groups solved exactly, only the few global resources (team budgets, volume limits)
    need prices, and their use responds to them far more sharply than in the full relaxation.
    Each round's knapsacks are made feasible for the global resources, filled and improved.

    Returns
    -------
    (choice, prices, bound)
        The best allocation found, the global prices per unit it came from, and the best
        partial-Lagrangian bound (``inf`` when the knapsack grid is not exact, so not a bound).
    """
    scale = np.maximum(problem.lg, 1e-12)
    lam = price_g * scale  # per normalised unit
    exact_grid = _unit(problem.wl, problem.ll)[1]
    best_choice, best_value, best_prices = np.full(problem.n, -1), -np.inf, price_g
    best_dual, dual_prices, theta = np.inf, price_g, 1.0
    for _ in range(max(rounds, 1)):
        per_unit = lam / scale
        reduced = problem.values - (per_unit @ problem.wg if problem.wg.size else 0.0)
        start = _group_knapsacks(problem, np.where(problem.usable & (reduced > 0), reduced, -np.inf))
        rows = np.flatnonzero(start >= 0)
        dual = float(reduced[rows, start[rows]].sum() + lam.sum())
        if dual < best_dual - 1e-9:
            best_dual, dual_prices = dual, per_unit
        else:
            theta /= 2
        candidate = _improve(problem, _greedy(problem, priced, start=_enforce_global(problem, start)))
        value = problem.value(candidate)
        if value > best_value:
            best_value, best_choice, best_prices = value, candidate, per_unit
        if not problem.wg.size:
            break
        ug, _ = problem.usage(start)
        subgrad = ug / scale - 1.0
        subgrad[(lam <= 0) & (subgrad < 0)] = 0.0
        norm = float(subgrad @ subgrad)
        if norm < 1e-12 or theta < 1e-3:
            break
        lam = np.maximum(0.0, lam + theta * max(dual - best_value, 1e-9 * abs(dual)) / norm * subgrad)
    if problem.wg.size and best_dual - best_value > FIT_MIN_GAP * abs(best_dual):
        # Dropping single picks to fit the global resources (above) can strand a group's hours: two
        # cheap picks of an owner cut to one leave room that no other play of the owner fits. Knapsacks
        # at global prices raised just enough to fit pack each group whole for what it can afford.
        start, per_unit = _fit_by_prices(problem, dual_prices)
        candidate = _improve(problem, _greedy(problem, priced, start=start))
        value = problem.value(candidate)
        if value > best_value:
            best_value, best_choice, best_prices = value, candidate, per_unit
    return best_choice, best_prices, best_dual if exact_grid else np.inf


def _fit_by_prices(problem: _Problem, price_g: np.ndarray, steps: int = FIT_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Exact group knapsacks at the lowest raise of the global prices (found by bisection) whose picks all fit.

    The prices of the global resources the knapsacks overuse rise together along a line towards
    the price at which no pair using them is worth anything (so the far end always fits them);
    when that pushes the picks onto another global resource until it is overused, that one joins
    them. Returns the picks and the prices per unit they were solved at.
    """
    wg = problem.wg
    usable = problem.usable

    def solve(prices: np.ndarray) -> np.ndarray:
        reduced = problem.values - prices @ wg
        return _group_knapsacks(problem, np.where(usable & (reduced > 0), reduced, -np.inf))

    def over(choice: np.ndarray) -> np.ndarray:
        return np.asarray(problem.usage(choice)[0] > problem.lg + _EPS)

    low = np.asarray(price_g, dtype=float).copy()
    choice = solve(low)
    raising = over(choice)
    if not raising.any() and (low > 0).any():
        # The dual's best prices often sit just above a price at which many groups switch at once, and
        # leave capacity unused: the lowest fraction of them that still fits.
        lo, hi = 0.0, 1.0
        for _ in range(steps):
            mid = (lo + hi) / 2
            trial = solve(mid * low)
            if over(trial).any():
                lo = mid
            else:
                hi, choice = mid, trial
        return choice, hi * low
    # Per resource, the price per unit at which every pair that uses it is worth nothing.
    best_value = np.where(usable, problem.values, 0.0).max(axis=0)  # per candidate
    ratio = np.where(wg > 0, best_value[None, :] / np.maximum(wg, 1e-300), 0.0)
    ceiling = np.maximum(ratio.max(axis=1), low) * (1 + 1e-9) + 1e-12
    for _ in range(problem.g_idx.size):
        if not raising.any():
            break
        direction = np.where(raising, ceiling - low, 0.0)
        lo, hi = 0.0, 1.0
        best = solve(low + direction)
        for _ in range(steps):
            mid = (lo + hi) / 2
            trial = solve(low + mid * direction)
            if over(trial).any():
                lo = mid
            else:
                hi, best = mid, trial
        low = low + hi * direction
        choice = best
        # At the far end the raised resources fit; any other one overused now joins them.
        raising |= over(choice)
    return choice, low


def _remaining(problem: _Problem, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ug, ul = problem.usage(choice)
    return problem.lg - ug, problem.ll - ul


def _greedy(
    problem: _Problem, priority: np.ndarray, start: np.ndarray | None = None, max_rounds: int = 50
) -> np.ndarray:
    """Accounts without a pick take their best fitting candidate by ``priority``, best accounts first.

    Vectorised in rounds: every free account proposes its best candidate that fits what is
    left; proposals are accepted in order of priority while the running use of every resource
    stays within what is left (a rejected proposal still counts, so the accepted ones always
    fit); the rejected try again next round with what is then left.
    """
    choice = np.full(problem.n, -1) if start is None else start.copy()
    rem_g, rem_l = _remaining(problem, choice)
    active = np.flatnonzero((choice < 0) & (problem.usable & (priority > 0)).any(axis=1))
    for _ in range(max_rounds):
        if active.size == 0:
            break
        ok = problem.fits(rem_g, rem_l, active) & problem.usable[active] & (priority[active] > 0)
        score = np.where(ok, priority[active], -np.inf)
        pick = score.argmax(axis=1)
        gain = score[np.arange(active.size), pick]
        proposing = np.isfinite(gain)
        active, pick, gain = active[proposing], pick[proposing], gain[proposing]
        if active.size == 0:
            break
        order = np.argsort(-gain, kind="stable")
        accepted = _accept_prefix(problem, active[order], pick[order], rem_g, rem_l)
        rows, picks = active[order][accepted], pick[order][accepted]
        choice[rows] = picks
        rem_g, rem_l = _remaining(problem, choice)
        active = active[order][~accepted]
    return choice


def _accept_prefix(
    problem: _Problem,
    rows: np.ndarray,
    delta_cols: np.ndarray,
    rem_g: np.ndarray,
    rem_l: np.ndarray,
    from_cols: np.ndarray | None = None,
) -> np.ndarray:
    """Which of the ordered moves (account ``rows[t]`` to candidate ``delta_cols[t]``) fit, counting all earlier ones.

    With ``from_cols`` the move releases the account's current candidate; only increases of use
    are counted (decreases are not credited, which keeps the accepted set feasible in any order).
    """
    m = rows.size
    ok = np.ones(m, dtype=bool)
    if problem.wg.size:
        need = problem.wg[:, delta_cols]
        if from_cols is not None:
            need = np.maximum(need - np.where(from_cols >= 0, problem.wg[:, np.maximum(from_cols, 0)], 0.0), 0.0)
        ok &= (np.cumsum(need, axis=1) <= rem_g[:, None] + _EPS).all(axis=0)
    if problem.l_idx.size:
        pos, col = problem.entries(rows)
        need_l = problem.wl[col, delta_cols[pos]]
        if from_cols is not None:
            prev = from_cols[pos]
            need_l = np.maximum(need_l - np.where(prev >= 0, problem.wl[col, np.maximum(prev, 0)], 0.0), 0.0)
        order = np.lexsort((pos, col))
        col_sorted, need_sorted = col[order], need_l[order]
        cum = np.cumsum(need_sorted)
        starts = np.flatnonzero(np.r_[True, col_sorted[1:] != col_sorted[:-1]])
        seg_start = np.repeat(starts, np.diff(np.r_[starts, col_sorted.size]))
        before = np.where(seg_start > 0, cum[np.maximum(seg_start - 1, 0)], 0.0)
        running = cum - before
        bad = running > rem_l[col_sorted] + _EPS
        bad_rows = np.zeros(m, dtype=bool)
        bad_rows[pos[order][bad]] = True
        ok &= ~bad_rows
    return ok


def _improve(problem: _Problem, choice: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Upgrades and swaps that raise the total value and keep every capacity.

    Upgrades: an account moves to a more valuable candidate when the extra use fits what is
    left. Swaps (within single-resource groups): an account without a pick takes the place of a
    less valuable pick in its group when dropping that pick frees enough room. Then the free
    accounts fill what is left, by value.
    """
    choice = choice.copy()
    values = np.where(problem.usable, problem.values, -np.inf)
    for _ in range(rounds):
        before = problem.value(choice)
        choice = _upgrade(problem, choice, values)
        if problem.partition and problem.l_idx.size:
            choice = _swap(problem, choice, values)
        choice = _greedy(problem, problem.values, start=choice)
        if problem.value(choice) <= before + 1e-9:
            break
    return choice


def _upgrade(problem: _Problem, choice: np.ndarray, values: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(choice >= 0)
    if rows.size == 0:
        return choice
    current = values[rows, choice[rows]]
    better = values[rows] > current[:, None] + 1e-9
    rows_b = np.flatnonzero(better.any(axis=1))
    if rows_b.size == 0:
        return choice
    rows = rows[rows_b]
    rem_g, rem_l = _remaining(problem, choice)
    # Room for each candidate: what is left plus what the account's current pick releases.
    cur = choice[rows]
    ok = np.ones((rows.size, problem.k), dtype=bool)
    if problem.wg.size:
        room_g = rem_g[:, None] + problem.wg[:, cur]  # resources × rows
        ok &= (problem.wg[:, None, :] <= room_g[:, :, None] + _EPS).all(axis=0)
    if problem.l_idx.size:
        pos, col = problem.entries(rows)
        room = rem_l[col] + problem.wl[col, cur[pos]]
        too_big = problem.wl[col] > room[:, None] + _EPS
        ok &= ~_any_per_row(too_big, pos, rows.size)
    score = np.where(ok & better[rows_b], values[rows], -np.inf)
    pick = score.argmax(axis=1)
    gain = score[np.arange(rows.size), pick] - values[rows, cur]
    moving = np.isfinite(gain) & (gain > 0)
    rows, pick, gain, cur = rows[moving], pick[moving], gain[moving], cur[moving]
    order = np.argsort(-gain, kind="stable")
    accepted = _accept_prefix(problem, rows[order], pick[order], rem_g, rem_l, from_cols=cur[order])
    choice[rows[order][accepted]] = pick[order][accepted]
    return choice


def _any_per_row(flags: np.ndarray, row_of: np.ndarray, n_rows: int) -> np.ndarray:
    """(rows × candidates) OR of ``flags`` over the entries of each row (entries sorted by row)."""
    out = np.zeros((n_rows, flags.shape[1]), dtype=bool)
    counts = np.bincount(row_of, minlength=n_rows)
    has = np.flatnonzero(counts)
    if has.size:
        starts = np.r_[0, np.cumsum(counts)[:-1]][has]
        out[has] = np.logical_or.reduceat(flags, starts, axis=0)
    return out


def _swap(problem: _Problem, choice: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Within each group, a free account replaces the group's least valuable pick when that is worth more.

    One swap per group per call, vectorised over groups; global resources must still fit.
    """
    group = problem.group
    best_free = np.where(choice < 0, values.max(axis=1), -np.inf)
    free_pick = np.where(choice < 0, values.argmax(axis=1), -1)
    picked_value = np.where(choice >= 0, values[np.arange(problem.n), np.maximum(choice, 0)], np.inf)
    in_group = group >= 0
    n_groups = problem.l_idx.size
    # The most valuable free account and the least valuable pick of each group.
    cand_free = np.flatnonzero(in_group & np.isfinite(best_free))
    cand_pick = np.flatnonzero(in_group & (choice >= 0))
    if cand_free.size == 0 or cand_pick.size == 0:
        return choice
    top_free = _argbest(group[cand_free], best_free[cand_free], n_groups, largest=True)
    low_pick = _argbest(group[cand_pick], picked_value[cand_pick], n_groups, largest=False)
    gs = np.flatnonzero((top_free >= 0) & (low_pick >= 0))
    if gs.size == 0:
        return choice
    i_in = cand_free[top_free[gs]]
    i_out = cand_pick[low_pick[gs]]
    gain = best_free[i_in] - picked_value[i_out]
    keep = gain > 1e-9
    gs, i_in, i_out, gain = gs[keep], i_in[keep], i_out[keep], gain[keep]
    if gs.size == 0:
        return choice
    rem_g, rem_l = _remaining(problem, choice)
    k_in, k_out = free_pick[i_in], choice[i_out]
    fits_local = problem.wl[gs, k_in] <= rem_l[gs] + problem.wl[gs, k_out] + _EPS
    fits_alone = (
        (problem.wg[:, k_in] <= rem_g[:, None] + problem.wg[:, k_out] + _EPS).all(axis=0)
        if problem.wg.size
        else np.ones(gs.size, dtype=bool)
    )
    ok = fits_local & fits_alone
    gs, i_in, i_out, k_in, k_out, gain = gs[ok], i_in[ok], i_out[ok], k_in[ok], k_out[ok], gain[ok]
    if gs.size == 0:
        return choice
    order = np.argsort(-gain, kind="stable")
    ok_g: np.ndarray = np.ones(gs.size, dtype=bool)
    if problem.wg.size:
        need = np.maximum(problem.wg[:, k_in[order]] - problem.wg[:, k_out[order]], 0.0)
        ok_g = np.asarray((np.cumsum(need, axis=1) <= rem_g[:, None] + _EPS).all(axis=0))
    chosen = order[ok_g]
    choice[i_out[chosen]] = -1
    choice[i_in[chosen]] = k_in[chosen]
    return choice


def _argbest(groups: np.ndarray, score: np.ndarray, n_groups: int, *, largest: bool) -> np.ndarray:
    """Per group, the position (in ``groups``) of its largest (or smallest) score; −1 for empty groups."""
    order = np.lexsort((-score if largest else score, groups))
    g_sorted = groups[order]
    first = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
    out = np.full(n_groups, -1)
    out[g_sorted[first]] = order[first]
    return out


def _enforce_global(problem: _Problem, choice: np.ndarray) -> np.ndarray:
    """Drop picks, least value per unit of global use first, until every global resource fits."""
    if not problem.wg.size:
        return choice
    choice = choice.copy()
    for _ in range(problem.g_idx.size + 1):
        ug, _ = problem.usage(choice)
        over = ug > problem.lg + _EPS
        if not over.any():
            break
        rows = np.flatnonzero(choice >= 0)
        use = problem.wg[over][:, choice[rows]] / np.maximum(problem.lg[over], 1e-12)[:, None]
        heavy = use.sum(axis=0)
        users = heavy > 0
        rows, heavy = rows[users], heavy[users]
        density = problem.values[rows, choice[rows]] / heavy
        order = np.argsort(density, kind="stable")
        excess = (ug - problem.lg)[over]
        freed = np.cumsum(problem.wg[over][:, choice[rows[order]]], axis=1)
        # Drop the shortest prefix that frees the excess of every over-used resource.
        enough = (freed >= excess[:, None] - _EPS).all(axis=0)
        cut = int(np.argmax(enough)) + 1 if enough.any() else order.size
        choice[rows[order[:cut]]] = -1
    return choice


def _unit(weights: np.ndarray, limits: np.ndarray) -> tuple[float, bool]:
    """The knapsack unit, and whether every weight lies on its grid (then the knapsacks are exact).

    The finest of a few round grids that every weight lies on, coarsened so that no limit spans
    more than ``DP_MAX_UNITS`` units; without such a grid, ``DP_MAX_UNITS`` units of the largest limit.
    """
    top = float(limits.max()) if limits.size else 0.0
    positive = weights[weights > 0]
    coarsest = max(top / DP_MAX_UNITS, 1e-12)
    for unit in (1.0, 0.5, 0.25, 0.125, 0.1, 0.05, 0.025, 0.01):
        if positive.size == 0 or np.allclose(positive / unit, np.round(positive / unit), atol=1e-6):
            if unit >= coarsest:
                return unit, True
            break
    return max(coarsest, float(positive.min()) / 8 if positive.size else 1.0), False


def _group_knapsacks(problem: _Problem, values: np.ndarray) -> np.ndarray:
    """Exact multiple-choice knapsack of every group (one local resource each), vectorised over groups.

    ``values`` (accounts × candidates) is −inf where a pair may not be chosen. Weights are put on
    a grid of units and rounded *up* to it, so the result always fits. Accounts in no group take
    their best positive candidate.
    """
    n_groups = problem.l_idx.size
    choice = np.full(problem.n, -1)
    group = problem.group
    free = np.flatnonzero(group < 0)
    if free.size:
        pick = values[free].argmax(axis=1)
        choice[free] = np.where(np.isfinite(values[free, pick]), pick, -1)
    members = np.flatnonzero(group >= 0)
    if members.size == 0:
        return choice
    order = members[np.argsort(group[members], kind="stable")]
    g_of = group[order]
    starts = np.searchsorted(g_of, np.arange(n_groups))
    pos = np.arange(order.size) - starts[g_of]
    depth = int(pos.max()) + 1
    slots = np.full((depth, n_groups), -1, dtype=np.int64)
    slots[pos, g_of] = order

    unit = _unit(problem.wl, problem.ll)[0]
    w_units = np.ceil(problem.wl / unit - 1e-9).astype(np.int64)  # groups × candidates
    cap = np.floor(problem.ll / unit + 1e-9).astype(np.int64)
    width = int(cap.max()) + 1
    uniform = bool((w_units == w_units[:1]).all()) if n_groups else True
    # With the same weights in every group, candidates of equal weight collapse into one class.
    if uniform:
        classes, class_of = np.unique(w_units[0], return_inverse=True)
    else:
        classes, class_of = np.arange(problem.k), np.arange(problem.k)
    n_class = classes.size
    best = np.zeros((n_groups, width))
    picks = np.full((depth, n_groups, width), -1, dtype=np.int16)
    best_k = np.full((depth, n_groups, n_class), -1, dtype=np.int16)
    grid = np.arange(width)
    g_rows = np.arange(n_groups)
    for p in range(depth):
        acc = slots[p]
        has = acc >= 0
        v = np.full((n_groups, problem.k), -np.inf)
        v[has] = values[acc[has]]
        # Best candidate of each class (by value) for each group's account at this position.
        class_v = np.full((n_groups, n_class), -np.inf)
        class_k = np.full((n_groups, n_class), -1, dtype=np.int16)
        for c in range(n_class):
            ks = np.flatnonzero(class_of == c)
            sub = v[:, ks]
            arg = sub.argmax(axis=1)
            class_v[:, c] = sub[g_rows, arg]
            class_k[:, c] = ks[arg]
        best_k[p] = class_k
        new = best.copy()
        pick = np.full((n_groups, width), -1, dtype=np.int16)
        for c in range(n_class):
            vc = class_v[:, c]
            live = np.isfinite(vc)
            if not live.any():
                continue
            if uniform:
                w = int(classes[c])
                if w >= width:
                    continue
                cand = np.full((n_groups, width), -np.inf)
                cand[:, w:] = best[:, : width - w] + vc[:, None]
            else:
                src = grid[None, :] - w_units[:, c][:, None]
                cand = np.where(src >= 0, best[g_rows[:, None], np.maximum(src, 0)], -np.inf) + vc[:, None]
            better = cand > new + 1e-12
            new = np.where(better, cand, new)
            pick[better] = c
        best = new
        picks[p] = pick
    c_left = cap.copy()
    for p in range(depth - 1, -1, -1):
        cls = picks[p, g_rows, c_left]
        chosen = cls >= 0
        acc = slots[p]
        k = best_k[p, g_rows, np.maximum(cls, 0)]
        take = chosen & (acc >= 0)
        choice[acc[take]] = k[take]
        w = w_units[g_rows, np.maximum(k, 0)]
        c_left = np.where(take, c_left - w, c_left)
    return choice
