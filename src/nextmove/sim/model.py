"""The true outcome model of the lab: p_o(x, a) for every outcome, state and action, and its dollar value."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from nextmove.playbook import Playbook
from nextmove.playbook.schema import Sense, ValueBasis

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

DAY_S = 86_400
WEEK_S = 7 * DAY_S

OUTCOME_KINDS = ("churn", "renewal", "expansion", "advocacy", "recovery", "onboarded")
"""Outcome kinds the lab emits (the default playbook's objectives use all but ``renewal``)."""

STATE_NAMES = (
    "engagement",
    "satisfaction",
    "expansion_readiness",
    "advocacy_inclination",
    "support_frustration",
)
"""The hidden per-account states, in the column order of the latent array ``z``."""
ENG, SAT, RDY, ADV, FRU = range(5)

GROUPS = ("power_users", "stalled_adopters", "support_heavy", "quiet_loyal")
"""The planted behavioral groups."""
GROUP_SHARES = (0.25, 0.25, 0.20, 0.30)
GROUP_DESCRIPTIONS = (
    "Heavy, broad product use; ready to expand and to advocate; little at risk.",
    "Bought but never took off: low usage and adoption; respond to onboarding and adoption help.",
    "Many tickets, severe and negative; respond to support recovery; selling to them backfires.",
    "Steady, satisfied, quiet: few tickets, little marketing engagement; touches mostly annoy them.",
)
GROUP_MEANS = np.array(
    [
        # engagement, satisfaction, readiness, advocacy, frustration (latent scale)
        [1.2, 0.6, 1.0, 0.6, -0.5],
        [-1.0, -0.3, -0.8, -0.6, 0.0],
        [0.2, -0.6, -0.2, -0.5, 1.2],
        [-0.1, 0.9, -0.3, 0.3, -0.8],
    ]
)
FATIGUE_SENSITIVITY = np.array([0.5, 1.0, 1.0, 3.0])
"""How much each group's churn hazard rises per recent touch (quiet loyal accounts hate noise)."""

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARES = (0.55, 0.33, 0.12)
SEGMENT_ARR_MEDIAN = (8_000.0, 35_000.0, 150_000.0)
SEGMENT_ARR_SIGMA = (0.5, 0.45, 0.6)
SEGMENT_SEAT_PRICE = (400.0, 500.0, 650.0)
SEGMENT_CHURN_OFFSET = np.array([0.35, 0.0, -0.45])
SEGMENT_EXPANSION_OFFSET = np.array([-0.1, 0.0, 0.2])

STAGES = ("onboarding", "adoption", "growth", "maturity", "renewal", "churned")
ONBOARDING, ADOPTION, GROWTH, MATURITY, RENEWAL, CHURNED = range(6)

FRUSTRATED_Z = 0.9
"""Latent frustration above which an account is in a frustration episode (recovery is possible)."""
ONBOARDING_ON_TIME_DAYS = 240.0
"""Onboarding completed after this tenure does not count as an ``onboarded`` outcome."""
ONBOARDING_STAGE_DAYS = 180.0


@dataclass(frozen=True)
class ActionProfile:
    """The true effect of one action, on the logit of each outcome, before modulation.

    Beneficial parts are scaled by the account's group response, its own responsiveness,
    diminishing returns and touch fatigue; backlash terms are not.
    """

    churn: float = 0.0
    """Change of the churn hazard's logit (negative helps)."""
    expansion: float = 0.0
    advocacy: float = 0.0
    recovery: float = 0.0
    onboarded: float = 0.0
    group_response: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    """Multiplier of the beneficial effects per group (order of :data:`GROUPS`)."""
    renewal_window: tuple[float, float] = (0.0, 1e9)
    """Days to renewal within which the churn effect is full; outside it keeps 40 %."""
    frustration_backlash: float = 0.0
    """Churn logit added times the frustration degree; also turns the expansion effect negative."""
    detractor_backlash: float = 0.0
    """Churn logit added times the detractor degree (asking an unhappy customer for a favour)."""
    advocacy_needs_promoter: bool = False
    """The advocacy effect is scaled by the promoter degree."""
    amount_multiplier: float = 1.0
    """Multiplier of the expected expansion amount when an expansion follows this action."""
    meeting: bool = False
    """Leaves a ``cs_meetings`` signal when it happens."""
    email: bool = False
    """Leaves extra ``email_opens`` / ``email_clicks``."""
    webinar: bool = False
    """Leaves ``webinar_attended`` signals."""


KNOWN_PROFILES: dict[str, ActionProfile] = {
    "exec_sponsor_call": ActionProfile(
        churn=-1.5, expansion=0.3, group_response=(0.5, 1.0, 1.2, 0.4),
        renewal_window=(10, 75), meeting=True,
    ),
    "health_check_call": ActionProfile(
        churn=-0.9, recovery=0.3, onboarded=0.3, group_response=(0.3, 1.3, 1.0, 0.3), meeting=True,
    ),
    "success_plan_review": ActionProfile(
        churn=-1.2, expansion=0.4, group_response=(0.8, 1.1, 0.7, 0.3),
        renewal_window=(45, 90), meeting=True,
    ),
    "onboarding_catchup": ActionProfile(
        onboarded=1.3, churn=-0.2, group_response=(0.6, 1.8, 0.8, 0.5), meeting=True,
    ),
    "adoption_workshop": ActionProfile(
        churn=-1.0, expansion=0.3, onboarded=0.6, group_response=(0.4, 1.7, 0.5, 0.3), meeting=True,
    ),
    "upsell_call": ActionProfile(
        expansion=1.4, group_response=(1.5, 0.2, 0.3, 0.5), frustration_backlash=1.2,
        amount_multiplier=1.4,
    ),
    "cross_sell_demo": ActionProfile(
        expansion=1.1, group_response=(1.4, 0.2, 0.3, 0.6), frustration_backlash=0.7,
        amount_multiplier=1.3, meeting=False,
    ),
    "renewal_incentive": ActionProfile(
        churn=-1.8, group_response=(0.5, 1.0, 1.0, 0.7), renewal_window=(0, 60), email=True,
    ),
    "nurture_email": ActionProfile(
        expansion=0.3, advocacy=0.1, group_response=(1.3, 0.6, 0.3, 0.2), email=True,
    ),
    "webinar_invite": ActionProfile(
        churn=-0.2, expansion=0.2, group_response=(1.0, 1.0, 0.4, 0.3), email=True, webinar=True,
    ),
    "reference_request": ActionProfile(
        advocacy=2.2, group_response=(1.2, 0.3, 0.2, 1.3), detractor_backlash=1.0,
        advocacy_needs_promoter=True, email=True,
    ),
    "case_study_invite": ActionProfile(
        advocacy=2.6, group_response=(1.3, 0.2, 0.2, 1.0), detractor_backlash=0.7,
        advocacy_needs_promoter=True,
    ),
    "support_escalation_review": ActionProfile(
        recovery=1.3, churn=-0.8, group_response=(0.5, 0.6, 1.7, 0.6),
    ),
    "proactive_support_outreach": ActionProfile(
        recovery=0.8, churn=-0.25, group_response=(0.6, 0.6, 1.3, 0.5), email=True,
    ),
}  # fmt: skip
"""True effect profiles of the default playbook's actions."""

_BY_OUTCOME = {
    "churn": ActionProfile(churn=-0.4),
    "expansion": ActionProfile(expansion=0.6),
    "advocacy": ActionProfile(advocacy=1.2, advocacy_needs_promoter=True),
    "recovery": ActionProfile(recovery=0.6),
    "onboarded": ActionProfile(onboarded=0.6),
}


def profile_for(playbook: Playbook, action_id: str) -> ActionProfile:
    """The true effect profile of ``action_id``: the lab's own for the default actions, else one
    derived from the outcome of the objective the action serves (so any playbook can be simulated)."""
    if action_id in KNOWN_PROFILES:
        return KNOWN_PROFILES[action_id]
    action = playbook.action(action_id)
    outcome = playbook.objectives[action.objective].outcome
    base = _BY_OUTCOME.get(outcome, ActionProfile(churn=-0.2))
    return ActionProfile(
        churn=base.churn,
        expansion=base.expansion,
        advocacy=base.advocacy,
        recovery=base.recovery,
        onboarded=base.onboarded,
        advocacy_needs_promoter=base.advocacy_needs_promoter,
        meeting=action.team == "cs" and action.channel in ("call", "meeting"),
        email=action.channel == "email",
    )


@dataclass(frozen=True)
class DecisionState:
    """x_t: everything the true outcome model reads about a set of accounts at a decision time."""

    t_s: int
    """Decision time, seconds since the epoch (UTC)."""
    idx: I64
    """World indices of the accounts."""
    group: I64
    segment: I64
    z: F64
    """Latent hidden states, shape (n, 5), in :data:`STATE_NAMES` order."""
    arr: F64
    seats: F64
    tenure_days: F64
    days_to_renewal: F64
    committed: B
    """The account has already decided not to renew (hidden until the renewal date)."""
    pending: B
    """Shape (n, 4): an expansion, advocacy, recovery, onboarding event is already on its way."""
    onboarded: B
    responsiveness: F64
    touches_60d: F64
    """Touches other than ``none`` in the 60 days before t."""
    same_action_180d: F64
    """Shape (n, A + 1): touches with each action code in the 180 days before t."""
    eligible: B
    """Shape (n, A + 1): candidate allowed by eligibility, cooldown and caps (code 0, none, always)."""
    stage: I64

    @property
    def frustrated(self) -> B:
        """In a frustration episode (latent frustration above :data:`FRUSTRATED_Z`)."""
        out: B = self.z[:, FRU] > FRUSTRATED_Z
        return out

    def take(self, rows: I64) -> DecisionState:
        """The state of a subset of the accounts (``rows`` index this state's arrays)."""
        return DecisionState(
            t_s=self.t_s,
            idx=self.idx[rows],
            group=self.group[rows],
            segment=self.segment[rows],
            z=self.z[rows],
            arr=self.arr[rows],
            seats=self.seats[rows],
            tenure_days=self.tenure_days[rows],
            days_to_renewal=self.days_to_renewal[rows],
            committed=self.committed[rows],
            pending=self.pending[rows],
            onboarded=self.onboarded[rows],
            responsiveness=self.responsiveness[rows],
            touches_60d=self.touches_60d[rows],
            same_action_180d=self.same_action_180d[rows],
            eligible=self.eligible[rows],
            stage=self.stage[rows],
        )


@dataclass(frozen=True)
class OutcomeProbabilities:
    """True probabilities of each outcome within the horizon after one decision per account,
    attributed to that decision, and the expected expansion amount."""

    churn: F64
    renewal: F64
    expansion: F64
    expansion_amount: F64
    """Expected ARR added if an expansion happens (so the expected dollars are ``expansion × this``)."""
    advocacy: F64
    recovery: F64
    onboarded: F64
    churn_hazard: F64 = field(repr=False)
    """The churn probability ignoring the gates (used to draw the renewal together with churn)."""

    def of(self, kind: str) -> F64:
        """The probability of outcome ``kind``."""
        out: F64 = getattr(self, kind)
        return out


def _sigmoid(x: F64) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-x))
    return out


