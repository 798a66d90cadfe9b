"""How each segment responds to outreach (per action family, against the book), and where effort is misspent.

Everything here reads an :class:`~nextmove.models.effect.EffectProjection`: the projected value
in dollars of every action for every account, with an interval.

**Value of an action for a group of accounts** (a segment, or the whole book): the mean over the
group's accounts of the action's projected value, an account the rules do not allow it for
counting as doing nothing ($0). It is what taking that one action with every account of the
group would gain per account.

**Response of a group to a family of actions** (a team, an objective, or each action): the value
of the family's best action for the group *as a whole*, the action whose mean is largest, with
that mean's interval. The overall response is the same over all actions and ``none`` (worth $0):
the value of the group's best single action, $0 when no action gains on average. The book's is
the same figure over all segmented accounts, and a ratio is segment ÷ book.

It is never the mean of each account's own best action. Each account's values are noisy
estimates, and the largest of several noisy values is too large on average (the winner's curse):
that mean is positive even where no action pays at all. A maximum over a handful of group means
carries little of that noise.

A response is **material** when its interval is above $0 (``low > 0``): only then is a best
family named, and a ratio is given only against a book figure that is material.

**Intervals** are the means of the per-account interval bounds. The per-account errors share the
model's parameters, so they are strongly correlated across accounts; averaging the bounds treats
them as fully correlated, which is conservative (wider than assuming independent errors would
give), and it is what an interval of a group's *mean* effect needs: sampling more accounts does
not shrink a shared model error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl

from nextmove.book import NO_ACTION
from nextmove.errors import ConfigError
from nextmove.models.effect import ARM_SEPARATOR, EffectProjection
from nextmove.playbook import Playbook
from nextmove.playbook.money import money_text

FamilyKind = Literal["team", "objective", "action"]

INTERVAL_METHOD = "mean of the per-account interval bounds (errors treated as fully correlated across accounts)"


@dataclass(frozen=True)
class FamilyResponse:
    """A segment's projected response to one family of actions, against the book's."""

    family: str
    value_usd: float
    """Value of the family's best action for the segment as a whole: the mean over the segment's accounts
    of that action's projected value (dollars per account; $0 for an account the rules do not allow it for)."""
    low: float
    high: float
    book_value_usd: float
    """The same figure for the whole book (its best action of the family may be another)."""
    ratio: float | None
    """``value_usd / book_value_usd``; None unless the book's figure is material (its interval above $0)
    and at least ``min_book_share`` of the book's overall response (see :func:`segment_responses`):
    against a figure that may be $0 a ratio (10×, −4×) is noise."""
    best_action: str
    """The family's action with the largest mean value over the segment (the one :attr:`value_usd` is of)."""

    @property
    def material(self) -> bool:
        """Whether the family pays reliably in the segment: its interval is above $0 (``low > 0``)."""
        return self.low > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with :attr:`material`)."""
        return {**asdict(self), "material": self.material}


@dataclass(frozen=True)
class SegmentResponse:
    """A segment's projected response to its best single action, by family, and its rank in the book."""

    segment_id: int
    accounts: int
    """Accounts of the segment with a projection."""
    value_usd: float
    """Value of the segment's best single action for the segment as a whole (the mean over its accounts of
    that action's projected value), or $0 when no action gains on average (doing nothing is best)."""
    low: float
    high: float
    book_value_usd: float
    """The same figure for the whole book: the value of the book's best single action."""
    ratio: float | None
    """``value_usd / book_value_usd``; None unless the book's figure is material (its interval above $0)."""
    rank: int
    """1 = the segment with the largest response."""
    families: list[FamilyResponse]
    """Most valuable family first (worth nothing, even less than nothing, when none is: see :attr:`best_family`)."""
    best_action: str | None = None
    """The action :attr:`value_usd` is of; None when no action gains on average here."""
    book_low: float = 0.0
    book_high: float = 0.0
    """The interval of :attr:`book_value_usd`."""
    book_best_action: str | None = None
    """The book's best single action; None when no action gains on average over the book."""

    @property
    def material(self) -> bool:
        """Whether the segment's best action pays reliably: its interval is above $0 (``low > 0``)."""
        return self.low > 0

    @property
    def book_material(self) -> bool:
        """Whether the book's best action pays reliably: its interval is above $0."""
        return self.book_low > 0

    @property
    def best_family(self) -> FamilyResponse | None:
        """The family worth the most here when it pays reliably (:attr:`FamilyResponse.material`), else None.

        A family whose best action's interval reaches $0 or below is not named: it may be the one
        that loses least, or one whose estimate is noise.
        """
        return self.families[0] if self.families and self.families[0].material else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``best_family``: the :attr:`best_family`'s name, or None; with :attr:`material`)."""
        out = asdict(self)
        out["families"] = [f.to_dict() for f in self.families]
        out["best_family"] = None if self.best_family is None else self.best_family.family
        out["material"] = self.material
        return out


