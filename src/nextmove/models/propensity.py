"""Propensities of the historical policy: logged, else a cross-fitted multinomial model; clipping and overlap."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.book import NO_ACTION
from nextmove.errors import ConfigError, NotFittedError
from nextmove.models._crossfit import (
    F64,
    FOLD_ROWS_PER_TREE,
    I64,
    account_folds,
    bagging_share,
    lgb_params,
    quiet_lightgbm,
)
from nextmove.models.matrix import FeatureMatrix

DEFAULT_EXCLUDE: tuple[str, ...] = ("lifecycle_stage", "variant")
"""Feature columns left out by default: the accounts table holds today's ``lifecycle_stage``, so a
training set's past rows of a gone account carry ``churned`` (a leak of the outcome); ``variant``
is part of the decision, not of what was known."""


@dataclass(frozen=True)
class ArmOverlap:
    """How well the history covers one arm (action): how often it was taken and how heavy its weights are."""

    arm: str
    rows: int
    """Rows (decisions) that took this arm."""
    share: float
    """Share of all rows that took it."""
    logged_share: float
    """Share of its rows whose propensity came from the touch log (the rest are estimated)."""
    mean_propensity: float | None
    """Mean propensity of its rows (before clipping); None when never taken."""
    min_propensity: float | None
    """Smallest propensity of its rows (before clipping); None when never taken."""
    below_clip_share: float
    """Share of its rows whose propensity is below the lower clip (their weight is capped)."""
    ess: float
    """Effective sample size of its inverse-propensity weights, ``(Σ w)² / Σ w²`` with ``w = 1 / e``:
    the number of equally weighted rows its rows are worth."""
    support_share: float | None
    """Share of the rows the estimated policy scored where it gives this arm at least the lower clip
    (None without an estimated model): where in the book the history could have taken it. Every
    row is scored unless only some need an estimate: then the rows the trained fold models held out."""
    flagged: bool
    """True when the history (almost) never took this arm: its effects fall back to pooled estimates."""
    reason: str
    """Why it is flagged, in words (empty when not)."""


@dataclass(frozen=True)
class SegmentOverlap:
    """How well the history covers one arm within one segment (a value of the segment column)."""

    segment: str
    arm: str
    rows: int
    ess: float
    below_clip_share: float
    flagged: bool
    reason: str


@dataclass(frozen=True)
class OverlapReport:
    """Overlap diagnostics of a logged history: per arm, and per segment and arm.

    Examples
    --------
    >>> report = OverlapReport(clip_low=0.01, clip_high=1.0, rows=0, arms=(), segments=(), segment_column=None)
    >>> report.flagged_arms
    []
    """

    clip_low: float
    clip_high: float
    rows: int
    arms: tuple[ArmOverlap, ...]
    segments: tuple[SegmentOverlap, ...]
    segment_column: str | None
    """The column segments come from (None when the data has none)."""
    thresholds: dict[str, float] = field(default_factory=dict)
    """The flagging thresholds used (``min_rows``, ``min_ess``, ``min_segment_rows``)."""

    @property
    def flagged_arms(self) -> list[str]:
        """Arms the history never or almost never took."""
        return [a.arm for a in self.arms if a.flagged]

    @property
    def flagged_segments(self) -> list[tuple[str, str]]:
        """``(segment, arm)`` cells the history never or almost never treated."""
        return [(s.segment, s.arm) for s in self.segments if s.flagged]

    def arm(self, arm: str) -> ArmOverlap:
        """The overlap of one arm.

        Raises
        ------
        KeyError
            If the report has no such arm.
        """
        for a in self.arms:
            if a.arm == arm:
                return a
        raise KeyError(arm)

    def to_frame(self) -> pl.DataFrame:
        """One row per arm, the fields of :class:`ArmOverlap` as columns."""
        schema = {
            "arm": pl.String,
            "rows": pl.Int64,
            "share": pl.Float64,
            "logged_share": pl.Float64,
            "mean_propensity": pl.Float64,
            "min_propensity": pl.Float64,
            "below_clip_share": pl.Float64,
            "ess": pl.Float64,
            "support_share": pl.Float64,
            "flagged": pl.Boolean,
            "reason": pl.String,
        }
        return pl.DataFrame([a.__dict__ for a in self.arms], schema=schema)

    def segments_frame(self) -> pl.DataFrame:
        """One row per segment and arm, the fields of :class:`SegmentOverlap` as columns."""
        schema = {
            "segment": pl.String,
            "arm": pl.String,
            "rows": pl.Int64,
            "ess": pl.Float64,
            "below_clip_share": pl.Float64,
            "flagged": pl.Boolean,
            "reason": pl.String,
        }
        return pl.DataFrame([s.__dict__ for s in self.segments], schema=schema)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return {
            "clip_low": self.clip_low,
            "clip_high": self.clip_high,
            "rows": self.rows,
            "segment_column": self.segment_column,
            "thresholds": dict(self.thresholds),
            "arms": [dict(a.__dict__) for a in self.arms],
            "segments": [dict(s.__dict__) for s in self.segments],
            "flagged_arms": self.flagged_arms,
            "flagged_segments": [list(s) for s in self.flagged_segments],
        }


def stratified_sample(label: F64, max_rows: int, rng: np.random.Generator) -> tuple[I64, F64 | None]:
    """At most ``max_rows`` rows, stratified by ``label``, and the weights that restore every label's share.

    Each label keeps ``min(rows, q)`` of its rows, with ``q`` the largest quota that fits
    ``max_rows``: rare labels stay whole, common ones are sampled (seeded) and weighted by their
    rows over the rows kept. With no more than ``max_rows`` rows: every row, no weights.

    Examples
    --------
    >>> idx, w = stratified_sample(np.array([0.0] * 8 + [1.0] * 2), 6, np.random.default_rng(0))
    >>> len(idx), sorted(set(w.tolist()))
    (6, [1.0, 2.0])
    """
    if len(label) <= max_rows:
        return np.arange(len(label), dtype=np.int64), None
    classes, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    quota = _quota(counts, max_rows)
    keep: list[I64] = []
    weight = np.empty(len(label))
    for c in range(len(classes)):
        mine = np.flatnonzero(inverse == c)
        take = min(len(mine), quota)
        weight[mine] = len(mine) / take
        keep.append(mine if take == len(mine) else rng.choice(mine, size=take, replace=False))
    idx = np.sort(np.concatenate(keep)).astype(np.int64)
    out: F64 = weight[idx]
    return idx, out


def _quota(counts: I64, max_rows: int) -> int:
    """The largest ``q`` with ``sum(min(counts, q)) <= max_rows`` (at least 1)."""
    ordered = np.sort(counts)
    below = 0
    for i, c in enumerate(ordered):
        left = len(ordered) - i
        if below + c * left > max_rows:
            return max((max_rows - below) // left, 1)
        below += int(c)
    return int(ordered[-1])


FEW_ROWS_SHARE = 0.1
"""Rows to estimate whose accounts hold at most this share of a training set's rows are few: one fold
model estimates them all (see :func:`estimation_folds`)."""


def estimation_folds(
    folds: I64, needed: NDArray[np.bool_], accounts: NDArray[np.object_], few_share: float = FEW_ROWS_SHARE
) -> tuple[I64, list[int]]:
    """The folds to cross-fit with and the ones whose model must be trained, given the rows that need an estimate.

    A fold model is only worth training for the rows it estimates, the rows it holds out: a fold
    holding no row to estimate is skipped. When the rows to estimate are few (their accounts hold
    at most ``few_share`` of the rows, e.g. a handful of manual touches without a propensity in a
    logged history), their accounts all join the fold that holds most of them, and that fold's model
    alone is trained: every estimate still comes from a model that never saw the row's account,
    fitted on as many rows as before, where the given folds would have trained one model per fold.

    Parameters
    ----------
    folds
        The fold of every row (by account).
    needed
        True where a row needs an estimate.
    accounts
        The account of every row.
    few_share
        The share of rows below which the accounts to estimate are regrouped into one fold.

    Returns
    -------
    tuple
        The fold of every row (the given folds, or with the accounts to estimate moved) and the
        folds to train, ascending.

    Examples
    --------
    >>> folds = np.array([0, 0, 1, 1, 2, 2] * 4)
    >>> accounts = np.array([f"a{i}" for i in range(24)], dtype=object)
    >>> needed = np.zeros(24, dtype=bool)
    >>> needed[[2, 4]] = True  # two rows, in folds 1 and 2
    >>> new, trained = estimation_folds(folds, needed, accounts)
    >>> trained, new[[2, 4]].tolist()
    ([1], [1, 1])
    >>> estimation_folds(folds, np.ones(24, dtype=bool), accounts)[1]
    [0, 1, 2]
    """
    if not needed.any():
        return folds, []
    holding = np.unique(folds[needed])
    if len(holding) == 1 or needed.all():
        return folds, [int(k) for k in holding]
    moved = np.isin(accounts, np.unique(accounts[needed]))
    if moved.sum() > few_share * len(folds):
        return folds, [int(k) for k in holding]
    # The fold holding most rows to estimate (the lowest on a tie) takes the others' accounts.
    ks, counts = np.unique(folds[needed], return_counts=True)
    target = int(ks[np.argmax(counts)])
    out: I64 = np.where(moved, target, folds).astype(np.int64)
    return out, [target]


def clip_propensities(propensity: F64, clip: tuple[float, float]) -> F64:
    """Propensities clipped to ``[low, high]``; missing (NaN) ones become ``low``.

    A propensity of 0 (an action the log says could not happen) is raised to the lower clip, so
    inverse weights are never infinite; one of 1 stays 1.

    Examples
    --------
    >>> clip_propensities(np.array([0.0, 0.5, 1.0, np.nan]), (0.01, 1.0)).tolist()
    [0.01, 0.5, 1.0, 0.01]
    """
    low, high = clip
    out: F64 = np.clip(np.nan_to_num(np.asarray(propensity, dtype=np.float64), nan=low), low, high)
    return out


def check_clip(clip: object) -> tuple[float, float]:
    """``clip`` as a ``(low, high)`` pair with ``0 < low <= high <= 1``, or a ConfigError saying what is wrong."""
    if not isinstance(clip, tuple | list) or len(clip) != 2:
        raise ConfigError(f"clip must be a pair (low, high), got {clip!r}")
    low, high = float(clip[0]), float(clip[1])
    if not 0 < low <= high <= 1:
        raise ConfigError(f"clip must satisfy 0 < low <= high <= 1, got {clip!r}")
    return low, high


def arm_codes(actions: pl.Series, arms: Sequence[str]) -> I64:
    """The index in ``arms`` of every row's action (``-1`` for an action not in ``arms``)."""
    mapping = {a: i for i, a in enumerate(arms)}
    codes = actions.cast(pl.String).replace_strict(mapping, default=-1, return_dtype=pl.Int64)
    out: I64 = codes.to_numpy().astype(np.int64)
    return out


