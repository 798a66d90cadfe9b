"""Cross-fitting helpers shared by the propensity and effect models: folds by account and LightGBM settings."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.errors import ConfigError

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def account_folds(account_ids: pl.Series | Sequence[str], n_folds: int, random_state: int) -> I64:
    """The cross-fitting fold of every row, by account: all rows of an account share one fold.

    Accounts are sorted, shuffled with ``random_state`` and dealt round-robin, so folds have
    (nearly) equal numbers of accounts and the same accounts and seed always give the same folds.

    Parameters
    ----------
    account_ids
        The account of every row.
    n_folds
        Number of folds (at least 2).
    random_state
        Seed of the shuffle.

    Returns
    -------
    numpy.ndarray
        The fold (``0 … n_folds - 1``) of every row.

    Raises
    ------
    ConfigError
        If ``n_folds`` is below 2 or there are fewer accounts than folds.

    Examples
    --------
    >>> folds = account_folds(["a", "b", "a", "c", "d"], 2, 0)
    >>> bool(folds[0] == folds[2]), sorted(set(folds.tolist()))
    (True, [0, 1])
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds must be a whole number of at least 2, got {n_folds!r}")
    ids = pl.Series("account_id", account_ids, dtype=pl.String)
    accounts = ids.unique().sort()
    if accounts.len() < n_folds:
        raise ConfigError(
            f"cross-fitting in {n_folds} folds needs at least {n_folds} accounts with decisions in the history; "
            f"it has {accounts.len()}: add history, or fit with fewer folds (n_folds; --folds where a command has it)"
        )
    order = np.random.default_rng(random_state).permutation(accounts.len())
    fold_of = np.empty(accounts.len(), dtype=np.int64)
    fold_of[order] = np.arange(accounts.len()) % n_folds
    table = pl.DataFrame({"account_id": accounts, "_fold": fold_of})
    joined = pl.DataFrame({"account_id": ids}).join(table, on="account_id", how="left", maintain_order="left")
    out: I64 = joined.get_column("_fold").to_numpy().astype(np.int64)
    return out


def lgb_params(
    *,
    objective: str,
    learning_rate: float,
    num_leaves: int,
    min_child_samples: int,
    reg_lambda: float,
    colsample: float,
    max_bin: int,
    random_state: int,
    n_jobs: int | None,
    bagging_fraction: float = 1.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """LightGBM booster parameters: deterministic, silent, with a fixed histogram layout.

    Column-wise histograms when each tree sees a share of the columns (``colsample`` < 1): only the
    sampled columns' histograms are built, 2.4 times faster than row-wise on the lab's effect model
    (273 columns, ``colsample`` 0.3); row-wise otherwise. Fixing the layout skips LightGBM's timing
    test at the start of every training.
    """
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_child_samples,
        "lambda_l2": reg_lambda,
        "feature_fraction": colsample,
        "max_bin": max_bin,
        "seed": random_state,
        "num_threads": n_jobs or 0,
        "verbose": -1,
        "deterministic": True,
        "force_row_wise": colsample >= 1.0,
        "force_col_wise": colsample < 1.0,
        "feature_pre_filter": False,
        "cat_smooth": 50.0,
        "cat_l2": 10.0,
    }
    if bagging_fraction < 1.0:
        params.update(bagging_fraction=bagging_fraction, bagging_freq=1)
    if extra:
        params.update(extra)
    return params


FOLD_ROWS_PER_TREE = 4
"""A cross-fitting fold model is trained on at most this many times ``max_rows_per_tree`` rows (a seeded sample)."""


def bagging_share(rows: int, max_rows_per_tree: int) -> float:
    """Share of rows each tree sees so that a tree is grown on at most ``max_rows_per_tree`` rows."""
    if rows <= max_rows_per_tree:
        return 1.0
    return max(min(1.0, max_rows_per_tree / rows), 0.01)


def sigmoid(z: F64) -> F64:
    """The logistic function, without overflow warnings."""
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def logit(p: F64, eps: float = 1e-9) -> F64:
    """The log-odds of ``p``, clipped away from 0 and 1."""
    q = np.clip(p, eps, 1.0 - eps)
    out: F64 = np.log(q) - np.log1p(-q)
    return out


