"""Lift against control: what the recommended cohort gained over the randomised control cohort, per objective.

A run assigns each account to an arm: the randomised ``control`` cohort gets the lifecycle-default
action, the ``model`` and ``explore`` arms get the policy's action. Once the playbook's horizon has
passed, the outcomes that followed the run's ``as_of`` say, per objective, how much better the
recommended cohort did than control (with an interval), what that was worth in dollars, and how
each action's realised effect compares with the effect the run projected for it.

The lift is intention to treat: it compares the cohorts as they were randomised, whether or not the
recommended plays were done. Beside it, the report says how many were
(:mod:`nextmove.measure.completion`): per arm and action, done, dismissed, snoozed or neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.book import NO_ACTION, Book, as_of_of_reach, data_reach, gone_at, of_dates, table_reach
from nextmove.book.notes import book_spans, lift_lagging_outcomes_note, outcomes_lag
from nextmove.book.notes import option_time as _iso
from nextmove.book.outcomes_until import until_instant
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, build_training_set, training_vocabulary
from nextmove.features.history import to_utc
from nextmove.features.names import terminal_outcome_kinds
from nextmove.measure.completion import Completion, CompletionCount, measure_completion
from nextmove.measure.dominance import FEW_OF_MANY, Dominance, find_dominance, share_words
from nextmove.models.effect import ObjectiveSpec, objective_specs, row_value_usd
from nextmove.playbook import Playbook
from nextmove.playbook.money import DEFAULT_CURRENCY, money_text
from nextmove.playbook.schema import ValueBasis
from nextmove.store.identity import same_book

__all__ = [
    "CONTROL_ARM",
    "ESTIMAND",
    "INTERVAL_METHOD",
    "LIFT_VALUES",
    "TREATED_ARMS",
    "AccountOverlap",
    "ActionAccuracy",
    "HorizonNotOverError",
    "LiftReport",
    "ObjectiveLift",
    "ValueLift",
    "account_overlap",
    "check_horizon",
    "estimate_lift",
    "json_ready",
    "known_until",
    "latest_data_time",
    "measured_outcomes",
    "measured_vocabulary",
    "overlap_note",
    "overlapping_runs",
    "playbook_note",
    "recommendations_frame",
    "stored_recommendations_frame",
    "with_overlap_note",
    "with_playbook_note",
]

F64 = NDArray[np.float64]

TREATED_ARMS: tuple[str, ...] = ("model", "explore")
"""Arms whose accounts got the policy's action: together, the recommended cohort."""
CONTROL_ARM = "control"
"""The randomised arm that got the lifecycle-default action."""
INTERVAL_METHOD = (
    "normal approximation: Welch standard error, each cohort's variance at least the pooled one; "
    "Agresti-Caffo on 0/1 outcomes"
)
"""How every interval of this module is made (also written into reports)."""
ESTIMAND = "intention to treat"
"""What a lift measures: the cohorts as randomised, every account counted whether its recommended play was done or
not (a report's ``estimand``; its ``completion`` says how many were done)."""

PROJECTED_DTYPE = pl.List(pl.Struct({"objective": pl.String, "effect": pl.Float64, "effect_usd": pl.Float64}))
"""The projected effects of a recommendation, per objective (the fields of ``evidence.projected`` lift reads)."""
_EVIDENCE_DTYPE = pl.Struct({"model_action_id": pl.String, "projected": PROJECTED_DTYPE})


class HorizonNotOverError(ConfigError):
    """The decisions' outcome horizon has not passed in the book yet; ``days_left`` says how long to wait."""

    def __init__(self, message: str, *, days_left: float, ends_at: datetime) -> None:
        super().__init__(message)
        self.days_left = days_left
        self.ends_at = ends_at


# ---- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveLift:
    """The recommended cohort's lift over control on one objective's outcome, and its dollars.

    ``lift`` is ``treated_mean − control_mean``: a change of event rate (``unit = "probability"``,
    e.g. −0.03 = three points less churn) or of mean dollars per account (``unit = "usd"``, amount
    objectives). ``lift_usd`` is the same in objective dollars per treated account (weighted and
    signed as in :class:`~nextmove.models.effect.ObjectiveSpec`: positive is good), and
    ``impact_usd`` is that times the treated accounts.

    The dollar interval is the rate's scaled by ``value_usd`` for ``fixed`` objectives, and a Welch
    interval on each account's dollars for ``arr`` and ``amount`` ones; where no account of either
    cohort had an ``arr`` objective's event (every account's dollars 0, no spread), it is the rate's
    interval times the measured accounts' mean ARR, so a rate with an interval has dollars with one.
    It is None only where the dollars have no spread and the rate gives no bound (the report's
    ``notes`` say why).
    """

    objective: str
    outcome: str
    unit: Literal["probability", "usd"]
    treated_accounts: int
    control_accounts: int
    treated_mean: float
    control_mean: float
    lift: float
    stderr: float | None
    low: float | None
    high: float | None
    relative_lift: float | None
    """``lift / control_mean`` (None when the control mean is 0)."""
    lift_usd: float
    lift_usd_low: float | None
    lift_usd_high: float | None
    impact_usd: float
    impact_low_usd: float | None
    impact_high_usd: float | None


@dataclass(frozen=True)
class ValueLift:
    """The lift of the total row value (objective dollars minus the cost of the action or variant done) per account."""

    treated_accounts: int
    control_accounts: int
    treated_mean_usd: float
    control_mean_usd: float
    lift_usd: float
    stderr: float | None
    low: float | None
    high: float | None
    impact_usd: float
    impact_low_usd: float | None
    impact_high_usd: float | None


@dataclass(frozen=True)
class ActionAccuracy:
    """One action's realised effect on one objective against the effect the run projected for it.

    Treated: accounts of the treated arms recommended the action (that the model also chose).
    Control: control accounts whose ``model_action_id`` is the action: what the model would have
    chosen for them. Both are random shares of the accounts the model gives the action, so their
    difference is the action's realised effect there **against what the control cohort got**, the
    lifecycle default where the rules and capacity allowed it. ``projected_effect`` is the mean
    projected effect over the accounts of both groups that got the action (a receipt projects the
    action the account got), which is **against doing nothing**: the two measure the same thing where
    control got nothing, i.e. to the extent ``control_none_share`` is 1.
    """

    action_id: str
    objective: str
    outcome: str
    unit: Literal["probability", "usd"]
    treated_accounts: int
    control_accounts: int
    control_none_share: float | None
    """Share of the control group that got nothing (``action_id`` ``none``): its lifecycle default is
    ``none``, or its default was not allowed (rules, cooldown, contact cap) or found no capacity. What
    control got, not what its default was, decides whether the realised effect is against nothing."""
    realised_effect: float | None
    stderr: float | None
    low: float | None
    high: float | None
    projected_effect: float | None
    projected_accounts: int
    """Accounts of either group that got the action and whose evidence holds a projection for this objective."""
    error: float | None
    """``realised_effect − projected_effect``."""
    within_interval: bool | None
    """Whether the projected effect lies in the realised effect's interval."""
    realised_usd: float | None
    projected_usd: float | None


