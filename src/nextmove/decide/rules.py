"""Which candidate actions each account may get: eligibility, cooldowns, contact caps, plays in flight, user holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Final

import numpy as np
import polars as pl

from nextmove.book import NO_ACTION
from nextmove.decide.phrases import days_said, format_days
from nextmove.errors import ConfigError
from nextmove.playbook import Playbook
from nextmove.playbook.expr import FeatureKinds, compile_eligibility

HOLD_COLUMNS: Final[dict[str, pl.DataType]] = {
    "account_id": pl.String(),
    "action_id": pl.String(),
    "why": pl.String(),
    "reason": pl.String(),
}
"""The holds :func:`check_rules` takes: one row per (account, action) that the account's users asked not to
be given now, ``why`` ``snoozed`` or ``dismissed`` and the ``reason`` in plain words ("snoozed until
2026-10-05: …"). The engine reads them from the store's feedback (``nextmove.engine.holds.read_holds``)."""

NO_PLAY_ALLOWED: Final = "no play allowed: the contact policy's max_actions_per_window is 0"
"""The reason a play is blocked when ``max_actions_per_window`` is 0 (in flight, with none needed to be)."""


@dataclass(frozen=True)
class Candidate:
    """One thing the run may recommend: an action, or one variant of it."""

    action_id: str
    variant: str | None
    team: str
    channel: str
    objective: str
    cost_usd: float
    effort_hours: float
    cooldown_days: int

    @property
    def key(self) -> str:
        """``action`` or ``action:variant``."""
        return self.action_id if self.variant is None else f"{self.action_id}:{self.variant}"


def candidates(playbook: Playbook) -> list[Candidate]:
    """Every action of the catalog, one candidate per variant (or one for the action without variants)."""
    out: list[Candidate] = []
    for a in playbook.actions:
        if not a.variants:
            out.append(
                Candidate(a.id, None, a.team, a.channel, a.objective, a.cost_usd, a.effort_hours, a.cooldown_days)
            )
        for v in a.variants:
            out.append(
                Candidate(
                    a.id,
                    v.id,
                    a.team,
                    v.channel or a.channel,
                    a.objective,
                    a.cost_usd if v.cost_usd is None else v.cost_usd,
                    a.effort_hours,
                    a.cooldown_days,
                )
            )
    return out


def touch_channels(playbook: Playbook) -> dict[tuple[str, str | None], str]:
    """The channel of each (action, variant) of the catalog, and of each action alone (variant None).

    A variant with a ``channel`` of its own is contacted on it; any other variant on its action's.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> channels = touch_channels(load_playbook())
    >>> channels[("nurture_email", None)], channel_of(channels, "nurture_email", "no such variant")
    ('email', 'email')
    """
    out: dict[tuple[str, str | None], str] = {}
    for a in playbook.actions:
        out[(a.id, None)] = a.channel
        for v in a.variants:
            out[(a.id, v.id)] = v.channel or a.channel
    return out


def channel_of(channels: Mapping[tuple[str, str | None], str], action_id: str, variant: str | None) -> str | None:
    """The channel a touch of ``action_id`` (as ``variant``) went out on: its variant's, else its action's.

    A variant the playbook does not know (or none) falls back to the action's channel; an action it
    does not know has none (None).
    """
    found = channels.get((action_id, variant)) if variant is not None else None
    return found if found is not None else channels.get((action_id, None))


class Why(IntEnum):
    """Why a candidate is not allowed for an account (0 = it is)."""

    ALLOWED = 0
    RULE = 1
    COOLDOWN = 2
    CONTACT_CAP = 3
    IN_FLIGHT = 4
    SNOOZED = 5
    DISMISSED = 6

    @property
    def code(self) -> str:
        """The code used in decision receipts: ``rule``, ``cooldown``, ``contact_cap``, ``in_flight``, ``snoozed``,
        ``dismissed`` ("" if allowed).

        Examples
        --------
        >>> Why.CONTACT_CAP.code
        'contact_cap'
        """
        return "" if self is Why.ALLOWED else self.name.lower()


@dataclass(frozen=True)
class RuleCheck:
    """The outcome of every rule for every (account, candidate)."""

    account_ids: list[str]
    candidates: list[Candidate]
    why: np.ndarray
    """(accounts × candidates) codes of :class:`Why`; ``ALLOWED`` where the candidate may be chosen."""
    days_since: np.ndarray
    """(accounts × actions of the candidates) days since the action was last done (NaN: never)."""
    in_window: np.ndarray
    """Plays (not ``none``) already done to each account in the current decision window."""
    cap_counts: dict[int, np.ndarray]
    """Index of a contact cap → touches per account counted against it."""
    held: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"_i": pl.Int64, **HOLD_COLUMNS}))
    """The holds given to :func:`check_rules` of its accounts (``_i``: the account's row), for their reasons."""

    @property
    def allowed(self) -> np.ndarray:
        """Boolean mask of the allowed (account, candidate) pairs."""
        mask: np.ndarray = self.why == Why.ALLOWED
        return mask

    def reason(self, playbook: Playbook, i: int, k: int) -> str:
        """Why candidate ``k`` is not allowed for account ``i``, in plain words ("" if it is)."""
        code = Why(int(self.why[i, k]))
        cand = self.candidates[k]
        if code is Why.ALLOWED:
            return ""
        if code is Why.RULE:
            return f"not eligible: {playbook.action(cand.action_id).eligibility}"
        if code is Why.COOLDOWN:
            # Whole days done, rounded down, as the evidence says them: 29.6 days ago never reads as the
            # 30-day cooldown itself.
            return f"cooldown: done {days_said(self.days_since[i, k])} ago, cooldown {cand.cooldown_days} days"
        if code in (Why.SNOOZED, Why.DISMISSED):
            mine = self.held.filter((pl.col("_i") == i) & (pl.col("action_id") == cand.action_id))
            return str(mine.item(0, "reason")) if mine.height else code.code
        if code is Why.IN_FLIGHT:
            policy = playbook.contact_policy
            if policy.max_actions_per_window == 0:
                return NO_PLAY_ALLOWED
            return (
                f"a play is already in flight: {int(self.in_window[i])} in the last {policy.window_days} days "
                f"(at most {policy.max_actions_per_window})"
            )
        for c, cap in enumerate(playbook.contact_policy.caps):
            if _cap_applies(cap.team, cap.channel, cand) and self.cap_counts[c][i] >= cap.max_touches:
                scope = " ".join(x for x in (cap.team, cap.channel) if x)
                count = int(self.cap_counts[c][i])
                return f"contact cap: {count} {scope} touches in {cap.window_days} days (max {cap.max_touches})"
        return "contact cap"

    def cap_index(self, playbook: Playbook) -> np.ndarray:
        """(accounts × candidates) index of the first contact cap that blocks each pair (−1: none)."""
        out = np.full(self.why.shape, -1, dtype=np.int16)
        for c, cap in reversed(list(enumerate(playbook.contact_policy.caps))):
            reached = self.cap_counts[c] >= cap.max_touches
            for j, cand in enumerate(self.candidates):
                if _cap_applies(cap.team, cap.channel, cand):
                    out[reached, j] = c
        return out

    def reasons(self, playbook: Playbook, rows: np.ndarray, cols: np.ndarray) -> pl.Series:
        """Why each pair ``(rows[t], cols[t])`` is not allowed, in plain words, for many pairs at once.

        The same words as :meth:`reason`, built with Polars expressions rather than a loop, so a
        book of a million accounts costs seconds. Allowed pairs get ``""``.
        """
        cands = self.candidates
        policy = playbook.contact_policy
        caps = policy.caps
        cap_at = self.cap_index(playbook)[rows, cols] if caps else np.full(rows.size, -1)
        cap_scope = [" ".join(x for x in (c.team, c.channel) if x) for c in caps]
        counts = np.zeros(rows.size)
        for c in range(len(caps)):
            hit = cap_at == c
            counts[hit] = self.cap_counts[c][rows[hit]]
        codes = self.why[rows, cols].astype(np.int8)
        held = np.isin(codes, [Why.SNOOZED, Why.DISMISSED])
        hold_reason = np.full(rows.size, None, dtype=object)
        if held.any():
            asked = pl.DataFrame(
                {
                    "_i": rows[held].astype(np.int64),
                    "action_id": pl.Series([c.action_id for c in cands], dtype=pl.String).gather(cols[held]),
                }
            )
            said = asked.join(self.held.select("_i", "action_id", "reason"), on=["_i", "action_id"], how="left")
            hold_reason[held] = said.get_column("reason").to_numpy()
        frame = pl.DataFrame(
            {
                "code": codes,
                "hold_reason": pl.Series(hold_reason.tolist(), dtype=pl.String),
                "rule": pl.Series([playbook.action(c.action_id).eligibility for c in cands])
                .gather(cols)
                .cast(pl.String),
                "days": self.days_since[rows, cols],
                "cooldown": np.array([c.cooldown_days for c in cands], dtype=np.int64)[cols],
                "in_window": self.in_window[rows].astype(np.int64),
                "cap": cap_at.astype(np.int64),
                "count": counts.astype(np.int64),
            }
        )
        scope = pl.col("cap").replace_strict(list(range(len(caps))), cap_scope, default="", return_dtype=pl.String)
        window = pl.col("cap").replace_strict(
            list(range(len(caps))), [c.window_days for c in caps], default=0, return_dtype=pl.Int64
        )
        most = pl.col("cap").replace_strict(
            list(range(len(caps))), [c.max_touches for c in caps], default=0, return_dtype=pl.Int64
        )
        text = (
            pl.when(pl.col("code") == Why.RULE)
            .then(pl.concat_str([pl.lit("not eligible: "), pl.col("rule")]))
            .when(pl.col("code") == Why.COOLDOWN)
            .then(pl.format("cooldown: done {} ago, cooldown {} days", format_days(pl.col("days")), pl.col("cooldown")))
            .when(pl.col("code") == Why.IN_FLIGHT)
            .then(
                pl.lit(NO_PLAY_ALLOWED)
                if policy.max_actions_per_window == 0
                else pl.format(
                    "a play is already in flight: {} in the last {} days (at most {})",
                    pl.col("in_window"),
                    pl.lit(policy.window_days),
                    pl.lit(policy.max_actions_per_window),
                )
            )
            .when((pl.col("code") == Why.CONTACT_CAP) & (pl.col("cap") >= 0))
            .then(
                pl.format(
                    "contact cap: {} {} touches in {} days (max {})",
                    pl.col("count"),
                    scope,
                    window,
                    most,
                )
            )
            .when(pl.col("code") == Why.CONTACT_CAP)
            .then(pl.lit("contact cap"))
            .when(pl.col("code") == Why.SNOOZED)
            .then(pl.col("hold_reason").fill_null("snoozed"))
            .when(pl.col("code") == Why.DISMISSED)
            .then(pl.col("hold_reason").fill_null("dismissed"))
            .otherwise(pl.lit(""))
        )
        return frame.select(text.alias("reason")).to_series()


