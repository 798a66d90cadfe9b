"""The feedback loop of a batch-run team: log each window's decisions, send back what they realised, learn from it.

A team that runs nextmove every decision window does, each window:

1. **decide**: a run (:func:`nextmove.engine.run.run`, refitting the effect model every few
   windows and reusing the stored one in between), then :func:`decide_with_corrections`, which
   re-decides the run's accounts under the same rules and capacities with each action's value
   shifted by the online corrections learned so far;
2. **log**: :func:`decision_records` turns the decisions into the store's ``DecisionRecord`` rows
   (``store.log_decisions``), each with its own projection, so that feedback can name it;
3. **feedback**: once a decision's horizon is over, :func:`outcome_feedback` turns the outcomes the
   book attributes to it into one ``outcome`` event with the dollars it realised over the do-nothing
   baseline; :func:`send_feedback` stores the events (idempotent by ``event_id``) and moves the
   online decider's per-action corrections (:class:`~nextmove.engine.online.OnlineLearner`).

The functions take a book, a store and a run's result: nothing here knows the lab. ``bench/closed_loop.py``
runs this loop against the lab's environment, and ``docs/learning.md`` describes it for a team.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from nextmove.book import NO_ACTION, Book
from nextmove.decide.policy import DecisionOptions, Decisions, decide
from nextmove.engine.online import CONTEXT_SEPARATOR, OnlineDecider, OnlineLearner
from nextmove.engine.run import RunResult
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary
from nextmove.models.effect import EffectProjection, objective_specs, row_value_usd
from nextmove.playbook import Playbook
from nextmove.store import DecisionRecord, FeedbackEvent, Store

OUTCOME_EVENT_PREFIX = "outcome:"
"""Prefix of the ``event_id`` of a decision's outcome event: ``outcome:<decision_id>`` (one per decision)."""

CONTACT_DAYS = 60
"""Days back that :func:`contact_contexts` counts an account's touches over."""
BUSY_TOUCHES = 2
"""Touches in the last :data:`CONTACT_DAYS` from which an account counts as ``busy`` (else ``calm``)."""


def contact_contexts(
    book: Book,
    as_of: datetime,
    *,
    contact_days: int = CONTACT_DAYS,
    busy_touches: int = BUSY_TOUCHES,
) -> pl.DataFrame:
    """Each account's recent contact at ``as_of``: ``account_id, recent_touches, contact`` (``calm`` or ``busy``).

    ``recent_touches`` counts the account's touches with any action in ``[as_of − contact_days,
    as_of)``; an account with ``busy_touches`` or more is ``busy``. The online corrections learn
    one gap per action and contact (:func:`decide_with_corrections`), because an action given to an
    account that was just contacted can be worth much less than the effect model projects: in the
    closed-loop lab the batch policy kept touching the same top-ranked accounts, whose projections
    did not fall with the touches while their true value did. Splitting the feedback this way halves
    what each correction learns from, though: in the lab (400 accounts, 26 weeks) it did not help.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> t = datetime(2025, 3, 1, tzinfo=UTC)
    >>> touches = {"account_id": ["a", "a", "b", "b"], "action_id": ["qbr", "email", "qbr", "qbr"],
    ...            "ts": [t - timedelta(days=d) for d in (10, 20, 5, 200)], "touch_id": ["1", "2", "3", "4"]}
    >>> book = Book(empty_table("accounts"), empty_table("signals"),
    ...             pl.concat([empty_table("touches"), pl.DataFrame(touches)], how="diagonal_relaxed"),
    ...             empty_table("outcomes"))
    >>> contact_contexts(book, t).sort("account_id").rows()
    [('a', 2, 'busy'), ('b', 1, 'calm')]
    """
    if isinstance(contact_days, bool) or not isinstance(contact_days, int) or contact_days <= 0:
        raise ConfigError(f"contact_days must be a positive whole number of days, got {contact_days!r}")
    if isinstance(busy_touches, bool) or not isinstance(busy_touches, int) or busy_touches <= 0:
        raise ConfigError(f"busy_touches must be a positive whole number of touches, got {busy_touches!r}")
    since = as_of - timedelta(days=contact_days)
    counts = (
        book.touches.filter(
            (pl.col("ts") >= since) & (pl.col("ts") < as_of) & (pl.col("action_id").cast(pl.String) != NO_ACTION)
        )
        .group_by("account_id")
        .agg(pl.len().cast(pl.Int64).alias("recent_touches"))
    )
    accounts = pl.concat(
        [
            book.accounts.select(pl.col("account_id").cast(pl.String)),
            counts.select(pl.col("account_id").cast(pl.String)),
        ]
    ).unique(maintain_order=True)
    return (
        accounts.join(counts.with_columns(pl.col("account_id").cast(pl.String)), on="account_id", how="left")
        .with_columns(pl.col("recent_touches").fill_null(0))
        .with_columns(
            pl.when(pl.col("recent_touches") >= busy_touches)
            .then(pl.lit("busy"))
            .otherwise(pl.lit("calm"))
            .alias("contact")
        )
    )