@dataclass(frozen=True)
class SpendEfficiency:
    """Effort spent on segments that respond below the book, and what moving it would recover.

    Effort is the touches (any action but ``none``) of the ``days`` before the run, and the
    playbook's ``effort_hours`` of those touches. A segment responds below the book when its
    response is below the book's (:attr:`SegmentResponse.value_usd` < ``book_value_usd``). The
    reallocation moves touches from those segments to accounts that got no touch in those days in
    the other segments whose response is material (its interval above $0), each account taking its
    segment's best action where the rules allow it. A receiving account is worth the mean value of
    that action over the segment's receiving accounts; a moved touch is worth the mean value, over
    the touches of its segment and action, of the action it was spent on (at the run's time).
    Touches of the lowest-valued segment × action go first to the highest-valued segment, while a
    pair gains. No account is picked by its own estimate: the largest of many noisy values is too
    large (and the smallest too small), so the figure would count noise as gain. Only untouched
    accounts take a moved touch because the projection values one action now; a second play to an
    account already worked earns less (diminishing returns, fatigue), by an amount the model does
    not know. The value is per ``days`` of effort at the current pace; its interval combines the
    bounds of both sides in the direction that widens it (conservative): a gain is reliable only
    when ``low > 0`` (:attr:`material`).
    """

    days: int
    touches: int
    touches_below_average: int
    share_below_average: float
    """Share of the touches spent on segments that respond below the book (0 when there were none)."""
    hours: float
    hours_below_average: float
    below_average_segments: list[int]
    moved_touches: int
    """Touches the reallocation moves (at most the untouched accounts of segments whose response is material)."""
    recoverable_usd: float
    low: float
    high: float

    @property
    def share_hours_below_average(self) -> float | None:
        """Share of the effort hours spent on below-average segments (None without hours)."""
        return self.hours_below_average / self.hours if self.hours > 0 else None

    @property
    def material(self) -> bool:
        """Whether moving the touches gains reliably: the interval of :attr:`recoverable_usd` is above $0."""
        return self.low > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            **asdict(self),
            "share_hours_below_average": self.share_hours_below_average,
            "material": self.material,
        }


def action_families(action_ids: list[str], playbook: Playbook | None, kind: FamilyKind = "team") -> dict[str, str]:
    """The family of each action id (variants ``action:variant`` belong to their action's family).

    ``team`` and ``objective`` come from the playbook; an action it does not list, or any action
    without a playbook, is its own family. ``none`` has no family.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> action_families(["upsell_call", "nurture_email:morning", "none", "custom"], load_playbook())
    {'upsell_call': 'sales', 'nurture_email:morning': 'marketing', 'custom': 'custom'}
    """
    if kind not in ("team", "objective", "action"):
        raise ConfigError(f"families must be 'team', 'objective' or 'action', got {kind!r}")
    catalog = {a.id: a for a in playbook.actions} if playbook is not None else {}
    out = {}
    for arm in action_ids:
        if arm == NO_ACTION:
            continue
        base = arm.split(ARM_SEPARATOR, 1)[0]
        action = catalog.get(base)
        if action is None or kind == "action":
            out[arm] = base
        else:
            out[arm] = action.team if kind == "team" else action.objective
    return out


