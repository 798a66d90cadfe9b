"""One call for a run's segments: clusters, their profile (size, ARR, health, outcome rates), response and spend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from nextmove.book import gone_at_lazy, terminal_outcome_kinds
from nextmove.errors import ConfigError
from nextmove.models.effect import EffectProjection
from nextmove.playbook import Playbook
from nextmove.segment.cluster import DAYS_SINCE_END, BehaviorSegmenter, Segment, SegmentResult
from nextmove.segment.moves import SegmentMoves, match_segments
from nextmove.segment.response import (
    INTERVAL_METHOD,
    FamilyKind,
    SegmentResponse,
    SpendEfficiency,
    headline,
    segment_responses,
    spend_efficiency,
)


@dataclass(frozen=True)
class OutcomeRate:
    """How often an outcome happens to a segment's accounts: observed lately, and projected without action."""

    kind: str
    observed: float | None
    """Share of the segment's accounts with at least one such outcome in the look-back window (accounts
    gone within the window included); None without outcomes."""
    projected: float | None
    """Mean do-nothing baseline of the objective measured by this kind, over the horizon (a probability,
    or dollars for amount objectives); None without a projection."""
    unit: str = "probability"
    """Unit of :attr:`projected`: ``probability`` or ``usd``."""


@dataclass(frozen=True)
class SegmentProfile:
    """One segment as the report shows it: who is in it, what it is worth, and how it responds."""

    id: int
    name: str
    accounts: int
    share: float
    """Share of the segmented accounts."""
    traits: list[tuple[str, float]]
    arr_usd: float | None
    """Total ARR of the segment (None without an ``arr`` column)."""
    arr_mean_usd: float | None
    health: float | None
    """Mean health score (0-100), when health scores were given."""
    rates: dict[str, OutcomeRate] = field(default_factory=dict)
    """By outcome kind."""
    response: SegmentResponse | None = None
    headline: str = ""
    """One plain sentence: its traits, and how it responds when a projection was given."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "accounts": self.accounts,
            "share": self.share,
            "traits": [{"feature": f, "z": z} for f, z in self.traits],
            "arr_usd": self.arr_usd,
            "arr_mean_usd": self.arr_mean_usd,
            "health": self.health,
            "rates": {k: asdict(v) for k, v in self.rates.items()},
            "response": self.response.to_dict() if self.response is not None else None,
            "headline": self.headline,
        }


@dataclass(frozen=True)
class SegmentReport:
    """Everything about a book's behavioral segments at one time (see :func:`segment_book`)."""

    as_of: datetime | None
    accounts: int
    """Accounts segmented (active ones)."""
    k: int
    criterion: str
    """How ``k`` was chosen (``stability`` or ``fixed``)."""
    stabilities: dict[int, float]
    silhouettes: dict[int, float]
    features: list[str]
    segments: list[SegmentProfile]
    """Largest response first when there is a projection, else by id (largest segment first)."""
    assignments: pl.DataFrame
    """``account_id, segment_id, segment`` of the segmented accounts."""
    families: str
    """What an action family is: ``team``, ``objective`` or ``action``."""
    book_response_usd: float | None
    """Value of the book's best single action: its mean projected value over the segmented accounts ($0 when no
    action gains on average; the ratios' denominator). Not the mean of each account's own best action."""
    interval: str
    """How the response intervals are formed."""
    level: float | None
    """Level of the intervals (the projection's)."""
    spend: SpendEfficiency | None
    moves: SegmentMoves | None
    notes: list[str] = field(default_factory=list)
    """What the caller noted about the figures: e.g. an outcome kind the projection's training set labels by
    window although the outcomes credit it to touches (``build_training_set(..., notes=...)``)."""
    book_response_low: float | None = None
    book_response_high: float | None = None
    """The interval of :attr:`book_response_usd`."""
    book_best_action: str | None = None
    """The book's best single action (None when no action gains on average over the book)."""

    def segment(self, segment_id: int) -> SegmentProfile:
        """The profile of one segment.

        Raises
        ------
        KeyError
            If there is no such segment.
        """
        for s in self.segments:
            if s.id == segment_id:
                return s
        raise KeyError(segment_id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the assignments are left out: they are a table, written as CSV)."""
        return {
            "as_of": self.as_of.isoformat() if self.as_of is not None else None,
            "accounts": self.accounts,
            "k": self.k,
            "criterion": self.criterion,
            "stabilities": {str(k): v for k, v in self.stabilities.items()},
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
            "features": self.features,
            "families": self.families,
            "book_response_usd": self.book_response_usd,
            "book_response_low": self.book_response_low,
            "book_response_high": self.book_response_high,
            "book_best_action": self.book_best_action,
            "interval": self.interval,
            "level": self.level,
            "segments": [s.to_dict() for s in self.segments],
            "spend": self.spend.to_dict() if self.spend is not None else None,
            "moves": self.moves.to_dict() if self.moves is not None else None,
            "notes": list(self.notes),
        }


def segment_book(
    snapshot: pl.DataFrame,
    *,
    projection: EffectProjection | None = None,
    playbook: Playbook | None = None,
    outcomes: pl.DataFrame | None = None,
    touches: pl.DataFrame | None = None,
    accounts: pl.DataFrame | None = None,
    health: pl.DataFrame | None = None,
    previous: pl.DataFrame | None = None,
    eligible: pl.DataFrame | None = None,
    as_of: datetime | None = None,
    families: FamilyKind = "team",
    lookback_days: int = 365,
    spend_days: int = 90,
    segmenter: BehaviorSegmenter | None = None,
    seed: int = 0,
    notes: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    active: pl.DataFrame | None = None,
) -> SegmentReport:
    """Segment a book by behavior and describe every segment: size, ARR, health, outcome rates, response.

    Parameters
    ----------
    snapshot
        One row per account (best: :func:`~nextmove.segment.behavior_snapshot`, a year of
        behavior). Accounts gone at ``as_of`` (a terminal outcome of the playbook in
        ``outcomes`` at or before it, and no start after it in ``accounts``: :func:`~nextmove.book.gone_at`)
        are not segmented; those gone within ``lookback_days`` are assigned from their behavior before
        they left and count in the observed outcome rates only.
    projection
        The run's :class:`~nextmove.models.effect.EffectProjection` (one row per account and
        action): adds each segment's response per action family, its ratio to the book and its
        rank, the projected outcome rates, and (with ``touches``) the spend efficiency.
    playbook
        Action families, effort hours, contact policy and terminal outcome kinds.
    outcomes, touches
        The book's tables: observed outcome rates, and recent effort.
    accounts
        The book's accounts table: an account whose latest start (``contract_start``,
        ``customer_since``) comes after its terminal outcome is back (a win-back), not gone.
        Without it every terminal outcome ends its account.
    health
        ``account_id, health_score`` (or a ``health_score`` column in ``snapshot``).
    previous
        A previous run's assignment (``account_id, segment_id``): how many accounts moved.
    eligible
        ``account_id, action_id`` pairs the responses may use (e.g. the run's eligibility);
        default every projected action.
    as_of
        The run's time; default the latest ``ts`` of ``outcomes`` and ``touches``.
    families
        What an action family is: ``team``, ``objective`` or ``action``.
    lookback_days, spend_days
        Windows of the observed outcome rates and of the recent effort.
    segmenter
        A configured :class:`BehaviorSegmenter` (default: ``BehaviorSegmenter(seed=seed, labels=labels)``).
    seed
        Seed of the default segmenter.
    notes
        What the caller noted about the projection (the notes its training set gave,
        ``build_training_set(..., notes=...)``): kept in the report.
    labels
        The default segmenter's names of the signals (:func:`~nextmove.segment.signal_labels`): segments are
        named by them rather than by their columns' stems.
    active
        ``account_id`` of the accounts active at ``as_of`` as the run counts them
        (:func:`~nextmove.engine.health.active_accounts`: also leaving out accounts at a stage of the
        playbook's ``gone_stages``, and accounts not started yet): only those of the snapshot are segmented.
        Default: the snapshot's accounts not gone by a terminal outcome.

    Returns
    -------
    SegmentReport

    Raises
    ------
    ConfigError
        If the snapshot cannot be segmented, a window is not positive, or the projection has
        none of the accounts.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> group = rng.integers(0, 2, 200)
    >>> snapshot = pl.DataFrame({"account_id": [f"a{i}" for i in range(200)],
    ...                          "arr": rng.uniform(1e3, 1e4, 200),
    ...                          "logins_mean_90d": np.where(group == 1, 40.0, 5.0) + rng.normal(0, 2, 200)})
    >>> report = segment_book(snapshot)
    >>> [(s.name, s.accounts) for s in report.segments]
    [('high logins', 111), ('low logins', 89)]
    """
    for name, days in (("lookback_days", lookback_days), ("spend_days", spend_days)):
        if not isinstance(days, int) or days <= 0:
            raise ConfigError(f"{name} must be a positive whole number of days, got {days!r}")
    when = as_of if as_of is not None else _latest(outcomes, touches)
    terminal = _terminal(outcomes, playbook, when, accounts)  # computed once: the active rows and the recently gone
    ids = pl.col("account_id").cast(pl.String)
    if active is not None:
        rows = snapshot.filter(ids.is_in(active.get_column("account_id").cast(pl.String).implode()))
    else:
        gone = terminal.get_column("account_id")
        rows = snapshot.filter(~ids.is_in(gone.implode())) if gone.len() else snapshot
    model = segmenter if segmenter is not None else BehaviorSegmenter(seed=seed, labels=labels or {})
    result = model.fit(rows).segment(rows)
    assignments = result.assignments
    responses = (
        {
            r.segment_id: r
            for r in segment_responses(assignments, projection, playbook=playbook, families=families, eligible=eligible)
        }
        if projection is not None
        else {}
    )
    recent_gone = _recently_gone(snapshot, terminal, when, lookback_days)
    everyone = assignments
    if recent_gone.height:
        everyone = pl.concat([assignments, model.segment(recent_gone).assignments], how="vertical_relaxed")
    rates = _rates(everyone, outcomes, projection, playbook, when, lookback_days)
    profiles = _profiles(rows, result, responses, rates, health, playbook.currency if playbook else "USD")
    if responses:
        profiles.sort(key=lambda p: p.response.rank if p.response is not None else len(profiles) + p.id)
    spend = None
    if projection is not None and touches is not None and when is not None and responses:
        spend = spend_efficiency(
            assignments,
            list(responses.values()),
            projection,
            touches,
            as_of=when,
            playbook=playbook,
            eligible=eligible,
            days=spend_days,
        )
    first = next(iter(responses.values()), None)
    return SegmentReport(
        as_of=when,
        accounts=rows.height,
        k=result.k,
        criterion=result.criterion,
        stabilities=result.stabilities,
        silhouettes=result.silhouettes,
        features=result.features,
        segments=profiles,
        assignments=assignments,
        families=families,
        book_response_usd=first.book_value_usd if first is not None else None,
        interval=INTERVAL_METHOD,
        level=projection.level if projection is not None else None,
        spend=spend,
        moves=match_segments(previous, assignments) if previous is not None else None,
        notes=list(notes),
        book_response_low=first.book_low if first is not None else None,
        book_response_high=first.book_high if first is not None else None,
        book_best_action=first.book_best_action if first is not None else None,
    )


def _latest(*frames: pl.DataFrame | None) -> datetime | None:
    stamps = [f.get_column("ts").max() for f in frames if f is not None and f.height and "ts" in f.columns]
    found = [s for s in stamps if isinstance(s, datetime)]
    return max(found) + timedelta(microseconds=1) if found else None


def _terminal(
    outcomes: pl.DataFrame | None,
    playbook: Playbook | None,
    when: datetime | None,
    accounts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``account_id, ts`` of the accounts gone at ``when`` (as the run counts gone) and the outcome that ended each."""
    if outcomes is None or playbook is None or when is None or outcomes.height == 0:
        return pl.DataFrame(schema={"account_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    ids = accounts if accounts is not None else outcomes.select(pl.col("account_id").cast(pl.String)).unique()
    keys = ids.select(pl.col("account_id").cast(pl.String), pl.lit(when, dtype=pl.Datetime("us", "UTC")).alias("_at"))
    kinds = terminal_outcome_kinds(playbook)
    return (
        gone_at_lazy(ids.lazy(), outcomes.lazy(), kinds, keys.lazy(), at="_at")
        .filter(pl.col("gone"))
        .select("account_id", pl.col("ended_ts").alias("ts"))
        .collect()
    )


def _recently_gone(snapshot: pl.DataFrame, terminal: pl.DataFrame, when: datetime | None, days: int) -> pl.DataFrame:
    """The snapshot's rows of the accounts gone within ``days`` before ``when``, with :data:`DAYS_SINCE_END`.

    A gone account is assigned from what it did while it was a customer: its frequencies are
    over its history up to its terminal outcome, not up to ``when`` (which would add the time
    after it left, with nothing in it, and read every leaver as a quiet customer).
    """
    if when is None:
        return snapshot.head(0)
    recent = terminal.filter(pl.col("ts") >= when - timedelta(days=days))  # terminal: :func:`_terminal`
    ended = recent.select(
        "account_id", ((pl.lit(when) - pl.col("ts")).dt.total_seconds() / 86_400.0).alias(DAYS_SINCE_END)
    )
    return (
        snapshot.drop(DAYS_SINCE_END, strict=False)
        .with_columns(pl.col("account_id").cast(pl.String).alias("_id"))
        .join(ended.rename({"account_id": "_id"}), on="_id", how="inner")
        .drop("_id")
    )


def _rates(
    everyone: pl.DataFrame,
    outcomes: pl.DataFrame | None,
    projection: EffectProjection | None,
    playbook: Playbook | None,
    when: datetime | None,
    days: int,
) -> dict[int, dict[str, OutcomeRate]]:
    """Observed (look-back) and projected (baseline) rates of each outcome kind, per segment."""
    ids = everyone.select(pl.col("account_id").cast(pl.String), "segment_id")
    sizes = ids.group_by("segment_id").len()
    observed: dict[tuple[int, str], float] = {}
    kinds: list[str] = []
    if outcomes is not None and when is not None and outcomes.height:
        events = (
            outcomes.filter((pl.col("ts") < when) & (pl.col("ts") >= when - timedelta(days=days)))
            .select(pl.col("account_id").cast(pl.String), pl.col("kind").cast(pl.String))
            .unique()
            .join(ids, on="account_id", how="inner")
            .group_by("segment_id", "kind")
            .len()
            .join(sizes, on="segment_id", suffix="_all")
        )
        wanted = (
            [o.outcome for o in playbook.objectives.values()]
            if playbook is not None
            else sorted(outcomes.get_column("kind").unique().drop_nulls().to_list())
        )
        kinds = list(dict.fromkeys(wanted))
        for sid, kind, n, total in events.iter_rows():
            observed[(int(sid), str(kind))] = n / total
    projected: dict[tuple[int, str], float] = {}
    units: dict[str, str] = {}
    if projection is not None and projection.effects_height:
        base = (
            projection.baselines()
            .select("account_id", "outcome", "unit", "baseline")
            .unique(["account_id", "outcome"], keep="first", maintain_order=True)
            .join(ids, on="account_id", how="inner")
            .group_by("segment_id", "outcome", "unit")
            .agg(pl.col("baseline").mean())
        )
        for sid, kind, unit, value in base.iter_rows():
            projected[(int(sid), str(kind))] = float(value)
            units[str(kind)] = str(unit)
        kinds = list(dict.fromkeys([*kinds, *sorted(units)]))
    segments = sorted(int(s) for s in sizes.get_column("segment_id").to_list())
    has_observed = outcomes is not None and when is not None
    return {
        s: {
            k: OutcomeRate(
                kind=k,
                observed=observed.get((s, k), 0.0) if has_observed else None,
                projected=projected.get((s, k)),
                unit=units.get(k, "probability"),
            )
            for k in kinds
        }
        for s in segments
    }


def _profiles(
    active: pl.DataFrame,
    result: SegmentResult,
    responses: dict[int, SegmentResponse],
    rates: dict[int, dict[str, OutcomeRate]],
    health: pl.DataFrame | None,
    currency: str,
) -> list[SegmentProfile]:
    frame = active.select(
        pl.col("account_id").cast(pl.String),
        (pl.col("arr").cast(pl.Float64) if "arr" in active.columns else pl.lit(None, pl.Float64)).alias("_arr"),
        (
            pl.col("health_score").cast(pl.Float64) if "health_score" in active.columns else pl.lit(None, pl.Float64)
        ).alias("_health"),
    )
    if health is not None:
        if "account_id" not in health.columns or "health_score" not in health.columns:
            raise ConfigError("health needs the columns account_id and health_score")
        scores = health.select(pl.col("account_id").cast(pl.String), pl.col("health_score").cast(pl.Float64))
        frame = frame.drop("_health").join(scores.rename({"health_score": "_health"}), on="account_id", how="left")
    stats = (
        frame.join(result.assignments.select(pl.col("account_id").cast(pl.String), "segment_id"), on="account_id")
        .group_by("segment_id")
        .agg(
            pl.col("_arr").sum().alias("arr"),
            pl.col("_arr").mean().alias("arr_mean"),
            pl.col("_arr").is_not_null().any().alias("has_arr"),
            pl.col("_health").mean().alias("health"),
        )
    )
    by_id = {int(r["segment_id"]): r for r in stats.iter_rows(named=True)}
    total = max(active.height, 1)
    out = []
    for seg in result.segments:
        row = by_id.get(seg.id, {})
        response = responses.get(seg.id)
        out.append(
            SegmentProfile(
                id=seg.id,
                name=seg.name,
                accounts=seg.accounts,
                share=seg.accounts / total,
                traits=seg.traits,
                arr_usd=float(row["arr"]) if row.get("has_arr") else None,
                arr_mean_usd=float(row["arr_mean"]) if row.get("has_arr") else None,
                health=float(row["health"]) if row.get("health") is not None else None,
                rates=rates.get(seg.id, {}),
                response=response,
                headline=_headline(seg, response, currency),
            )
        )
    return out


def _headline(segment: Segment, response: SegmentResponse | None, currency: str) -> str:
    text = f"{segment.name}: {segment.accounts:,} accounts"
    return f"{text}; {headline(response, currency)}" if response is not None else text