def _cap_applies(team: object, channel: str | None, cand: Candidate) -> bool:
    team_value = getattr(team, "value", team)
    return (team_value is None or team_value == cand.team) and (channel is None or channel == cand.channel)


def check_rules(
    features: pl.DataFrame,
    touches: pl.DataFrame,
    playbook: Playbook,
    as_of: datetime,
    kinds: FeatureKinds,
    holds: pl.DataFrame | None = None,
) -> RuleCheck:
    """Apply the playbook's rules to every account of ``features`` at decision time ``as_of``.

    Order of precedence for the reason shown: eligibility rule, play in flight, cooldown,
    contact cap, then what the account's users said (``holds``: snoozed, dismissed). Only
    touches before ``as_of`` count; ``none`` decisions never count as contact.

    A hold marks only what the playbook's rules allow: an action a rule blocks keeps that rule's
    code, which the online decider keeps blocked until the next run, while it reads the holds
    again at each decision (so a snooze that ends between runs ends online when it ends).

    Parameters
    ----------
    features
        One row per account (``account_id`` and the features the expressions use).
    touches
        The book's touches (``account_id, action_id, ts``, and ``variant`` where logged): a contact
        cap on a channel counts a touch on the channel it went out on, its variant's if the
        playbook gives that variant a ``channel``, else its action's; a candidate variant is
        checked against the caps of its own channel.
    kinds
        Feature name → ``number``/``text`` (from ``nextmove.features.feature_schema``).
    holds
        The (account, action) pairs the accounts' users asked not to be given now, with why
        and in what words (:data:`HOLD_COLUMNS`); every variant of a held action is held.
    """
    cands = candidates(playbook)
    ids = features.get_column("account_id").to_list()
    n, k = len(ids), len(cands)
    why = np.zeros((n, k), dtype=np.int8)

    exprs = {a.id: compile_eligibility(a.eligibility, kinds, action_id=a.id).alias(a.id) for a in playbook.actions}
    eligible = features.select(list(exprs.values()))
    for j, cand in enumerate(cands):
        ok = eligible.get_column(cand.action_id).fill_null(False).to_numpy().astype(bool)
        if ok.size != n:  # an expression without features (always eligible) is one literal
            ok = np.full(n, bool(ok[0]) if ok.size else True)
        why[~ok, j] = Why.RULE

    variant = pl.col("variant").cast(pl.String) if "variant" in touches.columns else pl.lit(None, pl.String)
    past = touches.filter((pl.col("ts") < as_of) & (pl.col("action_id") != NO_ACTION)).select(
        "account_id", "action_id", "ts", variant.alias("variant")
    )
    age_days = ((pl.lit(as_of) - pl.col("ts")).dt.total_seconds() / 86_400.0).alias("age_days")
    past = past.with_columns(age_days)
    index = pl.DataFrame({"account_id": ids}).with_row_index("_i")
    last = (
        past.group_by("account_id", "action_id").agg(pl.col("age_days").min()).join(index, on="account_id", how="inner")
    )
    days_since = np.full((n, k), np.nan)
    rows_i = last.get_column("_i").to_numpy()
    ages = last.get_column("age_days").to_numpy()
    acted = last.get_column("action_id").to_numpy()
    for j, cand in enumerate(cands):
        hit = acted == cand.action_id
        days_since[rows_i[hit], j] = ages[hit]

    window = playbook.contact_policy.window_days
    in_window = _count_per_account(past.filter(pl.col("age_days") < window), index, n)
    flight = in_window >= playbook.contact_policy.max_actions_per_window
    cooldown = np.array([c.cooldown_days for c in cands], dtype=float)
    cooling = days_since < cooldown[None, :]
    free = why == Why.ALLOWED
    why[free & flight[:, None]] = Why.IN_FLIGHT
    free = why == Why.ALLOWED
    why[free & cooling] = Why.COOLDOWN

    team_of = {a.id: a.team for a in playbook.actions}
    if playbook.contact_policy.caps:
        past = past.with_columns(_touch_channel(past, playbook).alias("_channel"))
    cap_counts: dict[int, np.ndarray] = {}
    for c, cap in enumerate(playbook.contact_policy.caps):
        team = cap.team
        # A touch counts on the channel it went out on: its logged variant's, else its action's.
        counted = pl.col("action_id").is_in([a for a in team_of if team is None or team_of[a] == team])
        if cap.channel is not None:
            counted = counted & (pl.col("_channel") == cap.channel)
        counts = _count_per_account(past.filter((pl.col("age_days") < cap.window_days) & counted), index, n)
        cap_counts[c] = counts
        blocked = counts >= cap.max_touches
        for j, cand in enumerate(cands):
            if _cap_applies(cap.team, cap.channel, cand):
                col = why[:, j]
                col[(col == Why.ALLOWED) & blocked] = Why.CONTACT_CAP

    held = _held(holds, index)
    if held.height:
        rows_h = held.get_column("_i").to_numpy()
        codes_h = np.where(held.get_column("why").to_numpy() == "snoozed", Why.SNOOZED, Why.DISMISSED)
        actions_h = held.get_column("action_id").to_numpy()
        for j, cand in enumerate(cands):
            hit = actions_h == cand.action_id
            col = why[:, j]
            free = col[rows_h[hit]] == Why.ALLOWED
            col[rows_h[hit][free]] = codes_h[hit][free]
    return RuleCheck(ids, cands, why, days_since, in_window, cap_counts, held)