@dataclass(frozen=True)
class LiftReport:
    """Lift of the recommended cohort over control for one run's decisions, once the horizon passed."""

    run_id: str | None
    as_of: datetime
    """When the decisions were taken."""
    horizon_days: int
    observed_until: datetime
    """How far the outcomes are known (``observed_until``, else :func:`known_until`): outcomes to then count."""
    observed_days: float
    """Days of the horizon seen (``horizon_days`` when complete)."""
    complete: bool
    """True when the whole horizon has passed."""
    level: float
    interval_method: str
    treated_arms: tuple[str, ...]
    control_arm: str
    arms: dict[str, int]
    """Accounts measured per arm."""
    objectives: list[ObjectiveLift]
    value: ValueLift
    actions: list[ActionAccuracy]
    left_out: dict[str, int] = field(default_factory=dict)
    """Recommendations not measured, by reason."""
    notes: list[str] = field(default_factory=list)
    """What may make the figures wrong: outcomes that stop before the rest of the data, none at all in
    the window, ``observed_until`` after the book's data, churned accounts without ARR."""
    estimand: str = ESTIMAND
    """What the lift measures: :data:`ESTIMAND`, the cohorts as randomised, done or not."""
    completion: Completion | None = None
    """How many of the measured recommendations were done, dismissed, snoozed or neither in the window
    (:func:`~nextmove.measure.completion.measure_completion`); None only for a report made without it."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings, undefined numbers as None)."""
        out: dict[str, Any] = json_ready(asdict(self))
        return out

    def objectives_frame(self) -> pl.DataFrame:
        """One row per objective, the fields of :class:`ObjectiveLift` as columns."""
        return _frame(self.objectives, ObjectiveLift)

    def actions_frame(self) -> pl.DataFrame:
        """One row per action and objective, the fields of :class:`ActionAccuracy` as columns."""
        return _frame(self.actions, ActionAccuracy)

    def completion_frame(self) -> pl.DataFrame:
        """One row per arm (``action_id`` null) and per arm and action, the fields of
        :class:`~nextmove.measure.completion.CompletionCount` as columns."""
        return _frame(self.completion.arms if self.completion is not None else [], CompletionCount)


def _frame(items: Sequence[object], kind: type) -> pl.DataFrame:
    rows = [asdict(item) for item in items]  # type: ignore[call-overload]
    columns = [f.name for f in fields(kind)]
    return pl.DataFrame(rows, schema=columns, orient="row") if rows else pl.DataFrame(schema=columns)


def json_ready(value: Any) -> Any:
    """``value`` with times as ISO strings, non-finite numbers as None, tuples as lists: fit for JSON.

    Examples
    --------
    >>> json_ready({"a": float("nan"), "b": (1.5, datetime(2025, 1, 1))})
    {'a': None, 'b': [1.5, '2025-01-01T00:00:00']}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


# ---- inputs -----------------------------------------------------------------------------------


class RecommendationLike(Protocol):
    """What lift reads of a stored recommendation (:class:`nextmove.store.RecommendationRecord`)."""

    @property
    def account_id(self) -> str: ...
    @property
    def action_id(self) -> str: ...
    @property
    def arm(self) -> str: ...
    @property
    def evidence(self) -> dict[str, Any]: ...

    # A ``variant`` attribute (None when the action has none) is read too when the record has one.


class RunLike(Protocol):
    """What lift reads of a stored run (:class:`nextmove.store.RunRecord`) to name the runs whose lifts overlap its."""

    @property
    def run_id(self) -> str: ...
    @property
    def book_source(self) -> str: ...
    @property
    def playbook_hash(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def as_of(self) -> datetime | None: ...


def recommendations_frame(records: Iterable[RecommendationLike]) -> pl.DataFrame:
    """The recommendations lift needs, as a frame: one row per record.

    Parameters
    ----------
    records
        Stored recommendations (e.g. ``store.recommendations(run_id)``).

    Returns
    -------
    polars.DataFrame
        ``account_id, action_id, variant`` (null when the record has none), ``arm``,
        ``model_action_id`` (from the evidence; null when absent) and ``projected`` (the evidence's
        projected effects: ``objective, effect, effect_usd``).

    Examples
    --------
    >>> from types import SimpleNamespace as Rec
    >>> evidence = {"model_action_id": "call", "projected": [{"objective": "win", "effect": 0.1, "effect_usd": 9.0}]}
    >>> frame = recommendations_frame([Rec(account_id="a", action_id="email", arm="control", evidence=evidence)])
    >>> frame.select("account_id", "arm", "model_action_id").row(0)
    ('a', 'control', 'call')
    """
    rows = []
    for rec in records:
        evidence = rec.evidence if isinstance(rec.evidence, Mapping) else {}
        values = (evidence.get("model_action_id"), evidence.get("projected"))
        rows.append((rec.account_id, rec.action_id, getattr(rec, "variant", None), rec.arm, *values))
    return _lift_rows_frame(rows)


LIFT_VALUES: Mapping[str, tuple[str, ...]] = {
    "account_id": ("account_id",),
    "action_id": ("action_id",),
    "variant": ("variant",),
    "arm": ("arm",),
    "model_action_id": ("evidence", "model_action_id"),
    "projected": ("evidence", "projected"),
}
"""What lift reads of a stored recommendation (:meth:`nextmove.store.Store.recommendation_values` paths): four
columns and two values of its receipt, in the order of :func:`recommendations_frame`'s columns."""

_LIFT_SCHEMA: Mapping[str, Any] = {
    "account_id": pl.String,
    "action_id": pl.String,
    "variant": pl.String,
    "arm": pl.String,
    "model_action_id": pl.String,
    "projected": PROJECTED_DTYPE,
}


class RecommendationValues(Protocol):
    """What :func:`stored_recommendations_frame` asks of a store (:class:`nextmove.store.Store`)."""

    def recommendation_values(
        self, run_id: str, fields: Mapping[str, Sequence[str | int]], *, batch_rows: int = ...
    ) -> Iterator[list[tuple[Any, ...]]]: ...


def stored_recommendations_frame(store: RecommendationValues, run_id: str, *, batch_rows: int = 10_000) -> pl.DataFrame:
    """:func:`recommendations_frame` of the stored recommendations of ``run_id``, without reading a whole receipt.

    The database picks out of each recommendation the values of :data:`LIFT_VALUES` (its
    ``account_id``, ``action_id``, ``variant`` and ``arm``, and its receipt's ``model_action_id``
    and ``projected``), ``batch_rows`` at a time: the receipts' signals, comparables and runner-ups,
    most of what a run stores, never leave it. The frame is the one ``recommendations_frame``
    makes of ``store.recommendations(run_id)``, ordered by ``account_id``.
    """
    frames = [
        _lift_rows_frame(batch) for batch in store.recommendation_values(run_id, LIFT_VALUES, batch_rows=batch_rows)
    ]
    # One chunk, as a frame built at once is: over a frame of several chunks Polars sums in an order that varies
    # from call to call, and a lift's last digits with it.
    return pl.concat(frames, rechunk=True) if frames else _lift_rows_frame([])


def _lift_rows_frame(rows: Iterable[Sequence[Any]]) -> pl.DataFrame:
    """The frame of :func:`recommendations_frame` from rows of :data:`LIFT_VALUES` (a receipt's values as JSON gives
    them)."""
    out = [
        (
            account_id,
            action_id,
            None if variant is None else str(variant),
            arm,
            None if chosen is None else str(chosen),
            _projected_list(projected),
        )
        for account_id, action_id, variant, arm, chosen, projected in rows
    ]
    return pl.DataFrame(out, schema=dict(_LIFT_SCHEMA), orient="row")


