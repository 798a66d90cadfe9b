"""Evidence for every recommendation: a decision receipt (JSON) stored with it, and its plain-words rendering.

The receipt (``evidence``) says what was chosen and by which arm, the value with its interval,
the projected outcome of every objective with and without the action, the signals that drove
the account's outlook, comparable past accounts that got the action and what followed, how the
choice differs from the lifecycle playbook, and a one-sentence summary; ``alternatives`` lists
the runner-ups and why each lost. Field by field, with an example: ``docs/evidence.md``.

Everything is computed for the whole book at once (Polars and numpy, in chunks of accounts);
:func:`receipt_text` renders one stored receipt for a person without recomputing anything.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.linalg
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from nextmove.book import NO_ACTION, of_dates
from nextmove.decide.comparables import ComparableFinder, _utc
from nextmove.decide.phrases import (
    STALE_AFTER_DAYS,
    Labels,
    Wording,
    citable,
    feature_family,
    feature_wording,
    format_money,
    isolated,
    render_phrases,
    without_bidi_controls,
    without_stray_bidi_controls,
    wording_table,
)
from nextmove.decide.policy import LOST_CODES, RULE_CODES, default_variant
from nextmove.errors import ConfigError
from nextmove.features import (
    FeatureVocabulary,
    SignalKind,
    declared_signal_kinds,
    feature_schema,
    in_label_window,
    sanitize_name,
    signal_kinds,
)
from nextmove.models.effect import (
    ARM_SEPARATOR,
    EffectModel,
    EffectProjection,
    ObjectiveSpec,
    cost_usd_expr,
    objective_specs,
)
from nextmove.playbook import Playbook
from nextmove.playbook.money import money_text
from nextmove.playbook.schema import SignalRoles

SCHEMA_VERSION = 1
"""Version of the receipt's layout (the ``schema`` field)."""

WHY_CODES = LOST_CODES
"""Why a candidate lost: worth less, an eligibility rule, a cooldown, a contact cap, a play in flight, a capacity,
the control or exploration draw, or the account's users (snoozed, dismissed)."""

_BLOCKING_CODES = list(RULE_CODES)
"""Codes of a runner-up that is not allowed (a rule, or the account's users): the default "is not allowed (…)"."""

ARMS = ("model", "explore", "control")
"""How a decision was made: the learned policy's best, an exploration draw, or the control cohort's default."""

OTHER_SHARE = 1 / 3
"""The share of an action's projected gains (its positive dollar parts, objective by objective) that the
objectives other than its headline's must pass for the summary to say where the value comes from ("worth
$6,631, of which $6,626 from Retention (churn 20% → 15% chance)"): below it, the value reads as the
headline's own and the sentence is left as it was."""

OTHER_FLOOR = 1 / 10
"""Beside the largest, another objective is named in that clause only with at least this share of the gains."""

TREE_MAX_ROWS = 20_000
"""``contributions="auto"`` uses the model's trees up to this many accounts, a linear surrogate beyond."""

TREE_BOOSTER_ROWS = 20_000
"""Rows × fold boosters explained with the model's trees (more rows: fewer fold boosters)."""

SURROGATE_SAMPLE = 10_000
"""Accounts (at most) the surrogate of the baselines is fitted on: an even sample of the snapshot."""

SURROGATE_CATEGORIES = 10
"""Most frequent values of a text feature the surrogate gives an indicator each."""

SURROGATE_RIDGE = 0.01
"""Ridge penalty per row on the standardised features (small: the sample is large)."""

SURROGATE_FEATURES = 48
"""Features the surrogate keeps for the whole book: those contributing most in its sample."""

CHUNK_ROWS = 50_000
"""Accounts whose feature contributions are held in memory at once."""

RECEIPT_ROWS = 100_000
"""Accounts whose receipts are put together at once (:func:`explain_decisions`'s ``chunk_rows``)."""

COMPARABLE_FEATURES = 8
"""Features the similarity of comparable accounts is measured on (those that drive the outlooks most)."""

EXCLUDED_FEATURES = frozenset({"owner"})
"""Columns never cited as a signal: who owns an account says nothing about the customer."""

_MISSING_REASON = {
    "lower_value": "lower value",
    "rule": "not eligible",
    "cooldown": "cooldown",
    "contact_cap": "contact cap",
    "in_flight": "a play is already in flight",
    "capacity": "over capacity",
    "held_back": "held back by the control or exploration draw",
    "snoozed": "snoozed",
    "dismissed": "dismissed",
}


# ---- the receipt's schema ----------------------------------------------------------------------


class _Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, protected_namespaces=())


class ProjectedOutcome(_Receipt):
    """One objective's projected outcome over the horizon, without and with the action."""

    objective: str
    """The objective's id in the playbook."""
    outcome: str
    """The outcome kind that measures it."""
    unit: Literal["probability", "usd"]
    """``probability`` (the chance of the outcome) or ``usd`` (expected dollars of it)."""
    without: float | None
    """Projected level if nothing is done."""
    with_: float | None = Field(alias="with")
    """Projected level with the action."""
    low: float | None
    """Low end of the interval of ``with``."""
    high: float | None
    """High end of the interval of ``with``."""
    effect: float | None
    """``with − without``."""
    effect_usd: float | None
    """The effect in objective dollars (weighted; negative when it works against the objective)."""


class SignalEvidence(_Receipt):
    """A signal that drove the account's outlook, in plain words."""

    feature: str
    value: float | None
    """The value (null for text features: see ``text``)."""
    previous: float | None
    """The value in the earlier snapshot, when one was given."""
    text: str


class ComparableEvidence(_Receipt):
    """A similar past decision that took the action, and what followed."""

    account_id: str
    action_id: str
    ts: str
    """When that decision was made (ISO 8601, UTC)."""
    outcome: str
    """What followed within the horizon, in plain words."""
    similarity: float
    """1 for the same features; 0.5 for one standard deviation apart on every feature."""


class Evidence(_Receipt):
    """The decision receipt stored with a recommendation (``evidence``)."""

    schema_version: Literal[1] = Field(alias="schema")
    action_id: str
    variant: str | None
    arm: Literal["model", "explore", "control"]
    propensity: float | None
    model_action_id: str
    default_action_id: str | None
    differs_from_default: bool
    default_why: str
    value_usd: float | None
    value_low_usd: float | None
    value_high_usd: float | None
    projected: list[ProjectedOutcome]
    signals: list[SignalEvidence]
    comparables: list[ComparableEvidence]
    summary: str
    pooled: bool = False
    """True when the action recommended has too little history of its own (never or almost never taken, as a
    new action): its effect and value are the pooled effect of all actions, with a wide interval (absent in
    receipts stored before it was kept)."""


class Alternative(_Receipt):
    """A runner-up (``alternatives``, best first): its value and why it lost."""

    action_id: str
    variant: str | None
    value_usd: float | None
    low: float | None
    high: float | None
    why: Literal[
        "lower_value", "rule", "cooldown", "contact_cap", "in_flight", "capacity", "held_back", "snoozed", "dismissed"
    ]
    reason: str
    projected: list[ProjectedOutcome] = []
    """Its projected outcome per objective, as the receipt's ``projected`` (empty without a value, and in
    receipts stored before runner-ups had it): an online decision that gives it shows these."""
    pooled: bool = False
    """As the receipt's ``pooled``: valued at the pooled effect of all actions, for want of a history of its own."""


_ALTERNATIVES = TypeAdapter(list[Alternative])


def parse_evidence(text: str | bytes) -> Evidence:
    """Read and check a stored ``evidence`` JSON string.

    Raises
    ------
    pydantic.ValidationError
        If it does not follow the receipt's schema.
    """
    return Evidence.model_validate_json(text)


def parse_alternatives(text: str | bytes) -> list[Alternative]:
    """Read and check a stored ``alternatives`` JSON string."""
    return _ALTERNATIVES.validate_json(text)


# ---- inputs ------------------------------------------------------------------------------------

_DECISION_COLUMNS = {
    "account_id": pl.String,
    "action_id": pl.String,
    "variant": pl.String,
    "arm": pl.String,
    "propensity": pl.Float64,
    "model_action_id": pl.String,
    "default_action_id": pl.String,
    "value_usd": pl.Float64,
    "value_low_usd": pl.Float64,
    "value_high_usd": pl.Float64,
}
_LOST_COLUMNS = {
    "account_id": pl.String,
    "action_id": pl.String,
    "variant": pl.String,
    "why": pl.String,
    "reason": pl.String,
}
OUTPUT_SCHEMA = {"account_id": pl.String, "evidence": pl.String, "alternatives": pl.String, "summary": pl.String}
"""Columns of :func:`explain_decisions`."""


def _columns(frame: pl.DataFrame, columns: Mapping[str, Any], what: str) -> pl.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what} lacks the column(s) {', '.join(missing)} (needs {', '.join(columns)})")
    try:
        return frame.select([pl.col(c).cast(t) for c, t in columns.items()])
    except pl.exceptions.PolarsError as exc:
        raise ConfigError(f"{what}: a column has the wrong type ({exc})") from None


def _check_values(frame: pl.DataFrame, column: str, allowed: Sequence[str], what: str) -> None:
    bad = frame.filter(~pl.col(column).is_in(list(allowed)) | pl.col(column).is_null())
    if bad.height:
        example = bad.item(0, column)
        raise ConfigError(
            f"{what}: {column} must be one of {', '.join(allowed)}, got {example!r} "
            f"(account {bad.item(0, 'account_id')!r})"
        )


def _check_lost(lost: pl.DataFrame) -> pl.DataFrame:
    lost_rows = _columns(lost, _LOST_COLUMNS, "lost")
    _check_values(lost_rows, "why", WHY_CODES, "lost")
    return lost_rows


def _check_inputs(decisions: pl.DataFrame) -> pl.DataFrame:
    dec = _columns(decisions, _DECISION_COLUMNS, "decisions")
    # The decide step's own flag when it gives one (the run stores it); else: the action is not the default.
    computed = pl.col("action_id") != pl.coalesce(pl.col("default_action_id"), pl.lit(NO_ACTION))
    if "differs_from_default" in decisions.columns:
        given = decisions.get_column("differs_from_default").cast(pl.Boolean)
        computed = pl.coalesce(pl.lit(given), computed)
    dec = dec.with_columns(computed.alias("differs_from_default"))
    if dec.get_column("account_id").null_count():
        raise ConfigError("decisions: account_id must not be empty")
    if dec.get_column("action_id").null_count():
        raise ConfigError("decisions: action_id must not be empty (use 'none' for doing nothing)")
    _check_values(dec, "arm", ARMS, "decisions")
    duplicated = dec.filter(pl.col("account_id").is_duplicated())
    if duplicated.height:
        raise ConfigError(f"decisions: account {duplicated.item(0, 'account_id')!r} has more than one decision")
    return dec


# ---- names from the playbook -------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    """The playbook's words and objectives, as small tables to join."""

    specs: list[ObjectiveSpec]
    objective_names: dict[str, str]
    actions: pl.DataFrame
    """``action_id, action_name, action_objective``; the names as sentences hold them
    (:func:`~nextmove.decide.phrases.isolated`)."""
    stems: Labels
    """Feature stems → plain words, per family (signal names, action and team names, outcome kinds, roles)."""
    teams: frozenset[str]
    """The touch stems of teams (``team_support``): their words are the team's id."""
    signal_kinds: dict[str, SignalKind]
    """Signal stem → kind, as the playbook declares it (``[signal_kinds]``, or the role's kind)."""
    horizon_days: int
    default_variants: pl.DataFrame
    """``default_action_id, _default_variant``: the variant a lifecycle default is given (null: none)."""
    action_costs: dict[str, float]
    """Each action's ``cost_usd`` (what its arm of a projection is charged)."""
    cost: pl.Expr
    """A row's cost from its ``action_id`` and ``variant`` (:func:`~nextmove.models.effect.cost_usd_expr`)."""
    currency: str
    """The playbook's ``currency``: the receipts' sentences write amounts in it."""

    @classmethod
    def of(cls, playbook: Playbook, vocabulary: FeatureVocabulary | None = None) -> _Catalog:
        """The catalog of ``playbook``; each name's stem is the one ``vocabulary`` gives it (the exact name's)."""
        vocab = vocabulary if vocabulary is not None else FeatureVocabulary()
        actions = pl.DataFrame(
            {
                "action_id": [a.id for a in playbook.actions],
                # As the sentences hold them: without their bidi controls, set apart when right-to-left.
                "action_name": [isolated(a.name) for a in playbook.actions],
                "action_objective": [a.objective for a in playbook.actions],
            },
            schema={"action_id": pl.String, "action_name": pl.String, "action_objective": pl.String},
        )
        team_of = {a: stem for stem, ids in vocab.teams.items() for a in ids}
        # One map per family: a signal and an action (or an outcome kind) may share a stem.
        signals: dict[str, str] = {}
        touches: dict[str, str] = {"any": "any"}
        roles: dict[str, str] = {}
        for role in SignalRoles.model_fields:
            # Role ids are the schema's own identifiers: their stems are their names.
            roles[sanitize_name(role)] = role.replace("_", " ")
            for member in getattr(playbook.signal_roles, role):
                signals[vocab.signal_stem(member)] = member.replace("_", " ")
        outcomes = {vocab.outcome_stem(o.outcome): o.outcome.replace("_", " ") for o in playbook.objectives.values()}
        teams = set()
        for action in playbook.actions:
            touches[vocab.action_stem(action.id)] = action.name
            team = "team_" + team_of.get(action.id, sanitize_name(action.team))
            touches[team] = action.team
            teams.add(team)
        stems = Labels(signals=signals, touches=touches, outcomes=outcomes, roles=roles)
        return cls(
            specs=objective_specs(playbook, vocabulary),
            objective_names={k: (o.name or k) for k, o in playbook.objectives.items()},
            actions=actions,
            stems=stems,
            teams=frozenset(teams),
            signal_kinds=declared_signal_kinds(playbook, vocabulary),
            horizon_days=playbook.horizon_days,
            default_variants=pl.DataFrame(
                {
                    "default_action_id": [a.id for a in playbook.actions],
                    "_default_variant": [default_variant(playbook, a.id) for a in playbook.actions],
                },
                schema={"default_action_id": pl.String, "_default_variant": pl.String},
            ),
            action_costs={a.id: float(a.cost_usd) for a in playbook.actions},
            cost=cost_usd_expr(playbook),
            currency=playbook.currency,
        )