def training_arms(actions: pl.Series, catalog: Sequence[str] | None = None) -> list[str]:
    """``none`` first, then the catalog's actions (if given) and every other action seen, sorted."""
    seen = {str(a) for a in actions.drop_nulls().unique().to_list()}
    ordered = [NO_ACTION]
    for a in list(catalog or []) + sorted(seen):
        if a not in ordered:
            ordered.append(a)
    return ordered


class PropensityModel:
    """The historical policy's probability of each action given the features, for a training set.

    A row's propensity is the touch log's ``propensity`` where present (``use_logged``); rows
    without one (untouched regular dates, books that log none) get an estimate from a
    multinomial LightGBM model of the logged actions given the features, cross-fitted by account
    (``n_folds``): a row's estimate comes from the models fitted on the other folds. Only the
    folds holding a row to estimate are trained, and when those rows are few (their accounts hold
    at most a tenth of the rows, as a few manual touches without a propensity in a logged
    history) their accounts join one fold and one model estimates them (:func:`estimation_folds`).
    Propensities
    are clipped to ``clip`` for weighting, and :attr:`overlap_` reports, per arm and per segment,
    how often the history took it and how heavy its weights are, flagging arms (and segment
    cells) that it never or almost never took.

    Follows the scikit-learn contract: ``__init__`` stores the arguments, :meth:`fit` checks them
    and returns ``self``, learned state ends in ``_``.

    Parameters
    ----------
    clip
        ``(low, high)``: propensities used for weighting are clipped to this range.
    use_logged
        Use the touch log's ``propensity`` where present.
    estimate
        ``auto``: fit the multinomial model only when some row lacks a logged propensity;
        ``always``: fit it anyway (for :meth:`predict_proba` and ``support_share``); ``never``:
        rows without a logged propensity are an error.
    n_folds
        Cross-fitting folds (by account).
    min_rows, min_ess
        An arm taken fewer than ``min_rows`` times, or whose weights are worth fewer than
        ``min_ess`` rows, is flagged.
    min_segment_rows
        A segment × arm cell with fewer rows than this (in a segment with at least that many rows)
        is flagged.
    segment_column
        Column whose values are the segments of the overlap report (skipped when absent).
    exclude
        Feature columns the model leaves out.
    n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, colsample, max_bin
        LightGBM settings of the multinomial model (``n_estimators`` is the most rounds a fold
        model grows). Every tree sees every column by default (``colsample`` 1): sampling half of
        them made LightGBM copy those columns of its sparse bins for each of the round's trees, a
        quarter of the fit's time, for estimates no closer to the lab's logged propensities.
    patience
        A fold model stops once this many rounds in a row have not lowered the multinomial log
        loss of the fold's held-out rows, and keeps its best round (None: always
        ``n_estimators`` rounds). The held-out rows are the ones the fold model then estimates,
        so they choose one number, the rounds, and nothing else.
    max_rows_per_tree
        Above this many rows, each tree is grown on a random share of them; a fold model is
        trained on at most ``4 × max_rows_per_tree`` rows, a sample stratified by arm (rare arms
        whole) with weights that restore every arm's share. This bounds the fit's time on a large
        book; the default of 20,000 estimates the lab's logged propensities about as closely as
        100,000 rows with 150 fixed rounds did, in a seventh of the time.
    random_state
        Seed of the folds and of LightGBM.
    n_jobs
        Threads (default 1; None: all cores). A fold model trained on more than
        ``max_rows_per_tree`` rows grows each tree on that many LightGBM threads; smaller ones, whose
        trees see every row, train on one LightGBM thread each, side by side on up to ``n_jobs``
        threads: on the 2-core VM under load, three fold models of 8,300 rows took 45 s on two
        LightGBM threads and 3.7 s on one, the threads waiting on each other for most of the fit.
        Every other LightGBM call (:meth:`predict_proba`) names ``n_jobs`` threads.

    Examples
    --------
    >>> rows = pl.DataFrame(
    ...     {
    ...         "account_id": [f"a{i}" for i in range(6)],
    ...         "action_id": ["none", "call", "none", "call", "none", "none"],
    ...         "propensity": [0.5, 0.5, 0.8, 0.2, 0.0, None],
    ...         "usage": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    ...     }
    ... )
    >>> model = PropensityModel(estimate="never").fit(rows.head(5))
    >>> model.propensity_.tolist()
    [0.5, 0.5, 0.8, 0.2, 0.01]
    >>> model.overlap_.arm("call").rows
    2
    """

    def __init__(
        self,
        *,
        clip: tuple[float, float] = (0.01, 1.0),
        use_logged: bool = True,
        estimate: Literal["auto", "always", "never"] = "auto",
        n_folds: int = 5,
        min_rows: int = 30,
        min_ess: float = 10.0,
        min_segment_rows: int = 10,
        segment_column: str | None = "segment",
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        n_estimators: int = 150,
        learning_rate: float = 0.2,
        num_leaves: int = 7,
        min_child_samples: int = 100,
        reg_lambda: float = 10.0,
        colsample: float = 1.0,
        max_bin: int = 63,
        max_rows_per_tree: int = 20_000,
        patience: int | None = 10,
        random_state: int = 0,
        n_jobs: int | None = 1,
    ) -> None:
        self.clip = clip
        self.use_logged = use_logged
        self.estimate = estimate
        self.n_folds = n_folds
        self.min_rows = min_rows
        self.min_ess = min_ess
        self.min_segment_rows = min_segment_rows
        self.segment_column = segment_column
        self.exclude = exclude
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.colsample = colsample
        self.max_bin = max_bin
        self.max_rows_per_tree = max_rows_per_tree
        self.patience = patience
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __repr__(self) -> str:
        return f"PropensityModel(clip={self.clip!r}, estimate={self.estimate!r})"

    def _validate_params(self) -> tuple[float, float]:
        clip = check_clip(self.clip)
        if self.estimate not in ("auto", "always", "never"):
            raise ConfigError(f"estimate must be 'auto', 'always' or 'never', got {self.estimate!r}")
        for name in ("n_estimators", "num_leaves", "min_child_samples", "max_bin", "max_rows_per_tree", "min_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.patience is not None and (
            isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1
        ):
            raise ConfigError(f"patience must be a positive whole number or None, got {self.patience!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 < self.colsample <= 1:
            raise ConfigError(f"colsample must be in (0, 1], got {self.colsample!r}")
        if isinstance(self.exclude, str):
            raise ConfigError("exclude must be a sequence of column names, not one string")
        return clip

    def fit(
        self,
        training: pl.DataFrame,
        *,
        arms: Sequence[str] | None = None,
        folds: I64 | None = None,
    ) -> Self:
        """Learn the propensity of every training row's action and the overlap of every arm.

        Parameters
        ----------
        training
            One row per past decision: ``account_id``, ``action_id``, optionally ``propensity``
            and the features (a training set, censored rows already left out if wanted).
        arms
            The arms to report (``none`` and the catalog's actions); default: ``none`` and the
            actions seen. An arm no row took is reported as never taken.
        folds
            Cross-fitting fold of every row (default: :func:`account_folds` with ``n_folds``).

        Returns
        -------
        PropensityModel
            ``self``, with ``arms_``, ``propensity_`` (clipped, per row), ``raw_propensity_``,
            ``logged_`` (mask of rows with a logged propensity), ``proba_`` (out-of-fold
            probabilities of every arm, when estimated; NaN on the rows of folds not trained),
            ``folds_`` and ``trained_folds_`` (the folds cross-fitted with and those whose model
            was trained, when estimated) and ``overlap_``.

        Raises
        ------
        ConfigError
            If a setting is invalid, a column is missing, or propensities are missing with
            ``estimate="never"``.
        """
        clip = self._validate_params()
        for column in ("account_id", "action_id"):
            if column not in training.columns:
                raise ConfigError(f"the training set has no {column!r} column")
        if training.height == 0:
            raise ConfigError("the training set has no rows")
        actions = training.get_column("action_id").cast(pl.String).fill_null(NO_ACTION)
        self.arms_ = training_arms(actions, list(arms) if arms is not None else None)
        codes = arm_codes(actions, self.arms_)
        if "propensity" in training.columns and self.use_logged:
            logged = training.get_column("propensity").cast(pl.Float64).to_numpy()
            logged = np.where(np.isfinite(logged), logged, np.nan)
        else:
            logged = np.full(training.height, np.nan)
        self.logged_ = np.isfinite(logged)
        fit_model = self.estimate == "always" or (self.estimate == "auto" and not self.logged_.all())
        if not self.logged_.all() and self.estimate == "never":
            missing = int((~self.logged_).sum())
            raise ConfigError(
                f"{missing} training rows have no logged propensity and estimate='never'; "
                "use estimate='auto' to estimate them"
            )
        self.proba_: F64 | None = None
        self.models_: list[lgb.Booster] = []
        self.folds_: I64 | None = None
        self.trained_folds_: list[int] = []
        self.classes_: list[int] = []
        self.matrix_: FeatureMatrix | None = None
        if fit_model:
            accounts = training.get_column("account_id")
            if folds is None:
                folds = account_folds(accounts, self.n_folds, self.random_state)
            # "auto" needs estimates only where the log has none; "always" wants them everywhere.
            needed = ~self.logged_ if self.estimate == "auto" else np.ones(training.height, dtype=bool)
            self.folds_, self.trained_folds_ = estimation_folds(
                np.asarray(folds, dtype=np.int64), needed, accounts.cast(pl.String).to_numpy()
            )
            matrix = FeatureMatrix(exclude=tuple(self.exclude)).fit(training)
            self.matrix_ = matrix
            x = matrix.transform(training)
            self.proba_ = self._fit_models(x, codes, self.folds_, self.trained_folds_)
            estimated = self.proba_[np.arange(len(codes)), codes]
        else:
            estimated = np.full(training.height, np.nan)
        raw = np.where(self.logged_, logged, estimated)
        self.raw_propensity_: F64 = raw
        self.propensity_: F64 = clip_propensities(raw, clip)
        self.overlap_ = self._overlap(training, codes, raw, clip)
        return self

    def _fit_models(self, x: NDArray[np.float32], codes: I64, folds: I64, trained: Sequence[int]) -> F64:
        """Cross-fitted multinomial models of the ``trained`` folds; out-of-fold probabilities of every
        arm on the rows they hold out (NaN on the rows of the folds not trained)."""
        n_arms = len(self.arms_)
        present = sorted({int(c) for c in codes.tolist()})
        self.classes_ = present
        label = np.searchsorted(np.array(present), codes).astype(np.float64)
        if len(present) == 1:
            proba = np.zeros((len(codes), n_arms))
            proba[:, present[0]] = 1.0
            return proba
        proba = np.full((len(codes), n_arms), np.nan)
        rng = np.random.default_rng(self.random_state)
        # The samples are drawn in fold order, whatever order the fold models then train in.
        samples: list[tuple[I64, F64 | None]] = []
        for k in trained:
            train = folds != k
            idx, weight = stratified_sample(label[train], FOLD_ROWS_PER_TREE * self.max_rows_per_tree, rng)
            samples.append((np.flatnonzero(train)[idx], weight))

        # Small fold models train on one LightGBM thread each (_fit_one), so with threads to spare
        # they train side by side; larger ones one after the other, each on n_jobs threads.
        small = all(len(rows) <= self.max_rows_per_tree for rows, _ in samples)
        workers = min(self.n_jobs or os.cpu_count() or 1, len(samples)) if small else 1

        def fit_fold(k: int, sample: tuple[I64, F64 | None]) -> tuple[lgb.Booster, F64]:
            rows, weight = sample
            held = folds == k
            x_held = x[held]
            booster = self._fit_one(x[rows], label[rows], len(present), weight, held=(x_held, label[held]))
            # Side by side, the held-out predict names one LightGBM thread as the training does:
            # naming none, it reset LightGBM's process-wide thread count to all cores beside another
            # fold's Dataset construction, a segfault in CI (see quiet_lightgbm). One after the
            # other, it names n_jobs, as every call outside a pool.
            out = booster.predict(x_held, num_threads=1 if workers > 1 else self.n_jobs or 0)
            return booster, np.asarray(out, dtype=np.float64)

        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, initializer=quiet_lightgbm) as pool:
                fitted = list(pool.map(fit_fold, trained, samples))
        else:
            fitted = [fit_fold(k, sample) for k, sample in zip(trained, samples, strict=True)]
        for k, (booster, held_proba) in zip(trained, fitted, strict=True):
            self.models_.append(booster)
            held = folds == k
            proba[held] = 0.0
            proba[np.ix_(held, present)] = held_proba
        return proba

    def _fit_one(
        self,
        x: NDArray[np.float32],
        label: F64,
        n_classes: int,
        weight: F64 | None = None,
        held: tuple[NDArray[np.float32], F64] | None = None,
    ) -> lgb.Booster:
        params = lgb_params(
            objective="multiclass",
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            reg_lambda=self.reg_lambda,
            colsample=self.colsample,
            max_bin=self.max_bin,
            random_state=self.random_state,
            # A tree on every one of a few thousand rows is too little work to share: LightGBM's
            # threads spent most of the fit waiting on each other, worst on a busy machine
            # (_fit_models trains such fold models side by side instead).
            n_jobs=1 if len(label) <= self.max_rows_per_tree else self.n_jobs,
            bagging_fraction=bagging_share(len(label), self.max_rows_per_tree),
            extra={"num_class": n_classes},
        )
        assert self.matrix_ is not None
        data = lgb.Dataset(
            x,
            label=label,
            weight=weight,
            categorical_feature=self.matrix_.categorical_indices_,
            params=params,
            free_raw_data=True,
        )
        if self.patience is None or held is None or len(held[1]) == 0:
            return lgb.train(params, data, num_boost_round=self.n_estimators)
        # The fold's own held-out rows say when more trees stop helping (multinomial log loss);
        # lgb.train returns the booster cut back to its best round.
        valid = lgb.Dataset(held[0], label=held[1], reference=data, params=params)
        return lgb.train(
            {**params, "metric": "multi_logloss"},
            data,
            num_boost_round=self.n_estimators,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.patience, first_metric_only=True, verbose=False)],
        )

    def predict_proba(self, frame: pl.DataFrame) -> F64:
        """The estimated policy's probability of every arm (columns in ``arms_`` order) for new rows.

        The average of the fold models trained (one when only a few rows needed an estimate).

        Raises
        ------
        NotFittedError
            If the model is not fitted, or was fitted without estimating (all propensities logged
            and ``estimate="auto"``): fit with ``estimate="always"`` to predict.
        """
        if not hasattr(self, "arms_"):
            raise NotFittedError("this PropensityModel is not fitted yet: call fit(training) first")
        if self.matrix_ is None or (not self.models_ and len(self.classes_) != 1):
            raise NotFittedError(
                "this PropensityModel used logged propensities only; fit it with estimate='always' to predict"
            )
        x = self.matrix_.transform(frame)
        out = np.zeros((frame.height, len(self.arms_)))
        if len(self.classes_) == 1:
            out[:, self.classes_[0]] = 1.0
            return out
        for booster in self.models_:
            # Its thread count named, as every LightGBM call (see quiet_lightgbm).
            out[:, self.classes_] += booster.predict(x, num_threads=self.n_jobs or 0)
        out /= len(self.models_)
        return out

    def _overlap(self, training: pl.DataFrame, codes: I64, raw: F64, clip: tuple[float, float]) -> OverlapReport:
        low, high = clip
        n = len(codes)
        weights = 1.0 / clip_propensities(raw, clip)
        scored = np.isfinite(self.proba_[:, 0]) if self.proba_ is not None else np.zeros(n, dtype=bool)
        arms: list[ArmOverlap] = []
        for i, arm in enumerate(self.arms_):
            mine = codes == i
            rows = int(mine.sum())
            support = None
            if self.proba_ is not None:
                support = float(np.mean(self.proba_[scored, i] >= low))
            if rows == 0:
                arms.append(
                    ArmOverlap(arm, 0, 0.0, 0.0, None, None, 0.0, 0.0, support, True, "never taken in the history")
                )
                continue
            w = weights[mine]
            ess = float(w.sum() ** 2 / np.square(w).sum())
            reason = ""
            if rows < self.min_rows:
                reason = f"taken {rows} times (fewer than min_rows={self.min_rows})"
            elif ess < self.min_ess:
                reason = f"effective sample size {ess:.1f} (below min_ess={self.min_ess:g})"
            arms.append(
                ArmOverlap(
                    arm=arm,
                    rows=rows,
                    share=rows / n,
                    logged_share=float(self.logged_[mine].mean()),
                    mean_propensity=float(np.mean(raw[mine])),
                    min_propensity=float(np.min(raw[mine])),
                    below_clip_share=float(np.mean(raw[mine] < low)),
                    ess=ess,
                    support_share=support,
                    flagged=bool(reason),
                    reason=reason,
                )
            )
        segments: list[SegmentOverlap] = []
        column = self.segment_column
        if column is not None and column in training.columns:
            values = training.get_column(column).cast(pl.String).fill_null("(missing)").to_numpy()
            for segment in sorted(set(values.tolist())):
                in_segment = values == segment
                if in_segment.sum() < self.min_segment_rows:
                    continue
                for i, arm in enumerate(self.arms_):
                    mine = in_segment & (codes == i)
                    rows = int(mine.sum())
                    if rows == 0:
                        segments.append(SegmentOverlap(segment, arm, 0, 0.0, 0.0, True, "never taken in this segment"))
                        continue
                    w = weights[mine]
                    ess = float(w.sum() ** 2 / np.square(w).sum())
                    reason = ""
                    if rows < self.min_segment_rows:
                        reason = f"taken {rows} times in this segment (fewer than {self.min_segment_rows})"
                    elif ess < min(self.min_ess, self.min_segment_rows):
                        reason = f"effective sample size {ess:.1f} in this segment"
                    segments.append(
                        SegmentOverlap(segment, arm, rows, ess, float(np.mean(raw[mine] < low)), bool(reason), reason)
                    )
        else:
            column = None
        return OverlapReport(
            clip_low=low,
            clip_high=high,
            rows=n,
            arms=tuple(arms),
            segments=tuple(segments),
            segment_column=column,
            thresholds={
                "min_rows": float(self.min_rows),
                "min_ess": float(self.min_ess),
                "min_segment_rows": float(self.min_segment_rows),
            },
        )
