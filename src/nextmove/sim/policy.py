"""The confounded historical policy: the lifecycle-stage default plus CSM intuition, as a softmax."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nextmove.playbook import Playbook
from nextmove.sim.model import RENEWAL, STAGES, DecisionState

F64 = NDArray[np.float64]

NONE_UTILITY = 2.9
"""Utility of doing nothing: most windows most accounts are left alone."""
DEFAULT_BONUS = 2.2
"""Pull of the lifecycle-stage default action."""
UNIFORM_MIX = 0.05
"""Share of probability spread evenly over eligible candidates, so every one keeps overlap."""


@dataclass(frozen=True)
class _Intuition:
    base: float = -0.6
    risk: float = 0.0
    tickets: float = 0.0
    renewal_stage: float = 0.0
    log_arr: float = 0.0
    promoter: float = 0.0
    usage: float = 0.0


_KNOWN: dict[str, _Intuition] = {
    "exec_sponsor_call": _Intuition(base=-1.4, risk=0.9, renewal_stage=0.5, log_arr=0.6),
    "health_check_call": _Intuition(base=-0.3, risk=1.0),
    "success_plan_review": _Intuition(base=-0.9, risk=0.4, log_arr=0.3),
    "onboarding_catchup": _Intuition(base=-0.4, usage=-1.0),
    "adoption_workshop": _Intuition(base=-0.7, usage=-1.0),
    "upsell_call": _Intuition(base=-0.7, risk=-0.5, usage=1.5),
    "cross_sell_demo": _Intuition(base=-1.1, risk=-0.5, usage=1.0),
    "renewal_incentive": _Intuition(base=-1.3, risk=0.8, renewal_stage=1.0),
    "nurture_email": _Intuition(base=0.0),
    "webinar_invite": _Intuition(base=-0.2),
    "reference_request": _Intuition(base=-0.7, risk=-0.4, promoter=1.0),
    "case_study_invite": _Intuition(base=-1.3, risk=-0.4, promoter=1.0, log_arr=0.2),
    "support_escalation_review": _Intuition(base=-1.1, risk=0.6, tickets=1.5),
    "proactive_support_outreach": _Intuition(base=-0.5, risk=0.5, tickets=1.2),
}
_BY_OUTCOME = {"churn": _Intuition(risk=0.6), "recovery": _Intuition(tickets=1.0)}


@dataclass(frozen=True)
class ObservedFeatures:
    """What a CSM notices about an account: recent usage, tickets and survey answers, all read
    from the signals already emitted (so the policy depends on observable history only)."""

    utilization_recent: F64
    utilization_longrun: F64
    tickets_recent: F64
    last_nps: F64
    last_csat: F64

    def risk(self) -> F64:
        """The CSM's gut feeling of risk: usage dropping or low, tickets, unhappy answers."""
        drop = np.maximum(0.0, self.utilization_longrun - self.utilization_recent)
        low = np.maximum(0.0, 0.55 - self.utilization_recent)
        risk: F64 = (
            4.0 * drop
            + 2.0 * low
            + 0.5 * np.log1p(self.tickets_recent)
            + 0.25 * np.maximum(0.0, 7.0 - self.last_nps)
            + 0.4 * np.maximum(0.0, 4.0 - self.last_csat)
        )
        return risk


class HistoricalPolicy:
    """The logging policy of the history: softmax over eligible candidates of
    ``lifecycle default + CSM intuition``, mixed with a little uniform exploration."""

    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        intuitions = []
        for action in playbook.actions:
            if action.id in _KNOWN:
                intuitions.append(_KNOWN[action.id])
            else:
                outcome = playbook.objectives[action.objective].outcome
                intuitions.append(_BY_OUTCOME.get(outcome, _Intuition()))
        self._base = np.array([0.0] + [i.base for i in intuitions])
        self._risk = np.array([0.0] + [i.risk for i in intuitions])
        self._tickets = np.array([0.0] + [i.tickets for i in intuitions])
        self._renewal = np.array([0.0] + [i.renewal_stage for i in intuitions])
        self._log_arr = np.array([0.0] + [i.log_arr for i in intuitions])
        self._promoter = np.array([0.0] + [i.promoter for i in intuitions])
        self._usage = np.array([0.0] + [i.usage for i in intuitions])
        self._base[0] = NONE_UTILITY
        # default_code[stage] = the code of that stage's default action (0 when it has none).
        self._default_code = np.zeros(len(STAGES), dtype=np.int64)
        for s, stage in enumerate(STAGES):
            default = playbook.default_action_for_stage(stage)
            if default != "none":
                self._default_code[s] = 1 + playbook.action_ids.index(default)

    def default_codes(self, x: DecisionState) -> NDArray[np.int64]:
        """The lifecycle-stage default per account, or 0 (``none``) where it is not eligible."""
        code = self._default_code[x.stage]
        allowed = x.eligible[np.arange(len(code)), code]
        out: NDArray[np.int64] = np.where(allowed, code, 0)
        return out

    def probabilities(self, x: DecisionState, seen: ObservedFeatures) -> F64:
        """Probabilities of every candidate code per account, shape (n, A + 1); zero where not
        eligible, rows sum to 1."""
        n = len(x.idx)
        risk = seen.risk()[:, None]
        tickets = np.log1p(seen.tickets_recent)[:, None]
        renewal = (x.stage == RENEWAL)[:, None]
        log_arr = np.log(np.maximum(x.arr, 1.0) / 20_000.0)[:, None]
        promoter = (seen.last_nps >= 9.0)[:, None]
        usage = (seen.utilization_recent - 0.55)[:, None]
        utility = (
            self._base[None, :]
            + self._risk * risk
            + self._tickets * tickets
            + self._renewal * renewal
            + self._log_arr * log_arr
            + self._promoter * promoter
            + self._usage * usage
        )
        utility[:, 0] = NONE_UTILITY
        default = self._default_code[x.stage]
        has_default = default > 0
        utility[np.arange(n)[has_default], default[has_default]] += DEFAULT_BONUS
        utility = np.where(x.eligible, utility, -np.inf)
        utility -= utility.max(axis=1, keepdims=True)
        weights = np.exp(utility)
        soft = weights / weights.sum(axis=1, keepdims=True)
        n_eligible = x.eligible.sum(axis=1, keepdims=True)
        probs: F64 = (1.0 - UNIFORM_MIX) * soft + UNIFORM_MIX * x.eligible / n_eligible
        return probs
