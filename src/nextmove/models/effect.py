"""Action-effect models: what each action causes on each objective's outcome, per account, with an interval."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal, Self, TypeVar

import lightgbm as lgb
import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import minimize
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from nextmove.book import NO_ACTION
from nextmove.errors import ConfigError, NotFittedError, NothingToLearnError
from nextmove.features import FeatureVocabulary
from nextmove.features.names import behavior_features
from nextmove.models._crossfit import (
    F64,
    FOLD_ROWS_PER_TREE,
    I64,
    account_folds,
    bagging_share,
    lgb_params,
    quiet_lightgbm,
    sigmoid,
)
from nextmove.models._trees import CodeTree, code_trees
from nextmove.models.matrix import FeatureMatrix
from nextmove.models.propensity import (
    DEFAULT_EXCLUDE,
    OverlapReport,
    PropensityModel,
    arm_codes,
    check_clip,
    clip_propensities,
)
from nextmove.playbook import Playbook
from nextmove.playbook.money import money_text
from nextmove.playbook.schema import Sense, ValueBasis

ARM_SEPARATOR = ":"
"""Separates an action id from its variant id in an arm id (``nurture_email:morning``)."""

_T = TypeVar("_T")
F32 = NDArray[np.float32]
_Z_CAP = 30.0
_DRAW_BUDGET = 4_000_000
"""Values held at once while projecting (accounts × arms × draws); larger snapshots go in chunks."""
UNSEEN_SHARE = "_horizon_unseen_share"
"""The feature of a model fitted with ``partial_horizon_days``: the share of a row's horizon not seen yet
(feature names never start with ``_``, so it cannot meet a book's own)."""
_GROUP_SAMPLE = 20_000
"""Rows the behavior groups' k-means is fitted on (a seeded sample); every row is then assigned."""
_PATIENCE = 20
"""The fold models stop growing when their held-out deviance has not improved for this many trees."""
_LEAD = 2
"""A fold model may grow this many rounds beyond the last round every fold model has completed."""


# ---- objectives and the value convention ------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveSpec:
    """One playbook objective as a learning target: its label columns, unit and dollars per unit.

    The value convention (one place, used by effects, policies and off-policy evaluation):

    - ``value = "arr"``: one event is worth the account's ARR (the ``arr`` column);
    - ``value = "amount"``: the outcome's own ``value`` is the dollars (``y_{kind}_value``);
    - ``value = "fixed"``: one event is worth ``value_usd``;
    - ``sense = "avoid"`` counts negative (avoiding a churn is worth the ARR kept);
    - every objective is multiplied by its ``weight``.
    """

    objective: str
    """The objective's id in the playbook."""
    outcome: str
    """The outcome kind that measures it."""
    stem: str
    """The kind's stem in training-set column names (``y_{stem}``, ``y_{stem}_value``)."""
    basis: ValueBasis
    sense: Sense
    weight: float
    value_usd: float | None

    @property
    def label(self) -> str:
        """The 0/1 label column of a training set."""
        return f"y_{self.stem}"

    @property
    def value_label(self) -> str:
        """The summed-value column of a training set."""
        return f"y_{self.stem}_value"

    @property
    def is_amount(self) -> bool:
        """True when the effect is in dollars (``value = "amount"``), else a probability."""
        return self.basis is ValueBasis.AMOUNT

    @property
    def unit(self) -> Literal["probability", "usd"]:
        """``usd`` for amount objectives, ``probability`` for event objectives."""
        return "usd" if self.is_amount else "probability"

    @property
    def sign(self) -> float:
        """-1 for ``avoid`` objectives, +1 for ``achieve`` ones."""
        return -1.0 if self.sense is Sense.AVOID else 1.0

    def usd_per_unit(self, arr: F64) -> F64:
        """Objective dollars (weighted and signed) per unit of effect, for accounts with ARR ``arr``.

        A unit is one probability point times 1 (an event) for event objectives and one dollar for
        amount objectives. A missing ARR counts as 0.
        """
        if self.basis is ValueBasis.ARR:
            per: F64 = np.nan_to_num(np.asarray(arr, dtype=np.float64), nan=0.0)
        elif self.basis is ValueBasis.AMOUNT:
            per = np.ones(len(arr))
        else:
            per = np.full(len(arr), float(self.value_usd or 0.0))
        out: F64 = self.weight * self.sign * per
        return out

    def realised_usd(self, frame: pl.DataFrame) -> F64:
        """The objective dollars each row of a training set realised (weighted and signed).

        Raises
        ------
        ConfigError
            If the frame lacks the label column, or ``arr`` for an ARR-valued objective.
        """
        if self.is_amount:
            column = self.value_label
            _require(frame, column, f"objective {self.objective!r}")
            y = frame.get_column(column).cast(pl.Float64).fill_null(0.0).to_numpy()
            return np.asarray(self.weight * self.sign * y, dtype=np.float64)
        _require(frame, self.label, f"objective {self.objective!r}")
        event = frame.get_column(self.label).cast(pl.Float64).fill_null(0.0).to_numpy()
        event = (event > 0).astype(np.float64)
        if self.basis is ValueBasis.ARR:
            _require(frame, "arr", f"objective {self.objective!r} (value = 'arr')")
        arr = frame.get_column("arr").cast(pl.Float64).to_numpy() if "arr" in frame.columns else np.zeros(frame.height)
        out: F64 = event * self.usd_per_unit(arr)
        return out


def objective_specs(playbook: Playbook, vocabulary: FeatureVocabulary | None = None) -> list[ObjectiveSpec]:
    """The playbook's objectives as learning targets, in playbook order.

    Each objective's label columns are those ``vocabulary`` gives its outcome kind
    (:meth:`~nextmove.features.FeatureVocabulary.outcome_stem`): pass the training set's
    (:func:`~nextmove.features.training_vocabulary`). Without one, the kind's stem when no other
    kind sanitises alike; a kind spelt as its stem (``churn``) keeps it in every vocabulary.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> [(s.objective, s.unit) for s in objective_specs(load_playbook())][:2]
    [('retention', 'probability'), ('expansion', 'usd')]
    """
    stems = vocabulary if vocabulary is not None else FeatureVocabulary()
    return [
        ObjectiveSpec(
            objective=objective_id,
            outcome=objective.outcome,
            stem=stems.outcome_stem(objective.outcome),
            basis=objective.value,
            sense=objective.sense,
            weight=objective.weight,
            value_usd=objective.value_usd,
        )
        for objective_id, objective in playbook.objectives.items()
    ]


def row_value_usd(
    frame: pl.DataFrame,
    playbook: Playbook,
    *,
    objective: str | None = None,
    vocabulary: FeatureVocabulary | None = None,
) -> F64:
    """The dollar value each row of a training set realised: objective dollars minus the action's cost.

    Objective dollars follow the convention of :class:`ObjectiveSpec`: ``arr`` objectives count the
    account's ARR per event, ``amount`` ones the outcome's value, ``fixed`` ones ``value_usd`` per
    event; ``avoid`` objectives count negative and each objective is weighted by its ``weight``.
    The cost is the ``cost_usd`` of the row's action (0 for ``none`` and unknown actions), or of
    its variant when the frame has a ``variant`` column and the variant has a ``cost_usd`` of its
    own. With ``objective``, only that objective's dollars, and no cost.

    Parameters
    ----------
    frame
        Rows with ``action_id``, the label columns (``y_{kind}``, ``y_{kind}_value``) and ``arr``
        (for ARR-valued objectives); optionally ``variant``.
    playbook
        Objectives, weights and action costs.
    objective
        One objective id, or None for all of them minus cost.
    vocabulary
        The frame's vocabulary, to find each objective's label columns (:func:`objective_specs`).

    Returns
    -------
    numpy.ndarray
        One value per row, in dollars.

    Raises
    ------
    ConfigError
        If a needed column is missing or ``objective`` is not in the playbook.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> rows = pl.DataFrame(
    ...     {
    ...         "action_id": ["renewal_incentive", "none"],
    ...         "arr": [10_000.0, 5_000.0],
    ...         "y_churn": [0, 1],
    ...         "y_expansion_value": [0.0, 0.0],
    ...         "y_advocacy": [0, 0],
    ...         "y_recovery": [0, 0],
    ...         "y_onboarded": [0, 0],
    ...     }
    ... )
    >>> row_value_usd(rows, load_playbook()).tolist()
    [-600.0, -5000.0]
    """
    specs = objective_specs(playbook, vocabulary)
    if objective is not None:
        chosen = [s for s in specs if s.objective == objective]
        if not chosen:
            raise ConfigError(
                f"objective {objective!r} is not in the playbook (objectives: {', '.join(playbook.objectives)})"
            )
        return chosen[0].realised_usd(frame)
    total = np.zeros(frame.height)
    for spec in specs:
        total = total + spec.realised_usd(frame)
    _require(frame, "action_id", "the action cost")
    out: F64 = (
        total - frame.select(cost_usd_expr(playbook, has_variant="variant" in frame.columns)).to_series().to_numpy()
    )
    return out


def cost_usd_expr(playbook: Playbook, *, has_variant: bool = True) -> pl.Expr:
    """Each row's cost in dollars from its ``action_id`` (and ``variant``): the variant's own ``cost_usd``
    when it has one, else the action's; 0 for ``none``, unknown actions and missing ids.

    The one cost rule of the playbook (a variant without a cost costs what its action does), as
    the rules' candidates and the effect model's arms charge it.

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... [objectives.grow]
    ... outcome = "expansion"
    ... value_usd = 100
    ... [[actions]]
    ... id = "tour"
    ... name = "Tour"
    ... team = "growth"
    ... objective = "grow"
    ... cost_usd = 3
    ... variants = [{ id = "short" }, { id = "deep", cost_usd = 8 }]
    ... ''')
    >>> rows = pl.DataFrame({"action_id": ["tour", "tour", "tour", "none"], "variant": ["short", "deep", None, None]})
    >>> rows.select(cost_usd_expr(pb)).to_series().to_list()
    [3.0, 8.0, 3.0, 0.0]
    """
    action_costs = {a.id: float(a.cost_usd) for a in playbook.actions}
    action = pl.col("action_id").cast(pl.String)
    cost = action.replace_strict(action_costs, default=0.0, return_dtype=pl.Float64)
    variant_costs = {
        f"{a.id}{ARM_SEPARATOR}{v.id}": float(v.cost_usd)
        for a in playbook.actions
        for v in a.variants
        if v.cost_usd is not None
    }
    if has_variant and variant_costs:
        arm = pl.concat_str([action, pl.lit(ARM_SEPARATOR), pl.col("variant").cast(pl.String)])
        cost = arm.replace_strict(variant_costs, default=None, return_dtype=pl.Float64).fill_null(cost)
    return cost.fill_null(0.0).alias("cost_usd")


def _require(frame: pl.DataFrame, column: str, what: str) -> None:
    if column not in frame.columns:
        raise ConfigError(f"{what} needs the column {column!r}, which the frame lacks")


# ---- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmEffect:
    """The action-level effect of one arm on one objective, as learned (logit scale for events)."""

    arm: str
    objective: str
    rows: int
    """Training rows that took this arm."""
    events: int
    """Of those, rows with the objective's outcome."""
    raw_logit_effect: float | None
    """Logit shift against doing nothing before shrinkage (None when the arm was never taken)."""
    raw_se: float | None
    logit_effect: float
    """After empirical-Bayes shrinkage toward the pooled effect of all arms."""
    posterior_sd: float
    amount_multiplier: float | None
    """Amount objectives: expected amount per event relative to doing nothing."""
    pooled: bool
    """True when the arm is flagged (never or almost never taken) and uses the pooled effect."""
    part: Literal["positive", "negative"] | None = None
    """Amount objectives whose amounts have both signs: the sign whose fit this is (each sign has its own
    outcome model, of an amount of that sign, and multipliers of its size); None for other objectives."""


@dataclass(frozen=True, eq=False)
class EffectArrays:
    """A projection's effects as arrays: what :attr:`EffectProjection.effects` holds, without its text rows.

    The long frame has 70 rows per account for 14 actions and 5 objectives, each with its account id
    and four words: at a million accounts, more memory than everything else of a run. Kept as
    arrays, a reader that knows which (account, arm) pairs it needs (the evidence) gathers them by
    position, and the frame is only made when something asks for it.

    ``ids`` names the projected rows (``account_id`` and, when projected for decisions,
    ``decision_ts``); ``starts`` are the chunks' first rows: the frame is ordered by chunk, then
    objective, then arm, then row, as the projection made it.
    """

    ids: pl.DataFrame
    starts: tuple[int, ...]
    arms: tuple[str, ...]
    """The arms with effects (every arm but ``none``), in the model's order."""
    pooled: tuple[bool, ...]
    objectives: tuple[str, ...]
    outcomes: tuple[str, ...]
    units: tuple[str, ...]
    constant: tuple[bool, ...]
    """Objectives fitted as a constant: no effect, and ``effect_usd`` is 0 (not effect × dollars per unit)."""
    baseline: F64
    """(objectives, rows): the do-nothing level."""
    per_unit: F64
    """(objectives, rows): objective dollars per unit of effect."""
    effect: F64
    """(objectives, arms, rows); ``low``, ``high`` likewise: the effect and its interval."""
    low: F64
    high: F64
    value_arms: tuple[str, ...] = ()
    """The arms of the values, ``none`` included, in the model's order."""
    costs: tuple[float, ...] = ()
    """Each value arm's cost (dollars)."""
    value: F64 = field(default_factory=lambda: np.zeros((0, 0)))
    """(value arms, rows): dollars net of the arm's cost; ``value_low``, ``value_high`` its interval."""
    value_low: F64 = field(default_factory=lambda: np.zeros((0, 0)))
    value_high: F64 = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def height(self) -> int:
        """Rows of the long frame."""
        return len(self.objectives) * len(self.arms) * self.ids.height

    def effect_usd(self, objective: int, arm: NDArray[np.int64], rows: NDArray[np.int64]) -> F64:
        """Objective dollars of the effects of (``arm``, ``rows``) pairs, as the long frame has them."""
        if self.constant[objective]:
            return np.zeros(len(rows))
        out: F64 = self.effect[objective, arm, rows] * self.per_unit[objective, rows]
        return out

    def frame(self) -> pl.DataFrame:
        """The long frame (:attr:`EffectProjection.effects`), made as the projection made it, chunk by chunk."""
        if not self.objectives or not self.arms:
            return _empty_effects()
        parts = []
        ends = (*self.starts[1:], self.ids.height)
        for start, end in zip(self.starts, ends, strict=True):
            ids = self.ids.slice(start, end - start)
            for o, objective in enumerate(self.objectives):
                baseline = self.baseline[o, start:end]
                labels = (objective, self.outcomes[o], self.units[o])
                for a, arm in enumerate(self.arms):
                    effect = self.effect[o, a, start:end]
                    usd = np.zeros(end - start) if self.constant[o] else effect * self.per_unit[o, start:end]
                    low, high = self.low[o, a, start:end], self.high[o, a, start:end]
                    parts.append(_effect_frame(ids, arm, labels, baseline, effect, low, high, usd, self.pooled[a]))
        return pl.concat(parts)

    def values_frame(self) -> pl.DataFrame:
        """The values (:attr:`EffectProjection.values`), made as the projection made them, chunk by chunk."""
        flagged = {self.arms[a] for a, pooled in enumerate(self.pooled) if pooled}
        parts = []
        ends = (*self.starts[1:], self.ids.height)
        for start, end in zip(self.starts, ends, strict=True):
            ids, n = self.ids.slice(start, end - start), end - start
            for i, arm in enumerate(self.value_arms):
                cost = self.costs[i]
                data = pl.DataFrame(
                    {
                        "action_id": [arm] * n,
                        "value_usd": self.value[i, start:end],
                        "low": self.value_low[i, start:end],
                        "high": self.value_high[i, start:end],
                        "cost_usd": np.full(n, cost),
                        "pooled": np.full(n, arm in flagged),
                    },
                    schema=_VALUE_SCHEMA,
                )
                parts.append(pl.concat([ids, data], how="horizontal"))
        return pl.concat(parts)


class EffectProjection:
    """Projected effects for a snapshot: per account × action × objective, and per account × action in dollars.

    ``effects`` columns: ``account_id, action_id, objective, outcome, unit`` (``probability`` or
    ``usd``), ``baseline`` (the do-nothing level: probability, or expected dollars for amount
    objectives), ``effect``, ``low``, ``high`` (the interval at :attr:`level`), ``effect_usd``
    (objective dollars of the effect: weighted, signed) and ``pooled`` (the action is flagged and
    uses the pooled effect).

    ``values`` columns: ``account_id, action_id, value_usd`` (objective dollars of all effects minus
    the action's cost), ``low, high`` (its interval), ``cost_usd, pooled``. ``none`` is included,
    worth exactly 0.

    :meth:`EffectModel.project` keeps the effects and values as arrays (:attr:`arrays`): the long
    effects frame is made the first time ``effects`` is read (and kept), the values frame each time
    ``values`` is read (not kept: the decision reads it once, the evidence reads the arrays). A
    projection made from frames has no arrays.
    """

    def __init__(
        self,
        level: float,
        effects: pl.DataFrame | None = None,
        values: pl.DataFrame | None = None,
        flagged_actions: tuple[str, ...] = (),
        *,
        arrays: EffectArrays | None = None,
    ) -> None:
        if arrays is None and (effects is None or values is None):
            raise ConfigError("a projection needs its effects and values, as frames or as arrays")
        self.level = level
        self.flagged_actions = tuple(flagged_actions)
        self.arrays = arrays
        self._effects = effects
        self._values = values

    @property
    def values(self) -> pl.DataFrame:
        """One row per account × arm, ``none`` included (made from :attr:`arrays` each time it is read)."""
        if self._values is not None:
            return self._values
        assert self.arrays is not None
        return self.arrays.values_frame()

    @property
    def effects(self) -> pl.DataFrame:
        """The long frame: one row per account × arm × objective (made from :attr:`arrays` when first read)."""
        if self._effects is None:
            assert self.arrays is not None
            self._effects = self.arrays.frame()
        return self._effects

    @property
    def effects_height(self) -> int:
        """Rows of :attr:`effects`, without making the frame."""
        if self._effects is None and self.arrays is not None:
            return self.arrays.height
        return self.effects.height

    def __repr__(self) -> str:
        return (
            f"EffectProjection(level={self.level}, flagged_actions={self.flagged_actions}, "
            f"effects={self.effects_height:,} rows)"
        )

    def best(self, eligible: pl.DataFrame | None = None) -> pl.DataFrame:
        """Each account's action of highest projected value; ``none`` when no action is worth more than 0.

        Parameters
        ----------
        eligible
            Optional ``account_id, action_id`` pairs allowed (other pairs are skipped; ``none`` is
            always allowed), e.g. from eligibility and contact rules.

        Returns
        -------
        polars.DataFrame
            ``account_id`` (and ``decision_ts`` when projected for decisions), ``action_id,
            value_usd, low, high``.
        """
        values = self.values
        if eligible is not None:
            allowed = eligible.select(pl.col("account_id").cast(pl.String), pl.col("action_id").cast(pl.String))
            values = pl.concat(
                [
                    values.join(allowed, on=["account_id", "action_id"], how="semi"),
                    values.filter(pl.col("action_id") == NO_ACTION),
                ]
            ).unique(["account_id", "action_id"], maintain_order=True)
        ranked = values.with_columns((pl.col("action_id") != NO_ACTION).alias("_acts")).sort(
            ["account_id", "value_usd", "_acts"], descending=[False, True, False]
        )
        return (
            ranked.group_by("account_id", maintain_order=True)
            .first()
            .select("account_id", "action_id", "value_usd", "low", "high")
        )

    def _by_position(self) -> EffectArrays | None:
        """The arrays when each projected row is one account (positions name accounts), else None."""
        arrays = self.arrays
        if arrays is None:
            return None
        ids = arrays.ids.get_column("account_id")
        return arrays if ids.n_unique() == ids.len() else None

    @property
    def arm_ids(self) -> list[str]:
        """The arms with effects (every arm but ``none``), without making the long frame."""
        if self.arrays is not None:
            return list(self.arrays.arms) if self.arrays.objectives else []
        return self.effects.get_column("action_id").unique().to_list()

    def baselines(self) -> pl.DataFrame:
        """``account_id, objective, outcome, unit, baseline``: each account's do-nothing level per objective.

        What grouping :attr:`effects` by account and objective and taking the first row gives
        (objective by objective), made from the arrays when positions name accounts, so a large
        projection's long frame is not made for it.
        """
        arrays = self._by_position()
        if arrays is None:
            return (
                self.effects.group_by("account_id", "objective", maintain_order=True)
                .agg(pl.col("outcome").first(), pl.col("unit").first(), pl.col("baseline").first())
                .select(
                    pl.col("account_id").cast(pl.String),
                    pl.col("objective").cast(pl.String),
                    pl.col("outcome").cast(pl.String),
                    pl.col("unit").cast(pl.String),
                    pl.col("baseline").cast(pl.Float64),
                )
            )
        schema = {"account_id": pl.String, "objective": pl.String, "outcome": pl.String, "unit": pl.String}
        if not arrays.arms or not arrays.objectives:
            return pl.DataFrame(schema={**schema, "baseline": pl.Float64})
        ids = arrays.ids.select(pl.col("account_id").cast(pl.String))
        return pl.concat(
            [
                ids.with_columns(
                    pl.lit(objective, pl.String).alias("objective"),
                    pl.lit(arrays.outcomes[o], pl.String).alias("outcome"),
                    pl.lit(arrays.units[o], pl.String).alias("unit"),
                    pl.Series("baseline", arrays.baseline[o], pl.Float64),
                )
                for o, objective in enumerate(arrays.objectives)
            ]
        )

    def pair_effects(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """The effects of given (account, arm) pairs: ``pairs`` (``account_id, _key``: the arm, and any
        other columns) inner-joined with :attr:`effects` on the account and the arm, one row per pair
        found and objective, with ``objective, outcome, unit, baseline, effect, low, high, effect_usd``.

        Gathered from the arrays by position when positions name accounts, so a large projection's
        long frame is not made for it; rows come objective by objective, each in the pairs' order.
        """
        cols = ("objective", "outcome", "unit", "baseline", "effect", "low", "high", "effect_usd")
        arrays = self._by_position()
        if arrays is None:
            effects = self.effects.select(
                pl.col("account_id").cast(pl.String),
                pl.col("action_id").cast(pl.String).alias("_key"),
                *(pl.col(c).cast(pl.String) for c in cols[:3]),
                *(pl.col(c).cast(pl.Float64) for c in cols[3:]),
            )
            return pairs.join(effects, on=["account_id", "_key"], how="inner", maintain_order="left")
        where = arrays.ids.select(pl.col("account_id").cast(pl.String)).with_row_index("_row")
        arm_codes = pl.DataFrame(
            {"_key": list(arrays.arms), "_arm": list(range(len(arrays.arms)))},
            schema={"_key": pl.String, "_arm": pl.Int64},
        )
        found = pairs.join(where, on="account_id", how="inner", maintain_order="left").join(
            arm_codes, on="_key", how="inner", maintain_order="left"
        )
        rows = found.get_column("_row").to_numpy().astype(np.int64)
        arm = found.get_column("_arm").to_numpy().astype(np.int64)
        found = found.drop("_row", "_arm")
        parts = [
            found.with_columns(
                pl.lit(objective, pl.String).alias("objective"),
                pl.lit(arrays.outcomes[o], pl.String).alias("outcome"),
                pl.lit(arrays.units[o], pl.String).alias("unit"),
                pl.Series("baseline", arrays.baseline[o, rows], pl.Float64),
                pl.Series("effect", arrays.effect[o, arm, rows], pl.Float64),
                pl.Series("low", arrays.low[o, arm, rows], pl.Float64),
                pl.Series("high", arrays.high[o, arm, rows], pl.Float64),
                pl.Series("effect_usd", arrays.effect_usd(o, arm, rows), pl.Float64),
            )
            for o, objective in enumerate(arrays.objectives)
        ]
        if not parts:
            return pairs.join(
                _empty_effects().select(
                    pl.col("account_id").cast(pl.String), pl.col("action_id").cast(pl.String).alias("_key"), *cols
                ),
                on=["account_id", "_key"],
                how="inner",
            )
        return pl.concat(parts)


def _amounts_over(projection: EffectProjection, objective: str, limit: float) -> tuple[int, dict[str, Any]] | None:
    """How many accounts project an amount larger in size than ``limit`` dollars (a gain or a loss) of an
    amount objective with or without some action, and the largest such projection (``account_id, action_id,
    usd``, with its sign); None when none does.

    Read from the arrays (arm by arm) when the projection has them, so a large projection's long
    frame is not made for it.
    """
    arrays = projection.arrays
    if arrays is None or projection._effects is not None or objective not in arrays.objectives:
        level = pl.col("baseline") + pl.col("effect")
        rows = projection.effects.filter(pl.col("objective") == objective).select(
            "account_id",
            "action_id",
            pl.when(level.abs() > pl.col("baseline").abs()).then(level).otherwise(pl.col("baseline")).alias("usd"),
        )
        over = rows.filter(pl.col("usd").abs() > limit)
        if over.height == 0:
            return None
        top = over.sort(pl.col("usd").abs(), descending=True).row(0, named=True)
        return over.get_column("account_id").n_unique(), top
    o = arrays.objectives.index(objective)
    baseline = arrays.baseline[o]
    hit = np.zeros(len(baseline), dtype=bool)
    best: tuple[float, int, int] | None = None
    for a in range(len(arrays.arms)):
        level = baseline + arrays.effect[o, a]
        usd = np.where(np.abs(level) > np.abs(baseline), level, baseline)
        size = np.abs(usd)
        over = size > limit
        if not over.any():
            continue
        hit |= over
        i = int(np.argmax(np.where(over, size, -np.inf)))
        if best is None or size[i] > abs(best[0]):
            best = (float(usd[i]), a, i)
    if best is None:
        return None
    accounts = arrays.ids.get_column("account_id").filter(pl.Series(hit)).n_unique()
    usd, a, i = best
    return accounts, {"account_id": arrays.ids.get_column("account_id")[i], "action_id": arrays.arms[a], "usd": usd}


@dataclass
class _ObjectiveFit:
    """What is learned for one objective (internal)."""

    spec: ObjectiveSpec
    events: int
    constant: float | None = None
    """Event rate used when the outcome is too rare to model (then no boosters)."""
    boosters: list[lgb.Booster] = field(default_factory=list)
    n_trees: int = 0
    """Trees of each fold model used for predictions (chosen by the held-out folds' deviance)."""
    deviance_by_trees: F64 = field(default_factory=lambda: np.zeros(0))
    """Held-out deviance of the fold models after 1, 2, … trees (summed over folds)."""
    beta0: float = 0.0
    beta0_var: float = 0.0
    group_beta0: F64 = field(default_factory=lambda: np.zeros(1))
    """Per behavior group: the do-nothing rows' logit correction of the baseline (zeros without groups)."""
    delta: F64 = field(default_factory=lambda: np.zeros(0))
    delta_var: F64 = field(default_factory=lambda: np.zeros(0))
    raw_delta: F64 = field(default_factory=lambda: np.zeros(0))
    raw_delta_var: F64 = field(default_factory=lambda: np.zeros(0))
    events_by_arm: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    amount_boosters: list[lgb.Booster] = field(default_factory=list)
    amount_constant: float = 1.0
    """Mean amount per event relative to scale (used when there are too few events for a regressor)."""
    amount_reference: float = 0.0
    """Log multiplier that recalibrates the amount regressor to the do-nothing events."""
    amount_max: float = 0.0
    """Amount objectives: the largest amount after one training decision, in dollars (the history's scale);
    of their size when ``amount_sign`` is −1."""
    amount_sign: float = 1.0
    """Amount objectives: −1 when this fit's amounts are negative (refunds, downgrades), modelled by their size
    (its outcome model is of a negative amount, its amount model of the size of one); +1 otherwise."""
    negative_part: _ObjectiveFit | None = None
    """Amount objectives whose amounts have both signs: the fit of the negative ones (``amount_sign`` −1), whose
    dollars the projection adds to this fit's, which then models the positive ones."""
    init_logit: float = 0.0
    """The fold models' starting score when they were grown from init scores (partial horizons), which
    their raw predictions leave out; 0 otherwise (LightGBM then starts from the mean by itself)."""
    log_mult: F64 = field(default_factory=lambda: np.zeros(0))
    log_mult_var: F64 = field(default_factory=lambda: np.zeros(0))
    repeat_slope: float = 0.0
    """Log-change of every arm's shift per standard deviation of the recency of the same action."""
    repeat_slope_var: float = 0.0
    count_slope: float = 0.0
    """Log-change of every arm's shift per standard deviation of the count of the same action's recent touches."""
    count_slope_var: float = 0.0
    fatigue_slope: float = 0.0
    """Log-change of every arm's shift per standard deviation of the account's recent touches of any action."""
    fatigue_slope_var: float = 0.0
    touch_cost_slope: float = 0.0
    """Logit added to every action (not ``none``) per standard deviation of the account's recent touches."""
    touch_cost_slope_var: float = 0.0
    group_delta: F64 = field(default_factory=lambda: np.zeros((0, 1)))
    """Shape (arms, groups): each arm's shift in each behavior group (one column without groups)."""
    group_delta_var: F64 = field(default_factory=lambda: np.zeros((0, 1)))
    group_raw: F64 = field(default_factory=lambda: np.zeros((0, 1)))
    """Shape (arms, groups): the cells' own shifts before shrinkage (NaN where the arm has no row in the group)."""
    contrast_center: F64 = field(default_factory=lambda: np.zeros(0))
    """Per arm: the mean S-learner contrast of the arm's training rows (NaN: the arm gets no contrast)."""
    contrast_slope: float = 0.0
    """Logit change per unit of an account's centred S-learner contrast (``contrast_modifier``)."""
    contrast_slope_var: float = 0.0
    code_trees: list[list[CodeTree]] = field(default_factory=list)
    """Per fold model: its trees that split on the arm, each alone (made on first use; see ``_contrasts``)."""
    group_events: I64 = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int64))
    """Shape (arms, groups): training rows with the outcome, per cell."""
    rloss_boosters: dict[int, list[lgb.Booster]] = field(default_factory=dict)
    """``rloss_effect``: per arm code, the fold models of the correction of its effect (probability scale)."""
    rloss_trees: dict[int, int] = field(default_factory=dict)
    """Per arm code: the trees of the correction used (chosen by the held-out R-loss; 0: not used)."""
    rloss_linear: dict[int, F64] = field(default_factory=dict)
    """``rloss_features="linear"``: per arm code, the correction's intercept and slope on the propensity."""
    rloss_loss: dict[int, F64] = field(default_factory=dict)
    """Per arm code: the held-out R-loss (summed over folds) after 0, 1, … trees."""