def _projected_list(value: object) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    out: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, Mapping) and item.get("objective") is not None:
            out.append(
                {
                    "objective": str(item["objective"]),
                    "effect": _number(item.get("effect")),
                    "effect_usd": _number(item.get("effect_usd")),
                }
            )
    return out


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _normalise(recommendations: pl.DataFrame) -> pl.DataFrame:
    """``account_id, action_id, variant, arm, model_action_id, projected`` from a frame of recommendations.

    ``variant`` (which variant of the action was recommended: its cost is the one charged) is null
    when the frame has no such column. ``model_action_id`` and ``projected`` come from their own
    columns when present, else from an ``evidence`` column (JSON text, as in a run's
    ``recommendations.csv``, or a struct).
    """
    for column in ("account_id", "action_id", "arm"):
        if column not in recommendations.columns:
            raise ConfigError(
                f"recommendations need a {column!r} column (columns: {', '.join(recommendations.columns)})"
            )
    frame = recommendations.select(
        pl.col("account_id").cast(pl.String),
        pl.col("action_id").cast(pl.String).fill_null(NO_ACTION),
        (pl.col("variant") if "variant" in recommendations.columns else pl.lit(None)).cast(pl.String).alias("variant"),
        pl.col("arm").cast(pl.String),
        *[pl.col(c) for c in ("model_action_id", "projected", "evidence") if c in recommendations.columns],
    )
    if "evidence" in frame.columns and ("model_action_id" not in frame.columns or "projected" not in frame.columns):
        evidence = pl.col("evidence")
        if frame.schema["evidence"] == pl.String:
            decoded = evidence.str.json_decode(_EVIDENCE_DTYPE)
        elif isinstance(frame.schema["evidence"], pl.Struct):
            decoded = evidence.cast(_EVIDENCE_DTYPE, strict=False)
        else:
            raise ConfigError(f"the evidence column must be JSON text or a struct, got {frame.schema['evidence']}")
        parts = frame.select(decoded.struct.field("model_action_id"), decoded.struct.field("projected"))
        for column in ("model_action_id", "projected"):
            if column not in frame.columns:
                frame = frame.with_columns(parts.get_column(column))
    if "model_action_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("model_action_id"))
    if "projected" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=PROJECTED_DTYPE).alias("projected"))
    frame = frame.select(
        "account_id",
        "action_id",
        "variant",
        "arm",
        pl.col("model_action_id").cast(pl.String),
        pl.col("projected").cast(PROJECTED_DTYPE),
    )
    if frame.get_column("account_id").null_count():
        raise ConfigError("a recommendation has no account_id")
    dup = frame.filter(pl.col("account_id").is_duplicated())
    if dup.height:
        raise ConfigError(
            f"recommendations must hold one row per account; {dup.get_column('account_id')[0]!r} appears "
            f"{dup.filter(pl.col('account_id') == dup.get_column('account_id')[0]).height} times"
        )
    return frame


# ---- outcomes ---------------------------------------------------------------------------------


def latest_data_time(book: Book) -> datetime:
    """How far a book's data reaches (:func:`~nextmove.book.data_reach`): its tables' latest time, or for a
    table of dates, the midnight after its last date (that day is observed whole).

    Raises
    ------
    ConfigError
        If the book has no dated row.

    Examples
    --------
    >>> from nextmove.book import empty_table
    >>> accounts = pl.DataFrame({"account_id": ["a"]})
    >>> outcomes = pl.DataFrame({"account_id": ["a"], "ts": [datetime(2025, 3, 1, 15)], "kind": ["churn"]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), outcomes)
    >>> latest_data_time(book).isoformat()
    '2025-03-01T15:00:00+00:00'
    """
    reach = data_reach(book)
    if reach is None:
        raise ConfigError("the book has no dated rows (signals, touches or outcomes): nothing was observed")
    return reach


def known_until(book: Book) -> datetime:
    """How far lift reads a book's outcomes as known when no ``observed_until`` is given: how far its data
    reaches (:func:`latest_data_time`) rounded up to a UTC midnight, as a run's default as-of reads it
    (:func:`~nextmove.book.as_of_of_reach`).

    A run on this week's export decides as of that midnight, and its training set takes the horizons
    that end then as over; lift reads the export the same way, so a run decided a horizon before that
    midnight is measured on it: an export whose last row is at 22:37 does not leave the last evening's
    horizons open.

    Raises
    ------
    ConfigError
        If the book has no dated row.

    Examples
    --------
    >>> from nextmove.book import empty_table
    >>> accounts = pl.DataFrame({"account_id": ["a"]})
    >>> outcomes = pl.DataFrame({"account_id": ["a"], "ts": [datetime(2025, 3, 1, 22, 37)], "kind": ["churn"]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), outcomes)
    >>> known_until(book).isoformat()
    '2025-03-02T00:00:00+00:00'
    """
    return as_of_of_reach(latest_data_time(book))


def _quiet(book: Book, when: datetime, until: datetime) -> Book:
    """The book :func:`measured_outcomes` reads labels from: no signals nor touches, accounts started at ``when``."""
    accounts = book.accounts.with_columns(pl.lit(when, dtype=pl.Datetime("us", "UTC")).alias("contract_start"))
    # An account's amounts are summed in the order of its outcomes: in one order whatever the file's, so that the
    # last digits of a lift do not move when the export lists the same rows in another order.
    keys = [c for c in ("account_id", "ts", "kind", "value") if c in book.outcomes.columns]
    outcomes = book.outcomes.sort(keys, nulls_last=True, maintain_order=True)
    return Book(accounts, book.signals.clear(), book.touches.clear(), outcomes, source=book.source, as_of=until)


def measured_vocabulary(
    book: Book, playbook: Playbook, as_of: datetime, *, observed_until: datetime | date | str | None = None
) -> FeatureVocabulary:
    """The vocabulary of :func:`measured_outcomes`' labels (same arguments): pass it to ``objective_specs``.

    Two outcome kinds that sanitise alike (``Cancel`` and ``cancel``) have labels ``y_cancel`` and
    ``y_cancel_2``; which is whose only this vocabulary says.
    """
    when = to_utc(as_of)
    until = until_instant(observed_until) if observed_until is not None else known_until(book)
    return training_vocabulary(_quiet(book, when, until), playbook, as_of=until)


def measured_outcomes(
    book: Book, playbook: Playbook, as_of: datetime, *, observed_until: datetime | date | str | None = None
) -> pl.DataFrame:
    """What followed a decision time for every account that existed then: the labels of a training set.

    The outcome window is the training set's (:func:`~nextmove.features.build_training_set`):
    outcomes in ``(as_of, as_of + horizon]`` seen by ``observed_until`` (when the outcomes are dates,
    the days ``[as_of, as_of + horizon)`` seen before it), per outcome kind
    ``y_{kind}`` (1 if it happened) and ``y_{kind}_value`` (the sum of its values; ``{kind}``: the
    stem :func:`measured_vocabulary` gives it). Every outcome
    in the window counts, whatever touch it is attributed to: the cohorts are compared as
    randomised (intention to treat). Accounts gone at ``as_of`` (a terminal outcome, and no start
    after it by then: :func:`~nextmove.book.gone_at`) have no row.

    Parameters
    ----------
    book
        The book of business, with outcomes after ``as_of``.
    playbook
        The horizon and the objectives' outcome kinds.
    as_of
        The decision time.
    observed_until
        What is known (default: how far the book's data reaches, read as a run reads it: :func:`known_until`).
        A date, or text of a date alone (``"2026-01-14"``), is that whole day, up to the midnight (UTC)
        after it, as ``nextmove lift --until`` reads one; a datetime is that instant (naive: UTC)
        (:func:`~nextmove.book.outcomes_until.until_instant`).

    Returns
    -------
    polars.DataFrame
        ``account_id``, ``arr`` (when the accounts have it), the labels, ``censored`` (the horizon
        is not over by ``observed_until``) and ``observed_days``.
    """
    when = to_utc(as_of)
    until = until_instant(observed_until) if observed_until is not None else known_until(book)
    if until <= when:
        return pl.DataFrame(schema={"account_id": pl.String})
    # Only the labels (and arr) are read. Touches are left out so that the log's later touches do
    # not move or drop an account's row (the rows are the accounts at as_of, not past decisions);
    # signals too (features are not needed); and every account is taken to exist at as_of, so an
    # account whose first row in the book is an outcome after as_of keeps its row.
    rows = build_training_set(
        _quiet(book, when, until),
        playbook,
        decision_times=[when],
        untouched_rows=True,
        attribution="window",
        as_of=until,
        # What is known is observed_until's to say: outcomes that end before the rest are the notes' concern.
        outcomes_until=until,
    )
    # That start at as_of would also read every account gone by then as won back at as_of: which
    # accounts are gone is the real starts' to say, as the training set says it.
    keys = book.accounts.select("account_id", pl.lit(when, dtype=pl.Datetime("us", "UTC")).alias("decision_ts"))
    gone = gone_at(book, playbook, keys, whole_days=of_dates(book.outcomes)).filter(pl.col("gone"))
    rows = rows.join(gone.select("account_id"), on="account_id", how="anti", maintain_order="left")
    keep = [c for c in rows.columns if c in ("account_id", "arr", "censored", "observed_days") or c.startswith("y_")]
    return rows.filter(pl.col("decision_ts") == when).select(keep)