def _name(action: pl.Expr, name: pl.Expr) -> pl.Expr:
    """An action's name from the playbook (as the catalog holds it: set apart when right-to-left), or its id with
    spaces when the playbook lacks it (an id, as a variant's, is of ASCII letters: no name to set apart)."""
    return pl.coalesce(name, action.str.replace_all("_", " "))


def _display(action: pl.Expr, name: pl.Expr, variant: pl.Expr) -> pl.Expr:
    shown = _name(action, name)
    return (
        pl.when(variant.is_not_null()).then(pl.concat_str([shown, pl.lit(" ("), variant, pl.lit(")")])).otherwise(shown)
    )


def _arm_key(action: pl.Expr, variant: pl.Expr, arms: pl.Series) -> pl.Expr:
    """The projection's arm of (action, variant): ``action:variant`` when projected, else the action."""
    exact = pl.concat_str([action, pl.lit(ARM_SEPARATOR), variant])
    return pl.when(variant.is_not_null() & exact.is_in(arms.implode())).then(exact).otherwise(action)


# ---- the entry point ---------------------------------------------------------------------------


def explain_decisions(
    snapshot: pl.DataFrame,
    projection: EffectProjection,
    decisions: pl.DataFrame,
    lost: pl.DataFrame | Callable[[int, int], pl.DataFrame],
    playbook: Playbook,
    *,
    model: EffectModel | None = None,
    history: pl.DataFrame | None = None,
    outcomes: pl.DataFrame | None = None,
    previous: pl.DataFrame | pl.LazyFrame | None = None,
    top_signals: int = 3,
    n_comparables: int = 3,
    n_alternatives: int = 3,
    contributions: Literal["auto", "tree", "surrogate"] = "auto",
    percent_signals: Collection[str] | None = None,
    vocabulary: FeatureVocabulary | None = None,
    chunk_rows: int = RECEIPT_ROWS,
    sink: Callable[[pl.DataFrame], None] | None = None,
) -> pl.DataFrame:
    """The decision receipt of every decision: evidence, runner-ups and a one-sentence summary.

    Parameters
    ----------
    snapshot
        One row per account at the decision time (``account_id`` and the features, as
        :func:`~nextmove.features.compute_features` makes them).
    projection
        The effect model's projection of ``snapshot`` (:meth:`EffectModel.project`).
    decisions
        One row per account: ``account_id, action_id`` (``none`` allowed), ``variant, arm``
        (``model``/``explore``/``control``), ``propensity, model_action_id, default_action_id,
        value_usd, value_low_usd, value_high_usd``.
    lost
        Every candidate not chosen: ``account_id, action_id, variant, why`` (one of
        :data:`WHY_CODES`), ``reason`` (plain words; empty gets a generic one). Or a function of
        ``(start, stop)`` giving those of ``decisions[start:stop]`` (as ``Decisions.lost(playbook,
        start=start, stop=stop)``), called once per chunk of ``chunk_rows`` accounts: a large book's
        lost rows (14 per account) are then never all held at once.
    playbook
        Objectives, action names and signal names: all wording comes from it and the book.
    model
        The fitted effect model; with it (and up to :data:`TREE_MAX_ROWS` accounts) the signals
        are the features whose tree contributions raised the do-nothing baseline most.
    history
        A training set (:func:`~nextmove.features.build_training_set`): comparable accounts
        come from its past decisions; without it there are none.
    outcomes
        The book's outcomes (``account_id, ts, kind``, and ``value``, ``touch_id`` when it has
        them): a comparable then says what followed its decision within the horizon, and when
        that was credited to another touch, says so. Without them it says only what the history's
        labels hold, which a history attributed by ``touch_id`` credits to that touch alone
        ("churn within 90 days: none credited to it").
    previous
        An earlier snapshot (e.g. 28 days before): signals then say "down from 63%". A lazy frame
        (``pl.scan_parquet``) is read for the columns the signals cite only.
    top_signals, n_comparables, n_alternatives
        How many of each a receipt holds.
    contributions
        How signals are attributed: ``tree`` (the model's baseline trees, exact but slow:
        about a millisecond per account), ``surrogate`` (a ridge regression of the projection's
        baselines on the features, fast at any size), ``auto`` (tree when a model is given and
        the snapshot is small, else surrogate).
    percent_signals
        Signal stems shown as percentages; default: those whose values all lie in [0, 1] and
        are not all 0 or 1 (utilisations, rates).
    vocabulary
        The vocabulary of ``snapshot`` and ``history``: the columns of the playbook's names (an
        objective's label, a role's signal, an action) are those it gives the exact name.
        Default: the model's (``model.vocabulary``), else each name's stem when no other name
        sanitises alike.
    chunk_rows
        Receipts put together at once: the rest of a large book's receipts is not held meanwhile.
    sink
        Given each chunk of receipts (in the order of ``decisions``) as soon as it is made, e.g. to
        write it out; the returned frame is then empty. At a million accounts the receipts alone
        take gigabytes.

    Returns
    -------
    polars.DataFrame
        ``account_id, evidence, alternatives, summary`` (:data:`OUTPUT_SCHEMA`), in the order of
        ``decisions`` (empty with a ``sink``); ``evidence`` and ``alternatives`` are JSON (see :class:`Evidence`,
        :class:`Alternative` and ``docs/evidence.md``).

    Raises
    ------
    ConfigError
        If a required column is missing, an ``arm`` or ``why`` is unknown, an account has two
        decisions, or a count is negative.
    """
    for name, count in (("top_signals", top_signals), ("n_comparables", n_comparables)):
        _check_count(name, count)
    _check_count("n_alternatives", n_alternatives)
    if contributions not in ("auto", "tree", "surrogate"):
        raise ConfigError(f"contributions must be 'auto', 'tree' or 'surrogate', got {contributions!r}")
    if "account_id" not in snapshot.columns:
        raise ConfigError("the snapshot lacks the column account_id")
    dec = _check_inputs(decisions)
    lost_rows = None if callable(lost) else _check_lost(lost)
    if dec.height == 0:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    if vocabulary is None and model is not None:
        # A model pickled before effect models kept a vocabulary has none.
        vocabulary = getattr(model, "vocabulary", None)
    catalog = _Catalog.of(playbook, vocabulary)
    arrays = projection.arrays
    if arrays is not None:
        arms = pl.Series("action_id", sorted(set(arrays.value_arms)), dtype=pl.String)
    else:
        arms = (
            projection.values.lazy().select(pl.col("action_id").cast(pl.String).unique().sort()).collect().to_series()
        )
    dec = _with_subject(dec, catalog, arms)
    # The cost each arm was charged: the projection's own when it says (as value_matrices reads it).
    charged = dict(catalog.action_costs)
    if arrays is not None:
        charged.update(dict(zip(arrays.value_arms, arrays.costs, strict=True)))
    elif "cost_usd" in projection.values.columns:
        per_arm = (
            projection.values.lazy()
            .group_by(pl.col("action_id").cast(pl.String))
            .agg(pl.col("cost_usd").cast(pl.Float64).first())
            .collect()
        )
        charged.update(
            zip(per_arm.get_column("action_id").to_list(), per_arm.get_column("cost_usd").to_list(), strict=True)
        )
    step = max(chunk_rows, 1)
    starts = range(0, dec.height, step)
    if lost_rows is not None:
        alternatives, runner_up = _alternatives(dec, lost_rows, projection, arms, n_alternatives, catalog, charged)
    else:
        # The runner-ups of each chunk of accounts from its own lost rows (a book's are tens of millions),
        # the chunk's decisions numbered from 0 as _alternatives reads them by position.
        assert callable(lost)
        found = []
        for start in starts:
            offset = pl.lit(start, dec.schema["_i"])
            part = dec.slice(start, step).with_columns(pl.col("_i") - offset)
            rows = _check_lost(lost(start, start + part.height))
            found.append(
                tuple(
                    out.with_columns(pl.col("_i") + offset)
                    for out in _alternatives(part, rows, projection, arms, n_alternatives, catalog, charged)
                )
            )
        alternatives = pl.concat([a for a, _ in found], how="vertical_relaxed")
        runner_up = pl.concat([r for _, r in found], how="vertical_relaxed")
        del found
    dec = dec.join(runner_up, on="_i", how="left", maintain_order="left")
    dec = dec.with_columns(_control_default().alias("_control_default"))
    dec = dec.with_columns(
        without_stray_bidi_controls(_default_why(catalog.currency)).alias("default_why"),
        # An arm the history (almost) never took: its effect is the pooled estimate (summary says so).
        # Flagged are arms, so a variant is looked up by its own arm (``action:variant``) when projected.
        _arm_key(pl.col("action_id"), pl.col("variant"), arms).is_in(list(projection.flagged_actions)).alias("_pooled"),
    )
    # The receipts are put together in chunks of accounts (each row's receipt is its own); what reads
    # the whole book (the signals' surrogate and the features comparables are measured on) first.
    signal_rows = pl.DataFrame(schema=_SIGNAL_ROW_SCHEMA)
    importance: dict[str, float] = {}
    if top_signals > 0 or (n_comparables > 0 and history is not None):
        baselines = pl.concat(
            [
                _projected_rows(projection, dec.slice(start, step), arms, catalog).select("_i", "objective", "baseline")
                for start in starts
            ]
        )
        signal_rows, importance = _signals(
            snapshot, dec, baselines, catalog, model, previous, top_signals, contributions, percent_signals
        )
        del baselines
    comparable_rows = pl.DataFrame(schema=_COMPARABLE_ROW_SCHEMA)
    if history is not None and n_comparables > 0:
        comparable_rows = _comparables(snapshot, dec, history, importance, catalog, n_comparables, outcomes)

    parts = []
    for start in starts:
        part = dec.slice(start, step)
        projected, headline = _projected(_projected_rows(projection, part, arms, catalog), catalog)
        part = part.join(headline, on="_i", how="left", maintain_order="left")
        within = pl.col("_i").is_between(start, start + step - 1)
        shown = _with_projections(alternatives.filter(within), part, projection, arms, catalog)
        out = _assemble(
            part, projected, signal_rows.filter(within), comparable_rows.filter(within), shown, catalog.currency
        )
        if sink is None:
            parts.append(out)
        else:
            sink(out)
    if sink is not None or not parts:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    return pl.concat(parts)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")


def _with_subject(dec: pl.DataFrame, catalog: _Catalog, arms: pl.Series) -> pl.DataFrame:
    """Each decision with ``_i`` (its position) and the action its evidence is about (``_subject``).

    The subject is the action the account gets, with its variant, on every arm: a control account's
    projection is that of its lifecycle default (as its value is), not of what the model would choose
    (``model_action_id`` says that).
    """
    dec = dec.with_row_index("_i").with_columns(
        pl.col("action_id").alias("_subject"),
        pl.col("variant").alias("_subject_variant"),
        pl.coalesce(pl.col("model_action_id"), pl.col("action_id")).alias("model_action_id"),
    )
    names = catalog.actions.select("action_id", "action_name")
    return (
        dec.with_columns(_arm_key(pl.col("_subject"), pl.col("_subject_variant"), arms).alias("_subject_key"))
        .join(names, on="action_id", how="left", maintain_order="left")
        .join(
            catalog.actions.rename(
                {"action_id": "_subject", "action_name": "_subject_name", "action_objective": "_subject_objective"}
            ),
            on="_subject",
            how="left",
            maintain_order="left",
        )
        .join(
            names.rename({"action_id": "model_action_id", "action_name": "_model_name"}),
            on="model_action_id",
            how="left",
            maintain_order="left",
        )
        .join(
            names.rename({"action_id": "default_action_id", "action_name": "_default_name"}),
            on="default_action_id",
            how="left",
            maintain_order="left",
        )
        .join(catalog.default_variants, on="default_action_id", how="left", maintain_order="left")
    )


# ---- runner-ups ----------------------------------------------------------------------------------


def _group_rank(key: pl.Expr) -> pl.Expr:
    """Position of each row within its run of equal ``key`` values (the frame sorted by ``key``)."""
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    start = pl.when(key != key.shift()).then(row).otherwise(pl.lit(None, pl.Int64))
    return row - start.fill_null(0).cum_max()