@dataclass(frozen=True)
class _PartProjection:
    """One fit's share of an objective's projection of a chunk (internal): its do-nothing level and, arm by
    arm (``none`` left out), its effect and draws of the effect divided by ``row_scale``; no arms for a
    constant fit."""

    baseline: F64
    row_scale: F64
    arms: Iterator[tuple[F64, F32]] | None


@dataclass(frozen=True)
class _Chunk:
    """What every objective's projection of a chunk of accounts reads (internal)."""

    x: NDArray[np.float32]
    ids: pl.DataFrame
    scale: F64
    arr: F64
    repeat_z: F64
    count_z: F64
    fatigue_z: F64
    touch_z: F64
    groups: I64
    level: float
    proba: F64 | None = None


@dataclass
class _FoldData:
    """The binned model matrix and every fold's training and scored held-out subsets (internal, fit only)."""

    data: lgb.Dataset
    train_idx: list[I64] = field(default_factory=list)
    train: list[lgb.Dataset] = field(default_factory=list)
    held_rows: list[int] = field(default_factory=list)
    """Held-out rows of every fold (the scored ones may be a sample of them)."""
    scored_idx: list[I64] = field(default_factory=list)
    scored: list[lgb.Dataset | None] = field(default_factory=list)


# ---- the model --------------------------------------------------------------------------------