# ---- estimation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Diff:
    estimate: float
    stderr: float | None
    low: float | None
    high: float | None


def _difference(treated: F64, control: F64, z: float, *, binary: bool) -> _Diff:
    """``mean(treated) − mean(control)`` with a normal interval (Welch, floored; Agresti–Caffo for 0/1 values)."""
    nt, nc = len(treated), len(control)
    if nt == 0 or nc == 0:
        return _Diff(float("nan"), None, None, None)
    estimate = float(treated.mean() - control.mean())
    if binary:
        # One event and one non-event added to each cohort: with rare outcomes a cohort may hold no
        # event at all, and the plain Wald interval would then claim a width of zero.
        pt = (float(treated.sum()) + 1) / (nt + 2)
        pc = (float(control.sum()) + 1) / (nc + 2)
        se = math.sqrt(pt * (1 - pt) / (nt + 2) + pc * (1 - pc) / (nc + 2))
        center = pt - pc
        # A difference of two shares lies in [-1, 1]: with few accounts the normal interval would
        # reach past it (-113 points for 8 treated accounts against 1 control), which no data can mean.
        return _Diff(estimate, se, max(center - z * se, -1.0), min(center + z * se, 1.0))
    else:
        if nt < 2 or nc < 2:
            return _Diff(estimate, None, None, None)
        # Welch's standard error, with each cohort's variance at least the two cohorts' pooled one.
        # On a heavy-tailed amount (a few large expansions among many zeros) a small cohort often
        # holds none of the large values: its own variance is then near 0 and Welch's interval
        # claims a difference that is noise (a worthless play "significant" in a third of null
        # trials with 27 control accounts; docs/measure.md). The floor keeps a small cohort as
        # uncertain as the spread both cohorts show.
        var_t, var_c = float(treated.var(ddof=1)), float(control.var(ddof=1))
        pooled = ((nt - 1) * var_t + (nc - 1) * var_c) / (nt + nc - 2)
        se = math.sqrt(max(var_t, pooled) / nt + max(var_c, pooled) / nc)
        if se == 0:
            # Every account of each cohort alike (no amount anywhere, say): no spread to measure, no interval.
            return _Diff(estimate, None, None, None)
        center = estimate
    return _Diff(estimate, se, center - z * se, center + z * se)


def _scaled(diff: _Diff, factor: float) -> tuple[float | None, float | None]:
    if diff.low is None or diff.high is None:
        return None, None
    a, b = diff.low * factor, diff.high * factor
    return min(a, b), max(a, b)


def _times(value: float | None, n: int) -> float | None:
    return None if value is None else value * n


def _metric(frame: pl.DataFrame, spec: ObjectiveSpec) -> F64:
    """Per account: the objective's outcome (0/1 event, or the summed amount)."""
    column = spec.value_label if spec.is_amount else spec.label
    if column not in frame.columns:
        raise ConfigError(f"objective {spec.objective!r}: the measured outcomes lack the column {column!r}")
    values = frame.get_column(column).cast(pl.Float64).fill_null(0.0).to_numpy().astype(np.float64)
    return values if spec.is_amount else (values > 0).astype(np.float64)


def _arr(frame: pl.DataFrame) -> F64:
    """Per account: its ARR (0 when missing or when the frame has none)."""
    if "arr" not in frame.columns:
        return np.zeros(frame.height)
    return frame.get_column("arr").cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy().astype(np.float64)


def _objective_lift(frame: pl.DataFrame, treated: NDArray[np.bool_], spec: ObjectiveSpec, z: float) -> ObjectiveLift:
    control = ~treated
    y = _metric(frame, spec)
    dollars = spec.realised_usd(frame)
    diff = _difference(y[treated], y[control], z, binary=not spec.is_amount)
    nt, nc = int(treated.sum()), int(control.sum())
    if spec.basis is ValueBasis.FIXED:
        # Dollars are a constant multiple of the event: same interval, scaled.
        per = spec.weight * spec.sign * float(spec.value_usd or 0.0)
        usd = _Diff(diff.estimate * per, None, *_scaled(diff, per))
    else:
        usd = _difference(dollars[treated], dollars[control], z, binary=False)
        if spec.basis is ValueBasis.ARR and usd.low is None and diff.low is not None and not y.any():
            # No account had the event, so every account's dollars are 0 and have no spread; the rate's
            # interval still bounds the events the plays may have added or saved, each worth an ARR:
            # in dollars, the rate's interval times the measured accounts' mean ARR (as for ``fixed``).
            per = float(spec.usd_per_unit(_arr(frame)).mean())
            usd = _Diff(usd.estimate, None, *_scaled(diff, per))
    control_mean = float(y[control].mean())
    return ObjectiveLift(
        objective=spec.objective,
        outcome=spec.outcome,
        unit=spec.unit,
        treated_accounts=nt,
        control_accounts=nc,
        treated_mean=float(y[treated].mean()),
        control_mean=control_mean,
        lift=diff.estimate,
        stderr=diff.stderr,
        low=diff.low,
        high=diff.high,
        relative_lift=diff.estimate / control_mean if control_mean != 0 else None,
        lift_usd=usd.estimate,
        lift_usd_low=usd.low,
        lift_usd_high=usd.high,
        impact_usd=usd.estimate * nt,
        impact_low_usd=_times(usd.low, nt),
        impact_high_usd=_times(usd.high, nt),
    )


def _value_lift(
    frame: pl.DataFrame, treated: NDArray[np.bool_], playbook: Playbook, z: float, vocab: FeatureVocabulary
) -> ValueLift:
    value = row_value_usd(frame, playbook, vocabulary=vocab)
    control = ~treated
    diff = _difference(value[treated], value[control], z, binary=False)
    nt = int(treated.sum())
    return ValueLift(
        treated_accounts=nt,
        control_accounts=int(control.sum()),
        treated_mean_usd=float(value[treated].mean()),
        control_mean_usd=float(value[control].mean()),
        lift_usd=diff.estimate,
        stderr=diff.stderr,
        low=diff.low,
        high=diff.high,
        impact_usd=diff.estimate * nt,
        impact_low_usd=_times(diff.low, nt),
        impact_high_usd=_times(diff.high, nt),
    )


def _projected_means(frame: pl.DataFrame) -> pl.DataFrame:
    """Mean projected effect (and dollars) per action and objective over the rows' projections."""
    return (
        frame.select("_action", "projected")
        .explode("projected")
        .drop_nulls("projected")
        .unnest("projected")
        .group_by("_action", "objective")
        .agg(
            pl.col("effect").mean().alias("projected_effect"),
            pl.col("effect_usd").mean().alias("projected_usd"),
            pl.col("effect").is_not_null().sum().alias("projected_accounts"),
        )
    )