def _positions(accounts: pl.Series, dec: pl.DataFrame) -> pl.Series:
    """Each row's decision (``_i``, null for accounts without one), for a long table of accounts.

    When every account's rows are together (as the decide step writes them), only the runs are
    looked up; otherwise every row is.
    """
    index = dec.select("account_id", "_i")
    runs = accounts.cast(pl.String).rle()
    heads = runs.struct.field("value")
    if heads.n_unique() == heads.len():
        found = pl.DataFrame({"account_id": heads}).join(index, on="account_id", how="left", maintain_order="left")
        lengths = runs.struct.field("len").to_numpy()
        return found.get_column("_i").gather(np.repeat(np.arange(len(lengths)), lengths))
    frame = pl.DataFrame({"account_id": accounts.cast(pl.String)})
    return frame.join(index, on="account_id", how="left", maintain_order="left").get_column("_i")


def _value_grid(projection: EffectProjection, dec: pl.DataFrame, arm_list: list[str]) -> np.ndarray:
    """(3, decisions × arms): every decided account's value, low and high of every arm (NaN where none).

    From the projection's arrays by position when each account has one projected row, else by a
    join of its values frame.
    """
    width = max(len(arm_list), 1)
    grid = np.full((3, dec.height * width), np.nan)
    arrays = projection.arrays
    ids = None if arrays is None else arrays.ids.get_column("account_id")
    if arrays is not None and ids is not None and ids.n_unique() == ids.len():
        where = pl.DataFrame({"account_id": ids, "_row": pl.int_range(ids.len(), dtype=pl.Int64, eager=True)})
        found = dec.select("account_id", "_i").join(where, on="account_id", how="inner")
        i = found.get_column("_i").to_numpy().astype(np.int64)
        row = found.get_column("_row").to_numpy()
        code = {a: k for k, a in enumerate(arm_list)}
        for j, arm in enumerate(arrays.value_arms):
            if arm in code:
                at = i * width + code[arm]
                grid[0, at], grid[1, at], grid[2, at] = (
                    arrays.value[j, row],
                    arrays.value_low[j, row],
                    arrays.value_high[j, row],
                )
        return grid
    codes = list(range(len(arm_list)))
    table = (
        projection.values.lazy()
        .select(
            pl.col("account_id").cast(pl.String),
            pl.col("action_id").cast(pl.String).alias("_key"),
            pl.col("value_usd").cast(pl.Float64),
            pl.col("low").cast(pl.Float64),
            pl.col("high").cast(pl.Float64),
        )
        .join(dec.lazy().select("account_id", "_i"), on="account_id", how="inner")
        .select(
            "_i",
            pl.col("_key").replace_strict(arm_list, codes, default=-1, return_dtype=pl.Int64).alias("_k"),
            "value_usd",
            "low",
            "high",
        )
        .filter(pl.col("_k") >= 0)
        .collect()
    )
    at = table.get_column("_i").to_numpy().astype(np.int64) * width + table.get_column("_k").to_numpy()
    grid[:, at] = table.select("value_usd", "low", "high").to_numpy().T
    return grid