class EffectModel:
    """Per-account effects of every action on every objective, learned from confounded history.

    ``effect(a, o, x) = E[Y_o | do(a), x] − E[Y_o | do(nothing), x]``, for every action ``a`` of
    the playbook (and every arm the history holds), every objective ``o`` (a probability for event
    objectives, dollars for ``value = "amount"`` ones) and every account snapshot ``x``.

    How (details and measurements in ``docs/effects.md``):

    1. **Outcome model, cross-fitted by account.** For each objective, a LightGBM classifier of the
       outcome given the features *and the action* (a categorical feature), fitted ``n_folds``
       times, each time without one fold of accounts. Its prediction under ``none`` is the
       account's do-nothing baseline logit ``f(x)``; a row's baseline comes from the fold model that
       never saw its account. Amount objectives add a regressor of the amount per event (relative
       to ``scale_column``, ARR by default).
    2. **Per-action effects on the logit scale.** Each arm's shift ``β_a`` is fitted on the rows
       that took it with ``f(x)`` as an offset (a logistic fit with one parameter per arm; the same
       for ``none``); the effect is ``σ(f(x) + β_a) − σ(f(x) + β_none)``. With
       ``calibration_weights="propensity"`` the fits are inverse-propensity weighted, which makes
       each arm's mean outcome doubly robust. Heterogeneity comes through the baseline: where an
       outcome cannot happen (no renewal in the horizon) the effect is 0, where it is likely the
       same shift moves more.
    3. **Shrinkage.** Arm shifts are shrunk toward the pooled shift of all arms by empirical Bayes
       (precision weighted, DerSimonian–Laird between-arm variance): rare arms move toward the
       pool. Arms the history never or almost never took (flagged by the overlap report) get the
       pooled shift with its between-arm spread: a wide interval, not a wild guess.
    4. **Account-level modifiers of the shift.** Behavior groups (``n_groups``, k-means of the
       rows' standardised behavior features): every arm's shift is also fitted per group and
       shrunk toward the arm's own by empirical Bayes, so thin cells fall back to the arm; the
       baseline gets a per-group correction on the do-nothing rows. And one slope per objective
       on the account's centred S-learner contrast of the fold models (``contrast_modifier``).
       An account is projected with its group's shifts plus its contrast term.
    5. **Intervals.** Draws combine the cross-fit spread of the baseline (jackknife-scaled), the
       posterior of the arm shifts and an account-level heterogeneity of the shift
       (``heterogeneity_sd``, logit scale); the interval is the draws' central ``level`` range,
       widened by ``interval_scale``. Both were calibrated to cover the lab's true effects at the
       nominal level (``docs/effects.md``).

    Propensities come from the touch log where present, else from a cross-fitted multinomial
    model (:class:`~nextmove.models.propensity.PropensityModel`); censored rows (horizon not over)
    are left out of training.

    Follows the scikit-learn contract: ``__init__`` stores the arguments, :meth:`fit` checks them
    and returns ``self``, learned state ends in ``_``; :meth:`project` before :meth:`fit` raises
    :class:`~nextmove.errors.NotFittedError`. The same data and ``random_state`` give the same model.

    Parameters
    ----------
    playbook
        Objectives (targets and dollars) and the action catalog (arms and costs).
    n_folds
        Cross-fitting folds, by account.
    level
        Default interval level.
    clip
        ``(low, high)`` clip of propensities used as weights.
    calibration_weights
        ``none`` (each arm's shift fitted on its rows as they are) or ``propensity``
        (inverse-propensity weighted).
    use_logged_propensities
        Use the touch log's ``propensity`` where present.
    variants
        Treat ``action:variant`` as separate arms when the training set has a ``variant`` column.
    min_rows, min_ess
        Arms taken fewer times, or whose weights are worth fewer rows, are flagged and pooled.
    min_events
        Fewest outcome events to model an objective (fewer: its effects are 0).
    min_between_sd
        Floor of the between-arm spread of logit shifts used by the shrinkage: arms are taken
        to differ by at least this much, so only arms whose own estimate is vaguer than that
        move much toward the pool (the estimated spread alone pulled well-measured arms, such as
        the renewal incentive's churn effect, halfway to the pool and cost 2–4 points of regret).
    heterogeneity_sd
        Standard deviation of an account's true logit shift around its arm's shift, for intervals.
    interval_scale
        Multiplier of the interval's half-widths.
    n_draws
        Draws per account for intervals.
    scale_column
        Amounts are modelled relative to this column (ARR) when present; None: in dollars.
    exclude
        Feature columns left out.
    n_estimators, learning_rate, num_leaves, min_child_samples, min_child_weight, reg_lambda, colsample, max_bin
        LightGBM settings of the outcome models.
    subsample
        Share of rows each tree is grown on (bagging): it regularises the outcome models, which
        measured better in the lab than growing every tree on all rows.
    max_rows_per_tree
        Each tree is grown on at most this many rows (a smaller share when there are more), so
        training time stops growing with the rows: a million rows train about as fast as 150,000.
    min_amount_rows
        Fewest event rows to fit an amount regressor (fewer: the mean amount).
    select_trees
        Use, for each objective, the number of trees (at most ``n_estimators``) at which the fold
        models' deviance on their held-out folds is lowest; False: all ``n_estimators``. Rare
        outcomes stop early, which keeps their baselines from overfitting.
    repeat_feature
        Column that says how many days ago the same action was last done to the account
        (``{action}`` is the action's stem, :meth:`~nextmove.features.FeatureVocabulary.action_stem`;
        null: never), used to learn how much an action repeated recently loses (or gains) of its
        effect; None: every account gets its arm's shift.
    repeat_days
        An earlier touch with the same action counts as ``exp(−days / repeat_days)``.
    repeat_ridge
        Ridge penalty of that one slope per objective (on the standardised recency), and of the
        count, fatigue and touch-cost slopes.
    repeat_count_feature
        Column template (``{action}`` as in ``repeat_feature``) counting the account's recent
        touches with the same action, e.g. ``"touch_{action}_count_90d"``: every arm's shift is
        also multiplied by ``exp(κ · z)``, ``z`` the standardised count, one ``κ`` per objective
        fitted with the repeat slope, so the second and third repeat can do less than the first.
        None (the default): the recency of the last touch alone.
    fatigue_feature
        Column counting the account's recent touches of any action (e.g.
        ``"touch_any_count_90d"``); every arm's shift is multiplied by ``exp(φ · z)``, ``z`` the
        standardised ``log(1 + count)``, with one ``φ`` per objective fitted with the repeat
        slope: a busy account may gain less from one more touch. None (the default, or a book
        without the column): no fatigue term. Off by default because it did not help in the lab
        (see docs/effects.md).
    touch_cost_feature
        Column counting the account's recent touches of any action (e.g.
        ``"touch_any_count_28d"``): every action (not ``none``) adds ``α · z`` to the outcome's
        logit, ``z`` the standardised count, one ``α`` per objective fitted with the repeat slope.
        Unlike the fatigue factor, which can only shrink a shift, this can turn an action harmful:
        one more touch on an account already kept busy may raise its churn whatever the action
        is. None (the default, or a book without the column): no such term.
    partial_horizon_days
        Learn from decisions whose horizon is still open once at least this many days of it were
        seen (e.g. ``28``): their labels count what happened so far, the outcome models start each
        such row from the log of the share of its horizon seen and read the unseen share as a
        feature, and projections are made for the whole horizon (unseen share 0). A loop that
        refits every few weeks then learns from its own decisions months before their horizons
        close. None (the default): such rows are left out (it did worse on a single run of the
        lab; see docs/learning.md).
    n_groups
        Behavior groups whose response to an action may differ: the training rows are clustered
        by k-means on their standardised ``group_features`` (signed log, then centred and scaled),
        every arm's shift is fitted per group and shrunk toward the arm's shift by empirical
        Bayes, and an account is projected with its group's shifts. 0 or 1: one shift per arm.
    min_group_sd
        Floor of the between-group spread of an arm's shifts used by that shrinkage (0: the
        DerSimonian–Laird estimate alone, so groups that differ no more than their noise get the
        arm's shift).
    group_features
        Columns the groups are formed on (None: :func:`~nextmove.features.names.behavior_features`,
        the signals' levels and frequencies over the longest window).
    contrast_modifier
        Add to every arm's shift one slope per objective times the account's centred S-learner
        contrast ``f(x, a) − f(x, none)`` of the fold models.
    rloss_effect
        Correct every arm's effect on each event objective where the history's targeting biased it:
        per arm against ``none``, a correction of the effect (probability scale) fitted on the
        R-loss ``Σ (Y − m(x) − (τ(x) + g(x))·(T − e(x)))²``, ``e`` the history's propensity of the arm
        among the two (the propensity model's out-of-fold estimates of every arm, so the
        multinomial model is fitted even when every propensity is logged), ``m`` and ``τ`` the
        current model's outcome and effect. With the propensity right, the fit is unbiased
        whatever ``m``'s error; the correction is shrunk per account toward 0 by its variance
        (``rloss_shrink``). Amount objectives are not corrected.
    rloss_ridge
        Ridge of the correction, in units of the R-loss weights ``(T − e)²``.
    rloss_trees
        Most trees of a boosted correction (``rloss_features`` other than ``linear``), chosen by the
        held-out R-loss.
    rloss_params
        Extra LightGBM settings of a boosted correction.
    rloss_features
        What the correction varies with: ``linear`` (default), ``a + b·e(x)``, linear in the arm's
        propensity against ``none`` by weighted least squares with a sandwich covariance; or a
        boosted ``g(x)`` of the propensity alone (``propensity``), of the propensity, current effect
        and baseline (``propensity+current``), or of every feature (``all``), cross-fitted and
        kept only with the trees that lower the held-out R-loss. The boosted ones measured worse.
    rloss_shrink
        ``linear``: each account's correction ``g`` is multiplied by ``max(0, 1 − k·var(g)/g²)``
        (``k`` = this; 0: by ``g²/(g² + var g)``), so a correction within about ``√k`` standard
        errors of 0 is dropped.
    propensity_params
        Extra settings of the :class:`PropensityModel` (e.g. ``{"n_estimators": 100}``).
    random_state
        Seed of folds, LightGBM and draws.
    n_jobs
        Threads (default 1; None: all cores). The fold models and the projection's objectives run
        side by side on up to ``n_jobs`` Python threads, each LightGBM call there naming one thread;
        the calls made between (held-out scores, the propensity model's and the receipts' predicts)
        name ``n_jobs``. With one, every LightGBM call names one thread and the model may be used
        from several Python threads at once (docs/models.md, "Threads and LightGBM").
    vocabulary
        The training set's vocabulary (:func:`~nextmove.features.training_vocabulary`), to find
        each objective's label columns and each action's touch columns by its exact name (default:
        the stem a name spelt as its stem keeps, or gets when no other name sanitises alike).

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> model = EffectModel(load_playbook())
    >>> model.project(pl.DataFrame({"account_id": ["a"]}))
    Traceback (most recent call last):
    ...
    nextmove.errors.NotFittedError: this EffectModel is not fitted yet: call fit(training) first

    See ``docs/effects.md`` for a runnable end-to-end example.
    """

    def __init__(
        self,
        playbook: Playbook,
        *,
        n_folds: int = 5,
        level: float = 0.9,
        clip: tuple[float, float] = (0.01, 1.0),
        calibration_weights: Literal["none", "propensity"] = "none",
        use_logged_propensities: bool = True,
        variants: bool = True,
        min_rows: int = 30,
        min_ess: float = 10.0,
        min_events: int = 5,
        min_between_sd: float = 1.0,
        heterogeneity_sd: float = 0.3,
        interval_scale: float = 1.0,
        n_draws: int = 200,
        scale_column: str | None = "arr",
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        n_estimators: int = 150,
        learning_rate: float = 0.1,
        num_leaves: int = 31,
        min_child_samples: int = 200,
        min_child_weight: float = 1.0,
        reg_lambda: float = 10.0,
        colsample: float = 0.3,
        max_bin: int = 63,
        subsample: float = 0.5,
        max_rows_per_tree: int = 60_000,
        min_amount_rows: int = 50,
        select_trees: bool = True,
        repeat_feature: str | None = "touch_{action}_days_since",
        repeat_days: float = 180.0,
        repeat_ridge: float = 10.0,
        repeat_count_feature: str | None = None,
        fatigue_feature: str | None = None,
        touch_cost_feature: str | None = None,
        partial_horizon_days: float | None = None,
        n_groups: int = 4,
        min_group_sd: float = 0.0,
        group_features: Sequence[str] | None = None,
        contrast_modifier: bool = True,
        rloss_effect: bool = False,
        rloss_ridge: float = 20.0,
        rloss_trees: int = 40,
        rloss_params: dict[str, Any] | None = None,
        rloss_features: Literal["linear", "propensity", "propensity+current", "all"] = "linear",
        rloss_shrink: float = 2.0,
        propensity_params: dict[str, Any] | None = None,
        random_state: int = 0,
        n_jobs: int | None = 1,
        vocabulary: FeatureVocabulary | None = None,
    ) -> None:
        self.playbook = playbook
        self.n_folds = n_folds
        self.level = level
        self.clip = clip
        self.calibration_weights = calibration_weights
        self.use_logged_propensities = use_logged_propensities
        self.variants = variants
        self.min_rows = min_rows
        self.min_ess = min_ess
        self.min_events = min_events
        self.min_between_sd = min_between_sd
        self.heterogeneity_sd = heterogeneity_sd
        self.interval_scale = interval_scale
        self.n_draws = n_draws
        self.scale_column = scale_column
        self.exclude = exclude
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.colsample = colsample
        self.max_bin = max_bin
        self.subsample = subsample
        self.max_rows_per_tree = max_rows_per_tree
        self.min_amount_rows = min_amount_rows
        self.select_trees = select_trees
        self.repeat_feature = repeat_feature
        self.repeat_days = repeat_days
        self.repeat_ridge = repeat_ridge
        self.repeat_count_feature = repeat_count_feature
        self.fatigue_feature = fatigue_feature
        self.touch_cost_feature = touch_cost_feature
        self.partial_horizon_days = partial_horizon_days
        self.n_groups = n_groups
        self.min_group_sd = min_group_sd
        self.group_features = group_features
        self.contrast_modifier = contrast_modifier
        self.rloss_effect = rloss_effect
        self.rloss_ridge = rloss_ridge
        self.rloss_trees = rloss_trees
        self.rloss_params = rloss_params
        self.rloss_features = rloss_features
        self.rloss_shrink = rloss_shrink
        self.propensity_params = propensity_params
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.vocabulary = vocabulary

    _PARAM_NAMES = (
        "n_folds",
        "level",
        "clip",
        "calibration_weights",
        "use_logged_propensities",
        "variants",
        "min_rows",
        "min_ess",
        "min_events",
        "min_between_sd",
        "heterogeneity_sd",
        "interval_scale",
        "n_draws",
        "scale_column",
        "exclude",
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "min_child_samples",
        "min_child_weight",
        "reg_lambda",
        "colsample",
        "max_bin",
        "subsample",
        "max_rows_per_tree",
        "min_amount_rows",
        "select_trees",
        "repeat_feature",
        "repeat_days",
        "repeat_ridge",
        "repeat_count_feature",
        "fatigue_feature",
        "touch_cost_feature",
        "partial_horizon_days",
        "n_groups",
        "min_group_sd",
        "group_features",
        "contrast_modifier",
        "rloss_effect",
        "rloss_ridge",
        "rloss_trees",
        "rloss_params",
        "rloss_features",
        "rloss_shrink",
        "propensity_params",
        "random_state",
        "n_jobs",
        "vocabulary",
    )

    _FITTED_NAMES = (
        "fit_seconds_",
        "n_open_rows_",
        "partial_used_",
        "specs_",
        "arms_",
        "arm_costs_",
        "propensity_model_",
        "overlap_",
        "flagged_arms_",
        "matrix_",
        "n_groups_",
        "group_model_",
        "scale_default_",
        "scale_used_",
        "n_rows_",
        "repeat_columns_",
        "repeat_center_",
        "repeat_scale_",
        "repeat_used_",
        "count_columns_",
        "count_center_",
        "count_scale_",
        "count_used_",
        "fatigue_center_",
        "fatigue_scale_",
        "fatigue_used_",
        "touch_cost_center_",
        "touch_cost_scale_",
        "touch_cost_used_",
        "fits_",
        "arm_effects_",
        "group_effects_",
        "n_trees_",
        "repeat_slopes_",
        "count_slopes_",
        "fatigue_slopes_",
        "touch_cost_slopes_",
    )
    """What every fit sets, besides the constructor's arguments (:data:`_PARAM_NAMES`).

    A model unpickled from a store must have all of them, and all of these (:meth:`missing_state`):
    one saved by an earlier nextmove, before an attribute was added, is refused at load instead
    of failing half-way through a projection. A test holds this list to the class's own code."""

    _FITTED_SOMETIMES = (
        "horizon_days_",
        "group_columns_",
        "group_center_",
        "group_spread_",
        "n_logged_propensities_",
    )
    """What only some fits set (open horizons learned from; behavior groups learned), read only then; or what
    models saved before it was added lack, read with a default (``n_logged_propensities_``: a note only)."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, by name (``playbook`` included)."""
        return {"playbook": self.playbook, **{name: getattr(self, name) for name in self._PARAM_NAMES}}

    def missing_state(self) -> list[str]:
        """What this fitted model lacks of the state this version of the class reads, by name; empty when whole.

        A model is saved pickled: one fitted by an earlier nextmove, before a setting or a learned
        attribute was added, unpickles without it and would fail on first use (an
        ``AttributeError`` half-way through a projection). Checks the constructor's arguments, what
        every fit sets (:data:`_FITTED_NAMES`) and every field of each objective's fit; an objective's
        field with a plain default reads as that default (``amount_max``: 0).
        """
        have = vars(self)
        missing = [name for name in ("playbook", *self._PARAM_NAMES, *self._FITTED_NAMES) if name not in have]
        lacking = {f.name for fit in have.get("fits_") or () for f in fields(_ObjectiveFit) if not hasattr(fit, f.name)}
        return missing + [f"fits_.{name}" for name in sorted(lacking)]

    def __repr__(self) -> str:
        return (
            f"EffectModel(n_folds={self.n_folds}, level={self.level}, calibration_weights={self.calibration_weights!r})"
        )

    # ---- validation ------------------------------------------------------------------------------

    def _validate_params(self) -> tuple[float, float]:
        if not isinstance(self.playbook, Playbook):
            raise ConfigError(f"playbook must be a nextmove Playbook, got {type(self.playbook).__name__}")
        if self.vocabulary is not None and not isinstance(self.vocabulary, FeatureVocabulary):
            raise ConfigError(
                f"vocabulary must be a FeatureVocabulary (training_vocabulary(book, playbook)) or None, "
                f"got {type(self.vocabulary).__name__}"
            )
        clip = check_clip(self.clip)
        _check_level(self.level)
        if self.calibration_weights not in ("none", "propensity"):
            raise ConfigError(f"calibration_weights must be 'none' or 'propensity', got {self.calibration_weights!r}")
        for name in (
            "n_folds",
            "min_rows",
            "min_events",
            "n_draws",
            "n_estimators",
            "num_leaves",
            "min_child_samples",
            "max_bin",
            "max_rows_per_tree",
            "min_amount_rows",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.n_folds < 2:
            raise ConfigError(f"n_folds must be at least 2, got {self.n_folds!r}")
        if not isinstance(self.rloss_effect, bool):
            raise ConfigError(f"rloss_effect must be true or false, got {self.rloss_effect!r}")
        if isinstance(self.rloss_ridge, bool) or not isinstance(self.rloss_ridge, int | float) or self.rloss_ridge < 0:
            raise ConfigError(f"rloss_ridge must be a number >= 0, got {self.rloss_ridge!r}")
        if isinstance(self.rloss_trees, bool) or not isinstance(self.rloss_trees, int) or self.rloss_trees < 1:
            raise ConfigError(f"rloss_trees must be a whole number >= 1, got {self.rloss_trees!r}")
        if self.rloss_features not in ("linear", "propensity", "propensity+current", "all"):
            raise ConfigError(
                "rloss_features must be 'linear', 'propensity', 'propensity+current' or 'all', "
                f"got {self.rloss_features!r}"
            )
        if (
            isinstance(self.rloss_shrink, bool)
            or not isinstance(self.rloss_shrink, int | float)
            or not math.isfinite(self.rloss_shrink)
            or self.rloss_shrink < 0
        ):
            raise ConfigError(f"rloss_shrink must be a number >= 0, got {self.rloss_shrink!r}")
        if isinstance(self.n_groups, bool) or not isinstance(self.n_groups, int) or self.n_groups < 0:
            raise ConfigError(f"n_groups must be a whole number >= 0 (0 or 1: no groups), got {self.n_groups!r}")
        for name in (
            "heterogeneity_sd",
            "min_ess",
            "reg_lambda",
            "min_child_weight",
            "min_between_sd",
            "repeat_ridge",
            "min_group_sd",
        ):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.interval_scale > 0:
            raise ConfigError(f"interval_scale must be positive, got {self.interval_scale!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 < self.colsample <= 1:
            raise ConfigError(f"colsample must be in (0, 1], got {self.colsample!r}")
        if not 0 < self.subsample <= 1:
            raise ConfigError(f"subsample must be in (0, 1], got {self.subsample!r}")
        if isinstance(self.exclude, str):
            raise ConfigError("exclude must be a sequence of column names, not one string")
        if isinstance(self.group_features, str):
            raise ConfigError("group_features must be a sequence of column names, not one string")
        if self.repeat_feature is not None and (
            not isinstance(self.repeat_feature, str) or "{action}" not in self.repeat_feature
        ):
            raise ConfigError(
                "repeat_feature must be None or a column name template with '{action}', "
                f"e.g. 'touch_{{action}}_days_since', got {self.repeat_feature!r}"
            )
        if self.repeat_count_feature is not None and (
            not isinstance(self.repeat_count_feature, str) or "{action}" not in self.repeat_count_feature
        ):
            raise ConfigError(
                "repeat_count_feature must be None or a column name template with '{action}', "
                f"e.g. 'touch_{{action}}_count_90d', got {self.repeat_count_feature!r}"
            )
        if self.fatigue_feature is not None and (not isinstance(self.fatigue_feature, str) or not self.fatigue_feature):
            raise ConfigError(
                "fatigue_feature must be None or a column name, e.g. 'touch_any_count_90d', "
                f"got {self.fatigue_feature!r}"
            )
        if self.touch_cost_feature is not None and (
            not isinstance(self.touch_cost_feature, str) or not self.touch_cost_feature
        ):
            raise ConfigError(
                "touch_cost_feature must be None or a column name, e.g. 'touch_any_count_28d', "
                f"got {self.touch_cost_feature!r}"
            )
        if self.partial_horizon_days is not None and (
            isinstance(self.partial_horizon_days, bool)
            or not isinstance(self.partial_horizon_days, int | float)
            or not self.partial_horizon_days > 0
        ):
            raise ConfigError(
                "partial_horizon_days must be None or a positive number of days, e.g. 28, "
                f"got {self.partial_horizon_days!r}"
            )
        if (
            isinstance(self.repeat_days, bool)
            or not isinstance(self.repeat_days, int | float)
            or not self.repeat_days > 0
        ):
            raise ConfigError(f"repeat_days must be a positive number of days, got {self.repeat_days!r}")
        if self.n_jobs is not None and (not isinstance(self.n_jobs, int) or self.n_jobs < 1):
            raise ConfigError(f"n_jobs must be a positive whole number or None, got {self.n_jobs!r}")
        return clip

    # ---- fitting ---------------------------------------------------------------------------------

    def fit(self, training: pl.DataFrame) -> Self:
        """Learn every action's effect on every objective from a training set.

        Parameters
        ----------
        training
            One row per past decision, as :func:`~nextmove.features.build_training_set` makes:
            ``account_id``, ``action_id``, optionally ``propensity``, ``censored`` and ``variant``,
            the features and the labels ``y_{kind}`` / ``y_{kind}_value`` of the playbook's
            objectives. Rows with ``censored`` True are left out. The frame is not modified.

        Returns
        -------
        EffectModel
            ``self``, with ``arms_`` (``none`` first), ``flagged_arms_``, ``overlap_``,
            ``arm_effects_``, ``group_effects_`` (per arm × behavior group × objective: rows,
            events, raw and shrunk logit shift), ``group_model_`` (the k-means, or None),
            ``propensity_model_``, ``n_rows_`` and ``fit_seconds_``.

        Raises
        ------
        ConfigError
            If a setting is invalid or a needed column is missing.
        NothingToLearnError
            If no uncensored rows remain (a :class:`ConfigError` whose ``ready_on`` says when the
            earliest decision's horizon is over).
        """
        started = time.perf_counter()
        clip = self._validate_params()
        self.fit_seconds_: dict[str, float] = dict.fromkeys(
            ("propensity", "features", "outcomes", "outcome_models", "predictions", "amounts", "total"), 0.0
        )
        for column in ("account_id", "action_id"):
            _require(training, column, "an EffectModel")
        rows = self._training_rows(training)
        specs = objective_specs(self.playbook, self.vocabulary)
        for spec in specs:
            _require(rows, spec.value_label if spec.is_amount else spec.label, f"objective {spec.objective!r}")
            if spec.is_amount:
                _require(rows, spec.label, f"objective {spec.objective!r}")
        if any(s.basis is ValueBasis.ARR for s in specs):
            _require(rows, "arr", "an objective valued by ARR")
        self.specs_ = specs

        arm_series, propensity = self._arms_and_propensity(rows)
        # How many decisions' weights can come from the log (the rest are estimated from the features).
        self.n_logged_propensities_ = int(np.isfinite(propensity).sum())
        self.arms_ = self._arm_list(arm_series)
        codes = arm_codes(arm_series, self.arms_)
        self.arm_costs_ = np.array([self._arm_cost(a) for a in self.arms_])
        folds = account_folds(rows.get_column("account_id"), self.n_folds, self.random_state)

        t0 = time.perf_counter()
        training_for_propensity = rows.with_columns(
            pl.Series("action_id", arm_series), pl.Series("propensity", propensity, dtype=pl.Float64)
        )
        self.propensity_model_ = PropensityModel(
            clip=clip,
            use_logged=self.use_logged_propensities,
            min_rows=self.min_rows,
            min_ess=self.min_ess,
            exclude=tuple(self.exclude),
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            n_folds=self.n_folds,
            **({"estimate": "always"} if self.rloss_effect else {}),  # type: ignore[arg-type]
            **(self.propensity_params or {}),
        ).fit(training_for_propensity, arms=self.arms_, folds=folds)
        self.overlap_: OverlapReport = self.propensity_model_.overlap_
        self.flagged_arms_ = [a for a in self.overlap_.flagged_arms if a != NO_ACTION]
        propensity_seconds = time.perf_counter() - t0
        weights = 1.0 / clip_propensities(self.propensity_model_.raw_propensity_, clip)

        t_features = time.perf_counter()
        with_unseen = rows.with_columns(self._unseen_share(rows)) if self.partial_used_ else rows
        self.matrix_ = FeatureMatrix(exclude=tuple(self.exclude)).fit(with_unseen)
        # One matrix for every model: the features and, last, the arm's code (a categorical feature).
        x = self.matrix_.transform(with_unseen)
        del with_unseen
        groups = self._fit_groups(x)
        xa = self._with_arm(x, codes)
        del x  # a copy of the features lives on in xa (a gigabyte at a million rows)
        scale = self._scale(rows, fit=True)
        self.n_rows_ = rows.height
        repeat_z = self._fit_repeat(rows, codes)
        count_z = self._fit_count(rows, codes)
        fatigue_z = self._fit_fatigue(rows, codes)
        touch_z = self._fit_touch_cost(rows, codes)
        exposure = self._log_seen_share(rows) if self.partial_used_ else None
        self.fit_seconds_["features"] = time.perf_counter() - t_features

        t1 = time.perf_counter()
        self.fits_: list[_ObjectiveFit] = []
        # LightGBM bins the matrix once; each objective only swaps the label.
        shared: list[_FoldData] = []
        for spec in specs:

            def fit_objective(part: pl.DataFrame, spec: ObjectiveSpec = spec) -> _ObjectiveFit:
                return self._fit_objective(
                    spec,
                    part,
                    xa,
                    shared,
                    codes,
                    folds,
                    weights,
                    scale,
                    (repeat_z, count_z, fatigue_z, touch_z),
                    groups,
                    exposure,
                )

            self.fits_.append(self._fit_signs(spec, rows, fit_objective) if spec.is_amount else fit_objective(rows))
        shared.clear()
        self.fit_seconds_["propensity"] = propensity_seconds
        self.fit_seconds_["outcomes"] = time.perf_counter() - t1
        self.fit_seconds_["total"] = time.perf_counter() - started
        self.arm_effects_ = self._arm_effects(codes)
        self.group_effects_ = self._group_effects(codes, groups)
        self.n_trees_ = {fit.spec.objective: fit.n_trees for fit in self.fits_ if fit.constant is None}
        self.repeat_slopes_ = {fit.spec.objective: fit.repeat_slope for fit in self.fits_ if fit.constant is None}
        self.count_slopes_ = {fit.spec.objective: fit.count_slope for fit in self.fits_ if fit.constant is None}
        self.fatigue_slopes_ = {fit.spec.objective: fit.fatigue_slope for fit in self.fits_ if fit.constant is None}
        self.touch_cost_slopes_ = {
            fit.spec.objective: fit.touch_cost_slope for fit in self.fits_ if fit.constant is None
        }
        return self

    def _fit_signs(
        self, spec: ObjectiveSpec, rows: pl.DataFrame, fit_objective: Callable[[pl.DataFrame], _ObjectiveFit]
    ) -> _ObjectiveFit:
        """An amount objective fitted by the sign of its amounts, each sign by its size (not negative).

        Amounts of one sign are one fit; negative ones (refunds, chargebacks) by their size, with
        ``amount_sign`` −1. Amounts of both signs (upgrades and downgrades of one outcome kind) are two
        fits, each with its own outcome model, of a positive amount and of a negative one
        (``negative_part``): an action may move one and not the other, by more for some accounts than
        others, which one chance of either and a multiplier per arm of each sign's share could not follow.
        """
        value = pl.col(spec.value_label).cast(pl.Float64).fill_null(0.0)
        signs = rows.select((value > 0).any().alias("gains"), (value < 0).any().alias("losses")).row(0)
        gains, losses = bool(signs[0]), bool(signs[1])
        if not losses:
            return fit_objective(rows)
        if not gains:
            fit = fit_objective(rows.with_columns(-value))
            fit.amount_sign = -1.0
            return fit
        positive = fit_objective(rows.with_columns((value > 0).cast(pl.Int8).alias(spec.label), value.clip(0.0)))
        negative = fit_objective(rows.with_columns((value < 0).cast(pl.Int8).alias(spec.label), (-value).clip(0.0)))
        negative.amount_sign = -1.0
        positive.negative_part = negative
        return positive

    def _training_rows(self, training: pl.DataFrame) -> pl.DataFrame:
        """The rows to learn from: those whose horizon is over and, with ``partial_horizon_days``,
        the open ones seen for at least that long (sets ``partial_used_``, ``n_open_rows_`` and
        ``horizon_days_``)."""
        rows, self.n_open_rows_, horizon = self._learned_rows(training)
        self.partial_used_ = self.n_open_rows_ > 0
        if horizon is not None:
            self.horizon_days_ = horizon
        if training.height == 0:
            raise NothingToLearnError(
                "the training set has no decisions: the book logs no touch before the as-of time, so there is "
                "nothing to learn the actions' effects from; add the touches (a decision to do nothing is a "
                "touch with action_id 'none')",
                ready_on=None,
            )
        if rows.height == 0:
            ready_on = _earliest_finish(training, self.playbook.horizon_days)
            when = "" if ready_on is None else f"; the earliest decision's horizon is over on {ready_on:%Y-%m-%d}"
            raise NothingToLearnError(
                (
                    "the training set has no uncensored rows (every horizon is still open)"
                    if self.partial_horizon_days is None
                    else "the training set has no row whose horizon is over or seen for "
                    f"{self.partial_horizon_days} days"
                )
                + when,
                ready_on=ready_on,
            )
        return rows

    def _learned_rows(self, training: pl.DataFrame) -> tuple[pl.DataFrame, int, float | None]:
        """``_training_rows`` without its side effects: the rows, how many are open, and the horizon
        (days; None unless ``partial_horizon_days`` is in use)."""
        if "censored" not in training.columns:
            return training, 0, None
        censored = pl.col("censored").fill_null(False)
        closed = training.filter(~censored)
        if self.partial_horizon_days is None or "observed_days" not in training.columns:
            return closed, 0, None
        # The horizon is what a closed row saw; with none closed yet, the playbook's.
        seen = closed.select(pl.col("observed_days").cast(pl.Float64).max()).item() if closed.height else None
        horizon = float(seen) if seen is not None else float(self.playbook.horizon_days)
        rows = training.filter(~censored | (pl.col("observed_days") >= min(self.partial_horizon_days, horizon)))
        return rows, rows.height - closed.height, horizon

    def training_propensities(self, training: pl.DataFrame) -> pl.DataFrame | None:
        """The logging policy's propensity of every learned-from training row's action, keyed by row.

        The touch log's ``propensity`` where the row has one; elsewhere the out-of-fold estimate of
        the propensity model fitted with the effects (cross-fitted by account on the whole history,
        summed over the action's variants). Off-policy evaluation on rows of the same training set
        weights by these rather than by a model fitted on the evaluated rows alone (on the lab's book
        without logged propensities their mean absolute log ratio to the logged ones is 0.17 against
        0.30; see docs/benchmarks.md).

        Parameters
        ----------
        training
            The training set the model was fitted on (as given to :meth:`fit`).

        Returns
        -------
        polars.DataFrame or None
            ``account_id``, ``decision_ts``, ``propensity`` (NaN where neither is known), one row
            per row the fit learned from; None when ``training`` is not the frame fitted (another
            number of such rows), has no ``decision_ts``, or its rows are not unique by account and
            time.

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        """
        self._check_fitted()
        model = self.propensity_model_
        rows, _, _ = self._learned_rows(training)
        if "decision_ts" not in rows.columns or rows.height != len(model.raw_propensity_):
            return None
        actions = rows.get_column("action_id").cast(pl.String).fill_null(NO_ACTION).to_numpy()
        if "propensity" in rows.columns:
            logged = rows.get_column("propensity").cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)
        else:
            logged = np.full(rows.height, np.nan)
        estimated = np.full(rows.height, np.nan)
        proba = model.proba_
        if proba is not None:
            estimated[:] = 0.0
            for j, arm in enumerate(model.arms_):
                mine = actions == arm.partition(ARM_SEPARATOR)[0]
                estimated[mine] += proba[mine, j]
        keys = rows.select("account_id", "decision_ts")
        if keys.is_duplicated().any():
            return None
        return keys.with_columns(pl.Series("propensity", np.where(np.isfinite(logged), logged, estimated)))

    def fit_notes(self) -> list[str]:
        """What a fitted model did not do as its settings asked, or did beyond closed horizons, in plain words.

        A modifier column (``repeat_count_feature``, ``fatigue_feature``, ``touch_cost_feature``)
        that the training set lacks, or that never varies, gives no term; an objective whose outcome
        followed no decision (or fewer than ``min_events``) has no effects to learn; and with
        ``partial_horizon_days``, how many rows were learned from before their horizon closed.
        """
        self._check_fitted()
        notes = []
        for name, used in (
            ("repeat_count_feature", "count_used_"),
            ("fatigue_feature", "fatigue_used_"),
            ("touch_cost_feature", "touch_cost_used_"),
        ):
            column = getattr(self, name)
            if column is not None and not getattr(self, used, False):
                notes.append(f"{name}={column!r} gave no term: the training set has no such column, or it never varies")
        rows = int(getattr(self, "n_rows_", 0) or 0)
        for fit in self.fits_:
            if fit.negative_part is not None:
                notes.extend(self._part_notes(fit, rows))
            elif fit.constant is not None and fit.events == 0:
                notes.append(
                    f"no {fit.spec.outcome!r} outcome followed any of the {rows:,} decisions learned from: every "
                    f"action's effect on {fit.spec.objective!r} is 0 (check that the book's outcomes.kind says "
                    f"{fit.spec.outcome!r})"
                )
            elif fit.constant is not None and fit.events < self.min_events:
                notes.append(
                    f"only {fit.events} {fit.spec.outcome!r} outcome(s) followed the {rows:,} decisions learned from "
                    f"(fewer than min_events={self.min_events}): every action's effect on {fit.spec.objective!r} is 0"
                )
        logged = getattr(self, "n_logged_propensities_", None)
        if self.calibration_weights == "propensity" and logged is not None and logged < rows:
            notes.append(
                f"calibration_weights='propensity': {rows - logged:,} of the {rows:,} decisions learned from have no "
                "logged propensity, so their weights come from propensities estimated from the book's features, "
                "which cannot correct a choice made on what the features miss; log the propensity of each touch "
                "(docs/effects.md)"
            )
        if self.partial_horizon_days is not None:
            notes.append(
                f"learned from {getattr(self, 'n_open_rows_', 0):,} decisions whose horizon is still open "
                f"(seen for at least {self.partial_horizon_days:g} days)"
            )
        return notes

    def _part_notes(self, fit: _ObjectiveFit, rows: int) -> list[str]:
        """An objective whose amounts have both signs: the sign with too few amounts to learn effects on."""
        notes = []
        parts = _parts(fit)
        for part, other in zip(parts, parts[::-1], strict=True):
            if part.constant is not None:
                sign, other_sign = ("negative", "positive") if part.amount_sign < 0 else ("positive", "negative")
                learned = (
                    f", and {fit.spec.objective!r} moves by its {other_sign} ones" if other.constant is None else ""
                )
                notes.append(
                    f"only {part.events} {sign} {fit.spec.outcome!r} amount(s) followed the {rows:,} decisions "
                    f"learned from (fewer than min_events={self.min_events}): every action's effect on them is 0"
                    + learned
                )
        return notes

    def amount_notes(self, projection: EffectProjection, *, factor: float = 10.0) -> list[str]:
        """Amount objectives whose projection is far beyond any amount the history saw, in plain words.

        An expected amount (with or without an action) above ``factor`` times the largest amount
        that followed any one training decision is not something the history can support: it points
        at a broken amount column or a regressor that extrapolates. Amounts are compared by size, so a
        projected loss (refunds) is held to the largest loss seen. Empty when every projection is
        within that bound.

        Parameters
        ----------
        projection
            This model's projection of a snapshot (:meth:`project`).
        factor
            How many times the largest observed amount a projection may reach before it is noted.

        Returns
        -------
        list of str
            One note per amount objective with such projections.
        """
        self._check_fitted()
        notes = []
        scale = f" and the accounts' {self.scale_column!r}" if self.scale_column else ""
        currency = self.playbook.currency

        def money(x: float) -> str:
            # Whole amounts, as before the playbook had a currency ("$2,500", "€2,500", "CHF 2,500").
            return money_text(round(x), currency)

        for fit in self.fits_:
            # The largest amount in size of either sign (a negative amounts' fit records their size); 0 in a
            # model stored before it was recorded.
            largest, sign = max((getattr(part, "amount_max", 0.0), part.amount_sign) for part in _parts(fit))
            if not fit.spec.is_amount or largest <= 0:
                continue
            found = _amounts_over(projection, fit.spec.objective, factor * largest)
            if found is None:
                continue
            accounts, top = found
            size = "" if sign > 0 and top["usd"] > 0 else " in size"
            reach = "up to" if top["usd"] > 0 else "down to"
            notes.append(
                f"{fit.spec.objective!r}: {accounts:,} account(s) project more{size} than {factor:g}× the largest "
                f"{fit.spec.outcome!r} amount the history saw after one decision ({money(sign * largest)}), "
                f"{reach} {money(top['usd'])} for {top['account_id']} with {top['action_id']!r}; check the book's "
                f"outcomes.value{scale} before acting on these values"
            )
        return notes

    def _unseen_share(self, frame: pl.DataFrame) -> pl.Expr:
        """The share of a row's horizon not seen yet (0 when it is over), the feature partial rows add."""
        if "observed_days" not in frame.columns:
            return pl.lit(0.0).alias(UNSEEN_SHARE)
        observed = pl.col("observed_days").cast(pl.Float64).fill_null(self.horizon_days_)
        return (1.0 - observed / self.horizon_days_).clip(0.0, 1.0).alias(UNSEEN_SHARE)

    def _log_seen_share(self, rows: pl.DataFrame) -> F64:
        """``log`` of the share of each training row's horizon seen (0 when it is over)."""
        unseen = rows.select(self._unseen_share(rows)).to_series().to_numpy().astype(np.float64)
        out: F64 = np.log(np.maximum(1.0 - unseen, 1e-3))
        return out

    def _transform(self, frame: pl.DataFrame) -> NDArray[np.float32]:
        """The model matrix of rows to project: for a model that learned from partial horizons, the
        whole horizon (unseen share 0) whatever the frame says."""
        if getattr(self, "partial_used_", False):
            frame = frame.with_columns(pl.lit(0.0).alias(UNSEEN_SHARE))
        out: NDArray[np.float32] = self.matrix_.transform(frame)
        return out

    def _arms_and_propensity(self, rows: pl.DataFrame) -> tuple[pl.Series, F64]:
        """Each row's arm (action or action:variant) and its logged propensity (NaN where missing)."""
        actions = rows.get_column("action_id").cast(pl.String).fill_null(NO_ACTION)
        if "propensity" in rows.columns:
            propensity = rows.get_column("propensity").cast(pl.Float64).to_numpy().astype(np.float64)
        else:
            propensity = np.full(rows.height, np.nan)
        has_variant = (
            self.variants
            and "variant" in rows.columns
            and rows.get_column("variant").cast(pl.String).drop_nulls().len() > 0
        )
        if not has_variant:
            return actions.alias("arm"), propensity
        variant = rows.get_column("variant").cast(pl.String)
        frame = pl.DataFrame({"action": actions, "variant": variant}).with_columns(
            pl.when(pl.col("variant").is_not_null() & (pl.col("action") != NO_ACTION))
            .then(pl.col("action") + ARM_SEPARATOR + pl.col("variant"))
            .otherwise(pl.col("action"))
            .alias("arm")
        )
        # The log's propensity is the action's; a variant's share of the action's rows splits it
        # (exact when variants are drawn at random, as in an A/A test of send windows).
        share = frame.select((pl.len().over("arm") / pl.len().over("action")).alias("share")).get_column("share")
        return frame.get_column("arm"), propensity * share.to_numpy()

    def _arm_list(self, arm_series: pl.Series) -> list[str]:
        seen = {str(a) for a in arm_series.unique().to_list()}
        ordered = [NO_ACTION]
        for action in self.playbook.actions:
            variant_arms = sorted(a for a in seen if a.startswith(action.id + ARM_SEPARATOR))
            for arm in [action.id, *variant_arms] if action.id in seen or not variant_arms else variant_arms:
                if arm not in ordered:
                    ordered.append(arm)
        for arm in sorted(seen):
            if arm not in ordered:
                ordered.append(arm)
        return ordered

    def _arm_cost(self, arm: str) -> float:
        action_id, _, variant_id = arm.partition(ARM_SEPARATOR)
        if arm == NO_ACTION or action_id not in self.playbook.action_ids:
            return 0.0
        action = self.playbook.action(action_id)
        for variant in action.variants:
            if variant.id == variant_id and variant.cost_usd is not None:
                return float(variant.cost_usd)
        return float(action.cost_usd)

    def _scale(self, frame: pl.DataFrame, *, fit: bool = False) -> F64:
        """Per-row scale of amounts (ARR): positive, with the training median where missing."""
        if self.scale_column is None or self.scale_column not in frame.columns:
            if fit:
                self.scale_default_ = 1.0
                self.scale_used_ = False
            return np.ones(frame.height)
        values = frame.get_column(self.scale_column).cast(pl.Float64).to_numpy().astype(np.float64)
        good = np.isfinite(values) & (values > 0)
        if fit:
            self.scale_default_ = float(np.median(values[good])) if good.any() else 1.0
            self.scale_used_ = bool(good.any())
        if not getattr(self, "scale_used_", False):
            return np.ones(frame.height)
        out: F64 = np.where(good, values, self.scale_default_)
        return out

    def _fit_repeat(self, rows: pl.DataFrame, codes: I64) -> F64:
        """Find each arm's recency column; standardise the recency of every row's own action (0 for ``none``)."""
        self.repeat_columns_ = self._arm_columns(self.repeat_feature, rows)
        own = _own_action(rows, codes, self.repeat_columns_, self._recency_of)
        self.repeat_center_, self.repeat_scale_, self.repeat_used_ = _standardiser(own, codes > 0)
        return _standardised(own, codes > 0, self.repeat_center_, self.repeat_scale_, self.repeat_used_)

    def _fit_count(self, rows: pl.DataFrame, codes: I64) -> F64:
        """Find each arm's count column; standardise the count of every row's own action (0 for ``none``)."""
        self.count_columns_ = self._arm_columns(self.repeat_count_feature, rows)
        own = _own_action(rows, codes, self.count_columns_, _count)
        self.count_center_, self.count_scale_, self.count_used_ = _standardiser(own, codes > 0)
        return _standardised(own, codes > 0, self.count_center_, self.count_scale_, self.count_used_)

    def _arm_columns(self, template: str | None, rows: pl.DataFrame) -> list[str | None]:
        """Per arm: the column ``template`` names for its action (``{action}``), None for ``none`` or when absent."""
        out: list[str | None] = [None] * len(self.arms_)
        stems = self.vocabulary if self.vocabulary is not None else FeatureVocabulary()
        if template is not None:
            for i, arm in enumerate(self.arms_):
                column = template.format(action=stems.action_stem(arm.partition(ARM_SEPARATOR)[0]))
                if arm != NO_ACTION and column in rows.columns:
                    out[i] = column
        return out

    def _recency_of(self, days: pl.Series) -> F64:
        return _recency(days, self.repeat_days)

    def _per_arm_z(
        self,
        frame: pl.DataFrame,
        columns: list[str | None],
        transform: Callable[[pl.Series], F64],
        center: float,
        scale: float,
    ) -> F64:
        """Shape (n, arms): each arm's own column through ``transform``, standardised (0 for ``none``)."""
        out = np.zeros((frame.height, len(self.arms_)))
        for i, column in enumerate(columns):
            if self.arms_[i] != NO_ACTION:
                own = transform(frame.get_column(column)) if column is not None and column in frame.columns else 0.0
                out[:, i] = (own - center) / scale
        return out

    def _count_z(self, frame: pl.DataFrame) -> F64:
        """Shape (n, arms): the standardised count of each arm's own action for every row (0 for ``none``)."""
        if not getattr(self, "count_used_", False):
            return np.zeros((frame.height, len(self.arms_)))
        return self._per_arm_z(frame, self.count_columns_, _count, self.count_center_, self.count_scale_)

    def _fit_fatigue(self, rows: pl.DataFrame, codes: I64) -> F64:
        """Standardise every row's ``log(1 + recent touches)`` on the acted rows (zeros when unused)."""
        z, self.fatigue_center_, self.fatigue_scale_, self.fatigue_used_ = _fit_column_z(
            rows, self.fatigue_feature, _log_count, codes > 0
        )
        return z

    def _fatigue_z(self, frame: pl.DataFrame) -> F64:
        """The standardised ``log(1 + recent touches)`` of every row (zeros when unused or missing)."""
        if not getattr(self, "fatigue_used_", False):
            return np.zeros(frame.height)
        return _column_z(frame, self.fatigue_feature, _log_count, self.fatigue_center_, self.fatigue_scale_)

    def _fit_touch_cost(self, rows: pl.DataFrame, codes: I64) -> F64:
        """Standardise every row's count of recent touches on the acted rows (zeros when unused)."""
        z, self.touch_cost_center_, self.touch_cost_scale_, self.touch_cost_used_ = _fit_column_z(
            rows, self.touch_cost_feature, _count, codes > 0
        )
        return z

    def _touch_z(self, frame: pl.DataFrame) -> F64:
        """The standardised count of recent touches of every row (zeros when unused or missing)."""
        if not getattr(self, "touch_cost_used_", False):
            return np.zeros(frame.height)
        return _column_z(frame, self.touch_cost_feature, _count, self.touch_cost_center_, self.touch_cost_scale_)

    def _repeat_z(self, frame: pl.DataFrame) -> F64:
        """Shape (n, arms): the standardised recency of each arm's own action for every row (0 for ``none``)."""
        if not getattr(self, "repeat_used_", False):
            return np.zeros((frame.height, len(self.arms_)))
        return self._per_arm_z(frame, self.repeat_columns_, self._recency_of, self.repeat_center_, self.repeat_scale_)

    def _modifiers_used(self) -> tuple[bool, bool, bool]:
        """Whether the model has its repeat recency, repeat count and fatigue terms (``_multiplier``'s order)."""
        return (
            getattr(self, "repeat_used_", False),
            getattr(self, "count_used_", False),
            getattr(self, "fatigue_used_", False),
        )

    def _booster_params(self, objective: str, rows: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return lgb_params(
            objective=objective,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            reg_lambda=self.reg_lambda,
            colsample=self.colsample,
            max_bin=self.max_bin,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            bagging_fraction=min(self.subsample, bagging_share(rows, self.max_rows_per_tree)),
            extra={"min_sum_hessian_in_leaf": self.min_child_weight, **(extra or {})},
        )

    def _with_arm(self, x: NDArray[np.float32], code: int | I64) -> NDArray[np.float32]:
        arm = np.broadcast_to(np.asarray(code, dtype=np.float32), (x.shape[0],))
        out: NDArray[np.float32] = np.column_stack([x, arm]).astype(np.float32, copy=False)
        return out

    def _categorical(self) -> list[int]:
        return [*self.matrix_.categorical_indices_, len(self.matrix_.columns_)]

    def _fit_objective(
        self,
        spec: ObjectiveSpec,
        rows: pl.DataFrame,
        xa: NDArray[np.float32],
        shared: list[_FoldData],
        codes: I64,
        folds: I64,
        weights: F64,
        scale: F64,
        modifiers: tuple[F64, F64, F64, F64],
        groups: I64,
        exposure: F64 | None = None,
    ) -> _ObjectiveFit:
        n_arms = len(self.arms_)
        y = (rows.get_column(spec.label).cast(pl.Float64).fill_null(0.0).to_numpy() > 0).astype(np.float64)
        events = int(y.sum())
        fit = _ObjectiveFit(spec=spec, events=events)
        fit.events_by_arm = np.bincount(codes[(codes >= 0) & (y > 0)], minlength=n_arms).astype(np.int64)
        fit.delta = np.zeros(n_arms)
        fit.delta_var = np.zeros(n_arms)
        fit.raw_delta = np.full(n_arms, np.nan)
        fit.raw_delta_var = np.full(n_arms, np.nan)
        fit.log_mult = np.zeros(n_arms)
        fit.log_mult_var = np.zeros(n_arms)
        if events < self.min_events or events == len(y):
            fit.constant = float(y.mean())
            if spec.is_amount:
                amounts = rows.get_column(spec.value_label).cast(pl.Float64).fill_null(0.0).to_numpy()
                fit.amount_constant = float(np.mean(amounts[y > 0] / scale[y > 0])) if events else 0.0
                fit.amount_max = float(np.max(amounts, initial=0.0))
            return fit

        t0 = time.perf_counter()
        # Rows seen for part of their horizon start from the log of the share seen (a constant hazard:
        # for rare outcomes the odds grow with the time watched), plus the mean, which LightGBM adds by
        # itself only when there is no starting score; the trees, which also read the unseen share,
        # correct the rest.
        init = np.zeros(len(y))
        if exposure is not None:
            mean = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
            fit.init_logit = math.log(mean / (1 - mean))
            init = exposure + fit.init_logit
        fit.boosters, fit.n_trees, fit.deviance_by_trees = self._fit_baseline(
            xa, y, shared, folds, None if exposure is None else init
        )
        t1 = time.perf_counter()
        self.fit_seconds_["outcome_models"] += t1 - t0
        offset = init.copy()
        # Outside the fold pool, on n_jobs LightGBM threads, named: a predict naming no thread count
        # resets LightGBM's process-wide count to all cores, a segfault beside a one-thread call of
        # another Python thread (see quiet_lightgbm).
        for k, booster in enumerate(fit.boosters):
            held_idx = np.flatnonzero(folds == k)
            if len(held_idx):
                offset[held_idx] += booster.predict(
                    _as_none(xa[held_idx]), raw_score=True, num_iteration=fit.n_trees, num_threads=self.n_jobs or 0
                )
        self.fit_seconds_["predictions"] += time.perf_counter() - t1

        use_weights = weights if self.calibration_weights == "propensity" else np.ones(len(y))
        none_rows = codes == 0
        if none_rows.any():
            fit.beta0, fit.beta0_var = _fit_shift(y[none_rows], offset[none_rows], use_weights[none_rows])
        usable = self._usable_arms(codes)
        acted = (codes > 0) & usable[np.maximum(codes, 0)]
        repeat_z, count_z, fatigue_z, touch_z = modifiers
        if (self.repeat_used_ or self.count_used_ or self.fatigue_used_ or self.touch_cost_used_) and acted.any():
            slopes, slope_vars = _fit_modifier_slopes(
                y[acted],
                offset[acted] + fit.beta0,
                codes[acted],
                np.column_stack([repeat_z, count_z, fatigue_z])[acted],
                use_weights[acted],
                self.repeat_ridge,
                additive=touch_z[acted, None],
            )
            fit.repeat_slope, fit.count_slope, fit.fatigue_slope, fit.touch_cost_slope = (float(v) for v in slopes)
            fit.repeat_slope_var, fit.count_slope_var, fit.fatigue_slope_var, fit.touch_cost_slope_var = (
                float(v) for v in slope_vars
            )
        multiplier = _multiplier(fit, repeat_z, count_z, fatigue_z)
        # The touch cost enters every acted row's logit as an offset of its arm's shift.
        touch = np.where(codes > 0, fit.touch_cost_slope * touch_z, 0.0)
        base = offset + touch
        raw = np.full(n_arms, np.nan)
        raw_var = np.full(n_arms, np.nan)
        for i in range(1, n_arms):
            mine = codes == i
            if not mine.any():
                continue
            shift, var = _fit_shift(y[mine], base[mine] + fit.beta0, use_weights[mine], multiplier=multiplier[mine])
            raw[i], raw_var[i] = shift, var + fit.beta0_var
        raw[0], raw_var[0] = 0.0, 0.0
        fit.raw_delta, fit.raw_delta_var = raw, raw_var
        fit.delta, fit.delta_var = _empirical_bayes(raw, raw_var, usable, self.min_between_sd)
        fit.delta[0], fit.delta_var[0] = 0.0, 0.0
        fit.group_beta0 = self._fit_group_baseline(fit, y, base + fit.beta0, codes, groups, use_weights)
        fit.group_delta, fit.group_delta_var = self._fit_group_shifts(
            fit, y, base + fit.beta0 + fit.group_beta0[groups], codes, groups, use_weights, multiplier, usable
        )
        fit.contrast_center = np.full(n_arms, np.nan)
        if self.contrast_modifier and acted.any():
            t2 = time.perf_counter()
            self._fit_contrast(fit, xa, y, offset, init, touch, codes, folds, groups, use_weights, multiplier, acted)
            self.fit_seconds_["predictions"] += time.perf_counter() - t2

        if self.rloss_effect and not spec.is_amount and acted.any():
            t4 = time.perf_counter()
            self._fit_rloss(fit, rows, xa, y, offset, codes, folds, groups, usable)
            self.fit_seconds_["rloss"] = self.fit_seconds_.get("rloss", 0.0) + time.perf_counter() - t4
        if spec.is_amount:
            t3 = time.perf_counter()
            self._fit_amount(fit, spec, rows, xa, codes, folds, y, use_weights, scale)
            self.fit_seconds_["amounts"] += time.perf_counter() - t3
        return fit

    def _current_logits(
        self,
        fit: _ObjectiveFit,
        base: F64,
        groups: I64,
        contrasts: F64,
        repeat_z: F64,
        count_z: F64,
        fatigue_z: F64,
        touch_z: F64,
        i: int,
    ) -> F64:
        """The arm's logit as the model without ``rloss_effect`` projects it; ``base`` the do-nothing logit."""
        shift = fit.group_delta[i, groups] * _multiplier(fit, repeat_z[:, i], count_z[:, i], fatigue_z)
        out: F64 = base + shift + fit.contrast_slope * contrasts[i] + fit.touch_cost_slope * touch_z
        return out

    def _fit_rloss(
        self,
        fit: _ObjectiveFit,
        rows: pl.DataFrame,
        xa: NDArray[np.float32],
        y: F64,
        offset: F64,
        codes: I64,
        folds: I64,
        groups: I64,
        usable: NDArray[np.bool_],
    ) -> None:
        """Per arm, a boosted correction ``g_a(x)`` of its effect on the probability scale, fitted on the R-loss.

        For arm ``a`` against ``none`` (the rows that took either): ``e(x)`` the history's
        probability of ``a`` among the two (the propensity model's out-of-fold estimates), ``m(x)``
        the current model's expected outcome under that mix and ``τ(x)`` its effect. The correction
        minimises ``Σ (Y − m − (τ + g)(T − e))²``: a weighted regression of the pseudo-outcome
        ``(Y − m) / (T − e)`` with weights ``(T − e)²``, boosted from ``τ`` (its init score), so a
        leaf with little overlap (small weight against ``rloss_ridge``) stays near the current
        effect. Cross-fitted by account: the trees are chosen by the held-out folds' R-loss, and
        none (the current effect) when no tree lowers it. With the propensity known, ``m``'s error
        does not bias the fit (the R-loss is orthogonal to it).
        """
        proba = getattr(self.propensity_model_, "proba_", None)
        if proba is None:
            return
        x = xa[:, :-1]
        repeat_all = self._repeat_z(rows)
        count_all = self._count_z(rows)
        fatigue = self._fatigue_z(rows)
        touch_all = self._touch_z(rows)
        contrasts = self._contrasts(fit, x)
        base = offset + fit.beta0 + fit.group_beta0[groups]
        p0 = sigmoid(base)
        rng = np.random.default_rng([self.random_state, 7])
        cap = self.max_rows_per_tree
        control = np.flatnonzero(codes == 0)
        params = {
            "objective": "regression",
            "learning_rate": 0.3,
            "num_leaves": 3,
            "min_data_in_leaf": 50,
            "min_sum_hessian_in_leaf": 5.0,
            "lambda_l2": float(self.rloss_ridge),
            "feature_fraction": 1.0 if self.rloss_features != "all" else 0.5,
            "max_bin": self.max_bin,
            "metric": "l2",
            "num_threads": 1,
            "verbose": -1,
            "seed": self.random_state,
            "deterministic": True,
            **(getattr(self, "rloss_params", None) or {}),
        }
        for i in np.flatnonzero(usable):
            treated = np.flatnonzero(codes == i)
            if len(treated) < self.min_rows or fit.events_by_arm[i] + fit.events_by_arm[0] < self.min_events:
                continue
            rate = 1.0
            chosen = control
            if len(treated) + len(control) > cap and len(control):
                rate = min(1.0, max(cap - len(treated), len(treated)) / len(control))
                chosen = np.sort(rng.choice(control, size=max(int(rate * len(control)), 1), replace=False))
            idx = np.sort(np.concatenate([treated, chosen]))
            e_a, e_0 = proba[idx, i], proba[idx, 0]
            e = np.clip(e_a / np.maximum(e_a + rate * e_0, 1e-12), 0.01, 0.99)
            pair = e_a / np.maximum(e_a + e_0, 1e-12)
            t = (codes[idx] == i).astype(np.float64)
            pa = sigmoid(
                self._current_logits(
                    fit,
                    base[idx],
                    groups[idx],
                    contrasts[:, idx],
                    repeat_all[idx],
                    count_all[idx],
                    fatigue[idx],
                    touch_all[idx],
                    int(i),
                )
            )
            tau = pa - p0[idx]
            m = e * pa + (1 - e) * p0[idx]
            if self.rloss_features != "all":
                z = _rloss_matrix(pair, pa, p0[idx], self.rloss_features == "propensity+current")
            else:
                z = x[idx]
            resid = t - e
            pseudo = (y[idx] - m) / resid
            weight = resid**2
            fold_of = folds[idx]
            if self.rloss_features == "linear":
                self._fit_rloss_linear(fit, int(i), pair, pseudo, weight, tau, fold_of)
                continue

            def one(
                k: int,
                z: NDArray[np.float32] = z,
                idx: I64 = idx,
                pseudo: F64 = pseudo,
                weight: F64 = weight,
                tau: F64 = tau,
                fold_of: I64 = fold_of,
            ) -> tuple[lgb.Booster | None, F64]:
                train, held = fold_of != k, fold_of == k
                curve = np.zeros(self.rloss_trees + 1)
                if not train.any():
                    return None, curve
                wh = weight[held]
                curve[0] = float(np.sum(wh * (pseudo[held] - tau[held]) ** 2))
                data = lgb.Dataset(
                    z[train],
                    label=pseudo[train],
                    weight=weight[train],
                    init_score=tau[train],
                    params={"max_bin": self.max_bin, "verbose": -1},
                    free_raw_data=True,
                )
                record: dict[str, Any] = {}
                valid = None
                if held.any():
                    valid = lgb.Dataset(z[held], label=pseudo[held], weight=wh, init_score=tau[held], reference=data)
                booster = lgb.train(
                    params,
                    data,
                    num_boost_round=self.rloss_trees,
                    valid_sets=[valid] if valid is not None else [],
                    valid_names=["held"] if valid is not None else [],
                    callbacks=[lgb.record_evaluation(record)] if valid is not None else [],
                )
                if valid is not None:
                    l2 = np.asarray(record["held"]["l2"], dtype=np.float64) * float(wh.sum())
                    curve[1 : len(l2) + 1] = l2
                    curve[len(l2) + 1 :] = l2[-1] if len(l2) else curve[0]
                else:
                    curve[1:] = curve[0]
                return lgb.Booster(model_str=booster.model_to_string()), curve

            done = self._in_threads(one, self.n_folds)
            boosters = [b for b, _ in done if b is not None]
            loss = np.sum([c for _, c in done], axis=0)
            trees = int(np.argmin(loss))
            fit.rloss_loss[int(i)] = loss
            fit.rloss_trees[int(i)] = trees
            fit.rloss_boosters[int(i)] = boosters if trees > 0 else []

    def _fit_rloss_linear(
        self, fit: _ObjectiveFit, i: int, pair: F64, pseudo: F64, weight: F64, tau: F64, fold_of: I64
    ) -> None:
        """The correction ``a + b·e`` of arm ``i``'s effect by ridged weighted least squares on the R-loss.

        ``e`` is the history's propensity of the arm against ``none``. Kept with its sandwich
        covariance (rows taken as independent): at projection each account's correction is shrunk by
        its variance (``rloss_shrink``), so where the overlap is poor (few rows on one side, a wide
        ``var g``) the current effect stays. The held-out R-loss of the folds' corrections (each
        fitted without its fold) is recorded in ``rloss_loss`` (before, after) as a diagnostic.
        """
        design = np.column_stack([np.ones(len(pair)), pair])
        target = pseudo - tau
        ridge = float(self.rloss_ridge) * np.eye(2)

        def solve(mask: NDArray[np.bool_]) -> tuple[F64, F64]:
            d, w, r = design[mask], weight[mask], target[mask]
            bread = np.linalg.inv(d.T @ (w[:, None] * d) + ridge)
            coef: F64 = bread @ (d.T @ (w * r))
            score = d * (w * (r - d @ coef))[:, None]
            cov: F64 = bread @ (score.T @ score) @ bread
            return coef, cov

        before = after = 0.0
        for k in range(self.n_folds):
            held = fold_of == k
            if not held.any() or held.all():
                continue
            coef, _ = solve(~held)
            before += float(np.sum(weight[held] * target[held] ** 2))
            after += float(np.sum(weight[held] * (target[held] - design[held] @ coef) ** 2))
        fit.rloss_loss[i] = np.array([before, after])
        coef, cov = solve(np.ones(len(pair), dtype=bool))
        fit.rloss_linear[i] = np.concatenate([coef, cov.ravel()])
        fit.rloss_trees[i] = 1

    def _rloss_proba(self, frame: pl.DataFrame) -> F64 | None:
        """Every arm's propensity for the rows of ``frame``, when the R-loss corrections read it (else None)."""
        if self.rloss_features == "all" or not any(
            any(getattr(fit, "rloss_boosters", {}).values()) or getattr(fit, "rloss_linear", {}) for fit in self.fits_
        ):
            return None
        out: F64 = self.propensity_model_.predict_proba(frame)
        return out

    def _rloss_adjust(
        self, fit: _ObjectiveFit, i: int, x: NDArray[np.float32], p0: F64, pa: F64, proba: F64 | None
    ) -> F64 | None:
        """The logit to add to arm ``i``'s so that its effect becomes the current one plus the R-loss correction."""
        coef = getattr(fit, "rloss_linear", {}).get(i)
        boosters = getattr(fit, "rloss_boosters", {}).get(i)
        if coef is None and not boosters:
            return None
        trees = fit.rloss_trees[i]
        if coef is not None:
            assert proba is not None
            pair = proba[:, i] / np.maximum(proba[:, i] + proba[:, 0], 1e-12)
            g = coef[0] + coef[1] * pair
            cov = coef[2:].reshape(2, 2)
            var = cov[0, 0] + 2 * cov[0, 1] * pair + cov[1, 1] * pair**2
            k = float(getattr(self, "rloss_shrink", 0.0))
            if k > 0:
                g = g * np.maximum(0.0, 1.0 - k * var / np.maximum(g**2, 1e-300))
            else:
                g = g * g**2 / np.maximum(g**2 + var, 1e-300)
        elif self.rloss_features != "all":
            assert proba is not None
            pair = proba[:, i] / np.maximum(proba[:, i] + proba[:, 0], 1e-12)
            z = _rloss_matrix(pair, pa, p0, self.rloss_features == "propensity+current")
        else:
            z = x
        if coef is None:
            assert boosters is not None
            g = np.mean([b.predict(z, num_iteration=trees, num_threads=1) for b in boosters], axis=0)
        new = np.clip(pa + g, 1e-4, 1 - 1e-4)
        old = np.clip(pa, 1e-4, 1 - 1e-4)
        out: F64 = np.log(new / (1 - new)) - np.log(old / (1 - old))
        return out

    def _fold_data(self, xa: NDArray[np.float32], y: F64, folds: I64) -> _FoldData:
        """Bin the model matrix once and cut every fold's training and held-out subsets (reused by every objective).

        A fold model is trained on at most ``FOLD_ROWS_PER_TREE × max_rows_per_tree`` of its rows
        and scores trees on at most ``max_rows_per_tree`` held-out rows (seeded samples): each tree
        sees ``max_rows_per_tree`` rows anyway, and LightGBM's per-tree work over all the training
        rows (gradients, bagging, the scores of the rows out of the bag) then stops growing with the
        book. Smaller books use every row.
        """
        params = self._fold_params(len(y))
        data = lgb.Dataset(xa, label=y, categorical_feature=self._categorical(), params=params, free_raw_data=False)
        data.construct()
        rng = np.random.default_rng(self.random_state)
        max_train = FOLD_ROWS_PER_TREE * self.max_rows_per_tree
        out = _FoldData(data=data)
        for k in range(self.n_folds):
            train_idx = np.flatnonzero(folds != k)
            held_idx = np.flatnonzero(folds == k)
            if len(train_idx) > max_train:
                train_idx = np.sort(rng.choice(train_idx, size=max_train, replace=False))
            scored = held_idx
            if len(scored) > self.max_rows_per_tree:
                scored = np.sort(rng.choice(held_idx, size=self.max_rows_per_tree, replace=False))
            out.train_idx.append(train_idx)
            out.train.append(data.subset(train_idx.tolist()).construct())
            out.held_rows.append(len(held_idx))
            out.scored_idx.append(scored)
            out.scored.append(data.subset(scored.tolist()).construct() if len(scored) else None)
        return out

    def _fold_pool(self) -> ThreadPoolExecutor:
        """Threads that train fold models in parallel: ``n_jobs`` (all cores when None), at most one per fold."""
        threads = min(self.n_jobs or os.cpu_count() or 1, self.n_folds)
        return ThreadPoolExecutor(max_workers=threads, initializer=quiet_lightgbm)

    def _fold_params(self, rows: int) -> dict[str, Any]:
        """Settings of the fold models: one LightGBM thread each (the folds run in parallel), dense bins.

        Dense bins: LightGBM's sparse (multi-value) bins cost a copy of the sampled columns per
        tree and a merge of per-thread histograms per leaf, a quarter of the training time in a
        profile of the lab's matrix.
        """
        return self._booster_params(
            "binary", rows, {"metric": "binary_logloss", "num_threads": 1, "is_enable_sparse": False}
        )

    def _fit_baseline(
        self, xa: NDArray[np.float32], y: F64, shared: list[_FoldData], folds: I64, init: F64 | None = None
    ) -> tuple[list[lgb.Booster], int, F64]:
        """The cross-fitted outcome classifiers of one objective, their tree count and held-out deviance by trees.

        The fold models grow one tree at a time on ``n_jobs`` threads with one LightGBM thread per
        model (a fold model is the unit of parallel work: threads that split one tree's work wait on
        each other dozens of times per tree, most of the CPU time in a profile on a busy machine);
        see :meth:`_grow_folds`. The held-out folds' deviance (summed over folds, each fold's mean
        scaled to its rows) picks the tree count, and growing stops once it has not improved for
        ``_PATIENCE`` rounds (with ``select_trees``).
        """
        if not shared:
            shared.append(self._fold_data(xa, y, folds))
        fd = shared[0]
        params = self._fold_params(len(fd.train_idx[0]))
        boosters: list[lgb.Booster] = []
        scoring: list[bool] = []
        for k in range(self.n_folds):
            fd.train[k].set_label(y[fd.train_idx[k]])
            if init is not None:
                fd.train[k].set_init_score(init[fd.train_idx[k]])
            booster = lgb.Booster(params=params, train_set=fd.train[k])
            held = fd.scored[k]
            scoring.append(self.select_trees and held is not None)
            if scoring[-1]:
                assert held is not None
                held.set_label(y[fd.scored_idx[k]])
                if init is not None:
                    held.set_init_score(init[fd.scored_idx[k]])
                booster.add_valid(held, "held")
            boosters.append(booster)
        deviance = self._grow_folds(boosters, [fd.held_rows[k] if scoring[k] else 0 for k in range(self.n_folds)])
        # Prediction-only boosters of exactly the rounds the curve covers (a fold may have grown a
        # round or two beyond the stop), with no reference to the training data (as lightgbm.train
        # leaves them).
        boosters = [lgb.Booster(model_str=b.model_to_string(num_iteration=len(deviance))) for b in boosters]
        curve = np.asarray(deviance, dtype=np.float64)
        n_trees = int(np.argmin(curve)) + 1 if self.select_trees and any(scoring) else len(curve)
        return boosters, n_trees, curve

    def _grow_folds(self, boosters: list[lgb.Booster], held_rows: list[int]) -> list[float]:
        """Grow the fold models one tree at a time; the held-out deviance (summed over folds) after each round.

        A round's deviance is known once every fold model has grown its tree of that round; growing
        stops when no fold model can split any more or, with ``select_trees``, when the deviance has
        not improved for ``_PATIENCE`` rounds. Each fold model grows on its own (one tree at a time,
        so its trees are those of growing the folds in lockstep), up to ``_LEAD`` rounds ahead of the
        last complete round: with more folds than threads (3 folds on 2 cores), no thread waits for
        the round's slowest fold. ``held_rows`` scales each fold's mean deviance (0: not scored).
        """
        n = len(boosters)
        scored = any(held_rows)
        results: list[list[tuple[float, bool]]] = [[] for _ in range(n)]
        growing = [True] * n

        def grow(k: int) -> tuple[float, bool]:
            """One more tree of fold model ``k``: its held-out fold's deviance and whether it can grow on."""
            if growing[k]:
                # update() is True when no split can be made any more: the fold model is complete.
                growing[k] = not boosters[k].update()
            score = held_rows[k] * float(boosters[k].eval_valid()[0][2]) if held_rows[k] else 0.0
            return score, growing[k]

        deviance: list[float] = []
        best, best_round = math.inf, 0
        stopped = False
        with self._fold_pool() as pool:
            running = {pool.submit(grow, k): k for k in range(n)}
            waiting: list[int] = []
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    k = running.pop(future)
                    results[k].append(future.result())
                    waiting.append(k)
                while not stopped and all(len(r) > len(deviance) for r in results):
                    round_ = len(deviance)
                    total = float(sum(r[round_][0] for r in results))
                    deviance.append(total)
                    if not any(r[round_][1] for r in results) or len(deviance) == self.n_estimators:
                        stopped = True
                    elif self.select_trees and scored:
                        if total < best:
                            best, best_round = total, round_
                        elif round_ - best_round >= _PATIENCE:
                            stopped = True
                if stopped:
                    continue  # let the trees in flight finish; start no more
                for k in [k for k in waiting if len(results[k]) < min(len(deviance) + _LEAD, self.n_estimators)]:
                    waiting.remove(k)
                    running[pool.submit(grow, k)] = k
        return deviance

    def _fit_contrast(
        self,
        fit: _ObjectiveFit,
        xa: NDArray[np.float32],
        y: F64,
        offset: F64,
        init: F64,
        touch: F64,
        codes: I64,
        folds: I64,
        groups: I64,
        weights: F64,
        multiplier: F64,
        acted: NDArray[np.bool_],
    ) -> None:
        """One slope per objective on the centred S-learner contrast ``f(x, a) − f(x, none)`` of the fold models.

        Each acted row's contrast comes from the fold model that never saw its account, centred by
        the mean contrast of its arm (so the arm's shift keeps its meaning); the slope is the
        one-parameter logistic fit of the acted rows with everything else (``touch``: the touch
        cost) as offset. ``offset`` is each row's do-nothing logit, ``init`` the part of it that is
        the fold models' starting score.
        """
        raw = np.zeros(len(y))
        for k, booster in enumerate(fit.boosters):
            idx = np.flatnonzero((folds == k) & acted)
            if len(idx):
                own = booster.predict(xa[idx], raw_score=True, num_iteration=fit.n_trees, num_threads=self.n_jobs or 0)
                own += init[idx]
                raw[idx] = own - offset[idx]
        for i in np.unique(codes[acted]):
            fit.contrast_center[i] = float(raw[acted & (codes == i)].mean())
        contrast = raw[acted] - fit.contrast_center[codes[acted]]
        base = offset + touch + fit.beta0 + fit.group_beta0[groups] + fit.group_delta[codes, groups] * multiplier
        fit.contrast_slope, fit.contrast_slope_var = _fit_shift(
            y[acted], base[acted], weights[acted], multiplier=contrast
        )

    def _contrasts(self, fit: _ObjectiveFit, x: NDArray[np.float32], *, parallel: bool = True) -> F64:
        """Shape (arms, n): each arm's centred S-learner contrast (0 for none, untaken arms, no ``contrast_modifier``).

        Only the fold models' trees that split on the arm change the contrast. Each is evaluated
        alone on the columns it reads, once per class of arms it tells apart
        (:func:`~nextmove.models._trees.code_trees`), which gives the full models' number.
        """
        out = np.zeros((len(self.arms_), x.shape[0]))
        arms = [i for i in range(1, len(fit.contrast_center)) if np.isfinite(fit.contrast_center[i])]
        if not arms:
            return out
        models = self._arm_trees(fit)

        def fold(k: int) -> F64:
            part = np.zeros((len(arms), x.shape[0]))
            for tree in models[k]:
                xs = tree.tree.matrix(x, 0.0)
                values = np.empty((len(tree.representatives), x.shape[0]))
                for c, code in enumerate(tree.representatives):
                    xs[:, tree.tree.position] = code
                    values[c] = tree.tree.predict(xs)
                part += values[tree.classes[arms]] - values[tree.classes[0]]
            return part

        out[arms] = np.sum(self._in_threads(fold, len(models), parallel=parallel), axis=0) / len(models)
        out[arms] -= fit.contrast_center[arms, None]
        return out

    def _in_threads(self, work: Callable[[int], _T], count: int, *, parallel: bool = True) -> list[_T]:
        """``work(k)`` for every ``k`` below ``count`` (fold models, objectives), on fold threads if ``parallel``."""
        if not parallel or count < 2 or min(self.n_jobs or os.cpu_count() or 1, self.n_folds) < 2:
            return [work(k) for k in range(count)]
        with self._fold_pool() as pool:
            return list(pool.map(work, range(count)))

    def _arm_trees(self, fit: _ObjectiveFit) -> list[list[CodeTree]]:
        """The fold models' trees that split on the arm, each alone with its classes of arms (made once per fit)."""
        if len(getattr(fit, "code_trees", ())) != len(fit.boosters):  # models saved before it was kept
            arm = len(self.matrix_.columns_)
            fit.code_trees = [code_trees(b, arm, len(self.arms_), fit.n_trees or None) for b in fit.boosters]
        return fit.code_trees

    def _fit_group_baseline(
        self, fit: _ObjectiveFit, y: F64, offset: F64, codes: I64, groups: I64, weights: F64
    ) -> F64:
        """Per group: the logit correction of the baseline on the group's do-nothing rows, shrunk toward 0.

        Without it, a group the baseline under- or over-predicts would lend that error to every
        action's shift in the group, and every action would look better (or worse) than doing
        nothing there.
        """
        n_groups = self.n_groups_
        if n_groups < 2:
            return np.zeros(n_groups)
        est = np.full(n_groups, np.nan)
        var = np.full(n_groups, np.nan)
        for g in range(n_groups):
            cell = (codes == 0) & (groups == g)
            if cell.any():
                est[g], var[g] = _fit_shift(y[cell], offset[cell], weights[cell])
        out, _ = _empirical_bayes(est, var, np.isfinite(est), 0.0, center=(0.0, float(fit.beta0_var)))
        return out

    def _fit_group_shifts(
        self,
        fit: _ObjectiveFit,
        y: F64,
        offset: F64,
        codes: I64,
        groups: I64,
        weights: F64,
        multiplier: F64,
        usable: NDArray[np.bool_],
    ) -> tuple[F64, F64]:
        """Shape (arms, groups): every arm's shift in every behavior group, shrunk toward the arm's shift.

        Per arm, each group's shift is the logistic fit of the arm's rows in that group with the
        baseline as offset; the groups' estimates are shrunk toward the arm's (shrunk) shift by
        empirical Bayes with the DerSimonian–Laird spread between groups (at least
        ``min_group_sd``): a cell with few rows or events moves to the arm, and when the groups do
        not differ more than their noise says, every group gets the arm's shift. Flagged arms,
        and groups without a row of the arm, get the arm's shift with the between-group variance
        added.
        """
        n_groups = self.n_groups_
        out = np.repeat(fit.delta[:, None], n_groups, axis=1)
        out_var = np.repeat(fit.delta_var[:, None], n_groups, axis=1)
        fit.group_raw = np.full((len(self.arms_), n_groups), np.nan)
        known = codes >= 0
        cell_of = codes[known] * n_groups + groups[known]
        fit.group_events = (
            np.bincount(cell_of, weights=y[known], minlength=len(self.arms_) * n_groups)
            .astype(np.int64)
            .reshape(len(self.arms_), n_groups)
        )
        if n_groups < 2:
            return out, out_var
        for i in np.flatnonzero(usable):
            est = np.full(n_groups, np.nan)
            var = np.full(n_groups, np.nan)
            for g in range(n_groups):
                cell = (codes == i) & (groups == g)
                if cell.any():
                    est[g], var[g] = _fit_shift(y[cell], offset[cell], weights[cell], multiplier=multiplier[cell])
                    var[g] += fit.beta0_var
            fit.group_raw[i] = est
            out[i], out_var[i] = _empirical_bayes(
                est,
                var,
                np.isfinite(est),
                self.min_group_sd,
                center=(float(fit.delta[i]), float(fit.delta_var[i])),
            )
        return out, out_var

    def _fit_groups(self, x: NDArray[np.float32]) -> I64:
        """Learn the behavior groups (k-means on the standardised features) and return every row's group."""
        self.n_groups_ = max(int(self.n_groups), 1)
        if self.n_groups_ < 2:
            self.group_model_ = None
            return np.zeros(x.shape[0], dtype=np.int64)
        chosen = set(
            self.group_features
            if self.group_features is not None
            else behavior_features(self.matrix_.columns_) or list(self.matrix_.columns_)
        )
        text = set(self.matrix_.categorical_indices_)
        numeric = [i for i, c in enumerate(self.matrix_.columns_) if c in chosen and i not in text]
        if not numeric and self.group_features is None:
            # Nothing numeric to cluster on (every feature is text): one shift per arm.
            self.n_groups_ = 1
            self.group_model_ = None
            return np.zeros(x.shape[0], dtype=np.int64)
        if not numeric:
            raise ConfigError(
                "n_groups needs numeric features to form behavior groups; none of group_features is one: "
                f"{sorted(chosen)[:5]}"
            )
        z = _signed_log(x[:, numeric])
        seen = np.isfinite(z)
        center = np.zeros(len(numeric))
        spread = np.ones(len(numeric))
        for j in np.flatnonzero(seen.sum(axis=0) >= 2):
            values = z[seen[:, j], j]
            center[j] = float(np.median(values))
            spread[j] = float(values.std()) if values.std() > 1e-9 else 1.0
        self.group_columns_ = numeric
        self.group_center_ = center
        self.group_spread_ = spread
        standard = self._group_matrix(x)
        rng = np.random.default_rng(self.random_state)
        sample = rng.choice(standard.shape[0], size=min(_GROUP_SAMPLE, standard.shape[0]), replace=False)
        # No more groups than distinct rows (k-means cannot make more).
        k = min(self.n_groups_, len(np.unique(standard[sample], axis=0)))
        if k < 2:
            self.n_groups_ = 1
            self.group_model_ = None
            return np.zeros(x.shape[0], dtype=np.int64)
        # k-means on one thread: OpenMP threads spinning on a shared machine made it many times slower.
        with threadpool_limits(limits=1, user_api="openmp"):
            self.group_model_ = KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(standard[sample])
        self.n_groups_ = k
        return self._groups(x)

    def _group_matrix(self, x: NDArray[np.float32]) -> F64:
        z = (_signed_log(x[:, self.group_columns_]) - self.group_center_) / self.group_spread_
        out: F64 = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def _groups(self, x: NDArray[np.float32]) -> I64:
        """Every row's behavior group (all 0 without groups)."""
        model = getattr(self, "group_model_", None)
        if model is None:
            return np.zeros(x.shape[0], dtype=np.int64)
        with threadpool_limits(limits=1, user_api="openmp"):
            labels = model.predict(self._group_matrix(x))
        return np.asarray(labels, dtype=np.int64)

    def _usable_arms(self, codes: I64) -> NDArray[np.bool_]:
        flagged = set(self.flagged_arms_)
        usable = np.array([a not in flagged and a != NO_ACTION for a in self.arms_])
        counts = np.bincount(codes[codes >= 0], minlength=len(self.arms_))
        out: NDArray[np.bool_] = usable & (counts > 0)
        return out

    def _fit_amount(
        self,
        fit: _ObjectiveFit,
        spec: ObjectiveSpec,
        rows: pl.DataFrame,
        xa: NDArray[np.float32],
        codes: I64,
        folds: I64,
        y: F64,
        weights: F64,
        scale: F64,
    ) -> None:
        """Amount per event relative to scale: a cross-fitted regressor plus per-arm multipliers."""
        amounts = rows.get_column(spec.value_label).cast(pl.Float64).fill_null(0.0).to_numpy()
        event = y > 0
        ratio = amounts / scale
        fit.amount_constant = float(np.mean(ratio[event]))
        fit.amount_max = float(np.max(amounts, initial=0.0))
        base = np.full(len(y), fit.amount_constant)
        event_idx = np.flatnonzero(event)
        if len(event_idx) >= self.min_amount_rows:
            params = self._booster_params(
                "regression",
                len(event_idx),
                {
                    "min_data_in_leaf": 20,
                    "feature_fraction": min(1.0, 2 * self.colsample),
                    "num_threads": 1,
                    "is_enable_sparse": False,
                },
            )
            data = lgb.Dataset(
                xa[event_idx],
                label=ratio[event_idx],
                categorical_feature=self._categorical(),
                params=params,
                free_raw_data=False,
            )
            data.construct()
            event_folds = folds[event_idx]
            subsets = [data.subset(np.flatnonzero(event_folds != k).tolist()).construct() for k in range(self.n_folds)]
            # The fold models train in parallel, one LightGBM thread each (as the outcome models).
            with self._fold_pool() as pool:
                fit.amount_boosters = list(
                    pool.map(lambda train: lgb.train(params, train, num_boost_round=self.n_estimators), subsets)
                )
            for k, booster in enumerate(fit.amount_boosters):
                held = event_idx[event_folds == k]
                if len(held):
                    base[held] = booster.predict(_as_none(xa[held]), num_threads=self.n_jobs or 0)
        # An expected amount is not negative; a least-squares regressor may still predict below 0
        # where it extrapolates.
        base = np.maximum(base, 0.0)
        n_arms = len(self.arms_)
        log_mult = np.full(n_arms, np.nan)
        log_var = np.full(n_arms, np.nan)
        for i in range(n_arms):
            mine = event & (codes == i)
            if mine.sum() < 2:
                continue
            # A ratio of sums, not a mean of per-event ratios: an event whose predicted amount is
            # near 0 would otherwise turn its ratio, and the arm's multiplier, into ~1e8.
            w = weights[mine]
            expected = float(np.sum(w * base[mine]))
            mult = float(np.sum(w * ratio[mine])) / expected if expected > 0 else 0.0
            if mult <= 0:
                continue
            # Delta method for the log of a ratio estimator.
            residual = w * (ratio[mine] - mult * base[mine])
            log_mult[i] = math.log(mult)
            log_var[i] = float(np.sum(residual**2)) / (mult * expected) ** 2 + 1e-6
        reference = log_mult[0] if np.isfinite(log_mult[0]) else 0.0
        reference_var = log_var[0] if np.isfinite(log_var[0]) else 0.0
        raw = log_mult - reference
        raw_var = log_var + reference_var
        usable = self._usable_arms(codes) & np.isfinite(raw)
        fit.log_mult, fit.log_mult_var = _empirical_bayes(raw, raw_var, usable, self.min_between_sd)
        fit.log_mult[0], fit.log_mult_var[0] = 0.0, 0.0
        fit.amount_reference = float(reference)

    def _group_effects(self, codes: I64, groups: I64) -> pl.DataFrame:
        """Per arm × behavior group × modelled objective: rows, events, raw and shrunk logit shift."""
        n_arms = len(self.arms_)
        known = codes >= 0
        cells = np.bincount(codes[known] * self.n_groups_ + groups[known], minlength=n_arms * self.n_groups_)
        parts = []
        for fit in self.fits_:
            if fit.constant is not None:
                continue
            events = fit.group_events.reshape(-1)
            arm_index, group = np.divmod(np.arange(n_arms * self.n_groups_), self.n_groups_)
            raw = fit.group_raw.reshape(-1)
            parts.append(
                pl.DataFrame(
                    {
                        "arm": [self.arms_[i] for i in arm_index],
                        "group": group,
                        "objective": fit.spec.objective,
                        "rows": cells,
                        "events": events,
                        "raw_logit_effect": pl.Series(raw, dtype=pl.Float64).fill_nan(None),
                        "logit_effect": fit.group_delta.reshape(-1),
                        "posterior_sd": np.sqrt(np.maximum(fit.group_delta_var.reshape(-1), 0.0)),
                    },
                    schema_overrides={"group": pl.Int64},
                ).filter(pl.col("arm") != NO_ACTION)
            )
        return pl.concat(parts) if parts else pl.DataFrame()

    def _arm_effects(self, codes: I64) -> list[ArmEffect]:
        counts = np.bincount(codes[codes >= 0], minlength=len(self.arms_))
        flagged = set(self.flagged_arms_)
        out = []
        for objective_fit in self.fits_:
            parts = _parts(objective_fit)
            for fit in parts:
                part: Literal["positive", "negative"] | None = None
                if len(parts) > 1:
                    part = "negative" if fit.amount_sign < 0 else "positive"
                for i, arm in enumerate(self.arms_):
                    if arm == NO_ACTION:
                        continue
                    raw = fit.raw_delta[i] if len(fit.raw_delta) else np.nan
                    raw_var = fit.raw_delta_var[i] if len(fit.raw_delta_var) else np.nan
                    out.append(
                        ArmEffect(
                            arm=arm,
                            objective=fit.spec.objective,
                            rows=int(counts[i]),
                            events=int(fit.events_by_arm[i]) if len(fit.events_by_arm) else 0,
                            raw_logit_effect=float(raw) if np.isfinite(raw) else None,
                            raw_se=float(math.sqrt(raw_var)) if np.isfinite(raw_var) else None,
                            logit_effect=float(fit.delta[i]),
                            posterior_sd=float(math.sqrt(max(fit.delta_var[i], 0.0))),
                            amount_multiplier=float(math.exp(fit.log_mult[i])) if fit.spec.is_amount else None,
                            pooled=arm in flagged,
                            part=part,
                        )
                    )
        return out

    # ---- prediction ------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "fits_"):
            raise NotFittedError("this EffectModel is not fitted yet: call fit(training) first")

    def _baseline_logits(self, fit: _ObjectiveFit, x: NDArray[np.float32], *, parallel: bool = True) -> F64:
        """Shape (K, n): each fold model's do-nothing raw score."""
        xa = self._with_arm(x, 0)
        trees = fit.n_trees or None

        def fold(k: int) -> F64:
            score = fit.boosters[k].predict(xa, raw_score=True, num_iteration=trees, num_threads=1)
            return np.asarray(score, dtype=np.float64) + fit.init_logit

        return np.stack(self._in_threads(fold, len(fit.boosters), parallel=parallel))

    def _baseline_amounts(self, fit: _ObjectiveFit, x: NDArray[np.float32]) -> F64:
        """Expected amount per event under doing nothing, relative to scale (mean of fold models)."""
        if not fit.amount_boosters:
            return np.full(x.shape[0], fit.amount_constant * math.exp(fit.amount_reference))
        xa = self._with_arm(x, 0)
        # One LightGBM thread, as every call on a pool thread (the projection's objectives run on
        # several; see quiet_lightgbm): without it, this predict reset LightGBM's process-wide
        # thread count to all cores beside another objective's predict, a segfault.
        mean: F64 = np.mean([b.predict(xa, num_threads=1) for b in fit.amount_boosters], axis=0)
        out: F64 = np.maximum(mean, 1e-9) * math.exp(fit.amount_reference)
        return out

    def project(self, snapshot: pl.DataFrame, *, level: float | None = None) -> EffectProjection:
        """Projected effects of every action for every account of a snapshot, with intervals.

        Parameters
        ----------
        snapshot
            One row per account: ``account_id`` and the features (as
            :func:`~nextmove.features.compute_features` makes them).
        level
            Interval level (default: the model's ``level``).

        Returns
        -------
        EffectProjection
            Per account × action × objective (``effects``) and per account × action in dollars
            (``values``).

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        ConfigError
            If ``level`` is not in (0, 1) or the snapshot lacks ``account_id``.
        """
        self._check_fitted()
        level = self.level if level is None else level
        _check_level(level)
        _require(snapshot, "account_id", "a projection")
        rng = np.random.default_rng(self.random_state)
        # Parameter draws are shared by all accounts (and chunks); heterogeneity is per account.
        params = [self._parameter_draws(fit, rng) for fit in self.fits_]
        # The negative amounts' fits draw after every objective, so the other draws stay as they were.
        negative = [
            None if fit.negative_part is None else self._parameter_draws(fit.negative_part, rng) for fit in self.fits_
        ]
        chunk = max(1, _DRAW_BUDGET // max(self.n_draws * len(self.arms_), 1))
        n, specs = snapshot.height, [fit.spec for fit in self.fits_]
        arms = tuple(a for a in self.arms_ if a != NO_ACTION)
        flagged = set(self.flagged_arms_)
        shape = (len(specs), len(arms), n)
        # Filled chunk by chunk: the effects stay arrays (the long frame is made only when read).
        arrays = EffectArrays(
            ids=_keys_frame(snapshot),
            starts=tuple(range(0, max(n, 1), chunk)),
            arms=arms,
            pooled=tuple(a in flagged for a in arms),
            objectives=tuple(s.objective for s in specs),
            outcomes=tuple(s.outcome for s in specs),
            units=tuple(s.unit for s in specs),
            constant=tuple(all(part.constant is not None for part in _parts(fit)) for fit in self.fits_),
            baseline=np.zeros((len(specs), n)),
            per_unit=np.zeros((len(specs), n)),
            effect=np.zeros(shape),
            low=np.zeros(shape),
            high=np.zeros(shape),
            value_arms=tuple(self.arms_),
            costs=tuple(float(c) for c in self.arm_costs_),
            value=np.zeros((len(self.arms_), n)),
            value_low=np.zeros((len(self.arms_), n)),
            value_high=np.zeros((len(self.arms_), n)),
        )
        for number, start in enumerate(arrays.starts):
            self._project_chunk(snapshot.slice(start, chunk), level, params, number, arrays, start, negative)
        return EffectProjection(level=level, flagged_actions=tuple(self.flagged_arms_), arrays=arrays)

    def _parameter_draws(self, fit: _ObjectiveFit, rng: np.random.Generator) -> dict[str, F64]:
        n_draws, n_arms = self.n_draws, len(self.arms_)
        # Shape (arms, groups, draws): without groups, one group.
        mean = fit.group_delta if len(fit.group_delta) else np.zeros((n_arms, 1))
        sd = np.sqrt(np.maximum(fit.group_delta_var, 0.0)) if len(fit.group_delta_var) else np.zeros((n_arms, 1))
        shift = mean[:, :, None] + sd[:, :, None] * rng.standard_normal((*mean.shape, n_draws))
        m_sd = np.sqrt(np.maximum(fit.log_mult_var, 0.0)) if len(fit.log_mult_var) else np.zeros(n_arms)
        log_mult = fit.log_mult if len(fit.log_mult) else np.zeros(n_arms)
        mult = np.exp(log_mult[:, None] + m_sd[:, None] * rng.standard_normal((n_arms, n_draws)))
        beta0 = fit.beta0 + math.sqrt(max(fit.beta0_var, 0.0)) * rng.standard_normal(n_draws)
        slope = fit.repeat_slope + math.sqrt(max(fit.repeat_slope_var, 0.0)) * rng.standard_normal(n_draws)
        contrast = fit.contrast_slope + math.sqrt(max(fit.contrast_slope_var, 0.0)) * rng.standard_normal(n_draws)
        fatigue = fit.fatigue_slope + math.sqrt(max(fit.fatigue_slope_var, 0.0)) * rng.standard_normal(n_draws)
        count = fit.count_slope + math.sqrt(max(fit.count_slope_var, 0.0)) * rng.standard_normal(n_draws)
        out: dict[str, F64] = {
            "shift": shift,
            "mult": mult,
            "beta0": beta0,
            "slope": slope,
            "contrast": contrast,
            "fatigue": fatigue,
            "count": count,
        }
        if getattr(self, "touch_cost_used_", False):
            # Drawn only when the model has the term, so the other terms' draws stay as they were.
            touch_sd = math.sqrt(max(fit.touch_cost_slope_var, 0.0))
            out["touch_cost"] = fit.touch_cost_slope + touch_sd * rng.standard_normal(n_draws)
        return out

    def _project_chunk(
        self,
        snapshot: pl.DataFrame,
        level: float,
        params: list[dict[str, F64]],
        number: int,
        arrays: EffectArrays,
        start: int,
        negative: list[dict[str, F64] | None],
    ) -> None:
        """Project a chunk of accounts: its effects and values are written into ``arrays`` from row ``start``
        (``negative``: each objective's parameter draws of its negative amounts, if it has a fit of them)."""
        n = snapshot.height
        x = self._transform(snapshot)
        chunk = _Chunk(
            x=x,
            ids=_keys_frame(snapshot),
            scale=self._scale(snapshot),
            arr=(
                snapshot.get_column("arr").cast(pl.Float64).to_numpy().astype(np.float64)
                if "arr" in snapshot.columns
                else np.zeros(n)
            ),
            repeat_z=self._repeat_z(snapshot),
            count_z=self._count_z(snapshot),
            fatigue_z=self._fatigue_z(snapshot),
            touch_z=self._touch_z(snapshot),
            groups=self._groups(x),
            level=level,
            proba=self._rloss_proba(snapshot),
        )
        arms = self.arms_
        rows = slice(start, start + n)

        def objective(o: int) -> tuple[F64, F32]:
            rng = np.random.default_rng([self.random_state, number, o])
            return self._project_objective(self.fits_[o], params[o], chunk, rng, arrays, o, rows, negative[o])

        # The objectives in parallel (each predicts its fold models in turn): LightGBM, the draws and
        # the quantiles release the GIL.
        done = self._in_threads(objective, len(self.fits_))
        value_point, value_draws = done[0]
        for point, draws in done[1:]:
            value_point += point
            value_draws += draws
        q_low, q_high = (1 - level) / 2, (1 + level) / 2
        for i, arm in enumerate(arms):
            cost = float(self.arm_costs_[i])
            if arm == NO_ACTION:
                low = high = np.zeros(n)
            else:
                low, high = _interval(value_point[i], value_draws[i], q_low, q_high, self.interval_scale)
            arrays.value[i, rows] = value_point[i] - cost
            arrays.value_low[i, rows] = low - cost
            arrays.value_high[i, rows] = high - cost

    def _project_objective(
        self,
        fit: _ObjectiveFit,
        drawn: dict[str, F64],
        chunk: _Chunk,
        rng: np.random.Generator,
        arrays: EffectArrays,
        o: int,
        rows: slice,
        negative_drawn: dict[str, F64] | None = None,
    ) -> tuple[F64, F32]:
        """One objective's dollars, point (arms, n) and draws (arms, n, draws); its effects go to ``arrays``
        (objective ``o``, the chunk's ``rows``).

        An objective whose amounts have both signs adds its two parts, draw by draw: the positive amounts'
        (``fit``, ``drawn``) and the negative ones' (``fit.negative_part``, ``negative_drawn``).
        """
        n = chunk.x.shape[0]
        arms, n_draws = self.arms_, self.n_draws
        q_low, q_high = (1 - chunk.level) / 2, (1 + chunk.level) / 2
        value_point = np.zeros((len(arms), n))
        value_draws = np.zeros((len(arms), n, n_draws), dtype=np.float32)
        per_unit = fit.spec.usd_per_unit(chunk.arr)
        arrays.per_unit[o, rows] = per_unit
        parts = [self._project_part(fit, drawn, chunk, rng)]
        if fit.negative_part is not None and negative_drawn is not None:
            # Its own account-level spread: how an account's response to an action departs from the
            # features' on the negative amounts is not tied to how it does on the positive ones.
            parts.append(self._project_part(fit.negative_part, negative_drawn, chunk, rng))
        arrays.baseline[o, rows] = parts[0].baseline if len(parts) == 1 else parts[0].baseline + parts[1].baseline
        learned = [(part.arms, part.row_scale) for part in parts if part.arms is not None]
        if not learned:
            return value_point, value_draws  # no effect: the arrays' zeros stay
        row_scale: F64 | None = learned[0][1]
        if len(learned) > 1:
            # Both parts learned: their draws in the objective's units, added (the row scales applied first).
            row_scale = None
            scales = [scale.astype(np.float32)[:, None] for _, scale in learned]
        dollars = (per_unit if row_scale is None else row_scale * per_unit).astype(np.float32)[:, None]
        for i, arm in enumerate(arms):
            if arm == NO_ACTION:
                continue
            effect, draws = next(learned[0][0])
            if len(learned) > 1:
                other, other_draws = next(learned[1][0])
                effect = effect + other
                draws *= scales[0]
                other_draws *= scales[1]
                draws += other_draws
            low, high = _interval(effect, draws, q_low, q_high, self.interval_scale, row_scale)
            # Arm i is the arrays' arm i - 1 (none, first, has no effects).
            arrays.effect[o, i - 1, rows], arrays.low[o, i - 1, rows], arrays.high[o, i - 1, rows] = effect, low, high
            value_point[i] += effect * per_unit
            draws *= dollars
            value_draws[i] += draws
        return value_point, value_draws

    def _project_part(
        self, fit: _ObjectiveFit, drawn: dict[str, F64], chunk: _Chunk, rng: np.random.Generator
    ) -> _PartProjection:
        """One fit's do-nothing level and, arm by arm (``none`` left out), its effect and draws of the effect
        (divided by the row scale); no arms for a constant fit."""
        x, scale, groups, repeat_z = chunk.x, chunk.scale, chunk.groups, chunk.repeat_z
        busy, counts = chunk.fatigue_z, chunk.count_z
        n = x.shape[0]
        arms, n_draws = self.arms_, self.n_draws
        spec = fit.spec
        if fit.constant is not None:
            amount = fit.amount_sign * fit.amount_constant * scale if spec.is_amount else np.ones(n)
            return _PartProjection(baseline=fit.constant * amount, row_scale=np.zeros(n), arms=None)
        folds_logit = self._baseline_logits(fit, x, parallel=False)
        k = folds_logit.shape[0]
        center = folds_logit.mean(axis=0)
        # Baseline draws: the fold models in turn, each deviation scaled as a delete-a-group jackknife.
        # The draws are single precision (they only make the intervals); the points are double.
        inflate = math.sqrt(max(k - 1, 1))
        center32, folds32 = center.astype(np.float32), folds_logit.astype(np.float32)
        base_draws = center32[:, None] + np.float32(inflate) * (folds32[np.arange(n_draws) % k].T - center32[:, None])
        base_draws += (drawn["beta0"][None, :] + fit.group_beta0[groups][:, None]).astype(np.float32)
        p0 = sigmoid(center + fit.beta0 + fit.group_beta0[groups])
        amount0 = self._baseline_amounts(fit, x) * scale if spec.is_amount else np.ones(n)
        if fit.amount_sign < 0:
            amount0 = -amount0  # negative amounts are modelled by their size
        contrasts = self._contrasts(fit, x, parallel=False)
        # The account-level spread of the shift: one draw per account and draw, shared by the arms. Each
        # arm's interval is read from its own draws alone, so sharing changes no interval's law, and
        # it saves fourteen of every fifteen normal numbers (the largest single cost of the draws).
        hetero = (self.heterogeneity_sd * rng.standard_normal((n, n_draws))).astype(np.float32)
        repeat_on, count_on, fatigue_on = self._modifiers_used()
        touch = fit.touch_cost_slope * chunk.touch_z
        # The draws work with σ(z) = (1 + tanh(z / 2)) / 2 on halved logits: what every arm shares (the
        # baseline, the account-level spread, the touch cost) is summed and halved once, and each arm's
        # probability difference is half a difference of tanh, its factor applied to the few interval
        # ends and folded into the dollars. tanh saturates, so no logit needs clipping.
        half = np.float32(0.5)
        shared = base_draws + hetero
        if "touch_cost" in drawn:
            shared += np.outer(chunk.touch_z.astype(np.float32), drawn["touch_cost"].astype(np.float32))
        shared *= half
        t0 = np.tanh(np.multiply(base_draws, half, out=base_draws))  # p0's draws are (1 + t0) / 2
        if spec.is_amount:
            t0 += np.float32(1.0)  # (1 + t0): an arm's draws are ((1 + ta)·m − (1 + t0)) / 2 times the amount
            row_scale = 0.5 * amount0
        else:
            row_scale = np.full(n, 0.5)
        shift_half = (0.5 * drawn["shift"]).astype(np.float32)  # (arms, groups, draws)
        contrast_half = (0.5 * drawn["contrast"]).astype(np.float32)

        def by_arm() -> Iterator[tuple[F64, F32]]:
            for i, arm in enumerate(arms):
                if arm == NO_ACTION:
                    continue
                z = repeat_z[:, i]
                contrast = contrasts[i]
                pa = sigmoid(
                    center
                    + fit.beta0
                    + fit.group_beta0[groups]
                    + fit.group_delta[i, groups] * _multiplier(fit, z, counts[:, i], busy)
                    + fit.contrast_slope * contrast
                    + touch
                )
                adjust = self._rloss_adjust(fit, i, x, p0, pa, chunk.proba)
                if adjust is not None:
                    pa = sigmoid(np.log(np.clip(pa, 1e-12, 1)) - np.log(np.clip(1 - pa, 1e-12, 1)) + adjust)
                draws = shift_half[i][groups]
                # Only the modifiers the model has (an unused one is zeros: its draws would multiply by 1).
                terms = [(z, "slope", repeat_on), (busy, "fatigue", fatigue_on), (counts[:, i], "count", count_on)]
                if repeat_on or count_on or fatigue_on:
                    slopes = np.zeros((n, n_draws), dtype=np.float32)
                    for values, key, on in terms:
                        if on:
                            slopes += np.outer(values.astype(np.float32), drawn[key].astype(np.float32))
                    draws *= np.exp(np.clip(slopes, -_Z_CAP, _Z_CAP, out=slopes), out=slopes)
                draws += np.outer(contrast.astype(np.float32), contrast_half)
                if adjust is not None:
                    draws += (0.5 * adjust).astype(np.float32)[:, None]
                draws += shared
                np.tanh(draws, out=draws)  # 2·σ − 1 of the arm's logit draws
                if spec.is_amount:
                    effect = (pa * math.exp(fit.log_mult[i]) - p0) * amount0
                    draws += np.float32(1.0)
                    draws *= drawn["mult"][i].astype(np.float32)[None, :]
                else:
                    effect = pa - p0
                draws -= t0  # the arm's draws of the effect, divided by row_scale
                yield effect, draws

        return _PartProjection(baseline=p0 * amount0, row_scale=row_scale, arms=by_arm())

    def expected_values(self, frame: pl.DataFrame, *, objective: str | None = None) -> pl.DataFrame:
        """The expected dollar value of every arm for every row: the outcome model that DR evaluation needs.

        ``Σ_objectives dollars(E[Y_o | x, a]) − cost(a)`` with the convention of
        :class:`ObjectiveSpec`; the level matches :func:`row_value_usd` of realised rows.

        Parameters
        ----------
        frame
            Rows with ``account_id`` (and ``decision_ts`` if present) and the features.
        objective
            Only this objective's dollars, without cost (matches ``row_value_usd(…, objective=…)``).

        Returns
        -------
        polars.DataFrame
            ``account_id``, ``decision_ts`` (when the frame has it), ``action_id``,
            ``expected_value_usd``: one row per input row and arm.

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        """
        self._check_fitted()
        n = frame.height
        x = self._transform(frame)
        scale = self._scale(frame)
        arr = frame.get_column("arr").cast(pl.Float64).to_numpy() if "arr" in frame.columns else np.zeros(n)
        totals = np.zeros((len(self.arms_), n))
        repeat_z = self._repeat_z(frame)
        count_z = self._count_z(frame)
        busy = self._fatigue_z(frame)
        touch = self._touch_z(frame)
        groups = self._groups(x)
        proba = self._rloss_proba(frame)
        if objective is not None and objective not in {f.spec.objective for f in self.fits_}:
            raise ConfigError(f"objective {objective!r} is not in the playbook")
        # An objective whose amounts have both signs adds the fit of its negative ones.
        for fit in (part for objective_fit in self.fits_ for part in _parts(objective_fit)):
            spec = fit.spec
            if objective is not None and spec.objective != objective:
                continue
            per_unit = spec.usd_per_unit(arr)
            if fit.constant is not None:
                level = fit.constant * (fit.amount_sign * fit.amount_constant * scale if spec.is_amount else 1.0)
                totals += level * per_unit
                continue
            folds_logit = self._baseline_logits(fit, x)
            center = folds_logit.mean(axis=0) + fit.beta0 + fit.group_beta0[groups]
            amount0 = self._baseline_amounts(fit, x) * scale if spec.is_amount else np.ones(n)
            if fit.amount_sign < 0:
                amount0 = -amount0  # negative amounts are modelled by their size
            contrasts = self._contrasts(fit, x)
            for i, arm in enumerate(self.arms_):
                shift = fit.group_delta[i, groups] * _multiplier(fit, repeat_z[:, i], count_z[:, i], busy)
                shift = shift + fit.contrast_slope * contrasts[i]
                if arm != NO_ACTION:
                    shift = shift + fit.touch_cost_slope * touch
                p = sigmoid(center + shift)
                adjust = self._rloss_adjust(fit, i, x, sigmoid(center), p, proba) if arm != NO_ACTION else None
                if adjust is not None:
                    p = sigmoid(center + shift + adjust)
                mult = math.exp(fit.log_mult[i]) if spec.is_amount else 1.0
                totals[i] += p * mult * amount0 * per_unit
        keys = ["account_id"] + (["decision_ts"] if "decision_ts" in frame.columns else [])
        parts = []
        for i, arm in enumerate(self.arms_):
            parts.append(
                frame.select(keys).with_columns(
                    pl.lit(arm).alias("action_id"),
                    pl.Series("expected_value_usd", totals[i] - (self.arm_costs_[i] if objective is None else 0.0)),
                )
            )
        return pl.concat(parts)


# ---- helpers ----------------------------------------------------------------------------------


def _parts(fit: _ObjectiveFit) -> list[_ObjectiveFit]:
    """An objective's fits: its own and, when its amounts have both signs, that of the negative ones."""
    return [fit] if fit.negative_part is None else [fit, fit.negative_part]


def _rloss_matrix(pair: F64, pa: F64, p0: F64, current: bool) -> NDArray[np.float32]:
    """The R-loss correction's features: the history's propensity of the arm against none (and with
    ``current``, the current effect and baseline)."""
    columns = [pair, pa - p0, p0] if current else [pair]
    out: NDArray[np.float32] = np.column_stack(columns).astype(np.float32)
    return out


def _check_level(level: object) -> None:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < float(level) < 1:
        raise ConfigError(f"level must be a number in (0, 1), e.g. 0.9, got {level!r}")


def _fit_shift(
    y: F64, offset: F64, weights: F64, ridge: float = 1.0, multiplier: F64 | None = None
) -> tuple[float, float]:
    """The logit shift ``b`` maximising the (weighted) likelihood of ``y`` under ``σ(offset + b · multiplier)``.

    A weak ridge (``ridge``, in units of the Hessian) keeps it finite when an arm has no events;
    the variance is the inverse Hessian, with weights scaled to their effective sample size.
    ``multiplier`` (default 1) scales the shift row by row.
    """
    w = weights / weights.mean()
    m = np.ones(len(y)) if multiplier is None else multiplier
    b = 0.0
    h = ridge
    for _ in range(100):
        p = sigmoid(np.clip(offset + b * m, -_Z_CAP, _Z_CAP))
        g = float(np.sum(w * (p - y) * m)) + ridge * b
        h = float(np.sum(w * p * (1 - p) * m * m)) + ridge
        step = g / h
        b -= step
        if abs(step) < 1e-10:
            break
    ess = float(weights.sum() ** 2 / np.sum(weights**2))
    var = 1.0 / h * (len(w) / max(ess, 1.0))
    return b, var


def _fit_modifier_slopes(
    y: F64,
    offset: F64,
    codes: I64,
    z: F64,
    weights: F64,
    ridge: float,
    shift_ridge: float = 1.0,
    additive: F64 | None = None,
) -> tuple[F64, F64]:
    """The slopes ``θ``, ``α`` of ``σ(offset + δ_arm · exp(z · θ) + a · α)``, fitted with every arm's shift ``δ``.

    ``z`` (rows × modifiers) holds standardised modifiers of the effect: the recency of the row's
    own action (``θ < 0``: an action repeated recently does less), the account's recent touches of
    any action (fatigue). ``a`` (``additive``, rows × terms, default none) holds terms added to the
    logit whatever the arm (the touch cost). A column of zeros keeps its slope at 0. Ridge
    penalties: ``ridge`` on each ``θ`` and ``α``, ``shift_ridge`` on each ``δ``. Returns ``θ``
    followed by ``α``, and their variances (Gauss–Newton, weights scaled to their effective sample
    size).
    """
    arms, index = np.unique(codes, return_inverse=True)
    a = np.zeros((len(y), 0)) if additive is None else additive
    k, m, q = len(arms), z.shape[1], a.shape[1]
    w = weights / weights.mean()

    def objective(params: F64) -> tuple[float, F64]:
        delta, theta, alpha = params[:k], params[k : k + m], params[k + m :]
        em = np.exp(np.clip(z @ theta, -_Z_CAP, _Z_CAP))
        eta = offset + delta[index] * em + a @ alpha
        p = sigmoid(np.clip(eta, -_Z_CAP, _Z_CAP))
        # log(1 + e^η) − y·η, summed with weights: the negative log-likelihood, stable for any η.
        nll = float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)))
        r = w * (p - y)
        grad_delta = np.bincount(index, weights=r * em, minlength=k) + shift_ridge * delta
        grad_theta = z.T @ (r * delta[index] * em) + ridge * theta
        grad_alpha = a.T @ r + ridge * alpha
        penalty = 0.5 * shift_ridge * float(delta @ delta) + 0.5 * ridge * float(params[k:] @ params[k:])
        return nll + penalty, np.concatenate([grad_delta, grad_theta, grad_alpha])

    result = minimize(objective, np.zeros(k + m + q), jac=True, method="L-BFGS-B")
    delta, theta, alpha = result.x[:k], result.x[k : k + m], result.x[k + m :]
    em = np.exp(np.clip(z @ theta, -_Z_CAP, _Z_CAP))
    p = sigmoid(np.clip(offset + delta[index] * em + a @ alpha, -_Z_CAP, _Z_CAP))
    curvature = w * p * (1 - p)
    # The logit's derivatives by θ and α (δ's are em, one arm per row).
    jac_theta = np.hstack([(delta[index] * em)[:, None] * z, a])
    # Gauss–Newton information of (δ, θ, α); δ's block is diagonal, so the slopes' covariance is the
    # inverse of its Schur complement.
    h_dd = np.bincount(index, weights=curvature * em * em, minlength=k) + shift_ridge
    h_dt = np.stack(
        [np.bincount(index, weights=curvature * em * jac_theta[:, j], minlength=k) for j in range(m + q)], axis=1
    )
    h_tt = jac_theta.T @ (curvature[:, None] * jac_theta) + ridge * np.eye(m + q)
    info = h_tt - h_dt.T @ (h_dt / h_dd[:, None])
    ess = float(weights.sum() ** 2 / np.sum(weights**2))
    cov = np.linalg.pinv(info) * (len(w) / max(ess, 1.0))
    var: F64 = np.maximum(np.diag(cov), 0.0)
    out: F64 = np.concatenate([theta, alpha]).astype(np.float64)
    return out, var