def _touch_channel(past: pl.DataFrame, playbook: Playbook) -> pl.Series:
    """The channel of each touch of ``past`` (``action_id, variant``), as :func:`channel_of` says; null if unknown."""
    channels = touch_channels(playbook)
    pairs = past.select("action_id", "variant").unique()
    looked_up = pairs.with_columns(
        pl.Series(
            "_channel",
            [channel_of(channels, a, v) for a, v in pairs.iter_rows()],
            dtype=pl.String,
        )
    )
    return past.join(looked_up, on=["action_id", "variant"], how="left", nulls_equal=True, maintain_order="left")[
        "_channel"
    ]


def _held(holds: pl.DataFrame | None, index: pl.DataFrame) -> pl.DataFrame:
    """The holds of the accounts of ``index``, one per (account, action), with the account's row ``_i``."""
    empty = pl.DataFrame(schema={"_i": pl.Int64, **HOLD_COLUMNS})
    if holds is None or holds.height == 0:
        return empty
    missing = [c for c in HOLD_COLUMNS if c not in holds.columns]
    if missing:
        raise ConfigError(f"holds lack the column(s) {', '.join(missing)} (need {', '.join(HOLD_COLUMNS)})")
    unknown = holds.filter(~pl.col("why").is_in(["snoozed", "dismissed"]))
    if unknown.height:
        raise ConfigError(f"holds: why must be snoozed or dismissed, got {unknown.item(0, 'why')!r}")
    return (
        holds.select([pl.col(c).cast(t) for c, t in HOLD_COLUMNS.items()])
        .unique(["account_id", "action_id"], keep="first", maintain_order=True)
        .join(index.select(pl.col("_i").cast(pl.Int64), "account_id"), on="account_id", how="inner")
        .select(empty.columns)
    )


def _count_per_account(rows: pl.DataFrame, index: pl.DataFrame, n: int) -> np.ndarray:
    counts = np.zeros(n)
    grouped = rows.group_by("account_id").agg(pl.len().alias("n")).join(index, on="account_id", how="inner")
    counts[grouped.get_column("_i").to_numpy()] = grouped.get_column("n").to_numpy()
    return counts