def _action_accuracy(
    frame: pl.DataFrame, treated: NDArray[np.bool_], specs: Sequence[ObjectiveSpec], z: float, currency: str
) -> tuple[list[ActionAccuracy], list[str]]:
    """Each action's realised effect against its projection, and the note on the realised amounts one or two
    accounts decide (:func:`_actions_dominance_note`)."""
    model_action = frame.get_column("model_action_id").fill_null(frame.get_column("action_id"))
    is_treated = pl.Series(treated) & (frame.get_column("action_id") == model_action)
    is_control = pl.Series(~treated)
    groups = frame.with_columns(
        model_action.alias("_action"), is_treated.alias("_treated"), is_control.alias("_control")
    ).filter((pl.col("_treated") | pl.col("_control")) & (pl.col("_action") != NO_ACTION))
    actions = sorted(set(groups.get_column("_action").to_list()))
    # A receipt's projection is of the action the account got: only those that got the model's pick project it.
    projected = _projected_means(groups.filter(pl.col("action_id") == pl.col("_action")))
    lookup = {(r["_action"], r["objective"]): r for r in projected.iter_rows(named=True)}
    out: list[ActionAccuracy] = []
    dominated: list[tuple[str, Dominance, int, int]] = []
    for action in actions:
        part = groups.filter(pl.col("_action") == action)
        t = part.get_column("_treated").to_numpy().astype(bool)
        c = part.get_column("_control").to_numpy().astype(bool)
        left_alone = (part.get_column("action_id") == NO_ACTION).to_numpy().astype(bool)
        none_share = float(left_alone[c].mean()) if c.any() else None
        for spec in specs:
            y = _metric(part, spec)
            dollars = spec.realised_usd(part)
            diff = _difference(y[t], y[c], z, binary=not spec.is_amount)
            usd = _difference(dollars[t], dollars[c], z, binary=False)
            if spec.is_amount and (found := _dominance(y[t], y[c], diff, z)) is not None:
                dominated.append((f"{action} on {spec.objective}", found, int(t.sum()), int(t.sum() + c.sum())))
            proj = lookup.get((action, spec.objective), {})
            p_effect = proj.get("projected_effect")
            realised = diff.estimate if math.isfinite(diff.estimate) else None
            out.append(
                ActionAccuracy(
                    action_id=action,
                    objective=spec.objective,
                    outcome=spec.outcome,
                    unit=spec.unit,
                    treated_accounts=int(t.sum()),
                    control_accounts=int(c.sum()),
                    control_none_share=none_share,
                    realised_effect=realised,
                    stderr=diff.stderr,
                    low=diff.low,
                    high=diff.high,
                    projected_effect=p_effect,
                    projected_accounts=int(proj.get("projected_accounts") or 0),
                    error=None if realised is None or p_effect is None else realised - p_effect,
                    within_interval=(
                        None
                        if p_effect is None or diff.low is None or diff.high is None
                        else bool(diff.low <= p_effect <= diff.high)
                    ),
                    realised_usd=usd.estimate if math.isfinite(usd.estimate) else None,
                    projected_usd=proj.get("projected_usd"),
                )
            )
    note = _actions_dominance_note(dominated, currency)
    return out, [] if note is None else [note]


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _wait(seconds: float) -> str:
    """A time to wait in words, rounded up: minutes under two hours, hours under a day, else days and hours.

    Examples
    --------
    >>> [_wait(s) for s in (82 * 60, 5 * 3600, 86_400, 86_400 + 3 * 3600, 40 * 86_400)]
    ['82 minutes', '5 hours', '1 day', '1 day 3 hours', '40 days']
    """
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    hours = math.ceil(minutes / 60)
    if hours < 24:
        return "1 hour" if hours == 1 else f"{hours} hours"
    days, hours = divmod(hours, 24)
    return _days(days) + ("" if not hours else " 1 hour" if hours == 1 else f" {hours} hours")


def _moment(when: datetime) -> str:
    """A time as a date, with its time of day when it is not a UTC midnight."""
    midnight = when == datetime(when.year, when.month, when.day, tzinfo=when.tzinfo)
    return f"{when:%Y-%m-%d}" if midnight else f"{when:%Y-%m-%d %H:%M} UTC"


def check_horizon(
    when: datetime,
    until: datetime,
    horizon_days: int,
    *,
    allow_partial: bool,
    who: str,
    given: bool = False,
    latest: datetime | None = None,
) -> None:
    """Refuse to measure before the horizon is over (or, with ``allow_partial``, before anything was seen).

    ``until`` is how far the book's data is known (:func:`known_until`), or the caller's ``observed_until``
    when ``given``; ``latest`` is the book's latest data (:func:`latest_data_time`), said when it is not ``until``.
    :func:`estimate_lift` checks so first; ``nextmove lift`` checks so before it loads the book, from the
    book's times alone, so that a run that cannot be measured yet is said at once.
    """
    ends = when + timedelta(days=horizon_days)
    if until >= ends:
        return
    left = (ends - until).total_seconds()
    if given:
        seen = f"outcomes are read only up to {_moment(until)} (observed_until, --until)"
        after = "that"
    elif latest is not None and latest != until:
        seen = (
            f"the book's data runs up to {latest:%Y-%m-%d %H:%M} UTC (read as of {_moment(until)}, as a run reads it)"
        )
        after = f"the book's data, read as of {_moment(until)}"
    else:
        seen = f"the book's data runs up to {until:%Y-%m-%d %H:%M} UTC"
        after = f"the end of the book's data ({_moment(until)})"
    if until <= when:
        raise HorizonNotOverError(
            f"{who} decided at {when:%Y-%m-%d %H:%M} UTC, and {seen}: no outcome can be measured yet; the "
            f"{horizon_days}-day horizon ends {_moment(ends)}, {_wait(left)} after that",
            days_left=left / 86_400,
            ends_at=ends,
        )
    if not allow_partial:
        raise HorizonNotOverError(
            f"the {horizon_days}-day horizon of {who} (decided {when:%Y-%m-%d}) has not passed: it ends "
            f"{_moment(ends)}, {_wait(left)} after "
            + (f"--until ({_moment(until)})" if given else after)
            + "; measure again then, or measure what has been seen so far with allow_partial (--partial)",
            days_left=left / 86_400,
            ends_at=ends,
        )