def corrected_values(
    values: pl.DataFrame,
    learner: OnlineLearner,
    contexts: pl.DataFrame | None = None,
    *,
    lower_only: bool = True,
) -> pl.DataFrame:
    """Projected values shifted by the learner's per-action corrections (``none`` and unseen actions unchanged).

    Each action's value moves by its posterior mean gap times its own projected spread (the
    interval's half-width over the normal quantile of the learner's level), as the online decider
    does; the interval moves with it and keeps its width. With ``contexts``, an account's action
    moves by the correction of that action in the account's contact context
    (``action@contact``, see :func:`contact_contexts`), or by the action's own correction while
    that context has no outcome yet.

    Parameters
    ----------
    values
        ``account_id, action_id, value_usd, low, high`` (``EffectProjection.values``); action ids
        may carry a variant (``action:variant``), as the learner's keys do.
    learner
        The online corrections.
    contexts
        ``account_id, contact`` (:func:`contact_contexts`); None: one correction per action.
    lower_only
        Apply only the corrections that lower a value (the default: a positive one leaves the
        projection as it is), so that feedback can take an action away from accounts but never
        hand it to more, marginal ones. False: corrections both ways. In the closed-loop lab
        (6 seeds) corrections both ways ended below static in 4 seeds; lowering ones were above
        it in 5 (docs/learning.md).

    Returns
    -------
    polars.DataFrame
        ``values`` with ``value_usd``, ``low`` and ``high`` shifted.

    Examples
    --------
    >>> learner = OnlineLearner(level=0.9)
    >>> learner.observe("e1", "qbr", realised_usd=0.0, projected_usd=100.0, low_usd=0.0, high_usd=200.0)
    True
    >>> values = pl.DataFrame({"account_id": ["a", "a"], "action_id": ["qbr", "none"],
    ...                        "value_usd": [100.0, 0.0], "low": [0.0, 0.0], "high": [200.0, 0.0]})
    >>> corrected_values(values, learner)["value_usd"].round(1).to_list()
    [50.0, 0.0]
    """
    for col in ("action_id", "value_usd", "low", "high"):
        if col not in values.columns:
            raise ConfigError(f"values: missing column {col!r} (have {values.columns})")
    keys = values.get_column("action_id").cast(pl.String).unique().sort().to_list()
    mean_z, _, counts = learner.shifts(keys)
    shift = pl.DataFrame(
        {"action_id": keys, "_z": np.where(counts > 0, mean_z, 0.0)},
        schema={"action_id": pl.String, "_z": pl.Float64},
    )
    out = values.with_columns(pl.col("action_id").cast(pl.String)).join(
        shift, on="action_id", how="left", maintain_order="left"
    )
    if contexts is not None:
        for col in ("account_id", "contact"):
            if col not in contexts.columns:
                raise ConfigError(f"contexts: missing column {col!r} (have {contexts.columns})")
        out = out.join(
            contexts.select(pl.col("account_id").cast(pl.String), pl.col("contact").cast(pl.String)),
            on="account_id",
            how="left",
            maintain_order="left",
        ).with_columns(context_key(pl.col("action_id"), pl.col("contact")).alias("_ctx"))
        ctx_keys = out.get_column("_ctx").drop_nulls().unique().sort().to_list()
        ctx_z, _, ctx_n = learner.shifts(ctx_keys)
        found = ctx_n > 0
        ctx_shift = pl.DataFrame(
            {"_ctx": [k for k, f in zip(ctx_keys, found, strict=True) if f], "_cz": ctx_z[found]},
            schema={"_ctx": pl.String, "_cz": pl.Float64},
        )
        out = (
            out.join(ctx_shift, on="_ctx", how="left", maintain_order="left")
            .with_columns(pl.coalesce("_cz", "_z").alias("_z"))
            .drop("contact", "_ctx", "_cz")
        )
    spread = (pl.col("high") - pl.col("low")).clip(lower_bound=0.0) / (2.0 * learner.z)
    z = pl.col("_z").fill_null(0.0)
    delta = (z.clip(upper_bound=0.0) if lower_only else z) * spread
    return out.with_columns(
        (pl.col("value_usd") + delta).alias("value_usd"),
        (pl.col("low") + delta).alias("low"),
        (pl.col("high") + delta).alias("high"),
    ).drop("_z")


