"""How each segment responds to outreach (per action family, against the book), and where effort is misspent.

Everything here reads an :class:`~nextmove.models.effect.EffectProjection`: the projected value
in dollars of every action for every account, with an interval.

**Response of a segment to a family of actions** (a team, an objective, or each action): for
every account, the value of the family's best action for it; the segment's response is the mean
over its accounts. The overall response uses the best action of all (``none`` included, worth
0), which is what a next-best-action policy would get. The book average is the same mean over
all accounts, and the ratio is segment ÷ book ("responds 2.4× better to sales outreach").

**Intervals** are the means of the per-account interval bounds. The per-account errors share the
model's parameters, so they are strongly correlated across accounts; averaging the bounds treats
them as fully correlated, which is conservative (wider than assuming independent errors would
give), and it is what an interval of a segment's *mean* effect needs: sampling more accounts
does not shrink a shared model error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
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
    """Mean over the segment's accounts of the value of the family's best action (dollars per account)."""
    low: float
    high: float
    book_value_usd: float
    """The same mean over the whole book."""
    ratio: float | None
    """``value_usd / book_value_usd``; None when the book's is not positive."""
    best_action: str
    """The family's action that is best for most of the segment's accounts."""
    material: bool = True
    """False when the book average is under ``min_book_share`` of the book's overall response
    (see :func:`segment_responses`): against a near-zero average the ratio swings widely (10×, −4×),
    so sentences leave it out."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class SegmentResponse:
    """A segment's projected response to its best actions, by family, and its rank in the book."""

    segment_id: int
    accounts: int
    """Accounts of the segment with a projection."""
    value_usd: float
    """Mean value of each account's best action (``none`` worth 0): what the segment gains per account."""
    low: float
    high: float
    book_value_usd: float
    ratio: float | None
    rank: int
    """1 = the segment with the largest response."""
    families: list[FamilyResponse]
    """Most valuable family first (worth nothing, even less than nothing, when none is: see :attr:`best_family`)."""

    @property
    def best_family(self) -> FamilyResponse | None:
        """The family worth the most here; None when no family is worth anything (each at most $0 per account).

        A family's value is its best action's net of cost, so where every action costs more than it
        brings (or nothing is projected at all) the first family is only the one that loses least.
        """
        return self.families[0] if self.families and self.families[0].value_usd > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``best_family``: the :attr:`best_family`'s name, or None)."""
        out = asdict(self)
        out["families"] = [f.to_dict() for f in self.families]
        out["best_family"] = None if self.best_family is None else self.best_family.family
        return out


@dataclass(frozen=True)
class SpendEfficiency:
    """Effort spent on segments that respond below the book average, and what moving it would recover.

    Effort is the touches (any action but ``none``) of the ``days`` before the run, and the
    playbook's ``effort_hours`` of those touches. The reallocation moves touches from
    below-average segments to the accounts of above-average segments that got no touch in those
    days, one play each: the lowest-value touches go to the accounts whose best action is worth
    the most, pair by pair while the pair gains. A pair gains the projected value of the account's
    best action minus the projected value (at the run's time) of the action the touch was spent
    on. Only untouched accounts take a moved touch because the projection values one action now;
    a second play to an account already worked earns less (diminishing returns, fatigue), by an
    amount the model does not know. The value is per ``days`` of effort at the current pace; its
    interval combines the bounds of both sides in the direction that widens it (conservative).
    """

    days: int
    touches: int
    touches_below_average: int
    share_below_average: float
    """Share of the touches spent on below-average segments (0 when there were none)."""
    hours: float
    hours_below_average: float
    below_average_segments: list[int]
    moved_touches: int
    """Touches the reallocation moves (at most the untouched accounts of above-average segments)."""
    recoverable_usd: float
    low: float
    high: float

    @property
    def share_hours_below_average(self) -> float | None:
        """Share of the effort hours spent on below-average segments (None without hours)."""
        return self.hours_below_average / self.hours if self.hours > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "share_hours_below_average": self.share_hours_below_average}


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