class TrueModel:
    """The explicit outcome model p_o(x_t, a) and its dollar value under a playbook's objectives.

    Action codes: 0 is ``none``, ``1 + i`` is the playbook's i-th action.
    """

    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        self.action_ids: list[str] = ["none", *playbook.action_ids]
        self.horizon_days = float(playbook.horizon_days)
        self.window_days = float(playbook.contact_policy.window_days)
        profiles = [ActionProfile()] + [profile_for(playbook, a) for a in playbook.action_ids]
        self.profiles = profiles

        def col(name: str) -> F64:
            return np.array([float(getattr(p, name)) for p in profiles])

        self._churn = col("churn")
        self._expansion = col("expansion")
        self._advocacy = col("advocacy")
        self._recovery = col("recovery")
        self._onboarded = col("onboarded")
        self._frus = col("frustration_backlash")
        self._detr = col("detractor_backlash")
        self._needs_promoter = col("advocacy_needs_promoter") > 0
        self._amount = col("amount_multiplier")
        self._group_response = np.array([p.group_response for p in profiles])
        self._window_lo = np.array([p.renewal_window[0] for p in profiles], dtype=np.float64)
        self._window_hi = np.array([p.renewal_window[1] for p in profiles], dtype=np.float64)
        self.cost_usd: F64 = np.array([0.0] + [a.cost_usd for a in playbook.actions])

    @property
    def n_codes(self) -> int:
        """Number of candidate codes (actions plus ``none``)."""
        return len(self.action_ids)

    def probabilities(self, x: DecisionState, code: I64) -> OutcomeProbabilities:
        """True outcome probabilities for each account of ``x`` under action ``code[i]``.

        Every probability is gated by what can happen within the horizon: churn only when the
        renewal falls within it and the account has not decided already; the renewal only for the
        last decision before the renewal date; expansion, advocacy and recovery only when no
        such event is already on its way; recovery only in a frustration episode; onboarding
        only while onboarding is still due.
        """
        z = x.z
        g = x.group
        d2r = x.days_to_renewal
        acted = code > 0
        fru_deg = _sigmoid(2.0 * (z[:, FRU] - 0.5))
        det_deg = _sigmoid(2.5 * (-z[:, SAT] - 0.5))
        prom_deg = _sigmoid(2.0 * (z[:, ADV] + 0.5 * z[:, SAT] - 0.3))

        # Beneficial effects shrink with repetition of the same action and with overall noise.
        same = x.same_action_180d[np.arange(len(code)), code]
        scale = self._group_response[code, g] * x.responsiveness * 0.5**same / (1.0 + 0.15 * x.touches_60d)
        in_window = (d2r >= self._window_lo[code]) & (d2r <= self._window_hi[code])
        timing = np.where(in_window, 1.0, 0.4)

        d_churn = (
            self._churn[code] * scale * timing
            + self._frus[code] * fru_deg
            + self._detr[code] * det_deg
            + acted * 0.06 * (1.0 + x.touches_60d) * FATIGUE_SENSITIVITY[g]
        )
        backlash = np.where(self._frus[code] > 0, 1.0 - 1.6 * fru_deg, 1.0)
        d_exp = self._expansion[code] * scale * backlash
        d_adv = self._advocacy[code] * scale * np.where(self._needs_promoter[code], prom_deg, 1.0)
        d_rec = self._recovery[code] * scale
        d_onb = self._onboarded[code] * scale

        first_term = x.tenure_days < 400
        b_churn = (
            -4.5
            - 0.9 * z[:, SAT]
            - 0.6 * z[:, ENG]
            + 0.5 * z[:, FRU]
            + SEGMENT_CHURN_OFFSET[x.segment]
            + 0.3 * first_term
            # Most customers make up their minds in the last six weeks before the renewal.
            + np.where(d2r <= 45, 0.6, -0.6)
        )
        b_exp = -4.3 + 1.0 * z[:, RDY] + 0.4 * z[:, ENG] + SEGMENT_EXPANSION_OFFSET[x.segment]
        b_adv = -6.0 + 1.0 * z[:, ADV] + 0.6 * z[:, SAT]
        b_rec = -1.6 + 0.5 * z[:, SAT] - 0.4 * z[:, FRU]
        b_onb = -1.5 + 0.9 * z[:, ENG]

        hazard = _sigmoid(b_churn + d_churn)
        open_ = ~x.committed
        churn_gate = open_ & (d2r > 0) & (d2r <= self.horizon_days)
        renewal_gate = open_ & (d2r > 0) & (d2r <= self.window_days)
        exp_gate = open_ & ~x.pending[:, 0]
        adv_gate = open_ & ~x.pending[:, 1]
        rec_gate = open_ & ~x.pending[:, 2] & x.frustrated
        onb_gate = ~x.onboarded & ~x.pending[:, 3] & (x.tenure_days <= ONBOARDING_ON_TIME_DAYS)

        amount = x.arr * (0.08 + 0.12 * _sigmoid(z[:, RDY])) * self._amount[code]
        return OutcomeProbabilities(
            churn=np.where(churn_gate, hazard, 0.0),
            renewal=np.where(renewal_gate, 1.0 - hazard, 0.0),
            expansion=np.where(exp_gate, _sigmoid(b_exp + d_exp), 0.0),
            expansion_amount=amount,
            advocacy=np.where(adv_gate, _sigmoid(b_adv + d_adv), 0.0),
            recovery=np.where(rec_gate, _sigmoid(b_rec + d_rec), 0.0),
            onboarded=np.where(onb_gate, _sigmoid(b_onb + d_onb), 0.0),
            churn_hazard=hazard,
        )

    def expected_dollars(self, x: DecisionState, p: OutcomeProbabilities) -> F64:
        """Objective-weighted expected dollars of the outcomes (before action cost).

        ``avoid`` objectives count negative; ``arr`` values one event at the account's ARR at the
        decision, ``amount`` at the expected amount, ``fixed`` at ``value_usd``.
        """
        total = np.zeros(len(x.idx))
        for objective in self.playbook.objectives.values():
            kind = objective.outcome
            if kind not in OUTCOME_KINDS:
                continue
            prob = p.of(kind)
            if objective.value is ValueBasis.ARR:
                per_event = x.arr
            elif objective.value is ValueBasis.AMOUNT:
                per_event = (
                    p.expansion_amount if kind == "expansion" else x.arr if kind == "churn" else np.ones(len(prob))
                )
            else:
                per_event = np.full(len(prob), float(objective.value_usd or 0.0))
            sign = -1.0 if objective.sense is Sense.AVOID else 1.0
            total = total + objective.weight * sign * prob * per_event
        return total

    def values(self, x: DecisionState, code: I64) -> tuple[OutcomeProbabilities, F64]:
        """Outcome probabilities under ``code`` and its value in dollars: the expected
        objective dollars over doing nothing, minus the action's cost (``none`` is worth 0)."""
        p = self.probabilities(x, code)
        p0 = self.probabilities(x, np.zeros(len(code), dtype=np.int64))
        value = self.expected_dollars(x, p) - self.expected_dollars(x, p0) - self.cost_usd[code]
        return p, value

    def value_matrix(self, x: DecisionState) -> F64:
        """Value in dollars of every candidate code for every account, shape (n, A + 1)."""
        n = len(x.idx)
        p0 = self.expected_dollars(x, self.probabilities(x, np.zeros(n, dtype=np.int64)))
        out = np.zeros((n, self.n_codes))
        for c in range(1, self.n_codes):
            code = np.full(n, c, dtype=np.int64)
            out[:, c] = self.expected_dollars(x, self.probabilities(x, code)) - p0 - self.cost_usd[c]
        return out

    def oracle(self, x: DecisionState) -> tuple[I64, F64]:
        """The best eligible code per account and its value (ties go to ``none``, then catalog order)."""
        values = np.where(x.eligible, self.value_matrix(x), -np.inf)
        best: I64 = np.argmax(values, axis=1).astype(np.int64)
        return best, values[np.arange(len(best)), best]