def projection_values(projection: EffectProjection, eligible: pl.DataFrame | None = None) -> pl.DataFrame:
    """``account_id, action_id, value_usd, low, high`` of a projection, checked to be one row per pair.

    With ``eligible`` (``account_id, action_id`` pairs), only those pairs and ``none`` are kept;
    an arm ``action:variant`` is eligible when its action is.

    Raises
    ------
    ConfigError
        If it has a row per decision (``decision_ts``) or repeats an account × action pair.
    """
    values = projection.values
    if "decision_ts" in values.columns:
        raise ConfigError("segment responses need a projection of a snapshot (one row per account), not of decisions")
    out = values.select(
        pl.col("account_id").cast(pl.String),
        pl.col("action_id").cast(pl.String),
        pl.col("value_usd").cast(pl.Float64),
        pl.col("low").cast(pl.Float64),
        pl.col("high").cast(pl.Float64),
    )
    if out.select(pl.struct("account_id", "action_id").is_duplicated().any()).item():
        raise ConfigError("the projection repeats an account × action pair")
    if eligible is None:
        return out
    for column in ("account_id", "action_id"):
        if column not in eligible.columns:
            raise ConfigError(f"eligible pairs need the column {column!r}")
    allowed = eligible.select(
        pl.col("account_id").cast(pl.String), pl.col("action_id").cast(pl.String).alias("_base")
    ).unique()
    base = pl.col("action_id").str.split(ARM_SEPARATOR).list.first().alias("_base")
    kept = out.with_columns(base).join(allowed, on=["account_id", "_base"], how="semi").drop("_base")
    return pl.concat([kept, out.filter(pl.col("action_id") == NO_ACTION)]).unique(
        ["account_id", "action_id"], maintain_order=True
    )


def _ratio(value: float, book: float, book_low: float) -> float | None:
    return value / book if book > 0 and book_low > 0 else None