def _ratio(value: float, book: float) -> float | None:
    return value / book if book > 0 else None


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
        rules); other pairs are left out, ``none`` is always in.
    min_book_share
        A family whose book average is below this share of the book's overall response is
        marked not :attr:`~FamilyResponse.material`: against a near-zero average its ratio
        (10×, −4×) is noise.

    Returns
    -------
    list[SegmentResponse]
        One per segment with projected accounts, ordered by rank (largest response first).

    Raises
    ------
    ConfigError
        If no assigned account has a projection, or the projection is not one row per pair.
    """
    values = projection_values(projection, eligible).join(
        assignments.select(pl.col("account_id").cast(pl.String), pl.col("segment_id").cast(pl.Int64)),
        on="account_id",
        how="inner",
    )
    if values.height == 0:
        raise ConfigError("the projection has none of the segmented accounts")
    fam = action_families(values.get_column("action_id").unique().sort().to_list(), playbook, families)
    overall = _best_per_account(values, None)
    book_value = _mean(overall)
    members: dict[str, list[str]] = {}
    for arm, name in fam.items():
        members.setdefault(name, []).append(arm)
    per_family = {
        name: _best_per_account(values.filter(pl.col("action_id").is_in(arms)), name)
        for name, arms in sorted(members.items())
    }
    book_family = {name: _mean(frame) for name, frame in per_family.items()}
    seg = _segment_means(overall)
    fam_means = {name: _segment_means(frame) for name, frame in per_family.items()}
    ordered = seg.sort(["value_usd", "segment_id"], descending=[True, False])
    out = []
    for rank, row in enumerate(ordered.iter_rows(named=True), start=1):
        sid = int(row["segment_id"])
        fams = []
        for name, means in fam_means.items():
            mine = means.filter(pl.col("segment_id") == sid)
            if mine.height == 0:
                continue
            r = mine.row(0, named=True)
            fams.append(
                FamilyResponse(
                    family=name,
                    value_usd=float(r["value_usd"]),
                    low=float(r["low"]),
                    high=float(r["high"]),
                    book_value_usd=book_family[name],
                    ratio=_ratio(float(r["value_usd"]), book_family[name]),
                    best_action=str(r["best_action"]),
                    material=book_family[name] > 0 and book_family[name] >= min_book_share * book_value,
                )
            )
        fams.sort(key=lambda f: (-f.value_usd, f.family))
        out.append(
            SegmentResponse(
                segment_id=sid,
                accounts=int(row["accounts"]),
                value_usd=float(row["value_usd"]),
                low=float(row["low"]),
                high=float(row["high"]),
                book_value_usd=book_value,
                ratio=_ratio(float(row["value_usd"]), book_value),
                rank=rank,
                families=fams,
            )
        )
    return out


def _mean(frame: pl.DataFrame) -> float:
    return (
        float(frame.get_column("value_usd").cast(pl.Float64).fill_null(0.0).to_numpy().mean()) if frame.height else 0.0
    )


def _best_per_account(values: pl.DataFrame, family: str | None) -> pl.DataFrame:
    """Each account's best action among ``values`` (all actions with ``none`` when ``family`` is None)."""
    rows = values if family is None else values.filter(pl.col("action_id") != NO_ACTION)
    return (
        rows.sort(["account_id", "value_usd", "action_id"], descending=[False, True, False])
        .group_by("account_id", maintain_order=True)
        .first()
    )