def quiet_lightgbm() -> None:
    """Silence LightGBM in this thread (a pool's initializer): its log level is per thread, and set by
    whatever thread parses settings.

    It asks for one LightGBM thread, as every LightGBM call made on a pool thread must. LightGBM 4
    keeps one thread count for the whole process (``LGBM_DEFAULT_NUM_THREADS``, not per thread):
    every call that reads settings (a Dataset's construction, a Booster trained from one, every
    ``predict``) sets it to the ``num_threads`` it names, 0 (not named) meaning all cores, and the
    call then sizes per-thread buffers from it and starts a parallel loop that reads it again. A
    call on another Python thread naming a different count, in between, makes the loop run on more
    threads than the buffers were sized for: a segmentation fault in ``lib_lightgbm.so``. It was
    seen with a pool thread starting up (``make test``), a propensity fold's held-out ``predict``
    beside another fold's training (CI), and an amount objective's ``predict`` beside another
    objective's in a projection (``bench/decide.py --scale``); a stress of two threads reproduces
    it in seconds. Calls that name the same count run side by side safely (tree growth, predictions
    and Dataset construction on separate boosters and datasets), so no lock is needed: the main
    thread's calls with more threads wait for the pool to end. One booster must not be predicted
    from two threads at once with different ``num_iteration`` (LightGBM issue #6142: the
    predictor's set-up writes the iteration range into the shared booster; wrong numbers, not a
    crash); nextmove never does: each booster is predicted with one tree count (receipts' tree
    contributions with the projection's trees).

    So every LightGBM call nextmove makes names its thread count: one on a pool thread, the model's
    ``n_jobs`` (``n_jobs or 0``) on the thread that called the model. With ``n_jobs=1``, the
    models' default, every call names one thread and an application may call the models from
    several threads of its own at once.

    Work that is not one pool of one nextmove call (the API server's batch run beside its
    decisions) cannot keep to that rule call by call: it holds :func:`hold_one_lightgbm_thread`.
    """
    import lightgbm as lgb

    lgb.Dataset(np.zeros((2, 1)), params={"verbose": -1, "num_threads": 1}).construct()


_CAP_LOCK = threading.Lock()
_cap_holders = 0
_cap_before = -1


def _max_threads(count: int | None = None) -> int:
    """LightGBM's process-wide cap on any call's threads (-1: none), after setting it to ``count`` if given."""
    from lightgbm import basic

    lib = basic._LIB  # type: ignore[attr-defined]
    if count is not None:
        basic._safe_call(lib.LGBM_SetMaxThreads(ctypes.c_int(count)))
    out = ctypes.c_int(0)
    basic._safe_call(lib.LGBM_GetMaxThreads(ctypes.byref(out)))
    return int(out.value)


def hold_one_lightgbm_thread() -> None:
    """Cap every LightGBM call of this process at one thread until as many :func:`release_one_lightgbm_thread`.

    LightGBM's thread count is one global that every call sets from the ``num_threads`` it names
    (see :func:`quiet_lightgbm`): two threads whose calls name different counts at once can crash
    the process. A process whose threads make LightGBM calls that nextmove does not order (the API
    server: a batch run on a thread of its own, decisions rescored on request threads) holds this:
    LightGBM's own cap (``LGBM_SetMaxThreads``, what the R package's ``setLGBMthreads`` sets)
    makes every call use one thread whatever it names, so no call can size its buffers for fewer
    threads than another call's loop runs on. Predictions do not depend on the thread count, nor
    did trees trained with nextmove's ``deterministic`` settings on 1 or 2 threads (docs/models.md).

    Holds nest and may be taken and released by different threads. The cap is set when the first
    is taken and put back as it was when the last is released, which must wait until nothing
    capped runs any more: a call that sized its buffers under the cap would run its loop on more
    threads if the cap were lifted under it.
    """
    global _cap_holders, _cap_before
    with _CAP_LOCK:
        if _cap_holders == 0:
            _cap_before = _max_threads()
            _max_threads(1)
        _cap_holders += 1


def release_one_lightgbm_thread() -> None:
    """Release a hold of :func:`hold_one_lightgbm_thread`: the last one puts LightGBM's cap back as it was."""
    global _cap_holders
    with _CAP_LOCK:
        if _cap_holders == 0:
            raise RuntimeError("release_one_lightgbm_thread() without a hold")
        _cap_holders -= 1
        if _cap_holders == 0:
            _max_threads(_cap_before)


@contextmanager
def one_lightgbm_thread() -> Iterator[None]:
    """Every LightGBM call of this process on one thread while the block runs: see :func:`hold_one_lightgbm_thread`."""
    hold_one_lightgbm_thread()
    try:
        yield
    finally:
        release_one_lightgbm_thread()
