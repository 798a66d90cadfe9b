"""The decision policy: projected values → rules → allocation under capacity → control and exploration → the default.

:func:`decide` takes what the models project (each account's value of each candidate, with an
interval) and what the rules allow, and makes one decision per account:

1. **Value.** Each candidate (an action, or one variant of it) is worth its projected dollars
   minus its cost; doing nothing is worth 0 and wins when nothing is worth more.
2. **Allocation.** The learned policy's choice maximises the book's total value within every
   capacity of the playbook (owner hours per week over the decision window, team budgets, the
   volume limit of each action): :func:`~nextmove.decide.allocate.allocate`.
3. **Control.** A stable, seeded ``control_fraction`` of accounts (hash of the account id) is
   held out and follows the lifecycle-stage default, where the rules allow it and capacity is left.
4. **Exploration.** Of the rest, a share ``epsilon`` (a fresh hash per run) explores: it draws
   an option among those allowed that still fit what capacity is left, uniformly (``epsilon``)
   or by Thompson sampling from the value intervals (``thompson``). What the model's accounts
   leave is shared by the control cohort and the exploring accounts in proportion to their numbers
   on each resource, so neither arm's accounts find it spent by the other's (:func:`decide`).
5. **Propensities.** Every decision records its arm and the probability with which this
   randomised policy picks each option for the account (control share × the default, plus the
   rest × (1 − ε) on the learned choice and ε × the exploration draw's probabilities); each
   account's probabilities over its options (doing nothing included) sum to 1.
6. **Default.** The lifecycle-stage default of every account is recorded, with whether the
   decision differs from it; every candidate not chosen gets a code and a reason in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from nextmove.book import NO_ACTION
from nextmove.decide.allocate import Allocation, Method, Resource, allocate
from nextmove.decide.explore import assign_control, stable_uniform, thompson_propensities
from nextmove.decide.rules import Candidate, RuleCheck, Why, candidates
from nextmove.errors import ConfigError
from nextmove.playbook import Playbook

ARMS = ("model", "explore", "control")
"""How a decision was made: the learned policy's choice, an exploration draw, or the control cohort's default."""

Z_90 = 1.6448536269514722
"""The normal quantile of a central 90 % interval: turns an interval's half-width into a standard deviation."""


@dataclass(frozen=True)
class DecisionOptions:
    """Settings of :func:`decide` that are not in the playbook.

    Examples
    --------
    >>> DecisionOptions(method="lagrangian").capacity
    True
    """

    method: Method = "auto"
    """Allocation method: ``auto``, ``exact`` (HiGHS) or ``lagrangian``."""
    time_limit_s: float = 10.0
    """Time limit of the exact allocation, in seconds: it keeps HiGHS's best solution by then, and when it
    has none the Lagrangian allocates instead (:attr:`~nextmove.decide.allocate.Allocation.fallback` says so)."""
    capacity: bool = True
    """Apply the playbook's capacities (False: every account takes its best allowed option)."""
    interval_level: float = 0.9
    """Level of the value intervals (the projection's), to read a standard deviation off them for Thompson draws."""
    thompson_draws: int = 128
    """Draws per exploring account that estimate the Thompson propensities (the others get at most 32)."""
    compare_allocations: bool = True
    """When the allocation is solved exactly, also solve it by the Lagrangian and keep both (their gap is
    reported); it costs a second or two on a book of a few thousand accounts."""
    risk_aversion: float = 0.0
    """The allocation ranks ``value − risk_aversion × sd`` (sd read off the interval): above 0 it prefers
    sure gains to uncertain ones of the same mean, which counters the optimiser's curse of picking the
    projections that happen to be too high."""

    def __post_init__(self) -> None:
        risk = self.risk_aversion
        if isinstance(risk, bool) or not isinstance(risk, int | float) or not risk >= 0:
            raise ConfigError(f"risk_aversion must be a number >= 0, got {risk!r}")
        limit = self.time_limit_s
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            raise ConfigError(f"time_limit_s must be a number of seconds > 0, got {limit!r}")