def context_key(action_key: pl.Expr, contact: pl.Expr) -> pl.Expr:
    """``action@contact`` for an action in a contact context; null for ``none`` or without a context."""
    return (
        pl.when((action_key != NO_ACTION) & contact.is_not_null())
        .then(pl.concat_str([action_key, pl.lit(CONTEXT_SEPARATOR), contact]))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def decide_with_corrections(
    result: RunResult,
    playbook: Playbook,
    learner: OnlineLearner,
    *,
    seed: int = 0,
    options: DecisionOptions | None = None,
    contexts: pl.DataFrame | None = None,
    lower_only: bool = True,
) -> Decisions:
    """The run's decision again, with the online corrections applied to its projected values.

    Same accounts, rules (eligibility, cooldowns, caps, plays in flight), capacities, control
    cohort, exploration and decision settings (``options``; default: the run's own, such as its
    ``risk_aversion``) as the run; only the values differ. Without any correction the result
    is the run's own decision (same ``seed``). With ``contexts`` (:func:`contact_contexts` at the
    run's ``as_of``) each action moves by its correction in the account's contact context; with
    ``lower_only`` (the default) only the corrections that lower a value apply (see
    :func:`corrected_values`).

    Raises
    ------
    ConfigError
        If the run kept no decisions (every run made by :func:`~nextmove.engine.run.run` does).
    """
    if result.decisions is None:
        raise ConfigError(f"run {result.run_id!r} has no decisions to re-decide")
    rules = result.decisions.rules
    recs = result.recommendations
    order = pl.DataFrame({"account_id": rules.account_ids}, schema={"account_id": pl.String})

    def column(name: str) -> list[str | None] | None:
        if name not in recs.columns or recs.get_column(name).null_count() == recs.height:
            return None
        joined = order.join(recs.select("account_id", name), on="account_id", how="left", maintain_order="left")
        return joined.get_column(name).cast(pl.String).to_list()

    return decide(
        rules,
        corrected_values(result.projection.values, learner, contexts, lower_only=lower_only),
        playbook,
        owners=column("owner"),
        stages=column("lifecycle_stage"),
        seed=seed,
        run_key=result.as_of.isoformat(),
        options=options or result.decisions.options,
    )


def baseline_usd(projection: EffectProjection, playbook: Playbook, arr: pl.DataFrame) -> pl.DataFrame:
    """Each account's projected do-nothing dollars over the horizon: ``account_id, baseline_usd``.

    The sum over objectives of the do-nothing level (probability, or expected dollars for amount
    objectives) times the objective's dollars per unit (signed, weighted; ARR from ``arr``:
    ``account_id, arr``), the same convention as :func:`~nextmove.models.effect.row_value_usd`.
    """
    base = (
        projection.baselines()
        .select("account_id", "objective", "baseline")
        .join(arr.select("account_id", pl.col("arr").cast(pl.Float64)), on="account_id", how="left")
    )
    total = np.zeros(base.height)
    objective = base.get_column("objective").to_numpy()
    level = base.get_column("baseline").cast(pl.Float64).fill_null(0.0).to_numpy()
    arrs = base.get_column("arr").to_numpy()
    for spec in objective_specs(playbook):
        mine = objective == spec.objective
        total[mine] = level[mine] * spec.usd_per_unit(arrs[mine])
    return (
        base.with_columns(pl.Series("_usd", total))
        .group_by("account_id", maintain_order=True)
        .agg(pl.col("_usd").sum().alias("baseline_usd"))
    )


def decision_records(
    decisions: Decisions,
    result: RunResult,
    playbook: Playbook,
    *,
    ts: datetime | None = None,
    contexts: pl.DataFrame | None = None,
) -> list[DecisionRecord]:
    """One ``DecisionRecord`` per account of ``decisions`` (taken from ``result``'s run), ready for ``log_decisions``.

    Each record keeps what its outcome feedback is later compared with: the run's own projection
    of the chosen action (before online corrections), its interval, the do-nothing baseline in
    dollars and the account's ARR. Its id is ``<run_id>/<account_id>`` and so is its ``request_id``:
    logging the same window twice logs it once. With ``contexts`` (:func:`contact_contexts` at the
    run's ``as_of``) each record also keeps the account's ``contact`` and ``recent_touches``, so
    that its outcome moves the correction of the action in that context too.
    """
    when = ts or result.as_of
    frame = decisions.frame()
    projected = result.projection.values.select(
        "account_id",
        pl.col("action_id").cast(pl.String).alias("_key"),
        pl.col("value_usd").alias("_projected"),
        pl.col("low").alias("_low"),
        pl.col("high").alias("_high"),
    )
    # A variant has its own projection when the model learned it as an arm, else its action's (as in decide).
    arms = set(projected.get_column("_key").unique().to_list())
    keys = frame.select(
        "account_id",
        pl.when(
            pl.col("variant").is_not_null()
            & pl.concat_str([pl.col("action_id"), pl.lit(":"), pl.col("variant")]).is_in(list(arms))
        )
        .then(pl.concat_str([pl.col("action_id"), pl.lit(":"), pl.col("variant")]))
        .otherwise(pl.col("action_id"))
        .alias("_key"),
    )
    recs = result.recommendations
    arr = recs.select("account_id", pl.col("arr").cast(pl.Float64))
    rows = (
        frame.join(keys, on="account_id", how="left", maintain_order="left")
        .join(projected, on=["account_id", "_key"], how="left", maintain_order="left")
        .join(baseline_usd(result.projection, playbook, arr), on="account_id", how="left", maintain_order="left")
        .join(recs.select("account_id", "owner", "model_version"), on="account_id", how="left", maintain_order="left")
        .join(arr, on="account_id", how="left", maintain_order="left")
    )
    if contexts is not None:
        rows = rows.join(
            contexts.select(pl.col("account_id").cast(pl.String), "recent_touches", "contact"),
            on="account_id",
            how="left",
            maintain_order="left",
        )
    out = []
    for row in rows.iter_rows(named=True):
        acts = row["action_id"] != NO_ACTION
        projected_usd = float(row["_projected"] or 0.0) if acts else 0.0
        decision_id = f"{result.run_id}/{row['account_id']}"
        out.append(
            DecisionRecord(
                decision_id=decision_id,
                account_id=row["account_id"],
                action_id=row["action_id"],
                variant=row["variant"],
                arm=row["arm"],
                propensity=float(min(max(row["propensity"], 0.0), 1.0)),
                expected_value_usd=float(row["value_usd"]),
                value_low_usd=float(row["value_low_usd"]),
                value_high_usd=float(row["value_high_usd"]),
                ts=when,
                run_id=result.run_id,
                model_version=row["model_version"],
                owner=row["owner"],
                context={
                    "run_id": result.run_id,
                    "projected_value_usd": projected_usd,
                    "projected_low_usd": float(row["_low"] or 0.0) if acts else 0.0,
                    "projected_high_usd": float(row["_high"] or 0.0) if acts else 0.0,
                    "baseline_usd": float(row["baseline_usd"] or 0.0),
                    "arr": None if row["arr"] is None else float(row["arr"]),
                    "method": "batch",
                    **(
                        {"contact": row["contact"], "recent_touches": row["recent_touches"]}
                        if row.get("contact") is not None
                        else {}
                    ),
                },
                request_id=decision_id,
            )
        )
    return out


@dataclass(frozen=True)
class FeedbackReceipt:
    """What :func:`send_feedback` did with a batch of events."""

    events: int
    """Events sent."""
    stored: int
    """Events new to the store (the others were replays)."""
    learned: int
    """Events that moved an online correction (once per event, however often it is sent)."""


def outcome_feedback(
    decisions: Sequence[DecisionRecord],
    book: Book,
    playbook: Playbook,
    now: datetime,
) -> list[FeedbackEvent]:
    """One ``outcome`` event per decision whose horizon is over by ``now``: the dollars it realised over doing nothing.

    A decision's outcomes are those within its horizon (``playbook.horizon_days`` after it)
    that the book attributes to the touch that carried it out (``outcomes.touch_id``: the
    account's touch of that action logged within one decision window of the decision), or, when the
    book's outcomes carry no touch ids, every outcome of the account in the horizon. Realised
    dollars follow :func:`~nextmove.models.effect.row_value_usd` (objective dollars minus the
    action's cost); the event's ``value_usd`` is that minus the decision's do-nothing baseline
    (``context["baseline_usd"]``), which is what the online learner compares with the projection.
    Decisions that were not carried out (no touch found while the book has touch ids) get no event.

    The event id is ``outcome:<decision_id>``, so sending the events of a window again stores and
    counts nothing new.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> from nextmove.playbook.loader import load_playbook
    >>> t = datetime(2025, 1, 6, tzinfo=UTC)
    >>> touch = {"account_id": ["a"], "action_id": ["upsell_call"], "ts": [t], "touch_id": ["T1"]}
    >>> won = {"account_id": ["a"], "ts": [t + timedelta(days=20)], "kind": ["expansion"],
    ...        "outcome_id": ["O1"], "value": [5000.0], "touch_id": ["T1"]}
    >>> book = Book(
    ...     empty_table("accounts"), empty_table("signals"),
    ...     pl.concat([empty_table("touches"), pl.DataFrame(touch)], how="diagonal_relaxed"),
    ...     pl.concat([empty_table("outcomes"), pl.DataFrame(won)], how="diagonal_relaxed"),
    ... )
    >>> d = DecisionRecord(decision_id="r/a", account_id="a", action_id="upsell_call", arm="model",
    ...                    propensity=0.9, expected_value_usd=800.0, ts=t,
    ...                    context={"baseline_usd": 1000.0, "arr": 20000.0})
    >>> events = outcome_feedback([d], book, load_playbook(), now=t + timedelta(days=90))
    >>> [(e.event_id, e.payload["value_usd"]) for e in events]
    [('outcome:r/a', 3880.0)]
    """
    horizon = timedelta(days=playbook.horizon_days)
    window = timedelta(days=playbook.contact_policy.window_days)
    due = [d for d in decisions if d.ts + horizon <= now]
    if not due:
        return []
    ids = sorted({d.account_id for d in due})
    outcomes = book.outcomes.filter(pl.col("account_id").is_in(ids))
    by_touch = (
        "touch_id" in outcomes.columns and book.outcomes.get_column("touch_id").null_count() < book.outcomes.height
    )
    touches = book.touches.filter(pl.col("account_id").is_in(ids)).select("account_id", "action_id", "ts", "touch_id")
    touch_rows: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
    for account_id, action_id, ts, tid in touches.iter_rows():
        touch_rows.setdefault((account_id, action_id), []).append((ts, tid))
    out_rows: dict[str, list[tuple[datetime, str, float, str | None]]] = {}
    for account_id, ts, kind, value, tid in outcomes.select(
        "account_id", "ts", "kind", "value", pl.col("touch_id") if "touch_id" in outcomes.columns else pl.lit(None)
    ).iter_rows():
        out_rows.setdefault(account_id, []).append((ts, kind, float(value or 0.0), tid))

    # The frame's own labels: objectives on kinds that sanitise alike (Cancel, cancel) each get their own.
    vocab = FeatureVocabulary.build(accounts_schema={}, outcome_kinds=[o.outcome for o in playbook.objectives.values()])
    specs = objective_specs(playbook, vocab)
    labels: dict[str, list[float]] = {}
    for s in specs:
        labels.setdefault(s.label, [])
        labels.setdefault(s.value_label, [])
    kept: list[DecisionRecord] = []
    for d in due:
        touch_id: str | None = None
        if by_touch:
            found = [tid for ts, tid in touch_rows.get((d.account_id, d.action_id), []) if d.ts <= ts < d.ts + window]
            if not found:
                continue
            touch_id = found[0]
        seen = [
            (kind, value)
            for ts, kind, value, tid in out_rows.get(d.account_id, [])
            if d.ts < ts <= d.ts + horizon and (touch_id is None or tid == touch_id)
        ]
        for s in specs:
            hits = [v for k, v in seen if k == s.outcome]
            labels[s.label].append(float(len(hits) > 0))
            labels[s.value_label].append(float(sum(hits)))
        kept.append(d)
    if not kept:
        return []
    frame = pl.DataFrame(
        {
            "action_id": [d.action_id for d in kept],
            "arr": [float(d.context.get("arr") or 0.0) for d in kept],
            **labels,
        }
    )
    realised = row_value_usd(frame, playbook, vocabulary=vocab)
    events = []
    for d, usd in zip(kept, realised, strict=True):
        base = d.context.get("baseline_usd")
        value = float(usd) - (float(base) if isinstance(base, int | float) else 0.0)
        events.append(
            FeedbackEvent(
                event_id=f"{OUTCOME_EVENT_PREFIX}{d.decision_id}",
                account_id=d.account_id,
                kind="outcome",
                ts=d.ts + horizon,
                run_id=d.run_id,
                action_id=d.action_id,
                payload={
                    "decision_id": d.decision_id,
                    "value_usd": round(value, 2),
                    "realised_usd": round(float(usd), 2),
                },
            )
        )
    return events


def send_feedback(store: Store, decider: OnlineDecider, events: Sequence[FeedbackEvent]) -> FeedbackReceipt:
    """Store ``events`` (a replayed ``event_id`` is stored once) and move the decider's online corrections.

    What ``POST /v1/feedback`` does, for a process that holds the store and the decider itself.
    An ``event_id`` already used for another event raises :class:`~nextmove.errors.ConflictError`
    and stores nothing.
    """
    stored = store.add_feedback(list(events))
    learned = decider.learn_stored(list(events), stored)
    return FeedbackReceipt(events=len(events), stored=stored, learned=learned)
