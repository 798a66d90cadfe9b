"""Off-policy evaluation: IPS, SNIPS and DR estimates, with confidence intervals, of any policy on logged data."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import partial
from statistics import NormalDist
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.book import NO_ACTION, Book, terminal_outcome_kinds
from nextmove.book.notes import book_spans, complete_until_note, option_time, outcomes_lag
from nextmove.book.outcomes_until import until_instant
from nextmove.book.validate import missing_arr_note
from nextmove.decide.explore import stable_uniform
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, build_training_set, training_vocabulary
from nextmove.features.history import to_utc
from nextmove.measure.accuracy import ProbabilityAccuracy, evaluate_probabilities
from nextmove.measure.dominance import cluster_ratio, find_dominance
from nextmove.measure.lift import RecommendationValues, RunLike, json_ready, latest_data_time
from nextmove.measure.policy import (
    do_nothing_policy,
    eligible_actions,
    learned_policy,
    left_after_decision,
    lifecycle_default_policy,
    logged_policy,
    one_per_decision,
    policy_keys,
    recorded_defaults_at,
    table_policy,
)
from nextmove.models.effect import EffectModel, row_value_usd
from nextmove.models.leaks import guard_leaks
from nextmove.models.outcome import OutcomeFitSummary, OutcomeModels
from nextmove.models.propensity import DEFAULT_EXCLUDE as PROPENSITY_EXCLUDE
from nextmove.models.propensity import OverlapReport, PropensityModel, check_clip, clip_propensities
from nextmove.playbook import Playbook
from nextmove.playbook.money import DEFAULT_CURRENCY, money_text

__all__ = [
    "BUILT_IN_POLICIES",
    "MAX_UNSUPPORTED_SHARE",
    "POLICY_FILE_REMEDY",
    "UNKNOWN_STAGE_SE",
    "OfflineEvaluation",
    "PolicyValue",
    "RecordingRun",
    "default_values",
    "dominance_note",
    "evaluate_offline",
    "evaluate_policy",
    "lifecycle_default_at",
    "logging_propensities",
    "policy_difference",
    "row_value_usd",
    "split_decisions",
    "stored_defaults",
    "unknown_stage_note",
]

Method = Literal["ips", "snips", "dr"]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class PolicyValue:
    """The estimated value of a policy per logged decision, with its confidence interval.

    ``estimate`` is in dollars per decision (the row value of :func:`row_value_usd`: objective
    dollars minus the action's cost), or one objective's dollars when ``objective`` is set. The
    interval is a normal approximation on the per-row terms, with the variance summed by account
    (rows of one account are not assumed independent).

    An estimate that cannot be made is None, never NaN, and ``note`` says why: IPS and SNIPS when no
    logged decision is one the policy could take (no weight: a touch log without ``none`` rows
    says nothing of doing nothing); the interval when the rows are of fewer than two accounts.
    An interval resting on an effective sample size below :data:`SMALL_EFFECTIVE_SAMPLE_SIZE` has a
    ``note`` too: it is likely too narrow (:func:`small_sample_note`).

    Positivity: where the policy takes actions the logged decisions never took (or took only at
    propensities below the clip floor) on more than :data:`MAX_UNSUPPORTED_SHARE` of the decisions
    (``unsupported_share``), IPS and SNIPS cannot value those decisions and are None, and DR, which
    there stands on the outcome model's projection, keeps its estimate but has no interval; the
    ``note`` says so (:func:`unsupported_note`), and says what is miscounted under that share too.
    Where the policy's action itself is not known on more than that share (``unknown_share``: the
    lifecycle default at decisions whose stage then is not known, :func:`unknown_stage_note`), no
    method has an estimate.
    """

    policy: str
    method: Method
    estimate: float | None
    """None when it cannot be made (``note`` says why)."""
    stderr: float | None
    low: float | None
    high: float | None
    n: int
    """Logged rows evaluated."""
    level: float
    objective: str | None
    """None for the total value; else the one objective evaluated."""
    effective_sample_size: float
    """``(Σ w)² / Σ w²`` of the importance weights ``w = π(A | x) / e(A | x)``: rows the estimate is worth."""
    matched_share: float
    """Share of rows where the logged action is one the policy could take (``π(A | x) > 0``). For a
    paired difference, like ``effective_sample_size``, the smaller of the two policies'."""
    note: str | None = None
    """Why the estimate or its interval is missing, or why the interval is likely too narrow, in words
    (None when there is nothing to say)."""
    unsupported_share: float = 0.0
    """Share of the policy's probability over the rows on actions the rows never took, or took only at
    propensities below the clip floor: decisions IPS cannot value (for a paired difference, the larger
    of the two policies')."""
    unsupported_actions: tuple[str, ...] = ()
    """Those actions (of either policy, for a paired difference)."""
    unknown_share: float = 0.0
    """Share of the evaluated rows at which the policy's action is not known: the lifecycle default where
    the account left (a terminal outcome) after the decision and no run recorded its default then, so
    its stage at the decision is not known. Above :data:`MAX_UNSUPPORTED_SHARE` there is no estimate
    (``note`` says why); at or below it, the policy is taken to do there what the log did
    (:func:`unknown_stage_note`)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Terms:
    """Per-row terms of each estimator (internal)."""

    weights: F64
    rewards: F64
    ips: F64
    dr: F64 | None
    clusters: NDArray[np.int64]
    matched: F64
    support: _Support


@dataclass(frozen=True)
class _Support:
    """Where a policy goes beyond what the logged rows took (internal): see :func:`_support`."""

    share: float
    """Mean over the rows of the policy's probability on the actions below."""
    never: tuple[str, ...]
    """Actions the policy takes that no row took."""
    below_floor: tuple[str, ...]
    """Actions the policy takes that rows took, but every one at a propensity below the clip floor."""
    floor: float

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(sorted({*self.never, *self.below_floor}))


def _support(actions: pl.Series, raw: F64, joined: pl.DataFrame, n: int, floor: float) -> _Support:
    """The policy's probability on actions the logged rows give IPS nothing to weigh up.

    An action no row took has no row to carry the decisions where the policy takes it, so IPS
    counts them as $0. One taken only at propensities below ``floor`` has its every weight capped
    at ``1 / floor``: its rows cannot stand for the other decisions where the policy takes it (the
    history says it almost never took it anywhere), so those count too; the rows that took it are
    the policy's own evidence, and do not (the logging policy has none of this).
    """
    supported = set(actions.filter(pl.Series(np.nan_to_num(raw, nan=0.0) >= floor)).unique().to_list())
    taken = set(actions.unique().to_list())
    logged = pl.DataFrame({"_row": pl.int_range(n, eager=True).cast(joined.schema["_row"]), "_logged": actions})
    elsewhere = joined.join(logged, on="_row").filter(
        (pl.col("probability") > 0) & (pl.col("action_id") != pl.col("_logged"))
    )
    mass = elsewhere.group_by("action_id").agg(pl.col("probability").sum())
    out = {a: float(p) for a, p in mass.iter_rows() if a not in supported}
    never = tuple(sorted(a for a in out if a not in taken))
    below = tuple(sorted(a for a in out if a in taken))
    return _Support(share=sum(out.values()) / n, never=never, below_floor=below, floor=floor)


def _policy_probabilities(rows: pl.DataFrame, policy: pl.DataFrame) -> tuple[F64, pl.DataFrame]:
    """π(logged action | row) for every row, and the policy joined to the rows (all its actions).

    Every logged row is weighed on its own, with its decision's distribution joined to it once:
    two touches of one account at one instant are two rows of one decision (one snapshot), so both
    get the one distribution, however many times the table repeats it (:func:`one_per_decision`).
    """
    keys = policy_keys(policy)
    for key in keys:
        if key not in rows.columns:
            raise ConfigError(f"the policy is keyed by {key!r}, which the logged rows lack")
    table = policy.select(*keys, pl.col("action_id").cast(pl.String), pl.col("probability").cast(pl.Float64))
    if "decision_ts" in keys:
        table = table.with_columns(pl.col("decision_ts").cast(rows.schema["decision_ts"]))
    table = one_per_decision(table)
    indexed = rows.select(*keys, pl.col("action_id").cast(pl.String).fill_null(NO_ACTION)).with_row_index("_row")
    covered = indexed.join(table.select(keys).unique(), on=keys, how="semi")
    if covered.height < indexed.height:
        missing = indexed.height - covered.height
        raise ConfigError(
            f"the policy has no action for {missing} of {indexed.height} logged rows "
            f"(keyed by {', '.join(keys)}); give every row an action (e.g. 'none')"
        )
    taken = indexed.join(table, on=[*keys, "action_id"], how="left").sort("_row")
    probability = taken.get_column("probability").fill_null(0.0).to_numpy().astype(np.float64)
    joined = indexed.select("_row", *keys).join(table, on=keys, how="inner")
    return probability, joined


def _check_complete(joined: pl.DataFrame) -> None:
    """DR sums over every action the policy can take: its probabilities must sum to 1 on every row."""
    totals = joined.group_by("_row").agg(pl.col("probability").sum().alias("_total"))
    off = totals.filter((pl.col("_total") - 1.0).abs() > 1e-6)
    if off.height:
        raise ConfigError(
            f"DR needs the policy's whole distribution, but its probabilities do not sum to 1 on {off.height} rows "
            "(e.g. logged_policy without proba=); evaluate it with methods=('ips', 'snips')"
        )