@dataclass(frozen=True)
class Decisions:
    """One decision per account, with everything needed to explain, store and evaluate it.

    Options are ``none`` (column 0) and the candidates (columns 1…K), so candidate ``k`` is
    option ``k + 1`` in :attr:`propensities`.
    """

    account_ids: list[str]
    candidates: list[Candidate]
    choice: np.ndarray
    """Chosen candidate per account (−1: do nothing)."""
    model_choice: np.ndarray
    """What the learned policy (the allocation) chose, for every account, control ones included (−1: nothing)."""
    default_choice: np.ndarray
    """The lifecycle-stage default's candidate (−1: the stage has none, or its action is not in the catalog)."""
    default_action_id: list[str | None]
    """The lifecycle-stage default action (``none`` when the stage has none or the account's stage is blank;
    None for every account when the book has no stages)."""
    arm: np.ndarray
    """``model``, ``explore`` or ``control`` per account."""
    propensities: np.ndarray
    """(accounts × options) probability of each option under the randomised policy; rows sum to 1."""
    values: np.ndarray
    low: np.ndarray
    high: np.ndarray
    """(accounts × candidates) projected value in dollars (net of cost) and its interval."""
    rules: RuleCheck = field(repr=False)
    lost_why: np.ndarray = field(repr=False)
    """(accounts × candidates) why each candidate not chosen lost: a :data:`LOST_CODES` index (−1: chosen)."""
    allocation: Allocation = field(repr=False)
    allocation_check: Allocation | None = field(repr=False)
    """The other allocation of the same values, when the decision was solved exactly and by the Lagrangian
    (to report their gap); :attr:`allocation` is the more valuable of the two."""
    resources: list[Resource] = field(repr=False)
    control_fraction: float = 0.0
    epsilon: float = 0.0
    exploration: str = "none"
    options: DecisionOptions = field(default_factory=DecisionOptions, repr=False)
    """The settings it was made with (a re-decision, e.g. with online corrections, reuses them)."""
    draw_short: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64), repr=False)
    """(pairs × 3) ``account, candidate, resource``: the allowed candidates an exploring account's draw could
    not choose because that resource (a :attr:`resources` index) had not enough left when the draw was made."""

    @property
    def propensity(self) -> np.ndarray:
        """Probability of the option each account got."""
        out: np.ndarray = self.propensities[np.arange(len(self.account_ids)), self.choice + 1]
        return out

    def chosen_value(self, which: str = "choice") -> np.ndarray:
        """Projected value of each account's chosen (or ``model``/``default``) candidate; 0 for nothing."""
        picks = {"choice": self.choice, "model": self.model_choice, "default": self.default_choice}[which]
        rows = np.arange(len(self.account_ids))
        out: np.ndarray = np.where(picks >= 0, self.values[rows, np.maximum(picks, 0)], 0.0)
        return out

    def frame(self) -> pl.DataFrame:
        """One row per account: ``account_id, action_id, variant, arm, propensity, model_action_id,
        default_action_id, differs_from_default, value_usd, value_low_usd, value_high_usd, objective, team``.

        ``value_*`` are the chosen candidate's projected value and interval (0 for doing nothing).
        """
        rows = np.arange(len(self.account_ids))
        pick = np.maximum(self.choice, 0)
        acts = self.choice >= 0
        action = _labels(self.candidates, self.choice, "action_id")
        variant = _labels(self.candidates, self.choice, "variant", missing=None)
        model = _labels(self.candidates, self.model_choice, "action_id")
        return pl.DataFrame(
            {
                "account_id": self.account_ids,
                "action_id": action,
                "variant": variant,
                "arm": self.arm.tolist(),
                "propensity": self.propensity,
                "model_action_id": model,
                "default_action_id": self.default_action_id,
                "differs_from_default": [
                    d is not None and a != d for a, d in zip(action, self.default_action_id, strict=True)
                ],
                "value_usd": np.where(acts, self.values[rows, pick], 0.0),
                "value_low_usd": np.where(acts, self.low[rows, pick], 0.0),
                "value_high_usd": np.where(acts, self.high[rows, pick], 0.0),
                "objective": _labels(self.candidates, self.choice, "objective", missing=None),
                "team": _labels(self.candidates, self.choice, "team", missing=None),
            },
            schema={
                "account_id": pl.String,
                "action_id": pl.String,
                "variant": pl.String,
                "arm": pl.String,
                "propensity": pl.Float64,
                "model_action_id": pl.String,
                "default_action_id": pl.String,
                "differs_from_default": pl.Boolean,
                "value_usd": pl.Float64,
                "value_low_usd": pl.Float64,
                "value_high_usd": pl.Float64,
                "objective": pl.String,
                "team": pl.String,
            },
        )

    def lost(self, playbook: Playbook, *, start: int = 0, stop: int | None = None) -> pl.DataFrame:
        """Every candidate not chosen, per account: ``account_id, action_id, variant, why, reason``.

        Of the accounts ``start`` to ``stop`` (default: all), e.g. a chunk of a large book at a time:
        the rows are those of the whole book's for these accounts.

        ``why`` is one of :data:`LOST_CODES`: a rule that blocks it (``rule``, ``cooldown``,
        ``contact_cap``, ``in_flight``), a hold of the account's users (``snoozed``, ``dismissed``:
        the reason says until when), ``capacity`` (worth more than the pick, but a resource it
        needs is short; or a control account's lifecycle default that found no capacity left, whatever
        its value: the reason names the resource), ``lower_value``, or ``held_back``: for control and
        exploring accounts, the learned policy's pick, when worth more than what they got, that the
        randomisation held back (the playbook's ``control_fraction`` and ``exploration``). Their other
        options worth more than what they got are coded as on the model arm: ``capacity``, or
        ``lower_value`` ("worth no more than the model's choice for this account, …"); but one that fits
        what is left once every decision is placed is ``held_back`` too (the exploration draw, or the
        control cohort's default, chose otherwise). An explorer's hold-back says what its draw chose. An
        exploring account's option its draw could not choose, because capacity had run short by then, is
        ``capacity`` when it would have been ``held_back`` ("worth more, but not enough of the marketing budget
        was left for it when its exploration draw was made").
        """
        stop = len(self.account_ids) if stop is None else stop
        rows, cols = np.nonzero(self.lost_why[start:stop] >= 0)
        rows = rows + start
        codes = self.lost_why[rows, cols]
        blocked = np.isin(codes, [LOST_CODES.index(c) for c in RULE_CODES])
        reason = np.full(rows.size, "", dtype=object)
        if blocked.any():
            reason[blocked] = self.rules.reasons(playbook, rows[blocked], cols[blocked]).to_numpy()
        capacity = np.flatnonzero(codes == LOST_CODES.index("capacity"))
        if capacity.size:
            reason[capacity] = self._capacity_reasons(playbook, rows[capacity], cols[capacity])
        frame = pl.DataFrame(
            {
                "_i": rows.astype(np.int64),
                "_k": cols.astype(np.int64),
                "_code": codes.astype(np.int64),
                "_arm": self.arm[rows],
                "_v": self.values[rows, cols],
                "_chosen_v": self.chosen_value()[rows],
                "_model_v": self.chosen_value("model")[rows],
                "_model_name": pl.Series(self._names(playbook, self.model_choice)[rows].tolist(), dtype=pl.String),
                "_chosen_name": pl.Series(self._names(playbook, self.choice)[rows].tolist(), dtype=pl.String),
                "_rule_reason": pl.Series(reason.tolist(), dtype=pl.String),
            }
        )
        cand_action = pl.Series([c.action_id for c in self.candidates])
        cand_variant = pl.Series([c.variant for c in self.candidates], dtype=pl.String)
        ids = pl.Series(self.account_ids, dtype=pl.String)
        held = (
            pl.when(pl.col("_arm") == "control")
            .then(
                pl.lit(
                    f"held back: this account is in the control cohort ({self.control_fraction:.0%} of accounts), "
                    "which follows the lifecycle default"
                )
            )
            .otherwise(
                pl.concat_str(
                    [
                        pl.lit(f"held back: this account was drawn to explore ({self.epsilon:.0%} of decisions), "),
                        pl.when(pl.col("_chosen_name").is_null())
                        .then(pl.lit("and the draw chose to do nothing instead"))
                        .otherwise(
                            pl.concat_str([pl.lit("and the draw chose "), pl.col("_chosen_name"), pl.lit(" instead")])
                        ),
                    ]
                )
            )
        )
        risk = self.options.risk_aversion
        text = (
            pl.when(pl.col("_code") == LOST_CODES.index("capacity"))
            .then(pl.col("_rule_reason"))
            .when(pl.col("_code") == LOST_CODES.index("lower_value"))
            .then(
                pl.when((pl.col("_v") > pl.col("_chosen_v") + 1e-9) & (pl.col("_v") > pl.col("_model_v") + 1e-9))
                .then(
                    pl.lit(
                        "projected to be worth more on average but less surely: the allocation ranks value less "
                        f"{risk:g} standard deviations (risk aversion)"
                    )
                )
                .when(pl.col("_v") <= 0)
                .then(pl.lit("projected to be worth no more than doing nothing"))
                .when(pl.col("_v") > pl.col("_chosen_v") + 1e-9)
                # A control or exploring account's option worth more than what it got, no more than the model's pick.
                .then(
                    pl.concat_str(
                        [
                            pl.lit("projected to be worth no more than the model's choice for this account, "),
                            pl.col("_model_name"),
                        ]
                    )
                )
                .otherwise(pl.lit("projected to be worth less than the recommended action"))
            )
            .when((pl.col("_code") == LOST_CODES.index("rule")) & pl.col("_v").is_nan())
            .then(pl.lit("the models have no projection for this action"))
            .when(pl.col("_code") == LOST_CODES.index("held_back"))
            .then(held)
            .otherwise(pl.col("_rule_reason"))
        )
        return frame.select(
            ids.gather(frame.get_column("_i")).alias("account_id"),
            cand_action.gather(frame.get_column("_k")).alias("action_id"),
            cand_variant.gather(frame.get_column("_k")).alias("variant"),
            pl.col("_code")
            .replace_strict(list(range(len(LOST_CODES))), list(LOST_CODES), return_dtype=pl.String)
            .alias("why"),
            text.alias("reason"),
        )

    def _names(self, playbook: Playbook, picks: np.ndarray) -> np.ndarray:
        """Per account, its pick (``choice``, ``model_choice``) as a reason names it ("Upsell call (email)"); None for
        nothing."""
        names = {a.id: a.name or a.id for a in playbook.actions}
        words = [
            names.get(c.action_id, c.action_id) + (f" ({c.variant})" if c.variant else "") for c in self.candidates
        ]
        out: np.ndarray = np.array([None, *words], dtype=object)[picks + 1]
        return out

    def _capacity_reasons(self, playbook: Playbook, rows: np.ndarray, cols: np.ndarray) -> list[str]:
        """Why each (account, candidate) of a ``capacity`` loss did not fit, naming the resource.

        An exploring account's option its draw could not choose names the resource short at its draw.
        Others are checked against what every resource has left once all decisions are placed (what the
        recommendations show), then against the learned allocation, which also reserves capacity for
        the accounts then held back for the control cohort or exploration.
        """
        final = CapacityLedger(self.resources, self.n, len(self.candidates))
        final.take(self.choice)
        learned = CapacityLedger(self.resources, self.n, len(self.candidates))
        learned.take(self.model_choice)
        short_final = final.short(rows, cols, self.choice[rows])
        short_learned = learned.short(rows, cols, self.model_choice[rows])
        short_draw = self._short_at_draw(rows, cols)
        names = {a.id: a.name or a.id for a in playbook.actions}
        control = (self.arm[rows] == "control").tolist()
        out: list[str] = []
        for now, then, drew, held in zip(
            short_final.tolist(), short_learned.tolist(), short_draw.tolist(), control, strict=True
        ):
            if drew >= 0:
                # An exploring account's option its draw could not choose: the resource had run short by then.
                what = _resource_words(self.resources[drew].name, names)
                out.append(f"worth more, but not enough of {what} was left for it when its exploration draw was made")
            elif held and now >= 0:
                # A control account's lifecycle default: placed after the learned picks, it found the
                # resource spent (what it has left only shrinks as exploring accounts draw on it).
                out.append(f"not enough of {_resource_words(self.resources[now].name, names)} is left for it")
            elif now >= 0:
                out.append(
                    f"worth more, but not enough of {_resource_words(self.resources[now].name, names)} is left for it"
                )
            elif then >= 0:
                what = _resource_words(self.resources[then].name, names)
                out.append(
                    f"worth more, but the allocation set {what} aside for accounts where it is worth more "
                    "(some of them then went to the control cohort or exploration instead)"
                )
            else:  # the allocation's improvement pass leaves none of these; said plainly if one remains
                out.append("worth more, and it fits the capacity left: the allocation stopped short of the best")
        return out

    def left_alone_for_capacity(self) -> np.ndarray:
        """(accounts,) True for an exploring account that gets nothing because capacity kept its most valuable
        option (worth more than nothing) out of its draw: its receipt's best runner-up lost to ``capacity``.

        Such an account is not left alone by the draw: the draw had nothing better to choose from.
        """
        out = np.zeros(self.n, dtype=bool)
        rows = np.flatnonzero((self.arm == "explore") & (self.choice < 0))
        if rows.size == 0 or not self.candidates:
            return out
        worth = np.nan_to_num(self.values[rows], nan=-np.inf)
        best = worth.argmax(axis=1)
        positive = worth[np.arange(rows.size), best] > 0
        out[rows] = positive & (self.lost_why[rows, best] == LOST_CODES.index("capacity"))
        return out

    def _short_at_draw(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """For each (account, candidate): the resource that kept it out of the account's exploration draw, else −1."""
        out = np.full(rows.size, -1, dtype=np.int64)
        if self.draw_short.size == 0 or rows.size == 0:
            return out
        k = max(len(self.candidates), 1)
        keys = self.draw_short[:, 0] * k + self.draw_short[:, 1]
        order = np.argsort(keys)
        wanted = rows.astype(np.int64) * k + cols
        at = np.minimum(np.searchsorted(keys[order], wanted), keys.size - 1)
        found = keys[order][at] == wanted
        out[found] = self.draw_short[order[at[found]], 2]
        return out

    def usage(self) -> dict[str, dict[str, float]]:
        """Per resource: its limit and what the decisions (all arms) use of it."""
        out: dict[str, dict[str, float]] = {}
        for r in self.resources:
            members = np.ones(len(self.account_ids), dtype=bool) if r.accounts is None else _mask(r.accounts, self.n)
            picked = members & (self.choice >= 0)
            used = float(np.asarray(r.per_candidate)[self.choice[picked]].sum())
            out[r.name] = {"limit": float(r.limit), "used": used}
        return out

    @property
    def n(self) -> int:
        """Number of accounts."""
        return len(self.account_ids)


LOST_CODES = (
    "lower_value",
    "rule",
    "cooldown",
    "contact_cap",
    "in_flight",
    "capacity",
    "held_back",
    "snoozed",
    "dismissed",
)
"""Why a candidate lost (the receipt's ``why``)."""
RULE_CODES: tuple[str, ...] = tuple(why.code for why in Why if why is not Why.ALLOWED)
"""The codes of :data:`LOST_CODES` that say the candidate was not allowed (a rule's :class:`Why`, or its users)."""
_WHY_TO_LOST = {why: LOST_CODES.index(why.code) for why in Why if why is not Why.ALLOWED}  # every Why has its code


EXPLORATION_STARVED_SHARE = 0.5
"""Above this share of the exploring accounts left alone for capacity, the run says so in a note."""


def exploration_capacity_note(decisions: Decisions, playbook: Playbook) -> str | None:
    """A note when more than :data:`EXPLORATION_STARVED_SHARE` of the exploring accounts get nothing for capacity.

    Their draws had nothing better than doing nothing left to choose from, so exploration learns little
    about the plays the short resources hold; the note names the resource that kept most of them out.
    """
    starved = decisions.left_alone_for_capacity()
    explorers = int((decisions.arm == "explore").sum())
    if explorers == 0 or starved.sum() <= EXPLORATION_STARVED_SHARE * explorers:
        return None
    rows = np.flatnonzero(starved)
    worth = np.nan_to_num(decisions.values[rows], nan=-np.inf)
    short = decisions._short_at_draw(rows, worth.argmax(axis=1))
    counts = np.bincount(short[short >= 0], minlength=len(decisions.resources))
    names = {a.id: a.name or a.id for a in playbook.actions}
    what = _resource_words(decisions.resources[int(counts.argmax())].name, names) if counts.any() else "capacity"
    n = int(starved.sum())
    return (
        f"{n:,} of the {explorers:,} exploring accounts ({n / explorers:.0%}) get nothing: their most valuable play "
        f"no longer fitted when their exploration draw was made (most often {what}; the exploring accounts share "
        "what the model's accounts leave with the control cohort, in proportion to their numbers), so exploration "
        "learns little about the plays that limit holds; raise it to explore them"
    )


def _resource_words(name: str, action_names: dict[str, str]) -> str:
    """A resource as a reason names it: ``hours:Ana`` → "Ana's hours", ``budget:cs`` → "the cs budget"."""
    kind, _, what = name.partition(":")
    if kind == "hours":
        return f"{what}'s hours"
    if kind == "budget":
        return f"the {what} budget"
    if kind == "volume":
        return f"the run's limit of {action_names.get(what, what)}"
    return name


def _labels(cands: Sequence[Candidate], picks: np.ndarray, attr: str, missing: str | None = NO_ACTION) -> list[Any]:
    table = np.array([getattr(c, attr) for c in cands] + [missing], dtype=object)
    out: list[Any] = table[np.where(picks >= 0, picks, len(cands))].tolist()
    return out


def _mask(accounts: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(accounts)
    if arr.dtype == bool:
        return arr
    out = np.zeros(n, dtype=bool)
    out[arr] = True
    return out


# ---- inputs ---------------------------------------------------------------------------------------


def value_matrices(
    values: pl.DataFrame,
    account_ids: Sequence[str],
    cands: Sequence[Candidate],
    *,
    action_cost_usd: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(accounts × candidates) value, low and high from a projection's ``values`` frame.

    A candidate with a variant takes the projection's ``action:variant`` arm when there is one
    (already net of the variant's own cost), else its action's arm with the cost swapped: the
    arm's gross value (its ``value_usd`` plus the cost it was charged) minus the variant's
    ``cost_usd``, so a $8 variant is never valued as its $3 action. The cost the arm was charged
    is the frame's ``cost_usd`` column when it has one, else ``action_cost_usd`` of the action.
    A candidate the projection lacks is worth NaN (never chosen).

    Examples
    --------
    >>> from nextmove.decide.rules import Candidate
    >>> c = [Candidate("call", None, "cs", "call", "retention", 10.0, 1.0, 0)]
    >>> v = pl.DataFrame({"account_id": ["a"], "action_id": ["call"], "value_usd": [5.0], "low": [1.0], "high": [9.0]})
    >>> [m.tolist() for m in value_matrices(v, ["a", "b"], c)]
    [[[5.0], [nan]], [[1.0], [nan]], [[9.0], [nan]]]

    A variant costing $8 of a $3 action without an arm of its own:

    >>> deep = [Candidate("tour", "deep", "cs", "email", "grow", 8.0, 0.0, 0)]
    >>> v = pl.DataFrame({"account_id": ["a"], "action_id": ["tour"], "value_usd": [97.0],
    ...                   "low": [7.0], "high": [187.0], "cost_usd": [3.0]})
    >>> [m.tolist() for m in value_matrices(v, ["a"], deep)]
    [[[92.0]], [[2.0]], [[182.0]]]
    """
    for column in ("account_id", "action_id", "value_usd", "low", "high"):
        if column not in values.columns:
            raise ConfigError(f"the projected values lack the column {column!r}")
    arms = set(values.get_column("action_id").cast(pl.String).unique().to_list())
    keys = [c.key if c.variant is not None and c.key in arms else c.action_id for c in cands]
    # Variants valued from their action's arm: its value is net of the action's cost, not theirs.
    borrowed = [k for k, c in enumerate(cands) if c.variant is not None and keys[k] == c.action_id]
    has_cost = "cost_usd" in values.columns
    if borrowed and not has_cost:
        lacking = sorted({cands[k].action_id for k in borrowed} - set(action_cost_usd or {}))
        if lacking:
            raise ConfigError(
                f"the projected values lack the column 'cost_usd' and no action_cost_usd is given for "
                f"{', '.join(map(repr, lacking))}: a variant valued from its action's arm needs the cost that "
                "arm was charged, to charge the variant's own instead"
            )
    columns = ("value_usd", "low", "high", "cost_usd") if has_cost else ("value_usd", "low", "high")
    key_index = {k: j for j, k in enumerate(dict.fromkeys(keys))}
    index = pl.DataFrame({"account_id": list(account_ids)}, schema={"account_id": pl.String}).with_row_index("_i")
    table = (
        values.lazy()
        .select(
            pl.col("account_id").cast(pl.String),
            pl.col("action_id").cast(pl.String),
            *[pl.col(c).cast(pl.Float64) for c in columns],
        )
        .filter(pl.col("action_id").is_in(list(key_index)))
        .join(index.lazy(), on="account_id", how="inner")
        .with_columns(
            pl.col("action_id")
            .replace_strict(list(key_index), list(key_index.values()), return_dtype=pl.Int64)
            .alias("_j")
        )
        .collect()
    )
    n, width = len(account_ids), len(key_index)
    grids = np.full((len(columns), n, width), np.nan)
    i = table.get_column("_i").to_numpy().astype(np.int64)
    j = table.get_column("_j").to_numpy()
    for g, column in enumerate(columns):
        grids[g, i, j] = table.get_column(column).to_numpy()
    cols = np.array([key_index[k] for k in keys], dtype=np.int64)
    value, low, high = (grids[g][:, cols] for g in range(3))
    for k in borrowed:
        c = cands[k]
        charged = grids[3][:, cols[k]] if has_cost else float((action_cost_usd or {})[c.action_id])
        shift = charged - c.cost_usd
        value[:, k] += shift
        low[:, k] += shift
        high[:, k] += shift
    return value, low, high


def playbook_resources(
    playbook: Playbook, cands: Sequence[Candidate], owners: Sequence[str | None] | None
) -> list[Resource]:
    """The playbook's capacities as allocation resources for one decision window.

    - the owner's hours per week (``owner_hours``, else ``hours_per_owner_per_week``) × ``window_days / 7``:
      one resource per account owner whose hours are limited, used by each candidate's ``effort_hours``
      (accounts without an owner draw on nobody's hours);
    - ``budget_usd_per_team``: one resource per team, used by the ``cost_usd`` of that team's candidates;
    - ``max_per_run``: one per action with a volume limit, used once by each of its variants.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> from nextmove.decide.rules import candidates
    >>> pb = load_playbook()
    >>> [r.name for r in playbook_resources(pb, candidates(pb), ["ana", "ana", "bo"])][:3]
    ['hours:ana', 'hours:bo', 'budget:cs']
    >>> pb = pb.model_copy(update={"capacity": pb.capacity.model_copy(update={"owner_hours": {"bo": 3.5}})})
    >>> [(r.name, r.limit) for r in playbook_resources(pb, candidates(pb), ["ana", "bo"])][:2]
    [('hours:ana', 24.0), ('hours:bo', 7.0)]
    """
    out: list[Resource] = []
    window_weeks = playbook.contact_policy.window_days / 7.0
    capacity = playbook.capacity
    if capacity.limits_owner_hours and owners is not None:
        effort = np.array([c.effort_hours for c in cands], dtype=float)
        frame = pl.DataFrame({"owner": list(owners)}, schema={"owner": pl.String}).with_row_index("_i")
        grouped = (
            frame.filter(pl.col("owner").is_not_null())
            .group_by("owner", maintain_order=True)
            .agg(pl.col("_i"))
            .sort("owner")
        )
        for owner, members in grouped.iter_rows():
            if (hours_per_week := capacity.owner_hours_per_week(owner)) is not None:
                limit = hours_per_week * window_weeks
                out.append(Resource(f"hours:{owner}", limit, effort, np.asarray(members, dtype=np.int64)))
    for team, budget in playbook.capacity.budget_usd_per_team.items():
        cost = np.array([c.cost_usd if c.team == team else 0.0 for c in cands], dtype=float)
        out.append(Resource(f"budget:{team}", float(budget), cost))
    for action in playbook.actions:
        if action.max_per_run is not None:
            uses = np.array([1.0 if c.action_id == action.id else 0.0 for c in cands])
            out.append(Resource(f"volume:{action.id}", float(action.max_per_run), uses))
    return out


def default_candidates(
    playbook: Playbook, cands: Sequence[Candidate], stages: Sequence[str | None] | None, n: int
) -> tuple[np.ndarray, list[str | None]]:
    """Each account's lifecycle-stage default: its candidate index (−1: none) and its action id.

    The action id is ``none`` when the stage has no default, and also when the account's stage is
    blank: no stage names a default for it, so the lifecycle playbook does nothing (the control
    cohort and the evaluated lifecycle policy do the same). It is None for every account only when
    the book has no stages (``stages`` is None). An action with variants defaults to its first variant.

    Examples
    --------
    >>> from nextmove.decide.rules import candidates
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "arr"
    ... [[actions]]
    ... id = "call"
    ... name = "Call"
    ... team = "cs"
    ... objective = "retention"
    ... default_for_stages = ["renewal"]
    ... ''')
    >>> default_candidates(pb, candidates(pb), ["renewal", "adoption", None], 3)[1]
    ['call', 'none', 'none']
    >>> default_candidates(pb, candidates(pb), None, 2)[1]
    [None, None]
    """
    if stages is None:
        return np.full(n, -1), [None] * n
    first: dict[str, int] = {}
    exact: dict[tuple[str, str | None], int] = {}
    for k, c in enumerate(cands):
        first.setdefault(c.action_id, k)
        exact.setdefault((c.action_id, c.variant), k)
    # The default's own variant (what the receipt explains), else the action's first candidate.
    first = {a: exact.get((a, default_variant(playbook, a)), k) for a, k in first.items()}
    by_stage = {s: a.id for a in playbook.actions for s in a.default_for_stages}
    ids: list[str | None] = [NO_ACTION if s is None else by_stage.get(s, NO_ACTION) for s in stages]
    index = np.array([first.get(a, -1) if a is not None else -1 for a in ids], dtype=np.int64)
    return index, ids


def default_variant(playbook: Playbook, action_id: str | None) -> str | None:
    """The variant a lifecycle default of ``action_id`` is given: the action's first (None: it has none).

    The control cohort tries only this one; its receipt gives this variant's reason when it is not done.

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "arr"
    ... [[actions]]
    ... id = "email"
    ... name = "Email"
    ... team = "marketing"
    ... objective = "retention"
    ... variants = [{ id = "morning" }, { id = "evening" }]
    ... ''')
    >>> default_variant(pb, "email"), default_variant(pb, "none")
    ('morning', None)
    """
    action = next((a for a in playbook.actions if a.id == action_id), None)
    return action.variants[0].id if action is not None and action.variants else None


# ---- the policy -----------------------------------------------------------------------------------


def _check_candidates(cands: Sequence[Candidate], playbook: Playbook) -> None:
    """Refuse candidates whose team, cost or effort differ from the playbook's (rules checked under another one).

    The capacities come from the playbook given, but what each candidate uses of them (its hours,
    its cost and whose budget) comes from the candidates: a what-if with changed effort or cost
    would otherwise be allocated with the old figures, silently.
    """
    own = {(c.action_id, c.variant): c for c in candidates(playbook)}
    for c in cands:
        mine = own.get((c.action_id, c.variant))
        if mine is None:
            raise ConfigError(
                f"the rules offer {c.key!r}, which the playbook given has no action or variant for: the rules were "
                "checked under another playbook; check them again with this one (check_rules)"
            )
        for name in ("team", "cost_usd", "effort_hours"):
            theirs, ours = getattr(c, name), getattr(mine, name)
            if theirs != ours:
                raise ConfigError(
                    f"the rules' candidate {c.key!r} has {name} = {theirs!r}, the playbook given {ours!r}: the rules "
                    "were checked under another playbook; check them again with this one (check_rules)"
                )


def decide(
    rules: RuleCheck,
    values: pl.DataFrame,
    playbook: Playbook,
    *,
    owners: Sequence[str | None] | None = None,
    stages: Sequence[str | None] | None = None,
    seed: int = 0,
    run_key: str = "",
    options: DecisionOptions | None = None,
) -> Decisions:
    """One decision per account of ``rules``: allocation, control, exploration, propensities and the default.

    Parameters
    ----------
    rules
        What the rules allow (:func:`~nextmove.decide.rules.check_rules`): its accounts and
        candidates are the decision's.
    values
        Projected values (``account_id, action_id, value_usd, low, high``), e.g.
        ``EffectModel.project(snapshot).values``: dollars net of each arm's cost (a variant
        without an arm of its own is charged its own cost, see :func:`value_matrices`).
    playbook
        Capacities, contact policy, control fraction, exploration and the stage defaults.
    owners, stages
        Each account's owner (for owner hours) and lifecycle stage (for the default), in the
        order of ``rules.account_ids``; None when the book has none.
    seed
        Seed of the exploration draws (the control cohort uses ``playbook.exploration.seed``,
        so it stays the same from run to run).
    run_key
        Distinguishes runs (e.g. the decision time): which accounts explore changes with it.
    options
        Allocation method and other settings.

    Returns
    -------
    Decisions

    Raises
    ------
    ConfigError
        If ``owners`` or ``stages`` has the wrong length or the values lack a column, or if the
        rules' candidates differ from the playbook's in team, ``cost_usd`` or ``effort_hours``
        (the rules were checked under another playbook: check them again with this one).

    Notes
    -----
    The model's accounts take the allocation's picks first: it was solved for every account, so what
    they use is about their share of what it uses, and what is left is what it gave the randomised
    accounts (and any slack). That is shared by the two randomised arms in proportion to how many of
    each draw on every resource: the control cohort's defaults take, in a stable order, what fits its
    share, and that much is held for it; the exploring accounts then draw, one at a time in a stable
    random order, from the rest (each draw's propensities are over the options that still fit, and an
    option kept out of a draw is recorded in :attr:`Decisions.draw_short`); the control cohort's other
    defaults take what the draws left. So an explorer's option that did not fit at its draw does not fit
    what is left at the end either.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from nextmove.decide.rules import check_rules
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... control_fraction = 0.0
    ... exploration = { method = "none" }
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "arr"
    ... [[actions]]
    ... id = "call"
    ... name = "Call"
    ... team = "cs"
    ... objective = "retention"
    ... ''')
    >>> feats = pl.DataFrame({"account_id": ["a", "b"]})
    >>> touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    >>> check = check_rules(feats, touches, pb, datetime(2025, 1, 1, tzinfo=UTC), {})
    >>> vals = pl.DataFrame({"account_id": ["a", "b"], "action_id": ["call", "call"],
    ...                      "value_usd": [120.0, -5.0], "low": [20.0, -50.0], "high": [200.0, 30.0]})
    >>> d = decide(check, vals, pb)
    >>> d.frame().select("account_id", "action_id", "arm", "propensity").rows()
    [('a', 'call', 'model', 1.0), ('b', 'none', 'model', 1.0)]
    """
    options = options or DecisionOptions()
    ids = rules.account_ids
    n, cands = len(ids), rules.candidates
    for name, seq in (("owners", owners), ("stages", stages)):
        if seq is not None and len(seq) != n:
            raise ConfigError(f"{name} has {len(seq)} entries for {n} accounts")
    _check_candidates(cands, playbook)
    v, lo, hi = value_matrices(values, ids, cands, action_cost_usd={a.id: a.cost_usd for a in playbook.actions})
    allowed = rules.allowed & np.isfinite(v)
    resources = playbook_resources(playbook, cands, owners) if options.capacity else []
    ranked = np.nan_to_num(v, nan=-1.0)
    if options.risk_aversion:
        ranked = ranked - options.risk_aversion * np.nan_to_num((hi - lo) / (2 * _z(options.interval_level)), nan=0.0)
    model_alloc = allocate(ranked, allowed, resources, method=options.method, time_limit_s=options.time_limit_s)
    check = None
    if options.compare_allocations and model_alloc.method == "exact" and resources:
        check = allocate(ranked, allowed, resources, method="lagrangian")
        if check.total_value > model_alloc.total_value + 1e-6:
            # Both are feasible: keep the more valuable (the exact one stops within its optimality gap).
            bounds = [b for b in (model_alloc.upper_bound, check.upper_bound) if b is not None]
            model_alloc, check = replace(check, upper_bound=min(bounds) if bounds else None), model_alloc
    b = model_alloc.choice.astype(np.int64)

    control_fraction = float(playbook.control_fraction)
    control = assign_control(ids, control_fraction, playbook.exploration.seed) if n else np.zeros(0, dtype=bool)
    method = playbook.exploration.method
    epsilon = float(playbook.exploration.epsilon) if method != "none" else 0.0
    explore = (~control) & (stable_uniform(ids, seed, f"explore:{run_key}") < epsilon)
    default_idx, default_ids = default_candidates(playbook, cands, stages, n)
    rows = np.arange(n)
    default_ok = (default_idx >= 0) & allowed[rows, np.maximum(default_idx, 0)]

    # Exploration's distribution over the options each account is allowed (capacity aside).
    options_allowed = np.column_stack([np.ones(n, dtype=bool), allowed])
    q = _explore_probabilities(method, v, lo, hi, options_allowed, seed, run_key, options, explore)

    # Capacity left once the learned policy's picks for model-arm accounts are placed.
    state = CapacityLedger(resources, n, len(cands))
    choice = np.where(~control & ~explore, b, -1)
    state.take(choice)
    arm = np.where(control, "control", np.where(explore, "explore", "model")).astype(object)

    # What the model's accounts leave is shared by the control cohort and the exploring accounts, in
    # proportion to how many of each draw on every resource. First the control cohort's defaults (in a
    # stable order) within its share: what they use is held for it. The exploring accounts draw from the
    # rest, then the control cohort's other defaults take what they left.
    control_rows = np.flatnonzero(control & default_ok)
    order = control_rows[np.argsort(stable_uniform([ids[i] for i in control_rows], seed, "control-order"))]
    left, share = state.left.copy(), state.member_share(control, explore)
    state.left = left * share
    first = state.accept_prefix(order, default_idx[order])
    state.left = left - (left * share - state.left)  # what the control cohort's first defaults use is held for it

    # Exploring accounts, one by one in a stable random order, so each draw sees what is left.
    draw_u = stable_uniform(ids, seed, f"draw:{run_key}")
    q_explore = q.copy()
    explorers = np.flatnonzero(explore)
    explorers = explorers[np.argsort(stable_uniform([ids[i] for i in explorers], seed, f"explore-order:{run_key}"))]
    short_at_draw: list[np.ndarray] = []
    for i in explorers.tolist():
        avail = options_allowed[i].copy()
        short = state.short_account(i)
        avail[1:] &= short < 0
        excluded = np.flatnonzero(options_allowed[i, 1:] & (short >= 0))
        if excluded.size:
            short_at_draw.append(np.column_stack([np.full(excluded.size, i), excluded, short[excluded]]))
        p = np.where(avail, q[i], 0.0)
        total = p.sum()
        p = p / total if total > 0 else np.eye(1, p.size, 0).ravel()
        pick = int(np.searchsorted(np.cumsum(p), draw_u[i] * (1 - 1e-12), side="right")) - 1
        choice[i] = pick
        if pick >= 0:
            state.take_one(i, pick)
        q_explore[i] = p

    # The control cohort's other defaults, in the same order, while capacity lasts.
    rest = order[~first]
    fits = np.zeros(order.size, dtype=bool)
    fits[first] = True
    fits[~first] = state.accept_prefix(rest, default_idx[rest])
    choice[order[fits]] = default_idx[order[fits]]
    default_effective = np.where(default_ok, default_idx, -1)
    default_effective[order[~fits]] = -1
    # Control accounts whose allowed default found no capacity left (their receipt names the resource).
    unplaced = np.full(n, -1, dtype=np.int64)
    unplaced[order[~fits]] = default_idx[order[~fits]]
    draw_short = np.vstack(short_at_draw).astype(np.int64) if short_at_draw else np.zeros((0, 3), dtype=np.int64)

    propensities = _propensities(b, default_effective, q_explore, control_fraction, epsilon)
    lost_why = _lost_codes(rules, allowed, v, ranked, choice, arm, b, unplaced, state, draw_short)
    return Decisions(
        account_ids=list(ids),
        candidates=list(cands),
        choice=choice,
        model_choice=b,
        default_choice=default_idx,
        default_action_id=default_ids,
        arm=arm,
        propensities=propensities,
        values=v,
        low=lo,
        high=hi,
        rules=rules,
        lost_why=lost_why,
        allocation=model_alloc,
        allocation_check=check,
        resources=resources,
        control_fraction=control_fraction,
        epsilon=epsilon,
        exploration=method,
        options=options,
        draw_short=draw_short,
    )


def _explore_probabilities(
    method: str,
    v: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    allowed: np.ndarray,
    seed: int,
    run_key: str,
    options: DecisionOptions,
    explore: np.ndarray,
) -> np.ndarray:
    """(accounts × options) the exploration draw's probabilities over the allowed options (none first).

    Exploring accounts get ``thompson_draws`` draws; the others, whose propensities carry these
    probabilities only at weight ε, get at most 32 (and a book over 100,000 accounts 16).
    """
    n = allowed.shape[0]
    if method == "thompson" and n:
        sd = np.nan_to_num((hi - lo) / (2 * _z(options.interval_level)), nan=0.0)
        mean = np.column_stack([np.zeros(n), np.nan_to_num(v, nan=0.0)])
        sd = np.column_stack([np.zeros(n), np.maximum(sd, 0.0)])
        rng = np.random.default_rng([seed, _digest(run_key)])
        out = np.zeros(allowed.shape)
        rest_draws = min(options.thompson_draws, 32 if n <= 100_000 else 16)
        for rows, draws in ((np.flatnonzero(explore), options.thompson_draws), (np.flatnonzero(~explore), rest_draws)):
            for start in range(0, rows.size, 200_000):
                part = rows[start : start + 200_000]
                _, probs = thompson_propensities(mean[part], sd[part], allowed[part], rng, draws=draws)
                out[part] = probs
        return out
    counts = np.maximum(allowed.sum(axis=1, keepdims=True), 1)
    uniform: np.ndarray = np.where(allowed, 1.0 / counts, 0.0)
    return uniform


def _z(level: float) -> float:
    """The normal quantile that a central ``level`` interval spans on each side of its mean."""
    if math.isclose(level, 0.9):
        return Z_90
    return NormalDist().inv_cdf((1 + level) / 2)


def _digest(text: str) -> int:
    return int(stable_uniform([text], 0, "run")[0] * 2**32)


def _propensities(
    b: np.ndarray, default: np.ndarray, q: np.ndarray, control_fraction: float, epsilon: float
) -> np.ndarray:
    """Each option's probability under the whole randomised policy (control, exploration, the learned choice)."""
    n = b.size
    rows = np.arange(n)
    out = (1 - control_fraction) * epsilon * q
    out[rows, b + 1] += (1 - control_fraction) * (1 - epsilon)
    out[rows, default + 1] += control_fraction
    result: np.ndarray = out / out.sum(axis=1, keepdims=True)
    return result


def _lost_codes(
    rules: RuleCheck,
    allowed: np.ndarray,
    v: np.ndarray,
    ranked: np.ndarray,
    choice: np.ndarray,
    arm: np.ndarray,
    model_choice: np.ndarray,
    unplaced: np.ndarray | None = None,
    final: CapacityLedger | None = None,
    draw_short: np.ndarray | None = None,
) -> np.ndarray:
    """(accounts × candidates) :data:`LOST_CODES` index of every candidate not chosen (−1 for the chosen one).

    A more valuable option of a model-arm account lost to ``capacity``; one that the allocation
    ranked lower (``risk_aversion`` > 0: worth more on average, but less sure) lost on value.

    A control or exploring account did not get the learned policy's pick (``model_choice``): that
    option, when worth more than what the account got, is ``held_back`` by the randomisation. Any
    other option worth more than what it got is coded as it would be on the model arm, against the
    learned pick: the learned policy would not have given it either, for capacity or for its value.
    But one it would not have given for capacity that fits what ``final`` (the ledger once every
    decision is placed) has left, with what the account got released, was not kept from the account
    by capacity: the randomisation (the control cohort's default, or the exploration draw, which
    could have drawn it) chose something else, and it is ``held_back`` too.
    ``unplaced`` (per account, −1 for none) is the allowed lifecycle default a control account
    did not get because capacity had run out: it lost to ``capacity`` whatever its value.
    ``draw_short`` (``account, candidate, resource`` rows, :attr:`Decisions.draw_short`) are the options an
    exploring account's draw could not choose for capacity: what its draw could choose decides its codes
    instead of ``final``. One of them worth more than what it got, and the learned pick or worth more than
    that, lost to ``capacity`` (the draw never had it), not to the draw; one the draw could have chosen is
    ``held_back``.
    """
    n, k = v.shape
    rows = np.arange(n)
    out = np.full((n, k), LOST_CODES.index("lower_value"), dtype=np.int8)
    for why, code in _WHY_TO_LOST.items():
        out[rules.why == why] = code
    # Not projected: never chosen, and coded `rule` even where a hold applies too, so that online
    # decisions keep it blocked (they read the holds again, and open a held runner-up once its hold ends).
    out[~np.isfinite(v) & np.isin(rules.why, [Why.ALLOWED, Why.SNOOZED, Why.DISMISSED])] = LOST_CODES.index("rule")
    worth = np.nan_to_num(v, nan=-np.inf)
    pick = np.maximum(choice, 0)
    chosen_v = np.where(choice >= 0, v[rows, pick], 0.0)
    better = allowed & (worth > chosen_v[:, None] + 1e-9)
    # What the account would have got on the model arm: the learned pick (the same as its choice there).
    learned = np.where(arm == "model", choice, model_choice)
    learned_pick = np.maximum(learned, 0)
    learned_v = np.where(learned >= 0, v[rows, learned_pick], 0.0)
    learned_r = np.where(learned >= 0, ranked[rows, learned_pick], 0.0)
    # The allocation gives an account its best option that fits (its improvement pass sees to it), so
    # what is worth more than the learned pick and ranks higher lost to capacity: the reason names the
    # resource (see Decisions.lost). What ranks lower lost on value, on whichever arm.
    over_learned = better & (worth > learned_v[:, None] + 1e-9) & (ranked > learned_r[:, None] + 1e-9)
    out[over_learned] = LOST_CODES.index("capacity")
    # The learned pick itself, not given to a control or exploring account: lost to the randomisation
    # (the playbook's control_fraction and exploration), not to a rule on the action.
    drawn = np.flatnonzero((arm != "model") & (learned >= 0))
    drawn = drawn[better[drawn, learned[drawn]]]
    out[drawn, learned[drawn]] = LOST_CODES.index("held_back")
    capacity, held_back = LOST_CODES.index("capacity"), LOST_CODES.index("held_back")
    randomised = arm != "model"
    if draw_short is not None:
        # An exploring account lost to its draw only what the draw could have chosen. What capacity kept out of
        # the draw (worth more than what it got, and the learned pick or worth more than it) lost to capacity.
        explorer = arm == "explore"
        coded = explorer[:, None] & np.isin(out, [capacity, held_back])
        out[coded] = held_back
        r, c = draw_short[:, 0], draw_short[:, 1]
        kept_out = coded[r, c]
        out[r[kept_out], c[kept_out]] = capacity
        randomised = randomised & ~explorer
    if final is not None:
        # "The allocation set it aside for other accounts" is not why a control account (or, without
        # ``draw_short``, an exploring one) did not get an option that fits what is left once it swaps what it got
        # for it: the control cohort or the draw chose otherwise.
        r, c = np.nonzero(randomised[:, None] & (out == capacity))
        fits = final.short(r, c, choice[r]) < 0
        out[r[fits], c[fits]] = held_back
    if unplaced is not None:
        # The control cohort takes its default regardless of value: only capacity keeps it from it.
        dropped = np.flatnonzero(unplaced >= 0)
        out[dropped, unplaced[dropped]] = LOST_CODES.index("capacity")
    picked = choice >= 0
    out[rows[picked], choice[picked]] = -1
    return out


class CapacityLedger:
    """What is left of every resource, for placing picks one at a time or as an ordered batch.

    Examples
    --------
    >>> ledger = CapacityLedger([Resource("hours", 3.0, np.array([2.0, 1.0]))], n=3, k=2)
    >>> ledger.accept_prefix(np.array([0, 1, 2]), np.array([0, 0, 1])).tolist()
    [True, False, True]
    """

    def __init__(self, resources: Sequence[Resource], n: int, k: int) -> None:
        self.resources = list(resources)
        self.k = k
        self.left = np.array([r.limit for r in resources], dtype=float)
        self.w = (
            np.vstack([np.asarray(r.per_candidate, dtype=float) for r in resources]) if resources else np.zeros((0, 0))
        )
        # Resources of each account: the global ones plus its local ones.
        self.global_idx = np.array([j for j, r in enumerate(resources) if r.accounts is None], dtype=np.int64)
        local_rows: list[np.ndarray] = []
        local_cols: list[np.ndarray] = []
        for j, r in enumerate(resources):
            if r.accounts is not None:
                members = np.flatnonzero(_mask(r.accounts, n))
                local_rows.append(members)
                local_cols.append(np.full(members.size, j, dtype=np.int64))
        rows = np.concatenate(local_rows) if local_rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(local_cols) if local_cols else np.zeros(0, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        self.local_rows, self.local_cols = rows[order], cols[order]
        self.starts = np.searchsorted(self.local_rows, np.arange(n + 1))

    def of(self, i: int) -> np.ndarray:
        local = self.local_cols[self.starts[i] : self.starts[i + 1]]
        return np.concatenate([self.global_idx, local])

    def take(self, choice: np.ndarray) -> None:
        """Place every account's pick (−1: none) at once."""
        if not self.resources:
            return
        picked = np.flatnonzero(choice >= 0)
        if self.global_idx.size:
            self.left[self.global_idx] -= self.w[self.global_idx][:, choice[picked]].sum(axis=1)
        has = np.isin(self.local_rows, picked)
        rows, cols = self.local_rows[has], self.local_cols[has]
        np.subtract.at(self.left, cols, self.w[cols, choice[rows]])

    def take_one(self, i: int, k: int) -> None:
        if self.resources:
            res = self.of(i)
            self.left[res] -= self.w[res, k]

    def short(self, rows: np.ndarray, cols: np.ndarray, current: np.ndarray) -> np.ndarray:
        """For each account ``rows[t]`` swapping its pick ``current[t]`` (−1: none) for candidate ``cols[t]``:
        the first of its resources that would not have room (a :attr:`resources` index), −1 where all would.

        Room is what is left plus what the account's current pick releases.
        """
        short = np.full(rows.size, -1, dtype=np.int64)
        if not self.resources or rows.size == 0:
            return short
        released = current >= 0
        cur = np.maximum(current, 0)

        def lacking(res: np.ndarray, t: np.ndarray) -> np.ndarray:
            need = self.w[res, cols[t]] - np.where(released[t], self.w[res, cur[t]], 0.0)
            out: np.ndarray = need > self.left[res] + 1e-9
            return out

        t_all = np.arange(rows.size)
        for j in self.global_idx.tolist():
            res = np.full(rows.size, j, dtype=np.int64)
            hit = (short < 0) & lacking(res, t_all)
            short[hit] = j
        # Local resources: every (pair, resource of its account) entry, in the ledger's sorted layout.
        lo, hi = self.starts[rows], self.starts[rows + 1]
        counts = hi - lo
        t = np.repeat(t_all, counts)
        if t.size:
            offsets = np.arange(t.size) - np.repeat(np.cumsum(counts) - counts, counts)
            res = self.local_cols[np.repeat(lo, counts) + offsets]
            hit = lacking(res, t) & (short[t] < 0)
            first = np.unique(t[hit], return_index=True)
            short[first[0]] = res[hit][first[1]]
        return short

    def member_share(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Per resource, the share of the accounts of ``first`` among those of ``first`` and ``second`` drawing on it.

        Both are masks over the accounts; a resource neither draws on gives ``first`` all of it (1).

        Examples
        --------
        >>> ledger = CapacityLedger([Resource("budget", 9.0, np.ones(1)), Resource("hours:o", 4.0, np.ones(1),
        ...                          np.array([2, 3]))], n=4, k=1)
        >>> ledger.member_share(np.array([True, False, True, False]), np.array([False, True, False, True])).tolist()
        [0.5, 0.5]
        """
        out = np.ones(len(self.resources))
        if not self.resources:
            return out
        n_first = np.zeros(len(self.resources))
        n_second = np.zeros(len(self.resources))
        n_first[self.global_idx] = first.sum()
        n_second[self.global_idx] = second.sum()
        n_first += np.bincount(self.local_cols, weights=first[self.local_rows], minlength=len(self.resources))
        n_second += np.bincount(self.local_cols, weights=second[self.local_rows], minlength=len(self.resources))
        both = n_first + n_second
        np.divide(n_first, both, out=out, where=both > 0)
        return out

    def short_account(self, i: int) -> np.ndarray:
        """(candidates,) the first of account ``i``'s resources without room for each candidate (a
        :attr:`resources` index), −1 where the candidate fits what is left of all of them."""
        if not self.resources:
            return np.full(self.k, -1, dtype=np.int64)
        res = self.of(i)
        if res.size == 0:
            return np.full(self.k, -1, dtype=np.int64)
        lacking = self.w[res] > self.left[res][:, None] + 1e-9
        out: np.ndarray = np.where(lacking.any(axis=0), res[lacking.argmax(axis=0)], -1)
        return out

    def accept_prefix(self, rows: np.ndarray, picks: np.ndarray) -> np.ndarray:
        """Place ``picks`` in order while each fits (a pick that does not fit is skipped); True where placed."""
        placed = np.zeros(rows.size, dtype=bool)
        if not self.resources:
            placed[:] = picks >= 0
            return placed
        for t, (i, k) in enumerate(zip(rows.tolist(), picks.tolist(), strict=True)):
            if k < 0:
                continue
            res = self.of(i)
            if (self.w[res, k] <= self.left[res] + 1e-9).all():
                self.left[res] -= self.w[res, k]
                placed[t] = True
        return placed
