"""Policies as tables of action probabilities per decision: learned, logged, default, do-nothing and external.

A decision is an account at a decision time (``account_id``, ``decision_ts``): the snapshot the
policy sees. Two touches of one account at one instant are two logged rows of one decision, so
every table here holds one distribution per decision, and off-policy evaluation joins it to each
of the decision's logged rows once (:func:`one_per_decision`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.book import NO_ACTION, Book, terminal_outcome_kinds
from nextmove.errors import ConfigError
from nextmove.features import feature_schema
from nextmove.playbook import Playbook
from nextmove.playbook.expr import compile_eligibility

POLICY_COLUMNS = ("account_id", "decision_ts", "action_id", "probability")
"""Columns of a policy table; ``decision_ts`` is optional (then the policy applies to every row of the account)."""

_TOLERANCE = 1e-6


def _keys(frame: pl.DataFrame) -> list[str]:
    return ["account_id", "decision_ts"] if "decision_ts" in frame.columns else ["account_id"]


def policy_keys(policy: pl.DataFrame) -> list[str]:
    """The columns that name a row in a policy table: ``account_id`` and, if present, ``decision_ts``."""
    return _keys(policy)


def one_per_decision(policy: pl.DataFrame) -> pl.DataFrame:
    """The policy with one probability per decision and action: rows that repeat another count once.

    A table built from logged rows repeats a decision's distribution once per row of it (two
    touches of one account at one instant are two rows of one decision); joined as it is, every
    such row would be counted once per repeat. Repeats (the same keys, action and probability)
    are one entry; two different probabilities of one action at one decision are ambiguous.

    Parameters
    ----------
    policy
        ``account_id`` (, ``decision_ts``), ``action_id``, ``probability``.

    Returns
    -------
    polars.DataFrame
        The same columns, each (decision, action) once, in the order first seen.

    Raises
    ------
    ConfigError
        If one action of one decision has two different probabilities.

    Examples
    --------
    >>> twice = pl.DataFrame({"account_id": ["a", "a", "b"], "action_id": ["none"] * 3, "probability": [1.0] * 3})
    >>> one_per_decision(twice).rows()
    [('a', 'none', 1.0), ('b', 'none', 1.0)]
    """
    keys = _keys(policy)
    once = policy.unique([*keys, "action_id", "probability"], keep="first", maintain_order=True)
    if once.height == once.select(*keys, "action_id").n_unique():
        return once
    clash = once.filter(pl.len().over(*keys, "action_id") > 1)
    first = clash.row(0, named=True)
    who = ", ".join(f"{k}={first[k]}" for k in keys)
    same = pl.all_horizontal([pl.col(c) == first[c] for c in (*keys, "action_id")])
    seen = ", ".join(f"{p:g}" for p in clash.filter(same).get_column("probability").to_list())
    decisions = clash.select(keys).n_unique()
    raise ConfigError(
        f"the policy gives action {first['action_id']!r} more than one probability at {who} ({seen}; "
        f"{decisions:,} such decision{'' if decisions == 1 else 's'}): a policy has one distribution per account "
        "and decision time, however many logged rows it has there; give each action one row"
    )


def eligible_actions(rows: pl.DataFrame, playbook: Playbook) -> pl.DataFrame:
    """The (row, action) pairs the playbook's eligibility expressions allow, for every row's features.

    Only the actions' ``eligibility`` expressions are applied (cooldowns, contact caps and
    capacities depend on the decision time's whole book and are not). ``none`` is not listed: it
    is always allowed. Rows of one decision (two touches of one account at one instant) share a
    snapshot, so its pairs are listed once (those of its first row).

    Parameters
    ----------
    rows
        ``account_id`` (, ``decision_ts``) and the features the expressions read (a snapshot or
        training set).
    playbook
        The action catalog.

    Returns
    -------
    polars.DataFrame
        ``account_id`` (, ``decision_ts``), ``action_id``: one row per allowed pair of each decision.

    Raises
    ------
    ExpressionError
        If an expression reads a feature the rows lack, or of the wrong kind.

    Examples
    --------
    >>> from nextmove.playbook import Action, Objective
    >>> pb = Playbook(
    ...     objectives={"win": Objective(outcome="win", value="fixed", value_usd=1.0)},
    ...     actions=[
    ...         Action(id="call", name="Call", team="cs", objective="win", eligibility="arr >= 100"),
    ...         Action(id="email", name="Email", team="marketing", objective="win"),
    ...     ],
    ... )
    >>> rows = pl.DataFrame({"account_id": ["a", "b"], "arr": [50.0, 500.0]})
    >>> eligible_actions(rows, pb).sort("account_id", "action_id").rows()
    [('a', 'email'), ('b', 'call'), ('b', 'email')]
    """
    keys = _keys(rows)
    kinds = feature_schema(rows)
    exprs = [compile_eligibility(a.eligibility, kinds, action_id=a.id).alias(a.id) for a in playbook.actions]
    # Two logged rows of one decision share its snapshot: the decision's pairs once, not once per row.
    flags = rows.select(*keys, *exprs).unique(keys, keep="first", maintain_order=True)
    return (
        flags.unpivot(index=keys, variable_name="action_id", value_name="_ok")
        .filter(pl.col("_ok"))
        .select(*keys, pl.col("action_id").cast(pl.String))
    )


def learned_policy(values: pl.DataFrame, *, eligible: pl.DataFrame | None = None) -> pl.DataFrame:
    """The greedy policy of projected values: each row's best action, ``none`` unless one is worth more than 0.

    Parameters
    ----------
    values
        ``account_id`` (and ``decision_ts``), ``action_id``, ``value_usd`` per row and candidate, e.g.
        :attr:`~nextmove.models.effect.EffectProjection.values`.
    eligible
        Optional allowed ``account_id`` (, ``decision_ts``), ``action_id`` pairs; ``none`` is always allowed.

    Returns
    -------
    polars.DataFrame
        A deterministic policy: ``account_id`` (, ``decision_ts``), ``action_id``, ``probability`` = 1.

    Examples
    --------
    >>> values = pl.DataFrame(
    ...     {
    ...         "account_id": ["a", "a", "b", "b"],
    ...         "action_id": ["none", "call", "none", "call"],
    ...         "value_usd": [0, 5, 0, -3],
    ...     }
    ... )
    >>> learned_policy(values).sort("account_id").get_column("action_id").to_list()
    ['call', 'none']
    """
    keys = _keys(values)
    for column in (*keys, "action_id", "value_usd"):
        if column not in values.columns:
            raise ConfigError(f"a learned policy needs values with a {column!r} column")
    candidates = values.select(*keys, pl.col("action_id").cast(pl.String), pl.col("value_usd").cast(pl.Float64))
    if eligible is not None:
        allowed = eligible.select(*keys, pl.col("action_id").cast(pl.String))
        candidates = candidates.join(allowed, on=[*keys, "action_id"], how="semi")
    nothing = (
        values.select(keys)
        .unique(maintain_order=True)
        .with_columns(pl.lit(NO_ACTION).alias("action_id"), pl.lit(0.0).alias("value_usd"))
    )
    candidates = pl.concat([candidates.filter(pl.col("action_id") != NO_ACTION), nothing])
    # Ties go to doing nothing: it sorts after any action of equal value, and is kept only if nothing beats it.
    best = (
        candidates.with_columns((pl.col("action_id") == NO_ACTION).alias("_none"))
        .sort([*keys, "value_usd", "_none"], descending=[False] * len(keys) + [True, True])
        .group_by(keys, maintain_order=True)
        .first()
    )
    return best.select(*keys, "action_id", pl.lit(1.0).alias("probability"))


def logged_policy(
    rows: pl.DataFrame, *, proba: NDArray[np.float64] | None = None, arms: Sequence[str] | None = None
) -> pl.DataFrame:
    """The logging policy: what the history's policy would do, as a policy table.

    Without ``proba`` the log only tells the logging policy's probability of the action it took
    (the row's ``propensity``), so the table holds that one action per row: its IPS and SNIPS
    weights are 1 and their value is the on-policy mean of the logged outcomes, but it is not a
    full distribution and DR cannot use it. With ``proba`` (one row per logged row, one column
    per arm of ``arms``, e.g. :attr:`~nextmove.models.propensity.PropensityModel.proba_`) the
    table is the full estimated distribution.

    Either way the table holds one probability per decision and action: two logged rows of one
    decision (touches of one account at one instant) that took the same action are one entry, their
    probabilities averaged (they are equal unless the log gave the two touches different
    propensities), and two that took different actions are two.

    Raises
    ------
    ConfigError
        If a row has no propensity (and no ``proba`` is given), or ``proba`` does not match.

    Examples
    --------
    >>> rows = pl.DataFrame({"account_id": ["a", "b"], "action_id": ["call", "none"], "propensity": [0.2, 0.7]})
    >>> logged_policy(rows).get_column("probability").to_list()
    [0.2, 0.7]
    """
    keys = _keys(rows)
    if proba is None:
        if "propensity" not in rows.columns or rows.get_column("propensity").null_count():
            raise ConfigError(
                "the logged policy needs every row's propensity; give proba= (e.g. a PropensityModel's proba_) "
                "for rows without one"
            )
        table = rows.select(
            *keys,
            pl.col("action_id").cast(pl.String).fill_null(NO_ACTION),
            pl.col("propensity").cast(pl.Float64).alias("probability"),
        )
        return _mean_per_decision(table, keys)
    matrix = np.asarray(proba, dtype=np.float64)
    names = list(arms) if arms is not None else []
    if matrix.ndim != 2 or matrix.shape[0] != rows.height or matrix.shape[1] != len(names):
        raise ConfigError(
            f"proba must have one row per logged row ({rows.height}) and one column per arm ({len(names)}), "
            f"got shape {matrix.shape}"
        )
    parts = [
        rows.select(keys).with_columns(pl.lit(arm).alias("action_id"), pl.Series("probability", matrix[:, i]))
        for i, arm in enumerate(names)
    ]
    return _mean_per_decision(pl.concat(parts), keys).filter(pl.col("probability") > 0)


def _mean_per_decision(table: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One probability per decision and action, the mean of its rows', in the order first seen."""
    return table.group_by([*keys, "action_id"], maintain_order=True).agg(pl.col("probability").mean())


def do_nothing_policy(rows: pl.DataFrame) -> pl.DataFrame:
    """``none`` at every decision (one row per account, or account and decision time, of ``rows``).

    Examples
    --------
    >>> rows = pl.DataFrame({"account_id": ["a", "a", "b"], "action_id": ["call", "email", "none"]})
    >>> do_nothing_policy(rows).rows()
    [('a', 'none', 1.0), ('b', 'none', 1.0)]
    """
    keys = _keys(rows)
    decisions = rows.select(keys).unique(keep="first", maintain_order=True)
    return decisions.with_columns(pl.lit(NO_ACTION).alias("action_id"), pl.lit(1.0).alias("probability"))


def lifecycle_default_policy(
    rows: pl.DataFrame,
    playbook: Playbook,
    *,
    eligible: pl.DataFrame | None = None,
    recorded: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The lifecycle-stage default: the action whose ``default_for_stages`` names the row's ``lifecycle_stage``.

    Rows whose stage has no default (or whose default is not eligible, when ``eligible`` is
    given) get ``none``. One row per decision: the rows of one (account, decision time) share its
    snapshot, so the first one's stage.

    The accounts table holds each account's stage today, not at a past decision: where the default
    at the decision was recorded (``recorded``: the rows' keys and ``default_action_id``, e.g.
    :func:`recorded_defaults_at` of the runs that made the decisions), that is the default there,
    and the stage is not read.

    Raises
    ------
    ConfigError
        If the rows have no ``lifecycle_stage`` column.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> rows = pl.DataFrame({"account_id": ["a", "b"], "lifecycle_stage": ["renewal", "churned"]})
    >>> lifecycle_default_policy(rows, load_playbook()).get_column("action_id").to_list()
    ['exec_sponsor_call', 'none']
    >>> then = pl.DataFrame({"account_id": ["b"], "default_action_id": ["health_check_call"]})
    >>> lifecycle_default_policy(rows, load_playbook(), recorded=then).get_column("action_id").to_list()
    ['exec_sponsor_call', 'health_check_call']
    """
    if "lifecycle_stage" not in rows.columns:
        raise ConfigError("the lifecycle default policy needs a 'lifecycle_stage' column in the rows")
    keys = _keys(rows)
    rows = rows.unique(keys, keep="first", maintain_order=True)
    stages = rows.get_column("lifecycle_stage").cast(pl.String).unique().drop_nulls().to_list()
    mapping = {stage: playbook.default_action_for_stage(stage) for stage in stages}
    policy = rows.select(
        *keys,
        pl.col("lifecycle_stage")
        .cast(pl.String)
        .replace_strict(mapping, default=NO_ACTION, return_dtype=pl.String)
        .fill_null(NO_ACTION)
        .alias("action_id"),
    )
    if recorded is not None:
        then = recorded.select(*keys, pl.col("default_action_id").cast(pl.String).alias("_then")).drop_nulls()
        if "decision_ts" in keys:
            then = then.with_columns(pl.col("decision_ts").cast(policy.schema["decision_ts"]))
        then = then.unique(keys, keep="last", maintain_order=True)
        policy = policy.join(then, on=keys, how="left", maintain_order="left").select(
            *keys, pl.coalesce("_then", "action_id").alias("action_id")
        )
    if eligible is not None:
        allowed = (
            eligible.select(*keys, pl.col("action_id").cast(pl.String)).unique().with_columns(pl.lit(True).alias("_ok"))
        )
        policy = policy.join(allowed, on=[*keys, "action_id"], how="left").select(
            *keys,
            pl.when(pl.col("_ok") | (pl.col("action_id") == NO_ACTION))
            .then(pl.col("action_id"))
            .otherwise(pl.lit(NO_ACTION))
            .alias("action_id"),
        )
    return policy.with_columns(pl.lit(1.0).alias("probability"))


def recorded_defaults_at(rows: pl.DataFrame, recorded: pl.DataFrame, *, within_days: int) -> pl.DataFrame:
    """Each decision's lifecycle default as it was recorded when it was made, where one was.

    ``recorded`` holds ``account_id, ts, default_action_id``: what a run (its ``as_of``) recorded as
    the account's default then (the store's recommendations). A decision at ``decision_ts`` (the
    start of the UTC day of the logged touch, or a regular date) takes the latest record of its
    account from the ``within_days`` before it up to the end of its day: the run that day, whose
    recommendation the touch followed, or the one before it. Records without a default (a book
    without stages) are no record.

    Parameters
    ----------
    rows
        ``account_id, decision_ts`` of the decisions (e.g. the evaluation rows).
    recorded
        ``account_id, ts, default_action_id``.
    within_days
        How far back a record still holds (``nextmove evaluate``: the playbook's horizon).

    Returns
    -------
    polars.DataFrame
        ``account_id, decision_ts, default_action_id, recorded_ts`` of the decisions with a record, once each.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> day = lambda d: datetime(2025, 3, d, tzinfo=UTC)
    >>> rows = pl.DataFrame({"account_id": ["a", "a", "b"], "decision_ts": [day(3), day(28), day(3)]})
    >>> runs = pl.DataFrame({"account_id": ["a", "b"], "ts": [datetime(2025, 3, 3, 9, tzinfo=UTC), day(4)],
    ...                      "default_action_id": ["call", "email"]})
    >>> recorded_defaults_at(rows, runs, within_days=14).select("account_id", "default_action_id").rows()
    [('a', 'call')]
    """
    for column in ("account_id", "decision_ts"):
        if column not in rows.columns:
            raise ConfigError(f"recorded defaults are matched to decisions by {column!r}, which the rows lack")
    for column in ("account_id", "ts", "default_action_id"):
        if column not in recorded.columns:
            raise ConfigError(f"recorded defaults need a {column!r} column (columns: {', '.join(recorded.columns)})")
    ts = rows.schema["decision_ts"]
    records = (
        recorded.select(
            pl.col("account_id").cast(pl.String),
            pl.col("ts").cast(ts).alias("recorded_ts"),
            pl.col("default_action_id").cast(pl.String),
        )
        .drop_nulls()
        .unique(["account_id", "recorded_ts"], keep="last", maintain_order=True)
        .sort("recorded_ts")
    )
    decisions = (
        rows.select(pl.col("account_id").cast(pl.String), "decision_ts")
        .unique(maintain_order=True)
        .with_columns((pl.col("decision_ts") + pl.duration(days=1)).alias("_day_end"))
        .sort("_day_end")
    )
    matched = decisions.join_asof(
        records,
        left_on="_day_end",
        right_on="recorded_ts",
        by="account_id",
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    oldest = pl.col("decision_ts") - pl.duration(days=within_days)
    return matched.filter(pl.col("recorded_ts").is_not_null() & (pl.col("recorded_ts") >= oldest)).select(
        "account_id", "decision_ts", "default_action_id", "recorded_ts"
    )


def left_after_decision(rows: pl.DataFrame, book: Book, playbook: Playbook) -> pl.DataFrame:
    """The decisions whose account left after them: an outcome of a terminal kind at or after the decision.

    Such an account's ``lifecycle_stage`` in the accounts table was written after it left (a stage
    like "churned", or, after a win-back, its new start's): it says nothing of its stage at the
    decision, and a default read from it acts on what followed the decision. The terminal kinds are
    those of the playbook's objectives that end accounts (:func:`~nextmove.book.terminal_outcome_kinds`).

    Returns
    -------
    polars.DataFrame
        ``account_id, decision_ts`` of those decisions (once each) and ``lifecycle_stage``, the
        account's stage today (null when the accounts have none).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from nextmove.book import empty_table
    >>> from nextmove.playbook.loader import load_playbook
    >>> day = lambda d: datetime(2025, 3, d, tzinfo=UTC)
    >>> accounts = pl.DataFrame({"account_id": ["a", "b"], "lifecycle_stage": ["churned", "renewal"]})
    >>> outcomes = pl.DataFrame({"account_id": ["a"], "ts": [day(10)], "kind": ["churn"]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), outcomes)
    >>> rows = pl.DataFrame({"account_id": ["a", "a", "b"], "decision_ts": [day(1), day(11), day(1)]})
    >>> left = left_after_decision(rows, book, load_playbook())
    >>> left.select("account_id", pl.col("decision_ts").dt.day(), "lifecycle_stage").rows()
    [('a', 1, 'churned')]
    """
    kinds = terminal_outcome_kinds(playbook)
    outcomes = book.outcomes
    stage = (
        pl.col("lifecycle_stage").cast(pl.String)
        if "lifecycle_stage" in book.accounts.columns
        else pl.lit(None, dtype=pl.String).alias("lifecycle_stage")
    )
    decisions = rows.select(pl.col("account_id").cast(pl.String), "decision_ts").unique(maintain_order=True)
    if not kinds or outcomes.is_empty() or "decision_ts" not in rows.columns:
        return decisions.clear().with_columns(pl.lit(None, dtype=pl.String).alias("lifecycle_stage"))
    last = (
        outcomes.filter(pl.col("kind").is_in(kinds))
        .group_by(pl.col("account_id").cast(pl.String))
        .agg(pl.col("ts").max().cast(rows.schema["decision_ts"]).alias("_last"))
    )
    today = book.accounts.select(pl.col("account_id").cast(pl.String), stage).unique("account_id", keep="first")
    return (
        decisions.join(last, on="account_id", how="inner", maintain_order="left")
        .filter(pl.col("_last") >= pl.col("decision_ts"))
        .join(today, on="account_id", how="left", maintain_order="left")
        .select("account_id", "decision_ts", "lifecycle_stage")
    )


def table_policy(table: pl.DataFrame, *, actions: Sequence[str] | None = None) -> pl.DataFrame:
    """An external policy given as a table, checked: ``account_id`` [, ``decision_ts``], ``action_id``, ``probability``.

    Without ``probability`` every row has probability 1 (a deterministic choice, one row per
    account or account and time). A row that repeats another (the same account, time, action and
    probability, as a table written once per logged row repeats a decision with two) counts once.

    Parameters
    ----------
    table
        The policy.
    actions
        Known action ids (``none`` is always known); an unknown one is an error.

    Raises
    ------
    ConfigError
        If a column is missing, a probability is outside [0, 1] or missing, an action is unknown,
        one action of one account (and time) has two probabilities, or the probabilities of one
        account (and time) do not sum to 1.

    Examples
    --------
    >>> table = pl.DataFrame({"account_id": ["a", "a"], "action_id": ["none", "call"], "probability": [0.5, 0.5]})
    >>> table_policy(table).height
    2
    """
    for column in ("account_id", "action_id"):
        if column not in table.columns:
            raise ConfigError(f"a policy table needs a {column!r} column (columns: {', '.join(table.columns)})")
    keys = _keys(table)
    if "probability" not in table.columns:
        table = table.with_columns(pl.lit(1.0).alias("probability"))
    probability = pl.col("probability")
    not_numbers = table.with_row_index("_row").filter(
        probability.is_not_null() & probability.cast(pl.Float64, strict=False).is_null()
    )
    if not_numbers.height:
        first = not_numbers.row(0, named=True)
        raise ConfigError(
            f"policy row {first['_row']}: probability must be a number in [0, 1], got {first['probability']!r} "
            f"({not_numbers.height} such rows)"
        )
    policy = table.select(*keys, pl.col("action_id").cast(pl.String), probability.cast(pl.Float64))
    bad = policy.with_row_index("_row").filter(
        pl.col("probability").is_null() | (pl.col("probability") < 0) | (pl.col("probability") > 1)
    )
    if bad.height:
        first = bad.row(0, named=True)
        raise ConfigError(
            f"policy row {first['_row']}: probability must be in [0, 1], got {first['probability']!r} "
            f"({bad.height} such rows)"
        )
    if actions is not None:
        known = {*actions, NO_ACTION}
        unknown = sorted(set(policy.get_column("action_id").drop_nulls().to_list()) - known)
        if unknown:
            raise ConfigError(f"the policy names actions not in the playbook: {', '.join(unknown)}")
    policy = one_per_decision(policy)
    sums = policy.group_by(keys).agg(pl.col("probability").sum().alias("_total"))
    off = sums.filter((pl.col("_total") - 1.0).abs() > _TOLERANCE)
    if off.height:
        first = off.row(0, named=True)
        who = ", ".join(f"{k}={first[k]}" for k in keys)
        raise ConfigError(
            f"policy probabilities must sum to 1 for every account; {who} sums to {first['_total']:.6g} "
            f"({off.height} such)"
        )
    return policy