def _direct_term(rows: pl.DataFrame, joined: pl.DataFrame, expected_values: pl.DataFrame) -> tuple[F64, F64]:
    """``Σ_a π(a | x) q(x, a)`` per row, and ``q(x, A)`` of the logged action."""
    q_keys = ["account_id", "decision_ts"] if "decision_ts" in expected_values.columns else ["account_id"]
    for key in q_keys:
        if key not in rows.columns:
            raise ConfigError(f"expected_values is keyed by {key!r}, which the logged rows lack")
    q = expected_values.select(*q_keys, pl.col("action_id").cast(pl.String), pl.col("expected_value_usd"))
    if "decision_ts" in q_keys:
        q = q.with_columns(pl.col("decision_ts").cast(rows.schema["decision_ts"]))
    # Two touches of one account on one day are two logged rows of one (account, day): one snapshot,
    # so one value per action. Kept twice, every join below would count the pair twice.
    q = q.unique(subset=[*q_keys, "action_id"], keep="first", maintain_order=True)
    indexed = rows.select(*q_keys, pl.col("action_id").cast(pl.String).fill_null(NO_ACTION)).with_row_index("_row")
    row_keys = indexed.select("_row", *q_keys)
    chosen = joined.select("_row", "action_id", "probability").join(row_keys, on="_row")
    with_q = chosen.join(q, on=[*q_keys, "action_id"], how="left")
    if with_q.get_column("expected_value_usd").null_count():
        gap = with_q.filter(pl.col("expected_value_usd").is_null() & (pl.col("probability") > 0)).head(1)
        if gap.height:
            first = gap.row(0, named=True)
            raise ConfigError(
                f"expected_values has no value for action {first['action_id']!r} of account {first['account_id']!r}: "
                "DR needs q(x, a) for every action the policy can take"
            )
    direct = (
        with_q.group_by("_row")
        .agg((pl.col("probability") * pl.col("expected_value_usd").fill_null(0.0)).sum().alias("_d"))
        .join(indexed.select("_row"), on="_row", how="right")
        .sort("_row")
        .get_column("_d")
        .fill_null(0.0)
        .to_numpy()
    )
    logged_q = indexed.join(q, on=[*q_keys, "action_id"], how="left").sort("_row").get_column("expected_value_usd")
    if logged_q.null_count():
        raise ConfigError("expected_values has no value for some logged actions: DR needs q(x, A) of the logged action")
    return np.asarray(direct, dtype=np.float64), logged_q.to_numpy().astype(np.float64)


def _propensities(rows: pl.DataFrame, propensity: F64 | Literal["logged", "estimate"], random_state: int) -> F64:
    if not isinstance(propensity, str):
        values = np.asarray(propensity, dtype=np.float64)
        if values.shape != (rows.height,):
            raise ConfigError(f"propensity must have one value per row ({rows.height}), got shape {values.shape}")
        return values
    if propensity not in ("logged", "estimate"):
        raise ConfigError(f"propensity must be 'logged', 'estimate' or an array, got {propensity!r}")
    logged = (
        rows.get_column("propensity").cast(pl.Float64).to_numpy().astype(np.float64)
        if "propensity" in rows.columns
        else np.full(rows.height, np.nan)
    )
    if propensity == "logged" and np.isfinite(logged).all():
        return logged
    # Missing propensities: a cross-fitted model of the logging policy on these same rows.
    model = PropensityModel(
        estimate="always", use_logged=propensity == "logged", random_state=random_state, clip=(1e-6, 1.0)
    ).fit(rows)
    return model.raw_propensity_


def logging_propensities(
    rows: pl.DataFrame,
    playbook: Playbook,
    *,
    clip: tuple[float, float] = (1e-6, 1.0),
    random_state: int = 0,
    exclude: Sequence[str] = PROPENSITY_EXCLUDE,
) -> tuple[PropensityModel, str | None]:
    """The logging policy's propensity of every row's action, for weighting: the touch log's where
    present, else a cross-fitted model's estimate from the rows' logged actions (not reading the
    feature columns ``exclude``).

    Returns the fitted :class:`PropensityModel` (``raw_propensity_``: the propensities, unclipped;
    ``overlap_``: the overlap of the rows) and, when some propensities were estimated, a note that
    says how many (None when all were logged).
    """
    logging = PropensityModel(clip=clip, estimate="auto", random_state=random_state, exclude=exclude).fit(
        rows, arms=[NO_ACTION, *playbook.action_ids]
    )
    missing = int((~logging.logged_).sum())
    note = None
    if missing:
        note = (
            f"{missing:,} of {rows.height:,} evaluated decisions have no logged propensity, "
            "estimated by a cross-fitted model of the logged actions"
        )
        left_out = [c for c in logging.exclude if c in rows.columns]
        if "lifecycle_stage" in left_out:
            # The accounts table holds today's stage, so past rows cannot use it; a log that followed
            # the lifecycle playbook then looks more random than it was, most of all for that policy.
            note += (
                "; the model cannot see lifecycle_stage (the book holds only today's stage), so where the "
                "history followed a lifecycle playbook its estimates are off and the lifecycle default's "
                "value with them: log each touch's propensity for a value to trust"
            )
    return logging, note


def _terms(
    rows: pl.DataFrame,
    policy: pl.DataFrame,
    playbook: Playbook,
    *,
    objective: str | None,
    expected_values: pl.DataFrame | None,
    propensity: F64 | Literal["logged", "estimate"],
    clip: tuple[float, float],
    rewards: F64 | None,
    random_state: int,
    vocabulary: FeatureVocabulary | None = None,
    as_logged: NDArray[np.bool_] | None = None,
) -> _Terms:
    if rows.height == 0:
        raise ConfigError("there are no logged rows to evaluate on")
    if "account_id" not in rows.columns or "action_id" not in rows.columns:
        raise ConfigError("logged rows need 'account_id' and 'action_id' columns")
    r = (
        row_value_usd(rows, playbook, objective=objective, vocabulary=vocabulary)
        if rewards is None
        else np.asarray(rewards, dtype=float)
    )
    if r.shape != (rows.height,):
        raise ConfigError(f"rewards must have one value per row ({rows.height}), got shape {r.shape}")
    raw = _propensities(rows, propensity, random_state)
    e = clip_propensities(raw, clip)
    pi_taken, joined = _policy_probabilities(rows, policy)
    mask = np.zeros(rows.height, dtype=bool) if as_logged is None else np.asarray(as_logged, dtype=bool)
    if mask.shape != (rows.height,):
        raise ConfigError(f"as_logged must have one value per row ({rows.height}), got shape {mask.shape}")
    if mask.any():
        # Where the policy is taken to do what the log did, the log's own action and outcome stand for it.
        joined = joined.filter(
            ~pl.col("_row").is_in(pl.Series(np.flatnonzero(mask)).cast(joined.schema["_row"]).implode())
        )
    actions = rows.get_column("action_id").cast(pl.String).fill_null(NO_ACTION)
    support = _support(actions, raw, joined, rows.height, clip[0])
    w = np.where(mask, 1.0, pi_taken / e)
    ips = w * r
    dr = None
    if expected_values is not None:
        _check_complete(joined)
        direct, q_taken = _direct_term(rows, joined, expected_values)
        dr = np.where(mask, r, direct + w * (r - q_taken))
    clusters = rows.get_column("account_id").cast(pl.String).rank("dense").to_numpy().astype(np.int64)
    matched = np.where(mask, 1.0, (pi_taken > 0).astype(float))
    return _Terms(weights=w, rewards=r, ips=ips, dr=dr, clusters=clusters, matched=matched, support=support)


def _cluster_se(influence: F64, clusters: NDArray[np.int64]) -> float:
    """Standard error of a mean whose per-row influence is ``influence``, summed by cluster first."""
    n = len(influence)
    sums = np.bincount(clusters, weights=influence)
    sums = sums[np.bincount(clusters) > 0]
    g = len(sums)
    if g < 2:
        return float("nan")
    return float(math.sqrt(np.sum(sums**2) * g / (g - 1)) / n)


def no_weight_note(method: str, which: str = "this policy") -> str:
    """Why an importance-weighted estimate cannot be made: no logged decision matches ``which``.

    Examples
    --------
    >>> no_weight_note("snips")
    'no logged decision matches this policy: SNIPS has no weight'
    """
    return f"no logged decision matches {which}: {method.upper()} has no weight"


NO_INTERVAL_NOTE = "the logged decisions are of fewer than two accounts: no interval"
"""Why an estimate has no interval: its variance is summed by account, and one account gives none."""

SMALL_EFFECTIVE_SAMPLE_SIZE = 200.0
"""Below this effective sample size an estimate's interval gets a note: likely too narrow.

Over 40 lab books (docs/benchmarks.md, "OPE of the learned policy over 20 lab seeds") the learned
policy's errors, in its own standard errors, spread 1.2–1.4 times as wide as a normal's at
effective sample sizes of 95–190: the standard errors were about a quarter too small there, so a
threshold of 100 would leave the very cases measured short unflagged (docs/effects.md)."""