def _multiplier(fit: _ObjectiveFit, repeat_z: F64, count_z: F64, fatigue_z: F64) -> F64:
    """Row by row, the factor ``exp(θ · z)`` of an arm's shift: repeat recency, repeat count and fatigue."""
    modifier = fit.repeat_slope * repeat_z + fit.count_slope * count_z + fit.fatigue_slope * fatigue_z
    out: F64 = np.exp(np.clip(modifier, -_Z_CAP, _Z_CAP))
    return out


def _empirical_bayes(
    est: F64,
    var: F64,
    usable: NDArray[np.bool_],
    min_sd: float = 1.0,
    center: tuple[float, float] | None = None,
) -> tuple[F64, F64]:
    """Shrink per-arm estimates toward their precision-weighted pool (DerSimonian–Laird).

    The between-arm variance is the DerSimonian–Laird estimate, at least ``min_sd²`` (with fewer
    than three usable arms it cannot be told and ``min_sd²`` stands in for it). Arms not
    ``usable`` (flagged, never taken) get the pooled estimate with the between-arm variance plus
    the pool's own. ``center`` (estimate, variance) replaces the pool as the target of the
    shrinkage (the arm's own shift, when groups of one arm are shrunk).
    """
    prior_sd = min_sd
    out = np.where(np.isfinite(est), est, 0.0).astype(np.float64)
    out_var = np.where(np.isfinite(var), var, 0.0).astype(np.float64)
    idx = np.flatnonzero(usable & np.isfinite(est) & np.isfinite(var))
    if len(idx) == 0:
        target, target_var = center if center is not None else (0.0, 0.0)
        return np.full(len(est), target), np.full(len(est), prior_sd**2 + target_var)
    e, v = est[idx], np.maximum(var[idx], 1e-12)
    w = 1.0 / v
    fixed = float(np.sum(w * e) / np.sum(w))
    between = prior_sd**2
    if len(idx) >= 3:
        q = float(np.sum(w * (e - fixed) ** 2))
        denom = float(np.sum(w) - np.sum(w**2) / np.sum(w))
        between = max(between, (q - (len(idx) - 1)) / denom if denom > 0 else 0.0)
    w_star = 1.0 / (v + between)
    pooled = float(np.sum(w_star * e) / np.sum(w_star))
    pooled_var = float(1.0 / np.sum(w_star))
    if center is not None:
        pooled, pooled_var = center
    if between > 0:
        keep = between / (between + v)
        out[idx] = pooled + keep * (e - pooled)
        out_var[idx] = keep * v + (1 - keep) ** 2 * pooled_var
    else:
        out[idx] = pooled
        out_var[idx] = pooled_var
    rest = np.ones(len(est), dtype=bool)
    rest[idx] = False
    out[rest] = pooled
    out_var[rest] = between + pooled_var if between > 0 else prior_sd**2 + pooled_var
    return out, out_var