def _segment_means(best: pl.DataFrame) -> pl.DataFrame:
    return (
        best.group_by("segment_id")
        .agg(
            pl.len().alias("accounts"),
            pl.col("value_usd").mean(),
            pl.col("low").mean(),
            pl.col("high").mean(),
            pl.col("action_id").mode().sort().first().alias("best_action"),
        )
        .sort("segment_id")
    )


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
    """The share of recent effort spent on below-average segments, and the value of moving it.

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
        ``account_id, action_id`` pairs the receiving accounts' best actions may use.
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
    below = sorted(r.segment_id for r in responses if r.ratio is not None and r.ratio < 1.0)
    above = [r for r in responses if r.ratio is not None and r.ratio >= 1.0]
    is_below = pl.col("segment_id").is_in(below)
    n_below = recent.filter(is_below).height
    hours_total = float(recent.get_column("hours").sum())
    hours_below = float(recent.filter(is_below).get_column("hours").sum())
    moved, value, low, high = _reallocate(recent, assignments, above, below, projection, eligible)
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
    above: list[SegmentResponse],
    below: list[int],
    projection: EffectProjection,
    eligible: pl.DataFrame | None,
) -> tuple[int, float, float, float]:
    """Touches moved and the value (with bounds) of moving them: lowest-value touches to the best untouched accounts."""
    if not above or not below:
        return 0, 0.0, 0.0, 0.0
    above_ids = [r.segment_id for r in above]
    receivers = (
        assignments.select(pl.col("account_id").cast(pl.String), "segment_id")
        .filter(pl.col("segment_id").is_in(above_ids))
        .join(recent.select("account_id").unique(), on="account_id", how="anti")
    )
    targets = (
        _best_per_account(projection_values(projection, eligible).join(receivers, on="account_id"), None)
        .filter(pl.col("value_usd") > 0)
        .sort(["value_usd", "account_id"], descending=[True, False])
    )
    sources = (
        recent.filter(pl.col("segment_id").is_in(below))
        .join(projection_values(projection), on=["account_id", "action_id"], how="left")
        .with_columns(pl.col("value_usd").fill_null(0.0), pl.col("low").fill_null(0.0), pl.col("high").fill_null(0.0))
        .sort(["value_usd", "account_id", "action_id"])
    )
    n = min(targets.height, sources.height)
    gain = targets.get_column("value_usd").head(n).to_numpy() - sources.get_column("value_usd").head(n).to_numpy()
    # Targets fall and sources rise along the pairs, so the gains fall: keep the pairs before the first loss.
    moved = int(np.argmax(gain <= 0)) if (gain <= 0).any() else n
    if moved == 0:
        return 0, 0.0, 0.0, 0.0
    t, src = targets.head(moved), sources.head(moved)
    value = float(gain[:moved].sum())
    low = float(t.get_column("low").to_numpy().sum() - src.get_column("high").to_numpy().sum())
    high = float(t.get_column("high").to_numpy().sum() - src.get_column("low").to_numpy().sum())
    return moved, value, low, high


def headline(response: SegmentResponse, currency: str = "USD") -> str:
    """One plain sentence on how a segment responds, e.g. ``responds 2.4× the book average; best: sales``.

    Amounts are written in ``currency`` (the playbook's).

    Examples
    --------
    >>> fam = FamilyResponse("sales", 900.0, 700.0, 1100.0, 375.0, 2.4, "upsell_call")
    >>> headline(SegmentResponse(0, 10, 1000.0, 800.0, 1200.0, 500.0, 2.0, 1, [fam]))
    'responds 2.0× the book average; best family sales (upsell_call), 2.4× the book average'
    >>> costly = FamilyResponse("marketing", -1.0, -1.0, -1.0, -1.0, None, "promo_email", material=False)
    >>> headline(SegmentResponse(0, 3, 0.0, 0.0, 0.0, 0.0, None, 1, [costly]))
    'worth $0 per account (the book average is not positive); no family of actions is worth anything here'
    >>> headline(SegmentResponse(0, 3, 0.0, 0.0, 0.0, 0.0, None, 1, [costly]), "EUR").split(" (")[0]
    'worth €0 per account'
    """
    overall = (
        f"responds {response.ratio:.1f}× the book average"
        if response.ratio is not None
        else f"worth {money_text(response.value_usd, currency)} per account (the book average is not positive)"
    )
    if not response.families:
        return overall
    best = response.best_family
    if best is None:
        return f"{overall}; no family of actions is worth anything here"
    fam = (
        f"{best.ratio:.1f}× the book average"
        if best.ratio is not None and best.material
        else f"{money_text(best.value_usd, currency)} per account"
    )
    return f"{overall}; best family {best.family} ({best.best_action}), {fam}"