def estimate_lift(
    recommendations: pl.DataFrame,
    book: Book,
    playbook: Playbook,
    *,
    as_of: datetime,
    observed_until: datetime | date | str | None = None,
    level: float = 0.95,
    treated_arms: Sequence[str] = TREATED_ARMS,
    control_arm: str = CONTROL_ARM,
    allow_partial: bool = False,
    run_id: str | None = None,
    feedback: pl.DataFrame | None = None,
) -> LiftReport:
    """Lift of the recommended cohort over the control cohort, per objective, with intervals and dollars.

    For every account of ``recommendations`` in a treated arm or the control arm, the outcomes of
    the horizon after ``as_of`` (:func:`measured_outcomes`) are compared between the cohorts:

    - per objective of the playbook, the difference of event rates (or, for ``value = "amount"``
      objectives, of mean amounts) with its interval, and its objective dollars per account and in
      total (:class:`ObjectiveLift`);
    - the total row value (objective dollars minus the cost of the action, or of the variant
      recommended when it has its own, as :func:`~nextmove.models.effect.row_value_usd`) per
      account and in total (:class:`ValueLift`);
    - per action and objective, the realised effect against the projected one
      (:class:`ActionAccuracy`);
    - beside these intention-to-treat figures (``estimand``), how many of the measured
      recommendations were done, dismissed, snoozed or neither in ``[as_of, as_of + horizon)``
      (up to ``observed_until`` when that is earlier), per arm and action, from the book's touches
      and ``feedback`` (:func:`~nextmove.measure.completion.measure_completion`).

    Intervals are a normal approximation of a difference of means: Welch's standard error with
    each cohort's variance at least the two cohorts' pooled variance (so a small cohort that saw
    none of a heavy-tailed amount's rare large values does not claim a narrow interval), and
    the Agresti–Caffo adjustment (one event and one non-event added to each cohort) for 0/1
    outcomes. Accounts are the units, each measured once.

    Parameters
    ----------
    recommendations
        One row per account: ``account_id, action_id, arm`` (optionally ``variant``) and either ``model_action_id`` and
        ``projected`` (as :func:`recommendations_frame` makes them) or an ``evidence`` column
        (the decision receipt, JSON text or a struct).
    book
        The book of business, holding the outcomes that followed ``as_of``.
    playbook
        Horizon, objectives and costs.
    as_of
        When the decisions were taken (the run's ``as_of``).
    observed_until
        What is known (default: how far the book's data reaches, read as a run reads it: :func:`known_until`).
        A date, or text of a date alone (``"2026-01-14"``), is that whole day, up to the midnight (UTC)
        after it, as ``nextmove lift --until`` reads one; a datetime is that instant (naive: UTC)
        (:func:`~nextmove.book.outcomes_until.until_instant`).
    level
        Confidence level of the intervals.
    treated_arms, control_arm
        Which arms form the recommended cohort and the control cohort; accounts of other arms are
        left out.
    allow_partial
        Measure before the horizon has passed (outcomes seen so far; the report says
        ``complete=False``).
    run_id
        Named in the report and in errors.
    feedback
        The store's ``done``, ``dismissed`` and ``snoozed`` events, with the action each is about
        (:data:`~nextmove.measure.completion.FEEDBACK_COLUMNS`;
        :func:`nextmove.engine.holds.completion_feedback` reads them); None: completion from the
        book's touches alone (``completion.feedback_read`` False).

    Returns
    -------
    LiftReport

    Raises
    ------
    HorizonNotOverError
        If the horizon has not passed (and ``allow_partial`` is False), or nothing is observed
        after ``as_of``; ``days_left`` says how long to wait.
    ConfigError
        If a column is missing, an account appears twice, or a cohort is empty.

    Examples
    --------
    >>> from nextmove.book.validate import load_book
    >>> from nextmove.playbook import Action, Objective
    >>> pb = Playbook(
    ...     objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
    ...     actions=[Action(id="call", name="Call", team="cs", objective="win")],
    ... )
    >>> t0 = datetime(2025, 1, 1)
    >>> ids = [f"a{i}" for i in range(8)]
    >>> recs = pl.DataFrame({"account_id": ids, "action_id": ["call"] * 4 + ["none"] * 4,
    ...                      "arm": ["model"] * 4 + ["control"] * 4})
    >>> wins = pl.DataFrame({"account_id": ["a0", "a1", "a2", "a4"], "ts": [datetime(2025, 2, 1)] * 4,
    ...                      "kind": ["win"] * 4})
    >>> book = load_book({"accounts": pl.DataFrame({"account_id": ids}), "outcomes": wins})
    >>> report = estimate_lift(recs, book, pb, as_of=t0, observed_until=datetime(2025, 4, 15))
    >>> [(o.objective, o.treated_mean, o.control_mean, o.lift, o.impact_usd) for o in report.objectives]
    [('win', 0.75, 0.25, 0.5, 200.0)]
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level!r}")
    treated_set = set(treated_arms)
    if control_arm in treated_set:
        raise ConfigError(f"the control arm {control_arm!r} cannot also be a treated arm")
    who = f"run {run_id}" if run_id else "the decisions"
    when = to_utc(as_of)
    until = until_instant(observed_until) if observed_until is not None else known_until(book)
    given = observed_until is not None
    check_horizon(
        when,
        until,
        playbook.horizon_days,
        allow_partial=allow_partial,
        who=who,
        given=given,
        latest=None if given else data_reach(book),
    )
    recs = _normalise(recommendations)
    left_out: dict[str, int] = {}
    other_arms = recs.filter(~pl.col("arm").is_in([*treated_set, control_arm]))
    if other_arms.height:
        left_out["in another arm"] = other_arms.height
    recs = recs.filter(pl.col("arm").is_in([*treated_set, control_arm]))
    outcomes = measured_outcomes(book, playbook, when, observed_until=until)
    # In account order, whatever the order of the recommendations and of the book: a mean's last digits
    # depend on the order its values are added in, and two runs of one lift print the same figures.
    frame = recs.join(outcomes, on="account_id", how="inner").sort("account_id")
    missing = recs.height - frame.height
    if missing:
        left_out["not in the book at as_of (unknown, gone or not started)"] = missing
    treated = frame.get_column("arm").is_in(list(treated_set)).to_numpy().astype(bool)
    n_treated, n_control = int(treated.sum()), int((~treated).sum())
    if n_control == 0 or n_treated == 0:
        empty = "control" if n_control == 0 else "recommended (" + ", ".join(sorted(treated_set)) + ")"
        raise ConfigError(
            f"{who} has no measurable account in the {empty} cohort "
            f"({n_treated} treated, {n_control} control): lift needs both; "
            "the control cohort comes from the playbook's control_fraction"
        )
    z = NormalDist().inv_cdf((1 + level) / 2)
    vocab = measured_vocabulary(book, playbook, when, observed_until=until)
    specs = objective_specs(playbook, vocab)
    observed = max(0.0, min(playbook.horizon_days, (until - when).total_seconds() / 86_400))
    objectives = [_objective_lift(frame, treated, spec, z) for spec in specs]
    value = _value_lift(frame, treated, playbook, z, vocab)
    notes = _data_notes(book, playbook, specs, frame, when, until, given=observed_until is not None)
    ends = min(until, when + timedelta(days=playbook.horizon_days))
    completion = measure_completion(
        frame, book.touches, feedback, start=when, end=ends, treated_arms=treated_arms, control_arm=control_arm
    )
    actions, action_notes = _action_accuracy(frame, treated, specs, z, playbook.currency)
    dominated = _lift_dominance_notes(frame, treated, specs, playbook, vocab, z)
    return LiftReport(
        run_id=run_id,
        as_of=when,
        horizon_days=playbook.horizon_days,
        observed_until=until,
        observed_days=observed,
        complete=observed >= playbook.horizon_days,
        level=level,
        interval_method=INTERVAL_METHOD,
        treated_arms=tuple(treated_arms),
        control_arm=control_arm,
        arms={str(k): int(v) for k, v in frame.group_by("arm").len().sort("arm").iter_rows()},
        objectives=objectives,
        value=value,
        actions=actions,
        left_out=left_out,
        notes=notes + _interval_notes(objectives, value, playbook.currency) + dominated + action_notes,
        completion=completion,
    )


def _data_notes(
    book: Book,
    playbook: Playbook,
    specs: Sequence[ObjectiveSpec],
    frame: pl.DataFrame,
    when: datetime,
    until: datetime,
    *,
    given: bool,
) -> list[str]:
    """Notes on data that would make a lift read 0 or too small without anything being wrong in its arithmetic."""
    notes: list[str] = []
    ends = min(until, when + timedelta(days=playbook.horizon_days))
    reach = data_reach(book) if given else until  # without --until, until is the book's reach (known_until)
    outcomes_reach = table_reach(book.outcomes)
    if given and reach is not None and until > reach:
        notes.append(
            f"--until {_iso(until)} is after the book's data, which runs up to {reach:%Y-%m-%d %H:%M} UTC: "
            "an outcome not in the book counts as one that did not happen"
        )
    if outcomes_reach is None or outcomes_reach <= when:
        # The value row still moves: it is net of what the plays cost, which needs no outcome.
        if until < when + timedelta(days=playbook.horizon_days):
            seen = max(0.0, (until - when).total_seconds() / 86_400)  # shown as the report's header shows it
            notes.append(
                f"no outcome yet: the book holds none after the run's decision time ({when:%Y-%m-%d}), "
                f"{seen:.0f} of the {playbook.horizon_days} days of the horizon seen: every outcome reads as not "
                "having happened, so each objective's lift is 0 (its interval: what cohorts of these sizes "
                "cannot rule out) and the total value row is only the plays' cost so far (what the recommended "
                "cohort's actions cost over control's); if outcomes happened since, add them to the book's "
                "outcomes table"
            )
        else:
            notes.append(
                f"the book holds no outcome after the run's decision time ({when:%Y-%m-%d}), over the whole "
                f"{playbook.horizon_days}-day horizon: every outcome reads as not having happened, so each "
                "objective's lift is 0 and the total value row is only the plays' cost (what the recommended "
                "cohort's actions cost over control's); add the outcomes that followed the run to the book's "
                "outcomes table"
            )
    elif reach is not None and (lag := outcomes_lag(book_spans(book), reach)) is not None and lag[0] < ends:
        # The rule and words of the notes of validate and run (nextmove.book.notes), said for a measure.
        notes.append(lift_lagging_outcomes_note(lag, _iso(lag[0])))
    ending = set(terminal_outcome_kinds(playbook))
    terminal = sorted({s.label for s in specs if s.outcome in ending and s.label in frame.columns})
    if terminal and "arr" in frame.columns:
        ended = frame.filter(pl.any_horizontal(pl.col(label) > 0 for label in terminal))
        without = ended.filter(pl.col("arr").fill_null(0.0) <= 0).height
        if ended.height and without * 2 >= ended.height and frame.filter(pl.col("arr") > 0).height:
            notes.append(
                f"{without:,} of the {ended.height:,} measured accounts that ended in the window have no ARR in "
                "the book (0 or missing), though others have: lift values their loss at the ARR the accounts "
                f"table holds now, so a billing export that zeroes cancelled customers' ARR values it at "
                f"{money_text(0.0, playbook.currency)}; keep their last ARR in the accounts table"
            )
    return notes


def _interval_notes(objectives: Sequence[ObjectiveLift], value: ValueLift, currency: str) -> list[str]:
    """Why a lift has no interval of its amount (the report and the CLI show it as null, ``—``); in ``currency``."""
    notes: list[str] = []
    # The words of a run in dollars are those it always had; another currency is named by its code.
    unit, amounts = ("dollars", "dollars") if currency == DEFAULT_CURRENCY else (currency, "amounts")
    for o in objectives:
        if o.lift_usd_low is not None:
            continue
        what = f"{o.objective}: no interval"
        if min(o.treated_accounts, o.control_accounts) < 2:
            notes.append(f"{what}: a cohort has fewer than two measured accounts, so it has no spread to measure")
        elif o.unit == "usd" and o.low is None:
            notes.append(
                f"{what}: every measured account's {o.outcome} amount in the window is the same "
                f"({money_text(o.treated_mean, currency)}), so there is no spread to measure"
            )
        else:
            # An ARR objective whose events all fell on accounts without ARR: the rate's interval stands.
            notes.append(
                f"{what} in {unit}: the accounts that had a {o.outcome} have no ARR in the book, so every "
                f"account's {amounts} are {money_text(0.0, currency)} and have no spread to measure (the rate's "
                "interval stands)"
            )
    if value.low is None:
        reason = (
            "a cohort has fewer than two measured accounts"
            if min(value.treated_accounts, value.control_accounts) < 2
            else "every measured account's value net of cost is the same "
            f"({money_text(value.treated_mean_usd, currency)})"
        )
        notes.append(f"total value: no interval: {reason}, so there is no spread to measure")
    return notes


def _dominance(treated: F64, control: F64, diff: _Diff, z: float) -> Dominance | None:
    """The one or two accounts that decide the difference ``diff`` of ``treated`` and ``control`` (the
    amounts of :func:`_difference`), or None (:func:`~nextmove.measure.dominance.find_dominance`).

    The accounts are numbered treated first, then control; each standard error is :func:`_difference`'s. Only
    accounts that are at most one in :data:`~nextmove.measure.dominance.FEW_OF_MANY` of their cohort are left out.
    """
    nt, nc = len(treated), len(control)
    if diff.stderr is None or nt < 2 or nc < 2:
        return None
    mt, mc = float(treated.mean()), float(control.mean())
    single = np.concatenate([(mt * nt - treated) / (nt - 1) - mc, mt - (mc * nc - control) / (nc - 1)])

    def without(drop: Sequence[int]) -> tuple[float, float] | None:
        from_t = [i for i in drop if i < nt]
        from_c = [i - nt for i in drop if i >= nt]
        if len(from_t) * FEW_OF_MANY > nt or len(from_c) * FEW_OF_MANY > nc:
            return None  # not a few accounts of many: a small cohort, whose interval says so
        t, c = np.delete(treated, from_t), np.delete(control, from_c)
        left = _difference(t, c, z, binary=False)
        return left.estimate, left.stderr or 0.0  # cohorts of two or more: no standard error is no spread

    return find_dominance(diff.estimate, diff.stderr, single, without)


def _cohorts(found: Dominance, n_treated: int) -> str:
    """Which cohort the accounts of ``found`` are of (numbered treated first, ``n_treated`` of them)."""
    k = found.count
    recommended = sum(1 for i in found.accounts if i < n_treated)
    if k == 1:
        return "recommended" if recommended else "control"
    both = {k: "both recommended", 0: "both control"}
    return both.get(recommended, f"{recommended} recommended, {k - recommended} control")


def _dominance_note(found: Dominance, label: str, n_treated: int, measured: int, currency: str) -> str:
    """The note on a lift (an objective's dollars, the total value) one or two accounts decide: how many, of which
    cohort, their share, the figure without them; never which accounts (a lift lists none).

    ``found`` numbers the accounts treated first (``n_treated`` of them); ``measured`` is both cohorts'.
    """
    k = found.count
    them = "it" if k == 1 else "them"
    figure = f"the lift of {money_text(found.estimate, currency, signed=True)} per account"
    outcomes = "that account's" if k == 1 else "those accounts'"
    return (
        f"{label}: {k} of the {measured:,} measured accounts ({_cohorts(found, n_treated)}) "
        f"{share_words(found, figure, currency)}: without {them} the lift reads "
        f"{money_text(found.without, currency, signed=True)} (standard error "
        f"{money_text(found.stderr_without, currency)}, against {money_text(found.stderr, currency)} with {them}). "
        f"The figure and its impact are {outcomes} outcomes more than the plays' effect; read the interval, which "
        + ("it widens" if k == 1 else "they widen")
    )


def _actions_dominance_note(found: Sequence[tuple[str, Dominance, int, int]], currency: str) -> str | None:
    """One note on the realised effects (amounts) one or two accounts decide, each ``(label, dominance, treated,
    measured)`` as :func:`_dominance_note` takes them; None when there is none."""
    if not found:
        return None
    clauses = []
    for label, d, n_treated, measured in found:
        them = "it" if d.count == 1 else "them"
        figure = f"the realised {money_text(d.estimate, currency, signed=True)} per account"
        held = share_words(d, figure, currency)
        clauses.append(
            f"{label}, {d.count} of {measured:,} accounts ({_cohorts(d, n_treated)}) {held} "
            f"({money_text(d.without, currency, signed=True)} without {them}; standard error "
            f"{money_text(d.stderr_without, currency)} against {money_text(d.stderr, currency)})"
        )
    return (
        "realised effects that one or two accounts decide, each those accounts' outcomes more than the action's "
        "effect (read its interval, which they widen): " + "; ".join(clauses)
    )


def _lift_dominance_notes(
    frame: pl.DataFrame,
    treated: NDArray[np.bool_],
    specs: Sequence[ObjectiveSpec],
    playbook: Playbook,
    vocab: FeatureVocabulary,
    z: float,
) -> list[str]:
    """Notes on the objectives' dollars and the total value whose lift one or two accounts decide.

    ``fixed`` objectives are left out: their dollars are a rate's, every event worth the same.
    """
    control = ~treated
    nt, measured = int(treated.sum()), len(treated)
    series: list[tuple[str, F64]] = [
        (spec.objective, spec.realised_usd(frame)) for spec in specs if spec.basis is not ValueBasis.FIXED
    ]
    series.append(("total value", row_value_usd(frame, playbook, vocabulary=vocab)))
    notes: list[str] = []
    for label, dollars in series:
        diff = _difference(dollars[treated], dollars[control], z, binary=False)
        found = _dominance(dollars[treated], dollars[control], diff, z)
        if found is not None:
            notes.append(_dominance_note(found, label, nt, measured, playbook.currency))
    return notes


OVERLAP_DATES_SHOWN = 6
"""How many decision dates :func:`overlap_note` lists before saying how many more there are."""


@dataclass(frozen=True)
class AccountOverlap:
    """The accounts a run's decisions share with the runs decided within a horizon of it (:func:`account_overlap`)."""

    accounts: int
    """The run's accounts (its recommendations)."""
    shared: dict[str, int]
    """Per other run, how many of those it decided too; a run sharing none is left out."""


class RecommendationCounts(Protocol):
    """What :func:`account_overlap` asks of a store (:class:`nextmove.store.Store`)."""

    def count_recommendations(self, run_id: str) -> int: ...
    def shared_accounts(self, run_id: str, others: Sequence[str]) -> dict[str, int]: ...


def overlapping_runs(run: RunLike, stored: Iterable[RunLike], horizon_days: int) -> list[RunLike]:
    """The other succeeded runs of ``stored`` decided less than ``horizon_days`` from ``run``, of its book.

    Of its book whatever the playbook (:func:`~nextmove.store.same_book` with ``any_playbook``: the
    same folder, or a weekly export in a sibling folder read under a playbook of its own, edited
    or not): what the lifts share is accounts and outcomes, which a playbook edit does not change.
    """
    if run.as_of is None:
        return []
    when = to_utc(run.as_of)
    span = timedelta(days=horizon_days)
    return [
        other
        for other in stored
        if other.run_id != run.run_id
        and other.status == "succeeded"
        and other.as_of is not None
        and abs(to_utc(other.as_of) - when) < span
        and same_book(other, run, any_playbook=True)
    ]


def account_overlap(
    store: RecommendationCounts, run: RunLike, stored: Iterable[RunLike], horizon_days: int
) -> AccountOverlap:
    """How many of ``run``'s accounts each of its :func:`overlapping_runs` decided too: two counting queries."""
    others = [r.run_id for r in overlapping_runs(run, stored, horizon_days)]
    shared = store.shared_accounts(run.run_id, others) if others else {}
    return AccountOverlap(accounts=store.count_recommendations(run.run_id), shared=shared)


def overlap_note(
    run: RunLike, stored: Iterable[RunLike], horizon_days: int, overlap: AccountOverlap | None = None
) -> str | None:
    """A note naming the other succeeded runs of ``stored`` decided less than ``horizon_days`` from ``run``.

    Runs of the same book (:func:`overlapping_runs`: the same folder, or a weekly export in a new
    folder of the same parent, whatever its playbook); with ``overlap`` (:func:`account_overlap`,
    from the store), only those whose decisions share accounts with ``run``'s, and the note says
    how many at most. Their horizons overlap ``run``'s, mostly over the same accounts and the same
    control cohort (a stable hash of each account), so their lifts count many of the same outcomes,
    and a sum of them counts one outcome up to once per run. None when there is none; none for
    another book that only shares the built-in default playbook.

    Examples
    --------
    >>> from types import SimpleNamespace as Run
    >>> from datetime import UTC
    >>> def made(run_id, day, playbook="own"):
    ...     return Run(run_id=run_id, book_source="crm", playbook_hash=playbook, status="succeeded",
    ...                as_of=datetime(2025, 5, day, tzinfo=UTC))
    >>> runs = [made("w00", 5), made("w01", 12), made("w01b", 12, "edited"), made("w02", 19), made("w09", 30)]
    >>> print(overlap_note(runs[1], runs, 14))  # doctest: +NORMALIZE_WHITESPACE
    3 other runs in the store were decided less than 14 days from this one (2025-05-05, 2025-05-12, 2025-05-19):
    their horizons overlap this run's, over the same accounts and control cohort, so their lifts count many of
    the same outcomes; compare them, never add them up
    >>> shares = AccountOverlap(accounts=980, shared={"w00": 950, "w02": 975})  # w01b shares none
    >>> print(overlap_note(runs[1], runs, 14, shares))  # doctest: +NORMALIZE_WHITESPACE
    2 other runs in the store were decided less than 14 days from this one (2025-05-05, 2025-05-19), with up to
    975 of its 980 accounts in common: their horizons overlap this run's, over the same accounts and control
    cohort, so their lifts count many of the same outcomes; compare them, never add them up
    >>> overlap_note(runs[0], [runs[0], runs[4]], 14) is None  # 25 days apart
    True
    """
    if run.as_of is None:
        return None
    dates: dict[str, int] = {}
    most = 0
    for other in overlapping_runs(run, stored, horizon_days):
        if overlap is not None:
            if not overlap.shared.get(other.run_id):
                continue
            most = max(most, overlap.shared[other.run_id])
        day = f"{to_utc(other.as_of or run.as_of):%Y-%m-%d}"
        dates[day] = dates.get(day, 0) + 1
    if not dates:
        return None
    count = sum(dates.values())
    days = sorted(dates)
    shown = ", ".join(d if dates[d] == 1 else f"{d} ×{dates[d]}" for d in days[:OVERLAP_DATES_SHOWN])
    if len(days) > OVERLAP_DATES_SHOWN:
        shown += f" and {len(days) - OVERLAP_DATES_SHOWN} more dates"
    runs = "other run in the store was" if count == 1 else "other runs in the store were"
    lifts = "its horizon overlaps" if count == 1 else "their horizons overlap"
    common = ""
    if overlap is not None:
        common = f", with {'' if count == 1 else 'up to '}{most:,} of its {overlap.accounts:,} accounts in common"
    return (
        f"{count} {runs} decided less than {_days(horizon_days)} from this one ({shown}){common}: {lifts} this "
        "run's, over the same accounts and control cohort, so their lifts count many of the same outcomes; compare "
        "them, never add them up"
    )


def with_overlap_note(
    report: LiftReport, run: RunLike, stored: Iterable[RunLike], overlap: AccountOverlap | None = None
) -> LiftReport:
    """``report`` with :func:`overlap_note` of ``run`` among ``stored`` added to its notes (itself if there is none)."""
    note = overlap_note(run, stored, report.horizon_days, overlap)
    return report if note is None else replace(report, notes=[*report.notes, note])


def playbook_note(run: RunLike, playbook: Playbook, recommended: Iterable[str] = ()) -> str | None:
    """A note saying ``run`` was made under another playbook than ``playbook``, the one measuring it; None if not.

    The lift takes the objectives, horizon and costs of the playbook it is given, not of the one the
    run was decided under (a store keeps only its hash); actions of ``recommended`` (the run's) that
    ``playbook`` no longer has are costed at $0.

    Examples
    --------
    >>> from types import SimpleNamespace as Run
    >>> from nextmove.playbook import Action, Objective
    >>> pb = Playbook(objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
    ...               actions=[Action(id="call", name="Call", team="cs", objective="win")])
    >>> run = Run(run_id="r1", playbook_hash="0123456789abcdef")
    >>> print(playbook_note(run, pb, ["call", "upsell", "none"]))  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    run r1 was made with another playbook (0123456789abcdef); objectives, horizon and costs are this one's (...); it
    recommended upsell, which this playbook does not have: costed at $0
    >>> playbook_note(Run(run_id="r2", playbook_hash=pb.content_hash()), pb) is None
    True
    """
    current = playbook.content_hash()
    if not run.playbook_hash or run.playbook_hash == current:
        return None
    note = (
        f"run {run.run_id} was made with another playbook ({run.playbook_hash}); "
        f"objectives, horizon and costs are this one's ({current})"
    )
    gone = sorted(set(recommended) - set(playbook.action_ids) - {NO_ACTION})
    if gone:
        zero = money_text(0.0, playbook.currency)
        note += f"; it recommended {', '.join(gone)}, which this playbook does not have: costed at {zero}"
    return note


def with_playbook_note(report: LiftReport, run: RunLike, playbook: Playbook, recommended: Iterable[str]) -> LiftReport:
    """``report`` with :func:`playbook_note` first among its notes (itself if the run's playbook is ``playbook``)."""
    note = playbook_note(run, playbook, recommended)
    return report if note is None else replace(report, notes=[note, *report.notes])