def _signed_log(x: NDArray[np.float32]) -> F64:
    """``sign(x) · log(1 + |x|)``: counts and dollars on a scale where k-means distances mean something."""
    v = x.astype(np.float64)
    out: F64 = np.sign(v) * np.log1p(np.abs(v))
    return out


def _own_action(
    rows: pl.DataFrame, codes: I64, columns: list[str | None], transform: Callable[[pl.Series], F64]
) -> F64:
    """Every row's value of its own arm's column through ``transform`` (0 for ``none`` and arms without one)."""
    own = np.zeros(rows.height)
    for i, column in enumerate(columns):
        mine = codes == i
        if column is not None and mine.any():
            own[mine] = transform(rows.get_column(column).filter(pl.Series(mine)))
    return own


def _standardiser(values: F64, acted: NDArray[np.bool_]) -> tuple[float, float, bool]:
    """Mean and standard deviation of ``values`` on the acted rows, and whether they vary at all."""
    center = float(values[acted].mean()) if acted.any() else 0.0
    scale = float(values[acted].std()) if acted.any() else 0.0
    return center, scale, scale > 1e-6


def _standardised(values: F64, acted: NDArray[np.bool_], center: float, scale: float, used: bool) -> F64:
    """``values`` standardised on the acted rows, 0 elsewhere (all 0 when they do not vary)."""
    if not used:
        return np.zeros(len(values))
    out: F64 = np.where(acted, (values - center) / scale, 0.0)
    return out