def action_means(values: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """``group, action_id, value_usd, low, high, accounts``: each action's mean over each group's accounts.

    ``values`` is :func:`projection_values`; ``groups`` is ``account_id, group``. The mean is over
    every account of the group with a projection; an account without a row for the action (the
    rules do not allow it) counts as doing nothing, $0. ``none`` is left out (worth $0).

    Examples
    --------
    >>> values = pl.DataFrame({"account_id": ["a", "a", "b", "b", "c"],
    ...                        "action_id": ["call", "none", "call", "none", "none"],
    ...                        "value_usd": [30.0, 0.0, -10.0, 0.0, 0.0], "low": [10.0, 0.0, -20.0, 0.0, 0.0],
    ...                        "high": [50.0, 0.0, 0.0, 0.0, 0.0]})
    >>> action_means(values, pl.DataFrame({"account_id": ["a", "b", "c"], "group": [0, 0, 0]})).rows()
    [(0, 'call', 6.666666666666667, -3.3333333333333335, 16.666666666666668, 3)]
    """
    keyed = values.join(groups.select(pl.col("account_id").cast(pl.String), "group"), on="account_id", how="inner")
    sizes = keyed.group_by("group").agg(pl.col("account_id").n_unique().alias("accounts"))
    return (
        keyed.filter(pl.col("action_id") != NO_ACTION)
        .group_by("group", "action_id")
        .agg(pl.col(c).cast(pl.Float64).fill_null(0.0).sum() for c in ("value_usd", "low", "high"))
        .join(sizes, on="group")
        .with_columns(pl.col(c) / pl.col("accounts") for c in ("value_usd", "low", "high"))
        .select("group", "action_id", "value_usd", "low", "high", "accounts")
        .sort("group", "action_id")
    )


def _best(means: pl.DataFrame, actions: list[str] | None = None) -> dict[Any, tuple[str, float, float, float]]:
    """Each group's action of largest mean among ``actions`` (default all; ties: the first id).

    As ``(action, value, low, high)`` by group.
    """
    rows = means if actions is None else means.filter(pl.col("action_id").is_in(actions))
    best = (
        rows.sort(["group", "value_usd", "action_id"], descending=[False, True, False])
        .group_by("group", maintain_order=True)
        .first()
    )
    return {
        g: (str(a), float(v), float(lo), float(hi))
        for g, a, v, lo, hi in best.select("group", "action_id", "value_usd", "low", "high").iter_rows()
    }


def segment_responses(
    assignments: pl.DataFrame,
    projection: EffectProjection,
    *,
    playbook: Playbook | None = None,
    families: FamilyKind = "team",
    eligible: pl.DataFrame | None = None,
    min_book_share: float = 0.1,
) -> list[SegmentResponse]:
    """Each segment's projected response, overall and per action family, with its ratio to the book's.

    A segment's response to a family is the value of the family's best action for the segment as a
    whole (the largest, over the family's actions, of the mean value over the segment's accounts);
    the overall response is the value of its best single action, $0 when none gains on average. The
    book's are the same over all the assigned accounts. Never the mean of each account's own best
    action: that takes the largest of noisy estimates and is positive even where nothing pays.

    Parameters
    ----------
    assignments
        ``account_id, segment_id``.
    projection
        Projected values of every action for (at least) the assigned accounts.
    playbook
        Maps actions to families; without it every action is its own family.
    families
        ``team`` (who carries it out), ``objective`` (what it serves) or ``action``.
    eligible
        Optional ``account_id, action_id`` pairs allowed (e.g. the playbook's eligibility
        rules); other pairs count as doing nothing ($0), ``none`` is always in.
    min_book_share
        A family's ratio is None when its book figure is below this share of the book's overall
        response: against a near-zero figure a ratio (10×, −4×) is noise. (Nor is there a ratio
        when the book's figure is not material, its interval reaching $0.)

    Returns
    -------
    list[SegmentResponse]
        One per segment with projected accounts, ordered by rank (largest response first).

    Raises
    ------
    ConfigError
        If no assigned account has a projection, or the projection is not one row per pair.
    """
    ids = assignments.select(pl.col("account_id").cast(pl.String), pl.col("segment_id").cast(pl.Int64))
    values = projection_values(projection, eligible).join(ids, on="account_id", how="semi")
    if values.height == 0:
        raise ConfigError("the projection has none of the segmented accounts")
    fam = action_families(values.get_column("action_id").unique().sort().to_list(), playbook, families)
    members: dict[str, list[str]] = {}
    for arm, name in fam.items():
        members.setdefault(name, []).append(arm)
    seg_means = action_means(values, ids.rename({"segment_id": "group"}))
    book_means = action_means(values, ids.select("account_id", pl.lit(0).alias("group")))
    sizes = dict(
        values.join(ids, on="account_id").group_by("segment_id").agg(pl.col("account_id").n_unique()).iter_rows()
    )
    book_best = _best(book_means).get(0)
    # Doing nothing is worth $0 [$0, $0]: the response is the best action's only where it gains on average.
    book_action, book_value, book_low, book_high = (
        book_best if book_best is not None and book_best[1] > 0 else (None, 0.0, 0.0, 0.0)
    )
    book_family = {name: _best(book_means, arms).get(0) for name, arms in sorted(members.items())}
    seg_family = {name: _best(seg_means, arms) for name, arms in sorted(members.items())}
    overall = _best(seg_means)
    rows = []
    for sid in sorted(int(s) for s in sizes):
        best = overall.get(sid)
        action, value, low, high = best if best is not None and best[1] > 0 else (None, 0.0, 0.0, 0.0)
        rows.append((sid, action, value, low, high))
    rows.sort(key=lambda r: (-r[2], r[0]))
    out = []
    for rank, (sid, action, value, low, high) in enumerate(rows, start=1):
        fams = []
        for name in sorted(members):
            mine, book = seg_family[name].get(sid), book_family[name]
            if mine is None or book is None:
                continue
            ratio = _ratio(mine[1], book[1], book[2]) if book[1] >= min_book_share * book_value else None
            fams.append(
                FamilyResponse(
                    family=name,
                    value_usd=mine[1],
                    low=mine[2],
                    high=mine[3],
                    book_value_usd=book[1],
                    ratio=ratio,
                    best_action=mine[0],
                )
            )
        fams.sort(key=lambda f: (-f.value_usd, f.family))
        out.append(
            SegmentResponse(
                segment_id=sid,
                accounts=int(sizes[sid]),
                value_usd=value,
                low=low,
                high=high,
                book_value_usd=book_value,
                ratio=_ratio(value, book_value, book_low),
                rank=rank,
                families=fams,
                best_action=action,
                book_low=book_low,
                book_high=book_high,
                book_best_action=book_action,
            )
        )
    return out


def spend_efficiency(
    assignments: pl.DataFrame,
    responses: list[SegmentResponse],
    projection: EffectProjection,
    touches: pl.DataFrame,
    *,
    as_of: datetime,
    playbook: Playbook | None = None,
    eligible: pl.DataFrame | None = None,
    days: int = 90,
) -> SpendEfficiency:
    """The share of recent effort spent on segments that respond below the book, and the value of moving it.

    Parameters
    ----------
    assignments
        ``account_id, segment_id``.
    responses
        From :func:`segment_responses`.
    projection
        The same projection (values the touched actions at the run's time).
    touches
        The book's touches (``account_id, action_id, ts``); ``none`` and later ones are ignored.
    as_of
        The run's time: touches of ``[as_of - days, as_of)`` count.
    playbook
        ``effort_hours`` of each action.
    eligible
        ``account_id, action_id`` pairs the receiving accounts may take.
    days
        The look-back window of the effort.

    Returns
    -------
    SpendEfficiency

    Raises
    ------
    ConfigError
        If ``days`` is not positive or the touches lack a column.
    """
    if not isinstance(days, int) or days <= 0:
        raise ConfigError(f"the spend window must be a positive whole number of days, got {days!r}")
    for column in ("account_id", "action_id", "ts"):
        if column not in touches.columns:
            raise ConfigError(f"touches need the column {column!r}")
    start = as_of - timedelta(days=days)
    hours = {a.id: a.effort_hours for a in playbook.actions} if playbook is not None else {}
    recent = (
        touches.filter((pl.col("ts") >= start) & (pl.col("ts") < as_of) & (pl.col("action_id") != NO_ACTION))
        .select(pl.col("account_id").cast(pl.String), pl.col("action_id").cast(pl.String))
        .join(assignments.select(pl.col("account_id").cast(pl.String), "segment_id"), on="account_id", how="inner")
        .with_columns(
            pl.col("action_id")
            .str.split(ARM_SEPARATOR)
            .list.first()
            .replace_strict(hours, default=0.0, return_dtype=pl.Float64)
            .alias("hours")
        )
    )
    below = sorted(r.segment_id for r in responses if r.value_usd < r.book_value_usd)
    # Touches go only where the segment's best action pays reliably: a gain that may be $0 is not one to move for.
    receiving = [r for r in responses if r.segment_id not in below and r.material and r.best_action is not None]
    is_below = pl.col("segment_id").is_in(below)
    n_below = recent.filter(is_below).height
    hours_total = float(recent.get_column("hours").sum())
    hours_below = float(recent.filter(is_below).get_column("hours").sum())
    moved, value, low, high = _reallocate(recent, assignments, receiving, below, projection, eligible)
    return SpendEfficiency(
        days=days,
        touches=recent.height,
        touches_below_average=n_below,
        share_below_average=n_below / recent.height if recent.height else 0.0,
        hours=hours_total,
        hours_below_average=hours_below,
        below_average_segments=below,
        moved_touches=moved,
        recoverable_usd=value,
        low=low,
        high=high,
    )


def _reallocate(
    recent: pl.DataFrame,
    assignments: pl.DataFrame,
    receiving: list[SegmentResponse],
    below: list[int],
    projection: EffectProjection,
    eligible: pl.DataFrame | None,
) -> tuple[int, float, float, float]:
    """Touches moved and the value (with bounds) of moving them, segment by segment and action by action.

    Receivers: per receiving segment, its accounts not touched in the window that the rules allow its
    best action for, each worth that action's mean value over them. Sources: per below-average
    segment and touched action, its touches, each worth the mean value of that action over them.
    Groups, not accounts, are ranked: ranking accounts by their own noisy values would count the noise.
    """
    if not receiving or not below:
        return 0, 0.0, 0.0, 0.0
    segment_of = assignments.select(pl.col("account_id").cast(pl.String), "segment_id")
    untouched = segment_of.join(recent.select("account_id").unique(), on="account_id", how="anti")
    allowed = projection_values(projection, eligible)
    sinks: list[tuple[int, float, float, float]] = []
    for r in receiving:
        takers = allowed.filter(pl.col("action_id") == r.best_action).join(
            untouched.filter(pl.col("segment_id") == r.segment_id), on="account_id", how="semi"
        )
        if takers.height:
            v, lo, hi = takers.select(
                pl.col(c).cast(pl.Float64).fill_null(0.0).mean() for c in ("value_usd", "low", "high")
            ).row(0)
            sinks.append((takers.height, float(v), float(lo), float(hi)))
    sources = [
        (int(n), float(v), float(lo), float(hi))
        for n, v, lo, hi in recent.filter(pl.col("segment_id").is_in(below))
        .join(projection_values(projection), on=["account_id", "action_id"], how="left")
        .group_by("segment_id", "action_id")
        .agg(
            pl.len().alias("n"),
            *(pl.col(c).cast(pl.Float64).fill_null(0.0).mean() for c in ("value_usd", "low", "high")),
        )
        .sort(["value_usd", "segment_id", "action_id"])
        .select("n", "value_usd", "low", "high")
        .iter_rows()
    ]
    sinks.sort(key=lambda x: -x[1])
    moved, value, low, high = 0, 0.0, 0.0, 0.0
    i = j = 0
    left_sink = sinks[0][0] if sinks else 0
    left_source = sources[0][0] if sources else 0
    while i < len(sinks) and j < len(sources):
        _, v_to, lo_to, hi_to = sinks[i]
        _, v_from, lo_from, hi_from = sources[j]
        if v_to - v_from <= 0:  # receivers fall and sources rise along the pairs: no later pair gains
            break
        n = min(left_sink, left_source)
        moved += n
        value += n * (v_to - v_from)
        low += n * (lo_to - hi_from)
        high += n * (hi_to - lo_from)
        left_sink -= n
        left_source -= n
        if left_sink == 0:
            i += 1
            left_sink = sinks[i][0] if i < len(sinks) else 0
        if left_source == 0:
            j += 1
            left_source = sources[j][0] if j < len(sources) else 0
    return moved, value, low, high


def headline(response: SegmentResponse, currency: str = "USD") -> str:
    """One plain sentence on how a segment responds, e.g. ``responds 2.0× the book average; best family sales (…)``.

    The ratio is the segment's best single action against the book's (said only when the book's is
    material); a best family is named only when it pays reliably (its interval above $0), else the
    sentence says that no action does. Amounts are written in ``currency`` (the playbook's).

    Examples
    --------
    >>> fam = FamilyResponse("sales", 900.0, 700.0, 1100.0, 375.0, 2.4, "upsell_call")
    >>> headline(SegmentResponse(0, 10, 900.0, 700.0, 1100.0, 450.0, 2.0, 1, [fam], "upsell_call", 100.0, 800.0))
    'responds 2.0× the book average; best family sales (upsell_call), 2.4× the book average'
    >>> noisy = FamilyResponse("sales", 26.0, -384.0, 353.0, -1.4, None, "renewal_call")
    >>> headline(SegmentResponse(0, 3, 26.0, -384.0, 353.0, 0.0, None, 1, [noisy], "renewal_call"))
    'worth $26 per account [-$384, $353] (the book average is not reliably above $0); no action pays reliably here'
    >>> costly = FamilyResponse("marketing", -1.0, -1.0, -1.0, -1.0, None, "promo_email")
    >>> headline(SegmentResponse(0, 3, 0.0, 0.0, 0.0, 0.0, None, 1, [costly]), "EUR")
    'worth €0 per account (no action gains on average); no action pays reliably here'
    """
    if response.ratio is not None:
        overall = f"responds {response.ratio:.1f}× the book average"
    elif response.value_usd > 0:
        overall = (
            f"worth {money_text(response.value_usd, currency)} per account [{money_text(response.low, currency)}, "
            f"{money_text(response.high, currency)}] (the book average is not reliably above {money_text(0, currency)})"
        )
    else:
        overall = f"worth {money_text(0, currency)} per account (no action gains on average)"
    if not response.families:
        return overall
    best = response.best_family
    if best is None:
        return f"{overall}; no action pays reliably here"
    fam = (
        f"{best.ratio:.1f}× the book average"
        if best.ratio is not None
        else f"{money_text(best.value_usd, currency)} per account"
    )
    return f"{overall}; best family {best.family} ({best.best_action}), {fam}"
