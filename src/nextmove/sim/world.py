"""The simulated world: accounts, hidden states evolving weekly, signals, decisions and outcome draws."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.errors import ConfigError
from nextmove.sim.config import SimConfig
from nextmove.sim.eligibility import evaluate_eligibility
from nextmove.sim.model import (
    ADOPTION,
    ADV,
    CHURNED,
    DAY_S,
    ENG,
    FRU,
    GROUP_MEANS,
    GROUP_SHARES,
    GROUPS,
    GROWTH,
    MATURITY,
    ONBOARDING,
    ONBOARDING_STAGE_DAYS,
    OUTCOME_KINDS,
    RDY,
    RENEWAL,
    SAT,
    SEGMENT_ARR_MEDIAN,
    SEGMENT_ARR_SIGMA,
    SEGMENT_SEAT_PRICE,
    SEGMENT_SHARES,
    WEEK_S,
    DecisionState,
    OutcomeProbabilities,
    TrueModel,
)
from nextmove.sim.names import company_name_order, person_names
from nextmove.sim.policy import HistoricalPolicy, ObservedFeatures

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]
SignalChunk = tuple[I64, I64, I64, F64]
"""One week of signals: account index, time (s), signal-name code, value."""

YEAR_S = 365 * DAY_S
RENEWAL_STAGE_DAYS = 90.0
NEVER = np.iinfo(np.int64).min // 4
"""Last-touch time of an action never done (far enough in the past for any cooldown)."""

INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Retail", "Manufacturing", "Education",
    "Media", "Logistics",
)  # fmt: skip
INDUSTRY_SHARES = (0.22, 0.14, 0.13, 0.12, 0.12, 0.09, 0.09, 0.09)
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
REGION_SHARES = (0.45, 0.30, 0.17, 0.08)
PLANS = ("Starter", "Professional", "Enterprise")
PLAN_BY_SEGMENT = np.array([[0.7, 0.3, 0.0], [0.15, 0.7, 0.15], [0.0, 0.3, 0.7]])

SIGNAL_NAMES = (
    "active_users", "seat_utilization", "logins", "feature_adoption", "sessions", "email_opens",
    "email_clicks", "webinar_attended", "cs_meetings", "tickets_opened", "ticket_severity",
    "ticket_sentiment", "csat", "nps",
)  # fmt: skip
"""Exactly the signal names of the default playbook's ``[signal_roles]``."""
SIGNAL_SOURCES = (
    "product", "product", "product", "product", "product", "marketing", "marketing",
    "marketing", "crm", "support", "support", "support", "support", "survey",
)  # fmt: skip
(
    S_USERS, S_UTIL, S_LOGINS, S_ADOPTION, S_SESSIONS, S_OPENS, S_CLICKS, S_WEBINAR, S_MEETING,
    S_TICKET, S_SEVERITY, S_SENTIMENT, S_CSAT, S_NPS,
) = range(len(SIGNAL_NAMES))  # fmt: skip

CHURN, RENEWED, EXPANSION, ADVOCACY, RECOVERY, ONBOARDED = range(6)
PERSISTENCE = 0.93
"""Weekly autocorrelation of the hidden states."""
STATE_NOISE = 0.5
"""Stationary spread of the hidden states around the account's own mean."""
INCIDENT_RATE = np.array([0.01, 0.02, 0.05, 0.008])
"""Weekly chance of a support incident that spikes frustration, per group."""


@dataclass
class _Accounts:
    """Per-account arrays of the world (one row per account ever created)."""

    group: I64
    segment: I64
    industry: I64
    region: I64
    plan: I64
    owner: I64
    mu: F64
    z: F64
    responsiveness: F64
    marketing: F64
    seat_price: F64
    nps_week: I64
    gap_start: I64
    gap_len: I64
    tracks_sessions: B
    created_s: I64
    contract_start_s: I64
    renewal_s: I64
    arr: F64
    seats: F64
    active: B
    churned_s: I64
    committed: B
    pending: B
    onboarded: B
    last_touch_s: I64
    util_recent: F64
    util_longrun: F64
    tickets_recent: F64
    last_nps: F64
    last_csat: F64
    window_code: I64
    """Code of the action taken at the latest decision (−1 when none was logged)."""

    def extend(self, other: _Accounts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, np.concatenate([getattr(self, f.name), getattr(other, f.name)]))

    def __len__(self) -> int:
        return len(self.group)


@dataclass(frozen=True)
class DecisionRecord:
    """The truth of the decisions taken at one decision time (one row per account decided)."""

    t_s: int
    idx: I64
    touch_no: I64
    """Touch number per row, −1 where no touch was logged."""
    code: I64
    propensity: F64
    probs_taken: OutcomeProbabilities
    probs_none: OutcomeProbabilities
    value_usd: F64
    oracle_code: I64
    oracle_value_usd: F64
    default_code: I64
    default_value_usd: F64
    propensities: F64 | None
    """Shape (n, A + 1): the historical policy's probabilities of every candidate, if it chose."""