def _fit_column_z(
    rows: pl.DataFrame, column: str | None, transform: Callable[[pl.Series], F64], acted: NDArray[np.bool_]
) -> tuple[F64, float, float, bool]:
    """One account-level column, transformed and standardised on the acted rows: ``(z, center, scale, used)``.

    Zeros and ``used = False`` when the column is not set, not in ``rows``, or does not vary.
    """
    if column is None or column not in rows.columns:
        return np.zeros(rows.height), 0.0, 1.0, False
    values = transform(rows.get_column(column))
    center, scale, used = _standardiser(values, acted)
    z: F64 = (values - center) / scale if used else np.zeros(rows.height)
    return z, center, scale, used


def _column_z(
    frame: pl.DataFrame, column: str | None, transform: Callable[[pl.Series], F64], center: float, scale: float
) -> F64:
    """The column standardised as it was at fit time (zeros when the frame lacks it)."""
    if column is None or column not in frame.columns:
        return np.zeros(frame.height)
    out: F64 = (transform(frame.get_column(column)) - center) / scale
    return out


def _count(counts: pl.Series) -> F64:
    """A count column as floats, nulls and negatives as 0."""
    values = counts.cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
    out: F64 = np.maximum(values, 0.0)
    return out


def _log_count(counts: pl.Series) -> F64:
    """``log(1 + count)``, nulls and negatives as 0."""
    values = counts.cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
    out: F64 = np.log1p(np.maximum(values, 0.0))
    return out