def _alternatives(
    dec: pl.DataFrame,
    lost: pl.DataFrame,
    projection: EffectProjection,
    arms: pl.Series,
    n: int,
    catalog: _Catalog,
    charged: Mapping[str, float],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per account (``_i``): the runner-ups (best first, at most ``n``), and the best one and the default's row.

    ``charged`` is the cost each arm of ``values`` was charged (a variant valued from its action's
    arm is charged its own instead).

    Returns ``(alternatives, runner_up)``: ``_i, _alternatives`` (a list of structs) and ``_i`` with
    the best runner-up (``_alt_*``) and the lifecycle default's value and why it lost (``_default_*``).
    """
    arm_list = arms.to_list()
    codes = list(range(len(arm_list)))
    # Numbers first, over every lost row: which account, which arm, whether it is the chosen or the default.
    position = _positions(lost.get_column("account_id"), dec)
    rows_kept = lost.select("action_id", "variant").with_columns(position.alias("_i")).with_row_index("_r")
    rows_kept = rows_kept.filter(pl.col("_i").is_not_null())
    at = rows_kept.get_column("_i")
    keys = rows_kept.select(
        "_r",
        "_i",
        pl.col("action_id").replace_strict(arm_list, codes, default=-1, return_dtype=pl.Int64).alias("_k"),
        (
            (pl.col("action_id") == dec.get_column("action_id").gather(at))
            & pl.col("variant").eq_missing(dec.get_column("variant").gather(at))
        ).alias("_chosen"),
        (pl.col("action_id") == dec.get_column("default_action_id").gather(at)).fill_null(False).alias("_is_default"),
        # The variant of its default a control account tried (the others lost to the control draw).
        (
            (dec.get_column("arm").gather(at) == "control")
            & pl.col("variant").eq_missing(dec.get_column("_default_variant").gather(at))
        ).alias("_tried"),
        pl.col("variant").is_not_null().alias("_has_variant"),
        "action_id",
        "variant",
    )
    k = keys.get_column("_k").to_numpy().copy()
    with_variant = np.flatnonzero(keys.get_column("_has_variant").to_numpy())
    # What a row's value gains over its arm's: a variant valued from its action's arm (the model has
    # none of its own) is charged its own cost instead of the action's, as the decision's values are
    # (value_matrices).
    shift = np.zeros(len(k))
    if len(with_variant):  # a variant is its own arm when the projection has it
        variant_rows = lost[keys.get_column("_r").gather(with_variant)].select(
            _arm_key(pl.col("action_id"), pl.col("variant"), arms).alias("_key"),
            "action_id",
            catalog.cost.alias("_own_cost"),
            pl.col("action_id")
            .replace_strict(dict(charged), default=0.0, return_dtype=pl.Float64)
            .alias("_action_cost"),
        )
        exact = (
            variant_rows.get_column("_key")
            .replace_strict(arm_list, codes, default=-1, return_dtype=pl.Int64)
            .to_numpy()
        )
        k[with_variant] = np.where(exact >= 0, exact, k[with_variant])
        borrowed = (variant_rows.get_column("_key") == variant_rows.get_column("action_id")).to_numpy()
        own = variant_rows.get_column("_action_cost") - variant_rows.get_column("_own_cost")
        shift[with_variant] = np.where(borrowed, own.to_numpy(), 0.0)
    # Values by position: a dense (account × arm) table, so runner-ups need no join on text keys.
    width = max(len(arm_list), 1)
    grid = _value_grid(projection, dec, arm_list)
    flat = keys.get_column("_i").to_numpy().astype(np.int64) * width + np.maximum(k, 0)
    found = np.stack([np.take(grid[j], flat) for j in range(3)]) + shift
    found[:, k < 0] = np.nan
    ranked = (
        keys.select(
            "_r",
            "_i",
            "_chosen",
            "_is_default",
            "_tried",
            pl.col("action_id").alias("_a"),
            pl.col("variant").alias("_b"),
        )
        .with_row_index("_p")
        .with_columns(pl.Series("_v", found[0]).fill_nan(None), pl.Series("_k", k))
        .filter(~pl.col("_chosen"))
        # Ties (variants sharing their action's arm) go by arm, then variant, whatever the rows' order.
        .sort(["_i", "_v", "_k", "_a", "_b"], descending=[False, True, False, False, False], nulls_last=True)
        .with_columns(_group_rank(pl.col("_i")).alias("_rank"))
        .filter((pl.col("_rank") < max(n, 1)) | pl.col("_is_default"))
    )
    # Then the text of the few rows kept.
    kept = found[:, ranked.get_column("_p").to_numpy()]
    rows = (
        ranked.with_columns(
            pl.Series("value_usd", kept[0]).fill_nan(None).round(2),
            pl.Series("low", kept[1]).fill_nan(None).round(2),
            pl.Series("high", kept[2]).fill_nan(None).round(2),
        )
        .with_columns(_unsigned_zero(pl.col(c)).alias(c) for c in ("value_usd", "low", "high"))
        .with_columns(lost.select("action_id", "variant", "why", "reason")[ranked.get_column("_r")].get_columns())
        .with_columns(
            pl.when(pl.col("reason").str.strip_chars().fill_null("") == "")
            .then(pl.col("why").replace_strict(_MISSING_REASON, return_dtype=pl.String))
            .otherwise(without_bidi_controls(pl.col("reason")))
            .alias("reason")
        )
    )
    shown = rows.filter(pl.col("_rank") < n)
    alternatives = shown.group_by("_i", maintain_order=True).agg(
        pl.struct("action_id", "variant", "value_usd", "low", "high", "why", "reason").alias("_alternatives")
    )
    best = rows.filter(pl.col("_rank") == 0).select(
        "_i",
        pl.col("action_id").alias("_alt_action"),
        pl.col("variant").alias("_alt_variant"),
        pl.col("value_usd").alias("_alt_value"),
        pl.col("reason").alias("_alt_reason"),
    )
    best = best.join(
        catalog.actions.select(pl.col("action_id").alias("_alt_action"), pl.col("action_name").alias("_alt_name")),
        on="_alt_action",
        how="left",
    )
    # The default's own row. A control account tries only one variant of its default (default_variant):
    # that one's, since the others lost to the control draw ("held back"), which is not why nothing is
    # done. Otherwise its best variant when it has several, but first the one an exploring account's draw
    # held back (the learned pick, or one that fitted what was left: the default was set aside to explore,
    # whatever its other variants lost to), then one that found no capacity left.
    default = (
        rows.filter(pl.col("_is_default"))
        .sort([~pl.col("_tried"), pl.col("why") != "held_back", pl.col("why") != "capacity"], maintain_order=True)
        .group_by("_i", maintain_order=True)
        .agg(
            pl.col("value_usd").first().alias("_default_v"),
            pl.col("why").first().alias("_default_why_code"),
            pl.col("reason").first().alias("_default_reason"),
        )
    )
    runner_up = best.join(default, on="_i", how="full", coalesce=True)
    return alternatives, runner_up


def _with_projections(
    alternatives: pl.DataFrame, dec: pl.DataFrame, projection: EffectProjection, arms: pl.Series, catalog: _Catalog
) -> pl.DataFrame:
    """The runner-ups with the projected outcome per objective of each that has a value (``projected``).

    The same rows as the receipt's own ``projected``, for the runner-up's arm (``action:variant`` when
    projected, else its action's), so that an online decision giving a runner-up has its projection.
    """
    fields = ["action_id", "variant", "value_usd", "low", "high", "why", "reason", "pooled"]
    flat = (
        alternatives.explode("_alternatives")
        .filter(pl.col("_alternatives").is_not_null())
        .unnest("_alternatives")
        .with_row_index("_j")
        # Flagged as the decision's own ``_pooled``: the arm the runner-up is valued by.
        .with_columns(
            _arm_key(pl.col("action_id"), pl.col("variant"), arms)
            .is_in(list(projection.flagged_actions))
            .alias("pooled")
        )
    )
    if flat.height == 0:
        return pl.DataFrame(schema={"_i": alternatives.schema["_i"], "_alternatives": _ALTERNATIVES_TYPE})
    subjects = (
        flat.filter(pl.col("value_usd").is_not_null() & (pl.col("action_id") != NO_ACTION))
        .join(dec.select("_i", "account_id"), on="_i", how="left")
        .join(
            catalog.actions.select("action_id", pl.col("action_objective").alias("_subject_objective")),
            on="action_id",
            how="left",
        )
        .select(
            pl.col("_j").alias("_i"),
            "account_id",
            _arm_key(pl.col("action_id"), pl.col("variant"), arms).alias("_subject_key"),
            "_subject_objective",
        )
    )
    rows = _projected_rows(projection, subjects, arms, catalog)
    per_row, _ = _projected(rows, catalog)
    return (
        flat.join(per_row.rename({"_i": "_j", "_projected": "projected"}), on="_j", how="left", maintain_order="left")
        .with_columns(pl.col("projected").cast(_PROJECTED_TYPE).fill_null(pl.lit([], dtype=_PROJECTED_TYPE)))
        .group_by("_i", maintain_order=True)
        .agg(pl.struct(*fields, "projected").alias("_alternatives"))
        .with_columns(pl.col("_alternatives").cast(_ALTERNATIVES_TYPE))
    )


# ---- the lifecycle default -----------------------------------------------------------------------


def _control_default() -> pl.Expr:
    """What became of a control account's lifecycle default: the one test ``default_why`` and the summary share.

    ``no_default`` (the book has no stages), ``nothing`` (the default is doing nothing), ``follows``
    (the account gets an action, which is its default), or, when nothing is done instead of the
    default, ``did_not_fit`` (it lost to capacity) or ``not_allowed`` (a rule kept it, or ``lost``
    has no row of it to say why). Null for accounts outside the control cohort.
    """
    default = pl.col("default_action_id")
    return (
        pl.when(pl.col("arm") != "control")
        .then(pl.lit(None, pl.String))
        .when(default.is_null())
        .then(pl.lit("no_default"))
        .when(default == NO_ACTION)
        .then(pl.lit("nothing"))
        .when(pl.col("action_id") != NO_ACTION)
        .then(pl.lit("follows"))
        .when(pl.col("_default_why_code") == "capacity")
        .then(pl.lit("did_not_fit"))
        .otherwise(pl.lit("not_allowed"))
    )


def _default_why(currency: str) -> pl.Expr:
    """``default_why``: how the choice compares with the lifecycle playbook's default, in one sentence (amounts in
    ``currency``)."""
    default_name = _name(pl.col("default_action_id"), pl.col("_default_name"))
    chosen_name = _display(pl.col("action_id"), pl.col("action_name"), pl.col("variant"))
    value = pl.col("value_usd")
    the_default = pl.concat_str([pl.lit("The lifecycle default, "), default_name])
    worth = (
        pl.when(pl.col("_default_v").is_not_null())
        .then(pl.concat_str([pl.lit(", worth "), format_money(pl.col("_default_v"), currency)]))
        .otherwise(pl.lit(""))
    )
    against = (
        pl.when(pl.col("action_id") == NO_ACTION)
        .then(pl.lit(f" against {money_text(0.0, currency)} for doing nothing"))
        .when(value.is_not_null())
        .then(pl.concat_str([pl.lit(" against "), format_money(value, currency), pl.lit(" for "), chosen_name]))
        .otherwise(pl.lit(""))
    )
    # An exploring account's default worth more than the draw's pick that the draw did not hold back (the
    # learned policy would not have given it either): its reason says why ("worth no more than the model's choice").
    overlooked = (
        pl.when(
            (pl.col("arm") == "explore")
            & (pl.col("_default_v") > value.fill_null(0.0))
            & pl.col("_default_reason").is_not_null()
        )
        .then(pl.concat_str([pl.lit(" ("), pl.col("_default_reason"), pl.lit(")")]))
        .otherwise(pl.lit(""))
    )
    blocked = pl.col("_default_why_code").is_in(_BLOCKING_CODES)
    control = pl.col("_control_default")
    reason = (
        pl.when(pl.col("_default_reason").is_not_null())
        .then(pl.concat_str([pl.lit(" ("), pl.col("_default_reason"), pl.lit(")")]))
        .otherwise(pl.lit(""))
    )
    return (
        pl.when(pl.col("default_action_id").is_null())
        .then(pl.lit("The lifecycle playbook has no default for this account."))
        .when(pl.col("arm") == "control")
        .then(
            pl.when(control == "nothing")
            .then(pl.lit("Control group: the lifecycle playbook does nothing for this account, and so does this."))
            .when(control == "did_not_fit")
            .then(
                pl.concat_str(
                    [
                        pl.lit("Control group: the lifecycle default, "),
                        default_name,
                        pl.lit(", did not fit"),
                        reason,
                        pl.lit(", so nothing is done."),
                    ]
                )
            )
            .when(control == "not_allowed")
            .then(
                pl.concat_str(
                    [
                        pl.lit("Control group: the lifecycle default, "),
                        default_name,
                        pl.lit(", is not allowed now"),
                        reason,
                        pl.lit(", so nothing is done."),
                    ]
                )
            )
            .otherwise(
                pl.concat_str(
                    [
                        pl.lit("Control group: follows the lifecycle playbook, whose default is "),
                        default_name,
                        pl.lit("."),
                    ]
                )
            )
        )
        .when(~pl.col("differs_from_default"))
        .then(
            pl.when(pl.col("action_id") == NO_ACTION)
            .then(pl.lit("The lifecycle playbook would also do nothing."))
            .otherwise(pl.concat_str([pl.lit("Same as the lifecycle playbook's default, "), default_name, pl.lit(".")]))
        )
        .when(pl.col("default_action_id") == NO_ACTION)
        .then(
            pl.concat_str(
                [
                    pl.lit("The lifecycle playbook would do nothing; "),
                    chosen_name,
                    pl.when(value.is_not_null())
                    .then(pl.concat_str([pl.lit(" is worth "), format_money(value, currency)]))
                    .otherwise(pl.lit(" is projected to be worth more")),
                    pl.lit("."),
                ]
            )
        )
        .when(blocked)
        .then(pl.concat_str([the_default, pl.lit(", is not allowed ("), pl.col("_default_reason"), pl.lit(").")]))
        .when(pl.col("_default_why_code") == "capacity")
        .then(pl.concat_str([the_default, pl.lit(", did not fit ("), pl.col("_default_reason"), pl.lit(").")]))
        # Only a default the exploration draw held back (worth more, and the learned pick or one that fitted what
        # was left) was set aside to explore; one worth less reads as on the model arm.
        .when((pl.col("arm") == "explore") & (pl.col("_default_why_code") == "held_back"))
        .then(pl.concat_str([the_default, worth, pl.lit(", was set aside to explore another play.")]))
        .otherwise(pl.concat_str([the_default, worth, against, overlooked, pl.lit(".")]))
    )


# ---- projected outcomes --------------------------------------------------------------------------


def _round(value: pl.Expr) -> pl.Expr:
    """Cents for dollars, 5 decimals for chances."""
    return _unsigned_zero(pl.when(pl.col("unit") == "usd").then(value.round(2)).otherwise(value.round(5)))


def _unsigned_zero(value: pl.Expr) -> pl.Expr:
    """A value rounded to -0.0 reads 0.0 (Polars simplifies ``x + 0.0`` away, so it is spelt out)."""
    return pl.when(value == 0).then(0.0).otherwise(value)


def _level_bounds(value: pl.Expr) -> pl.Expr:
    """A chance stays within [0, 1] (an effect's interval around a small baseline may reach past it)."""
    return pl.when(pl.col("unit") == "probability").then(value.clip(0.0, 1.0)).otherwise(value)


def _outcome_level(value: pl.Expr, currency: str) -> pl.Expr:
    """A projected level in words: a chance (34%, 0.4%) or an amount in ``currency``."""
    share = value * 100
    pct = (
        pl.when(share.abs() < 9.95)
        .then(pl.concat_str([share.round(1).cast(pl.String), pl.lit("%")]))
        .otherwise(pl.concat_str([share.round(0).cast(pl.Int64).cast(pl.String), pl.lit("%")]))
    )
    return pl.when(pl.col("unit") == "usd").then(format_money(value, currency)).otherwise(pct)


def _projected_rows(
    projection: EffectProjection, dec: pl.DataFrame, arms: pl.Series, catalog: _Catalog
) -> pl.DataFrame:
    """One row per decided account and objective: baseline, and the subject's effect with its interval.

    One join with the projection's effects: the subject's arm, or for ``none`` (and subjects the
    projection lacks) any arm, whose baseline is the same.
    """
    schema = {
        "_i": pl.UInt32,
        "objective": pl.String,
        "outcome": pl.String,
        "unit": pl.String,
        "baseline": pl.Float64,
        "effect": pl.Float64,
        "_low": pl.Float64,
        "_high": pl.Float64,
        "effect_usd": pl.Float64,
        "_objective_order": pl.Int64,
        "_main": pl.Boolean,
    }
    if projection.effects_height == 0:
        return pl.DataFrame(schema=schema)
    # The first arm of the long frame (any arm's baseline is the same).
    arrays = projection.arrays
    any_arm = arrays.arms[0] if arrays is not None else str(projection.effects.item(0, "action_id"))
    has_arm = pl.col("_subject_key").is_in(arms.implode()) & (pl.col("_subject_key") != NO_ACTION)
    pairs = dec.lazy().select(
        "_i",
        "account_id",
        pl.when(has_arm).then(pl.col("_subject_key")).otherwise(pl.lit(any_arm)).alias("_key"),
        pl.when(pl.col("_subject_key") == NO_ACTION)
        .then(pl.lit(0.0))
        .when(has_arm)
        .then(pl.lit(1.0))
        .otherwise(pl.lit(None, pl.Float64))
        .alias("_scale"),
        "_subject_objective",
    )
    order = pl.LazyFrame(
        {"objective": [s.objective for s in catalog.specs], "_objective_order": list(range(len(catalog.specs)))},
        schema={"objective": pl.String, "_objective_order": pl.Int64},
    )
    # Gathered from the projection's arrays by position where it has them (the long frame is not made).
    joined = projection.pair_effects(pairs.collect()).lazy().rename({"low": "_low", "high": "_high"})
    return (
        joined.join(order, on="objective", how="left")
        .select(
            "_i",
            "objective",
            "outcome",
            "unit",
            "baseline",
            pl.col("effect") * pl.col("_scale"),
            pl.col("_low") * pl.col("_scale"),
            pl.col("_high") * pl.col("_scale"),
            pl.col("effect_usd") * pl.col("_scale"),
            pl.col("_objective_order").fill_null(len(catalog.specs)),
            (pl.col("objective") == pl.col("_subject_objective")).fill_null(False).alias("_main"),
        )
        .sort("_i", "_objective_order", "objective")
        .collect()
    )


def _projected(rows: pl.DataFrame, catalog: _Catalog) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per account: the projected list (playbook objective order), the headline of the action's objective and
    the other objectives its value comes from (:func:`_credit`)."""
    rows = rows.with_columns(
        _round(pl.col("baseline")).alias("without"),
        _round(pl.col("baseline") + pl.col("effect")).alias("with"),
        _round(_level_bounds(pl.col("baseline") + pl.col("_low"))).alias("low"),
        _round(_level_bounds(pl.col("baseline") + pl.col("_high"))).alias("high"),
        _round(pl.col("effect")).alias("effect"),
        _unsigned_zero(pl.col("effect_usd").round(2)).alias("effect_usd"),
    )
    entry = pl.struct("objective", "outcome", "unit", "without", "with", "low", "high", "effect", "effect_usd")
    projected = rows.group_by("_i", maintain_order=True).agg(entry.alias("_projected"))
    # The outcome kind leads as a label, then the numbers: "cancelled within 30 days: 3.2% → 1.1% chance"
    # reads for any kind, where "chance of cancelled" would not.
    outcome = isolated(pl.col("outcome").str.replace_all("_", " "))
    phrase = pl.concat_str(
        [
            outcome,
            pl.lit(f" within {catalog.horizon_days} days: "),
            _outcome_level(pl.col("without"), catalog.currency),
            pl.lit(" → "),
            _outcome_level(pl.col("with"), catalog.currency),
            pl.when(pl.col("unit") == "usd").then(pl.lit(" expected")).otherwise(pl.lit(" chance")),
            pl.when(pl.col("low").is_not_null() & pl.col("high").is_not_null())
            .then(
                pl.concat_str(
                    [
                        pl.lit(" ("),
                        _outcome_level(pl.col("low"), catalog.currency),
                        pl.lit(" to "),
                        _outcome_level(pl.col("high"), catalog.currency),
                        pl.lit(")"),
                    ]
                )
            )
            .otherwise(pl.lit("")),
        ]
    )
    # The headline: the action's own objective, else the objective it moves most in dollars.
    first = (
        rows.filter(pl.col("with").is_not_null() & ((pl.col("effect") != 0) | pl.col("_main")))
        .sort(["_i", "_main", pl.col("effect_usd").abs().fill_null(0.0)], descending=[False, True, True])
        .filter(_group_rank(pl.col("_i")) == 0)
    )
    headline = first.select("_i", phrase.alias("_headline"), pl.col("objective").alias("_headline_objective"))
    credit = _credit(rows, headline.select("_i", "_headline_objective"), catalog)
    return projected, headline.drop("_headline_objective").join(credit, on="_i", how="left", maintain_order="left")


def _credit(rows: pl.DataFrame, headline: pl.DataFrame, catalog: _Catalog) -> pl.DataFrame:
    """Per account: the objectives other than the headline's that the action's value comes from, in words.

    ``_credit`` names the largest gain of another objective, and the second when it makes at least
    :data:`OTHER_FLOOR` of the gains ("$6,626 from Retention (churn 20% → 15% chance)"), with the
    amounts and levels of the receipt's ``projected``; ``_credit_usd`` is their sum and ``_credit_share``
    the share of the gains (the positive ``effect_usd``) of all the objectives other than the headline's.
    """
    gain = pl.col("effect_usd").fill_null(0.0).clip(lower_bound=0.0)
    gains = rows.group_by("_i").agg(gain.sum().alias("_gains"))
    others = (
        rows.join(headline, on="_i", how="inner")
        .filter((pl.col("objective") != pl.col("_headline_objective")) & (gain > 0) & pl.col("with").is_not_null())
        .join(gains, on="_i", how="left")
        .sort(["_i", "effect_usd", "_objective_order"], descending=[False, True, False])
    )
    names = pl.DataFrame(
        {"objective": list(catalog.objective_names), "_objective_name": list(catalog.objective_names.values())},
        schema={"objective": pl.String, "_objective_name": pl.String},
    )
    plain = pl.coalesce(pl.col("_objective_name"), pl.col("objective").str.replace_all("_", " "))
    name = isolated(plain)
    outcome = pl.col("outcome").str.replace_all("_", " ")
    # The outcome kind beside the levels unless it repeats the objective's name ("Expansion ($274 → $460 expected)"),
    # as receipt_text labels an objective's line.
    label = (
        pl.when(outcome.str.to_lowercase() == plain.str.to_lowercase())
        .then(pl.lit(""))
        .otherwise(pl.concat_str([isolated(outcome), pl.lit(" ")]))
    )
    words = pl.concat_str(
        [
            format_money(pl.col("effect_usd"), catalog.currency),
            pl.lit(" from "),
            name,
            pl.lit(" ("),
            label,
            _outcome_level(pl.col("without"), catalog.currency),
            pl.lit(" → "),
            _outcome_level(pl.col("with"), catalog.currency),
            pl.when(pl.col("unit") == "usd").then(pl.lit(" expected")).otherwise(pl.lit(" chance")),
            pl.lit(")"),
        ]
    )
    rank = _group_rank(pl.col("_i"))
    named = (rank == 0) | ((rank == 1) & (pl.col("effect_usd") >= OTHER_FLOOR * pl.col("_gains")))
    return (
        others.join(names, on="objective", how="left", maintain_order="left")
        .with_columns(words.alias("_words"), named.alias("_named"))
        .group_by("_i", maintain_order=True)
        .agg(
            pl.col("_words").filter(pl.col("_named")).str.join(" and ").alias("_credit"),
            pl.col("effect_usd").filter(pl.col("_named")).sum().alias("_credit_usd"),
            (pl.col("effect_usd").sum() / pl.col("_gains").first()).alias("_credit_share"),
        )
    )


# ---- signals -----------------------------------------------------------------------------------

_SIGNAL_ROW_SCHEMA = {
    "_i": pl.UInt32,
    "rank": pl.Int64,
    "feature": pl.String,
    "value": pl.Float64,
    "previous": pl.Float64,
    "text": pl.String,
}


def _flag_columns(snapshot: pl.DataFrame, candidates: Sequence[str]) -> set[str]:
    """Number columns that only hold 0 and 1 in the snapshot (``newbie``, ``kids_profile``): phrased yes or no."""
    present = [c for c in candidates if c in snapshot.columns and snapshot.schema[c].is_numeric()]
    if not present:
        return set()
    stats = snapshot.select(
        *[((pl.col(c) == 0) | (pl.col(c) == 1) | pl.col(c).is_null()).all().alias(f"flag:{c}") for c in present],
        *[pl.col(c).is_not_null().any().alias(f"seen:{c}") for c in present],
    ).row(0, named=True)
    return {c for c in present if stats[f"flag:{c}"] and stats[f"seen:{c}"]}


_WINDOW_COUNT = re.compile(r"^(?P<stem>.+)_count_(?P<w>\d+)d$")


def _usual_intervals(snapshot: pl.DataFrame, stems: Sequence[str]) -> dict[str, float]:
    """Signal stem → days past which its latest value says its age: the signal's usual interval.

    The interval is the median, over the accounts with a reading in the signal's longest window, of
    that window's days per reading (a day for a daily signal, a week for a weekly one), at least a
    day and at most :data:`~nextmove.decide.phrases.STALE_AFTER_DAYS`. A stem without a window, or
    without a reading in it, gets :data:`~nextmove.decide.phrases.STALE_AFTER_DAYS`.
    """
    windows: dict[str, int] = {}
    wanted = set(stems)
    for column in snapshot.columns:
        if (m := _WINDOW_COUNT.match(column)) and m["stem"] in wanted and snapshot.schema[column].is_numeric():
            windows[m["stem"]] = max(windows.get(m["stem"], 0), int(m["w"]))
    out = dict.fromkeys(stems, STALE_AFTER_DAYS)
    if not windows:
        return out
    per_reading = snapshot.select(
        (w / pl.col(f"{stem}_count_{w}d").filter(pl.col(f"{stem}_count_{w}d") > 0).cast(pl.Float64))
        .median()
        .alias(stem)
        for stem, w in windows.items()
    ).row(0, named=True)
    for stem, days in per_reading.items():
        if days is not None:
            out[stem] = min(max(float(days), 1.0), STALE_AFTER_DAYS)
    return out


def _reported_amounts(snapshot: pl.DataFrame, counts: Collection[str]) -> set[str]:
    """Count signals whose rows carry amounts (lessons per week), not one event each: a window's row count
    differs from its total for some account. Their row counts are reports, not the quantity."""
    pairs = sorted(
        (m["stem"], column, f"{m['stem']}_sum_{m['w']}d")
        for column in snapshot.columns
        if (m := _WINDOW_COUNT.match(column))
        and m["stem"] in counts
        and f"{m['stem']}_sum_{m['w']}d" in snapshot.columns
    )
    if not pairs:
        return set()
    differs = snapshot.select(
        (pl.col(total).cast(pl.Float64) != pl.col(rows).cast(pl.Float64)).any().alias(f"{stem}:{rows}")
        for stem, rows, total in pairs
    ).row(0, named=True)
    return {stem for stem, rows, _ in pairs if differs[f"{stem}:{rows}"]}


def _percent_stems(snapshot: pl.DataFrame, numeric: Sequence[str]) -> set[str]:
    """Signal stems whose latest values all lie in [0, 1] and are not all 0 or 1: shown as percentages."""
    columns = set(snapshot.columns)
    lasts = [f for f in numeric if f.endswith("_last") and f"{f[: -len('_last')]}_days_since_last" in columns]
    if not lasts:
        return set()
    stats = snapshot.select(
        *[pl.col(f).min().alias(f"min:{f}") for f in lasts],
        *[pl.col(f).max().alias(f"max:{f}") for f in lasts],
        *[((pl.col(f) > 0) & (pl.col(f) < 1)).any().alias(f"frac:{f}") for f in lasts],
    ).row(0, named=True)
    out = set()
    for f in lasts:
        lo, hi, frac = stats[f"min:{f}"], stats[f"max:{f}"], stats[f"frac:{f}"]
        if lo is not None and hi is not None and lo >= 0 and hi <= 1 and frac:
            out.add(f[: -len("_last")])
    return out


@dataclass(frozen=True)
class _Features:
    """The features signals may cite, ordered so each family (signal, action, column) is contiguous."""

    names: list[str]
    numeric: list[str]
    """The numeric ones, in ``names`` order (the columns of the value matrices)."""
    text: list[str]
    column: np.ndarray
    """Feature → its column in the numeric matrix (numeric) or ``len(numeric) + i`` for the i-th text one."""
    starts: np.ndarray
    """First feature of each family."""
    lengths: np.ndarray
    """Features per family."""
    trend: np.ndarray
    """Feature → numeric column of its trend (windowed means), else -1."""
    age: np.ndarray
    """Feature → numeric column of its age (latest values: ``{s}_days_since_last``), else -1."""

    @classmethod
    def of(cls, snapshot: pl.DataFrame, keep: Collection[str] | None = None) -> _Features:
        kinds = feature_schema(
            snapshot.drop("account_id", *(c for c in ("_i", "_objective", "_oi") if c in snapshot.columns))
        )
        usable = [f for f in kinds if f not in EXCLUDED_FEATURES and (keep is None or f in keep)]
        families = [feature_family(f) for f in usable]
        first_seen = {family: i for i, family in reversed(list(enumerate(families)))}
        order = sorted(range(len(usable)), key=lambda i: (first_seen[families[i]], i))
        names = [usable[i] for i in order]
        family_of = [families[i] for i in order]
        numeric = [f for f in names if kinds[f] == "number"]
        text = [f for f in names if kinds[f] == "text"]
        slot = {f: i for i, f in enumerate(numeric)} | {f: len(numeric) + i for i, f in enumerate(text)}
        change = [0] + [i for i in range(1, len(names)) if family_of[i] != family_of[i - 1]]
        starts = np.array(change, dtype=np.int64)
        lengths = np.diff(np.append(starts, len(names))).astype(np.int64)
        wordings = [feature_wording(f) for f in names]
        trend = [slot.get(w.trend_feature or "", -1) for w in wordings]
        trend = [t if 0 <= t < len(numeric) else -1 for t in trend]
        age = [slot.get(w.age_feature or "", -1) for w in wordings]
        age = [t if 0 <= t < len(numeric) else -1 for t in age]
        return cls(
            names,
            numeric,
            text,
            np.array([slot[f] for f in names], dtype=np.int64),
            starts,
            lengths,
            np.array(trend, dtype=np.int64),
            np.array(age, dtype=np.int64),
        )

    def gather(self, numeric_part: np.ndarray, text_part: np.ndarray) -> np.ndarray:
        """Columns in numeric-then-text order → columns in feature order."""
        out: np.ndarray = np.hstack([numeric_part, text_part])[:, self.column]
        return out


@dataclass
class _Surrogate:
    """A ridge regression of every objective's baseline (logit, or log dollars) on standardised features.

    For a linear model, a feature's contribution ``β · (x − mean)`` is its exact Shapley value.
    Text features enter as indicators of their most frequent values; their contribution is the
    sum of their indicators'. One design matrix serves every objective, so it is fitted once.
    """

    objectives: list[str]
    fill: np.ndarray
    categories: dict[str, list[str]]
    center: np.ndarray
    scale: np.ndarray
    beta: np.ndarray
    """(design columns × objectives)."""
    text_sum: np.ndarray
    """(indicator columns × text features): adds indicators up per text feature."""

    @classmethod
    def fit(
        cls, sample: pl.DataFrame, x: np.ndarray, targets: np.ndarray, objectives: list[str], text: list[str]
    ) -> _Surrogate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature: filled with 0 below
            fill = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
        fill = np.where(np.isfinite(fill), fill, 0.0)
        categories = {}
        for name in text:
            counts = sample.get_column(name).cast(pl.String).drop_nulls().value_counts(sort=True)
            categories[name] = [str(v) for v in counts.get_column(name).head(SURROGATE_CATEGORIES).to_list()]
        surrogate = cls(objectives, fill, categories, np.zeros(0), np.ones(0), np.zeros((0, 0)), np.zeros((0, 0)))
        z = surrogate._design(sample, x)
        surrogate.center = z.mean(axis=0)
        spread = z.std(axis=0)
        surrogate.scale = np.where(spread > 1e-12, spread, np.inf)
        z = (z - surrogate.center) / surrogate.scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an objective without baselines: all zero below
            means = np.nan_to_num(np.nanmean(targets, axis=0))
        y = np.where(np.isnan(targets), means, targets) - means
        gram = z.T @ z + SURROGATE_RIDGE * len(z) * np.eye(z.shape[1])
        surrogate.beta = scipy.linalg.solve(gram, z.T @ y, assume_a="pos")
        sizes = [len(categories[name]) for name in text]
        surrogate.text_sum = np.zeros((sum(sizes), len(text)))
        surrogate.text_sum[np.arange(sum(sizes)), np.repeat(np.arange(len(text)), sizes)] = 1.0
        return surrogate

    def _design(self, frame: pl.DataFrame, x: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(x), self.fill, x)
        indicators = [
            (pl.col(name).cast(pl.String) == value).fill_null(False).cast(pl.Float64).alias(f"{name}={j}")
            for name, values in self.categories.items()
            for j, value in enumerate(values)
        ]
        if not indicators:
            return filled
        return np.hstack([filled, frame.select(indicators).to_numpy()])

    def contributions(self, frame: pl.DataFrame, x: np.ndarray, objective: np.ndarray) -> np.ndarray:
        """(rows × numeric-then-text features) contributions to each row's own objective (index in ``objectives``)."""
        z = (self._design(frame, x) - self.center) / self.scale
        c = z * self.beta.T[objective]
        n = x.shape[1]
        out: np.ndarray = np.hstack([c[:, :n], c[:, n:] @ self.text_sum])
        return out


def _numeric_matrix(frame: pl.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    """The numeric features of ``frame`` as float64 (NaN where missing, or where the frame lacks the column)."""
    out = np.full((frame.height, len(numeric)), np.nan)
    columns = set(frame.columns)
    present = [i for i, f in enumerate(numeric) if f in columns]
    if present:
        names = [numeric[i] for i in present]
        out[:, present] = frame.select(names).to_numpy().astype(np.float64, copy=False)
    return out


def _target(baseline: np.ndarray, unit: str) -> np.ndarray:
    """The scale the baseline is explained on: logit of a chance, log of dollars."""
    if unit == "usd":
        out: np.ndarray = np.log1p(np.maximum(baseline, 0.0))
        return out
    p = np.clip(baseline, 1e-6, 1 - 1e-6)
    out = np.log(p / (1 - p))
    return out


def _tree_contributions(model: EffectModel, frame: pl.DataFrame, objective: str) -> tuple[list[str], np.ndarray] | None:
    """The model's do-nothing tree contributions for ``objective`` (logit scale), or None when it has none.

    Uses ``model.baseline_contributions(frame, objective)`` when the model offers it; else the
    fold boosters of the fitted objective with the arm set to ``none``.
    """
    accessor = getattr(model, "baseline_contributions", None)
    if callable(accessor):
        result = accessor(frame, objective)
        return None if result is None else (list(result[0]), np.asarray(result[1], dtype=np.float64))
    fits = getattr(model, "fits_", None)
    matrix = getattr(model, "matrix_", None)
    arms = getattr(model, "arms_", None)
    if fits is None or matrix is None or not arms or arms[0] != NO_ACTION:
        return None
    fit = next((f for f in fits if f.spec.objective == objective and f.boosters), None)
    if fit is None:
        return None
    boosters = list(fit.boosters)
    columns = list(matrix.columns_)
    x = matrix.transform(frame)
    xa = np.column_stack([x, np.zeros(len(x))]).astype(np.float32)  # the arm, last: code 0 is ``none``
    if boosters[0].num_feature() != xa.shape[1]:
        return None
    used = boosters[: max(1, TREE_BOOSTER_ROWS // max(frame.height, 1))]
    total = np.zeros((frame.height, len(columns)))
    # The projection's trees (its baseline's), not every tree grown past them: predicting one booster
    # with two tree counts at once, as a projection on another thread, gave wrong numbers (LightGBM
    # issue #6142). The model's thread count, named as every LightGBM call (quiet_lightgbm).
    trees = fit.n_trees or None
    for booster in used:
        contrib = booster.predict(xa, pred_contrib=True, num_iteration=trees, num_threads=model.n_jobs or 0)
        total += np.asarray(contrib)[:, : len(columns)]
    return columns, total / len(used)


def _select_families(
    contrib: np.ndarray, valid: np.ndarray, starts: np.ndarray, lengths: np.ndarray, top: int
) -> np.ndarray:
    """For each row, the features of the ``top`` families whose contributions add up most above 0.

    Families are contiguous runs of columns (``starts``, ``lengths``); each family is cited by its
    feature with the largest contribution among those with a value. Returns (rows × top) feature
    indices, -1 where fewer families qualify.
    """
    rows, n_families = contrib.shape[0], len(starts)
    top = min(top, n_families)
    if top == 0 or rows == 0:
        return np.full((rows, top), -1, dtype=np.int64)
    clean = np.nan_to_num(contrib, nan=0.0, posinf=0.0, neginf=0.0)
    score = np.add.reduceat(clean, starts, axis=1)
    has_value = np.logical_or.reduceat(valid, starts, axis=1)
    score = np.where(has_value & (score > 1e-9), score, -np.inf)
    best = np.argpartition(-score, top - 1, axis=1)[:, :top] if top < n_families else np.tile(np.arange(top), (rows, 1))
    picked = np.take_along_axis(score, best, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    picked = np.take_along_axis(picked, order, axis=1)
    masked = np.where(valid, clean, -np.inf)
    span = int(lengths.max())
    offsets = np.arange(span)
    chosen = np.full((rows, top), -1, dtype=np.int64)
    for r in range(top):
        first, size = starts[best[:, r]], lengths[best[:, r]]
        index = first[:, None] + np.minimum(offsets[None, :], size[:, None] - 1)
        within = np.take_along_axis(masked, index, axis=1)
        within[offsets[None, :] >= size[:, None]] = -np.inf
        chosen[:, r] = first + np.argmax(within, axis=1)
    chosen[~np.isfinite(picked)] = -1
    return chosen


def _signals(
    snapshot: pl.DataFrame,
    dec: pl.DataFrame,
    baselines: pl.DataFrame,
    catalog: _Catalog,
    model: EffectModel | None,
    previous: pl.DataFrame | pl.LazyFrame | None,
    top: int,
    method: str,
    percent: Collection[str] | None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """The signals that drove each account's baseline for the objective its evidence is about.

    Returns the long table (``_SIGNAL_ROW_SCHEMA``) and each numeric feature's mean absolute
    contribution (what comparables are measured on).
    """
    features = _Features.of(snapshot)
    empty = pl.DataFrame(schema=_SIGNAL_ROW_SCHEMA)
    if not features.names:
        return empty, {}
    # The objective a signal is about: the subject action's; for nothing, the best runner-up's.
    objectives = [s.objective for s in catalog.specs]
    objective_of = dec.join(
        catalog.actions.select(pl.col("action_id").alias("_alt_action"), pl.col("action_objective").alias("_alt_o")),
        on="_alt_action",
        how="left",
        maintain_order="left",
    ).select(
        "account_id",
        "_i",
        pl.coalesce("_subject_objective", "_alt_o", pl.lit(objectives[0] if objectives else None)).alias("_objective"),
    )
    # Where each decided account's row is in the snapshot (its first, if it has several).
    where = (
        snapshot.select(pl.col("account_id").cast(pl.String))
        .with_row_index("_s")
        .join(objective_of, on="account_id", how="inner", maintain_order="left")
        .unique("_i", keep="first", maintain_order=True)
        .with_columns(
            pl.col("_objective").replace_strict(objectives, list(range(len(objectives))), default=0).alias("_oi")
        )
    )
    if where.height == 0 or not objectives:
        return empty, {}

    def rows_of(part: pl.DataFrame, columns: Sequence[str] | None) -> pl.DataFrame:
        picked = snapshot if columns is None else snapshot.select(columns)
        keys = part.select("account_id", "_i", "_oi")
        return picked.drop("account_id", strict=False)[part.get_column("_s")].hstack(keys)

    use_tree = model is not None and (method == "tree" or (method == "auto" and where.height <= TREE_MAX_ROWS))
    surrogate = None
    kinds = signal_kinds(snapshot, catalog.signal_kinds)
    levels = {stem for stem, kind in kinds.items() if kind == "level"}
    counts = {stem for stem, kind in kinds.items() if kind == "count"}
    reports = _reported_amounts(snapshot, counts)
    if not use_tree:
        sample = rows_of(where.gather_every(max(1, where.height // SURROGATE_SAMPLE)), None)
        surrogate, features = _fit_surrogate(sample, baselines, catalog, features, counts)
    prev = None
    earlier = None if previous is None else previous.lazy()
    columns = set() if earlier is None else set(earlier.collect_schema().names())
    if earlier is not None and "account_id" in columns:
        shared = [f for f in features.numeric if f in columns]
        prev = (
            earlier.select(pl.col("account_id").cast(pl.String), *shared)
            .unique("account_id", keep="first", maintain_order=True)
            .collect()
        )
    needed = None if use_tree else [*features.numeric, *features.text]
    wordings = [
        feature_wording(f, names=catalog.stems, levels=levels, counts=counts, teams=catalog.teams)
        for f in features.names
    ]
    importance = np.zeros(len(features.names))
    parts: list[pl.DataFrame] = []
    for start in range(0, where.height, CHUNK_ROWS):
        chunk = rows_of(where.slice(start, CHUNK_ROWS), needed)
        x = _numeric_matrix(chunk, features.numeric)
        contrib = _chunk_contributions(chunk, x, features, objectives, model if use_tree else None, surrogate)
        if contrib is None:
            continue
        text_present = np.column_stack(
            [np.zeros(chunk.height, dtype=bool)] + [chunk.get_column(t).is_not_null().to_numpy() for t in features.text]
        )[:, 1:]
        valid = features.gather(~np.isnan(x), text_present) & _citable(features, wordings, x)
        importance += np.abs(contrib).sum(axis=0)
        if top > 0:
            chosen = _select_families(contrib, valid, features.starts, features.lengths, top)
            parts.append(_signal_part(chunk, chosen, x, features, prev))
    rows = pl.concat(parts) if parts else pl.DataFrame(schema=_PICKED_SCHEMA)
    signal_rows = _phrase_signals(rows, features, catalog, snapshot, percent, levels, counts, reports)
    mean_abs = importance / where.height
    slot = {f: i for i, f in enumerate(features.names)}
    return signal_rows, {f: float(mean_abs[slot[f]]) for f in features.numeric}


def _citable(features: _Features, wordings: Sequence[Wording], x: np.ndarray) -> np.ndarray:
    """(rows × features): where a value has something to say (:func:`~nextmove.decide.phrases.citable`).

    A level's window total, a count's window mean and a change that reads 0% are never cited; their
    family is cited by another of its features, or gives way to the next family.
    """
    out = np.ones((x.shape[0], len(features.names)), dtype=bool)
    for j, wording in enumerate(wordings):
        column = features.column[j]
        if column < len(features.numeric) and (not wording.cited or wording.kind in ("trend", "role_trend")):
            out[:, j] = citable(wording, x[:, column])
    return out


def _chunk_contributions(
    chunk: pl.DataFrame,
    x: np.ndarray,
    features: _Features,
    objectives: list[str],
    model: EffectModel | None,
    surrogate: _Surrogate | None,
) -> np.ndarray | None:
    """(rows × features) contributions to each row's objective, by the model's trees or the surrogate."""
    if surrogate is not None:
        raw = surrogate.contributions(chunk, x, chunk.get_column("_oi").to_numpy())
        found: np.ndarray = np.nan_to_num(raw[:, features.column])
        return found
    if model is None:
        return None
    out = np.zeros((chunk.height, len(features.names)))
    position = {f: i for i, f in enumerate(features.names)}
    for index, objective in enumerate(objectives):
        rows = np.flatnonzero(chunk.get_column("_oi").to_numpy() == index)
        if len(rows) == 0:
            continue
        tree = _tree_contributions(model, chunk[rows], objective)
        if tree is None:
            continue
        for j, name in enumerate(tree[0]):
            if name in position:
                out[rows, position[name]] = tree[1][:, j]
    return np.nan_to_num(out)


def _fit_surrogate(
    sample: pl.DataFrame,
    baselines: pl.DataFrame,
    catalog: _Catalog,
    features: _Features,
    counts: Collection[str] = (),
) -> tuple[_Surrogate | None, _Features]:
    """The surrogate of every objective's baseline, fitted on a sample of the decided accounts.

    A first fit on every feature ranks them by their mean absolute contribution in the sample;
    the surrogate is then refitted on the :data:`SURROGATE_FEATURES` that matter most (and what
    their citations read: :func:`_companions`), which is what the whole book is explained with.
    """
    objectives = [s.objective for s in catalog.specs]
    wide = (
        baselines.join(sample.select("_i"), on="_i", how="semi")
        .with_columns(pl.concat_str([pl.lit("_y:"), pl.col("objective")]).alias("objective"))
        .pivot(on="objective", index="_i", values="baseline", aggregate_function="first")
    )
    sample = sample.join(wide, on="_i", how="inner", maintain_order="left")
    if sample.height < 10:
        return None, features
    units = {s.objective: s.unit for s in catalog.specs}
    targets = np.column_stack(
        [
            _target(sample.get_column(f"_y:{o}").cast(pl.Float64).to_numpy(), units[o])
            if f"_y:{o}" in wide.columns
            else np.full(sample.height, np.nan)
            for o in objectives
        ]
    )
    x = _numeric_matrix(sample, features.numeric)
    surrogate = _Surrogate.fit(sample, x, targets, objectives, features.text)
    if len(features.names) <= SURROGATE_FEATURES:
        return surrogate, features
    own = sample.get_column("_oi").to_numpy()
    weight = np.abs(np.nan_to_num(surrogate.contributions(sample, x, own)[:, features.column])).mean(axis=0)
    top = [features.names[i] for i in np.argsort(-weight, kind="stable")[:SURROGATE_FEATURES] if weight[i] > 0]
    kept = _Features.of(sample, keep=set(top) | {c for f in top for c in _companions(f, counts)})
    x = _numeric_matrix(sample, kept.numeric)
    return _Surrogate.fit(sample, x, targets, objectives, kept.text), kept


def _companions(feature: str, counts: Collection[str]) -> list[str]:
    """Features the citation of ``feature`` reads besides it: a mean's trend, a latest value's age; and
    for a count signal's window mean, which is not cited, the window total that cites its family instead.

    Examples
    --------
    >>> _companions("lessons_mean_28d", {"lessons"}), _companions("nps_last", ())
    (['lessons_trend_28d', 'lessons_sum_28d'], ['nps_days_since_last'])
    """
    wording = feature_wording(feature, counts=counts)
    out = [f for f in (wording.trend_feature, wording.age_feature) if f]
    if wording.kind == "mean" and not wording.cited:
        out.append(f"{feature.removesuffix(f'_mean_{wording.window}d')}_sum_{wording.window}d")
    return out


_PICKED_SCHEMA = {
    "_i": pl.UInt32,
    "rank": pl.Int64,
    "_f": pl.Int64,
    "value": pl.Float64,
    "text": pl.String,
    "trend": pl.Float64,
    "previous": pl.Float64,
    "age": pl.Float64,
}


def _signal_part(
    chunk: pl.DataFrame, chosen: np.ndarray, x: np.ndarray, features: _Features, prev: pl.DataFrame | None
) -> pl.DataFrame:
    """The chosen features of a chunk of accounts with their values, trends, ages, earlier values and text."""
    rows, ranks = np.nonzero(chosen >= 0)
    feats = chosen[rows, ranks]
    column = features.column[feats]
    n_num = len(features.numeric)
    is_num = column < n_num
    value = np.full(len(rows), np.nan)
    value[is_num] = x[rows[is_num], column[is_num]]
    trend_column = features.trend[feats]
    trend = np.full(len(rows), np.nan)
    has_trend = trend_column >= 0
    trend[has_trend] = x[rows[has_trend], trend_column[has_trend]]
    age_column = features.age[feats]
    age = np.full(len(rows), np.nan)
    has_age = age_column >= 0
    age[has_age] = x[rows[has_age], age_column[has_age]]
    previous = np.full(len(rows), np.nan)
    if prev is not None and is_num.any() and set(features.numeric) & set(prev.columns):
        aligned = chunk.select("account_id").join(prev, on="account_id", how="left", maintain_order="left")
        earlier = _numeric_matrix(aligned, features.numeric)
        previous[is_num] = earlier[rows[is_num], column[is_num]]
    texts = np.full(len(rows), None, dtype=object)
    for t, name in enumerate(features.text):
        hit = np.flatnonzero(column == n_num + t)
        if len(hit):
            texts[hit] = chunk.get_column(name).cast(pl.String).gather(rows[hit]).to_numpy()
    return pl.DataFrame(
        {
            "_i": chunk.get_column("_i").gather(rows),
            "rank": ranks.astype(np.int64),
            "_f": feats.astype(np.int64),
            "value": value,
            "text": pl.Series("text", texts.tolist(), dtype=pl.String),
            "trend": trend,
            "previous": previous,
            "age": age,
        },
        schema=_PICKED_SCHEMA,
    ).with_columns(pl.col("value", "trend", "previous", "age").fill_nan(None))


def _phrase_signals(
    rows: pl.DataFrame,
    features: _Features,
    catalog: _Catalog,
    snapshot: pl.DataFrame,
    percent: Collection[str] | None,
    levels: Collection[str],
    counts: Collection[str] = (),
    reports: Collection[str] = (),
) -> pl.DataFrame:
    if rows.height == 0:
        return pl.DataFrame(schema=_SIGNAL_ROW_SCHEMA)
    stems = _percent_stems(snapshot, features.numeric) if percent is None else set(percent)
    used = sorted(set(rows.get_column("_f").to_list()))
    text = set(features.text)
    names = [features.names[i] for i in used]
    stale = _usual_intervals(snapshot, [n.removesuffix("_last") for n in names if n.endswith("_last")])
    wordings = [
        feature_wording(
            name,
            names=catalog.stems,
            percent=stems,
            levels=levels,
            counts=counts,
            reports=reports,
            teams=catalog.teams,
            stale_after=stale,
        )
        for name in names
    ]
    flags = _flag_columns(snapshot, [w.feature for w in wordings if w.kind == "number"])
    wordings = [replace(w, kind="flag") if w.feature in flags else w for w in wordings]
    table = wording_table(wordings).with_columns(
        pl.Series("_f", used, dtype=pl.Int64),
        pl.Series("_text", [features.names[i] in text for i in used], dtype=pl.Boolean),
    )
    joined = rows.join(table, on="_f", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("_text")).then(pl.lit("text")).otherwise(pl.col("kind")).alias("kind")
    )
    phrases = render_phrases(joined, currency=catalog.currency)
    return (
        joined.with_columns(phrases.alias("text"))
        .filter(pl.col("text").is_not_null())
        .with_columns(
            pl.col("value").round(6),
            pl.col("previous").round(6),
            pl.int_range(pl.len()).over("_i").cast(pl.Int64).alias("rank"),
        )
        .select(list(_SIGNAL_ROW_SCHEMA))
    )


# ---- comparables -------------------------------------------------------------------------------

_COMPARABLE_ROW_SCHEMA = {
    "_i": pl.UInt32,
    "rank": pl.Int64,
    "comparable_id": pl.String,
    "action_id": pl.String,
    "ts": pl.String,
    "outcome": pl.String,
    "similarity": pl.Float64,
}


def _comparables(
    snapshot: pl.DataFrame,
    dec: pl.DataFrame,
    history: pl.DataFrame,
    importance: Mapping[str, float],
    catalog: _Catalog,
    k: int,
    outcomes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Up to ``k`` other accounts per decision that took the same action in the history, and what followed."""
    known = set(history.columns)
    ranked = sorted((f for f, v in importance.items() if v > 0 and f in known), key=lambda f: -importance[f])
    features = ranked[:COMPARABLE_FEATURES] or [f for f in ("arr", "days_to_renewal", "tenure_days") if f in known]
    specs = {s.objective: s for s in catalog.specs}
    label_of: dict[str, str] = {}
    kind_of: dict[str, tuple[str, bool]] = {}
    for action_id, objective in catalog.actions.select("action_id", "action_objective").iter_rows():
        spec = specs.get(objective)
        if spec is None:
            continue
        label_of[action_id] = spec.value_label if spec.is_amount else spec.label
        kind_of[action_id] = (spec.outcome, spec.is_amount)
    if not label_of or "action_id" not in history.columns:
        return pl.DataFrame(schema=_COMPARABLE_ROW_SCHEMA)
    finder = ComparableFinder(features, k=k).fit(history, label_of)
    subjects = dec.select("account_id", "_i", "_subject").filter(pl.col("_subject") != NO_ACTION)
    # Only the columns the finder reads (a large book's snapshot is gigabytes).
    snap = (
        snapshot.select(pl.col("account_id").cast(pl.String), *[f for f in features if f in snapshot.columns])
        .unique("account_id", keep="first", maintain_order=True)
        .join(subjects, on="account_id", how="inner", maintain_order="left")
    )
    parts = []
    dated = outcomes is not None and of_dates(outcomes)
    for (action,), group in snap.partition_by("_subject", as_dict=True, include_key=False).items():
        action_id = str(action)
        if action_id not in kind_of:
            continue
        found = finder.find_frame(group, action_id)
        if found.height == 0:
            continue
        kind, is_amount = kind_of[action_id]
        words = isolated(kind.replace("_", " "))
        if outcomes is None:
            text = _credited_words(pl.col("outcome"), words, is_amount, catalog.horizon_days, catalog.currency)
        else:
            found = _with_window(found, outcomes, kind, catalog.horizon_days, dated=dated)
            text = _window_words(words, is_amount, catalog.horizon_days, catalog.currency)
        parts.append(
            found.with_columns(
                group.get_column("_i").gather(found.get_column("row")).alias("_i"),
                pl.lit(action_id).alias("action_id"),
                text.alias("outcome"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=_COMPARABLE_ROW_SCHEMA)
    return (
        pl.concat(parts)
        .with_columns(
            pl.col("decision_ts").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00").alias("ts"),
            pl.col("similarity").round(3),
        )
        .select(list(_COMPARABLE_ROW_SCHEMA))
    )


def _credited_words(value: pl.Expr, outcome: str, is_amount: bool, horizon_days: int, currency: str) -> pl.Expr:
    """What a history's label says: an outcome within the horizon (an amount in ``currency``), or none credited to it.

    A history attributed by ``touch_id`` counts only what was credited to each touch, so a 0 there
    does not mean nothing happened (a later touch may have been credited with it).
    """
    within = f"{outcome} within {horizon_days} days"
    happened = pl.concat_str([pl.lit(f"{within}: "), format_money(value, currency)]) if is_amount else pl.lit(within)
    return pl.when(value > 0).then(happened).otherwise(pl.lit(f"{within}: none credited to it"))


def _with_window(
    found: pl.DataFrame, outcomes: pl.DataFrame, kind: str, horizon_days: int, *, dated: bool
) -> pl.DataFrame:
    """``found`` with what followed each decision in its label window (``(ts, ts + horizon]``; for outcomes
    of dates ``[ts, ts + horizon)``, as the training labels): ``_n`` outcomes of ``kind``,
    their ``_sum`` of values and ``_other`` (one of them credited to a touch: another one, when the
    decision's own label has none of it)."""
    cols = outcomes.columns
    of_kind = outcomes.lazy().filter(pl.col("kind").cast(pl.String) == kind)
    of_kind = of_kind.select(
        pl.col("account_id").cast(pl.String).alias("comparable_id"),
        _utc(pl.col("ts"), outcomes.schema["ts"]).alias("_ts"),
        (pl.col("value").cast(pl.Float64).fill_null(0.0) if "value" in cols else pl.lit(0.0)).alias("_v"),
        (pl.col("touch_id").is_not_null() if "touch_id" in cols else pl.lit(False)).alias("_credited"),
    )
    keyed = found.with_row_index("_f")
    horizon = pl.duration(days=horizon_days)
    window = (
        keyed.lazy()
        .select("_f", "comparable_id", "decision_ts")
        .join(of_kind, on="comparable_id", how="inner")
        .filter(
            in_label_window(pl.col("_ts"), pl.col("decision_ts"), pl.col("decision_ts") + horizon, whole_days=dated)
        )
        .group_by("_f")
        .agg(
            pl.len().cast(pl.Int64).alias("_n"),
            pl.col("_v").sum().alias("_sum"),
            pl.col("_credited").any().alias("_other"),
        )
        .collect()
    )
    return (
        keyed.join(window, on="_f", how="left", maintain_order="left")
        .with_columns(pl.col("_n").fill_null(0), pl.col("_sum").fill_null(0.0), pl.col("_other").fill_null(False))
        .drop("_f")
    )


def _window_words(outcome: str, is_amount: bool, horizon_days: int, currency: str) -> pl.Expr:
    """What followed a comparable's decision within the horizon (``_n``, ``_sum`` in ``currency``), and what of it was
    credited to it.

    ``outcome`` holds the history's label of the decision: what was credited to it (all of the window
    for a history attributed by window). When the window holds an outcome its label does not, the
    words say it went to another touch (or to none), so "churn within 90 days: none" is never said of a churn.
    """
    # The outcome kind is a label, not a noun to negate: "cancelled within 30 days: none", never
    # "no cancelled within 30 days".
    within = f"{outcome} within {horizon_days} days"
    credited = pl.col("outcome")
    elsewhere = (
        pl.when(pl.col("_other"))
        .then(pl.lit(" (credited to another touch)"))
        .otherwise(pl.lit(" (credited to no touch)"))
    )
    if is_amount:
        # The label's window starts at the decision itself, the window here just after it: take the larger.
        total = pl.max_horizontal(pl.col("_sum"), credited)
        part = (
            pl.when(credited <= 0)
            .then(elsewhere)
            .when(credited < total - 0.005)
            .then(pl.concat_str([pl.lit(" ("), format_money(credited, currency), pl.lit(" of it credited to it)")]))
            .otherwise(pl.lit(""))
        )
        happened = pl.concat_str([pl.lit(f"{within}: "), format_money(total, currency), part])
        return pl.when(total > 0).then(happened).otherwise(pl.lit(f"{within}: none"))
    part = pl.when(credited > 0).then(pl.lit("")).otherwise(elsewhere)
    happened = pl.concat_str([pl.lit(within), part])
    return pl.when((pl.col("_n") > 0) | (credited > 0)).then(happened).otherwise(pl.lit(f"{within}: none"))


# ---- assembly ----------------------------------------------------------------------------------

_PROJECTED_TYPE = pl.List(
    pl.Struct(
        {
            "objective": pl.String,
            "outcome": pl.String,
            "unit": pl.String,
            "without": pl.Float64,
            "with": pl.Float64,
            "low": pl.Float64,
            "high": pl.Float64,
            "effect": pl.Float64,
            "effect_usd": pl.Float64,
        }
    )
)
_SIGNALS_TYPE = pl.List(
    pl.Struct({"feature": pl.String, "value": pl.Float64, "previous": pl.Float64, "text": pl.String})
)
_COMPARABLES_TYPE = pl.List(
    pl.Struct(
        {
            "account_id": pl.String,
            "action_id": pl.String,
            "ts": pl.String,
            "outcome": pl.String,
            "similarity": pl.Float64,
        }
    )
)
_ALTERNATIVES_TYPE = pl.List(
    pl.Struct(
        {
            "action_id": pl.String,
            "variant": pl.String,
            "value_usd": pl.Float64,
            "low": pl.Float64,
            "high": pl.Float64,
            "why": pl.String,
            "reason": pl.String,
            "pooled": pl.Boolean,
            "projected": _PROJECTED_TYPE,
        }
    )
)


def _summary(currency: str) -> pl.Expr:
    """One plain sentence per decision (amounts in ``currency``)."""
    name = _display(pl.col("action_id"), pl.col("action_name"), pl.col("variant"))
    model_name = _name(pl.col("model_action_id"), pl.col("_model_name"))
    default_name = _name(pl.col("default_action_id"), pl.col("_default_name"))
    # A dash, not a colon: the headline has its own ("Call — churn within 90 days: 34% → 21% chance").
    headline = pl.when(pl.col("_headline").is_not_null()).then(pl.concat_str([pl.lit(" — "), pl.col("_headline")]))
    value = pl.col("value_usd")
    interval = (
        pl.when(pl.col("value_low_usd").is_not_null() & pl.col("value_high_usd").is_not_null())
        .then(
            pl.concat_str(
                [
                    pl.lit(" ("),
                    format_money(pl.col("value_low_usd"), currency),
                    pl.lit(" to "),
                    format_money(pl.col("value_high_usd"), currency),
                    pl.lit(")"),
                ]
            )
        )
        .otherwise(pl.lit(""))
    )
    # Where a material share of a positive value comes from objectives other than the headline's, the sentence
    # says so: "worth $6,631" after an advocacy headline read as advocacy's, when $6,626 of it was retention's.
    # "Of which" only when the parts named fit in the value (a loss elsewhere or the cost may make it smaller).
    credited = (pl.col("_credit").is_not_null() & (value > 0) & (pl.col("_credit_share") > OTHER_SHARE)).fill_null(
        False
    )
    credit = (
        pl.when(credited)
        .then(
            pl.concat_str(
                [
                    pl.when(pl.col("_credit_usd") <= value.round(2))
                    .then(pl.lit(", of which "))
                    .otherwise(pl.lit(", with ")),
                    pl.col("_credit"),
                ]
            )
        )
        .otherwise(pl.lit(""))
    )
    worth = (
        pl.when(value.is_not_null())
        .then(pl.concat_str([pl.lit(", worth "), format_money(value, currency), interval, credit]))
        .otherwise(pl.lit(""))
    )
    signals = (
        pl.when(pl.col("_signal_text").is_not_null())
        .then(pl.concat_str([pl.lit("; signals: "), pl.col("_signal_text")]))
        .otherwise(pl.lit(""))
    )
    alternative = _display(pl.col("_alt_action"), pl.col("_alt_name"), pl.col("_alt_variant"))
    runner_up = (
        pl.when(pl.col("_alt_action").is_not_null())
        .then(
            pl.concat_str(
                [
                    pl.lit("; the best other option, "),
                    alternative,
                    pl.when(pl.col("_alt_value").is_not_null())
                    .then(pl.concat_str([pl.lit(" ("), format_money(pl.col("_alt_value"), currency), pl.lit(")")]))
                    .otherwise(pl.lit("")),
                    pl.lit(", lost: "),
                    pl.col("_alt_reason"),
                ]
            )
        )
        .otherwise(pl.lit(""))
    )
    fate = pl.col("_control_default")  # decided once, with default_why (see _control_default)
    control = pl.concat_str(
        [
            pl.lit("Control group: "),
            pl.when(fate == "did_not_fit")
            .then(
                pl.concat_str(
                    [
                        pl.lit("nothing is done, since the lifecycle default, "),
                        default_name,
                        pl.lit(", did not fit the capacity left"),
                    ]
                )
            )
            .when(fate == "not_allowed")
            .then(
                pl.concat_str(
                    [
                        pl.lit("nothing is done, since the lifecycle default, "),
                        default_name,
                        pl.lit(", is not allowed now"),
                    ]
                )
            )
            .when(pl.col("action_id") == NO_ACTION)
            .then(pl.lit("nothing is done, as the lifecycle playbook says"))
            # The headline is the projection of what the account gets, as its value and ``projected`` are.
            .otherwise(
                pl.concat_str([name, pl.lit(", as the lifecycle playbook says"), headline.otherwise(pl.lit(""))])
            ),
            # "Which the model would choose too" follows the default the account gets; after "the default, X, is
            # not allowed now" it read as if the model would choose X, when it would do nothing.
            pl.when(pl.col("model_action_id") == NO_ACTION)
            .then(
                pl.when(pl.col("action_id") == NO_ACTION)
                .then(pl.lit("; the model would also do nothing"))
                .otherwise(pl.lit("; the model would do nothing"))
            )
            .when(pl.col("model_action_id") == pl.col("action_id"))
            .then(pl.lit(", which the model would choose too"))
            .otherwise(pl.concat_str([pl.lit("; the model would choose "), model_name])),
            pl.lit("."),
        ]
    )
    nothing = pl.concat_str([pl.lit("Do nothing for now"), runner_up, pl.lit(".")])
    pooled = (
        pl.when(pl.col("_pooled").fill_null(False))
        .then(pl.lit("; too few past touches to learn its own effect, so it is projected from the other actions'"))
        .otherwise(pl.lit(""))
    )
    act = pl.concat_str(
        [
            pl.when(pl.col("arm") == "explore").then(pl.lit("Exploring: ")).otherwise(pl.lit("")),
            name,
            headline.otherwise(pl.lit("")),
            worth,
            pooled,
            signals,
            pl.lit("."),
        ]
    )
    return (
        pl.when(pl.col("arm") == "control")
        .then(control)
        .when(pl.col("action_id") == NO_ACTION)
        .then(nothing)
        .otherwise(act)
    )


def _assemble(
    dec: pl.DataFrame,
    projected: pl.DataFrame,
    signal_rows: pl.DataFrame,
    comparable_rows: pl.DataFrame,
    alternatives: pl.DataFrame,
    currency: str,
) -> pl.DataFrame:
    signals = (
        signal_rows.sort("_i", "rank")
        .group_by("_i", maintain_order=True)
        .agg(
            pl.struct("feature", "value", "previous", "text").alias("_signals"),
            pl.col("text").head(2).str.join("; ").alias("_signal_text"),
        )
    )
    comparables = (
        comparable_rows.sort("_i", "rank")
        .group_by("_i", maintain_order=True)
        .agg(
            pl.struct(pl.col("comparable_id").alias("account_id"), "action_id", "ts", "outcome", "similarity").alias(
                "_comparables"
            )
        )
    )
    frame = (
        dec.join(projected, on="_i", how="left", maintain_order="left")
        .join(signals, on="_i", how="left", maintain_order="left")
        .join(comparables, on="_i", how="left", maintain_order="left")
        .join(alternatives, on="_i", how="left", maintain_order="left")
        .with_columns(
            pl.col("_projected").cast(_PROJECTED_TYPE).fill_null(pl.lit([], dtype=_PROJECTED_TYPE)),
            pl.col("_signals").cast(_SIGNALS_TYPE).fill_null(pl.lit([], dtype=_SIGNALS_TYPE)),
            pl.col("_comparables").cast(_COMPARABLES_TYPE).fill_null(pl.lit([], dtype=_COMPARABLES_TYPE)),
            pl.col("_alternatives").cast(_ALTERNATIVES_TYPE).fill_null(pl.lit([], dtype=_ALTERNATIVES_TYPE)),
        )
        .with_columns(without_stray_bidi_controls(_summary(currency)).alias("summary"))
    )
    evidence = pl.struct(
        pl.lit(SCHEMA_VERSION).alias("schema"),
        "action_id",
        "variant",
        "arm",
        "propensity",
        "model_action_id",
        "default_action_id",
        "differs_from_default",
        "default_why",
        pl.col("value_usd").round(2),
        pl.col("value_low_usd").round(2),
        pl.col("value_high_usd").round(2),
        pl.col("_projected").alias("projected"),
        pl.col("_signals").alias("signals"),
        pl.col("_comparables").alias("comparables"),
        "summary",
        pl.col("_pooled").fill_null(False).alias("pooled"),
    ).struct.json_encode()
    alternatives_json = pl.concat_str(
        [pl.lit("["), pl.col("_alternatives").list.eval(pl.element().struct.json_encode()).list.join(","), pl.lit("]")]
    )
    return frame.select(
        "account_id",
        evidence.alias("evidence"),
        alternatives_json.alias("alternatives"),
        "summary",
    )


# ---- text for people ---------------------------------------------------------------------------


def _money(x: float | None, currency: str) -> str:
    return "unknown" if x is None or not math.isfinite(x) else money_text(x, currency)


def _level(x: float | None, unit: str, currency: str) -> str:
    if x is None or not math.isfinite(x):
        return "unknown"
    if unit == "usd":
        return _money(x, currency)
    share = x * 100
    return f"{share:.1f}%" if abs(share) < 9.95 else f"{share:.0f}%"


def _words(value: str | None) -> str:
    return "" if value is None else value.replace("_", " ")


_POOLED_WORDS = ", the pooled effect of all actions: too little history of its own"
"""What the receipt text adds to a value that is the pooled effect (``pooled``)."""


def receipt_text(
    evidence: Mapping[str, Any],
    alternatives: Sequence[Mapping[str, Any]],
    *,
    playbook: Playbook | None = None,
    currency: str | None = None,
) -> str:
    """The receipt in plain words for a person (several lines), from the stored receipt alone.

    Parameters
    ----------
    evidence, alternatives
        A stored receipt (``json.loads`` of the ``evidence`` and ``alternatives`` columns).
    playbook
        Optional: shows action and objective names instead of their ids.
    currency
        The ISO 4217 code the amounts are written in; default the ``playbook``'s ``currency``, else
        ``USD``. The stored sentences (``summary``, ``default_why``, the signals' texts) keep the
        currency of the run that wrote them.

    Examples
    --------
    >>> evidence = {
    ...     "schema": 1, "action_id": "call", "variant": None, "arm": "model", "propensity": 0.9,
    ...     "model_action_id": "call", "default_action_id": "none", "differs_from_default": True,
    ...     "default_why": "The lifecycle playbook would do nothing; call is worth $120.",
    ...     "value_usd": 120.0, "value_low_usd": 10.0, "value_high_usd": 250.0,
    ...     "projected": [{"objective": "retention", "outcome": "churn", "unit": "probability", "without": 0.34,
    ...                    "with": 0.21, "low": 0.15, "high": 0.27, "effect": -0.13, "effect_usd": 120.0}],
    ...     "signals": [{"feature": "days_to_renewal", "value": 45.0, "previous": None, "text": "renewal in 45 days"}],
    ...     "comparables": [], "summary": "Call — churn within 90 days: 34% → 21% chance (15% to 27%), worth $120.",
    ... }
    >>> print(receipt_text(evidence, [{"action_id": "email", "variant": None, "value_usd": 40.0, "low": -5.0,
    ...                                "high": 90.0, "why": "lower_value", "reason": "lower value"}]))
    Call — churn within 90 days: 34% → 21% chance (15% to 27%), worth $120.
    Recommended: call (chosen by the model, probability 90%)
    Value: $120 (from $10 to $250)
    Projected over the horizon with call:
      - retention (churn): 34% chance without, 21% with (15% to 27%); worth $120
    Signals:
      - renewal in 45 days
    Runner-up actions:
      - email: $40 (from -$5 to $90); lost: lower value
    Lifecycle playbook: The lifecycle playbook would do nothing; call is worth $120.
    """
    money = currency or (playbook.currency if playbook else "USD")
    action_names = {a.id: a.name for a in playbook.actions} if playbook else {}
    objective_names = {k: (o.name or k) for k, o in playbook.objectives.items()} if playbook else {}

    def action(action_id: str | None, variant: str | None = None) -> str:
        if action_id is None or action_id == NO_ACTION:
            return "doing nothing"
        shown = isolated(action_names.get(action_id) or _words(action_id))
        return f"{shown} ({isolated(variant)})" if variant else shown

    lines = [str(evidence.get("summary") or "")]
    arm = evidence.get("arm")
    chosen = action(evidence.get("action_id"), evidence.get("variant"))
    propensity = evidence.get("propensity")
    chance = f", probability {propensity:.0%}" if isinstance(propensity, int | float) else ""
    how = {"model": "chosen by the model", "explore": "chosen to explore", "control": "control group"}.get(
        str(arm), str(arm)
    )
    lines.append(f"Recommended: {chosen} ({how}{chance})")
    value = evidence.get("value_usd")
    if value is not None:
        low, high = evidence.get("value_low_usd"), evidence.get("value_high_usd")
        span = f" (from {_money(low, money)} to {_money(high, money)})" if low is not None and high is not None else ""
        lines.append(f"Value: {_money(value, money)}{span}{_POOLED_WORDS if evidence.get('pooled') else ''}")
    projected = evidence.get("projected") or []
    # The projection and comparables are of the action the account gets, on every arm (as its value is).
    subject = evidence.get("action_id")
    if projected:
        with_what = "if nothing is done" if subject in (None, NO_ACTION) else f"with {action(subject)}"
        lines.append(f"Projected over the horizon {with_what}:")
        for row in projected:
            unit = str(row.get("unit"))
            objective = objective_names.get(str(row.get("objective")), str(row.get("objective")))
            # The outcome kind as a label beside the objective ("Keep subscriber (cancelled)"), unless it
            # repeats it ("Expansion"): "chance of cancelled" does not read.
            outcome = _words(row.get("outcome"))
            label = (
                isolated(objective)
                if outcome.lower() in ("", objective.lower())
                else f"{isolated(objective)} ({isolated(outcome)})"
            )
            what = "expected" if unit == "usd" else "chance"
            line = (
                f"  - {label}: {_level(row.get('without'), unit, money)} {what} without, "
                f"{_level(row.get('with'), unit, money)} with"
            )
            if row.get("low") is not None and row.get("high") is not None:
                line += f" ({_level(row.get('low'), unit, money)} to {_level(row.get('high'), unit, money)})"
            if row.get("effect_usd") is not None:
                line += f"; worth {_money(row.get('effect_usd'), money)}"
            lines.append(line)
    signals = evidence.get("signals") or []
    if signals:
        lines.append("Signals:")
        lines.extend(f"  - {s.get('text')}" for s in signals)
    comparables = evidence.get("comparables") or []
    if comparables:
        lines.append(f"Comparable accounts that got {action(subject)}:")
        for c in comparables:
            day = str(c.get("ts") or "")[:10]
            who = isolated(str(c.get("account_id")))
            lines.append(f"  - {who} on {day}: {c.get('outcome')} (similarity {c.get('similarity')})")
    if alternatives:
        lines.append("Runner-up actions:")
        for alt in alternatives:
            span = ""
            if alt.get("low") is not None and alt.get("high") is not None:
                span = f" (from {_money(alt.get('low'), money)} to {_money(alt.get('high'), money)})"
            pooled = _POOLED_WORDS if alt.get("pooled") else ""
            lines.append(
                f"  - {action(alt.get('action_id'), alt.get('variant'))}: "
                f"{_money(alt.get('value_usd'), money)}{span}{pooled}; "
                f"lost: {alt.get('reason') or _MISSING_REASON.get(str(alt.get('why')), alt.get('why'))}"
            )
    if evidence.get("default_why"):
        lines.append(f"Lifecycle playbook: {evidence.get('default_why')}")
    # The stored sentences keep their names' isolates (a receipt's own); any other bidi control goes.
    return without_stray_bidi_controls("\n".join(lines))