class _Noted(Protocol):
    @property
    def policy(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def note(self) -> str | None: ...


def grouped_notes(values: Iterable[_Noted]) -> list[str]:
    """Each policy's notes once, with the methods each holds for: ``learned (IPS, SNIPS, DR): …``.

    What ``nextmove evaluate`` prints under its tables and the report under its off-policy table.

    Examples
    --------
    >>> from types import SimpleNamespace as V
    >>> grouped_notes([V(policy="nothing", method="ips", note="never taken"),
    ...                V(policy="nothing", method="snips", note="never taken"),
    ...                V(policy="learned", method="dr", note=None)])
    ['nothing (IPS, SNIPS): never taken']
    """
    methods: dict[tuple[str, str], list[str]] = {}
    for v in values:
        if v.note:
            methods.setdefault((v.policy, v.note), []).append(v.method.upper())
    return [f"{policy} ({', '.join(which)}): {note}" for (policy, note), which in methods.items()]


def narrow_interval_likely(ess: float, n: int) -> bool:
    """Whether an interval on ``ess`` effective of ``n`` decisions is likely too narrow (:func:`small_sample_note`).

    Under :data:`SMALL_EFFECTIVE_SAMPLE_SIZE` effective decisions with uneven weights (a few carry the
    estimate: the influence terms' spread understates the error), or none matching. Even weights
    (``ess`` near ``n``, e.g. the logged policy's plain mean) are an ordinary mean: no note.

    Examples
    --------
    >>> narrow_interval_likely(57.2, 865), narrow_interval_likely(187.0, 187), narrow_interval_likely(0.0, 50)
    (True, False, True)
    """
    return ess <= 0 or (ess < SMALL_EFFECTIVE_SAMPLE_SIZE and ess < 0.9 * n)


def small_sample_note(ess: float, n: int, which: str = "this policy") -> str:
    """Why an interval resting on under :data:`SMALL_EFFECTIVE_SAMPLE_SIZE` effective decisions is likely too narrow.

    ``ess`` is that of ``which`` (for a paired difference, of whichever policy has the smaller one).

    Examples
    --------
    >>> print(small_sample_note(57.2, 865))  # doctest: +NORMALIZE_WHITESPACE
    this policy's effective sample size is 57 of 865 decisions (under 200): the weight rests on few of them,
    so the interval is likely too narrow
    >>> print(small_sample_note(0.0, 865, "the baseline"))  # doctest: +NORMALIZE_WHITESPACE
    no logged decision matches the baseline: its value stands on the outcome model alone, and the
    interval does not count that model's own error
    """
    if ess <= 0:
        return (
            f"no logged decision matches {which}: its value stands on the outcome model alone, and the interval "
            "does not count that model's own error"
        )
    # Even weights (ess near n): the decisions are few; uneven ones: few of many carry the estimate.
    few = "the weight rests on few of them" if ess < n / 2 else "that is few decisions"
    return (
        f"{which}'s effective sample size is {ess:.0f} of {n:,} decisions (under {SMALL_EFFECTIVE_SAMPLE_SIZE:.0f}): "
        f"{few}, so the interval is likely too narrow"
    )


MAX_UNSUPPORTED_SHARE = 0.05
"""Above this share of a policy's decisions on actions the history never took, IPS and SNIPS are None.

IPS counts a decision it cannot weigh (an action no logged row took) as $0, SNIPS as the mean of
the others, and neither interval knows: the estimate is off by that share times what those
decisions are worth, unseen. For an outcome of rate ``p`` worth a dollar amount ``V`` (a churn
avoided: the ARR), a decision's value has a mean of about ``p V`` and a spread of about ``√p V``;
at an effective sample of :data:`SMALL_EFFECTIVE_SAMPLE_SIZE` (200) a 95 % interval is
``± 1.96 √p V / √200``. At a churn rate of 10 %, 5 % of the decisions miscounted shift the
estimate by up to a ninth of that half-width (a quarter at 1,000 effective decisions): below it
the bias hides in the noise the interval shows, and a note says it is there; at the 43–53 % of a
book with no touches on which the lifecycle default takes its actions, it is the estimate. A
policy's DR keeps its estimate over the same share, but not its interval (there DR is the outcome
model's projection, whose error the interval does not count)."""


def _share_words(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else "under 1%"


def _action_names(actions: Sequence[str]) -> str:
    names = [f"{a} (doing nothing)" if a == NO_ACTION else a for a in actions]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def unsupported_note(
    method: str,
    takes: Sequence[tuple[str, float]],
    never: Sequence[str],
    below_floor: Sequence[str] = (),
    floor: float = 1e-3,
    currency: str = DEFAULT_CURRENCY,
) -> str:
    """Why ``method`` cannot value (or values only by the outcome model) the decisions where a policy
    takes actions the logged decisions never took.

    ``takes`` pairs who takes them with the share of the decisions it does (``("this policy", 0.46)``);
    ``never`` are the actions no logged decision took, ``below_floor`` those taken only at
    propensities below the clip ``floor``. Over :data:`MAX_UNSUPPORTED_SHARE` the estimate (IPS,
    SNIPS) or the interval (DR) is left out, and the note says so. ``currency`` is the playbook's (IPS
    counts such decisions as 0 of it).

    Examples
    --------
    >>> print(unsupported_note("ips", [("this policy", 0.46)], ["call", "visit"]))  # doctest: +NORMALIZE_WHITESPACE
    the history never took call or visit, which this policy takes on 46% of the decisions: IPS and SNIPS cannot
    value them
    >>> print(unsupported_note("snips", [("the baseline", 0.02)], [], ["email"]))  # doctest: +NORMALIZE_WHITESPACE
    the history took email only at propensities below the 0.001 clip floor, which the baseline takes on 2% of the
    decisions: SNIPS counts them as worth the mean of the others
    >>> print(unsupported_note("dr", [("this policy", 1.0)], ["none"]))  # doctest: +NORMALIZE_WHITESPACE
    the history never took none (doing nothing), which this policy takes on 100% of the decisions: there DR
    stands on the outcome model's projection, whose error an interval would not count, so it has none
    """
    parts = []
    if never:
        parts.append(f"never took {_action_names(never)}")
    if below_floor:
        parts.append(f"took {_action_names(below_floor)} only at propensities below the {floor:g} clip floor")
    shown = [(which, share) for which, share in takes if share > 0]
    who = " and ".join(
        f"{which}{' takes' if i == 0 else ''} on {_share_words(share)}" for i, (which, share) in enumerate(shown)
    )
    material = any(share > MAX_UNSUPPORTED_SHARE for _, share in takes)
    if method == "dr":
        tail = "there DR stands on the outcome model's projection, whose error " + (
            "an interval would not count, so it has none" if material else "its interval does not count"
        )
    elif material:
        # One wording for both, so that the CLI prints it once for the two.
        tail = "IPS and SNIPS cannot value them"
    elif method == "ips":
        tail = f"IPS counts them as {money_text(0.0, currency)}"
    else:
        tail = f"{method.upper()} counts them as worth the mean of the others"
    return f"the history {' and '.join(parts)}, which {who} of the decisions: {tail}"


UNKNOWN_STAGE_SE = 0.5
"""The most, in standard errors of its IPS estimate, that the decisions whose stage then is not known
may move the lifecycle default's value (whatever its action there) for it to be estimated.

Those decisions are the ones an account's leaving followed, so a share of them that would be
small for :data:`MAX_UNSUPPORTED_SHARE` is not small here: each can carry a whole churn's loss,
and which of them the default would have prevented is just what is not known. On a book of 6,000
accounts where 3.7 % of the evaluated decisions were such, counting them as what the history did
valued the default at −28 $ per decision (interval −31 to −25) against a true −13, and leaving
them out keeps only decisions no churn followed (+17 against a true −44 on another book). Their
IPS terms can only lie between 0 and ``r / e`` (the default took the logged action there, or did
not), so how far they can move the estimate is known: at most half a standard error, and they are
counted as what the history did (each then off by less than that); more, and there is no estimate."""


POLICY_FILE_REMEDY = (
    "Write the default with each decision's stage as a policy table (account_id, decision_ts, action_id) and "
    "evaluate it with --policy FILE (docs/measure.md)"
)
"""What :func:`unknown_stage_note` says to do (``nextmove evaluate``'s words)."""


def unknown_stage_note(
    unknown: int,
    total: int,
    kinds: Sequence[str],
    stages: Sequence[tuple[str | None, int]] = (),
    *,
    bounds: tuple[float, float] | None = None,
    material: bool = True,
    difference: bool = False,
    currency: str = DEFAULT_CURRENCY,
    remedy: str = POLICY_FILE_REMEDY,
) -> str:
    """Why the lifecycle default is not known at ``unknown`` of ``total`` evaluated decisions, and what to do.

    Those decisions' accounts left after them (an outcome of a terminal kind of ``kinds``) and no
    run recorded their default then, so their ``lifecycle_stage`` today (``stages``: each stage and
    how many of the decisions' accounts hold it) was written after the decision. A stage read after
    the account left names the default of what followed the decision: a default that does nothing
    for "churned" accounts is credited with leaving alone exactly the decisions a churn followed (on
    a book where 13 % of the decisions were such, its value came out −68 $ per decision against a
    true −44). ``bounds`` are the least and most the IPS value (or ``difference``) can be whatever
    the default was at those decisions; ``material`` when that range is too wide for an estimate
    (:data:`UNKNOWN_STAGE_SE`), or, without an IPS value to bound, when the decisions are over
    :data:`MAX_UNSUPPORTED_SHARE` of them. ``remedy`` ends the note: what to do (default
    :data:`POLICY_FILE_REMEDY`, ``nextmove evaluate``'s).

    Examples
    --------
    >>> print(unknown_stage_note(836, 6584, ["cancel"], [("churned", 836)], bounds=(-91.2, -38.5)))
    ... # doctest: +NORMALIZE_WHITESPACE
    836 of the 6,584 evaluated decisions (13%) are of accounts that left after the decision (cancel) and no
    run recorded their default then: their lifecycle_stage today (churned) was written after they left, so
    the default at those decisions is not known. Whatever it was, its IPS value lies between -$91 and -$38
    per decision (before sampling error): too wide to value it. Write the default with each
    decision's stage as a policy table (account_id, decision_ts, action_id) and evaluate it with --policy
    FILE (docs/measure.md)
    >>> print(unknown_stage_note(12, 6584, ["churn"], [("churned", 10), ("renewal", 2)], bounds=(4.1, 4.6),
    ...                          material=False, difference=True))  # doctest: +NORMALIZE_WHITESPACE
    12 of the 6,584 evaluated decisions (under 1%) are of accounts that left after the decision (churn) and
    no run recorded their default then: their lifecycle_stage today (churned, renewal) was written after
    they left, so the default at those decisions is not known. Whatever it was, this IPS difference lies
    between $4.10 and $4.60 per decision (before sampling error), under half its standard error: there
    the default is counted as what the history did. Write the default with each decision's stage as a
    policy table (account_id, decision_ts, action_id) and evaluate it with --policy FILE (docs/measure.md)
    """
    share = unknown / total if total else 1.0
    shown = [str(stage) for stage, _ in sorted(stages, key=lambda s: -s[1]) if stage is not None][:3]
    today = f" ({', '.join(shown)})" if shown else ""
    text = (
        f"{unknown:,} of the {total:,} evaluated decisions ({_share_words(share)}) are of accounts that left after "
        f"the decision ({', '.join(kinds)}) and no run recorded their default then: their lifecycle_stage "
        f"today{today} was written after they left, so the default at those decisions is not known"
    )
    which = "this IPS difference" if difference else "its IPS value"
    counted = "there the default is counted as what the history did"
    if bounds is None:
        # No IPS value to bound (the history never took what the policy takes): the share decides.
        text += (
            f": {counted}"
            if not material
            else (", and no difference with it can be made" if difference else ", and it cannot be valued")
        )
    else:
        low, high = (money_text(b, currency) for b in bounds)
        text += f". Whatever it was, {which} lies between {low} and {high} per decision (before sampling error)"
        if material:
            text += ": too wide to " + ("make it" if difference else "value it")
        else:
            text += f", under half its standard error: {counted}"
    return f"{text}. {remedy}"


def _joined(*notes: str | None) -> str | None:
    """Notes one after the other (None when there is none)."""
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def dominance_note(
    parts: Sequence[tuple[F64, F64, float]],
    clusters: NDArray[np.int64],
    estimate: float,
    stderr: float,
    *,
    difference: bool = False,
) -> str | None:
    """The note on an estimate one or two accounts decide (:mod:`nextmove.measure.dominance`), or None.

    ``parts`` are the estimate's per-row terms as :func:`~nextmove.measure.dominance.cluster_ratio` takes them
    (``Σ sign · Σ numerator / Σ denominator``), ``clusters`` each row's account; ``stderr`` is the estimate's.
    The note names how many accounts and their share, never which. The share is said roughly (over half, over
    nine tenths, all and more), so that the methods one account decides alike share one note, as
    :func:`grouped_notes` prints them.

    Examples
    --------
    >>> rows = np.array([10.0] * 99 + [50_000.0])  # a hundred accounts, one decision each, one whale
    >>> print(dominance_note([(rows, np.ones(100), 1.0)], np.arange(100), float(rows.mean()), 500.0))
    ... # doctest: +NORMALIZE_WHITESPACE
    1 of the 100 accounts evaluated makes up over nine tenths of this value: it is that account's outcomes more
    than the policy's value, and without its decisions its standard error would be under a third of what it is;
    read the interval, which it widens
    """
    if not (math.isfinite(estimate) and math.isfinite(stderr)):
        return None
    _, _, single, without = cluster_ratio(parts, clusters)
    found = find_dominance(estimate, stderr, single, without)
    if found is None:
        return None
    one = found.count == 1
    what = "difference" if difference else "value"
    share = found.share
    if share is None or share < 0:
        held = f"{'pulls' if one else 'pull'} this {what} {'up' if found.contribution > 0 else 'down'} against the rest"
    else:
        held = f"{'makes' if one else 'make'} up {_rough_share(share)} of this {what}"
        held += f", and {'turns' if one else 'turn'} its sign" if share > 1 else ""
    whose = "the policies' difference" if difference else "the policy's value"
    outcomes = "that account's" if one else "those accounts'"
    return (
        f"{found.count} of the {len(single):,} accounts evaluated {held}: it is {outcomes} outcomes more than "
        f"{whose}, and without {'its' if one else 'their'} decisions its standard error would be under a third of what "
        f"it is; read the interval, which {'it widens' if one else 'they widen'}"
    )


def _rough_share(share: float) -> str:
    """A share of an estimate in words that one method and another, a few points apart, say alike."""
    if share > 1:
        return "more than all"
    if share >= 0.9:
        return "over nine tenths"
    return "over half" if share >= 0.5 else "under half"


def _method_parts(method: Method, terms: _Terms) -> list[tuple[F64, F64, float]]:
    """``method``'s per-row terms as :func:`dominance_note` takes them: a mean, or SNIPS's ratio to the weights."""
    ones = np.ones(len(terms.weights))
    if method == "snips":
        return [(terms.ips, terms.weights, 1.0)]
    values = terms.dr if method == "dr" else terms.ips
    if values is None:
        raise ConfigError("DR needs expected_values")
    return [(values, ones, 1.0)]


def _value(
    *,
    policy: str,
    method: Method,
    estimate: float | None,
    se: float,
    z: float,
    n: int,
    level: float,
    objective: str | None,
    ess: float,
    matched: float,
    note: str | None = None,
    small_ess: float | None = None,
    which: str = "this policy",
    unsupported: tuple[float, tuple[str, ...]] = (0.0, ()),
    interval: bool = True,
    dominated: str | None = None,
) -> PolicyValue:
    """A PolicyValue whose numbers are all finite or None (JSON has no NaN), with a note for what is missing.

    ``small_ess`` is the effective sample size the interval rests on (default ``ess``), that of
    ``which``; below :data:`SMALL_EFFECTIVE_SAMPLE_SIZE` the note says the interval is likely too narrow.
    ``unsupported`` is the ``(unsupported_share, unsupported_actions)`` of the result; without
    ``interval`` the estimate has none (``note`` says why). ``dominated`` (:func:`dominance_note`) is said last, of
    an estimate with an interval.
    """
    share, actions = unsupported
    if estimate is not None and not math.isfinite(estimate):
        estimate, note = None, note or f"the {method.upper()} estimate is not a finite number ({estimate})"
    if estimate is None or not interval:
        return PolicyValue(
            policy, method, estimate, None, None, None, n, level, objective, ess, matched, note, share, actions
        )
    if not math.isfinite(se):
        note = _joined(note, NO_INTERVAL_NOTE)
        return PolicyValue(
            policy, method, estimate, None, None, None, n, level, objective, ess, matched, note, share, actions
        )
    resting = ess if small_ess is None else small_ess
    if narrow_interval_likely(resting, n):
        note = _joined(note, small_sample_note(resting, n, which))
    note = _joined(note, dominated)
    low, high = estimate - z * se, estimate + z * se
    return PolicyValue(policy, method, estimate, se, low, high, n, level, objective, ess, matched, note, share, actions)


def _support_note(method: Method, sides: Sequence[tuple[str, _Support]], currency: str) -> tuple[str | None, bool]:
    """The positivity note of ``method`` over the policies in ``sides`` (who, support), and whether the
    estimate (IPS, SNIPS) or the interval (DR) is left out: None and False when every action they
    take was logged."""
    if not any(support.share > 0 for _, support in sides):
        return None, False
    never = sorted({a for _, support in sides for a in support.never})
    below = sorted({a for _, support in sides for a in support.below_floor} - set(never))
    floor = sides[0][1].floor
    takes = [(which, support.share) for which, support in sides]
    material = any(support.share > MAX_UNSUPPORTED_SHARE for _, support in sides)
    return unsupported_note(method, takes, never, below, floor, currency), material


def _summaries(
    terms: _Terms, methods: Sequence[Method], *, name: str, objective: str | None, level: float, currency: str
) -> list[PolicyValue]:
    z = NormalDist().inv_cdf((1 + level) / 2)
    w = terms.weights
    n = len(w)
    ess = float(w.sum() ** 2 / np.sum(w**2)) if np.sum(w**2) > 0 else 0.0
    matched = float(terms.matched.mean())
    total = float(w.sum())
    support = terms.support
    unsupported = (support.share, support.actions)
    out: list[PolicyValue] = []
    for method in methods:
        estimate: float | None
        se = float("nan")
        positivity, material = _support_note(method, [("this policy", support)], currency)
        note = positivity
        if method in ("ips", "snips") and total <= 0:
            # No logged decision is one the policy could take: IPS would say a sure $0, SNIPS 0 / 0.
            estimate, note = None, no_weight_note(method)
        elif method in ("ips", "snips") and material:
            # Decisions no logged row can weigh: IPS would count them as $0, SNIPS as the others' mean.
            estimate = None
        elif method == "ips":
            estimate = float(terms.ips.mean())
            se = _cluster_se(terms.ips - estimate, terms.clusters)
        elif method == "snips":
            estimate = float(np.sum(terms.ips) / total)
            se = _cluster_se(w * (terms.rewards - estimate) / (total / n), terms.clusters)
        elif method == "dr":
            if terms.dr is None:
                raise ConfigError("DR needs expected_values (an outcome model's q(x, a) for every row and action)")
            estimate = float(terms.dr.mean())
            se = _cluster_se(terms.dr - estimate, terms.clusters)
        else:
            raise ConfigError(f"unknown OPE method {method!r}: use 'ips', 'snips' or 'dr'")
        dominated = None
        if estimate is not None and not (method == "dr" and material):
            dominated = dominance_note(_method_parts(method, terms), terms.clusters, estimate, se)
        out.append(
            _value(
                policy=name,
                method=method,
                estimate=estimate,
                se=se,
                z=z,
                n=n,
                level=level,
                objective=objective,
                ess=ess,
                matched=matched,
                note=note,
                unsupported=unsupported,
                interval=not (method == "dr" and material),
                dominated=dominated,
            )
        )
    return out


def _check(level: float, methods: Sequence[str], expected_values: pl.DataFrame | None) -> tuple[Method, ...]:
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level!r}")
    chosen: list[Method] = []
    for method in methods:
        if method not in ("ips", "snips", "dr"):
            raise ConfigError(f"unknown OPE method {method!r}: use 'ips', 'snips' or 'dr'")
        if method == "dr" and expected_values is None:
            continue
        chosen.append(method)  # type: ignore[arg-type]
    return tuple(chosen)


def evaluate_policy(
    rows: pl.DataFrame,
    policy: pl.DataFrame,
    playbook: Playbook,
    *,
    objective: str | None = None,
    expected_values: pl.DataFrame | None = None,
    propensity: F64 | Literal["logged", "estimate"] = "logged",
    methods: Sequence[Method] = ("ips", "snips", "dr"),
    level: float = 0.95,
    clip: tuple[float, float] = (1e-3, 1.0),
    rewards: F64 | None = None,
    name: str = "policy",
    random_state: int = 0,
    vocabulary: FeatureVocabulary | None = None,
    as_logged: NDArray[np.bool_] | None = None,
) -> list[PolicyValue]:
    """Estimate a policy's value per decision from logged decisions: IPS, SNIPS and DR, with intervals.

    With ``w = π(A | x) / e(A | x)`` (the policy's probability of the logged action over the
    logging propensity) and ``r`` the row's realised value:

    - **IPS**: the mean of ``w · r``;
    - **SNIPS**: ``Σ w · r / Σ w`` (self-normalised: lower variance, slightly biased);
    - **DR**: the mean of ``Σ_a π(a | x) q(x, a) + w · (r − q(x, A))`` with ``q`` an outcome
      model's expected value of each action (``expected_values``, e.g.
      :meth:`~nextmove.models.effect.EffectModel.expected_values` of a model fitted on *earlier*
      data); unbiased if either the propensities or ``q`` are right.

    Intervals are a normal approximation on the per-row terms (SNIPS: on its linearisation), with
    the variance summed by account, so an account's rows are not treated as independent.

    Parameters
    ----------
    rows
        Logged decisions whose horizon is over: ``account_id`` (, ``decision_ts``), ``action_id``,
        ``propensity`` and the labels (a training set's uncensored, logged rows).
    policy
        ``account_id`` (, ``decision_ts``), ``action_id``, ``probability`` — see
        :mod:`nextmove.measure.policy` for the learned, logged, default, do-nothing and table
        policies. Every row needs at least one entry.
    playbook
        Objectives and costs that make the row value.
    objective
        Evaluate one objective's dollars (no cost) instead of the total value.
    expected_values
        ``account_id`` (, ``decision_ts``), ``action_id``, ``expected_value_usd`` for DR; without
        it DR is skipped.
    propensity
        ``logged`` (the ``propensity`` column; rows without one are estimated), ``estimate`` (a
        cross-fitted model of the logging policy on these rows) or one value per row.
    methods
        Which estimators.
    level
        Confidence level of the intervals.
    clip
        Propensities are clipped to this range (a logged 0 would otherwise divide by zero).
    rewards
        Per-row values to use instead of :func:`row_value_usd`.
    name
        The policy's name in the results.
    random_state
        Seed of the propensity model, when one is fitted.
    vocabulary
        The rows' vocabulary (:func:`~nextmove.features.training_vocabulary` of the training set
        they come from), to find each objective's label columns; without it, each kind's stem.
    as_logged
        One flag per row: where True, the policy's action is not known and it is taken to do what
        the log did there (each method's term is the row's own value, its weight 1; the policy's
        table is not read). For the lifecycle default at decisions whose stage then is not known
        (:func:`evaluate_offline`).

    Returns
    -------
    list of PolicyValue
        One per method, in ``methods`` order.

    Raises
    ------
    ConfigError
        If a column is missing, the policy leaves rows without an action, or a setting is invalid.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> rows = pl.DataFrame(
    ...     {
    ...         "account_id": ["a", "b", "c", "d"],
    ...         "action_id": ["none", "upsell_call", "none", "upsell_call"],
    ...         "propensity": [0.5, 0.5, 0.5, 0.5],
    ...         "arr": [1000.0] * 4,
    ...         "y_churn": [0, 0, 0, 0],
    ...         "y_expansion_value": [0.0, 500.0, 0.0, 300.0],
    ...         "y_advocacy": [0] * 4,
    ...         "y_recovery": [0] * 4,
    ...         "y_onboarded": [0] * 4,
    ...     }
    ... )
    >>> policy = pl.DataFrame({"account_id": ["a", "b", "c", "d"], "action_id": ["upsell_call"] * 4})
    >>> [round(v.estimate, 1) for v in evaluate_policy(rows, policy, load_playbook(), methods=("ips", "snips"))]
    [280.0, 280.0]
    """
    check_clip(clip)
    chosen = _check(level, methods, expected_values)
    policy = policy if "probability" in policy.columns else policy.with_columns(pl.lit(1.0).alias("probability"))
    terms = _terms(
        rows,
        policy,
        playbook,
        objective=objective,
        expected_values=expected_values,
        propensity=propensity,
        clip=clip,
        rewards=rewards,
        random_state=random_state,
        vocabulary=vocabulary,
        as_logged=as_logged,
    )
    return _summaries(terms, chosen, name=name, objective=objective, level=level, currency=playbook.currency)


def policy_difference(
    rows: pl.DataFrame,
    policy: pl.DataFrame,
    baseline: pl.DataFrame,
    playbook: Playbook,
    *,
    objective: str | None = None,
    expected_values: pl.DataFrame | None = None,
    propensity: F64 | Literal["logged", "estimate"] = "logged",
    methods: Sequence[Method] = ("ips", "snips", "dr"),
    level: float = 0.95,
    clip: tuple[float, float] = (1e-3, 1.0),
    rewards: F64 | None = None,
    name: str = "policy - baseline",
    random_state: int = 0,
    vocabulary: FeatureVocabulary | None = None,
    baseline_as_logged: NDArray[np.bool_] | None = None,
) -> list[PolicyValue]:
    """The paired difference of two policies' values on the same logged rows, with its interval.

    Each method's per-row terms of ``baseline`` are subtracted from those of ``policy`` before
    the variance is taken, so what the two share (the same rows, the same outcomes) cancels. The
    SNIPS difference is the difference of the two SNIPS estimates, its variance from the
    difference of their linearisations. Arguments as in :func:`evaluate_policy`;
    ``baseline_as_logged`` is the baseline's ``as_logged``.

    Where either policy takes actions the rows never took on more than
    :data:`MAX_UNSUPPORTED_SHARE` of them, the IPS and SNIPS differences are None and the DR one has
    no interval, as in :func:`evaluate_policy`.

    Returns
    -------
    list of PolicyValue
        One per method; ``effective_sample_size`` and ``matched_share`` are the smaller of the two
        policies' (a difference stands on both), ``unsupported_share`` the larger.
    """
    check_clip(clip)
    chosen = _check(level, methods, expected_values)
    common: dict[str, Any] = {
        "objective": objective,
        "expected_values": expected_values,
        "propensity": propensity,
        "clip": clip,
        "rewards": rewards,
        "random_state": random_state,
        "vocabulary": vocabulary,
    }
    # Estimate (or read) the propensities once, so both policies are weighed by the same ones.
    common["propensity"] = _propensities(rows, propensity, random_state)
    a = _terms(rows, _with_probability(policy), playbook, **common)
    b = _terms(rows, _with_probability(baseline), playbook, **common, as_logged=baseline_as_logged)
    z = NormalDist().inv_cdf((1 + level) / 2)
    n = len(a.weights)
    out: list[PolicyValue] = []
    ta, tb = float(a.weights.sum()), float(b.weights.sum())
    ess_a = float(ta**2 / np.sum(a.weights**2)) if np.sum(a.weights**2) > 0 else 0.0
    # The interval rests on both policies' weights: the note names the policy with the smaller sample,
    # and the difference shows the smaller sample and match (one policy's 100 % would hide the other's 50 %).
    ess_b = float(tb**2 / np.sum(b.weights**2)) if np.sum(b.weights**2) > 0 else 0.0
    smaller, which = (ess_a, "the policy") if ess_a <= ess_b else (ess_b, "the baseline")
    matched = min(float(a.matched.mean()), float(b.matched.mean()))
    sides = [("the policy", a.support), ("the baseline", b.support)]
    unsupported = (max(a.support.share, b.support.share), tuple(sorted({*a.support.actions, *b.support.actions})))
    for method in chosen:
        estimate: float | None
        se = float("nan")
        note, material = _support_note(method, sides, playbook.currency)
        if method in ("ips", "snips") and (ta <= 0 or tb <= 0):
            estimate = None
            who = "either policy" if ta <= 0 and tb <= 0 else ("the policy" if ta <= 0 else "the baseline")
            note = no_weight_note(method, who)
        elif method in ("ips", "snips") and material:
            estimate = None
        elif method == "ips":
            diff = a.ips - b.ips
            estimate = float(diff.mean())
            se = _cluster_se(diff - estimate, a.clusters)
        elif method == "dr":
            if a.dr is None or b.dr is None:
                raise ConfigError("DR needs expected_values")
            diff = a.dr - b.dr
            estimate = float(diff.mean())
            se = _cluster_se(diff - estimate, a.clusters)
        else:
            va, vb = float(a.ips.sum() / ta), float(b.ips.sum() / tb)
            estimate = va - vb
            influence = a.weights * (a.rewards - va) / (ta / n) - b.weights * (b.rewards - vb) / (tb / n)
            se = _cluster_se(influence, a.clusters)
        dominated = None
        if estimate is not None and not (method == "dr" and material):
            pa, pb = _method_parts(method, a), _method_parts(method, b)
            if method == "snips":
                parts = [*pa, *[(num, den, -sign) for num, den, sign in pb]]
            else:
                parts = [(pa[0][0] - pb[0][0], pa[0][1], 1.0)]
            dominated = dominance_note(parts, a.clusters, estimate, se, difference=True)
        out.append(
            _value(
                policy=name,
                method=method,
                estimate=estimate,
                se=se,
                z=z,
                n=n,
                level=level,
                objective=objective,
                ess=smaller,
                matched=matched,
                note=note,
                which=which,
                unsupported=unsupported,
                interval=not (method == "dr" and material),
                dominated=dominated,
            )
        )
    return out


def _with_probability(policy: pl.DataFrame) -> pl.DataFrame:
    return policy if "probability" in policy.columns else policy.with_columns(pl.lit(1.0).alias("probability"))


# ---- offline evaluation of a book: fit on one part, evaluate every policy on the other ----------


@dataclass(frozen=True)
class OfflineEvaluation:
    """Every policy's off-policy value on held-out logged decisions, with the diagnostics behind it.

    The effect and outcome models are fitted on the training part (decisions whose horizon closed
    by ``as_of``, of the accounts not held out) and every estimate is made on the evaluation part
    (later decisions, or the held-out accounts' decisions, whose horizon closed by
    ``observed_until``).
    """

    split: Literal["time", "accounts", "time and accounts"]
    as_of: datetime | None
    """Training decisions' horizons closed by then; evaluation decisions were taken from then on."""
    holdout_fraction: float | None
    """Share of accounts held out for evaluation (by a stable hash of the id and ``seed``)."""
    observed_until: datetime
    """The book's latest data."""
    training_rows: int
    training_accounts: int
    evaluation_rows: int
    evaluation_accounts: int
    evaluation_from: datetime
    evaluation_to: datetime
    level: float
    policies: list[PolicyValue]
    """Per policy and method: learned, logged, lifecycle_default, do_nothing and the external one."""
    differences: list[PolicyValue]
    """Paired differences (``learned - lifecycle_default``, ``learned - do_nothing`` …)."""
    training_overlap: OverlapReport
    """Overlap of the training decisions (the effect model's)."""
    evaluation_overlap: OverlapReport
    """Overlap of the evaluation decisions: how much of each arm the estimates stand on."""
    outcome_accuracy: dict[str, ProbabilityAccuracy]
    """Per outcome kind: the outcome model's accuracy on the evaluation decisions."""
    outcome_fit: dict[str, OutcomeFitSummary]
    """Per outcome kind: how the outcome model was fitted (and its own later-window validation)."""
    skipped: dict[str, str]
    """Outcome kinds without a model, and why."""
    notes: list[str]
    policy_tables: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)
    """Each evaluated policy as a table over the evaluation decisions (not in :meth:`to_dict`)."""

    def value(self, policy: str, method: Method) -> PolicyValue:
        """The estimate of one policy by one method.

        Raises
        ------
        KeyError
            If there is no such estimate.
        """
        for v in self.policies:
            if v.policy == policy and v.method == method:
                return v
        raise KeyError(f"no {method} estimate of policy {policy!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every estimate, interval and diagnostic."""
        out: dict[str, Any] = json_ready(
            {
                "split": self.split,
                "as_of": self.as_of,
                "holdout_fraction": self.holdout_fraction,
                "observed_until": self.observed_until,
                "training": {"rows": self.training_rows, "accounts": self.training_accounts},
                "evaluation": {
                    "rows": self.evaluation_rows,
                    "accounts": self.evaluation_accounts,
                    "from": self.evaluation_from,
                    "to": self.evaluation_to,
                },
                "level": self.level,
                "interval_method": "normal approximation on the per-row terms, variance summed by account",
                "policies": [v.to_dict() for v in self.policies],
                "differences": [v.to_dict() for v in self.differences],
                "overlap": {
                    "training": self.training_overlap.to_dict(),
                    "evaluation": self.evaluation_overlap.to_dict(),
                },
                "outcome_models": {
                    kind: {
                        "accuracy": asdict(self.outcome_accuracy[kind]) if kind in self.outcome_accuracy else None,
                        "fit": self.outcome_fit[kind].to_dict() if kind in self.outcome_fit else None,
                    }
                    for kind in [*self.outcome_fit, *[k for k in self.outcome_accuracy if k not in self.outcome_fit]]
                },
                "skipped": dict(self.skipped),
                "notes": list(self.notes),
            }
        )
        return out


Progress = Callable[[str], None]

BUILT_IN_POLICIES = ("learned", "logged", "lifecycle_default", "do_nothing")
"""The policies :func:`evaluate_offline` always evaluates (an external one needs another name)."""


def split_decisions(
    book: Book,
    playbook: Playbook,
    *,
    as_of: datetime | None = None,
    holdout_fraction: float | None = None,
    seed: int = 0,
    observed_until: datetime | date | str | None = None,
    notes: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, datetime | None, datetime]:
    """The training and evaluation decisions of a book, split by time, by account, or both.

    One training set is built as of the book's latest data; from it

    - training rows are those whose horizon closed by ``as_of`` (their labels are then exactly
      what was known at ``as_of``), of the accounts not held out;
    - evaluation rows are those taken at or after ``as_of`` whose horizon closed by the book's
      latest data, of the held-out accounts when ``holdout_fraction`` is given.

    Without either, ``as_of`` leaves the evaluation a third of the decision times that can be
    used: training decisions need their horizon closed by ``as_of`` and evaluation decisions by the
    book's latest data, so of the span of decision times less two horizons, the first two thirds
    train and the last third evaluates.

    ``observed_until`` is how far the book's data reaches (default: its latest data): outcomes after
    it do not count, and the outcomes are taken as complete up to it. A date, or text of a date
    alone (``"2026-01-14"``), is that whole day, up to the midnight (UTC) after it, as ``nextmove
    evaluate --until`` reads one; a datetime is that instant (naive: UTC)
    (:func:`~nextmove.book.outcomes_until.until_instant`).

    When ``notes`` is given, the training set's notes go to it: each outcome kind labelled by window
    although the outcomes credit it to touches (:meth:`~nextmove.features.WindowFallback.note`).

    Returns
    -------
    (training, evaluation, as_of, observed_until)

    Raises
    ------
    ConfigError
        If ``holdout_fraction`` is not in (0, 1) or either part is empty (the message says what
        to change).
    """
    until = until_instant(observed_until) if observed_until is not None else latest_data_time(book)
    horizon = timedelta(days=playbook.horizon_days)
    if holdout_fraction is not None and (isinstance(holdout_fraction, bool) or not 0 < float(holdout_fraction) < 1):
        raise ConfigError(f"holdout_fraction must be in (0, 1), e.g. 0.3, got {holdout_fraction!r}")
    # An observed_until given says the outcomes are known up to it (Hillstrom's all sit a week after the
    # campaign, its two-week window seen whole); without it, they are up to where they end.
    known = until if observed_until is not None else None
    if known is not None and notes is not None:
        lag = outcomes_lag(book_spans(book), until)
        if lag is not None and lag[0] < until:  # what loading's note on them says (not learned from) is not so
            notes.append(complete_until_note(lag, option_time(until), option_time(lag[0])))
    rows = build_training_set(book, playbook, as_of=until, notes=notes, outcomes_until=known)
    split_at = to_utc(as_of) if as_of is not None else None
    if as_of is None and holdout_fraction is None:
        split_at = _default_split(rows, until, horizon)
    train = pl.lit(True)
    evaluate = ~pl.col("censored")
    if split_at is not None:
        train = train & (pl.col("decision_ts") + horizon <= split_at)
        evaluate = evaluate & (pl.col("decision_ts") >= split_at)
    if holdout_fraction is not None:
        accounts = rows.get_column("account_id").unique().sort()
        held = accounts.filter(pl.Series(stable_uniform(accounts.to_list(), seed, "holdout") < holdout_fraction))
        train = train & ~pl.col("account_id").is_in(held.implode())
        evaluate = evaluate & pl.col("account_id").is_in(held.implode())
    training = rows.filter(train)
    evaluation = rows.filter(evaluate)
    where = f"as of {split_at:%Y-%m-%d}" if split_at is not None else "in the book"
    if training.height == 0:
        raise ConfigError(
            f"no decision {where} has its {playbook.horizon_days}-day horizon over"
            + (" among the training accounts" if holdout_fraction is not None else "")
            + ": nothing to fit on; pass a later --as-of"
            + ("" if holdout_fraction is not None else ", or split by account with --holdout-fraction")
        )
    if evaluation.height == 0:
        raise ConfigError(
            f"no decision from {split_at:%Y-%m-%d} on has its {playbook.horizon_days}-day horizon over by the "
            f"book's latest data ({until:%Y-%m-%d}): nothing to evaluate on; pass an earlier --as-of"
            + ("" if holdout_fraction is not None else ", or split by account with --holdout-fraction")
            if split_at is not None
            else "the held-out accounts have no decision whose horizon is over: pass a larger --holdout-fraction"
        )
    return training, evaluation, split_at, until


def _default_split(rows: pl.DataFrame, until: datetime, horizon: timedelta) -> datetime:
    """The split time that leaves a third of the usable decision span to evaluation."""
    first = rows.get_column("decision_ts").min()
    start = to_utc(first) if isinstance(first, datetime) else until
    usable = (until - start) - 2 * horizon
    if usable <= timedelta(0):
        raise ConfigError(
            f"the book's decisions span {(until - start).days} days, and a split in time needs more than two "
            f"horizons ({2 * horizon.days} days): one to close the training decisions' outcomes, one the "
            "evaluation decisions'; pass --holdout-fraction to split by account instead"
        )
    return until - horizon - usable / 3


def _external_policy(table: pl.DataFrame, rows: pl.DataFrame, playbook: Playbook) -> pl.DataFrame:
    """An external policy table, checked, that gives an action for every evaluation row."""
    policy = table_policy(table, actions=playbook.action_ids)
    keys = policy_keys(policy)
    if "decision_ts" in keys:
        policy = policy.with_columns(pl.col("decision_ts").cast(rows.schema["decision_ts"]))
    uncovered = rows.select(keys).unique().join(policy.select(keys).unique(), on=keys, how="anti")
    if uncovered.height:
        shown = ", ".join(str(v) for v in uncovered.get_column("account_id").unique().sort().head(3).to_list())
        total = rows.select(keys).unique().height
        raise ConfigError(
            f"the policy table gives no action for {uncovered.height} of the {total:,} evaluated "
            f"{'decisions' if 'decision_ts' in keys else 'accounts'} (e.g. {shown}); add rows for them "
            "(action_id 'none' to leave them alone)"
        )
    return policy


def _recorded(
    rows: pl.DataFrame,
    playbook: Playbook,
    recorded_defaults: pl.DataFrame | Callable[[datetime, datetime], pl.DataFrame] | None,
) -> pl.DataFrame | None:
    """The evaluation decisions' recorded defaults (of actions the playbook has), or None without records."""
    if recorded_defaults is None:
        return None
    if callable(recorded_defaults):
        ts = rows.get_column("decision_ts")
        first, last = to_utc(ts.min()), to_utc(ts.max())  # type: ignore[arg-type]
        recorded_defaults = recorded_defaults(first - timedelta(days=playbook.horizon_days), last + timedelta(days=1))
    matched = recorded_defaults_at(rows, recorded_defaults, within_days=playbook.horizon_days)
    return matched.filter(pl.col("default_action_id").is_in([NO_ACTION, *playbook.action_ids]))


def _default_source_note(rows: pl.DataFrame, recorded: pl.DataFrame | None) -> str:
    """Where the lifecycle default at the evaluation decisions comes from."""
    today = (
        "reads each account's lifecycle_stage from the accounts table (today's stage: the book holds no history of "
        "stages)"
    )
    if recorded is None or recorded.is_empty():
        return f"lifecycle_default {today}"
    decisions = rows.select("account_id", "decision_ts").n_unique()
    gap = recorded.select((pl.col("decision_ts") - pl.col("recorded_ts")).max()).item()
    days = max(0, math.ceil(gap.total_seconds() / 86400)) if isinstance(gap, timedelta) else 0
    since = (
        "a run of its own day"
        if days == 0
        else f"its account's latest run, at most {days} day{'' if days == 1 else 's'} before"
    )
    text = (
        f"lifecycle_default is the default the store's runs recorded at {recorded.height:,} of the {decisions:,} "
        f"evaluated decisions (each from {since})"
    )
    return text if recorded.height == decisions else f"{text}; at the others it {today}"


@dataclass(frozen=True)
class _StageUnknown:
    """The evaluation rows at which the lifecycle default is not known (internal): its stage then is not.

    ``terms`` are what each of those rows' IPS term would be if the default took its logged action
    there (``r / e``; 0 when no default takes that action), ``logged`` its value as logged (``r``):
    whatever the default was, its term lies between 0 and ``terms``.
    """

    mask: NDArray[np.bool_]
    stages: list[tuple[str | None, int]]
    kinds: list[str]
    terms: F64
    logged: F64
    currency: str
    remedy: str = POLICY_FILE_REMEDY

    @classmethod
    def of(
        cls,
        rows: pl.DataFrame,
        unknown: pl.DataFrame | None,
        playbook: Playbook,
        common: Mapping[str, Any],
        remedy: str = POLICY_FILE_REMEDY,
    ) -> _StageUnknown | None:
        if unknown is None or unknown.is_empty():
            return None
        keys = ["account_id", "decision_ts"]
        flagged = unknown.select(*keys, pl.lit(True).alias("_unknown"), "lifecycle_stage")
        joined = rows.select(pl.col("account_id").cast(pl.String), "decision_ts").join(
            flagged, on=keys, how="left", maintain_order="left"
        )
        mask = joined.get_column("_unknown").fill_null(False).to_numpy().astype(bool)
        if not mask.any():
            return None
        counts = joined.filter(pl.col("_unknown")).group_by("lifecycle_stage").len()
        r = row_value_usd(rows, playbook, vocabulary=common.get("vocabulary"))
        e = clip_propensities(np.asarray(common["propensity"], dtype=np.float64), common["clip"])
        defaults = {NO_ACTION, *(a.id for a in playbook.actions if a.default_for_stages)}
        taken = rows.get_column("action_id").cast(pl.String).fill_null(NO_ACTION).is_in(sorted(defaults)).to_numpy()
        return cls(
            mask=mask,
            stages=[(s, int(n)) for s, n in counts.iter_rows()],
            kinds=terminal_outcome_kinds(playbook),
            terms=np.where(taken, r / e, 0.0)[mask],
            logged=r[mask],
            currency=playbook.currency,
            remedy=remedy,
        )

    def values(
        self,
        rows: pl.DataFrame,
        common: Mapping[str, Any],
        estimate: Callable[..., list[PolicyValue]],
        *,
        difference: bool = False,
    ) -> list[PolicyValue]:
        """``estimate`` with the default counted as the log where it is not known; no estimates where those
        decisions could move it by more than :data:`UNKNOWN_STAGE_SE` standard errors."""
        total, unknown = rows.height, int(self.mask.sum())
        out = estimate(rows, **common, **{"baseline_as_logged" if difference else "as_logged": self.mask})
        ips = next((v for v in out if v.method == "ips"), None)
        bounds: tuple[float, float] | None = None
        share = unknown / total
        material = share > MAX_UNSUPPORTED_SHARE  # without an IPS value to bound (the history never took its actions)
        if ips is not None and ips.estimate is not None:
            # The default's IPS with the unknown rows counted as logged, less them, plus the least or most they can add.
            known = ips.estimate + (1 if difference else -1) * float(self.logged.sum()) / total
            least, most = float(np.minimum(self.terms, 0).sum()) / total, float(np.maximum(self.terms, 0).sum()) / total
            bounds = (known - most, known - least) if difference else (known + least, known + most)
            material = ips.stderr is None or bounds[1] - bounds[0] > UNKNOWN_STAGE_SE * ips.stderr
        note = unknown_stage_note(
            unknown,
            total,
            self.kinds,
            self.stages,
            bounds=bounds,
            material=material,
            difference=difference,
            currency=self.currency,
            remedy=self.remedy,
        )
        if material:
            return [
                replace(v, estimate=None, stderr=None, low=None, high=None, note=note, unknown_share=share) for v in out
            ]
        return [replace(v, note=_joined(v.note, note), unknown_share=share) for v in out]


def lifecycle_default_at(
    rows: pl.DataFrame,
    book: Book,
    playbook: Playbook,
    *,
    eligible: pl.DataFrame | None = None,
    recorded_defaults: pl.DataFrame | Callable[[datetime, datetime], pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """The lifecycle default at logged decisions, the decisions at which it is not known, and where it comes from.

    The default recorded when a decision was made, where ``recorded_defaults`` holds it (as
    :func:`evaluate_offline` takes it); else the one of the account's stage today, except at
    decisions whose account left after them (:func:`~nextmove.measure.policy.left_after_decision`)
    and no record says: there its stage then is not known, unless no stage's default is
    ``eligible`` there (the default then does nothing whatever the stage). Value it with
    :func:`default_values`.

    Returns
    -------
    (policy, unknown, note)
        The policy table (:func:`~nextmove.measure.policy.lifecycle_default_policy`); ``account_id,
        decision_ts, lifecycle_stage`` of the decisions whose default is not known; a note saying
        where the default comes from.
    """
    recorded = _recorded(rows, playbook, recorded_defaults)
    policy = lifecycle_default_policy(rows, playbook, eligible=eligible, recorded=recorded)
    keys = ["account_id", "decision_ts"]
    unknown = left_after_decision(rows, book, playbook)
    if recorded is not None:
        unknown = unknown.join(recorded, on=keys, how="anti")
    if eligible is not None and "decision_ts" in eligible.columns:
        # Where no stage's default is eligible, the default does nothing whatever the stage was: it is known.
        defaults = [a.id for a in playbook.actions if a.default_for_stages]
        possible = eligible.filter(pl.col("action_id").cast(pl.String).is_in(defaults)).select(
            pl.col("account_id").cast(pl.String), pl.col("decision_ts").cast(unknown.schema["decision_ts"])
        )
        unknown = unknown.join(possible.unique(), on=keys, how="semi")
    return policy, unknown, _default_source_note(rows, recorded)


def default_values(
    rows: pl.DataFrame,
    unknown: pl.DataFrame,
    playbook: Playbook,
    estimate: Callable[..., list[PolicyValue]],
    common: Mapping[str, Any],
    *,
    difference: bool = False,
    remedy: str = POLICY_FILE_REMEDY,
) -> list[PolicyValue]:
    """``estimate(rows, **common)`` of the lifecycle default, or of a difference with it as the baseline,
    where its action is not known at the decisions ``unknown`` (:func:`lifecycle_default_at`).

    There it is taken to do what the log did, and where those decisions could move its IPS value by
    more than :data:`UNKNOWN_STAGE_SE` standard errors no method has an estimate; the note says
    why (:func:`unknown_stage_note`, ending with ``remedy``). ``estimate`` is :func:`evaluate_policy`
    or :func:`policy_difference` with all but the rows and ``common`` bound; ``common`` holds at
    least ``propensity`` (the raw logging propensities) and ``clip``.
    """
    stage_unknown = _StageUnknown.of(rows, unknown, playbook, common, remedy)
    if stage_unknown is None:
        return estimate(rows, **common)
    return stage_unknown.values(rows, common, estimate, difference=difference)


class RecordingRun(RunLike, Protocol):
    """What :func:`stored_defaults` reads of a stored run (:class:`nextmove.store.RunRecord`)."""

    @property
    def backtest(self) -> bool: ...


def stored_defaults(
    store: RecommendationValues,
    runs: Iterable[RecordingRun],
    start: datetime,
    end: datetime,
    *,
    batch_rows: int = 10_000,
) -> pl.DataFrame:
    """The lifecycle default each of ``runs`` decided from ``start`` up to ``end`` recorded for its accounts.

    A run records with each recommendation the account's default at its ``as_of``
    (``default_action_id``: the action of the stage the account was in then); decisions served
    online from a run take that run's. Only that column and the account are read, never a receipt.
    A backtest (``backtest``: a run as of a time before its book's data ends) read each account's
    stage of today, so the default it recorded is not the one of its ``as_of``: its runs are skipped.

    Returns
    -------
    polars.DataFrame
        ``account_id, ts, default_action_id``, ``ts`` the run's ``as_of``; runs without one are skipped.
    """
    schema = {"account_id": pl.String, "default_action_id": pl.String}
    fields = {"account_id": ("account_id",), "default_action_id": ("default_action_id",)}
    frames = [pl.DataFrame(schema={**schema, "ts": pl.Datetime("us", "UTC")})]
    for run in runs:
        if run.as_of is None or run.backtest or not start <= to_utc(run.as_of) < end:
            continue
        when = to_utc(run.as_of)
        for batch in store.recommendation_values(run.run_id, fields, batch_rows=batch_rows):
            frame = pl.DataFrame(batch, schema=schema, orient="row")
            frames.append(frame.with_columns(pl.lit(when, dtype=pl.Datetime("us", "UTC")).alias("ts")))
    return pl.concat(frames, how="vertical").select("account_id", "ts", "default_action_id")


def _unique_by_key(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [c for c in ("account_id", "decision_ts") if c in frame.columns]
    return frame.unique([*keys, "action_id"], keep="first", maintain_order=True)


def evaluate_offline(
    book: Book,
    playbook: Playbook,
    *,
    as_of: datetime | None = None,
    holdout_fraction: float | None = None,
    observed_until: datetime | date | str | None = None,
    policy: pl.DataFrame | None = None,
    policy_name: str = "external",
    level: float = 0.95,
    clip: tuple[float, float] = (1e-3, 1.0),
    seed: int = 0,
    effect_params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    recorded_defaults: pl.DataFrame | Callable[[datetime, datetime], pl.DataFrame] | None = None,
) -> OfflineEvaluation:
    """Fit on one part of a book's history and estimate every policy's value on the other.

    The decisions are split by :func:`split_decisions`. On the training part an
    :class:`~nextmove.models.effect.EffectModel` (the learned policy and the DR outcome model) and
    :class:`~nextmove.models.outcome.OutcomeModels` are fitted. On the evaluation part, IPS, SNIPS
    and DR estimates with intervals (:func:`evaluate_policy`) of

    - ``learned``: each decision's eligible action of highest projected value (``none`` unless
      one is worth more than 0);
    - ``logged``: what the history did (IPS and SNIPS: the log knows only the probability of the
      action it took);
    - ``lifecycle_default``: the playbook's ``default_for_stages`` action (when the accounts have
      ``lifecycle_stage``): the default recorded when the decision was made, where
      ``recorded_defaults`` holds it; else the one of the account's stage today, except at decisions
      whose account left after them (:func:`~nextmove.measure.policy.left_after_decision`), where
      its stage then is not known: there it is taken to do what the log did, and over
      :data:`MAX_UNSUPPORTED_SHARE` of the decisions it has no estimate (:func:`unknown_stage_note`);
    - ``do_nothing``;
    - ``policy`` (when given): an external table ``account_id`` (, ``decision_ts``),
      ``action_id``, ``probability``;

    and the paired differences of the learned (and external) policy against the default and
    doing nothing (:func:`policy_difference`). The propensities of the evaluation decisions are
    the log's (estimated once, cross-fitted, where missing).

    Parameters
    ----------
    book, playbook
        The book of business and its playbook.
    as_of, holdout_fraction, seed, observed_until
        The split (see :func:`split_decisions`); ``seed`` also seeds the models.
    policy, policy_name
        An external policy table and its name in the results.
    level
        Confidence level of the intervals.
    clip
        Propensities are clipped to this range for weighting.
    effect_params
        Settings of the :class:`~nextmove.models.effect.EffectModel` (e.g. ``{"n_folds": 3}``).
    progress
        Called with a short description of each step.
    recorded_defaults
        The lifecycle default as recorded when decisions were made: ``account_id, ts,
        default_action_id`` (e.g. :func:`stored_defaults` of the store's runs of the book, which skips
        backtests'), or a function of the first and last time such a record can count for the
        evaluation decisions that returns it. Matched by
        :func:`~nextmove.measure.policy.recorded_defaults_at` within the playbook's horizon; a record
        naming an action the playbook lacks is no record.

    Returns
    -------
    OfflineEvaluation

    Raises
    ------
    ConfigError
        If the split leaves nothing to fit or evaluate on, or the external policy is invalid or
        leaves evaluated decisions without an action.
    """
    say = progress or (lambda _step: None)
    check_clip(clip)
    if policy is not None and policy_name in BUILT_IN_POLICIES:
        raise ConfigError(f"policy_name {policy_name!r} is taken by a built-in policy; choose another name")
    say("Building the decisions of the book…")
    notes: list[str] = [note] if (note := missing_arr_note(book, playbook)) is not None else []
    training, rows, split_at, until = split_decisions(
        book,
        playbook,
        as_of=as_of,
        holdout_fraction=holdout_fraction,
        seed=seed,
        observed_until=observed_until,
        notes=notes,
    )
    external = _external_policy(policy, rows, playbook) if policy is not None else None
    say(f"Fitting the effect model on {training.height:,} decisions…")
    # The columns of the split's training set: a kind spelt unlike its stem (Cancel beside cancel) has its own.
    vocab = training_vocabulary(book, playbook, as_of=until)
    # Accounts columns written as accounts leave tell how past decisions ended: never learned from.
    guard = guard_leaks(book, playbook, until, vocab)
    notes.extend(guard.notes())
    params: dict[str, Any] = {
        "random_state": seed,
        "variants": False,
        "n_draws": 20,
        "vocabulary": vocab,
        **(effect_params or {}),
    }
    effect = EffectModel(playbook, **guard.effect_params(params)).fit(training)
    say(f"Fitting the outcome models on {training.height:,} decisions…")
    outcomes = OutcomeModels(playbook, template=guard.outcome_template(None), vocabulary=vocab).fit(training)
    say(f"Projecting every action for {rows.height:,} evaluation decisions…")
    q = _unique_by_key(effect.expected_values(rows))
    eligible = eligible_actions(rows, playbook)
    policies: dict[str, pl.DataFrame] = {
        "learned": learned_policy(_unique_by_key(effect.project(rows).values), eligible=eligible)
    }
    unknown: pl.DataFrame | None = None
    if "lifecycle_stage" in rows.columns:
        policies["lifecycle_default"], unknown, source = lifecycle_default_at(
            rows, book, playbook, eligible=eligible, recorded_defaults=recorded_defaults
        )
        notes.append(source)
    else:
        notes.append("lifecycle_default skipped: the accounts have no lifecycle_stage")
    policies["do_nothing"] = do_nothing_policy(rows)
    if external is not None:
        policies[policy_name] = external
    say("Estimating the propensities of the evaluation decisions…")
    logging, estimated = logging_propensities(
        rows, playbook, clip=clip, random_state=seed, exclude=guard.exclude(PROPENSITY_EXCLUDE)
    )
    propensity = logging.raw_propensity_
    if estimated:
        notes.append(estimated)
    common: dict[str, Any] = {
        "propensity": propensity,
        "level": level,
        "clip": clip,
        "random_state": seed,
        "vocabulary": vocab,
    }
    say("Estimating the value of every policy…")
    values: list[PolicyValue] = []
    for name, table in policies.items():
        estimate = partial(evaluate_policy, policy=table, playbook=playbook, expected_values=q, name=name)
        if name == "lifecycle_default" and unknown is not None:
            values += default_values(rows, unknown, playbook, estimate, common)
        else:
            values += estimate(rows, **common)
    # The logged policy's table holds each row's own action with the propensity it is weighted by (the
    # log's, or the estimate; clipped), so its IPS weights are 1 and its value the on-policy mean.
    logged = logged_policy(rows.with_columns(pl.Series("propensity", clip_propensities(propensity, clip))))
    values += evaluate_policy(rows, logged, playbook, methods=("ips", "snips"), name="logged", **common)
    differences: list[PolicyValue] = []
    for name in ("learned", *([policy_name] if external is not None else [])):
        for baseline in ("lifecycle_default", "do_nothing"):
            if baseline not in policies:
                continue
            difference = partial(
                policy_difference,
                policy=policies[name],
                baseline=policies[baseline],
                playbook=playbook,
                expected_values=q,
                name=f"{name} - {baseline}",
            )
            if baseline == "lifecycle_default" and unknown is not None:
                differences += default_values(rows, unknown, playbook, difference, common, difference=True)
            else:
                differences += difference(rows, **common)
    accuracy: dict[str, ProbabilityAccuracy] = {}
    if outcomes.kinds:
        predicted = outcomes.predict(rows, top_k=0)
        labels = {t.kind: t.label for t in outcomes.targets_}
        for kind in outcomes.kinds:
            y = rows.get_column(labels[kind]).cast(pl.Float64).fill_null(0.0).to_numpy()
            accuracy[kind] = evaluate_probabilities((y > 0).astype(np.float64), predicted.probability[kind])
    fits = {kind: s for kind in outcomes.kinds if (s := outcomes[kind].summary_) is not None}
    ts = rows.get_column("decision_ts")
    split: Literal["time", "accounts", "time and accounts"] = (
        "time" if holdout_fraction is None else ("accounts" if split_at is None else "time and accounts")
    )
    return OfflineEvaluation(
        split=split,
        as_of=split_at,
        holdout_fraction=holdout_fraction,
        observed_until=until,
        training_rows=training.height,
        training_accounts=training.get_column("account_id").n_unique(),
        evaluation_rows=rows.height,
        evaluation_accounts=rows.get_column("account_id").n_unique(),
        evaluation_from=to_utc(ts.min()),  # type: ignore[arg-type]
        evaluation_to=to_utc(ts.max()),  # type: ignore[arg-type]
        level=level,
        policies=values,
        differences=differences,
        training_overlap=effect.overlap_,
        evaluation_overlap=logging.overlap_,
        outcome_accuracy=accuracy,
        outcome_fit=fits,
        skipped=dict(outcomes.skipped_),
        notes=notes,
        policy_tables={**policies, "logged": logged},
    )