def _recency(days: pl.Series, scale_days: float) -> F64:
    """``exp(−days / scale_days)`` of a days-since column: 1 for today, 0 for never (null)."""
    values = days.cast(pl.Float64).to_numpy().astype(np.float64)
    out: F64 = np.where(np.isfinite(values), np.exp(-np.maximum(np.nan_to_num(values), 0.0) / scale_days), 0.0)
    return out


def _interval(
    point: F64, draws: F64 | F32, q_low: float, q_high: float, scale: float, row_scale: F64 | None = None
) -> tuple[F64, F64]:
    """The central interval of ``draws`` (per row), its half-widths around ``point`` times ``scale``.

    ``row_scale`` (one number per row) multiplies the draws first: quantiles commute with it, so only
    the two ends are multiplied (a negative factor swaps them, exactly so for a central interval).
    """
    # Sorting each row and interpolating as ``np.quantile`` does ("linear") is several times faster
    # than its partition: numpy sorts short rows with SIMD.
    ordered = np.sort(draws, axis=1)
    lo, hi = (_sorted_quantile(ordered, q) for q in (q_low, q_high))
    if row_scale is not None:
        lo, hi = np.minimum(lo * row_scale, hi * row_scale), np.maximum(lo * row_scale, hi * row_scale)
    low: F64 = point - scale * np.maximum(point - lo, 0.0)
    high: F64 = point + scale * np.maximum(hi - point, 0.0)
    return low, high