class World:
    """A simulated customer base with hidden states and exact true outcome probabilities.

    Build it with :func:`nextmove.sim.simulate` (history) or drive it with
    :class:`nextmove.sim.LabEnvironment` (closed loop); :meth:`true_values` gives the truth for
    any logged decision time and any candidate actions.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.playbook = config.resolved_playbook()
        window_days = self.playbook.contact_policy.window_days
        if window_days % 7:
            raise ConfigError(
                f"contact_policy.window_days must be a whole number of weeks for the lab; got {window_days}"
            )
        self.weeks_per_window = window_days // 7
        self.window_s = window_days * DAY_S
        self.horizon_days = float(self.playbook.horizon_days)
        self.model = TrueModel(self.playbook)
        self.policy = HistoricalPolicy(self.playbook)
        self.rng = np.random.default_rng(np.random.SeedSequence(config.seed))
        self.start_s = int(config.start.timestamp())
        self.now_s = self.start_s
        self.action_ids = self.model.action_ids
        self.variants: list[list[str]] = [[]] + [[v.id for v in a.variants] for a in self.playbook.actions]
        self.variant_names: list[str] = sorted({v for vs in self.variants for v in vs})
        profiles = self.model.profiles
        self._is_meeting = np.array([p.meeting for p in profiles])
        self._is_email = np.array([p.email for p in profiles])
        self._is_webinar = np.array([p.webinar for p in profiles])
        self._cooldown_s = np.array([0] + [a.cooldown_days * DAY_S for a in self.playbook.actions], dtype=np.int64)

        n_owners = max(1, round(config.accounts / config.accounts_per_owner))
        self.owner_names = person_names(self.rng, n_owners)
        self.name_order = company_name_order(self.rng)

        # Logs (chunks in time order) from which the book and the truth are built.
        self.signal_chunks: list[SignalChunk] = []
        self.touch_chunks: list[tuple[I64, I64, I64, int, F64, I64, I64]] = []
        self.outcome_chunks: list[tuple[I64, I64, I64, I64, F64, I64]] = []
        self.decisions: list[DecisionRecord] = []
        self.snapshots: dict[int, DecisionState] = {}
        self.n_touches = 0
        self.n_outcomes = 0
        self._decision_times: list[int] = []
        self._decision_codes: list[I64] = []
        # Scheduled outcome events: account, time, kind, value, touch number, order of scheduling.
        self._events: list[tuple[I64, I64, I64, F64, I64]] = []
        self._n_events = 0

        self.accounts = self._new_accounts(config.accounts, initial=True)
        self.accounts.owner[:] = self.rng.permutation(config.accounts) % n_owners
        self._init_commitments()

    # ---- population ------------------------------------------------------------------------

    def _new_accounts(self, count: int, *, initial: bool) -> _Accounts:
        rng = self.rng
        group = rng.choice(len(GROUPS), size=count, p=GROUP_SHARES).astype(np.int64)
        segment = rng.choice(3, size=count, p=SEGMENT_SHARES).astype(np.int64)
        arr = np.exp(
            np.log(np.array(SEGMENT_ARR_MEDIAN)[segment])
            + np.array(SEGMENT_ARR_SIGMA)[segment] * rng.standard_normal(count)
        )
        # Power users pay a little more, stalled adopters a little less (they bought small).
        arr *= np.array([1.15, 0.9, 1.0, 1.0])[group]
        arr = np.round(np.maximum(arr, 1_500.0), 2)
        seat_price = np.array(SEGMENT_SEAT_PRICE)[segment] * rng.uniform(0.85, 1.15, count)
        seats = np.maximum(3.0, np.round(arr / seat_price))
        plan = np.array([rng.choice(3, p=PLAN_BY_SEGMENT[s]) for s in segment], dtype=np.int64)
        mu = GROUP_MEANS[group] + 0.4 * rng.standard_normal((count, 5))
        z = mu + STATE_NOISE * rng.standard_normal((count, 5))
        if initial:
            # Tenure at the start: some new, most one to several years old.
            young = rng.random(count) < 0.1
            tenure_days = np.where(young, rng.uniform(0, 180, count), 180 + rng.exponential(600, count))
            tenure_days = np.minimum(np.floor(tenure_days), 6 * 365)
            created_s = self.start_s - (tenure_days * DAY_S).astype(np.int64)
            terms = np.floor(tenure_days / 365).astype(np.int64)
            contract_start_s = created_s + terms * YEAR_S
            onboarded = (tenure_days >= ONBOARDING_STAGE_DAYS) | (
                rng.random(count) < 0.8 * tenure_days / ONBOARDING_STAGE_DAYS
            )
        else:
            created_s = np.full(count, self.now_s, dtype=np.int64)
            contract_start_s = created_s.copy()
            onboarded = np.zeros(count, dtype=bool)
        n_codes = len(self.action_ids)
        util0 = 0.08 + 0.85 / (1.0 + np.exp(-(1.3 * z[:, ENG] + 0.3 * z[:, RDY])))
        return _Accounts(
            group=group,
            segment=segment,
            industry=rng.choice(len(INDUSTRIES), size=count, p=INDUSTRY_SHARES).astype(np.int64),
            region=rng.choice(len(REGIONS), size=count, p=REGION_SHARES).astype(np.int64),
            plan=plan,
            owner=np.zeros(count, dtype=np.int64),
            mu=mu,
            z=z,
            responsiveness=np.exp(0.25 * rng.standard_normal(count) - 0.03125),
            marketing=np.exp(0.5 * rng.standard_normal(count)) * np.array([1.3, 0.8, 0.8, 0.5])[group],
            seat_price=seat_price,
            nps_week=rng.integers(0, 13, count).astype(np.int64),
            gap_start=np.where(rng.random(count) < 0.05, rng.integers(0, 200, count), -1000).astype(np.int64),
            gap_len=rng.integers(2, 7, count).astype(np.int64),
            tracks_sessions=plan > 0,
            created_s=created_s.astype(np.int64),
            contract_start_s=contract_start_s.astype(np.int64),
            renewal_s=(contract_start_s + YEAR_S).astype(np.int64),
            arr=arr,
            seats=seats,
            active=np.ones(count, dtype=bool),
            churned_s=np.full(count, -1, dtype=np.int64),
            committed=np.zeros(count, dtype=bool),
            pending=np.zeros((count, 4), dtype=bool),
            onboarded=onboarded,
            last_touch_s=np.full((count, n_codes), NEVER, dtype=np.int64),
            util_recent=util0,
            util_longrun=util0.copy(),
            tickets_recent=np.zeros(count),
            last_nps=np.full(count, 7.0),
            last_csat=np.full(count, 4.0),
            window_code=np.full(count, -1, dtype=np.int64),
        )

    def _init_commitments(self) -> None:
        """Accounts renewing soon after the start may have decided to leave before the history
        began: draw that from the hazard under doing nothing (these churns carry no touch)."""
        a = self.accounts
        x = self._state(np.arange(len(a), dtype=np.int64), eligible=False)
        hazard = self.model.probabilities(x, np.zeros(len(a), dtype=np.int64)).churn_hazard
        d2r = x.days_to_renewal
        windows_before = np.clip(np.ceil((self.horizon_days - d2r) / (self.window_s / DAY_S)), 0, None)
        p_before = 1.0 - (1.0 - hazard) ** windows_before
        commit = self.rng.random(len(a)) < p_before
        a.committed |= commit
        rows = np.flatnonzero(commit).astype(np.int64)
        self._schedule(rows, a.renewal_s[rows], CHURN, np.zeros(len(rows)), np.full(len(rows), -1))

    # ---- state at a decision time --------------------------------------------------------

    @property
    def active_idx(self) -> I64:
        """World indices of the accounts active now."""
        out: I64 = np.flatnonzero(self.accounts.active).astype(np.int64)
        return out

    def stage_of(self, idx: I64, t_s: int) -> I64:
        """Lifecycle stage codes of accounts ``idx`` at time ``t_s``."""
        a = self.accounts
        tenure = (t_s - a.created_s[idx]) / DAY_S
        d2r = (a.renewal_s[idx] - t_s) / DAY_S
        stage = np.full(len(idx), MATURITY, dtype=np.int64)
        stage[tenure < 730] = GROWTH
        stage[tenure < 365] = ADOPTION
        stage[d2r <= RENEWAL_STAGE_DAYS] = RENEWAL
        stage[~a.onboarded[idx] & (tenure < ONBOARDING_STAGE_DAYS)] = ONBOARDING
        stage[~a.active[idx]] = CHURNED
        return stage

    def _state(self, idx: I64, *, eligible: bool = True) -> DecisionState:
        """x_t of accounts ``idx`` at the current time."""
        a = self.accounts
        t = self.now_s
        n = len(idx)
        n_codes = len(self.action_ids)
        tenure = (t - a.created_s[idx]) / DAY_S
        d2r = (a.renewal_s[idx] - t) / DAY_S
        same = np.zeros((n, n_codes))
        touches_60 = np.zeros(n)
        rows = np.arange(n)
        history = []
        for t_k, codes in zip(self._decision_times, self._decision_codes, strict=True):
            if t - t_k >= 180 * DAY_S:
                continue
            ck = np.full(n, -1, dtype=np.int64)
            known = idx < len(codes)
            ck[known] = codes[idx[known]]
            history.append((t_k, ck))
            touched = ck > 0
            same[rows[touched], ck[touched]] += 1.0
            if t - t_k < 60 * DAY_S:
                touches_60 += touched
        mask = np.ones((n, n_codes), dtype=bool)
        if eligible:
            features = {
                "arr": a.arr[idx],
                "tenure_days": tenure,
                "days_to_renewal": d2r,
                "seats": a.seats[idx],
            }
            for c, action in enumerate(self.playbook.actions, start=1):
                mask[:, c] = evaluate_eligibility(action.eligibility, features, action_id=action.id)
            mask &= (t - a.last_touch_s[idx]) >= self._cooldown_s[None, :]
            for cap in self.playbook.contact_policy.caps:
                capped = np.array(
                    [False]
                    + [
                        (cap.team is None or act.team == cap.team)
                        and (cap.channel is None or act.channel == cap.channel)
                        for act in self.playbook.actions
                    ]
                )
                count = np.zeros(n)
                for t_k, ck in history:
                    if t - t_k < cap.window_days * DAY_S:
                        count += capped[np.maximum(ck, 0)] & (ck > 0)
                full = count >= cap.max_touches
                mask[np.ix_(full, capped)] = False
            mask[:, 0] = True
        return DecisionState(
            t_s=t,
            idx=idx,
            group=a.group[idx],
            segment=a.segment[idx],
            z=a.z[idx].copy(),
            arr=a.arr[idx].copy(),
            seats=a.seats[idx].copy(),
            tenure_days=tenure,
            days_to_renewal=d2r,
            committed=a.committed[idx].copy(),
            pending=a.pending[idx].copy(),
            onboarded=a.onboarded[idx].copy(),
            responsiveness=a.responsiveness[idx],
            touches_60d=touches_60,
            same_action_180d=same,
            eligible=mask,
            stage=self.stage_of(idx, t),
        )

    def begin_decision(self) -> DecisionState:
        """Record and return x_t of every active account at the current decision time."""
        x = self._state(self.active_idx)
        self.snapshots[self.now_s] = x
        return x

    def observed(self, idx: I64) -> ObservedFeatures:
        """What the historical policy's CSMs see of accounts ``idx``."""
        a = self.accounts
        return ObservedFeatures(
            utilization_recent=a.util_recent[idx],
            utilization_longrun=a.util_longrun[idx],
            tickets_recent=a.tickets_recent[idx],
            last_nps=a.last_nps[idx],
            last_csat=a.last_csat[idx],
        )

    # ---- decisions ---------------------------------------------------------------------------

    def choose_historical(self, x: DecisionState) -> tuple[I64, F64, F64]:
        """Sample the historical policy's decision per account: codes, their propensities and the
        full probability matrix."""
        probs = self.policy.probabilities(x, self.observed(x.idx))
        cum = np.cumsum(probs, axis=1)
        u = self.rng.random(len(x.idx))[:, None] * cum[:, -1:]
        codes = np.minimum((cum <= u).sum(axis=1), probs.shape[1] - 1).astype(np.int64)
        # Guard against landing on an ineligible code through rounding at a zero-width step.
        bad = ~x.eligible[np.arange(len(codes)), codes]
        codes[bad] = 0
        return codes, probs[np.arange(len(codes)), codes], probs

    def apply_decisions(
        self,
        x: DecisionState,
        code: I64,
        *,
        propensity: F64,
        arm: I64,
        logged: B,
        variant: I64 | None = None,
        propensities: F64 | None = None,
    ) -> DecisionRecord:
        """Log the touches of decision ``code`` per account of ``x`` and draw their outcomes
        from exactly the true model's probabilities."""
        a = self.accounts
        n = len(x.idx)
        t = self.now_s
        if variant is None:
            variant = self._draw_variants(code)
        touch_no = np.full(n, -1, dtype=np.int64)
        touch_no[logged] = self.n_touches + np.arange(int(logged.sum()))
        self.n_touches += int(logged.sum())
        rows = np.flatnonzero(logged)
        self.touch_chunks.append(
            (touch_no[rows], x.idx[rows], code[rows], t, propensity[rows], arm[rows], variant[rows])
        )
        codes_now = np.full(len(a), -1, dtype=np.int64)
        codes_now[x.idx[rows]] = code[rows]
        self._decision_times.append(t)
        self._decision_codes.append(codes_now)
        acted = logged & (code > 0)
        a.last_touch_s[x.idx[acted], code[acted]] = t
        a.window_code[:] = -1
        a.window_code[x.idx[rows]] = code[rows]

        p, value = self.model.values(x, code)
        p0 = self.model.probabilities(x, np.zeros(n, dtype=np.int64))
        oracle_code, oracle_value = self.model.oracle(x)
        default_code = self.policy.default_codes(x)
        _, default_value = self.model.values(x, default_code)
        self._draw_outcomes(x, p, touch_no)
        record = DecisionRecord(
            t_s=t,
            idx=x.idx,
            touch_no=touch_no,
            code=code,
            propensity=propensity,
            probs_taken=p,
            probs_none=p0,
            value_usd=value,
            oracle_code=oracle_code,
            oracle_value_usd=oracle_value,
            default_code=default_code,
            default_value_usd=default_value,
            propensities=propensities,
        )
        self.decisions.append(record)
        return record

    def _draw_variants(self, code: I64) -> I64:
        out = np.full(len(code), -1, dtype=np.int64)
        u = self.rng.random(len(code))
        for c, names in enumerate(self.variants):
            if names:
                rows = code == c
                pick = np.minimum((u[rows] * len(names)).astype(np.int64), len(names) - 1)
                out[rows] = np.array([self.variant_names.index(v) for v in names])[pick]
        return out

    def _draw_outcomes(self, x: DecisionState, p: OutcomeProbabilities, touch_no: I64) -> None:
        a = self.accounts
        n = len(x.idx)
        t = self.now_s
        u = self.rng.random((n, 6))
        commit = u[:, 0] < p.churn
        renew = (p.renewal > 0) & ~commit
        a.committed[x.idx[commit]] = True
        for mask, kind in ((commit, CHURN), (renew, RENEWED)):
            rows = np.flatnonzero(mask)
            self._schedule(x.idx[rows], a.renewal_s[x.idx[rows]], kind, np.ones(len(rows)), touch_no[rows])
        # Events other than churn and renewal land before the renewal date and within the horizon.
        span_s = np.minimum(self.horizon_days, x.days_to_renewal) * DAY_S
        offset = np.maximum(3600.0, u[:, 5] * span_s).astype(np.int64)
        noise = np.exp(0.5 * self.rng.standard_normal(n) - 0.125)
        for col, kind, prob in (
            (0, EXPANSION, p.expansion),
            (1, ADVOCACY, p.advocacy),
            (2, RECOVERY, p.recovery),
            (3, ONBOARDED, p.onboarded),
        ):
            happen = u[:, col + 1] < prob
            rows = np.flatnonzero(happen)
            a.pending[x.idx[rows], col] = True
            value = np.round(p.expansion_amount[rows] * noise[rows], 2) if kind == EXPANSION else np.ones(len(rows))
            self._schedule(x.idx[rows], t + offset[rows], kind, value, touch_no[rows])

    def _schedule(self, idx: I64, ts: I64, kind: int, value: F64, touch_no: I64) -> None:
        if len(idx):
            self._events.append((idx.astype(np.int64), ts.astype(np.int64), np.full(len(idx), kind), value, touch_no))

    # ---- time --------------------------------------------------------------------------------

    def advance_window(self) -> None:
        """Advance the world by one decision window, week by week."""
        for week in range(self.weeks_per_window):
            self._advance_week(week)

    def _advance_week(self, week_in_window: int) -> None:
        a = self.accounts
        t0 = self.now_s
        t1 = t0 + WEEK_S
        self._emit_signals(t0, t1, week_in_window)
        churned = self._apply_events(t1)
        self._evolve()
        self.now_s = t1
        if len(churned):
            # Churned accounts are replaced one for one; the new account joins the same CSM's book.
            new = self._new_accounts(len(churned), initial=False)
            new.owner[:] = a.owner[churned]
            a.extend(new)

    def _apply_events(self, until_s: int) -> I64:
        """Apply scheduled outcome events up to ``until_s``; returns accounts that churned."""
        if not self._events:
            return np.zeros(0, dtype=np.int64)
        idx, ts, kind, value, touch = (np.concatenate(parts) for parts in zip(*self._events, strict=True))
        due = ts <= until_s
        later = ~due
        self._events = [(idx[later], ts[later], kind[later], value[later], touch[later])] if later.any() else []
        order = np.lexsort((kind[due], idx[due], ts[due]))
        idx, ts, kind, value, touch = (v[due][order] for v in (idx, ts, kind, value, touch))
        a = self.accounts
        value = value.copy()
        churn = kind == CHURN
        value[churn] = a.arr[idx[churn]]
        for k, col in ((EXPANSION, 0), (ADVOCACY, 1), (RECOVERY, 2), (ONBOARDED, 3)):
            rows = idx[kind == k]
            a.pending[rows, col] = False
        exp = kind == EXPANSION
        np.add.at(a.arr, idx[exp], value[exp])
        np.add.at(a.seats, idx[exp], np.round(value[exp] / a.seat_price[idx[exp]]))
        rec = idx[kind == RECOVERY]
        a.z[rec, FRU] = a.mu[rec, FRU] - 0.5
        a.z[rec, SAT] += 0.3
        onb = idx[kind == ONBOARDED]
        a.onboarded[onb] = True
        a.z[onb, ENG] += 0.3
        ren = idx[kind == RENEWED]
        a.contract_start_s[ren] = a.renewal_s[ren]
        a.renewal_s[ren] += YEAR_S
        gone = idx[churn]
        a.active[gone] = False
        a.churned_s[gone] = ts[churn]
        numbers = self.n_outcomes + np.arange(len(idx), dtype=np.int64)
        self.n_outcomes += len(idx)
        self.outcome_chunks.append((numbers, idx, ts, kind, value, touch))
        out: I64 = np.sort(gone)
        return out

    def _evolve(self) -> None:
        a = self.accounts
        idx = self.active_idx
        rng = self.rng
        n = len(idx)
        mu = a.mu[idx].copy()
        mu[a.committed[idx], ENG] -= 1.0
        mu[:, SAT] -= 0.4 * np.maximum(0.0, a.z[idx, FRU] - a.mu[idx, FRU])
        z = a.z[idx]
        z = mu + PERSISTENCE * (z - mu) + STATE_NOISE * np.sqrt(1 - PERSISTENCE**2) * rng.standard_normal((n, 5))
        incident = rng.random(n) < INCIDENT_RATE[a.group[idx]]
        z[incident, FRU] += 1.5
        a.z[idx] = z

    # ---- signals -------------------------------------------------------------------------------

    def _emit_signals(self, t0: int, t1: int, week_in_window: int) -> None:
        a = self.accounts
        rng = self.rng
        idx = self.active_idx
        n = len(idx)
        week_no = (t0 - self.start_s) // WEEK_S
        z = a.z[idx]
        sig = 1.0 / (1.0 + np.exp(-z))
        tenure = (t0 - a.created_s[idx]) / DAY_S
        # Committed accounts leave at their renewal date: nothing is observed after it.
        end_s = np.where(a.committed[idx] & (a.renewal_s[idx] <= t1), a.renewal_s[idx], t1)
        parts: list[tuple[I64, I64, I64, F64]] = []

        def add(rows: I64, ts: I64, name: int, value: F64) -> None:
            keep = ts < end_s[rows]
            parts.append((idx[rows[keep]], ts[keep], np.full(int(keep.sum()), name), value[keep]))

        # Weekly product usage, stamped Sunday 23:00 for the week just ended.
        ramp = np.where(a.onboarded[idx], 1.0, 0.35 + 0.65 * np.minimum(1.0, tenure / 120.0))
        util = (0.08 + 0.85 / (1.0 + np.exp(-(1.3 * z[:, ENG] + 0.3 * z[:, RDY])))) * ramp
        util = np.where(a.committed[idx], 0.8 * util, util)
        seats = a.seats[idx].astype(np.int64)
        users = rng.binomial(seats, np.clip(util, 0.0, 1.0)).astype(np.float64)
        logins = rng.poisson(users * (1.5 + 3.0 * sig[:, ENG])).astype(np.float64)
        sessions = rng.poisson(logins * 1.4).astype(np.float64)
        adoption = np.clip(
            ramp / (1.0 + np.exp(-(0.9 * z[:, ENG] + 0.5 * z[:, RDY] - 0.2))) + 0.03 * rng.standard_normal(n),
            0.0,
            1.0,
        )
        in_gap = (week_no >= a.gap_start[idx]) & (week_no < a.gap_start[idx] + a.gap_len[idx])
        observed = ~in_gap & (rng.random(n) > 0.02)
        usage_ts = np.full(n, t1 - 3600, dtype=np.int64)
        rows = np.flatnonzero(observed).astype(np.int64)
        add(rows, usage_ts[rows], S_USERS, users[rows])
        add(rows, usage_ts[rows], S_UTIL, np.round(users[rows] / seats[rows], 4))
        add(rows, usage_ts[rows], S_LOGINS, logins[rows])
        with_sessions = rows[a.tracks_sessions[idx[rows]]]
        add(with_sessions, usage_ts[with_sessions], S_SESSIONS, sessions[with_sessions])
        monthly = rows[(week_no + idx[rows]) % 4 == 0]
        add(monthly, usage_ts[monthly], S_ADOPTION, np.round(adoption[monthly], 4))

        def random_ts(count: int) -> I64:
            out: I64 = t0 + rng.integers(3600, WEEK_S - 7200, count).astype(np.int64)
            return out

        # Marketing engagement: organic, plus the emails of this window's action.
        code = a.window_code[idx]
        emailed = (code > 0) & self._is_email[np.maximum(code, 0)]
        sent = emailed * (1.0 if week_in_window == 0 else 0.5)
        opens = rng.poisson(a.marketing[idx] * (0.3 + 1.2 * sent) * (0.5 + sig[:, ENG]))
        clicks = rng.binomial(opens, 0.1 + 0.25 * sig[:, RDY])
        rows = np.flatnonzero(opens > 0).astype(np.int64)
        ts = random_ts(len(rows))
        add(rows, ts, S_OPENS, opens[rows].astype(np.float64))
        rows_c = np.flatnonzero(clicks > 0).astype(np.int64)
        add(rows_c, ts[np.searchsorted(rows, rows_c)] + 600, S_CLICKS, clicks[rows_c].astype(np.float64))
        invited = (code > 0) & self._is_webinar[np.maximum(code, 0)] & (week_in_window == 1)
        attend = rng.random(n) < np.where(invited, 0.05 + 0.3 * sig[:, ENG], 0.01)
        rows = np.flatnonzero(attend).astype(np.int64)
        add(rows, random_ts(len(rows)), S_WEBINAR, np.ones(len(rows)))
        met = (code > 0) & self._is_meeting[np.maximum(code, 0)] & (week_in_window == 0)
        organic = np.array([0.02, 0.04, 0.08])[a.segment[idx]]
        meeting = rng.random(n) < np.where(met, 0.8 + 0.15 * sig[:, ENG], organic)
        rows = np.flatnonzero(meeting).astype(np.int64)
        add(rows, random_ts(len(rows)), S_MEETING, np.ones(len(rows)))

        # Support tickets: each one an event with severity and sentiment; CSAT for some.
        rate = 0.04 * a.seats[idx] ** 0.4 * np.exp(1.1 * z[:, FRU])
        count = np.minimum(rng.poisson(rate), 10)
        rows = ticket_rows = np.repeat(np.arange(n), count).astype(np.int64)
        m = len(rows)
        ts = random_ts(m)
        severity_latent = 0.8 * z[rows, FRU] + rng.standard_normal(m)
        severity = 1.0 + np.searchsorted(np.array([-0.5, 0.7, 1.6]), severity_latent).astype(np.float64)
        sentiment = np.round(np.tanh(0.3 * z[rows, SAT] - 0.6 * z[rows, FRU] + 0.5 * rng.standard_normal(m)), 3)
        add(rows, ts, S_TICKET, np.ones(m))
        add(rows, ts, S_SEVERITY, severity)
        add(rows, ts, S_SENTIMENT, sentiment)
        answered = rng.random(m) < 0.4
        csat = np.clip(
            np.round(
                3.4 + 0.8 * z[rows, SAT] - 0.6 * z[rows, FRU] - 0.3 * (severity - 2.0) + 0.8 * rng.standard_normal(m)
            ),
            1.0,
            5.0,
        )
        csat_ts = np.minimum(ts + rng.integers(7200, 2 * DAY_S, m), t1 - 60)
        add(rows[answered], csat_ts[answered], S_CSAT, csat[answered])

        # Quarterly NPS survey, answered by some.
        surveyed = ((week_no - a.nps_week[idx]) % 13 == 0) & (rng.random(n) < 0.3 + 0.2 * sig[:, ENG])
        rows = np.flatnonzero(surveyed).astype(np.int64)
        nps = np.clip(
            np.round(
                6.8
                + 1.8 * z[rows, SAT]
                + 0.8 * z[rows, ADV]
                - 0.7 * z[rows, FRU]
                + 1.2 * rng.standard_normal(len(rows))
            ),
            0.0,
            10.0,
        )
        add(rows, random_ts(len(rows)), S_NPS, nps)

        chunk = tuple(np.concatenate(c) for c in zip(*parts, strict=True))
        s_idx, s_ts, s_name, s_value = chunk
        order = np.lexsort((s_name, s_idx, s_ts))
        self.signal_chunks.append(
            (
                s_idx[order].astype(np.int64),
                s_ts[order],
                s_name[order].astype(np.int64),
                s_value[order].astype(np.float64),
            )
        )

        # What the CSMs notice (the historical policy reads only these observed values).
        ob = observed & (end_s > t1 - 3600)
        util_seen = users / np.maximum(seats, 1)
        a.util_recent[idx[ob]] = 0.6 * a.util_recent[idx[ob]] + 0.4 * util_seen[ob]
        a.util_longrun[idx[ob]] = 0.92 * a.util_longrun[idx[ob]] + 0.08 * util_seen[ob]
        a.tickets_recent[idx] = 0.7 * a.tickets_recent[idx] + count
        if len(rows):
            a.last_nps[idx[rows]] = nps
        if answered.any():
            # With several answers in a week, one of them is remembered (the CSM skims, too).
            a.last_csat[idx[ticket_rows[answered]]] = csat[answered]

    # ---- truth ------------------------------------------------------------------------------

    @property
    def decision_times(self) -> list[datetime]:
        """Every decision time the world has a recorded state for (history, env steps, now)."""
        return [_to_datetime(t) for t in sorted(self.snapshots)]

    @property
    def now(self) -> datetime:
        """The world's current time."""
        return _to_datetime(self.now_s)

    def account_ids(self, idx: I64) -> list[str]:
        """Account ids of world indices ``idx``."""
        return [format_account_id(int(i)) for i in idx]

    def snapshot(self, t: datetime | None = None) -> DecisionState:
        """x_t of every account active at decision time ``t`` (default: the latest)."""
        if t is None:
            return self.snapshots[max(self.snapshots)]
        key = int(t.timestamp()) if t.tzinfo is not None else int(t.replace(tzinfo=UTC).timestamp())
        if key not in self.snapshots:
            times = ", ".join(d.isoformat() for d in self.decision_times[-3:])
            raise ConfigError(
                f"no decision time {t.isoformat()} in this world; use one of world.decision_times "
                f"(the latest are {times})"
            )
        return self.snapshots[key]

    def rows_of(self, x: DecisionState, account_ids: Sequence[str] | None) -> I64:
        """Rows of ``x`` for ``account_ids`` (all rows when None)."""
        if account_ids is None:
            return np.arange(len(x.idx), dtype=np.int64)
        position = {int(i): r for r, i in enumerate(x.idx)}
        rows = []
        for account_id in account_ids:
            i = parse_account_id(account_id)
            if i is None or i not in position:
                raise ConfigError(f"account {account_id!r} was not active at {_to_datetime(x.t_s).isoformat()}")
            rows.append(position[i])
        return np.array(rows, dtype=np.int64)

    def codes_of(self, actions: Sequence[str] | None) -> list[int]:
        """Candidate codes of action ids (all actions and ``none`` when None)."""
        if actions is None:
            return list(range(len(self.action_ids)))
        codes = []
        for action in actions:
            if action not in self.action_ids:
                raise ConfigError(f"action {action!r} is not in the playbook (actions: {', '.join(self.action_ids)})")
            codes.append(self.action_ids.index(action))
        return codes

    def true_values(
        self,
        account_ids: Sequence[str] | None = None,
        t: datetime | None = None,
        actions: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """The exact truth of deciding each candidate action for each account at decision time ``t``.

        Parameters
        ----------
        account_ids
            Accounts active at ``t``; all of them when None.
        t
            A decision time of the world (see :attr:`decision_times`); the latest when None.
        actions
            Candidate action ids (``none`` included or not); every action and ``none`` when None.

        Returns
        -------
        polars.DataFrame
            One row per account and candidate: ``account_id, ts, action_id, eligible, cost_usd``,
            the probability of each outcome kind within the horizon attributed to the decision
            (``p_churn`` … ``p_onboarded``), ``expected_expansion_usd`` and ``value_usd`` (expected
            objective dollars over doing nothing, minus cost).

        Raises
        ------
        ConfigError
            If ``t`` is not a decision time, an account was not active then, or an action is unknown.
        """
        x = self.snapshot(t)
        x = x.take(self.rows_of(x, account_ids))
        frames = []
        ids = self.account_ids(x.idx)
        n = len(x.idx)
        for c in self.codes_of(actions):
            code = np.full(n, c, dtype=np.int64)
            p, value = self.model.values(x, code)
            frames.append(
                decision_truth_frame(ids, x.t_s, self.action_ids[c], x.eligible[:, c], p, value).with_columns(
                    pl.lit(float(self.model.cost_usd[c])).alias("cost_usd")
                )
            )
        order = ["account_id", "ts", "action_id", "eligible", "cost_usd", *PROB_COLUMNS, "value_usd"]
        if not frames:
            return pl.DataFrame(schema={c: TRUTH_DTYPES[c] for c in order})
        return pl.concat(frames).select(order).sort(["account_id", "action_id"], maintain_order=True)


PROB_COLUMNS = (
    "p_churn", "p_renewal", "p_expansion", "expected_expansion_usd", "p_advocacy", "p_recovery",
    "p_onboarded",
)  # fmt: skip
TRUTH_DTYPES: dict[str, Any] = {
    "account_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "action_id": pl.String,
    "eligible": pl.Boolean,
    "cost_usd": pl.Float64,
    **dict.fromkeys(PROB_COLUMNS, pl.Float64),
    "value_usd": pl.Float64,
}


def prob_columns(p: OutcomeProbabilities, suffix: str = "") -> dict[str, F64]:
    """The outcome probabilities as named columns (``p_churn`` … and ``expected_expansion_usd``)."""
    cols = {f"p_{kind}{suffix}": p.of(kind) for kind in OUTCOME_KINDS}
    cols[f"expected_expansion_usd{suffix}"] = p.expansion * p.expansion_amount
    return cols


def decision_truth_frame(
    ids: list[str], t_s: int, action_id: str, eligible: B, p: OutcomeProbabilities, value: F64
) -> pl.DataFrame:
    """One row per account: the truth of one candidate action at one decision time."""
    return pl.DataFrame(
        {
            "account_id": ids,
            "ts": np.full(len(ids), t_s * 1_000_000, dtype=np.int64),
            "action_id": [action_id] * len(ids),
            "eligible": eligible,
            **prob_columns(p),
            "value_usd": value,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def format_account_id(i: int) -> str:
    """The account id of world index ``i``."""
    return f"ACC-{i + 1:06d}"


def parse_account_id(account_id: str) -> int | None:
    """The world index of ``account_id``, or None if it is not a lab id."""
    if not account_id.startswith("ACC-") or not account_id[4:].isdigit():
        return None
    return int(account_id[4:]) - 1


def _to_datetime(t_s: int) -> datetime:
    return datetime.fromtimestamp(t_s, tz=UTC)