def _sorted_quantile(ordered: NDArray[Any], q: float) -> F64:
    """The ``q`` quantile of every row of row-sorted draws, interpolated like ``np.quantile``'s default."""
    last = ordered.shape[1] - 1
    position = q * last
    below = min(math.floor(position), last)
    above = min(below + 1, last)
    weight = position - below
    a, b = ordered[:, below].astype(np.float64), ordered[:, above].astype(np.float64)
    out: F64 = a + (b - a) * weight
    return out


def _as_none(xa: NDArray[np.float32]) -> NDArray[np.float32]:
    """A copy of rows of the model matrix with the arm set to ``none`` (code 0, the last column)."""
    out = xa.copy()
    out[:, -1] = 0.0
    return out


def _earliest_finish(training: pl.DataFrame, horizon_days: int) -> datetime | None:
    """When the earliest decision of a training set has its horizon over (None without decisions)."""
    if training.height == 0 or "decision_ts" not in training.columns:
        return None
    first = training.get_column("decision_ts").min()
    return first + timedelta(days=horizon_days) if isinstance(first, datetime) else None


def _keys_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns that name a row of a projection: ``account_id`` and, when present, ``decision_ts``."""
    keys = [pl.col("account_id").cast(pl.String)]
    if "decision_ts" in frame.columns:
        keys.append(pl.col("decision_ts"))
    return frame.select(keys)


def _effect_frame(
    ids: pl.DataFrame,
    arm: str,
    labels: tuple[str, str, str],
    baseline: F64,
    effect: F64,
    low: F64,
    high: F64,
    effect_usd: F64,
    pooled: bool,
) -> pl.DataFrame:
    n = ids.height
    objective, outcome, unit = labels
    data = pl.DataFrame(
        {
            "action_id": [arm] * n,
            "objective": [objective] * n,
            "outcome": [outcome] * n,
            "unit": [unit] * n,
            "baseline": baseline,
            "effect": effect,
            "low": low,
            "high": high,
            "effect_usd": effect_usd,
            "pooled": np.full(n, pooled),
        },
        schema=_EFFECT_SCHEMA,
    )
    return pl.concat([ids, data], how="horizontal")


_EFFECT_SCHEMA = {
    "action_id": pl.String,
    "objective": pl.String,
    "outcome": pl.String,
    "unit": pl.String,
    "baseline": pl.Float64,
    "effect": pl.Float64,
    "low": pl.Float64,
    "high": pl.Float64,
    "effect_usd": pl.Float64,
    "pooled": pl.Boolean,
}


_VALUE_SCHEMA = {
    "action_id": pl.String,
    "value_usd": pl.Float64,
    "low": pl.Float64,
    "high": pl.Float64,
    "cost_usd": pl.Float64,
    "pooled": pl.Boolean,
}


def _empty_effects() -> pl.DataFrame:
    return pl.DataFrame(schema={"account_id": pl.String, **_EFFECT_SCHEMA})
