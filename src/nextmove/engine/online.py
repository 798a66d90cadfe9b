"""The online decider: one account's best action in milliseconds, from the active run's projection.

A batch run (``nextmove.engine.run``) projects every account's value under every action and
stores one recommendation per account with its receipt (``evidence``) and runner-up actions
(``alternatives``). The online decider serves decisions from that projection between runs:

1. **options**: the run's chosen action and its alternatives, each with its projected value and
   interval; ``none`` (worth 0) is always an option;
2. **rules**: what the run blocked (eligibility, cooldowns, caps, plays in flight as of the run)
   stays blocked; what happened *since* the run — decisions logged online and ``done`` feedback —
   is checked against the playbook's cooldowns, contact caps and in-flight limit; what the
   account's users said — ``snoozed`` and ``dismissed`` feedback, whenever it was sent — holds an
   action back until the snooze ends or the dismissal's cooldown has passed (:func:`feedback_holds`);
   and an option that does not fit what is left of the playbook's capacities, once the run's
   recommendations and the plays given online since are counted, is blocked (:class:`OnlineCapacity`);
3. **choice**: the control cohort gets the lifecycle default (if allowed); everyone else the best
   allowed option, or, for a share ``epsilon`` of the decisions, a draw of the playbook's
   exploration method (Thompson sampling over the value intervals, uniform, or none), as the run
   decides; the exact probability of the chosen option is logged as its propensity;
4. **learning**: outcome feedback that names a decision and its realised value in USD moves a
   per-action correction (a normal posterior on the gap between realised and projected value,
   in units of the projection's own spread); a correction that says an action was overvalued
   lowers its later values (one that says undervalued raises none, as in the batch loop's
   default: corrections both ways cost value in the lab), and each widens or narrows the
   exploration draws, without a restart.

Which run is served: the run named by the active ``policy`` model version if there is one
(``nextmove models rollback`` re-activates the previous one), else the newest succeeded run not
started with ``promote=False`` (:func:`servable_run`).
:meth:`OnlineDecider.refresh` swaps a new snapshot in atomically when that changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.book import NO_ACTION, Book
from nextmove.book.model import as_utc
from nextmove.decide.phrases import days_said, isolated
from nextmove.decide.policy import _resource_words, default_variant, playbook_resources, value_matrices
from nextmove.decide.rules import (
    NO_PLAY_ALLOWED,
    Candidate,
    Why,
    candidates,
    channel_of,
    check_rules,
    touch_channels,
)
from nextmove.engine.holds import (
    HOLD_WHY,
    FeedbackHold,
    answering_run,
    feedback_holds,
    hold_action,
    last_hold,
    promoted_runs,
)
from nextmove.errors import ConfigError, ConflictError, NextmoveError, NotFoundError, StoreError
from nextmove.features import FeatureVocabulary, compute_features, feature_schema
from nextmove.playbook import Playbook
from nextmove.playbook.money import money_text
from nextmove.store import (
    ActivityRecord,
    AuditEntry,
    DecisionPlay,
    DecisionRecord,
    FeedbackEvent,
    ModelsChangedError,
    ModelVersionRecord,
    RecommendationRecord,
    RunRecord,
    Store,
)
from nextmove.store.locks import AccountLocks, account_locks
from nextmove.store.prune import refuse_pruned
from nextmove.store.records import POLICY_MODEL_KIND as POLICY_MODEL_KIND
from nextmove.store.records import policy_version, request_id_conflict, utcnow

BLOCKING_WHY: Final[frozenset[str]] = frozenset({"rule", "cooldown", "contact_cap", "in_flight"})
"""Reasons in a run's alternatives that keep an action blocked online until the next run;
``lower_value`` does not, nor ``capacity``: each decision checks what is left now (:class:`OnlineCapacity`).
Neither do ``snoozed`` and ``dismissed``: each decision reads the feedback itself
(:func:`feedback_holds`), so a snooze ends online when it ends, not at the next run."""

THOMPSON_DRAWS: Final[int] = 256
"""Draws used to compute the probability of each option under Thompson sampling."""

_CACHE_ACCOUNTS: Final[int] = 50_000
"""Runs of up to this many accounts are held in memory whole; larger ones are cached up to this many."""
_LOAD_PAGE: Final[int] = 5_000

logger = logging.getLogger(__name__)


class DeciderNotReadyError(NextmoveError):
    """The decider has nothing to serve yet (no run), or its run does not fit the playbook."""

    exit_code = 1
    http_status = 409
    code = "decider_not_ready"


# ---- options and snapshots --------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One thing an account may be given, as the run projected it."""

    action_id: str
    variant: str | None
    value_usd: float
    low_usd: float
    high_usd: float
    run_why: str | None = None
    """Why the run ranked it below its choice (``lower_value``, ``rule``, ``cooldown`` …), None for the choice."""
    run_reason: str = ""
    pooled: bool = False
    """Valued at the pooled effect of all actions, for want of a history of its own (the receipts' ``pooled``)."""

    @property
    def key(self) -> str:
        """``action`` or ``action:variant``."""
        return self.action_id if self.variant is None else f"{self.action_id}:{self.variant}"

    @property
    def blocked_by_run(self) -> bool:
        """Whether the run's rules keep it blocked until the next run."""
        return self.run_why in BLOCKING_WHY


@dataclass(frozen=True)
class AccountView:
    """What the served run knows of one account: its recommendation and every option with its value."""

    recommendation: RecommendationRecord
    options: tuple[Option, ...]
    rescored: bool = False
    """True when the options were recomputed from fresh signals rather than taken from the run."""
    model_version: str | None = None
    """The effect model that projected the options (None: the run's, ``recommendation.model_version``)."""
    keys: tuple[str, ...] = field(init=False)
    values: NDArray[np.float64] = field(init=False, repr=False)
    lows: NDArray[np.float64] = field(init=False, repr=False)
    highs: NDArray[np.float64] = field(init=False, repr=False)
    run_allowed: NDArray[np.bool_] = field(init=False, repr=False)
    """Options the run's rules leave open (``none`` always)."""

    def __post_init__(self) -> None:
        # Arrays made once per account, so that each decision only combines them.
        set_ = object.__setattr__
        set_(self, "keys", tuple(o.key for o in self.options))
        set_(self, "values", np.array([o.value_usd for o in self.options]))
        set_(self, "lows", np.array([o.low_usd for o in self.options]))
        set_(self, "highs", np.array([o.high_usd for o in self.options]))
        set_(
            self,
            "run_allowed",
            np.array([o.action_id == NO_ACTION or not o.blocked_by_run for o in self.options]),
        )

    @property
    def account_id(self) -> str:
        """The account's id."""
        return self.recommendation.account_id

    @property
    def owner(self) -> str | None:
        """The account's owner (CSM) as the run saw it."""
        return self.recommendation.owner

    @property
    def in_control(self) -> bool:
        """Whether the run put the account in the control cohort."""
        return self.recommendation.arm == "control"


def options_of(rec: RecommendationRecord) -> tuple[Option, ...]:
    """The options of a stored recommendation: its choice, its alternatives, and ``none`` (worth 0) if missing.

    Examples
    --------
    >>> rec = RecommendationRecord(
    ...     run_id="r", account_id="a", action_id="qbr", arm="model", propensity=0.9,
    ...     expected_value_usd=500.0, value_low_usd=100.0, value_high_usd=900.0,
    ...     alternatives=[{"action_id": "email", "value_usd": 50.0, "low": 0.0, "high": 90.0, "why": "lower_value"}],
    ... )
    >>> [(o.key, o.value_usd) for o in options_of(rec)]
    [('qbr', 500.0), ('email', 50.0), ('none', 0.0)]
    """
    chosen = Option(
        rec.action_id,
        rec.variant,
        rec.expected_value_usd,
        _number(rec.value_low_usd, rec.expected_value_usd),
        _number(rec.value_high_usd, rec.expected_value_usd),
        pooled=isinstance(rec.evidence, Mapping) and rec.evidence.get("pooled") is True,
    )
    out = [chosen]
    seen = {chosen.key}
    eligible = _eligible_in_run(rec)
    for alt in rec.alternatives:
        if not isinstance(alt, Mapping) or not isinstance(alt.get("action_id"), str):
            continue
        value = _number(alt.get("value_usd"), 0.0)
        variant = alt.get("variant")
        why, reason = str(alt.get("why") or "lower_value"), str(alt.get("reason") or "")
        if _held_back(rec, alt, eligible) or why in HOLD_WHY:
            # Lost to the run's control or exploration draw, not to a rule: open online, on its value.
            # Or held back by a snooze or dismissal: each decision reads the feedback again (_holds).
            why, reason = "lower_value", ""
        option = Option(
            str(alt["action_id"]),
            variant if isinstance(variant, str) else None,
            value,
            _number(alt.get("low"), value),
            _number(alt.get("high"), value),
            why,
            reason,
            pooled=alt.get("pooled") is True,
        )
        if option.key not in seen:
            seen.add(option.key)
            out.append(option)
    if NO_ACTION not in seen:
        out.append(Option(NO_ACTION, None, 0.0, 0.0, 0.0, "lower_value", "doing nothing is always possible"))
    return tuple(out)


HOLD_BACK_ARMS: Final[frozenset[str]] = frozenset({"control", "explore"})
"""Arms of the run whose accounts may have had a better allowed option held back by the randomisation."""

_HELD_BACK_WORDS: Final[str] = "held back:"
"""How the run's reason for a hold-back begins (:meth:`~nextmove.decide.policy.Decisions.lost`); a last resort only."""


def _eligible_in_run(rec: RecommendationRecord) -> set[str]:
    """Actions the run's eligibility rules allowed for the account, as its recommendation shows them.

    Eligibility is per action (every variant shares it) and comes first among the run's rules, so
    an action passed it if the run or its learned policy chose it (``model_action_id``: the
    allocation picks only what the rules allow), or if any of its runner-up rows lost for another
    reason than ``rule`` (a cooldown, a cap, a play in flight, capacity or value).
    """
    out = {rec.action_id}
    model = rec.evidence.get("model_action_id") if isinstance(rec.evidence, Mapping) else None
    if isinstance(model, str):
        out.add(model)
    for alt in rec.alternatives:
        if isinstance(alt, Mapping) and isinstance(alt.get("action_id"), str) and alt.get("why") not in (None, "rule"):
            out.add(str(alt["action_id"]))
    out.discard(NO_ACTION)
    return out


def _held_back(rec: RecommendationRecord, alt: Mapping[str, Any], eligible: set[str]) -> bool:
    """Whether the run's runner-up ``alt`` lost to the control or exploration draw rather than to a rule.

    The run codes it ``held_back`` (:meth:`~nextmove.decide.policy.Decisions.lost`). Runs stored
    before that code existed coded it ``rule``, as their eligibility rules and an action without a
    projection (no value): there a ``rule`` row with a value, of an action that passed eligibility
    (:func:`_eligible_in_run`), can only be the hold-back; otherwise the run's words for it decide,
    and anything not recognised stays blocked, as a rule would.
    """
    if rec.arm not in HOLD_BACK_ARMS:
        return False
    if alt.get("why") == "held_back":
        return True
    if alt.get("why") != "rule":  # the code of runs stored before held_back had its own
        return False
    value = alt.get("value_usd")
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return alt.get("action_id") in eligible or str(alt.get("reason") or "").startswith(_HELD_BACK_WORDS)


def _number(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


@dataclass
class PolicySnapshot:
    """The run the decider serves and its accounts' views (immutable once made, but for the cache).

    Made by :meth:`load`: a run of up to 50,000 accounts is read from the store once, whole, so
    that a decision reads no recommendation from the store; the views of a larger run are read on
    first use and kept in a bounded cache of as many.
    """

    run: RunRecord
    policy_version: str | None
    _store: Store = field(repr=False)
    _views: dict[str, AccountView] | None = field(default=None, repr=False)
    _cache: OrderedDict[str, AccountView | None] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _promoted: list[RunRecord] | None = field(default=None, repr=False)
    capacity: OnlineCapacity | None = field(default=None, repr=False)
    """What the run and the decisions since use of the playbook's capacities (None: nothing to count)."""

    @classmethod
    def load(cls, store: Store, run: RunRecord, policy_version: str | None = None) -> PolicySnapshot:
        """The snapshot of ``run``, with every account's view in memory if the run has at most 50,000."""
        snap = cls(run, policy_version, store)
        if store.count_recommendations(run.run_id) <= _CACHE_ACCOUNTS:
            views: dict[str, AccountView] = {}
            while page := store.recommendations(run.run_id, limit=_LOAD_PAGE, offset=len(views)):
                views.update((rec.account_id, AccountView(rec, options_of(rec))) for rec in page)
                if len(page) < _LOAD_PAGE:
                    break
            snap._views = views
        return snap

    @property
    def in_memory(self) -> bool:
        """Whether every account of the run is in memory (no store read per account)."""
        return self._views is not None

    def account(self, account_id: str) -> AccountView | None:
        """The account's view in this run, or None if the run has no recommendation for it."""
        if self._views is not None:
            return self._views.get(account_id)
        with self._lock:
            if account_id in self._cache:
                self._cache.move_to_end(account_id)
                return self._cache[account_id]
        found = self._store.recommendations(self.run.run_id, account_ids=[account_id])
        view = AccountView(found[0], options_of(found[0])) if found else None
        with self._lock:
            self._cache[account_id] = view
            if len(self._cache) > _CACHE_ACCOUNTS:
                self._cache.popitem(last=False)
        return view

    def promoted_runs(self) -> list[RunRecord]:
        """The promoted runs before this one, read once (:func:`~nextmove.engine.holds.promoted_runs`).

        Only a dismissal sent before this run was made and naming nothing needs them, to find the run it
        answered; runs made since cannot be that run, so the list read once stays right.
        """
        if self._promoted is None:
            self._promoted = promoted_runs(self._store)
        return self._promoted


# ---- capacity ---------------------------------------------------------------------------------

FEEDBACK_SYNC_SLACK: Final[timedelta] = timedelta(seconds=15)
"""How far back of the latest event read :meth:`OnlineDecider._learn_new_feedback` reads again: an event
is stamped (``received_at``) a moment before it is committed, so one stamped just before the latest
read may be stored just after it. One committed later than this after its stamp is learned from by
the other processes only when they start again."""

CAPACITY_SYNC_SLACK: Final[timedelta] = timedelta(seconds=15)
"""How far back of its last read :meth:`OnlineCapacity.sync` reads the store again: a decision is
committed a moment after its time (the server logs what it decided together, well within a second),
so one made just before a read may be stored just after it. One committed later than this after its
time is counted by the other processes only when they load the run again."""


@dataclass(frozen=True)
class _Reservation:
    """What one decision not logged yet added to the use of each resource, to undo it if it is not logged."""

    account_id: str
    delta: NDArray[np.float64]
    released_batch: bool


class OnlineCapacity:
    """What the served run and the online decisions since use of the playbook's capacities; thread-safe.

    The resources are the batch run's (:func:`~nextmove.decide.policy.playbook_resources`): each
    owner's hours over the decision window, each team's budget, each action's ``max_per_run``;
    none when the run was made without capacities (``capacity=False``). Their use starts as the
    run's: every account's recommended play. An account's first online decision replaces its
    recommendation, so what that used is released; each online decision that gives a play uses what
    the play needs, for as long as the run is served: a play given is being done (the contact rules
    count it in flight), so a later decision for the account does not release it. An option that
    would take a resource over its limit is blocked (``capacity``) by :meth:`blocks`.

    Read from the store when the run is loaded (:meth:`load`: the run's recommendations and the
    decisions logged for it), counted in memory as this process decides (:meth:`take`, then
    :meth:`settle` once logged or not), and brought up to date with what other processes sharing
    the store logged: their plays for an account when this process decides it
    (:meth:`count_logged`), everything at each refresh (:meth:`sync`).
    """

    def __init__(
        self,
        playbook: Playbook,
        run_id: str,
        owners: Sequence[str],
        batch_play: Callable[[str], tuple[str | None, str] | None],
    ) -> None:
        cands = candidates(playbook)
        resources = playbook_resources(playbook, cands, list(owners))
        self.run_id = run_id
        self.names = [r.name for r in resources]
        self.limit = np.array([r.limit for r in resources], dtype=np.float64)
        self.used = np.zeros(len(resources))
        # Resources × candidates, and a last column of zeros for what uses nothing (doing nothing).
        self._w = np.zeros((len(resources), len(cands) + 1))
        for j, r in enumerate(resources):
            self._w[j, :-1] = np.asarray(r.per_candidate, dtype=np.float64)
        self._col = {c.key: k for k, c in enumerate(cands)}
        self._global = np.array([j for j, r in enumerate(resources) if r.accounts is None], dtype=np.int64)
        # An owner's hours: the resource whose accounts (positions in ``owners``) are that owner's.
        self._hours = {owners[int(r.accounts[0])]: j for j, r in enumerate(resources) if r.accounts is not None}
        self._of: dict[str | None, NDArray[np.int64]] = {}
        self._action_names = {a.id: a.name or a.id for a in playbook.actions}
        self._batch_play = batch_play
        self.decided: set[str] = set()
        """Accounts decided online for the run: their recommendation is replaced, and uses nothing."""
        self._seen: dict[str, datetime] = {}
        self._pending: dict[str, _Reservation] = {}
        self._unreleased: dict[str, tuple[datetime, NDArray[np.int64], NDArray[np.float64]]] = {}
        """Accounts another process decided first, found deciding them: their recommendation's use,
        released at the next :meth:`sync` (what that process freed is its own to give until then)."""
        self._read_at: datetime | None = None
        self.lock = threading.Lock()
        """Held from the check of an option (:meth:`blocks`) to the use of the one chosen (:meth:`take`)."""

    @classmethod
    def load(cls, store: Store, playbook: Playbook, snap: PolicySnapshot) -> OnlineCapacity | None:
        """The use of every capacity by ``snap``'s run and the decisions logged for it, as the store holds them.

        None when there is nothing to count: the run was made without capacities, or the playbook has none.
        Two reads: the decisions' plays, and four values of each recommendation (streamed).
        """
        run = snap.run
        if run.params.get("capacity", True) is False:
            return None
        pb = playbook.capacity
        if (
            not pb.limits_owner_hours
            and not pb.budget_usd_per_team
            and all(a.max_per_run is None for a in playbook.actions)
        ):
            return None
        started = utcnow()
        plays = store.decision_plays(run.run_id)
        decided = {p.account_id for p in plays}
        owner_of: dict[str, str | None] = {}
        batch: dict[tuple[str | None, str], int] = {}
        owners: set[str] = set()
        fields = {"account_id": ("account_id",), "owner": ("owner",), "action_id": ("action_id",), "v": ("variant",)}
        for rows in store.recommendation_values(run.run_id, fields):
            for account_id, owner, action_id, variant in rows:
                if owner is not None:
                    owners.add(owner)
                if account_id in decided:
                    owner_of[account_id] = owner
                else:
                    key = action_id if variant is None else f"{action_id}:{variant}"
                    batch[(owner, key)] = batch.get((owner, key), 0) + 1

        def batch_play(account_id: str) -> tuple[str | None, str] | None:
            view = snap.account(account_id)
            return None if view is None else (view.owner, _run_key(view.recommendation))

        out = cls(playbook, run.run_id, sorted(owners), batch_play)
        if not out.names:
            return None
        for (owner, key), count in batch.items():
            res = out._resources_of(owner)
            out.used[res] += count * out._w[res, out._col.get(key, -1)]
        for p in plays:
            if p.account_id in owner_of:  # else not an account of the run (the run cannot have decided it)
                res = out._resources_of(owner_of[p.account_id])
                out.used[res] += out._w[res, out._col.get(_play_key(p), -1)]
            out._seen[p.decision_id] = p.ts
        out.decided = decided
        out._read_at = started
        return out

    def _resources_of(self, owner: str | None) -> NDArray[np.int64]:
        res = self._of.get(owner)
        if res is None:
            hours = self._hours.get(owner) if owner is not None else None
            res = self._global if hours is None else np.append(self._global, hours)
            self._of[owner] = res
        return res

    def usage(self) -> dict[str, dict[str, float]]:
        """Per resource: its limit and what is used of it now (as ``Decisions.usage`` gives a run's)."""
        with self.lock:
            used = self.used.tolist()
        return {n: {"limit": float(lim), "used": u} for n, lim, u in zip(self.names, self.limit, used, strict=True)}

    def blocks(
        self, account_id: str, owner: str | None, run_key: str, keys: Sequence[str]
    ) -> list[tuple[str, str] | None]:
        """Per option key, ``("capacity", reason)`` if giving it to the account would take a resource over its limit.

        What is left counts the account's recommendation (``run_key``) as released when the account
        has no online decision yet: the decision replaces it. Call under :attr:`lock`.
        """
        res = self._resources_of(owner)
        if res.size == 0:
            return [None] * len(keys)
        left = self.limit[res] - self.used[res]
        if account_id not in self.decided:
            left = left + self._w[res, self._col.get(run_key, -1)]
        cols = np.array([self._col.get(k, -1) for k in keys], dtype=np.int64)
        need = self._w[np.ix_(res, cols)]
        over = (need > 0) & (need > left[:, None] + 1e-9)  # what uses nothing always fits
        if not over.any():
            return [None] * len(keys)
        first = over.argmax(axis=0)
        return [
            ("capacity", f"not enough of {_resource_words(self.names[int(res[j])], self._action_names)} is left for it")
            if over[j, k]
            else None
            for k, j in enumerate(first.tolist())
        ]

    def take(self, decision_id: str, account_id: str, owner: str | None, run_key: str, key: str, ts: datetime) -> None:
        """Count decision ``decision_id`` (option ``key``) until :meth:`settle` says whether it was logged.

        Call under :attr:`lock`, after :meth:`blocks` allowed ``key``.
        """
        res = self._resources_of(owner)
        delta = np.zeros(self.used.size)
        released = account_id not in self.decided
        if released:
            self.decided.add(account_id)
            delta[res] -= self._w[res, self._col.get(run_key, -1)]
        delta[res] += self._w[res, self._col.get(key, -1)]
        self.used += delta
        self._pending[decision_id] = _Reservation(account_id, delta, released)
        self._seen[decision_id] = as_utc(ts)

    def settle(self, decision_id: str, logged: bool) -> None:
        """Keep what decision ``decision_id`` uses if it was logged, else give it back (a failure, or a retry)."""
        with self.lock:
            held = self._pending.pop(decision_id, None)
            if held is None or logged:
                return
            self.used -= held.delta
            if held.released_batch:
                self.decided.discard(held.account_id)
            self._seen.pop(decision_id, None)

    def count_logged(self, account_id: str, owner: str | None, run_key: str, activity: Iterable[ActivityRecord]) -> int:
        """Count the account's decisions of the run in ``activity`` not counted yet: another process's; how many.

        Another process sharing the store may have given the account a play since this one last read
        the store (:meth:`sync`, every refresh). The play is in the account's activity, read under the
        account's lock before deciding: counted now, the account's recommendation is not released a
        second time by this decision, nor the play's use left out until the next refresh. What the
        recommendation used is released here only at the next :meth:`sync`: until then what the
        other process freed is its own to give (else both could give it), and that sync counts what
        it gave of it. A decision counted before (remembered, or older than what :meth:`sync` reads
        again, for an account counted as decided) is not counted again. (A decision of doing nothing
        is not in the activity: it only releases the recommendation, which this decision then does.)
        """
        plays = [
            DecisionPlay(r.record_id, account_id, as_utc(r.ts), r.action_id or NO_ACTION, r.variant)
            for r in activity
            if r.source == "decision" and r.run_id == self.run_id
        ]
        if not plays:
            return 0
        with self.lock:
            if account_id in self.decided and self._read_at is not None:
                horizon = self._read_at - CAPACITY_SYNC_SLACK
                plays = [p for p in plays if p.ts >= horizon]
            return self._count(plays, {account_id: (owner, run_key)}, release=False)

    def _count(
        self,
        plays: Iterable[DecisionPlay],
        found: Mapping[str, tuple[str | None, str] | None],
        *,
        release: bool = True,
    ) -> int:
        """Count ``plays`` not counted yet, with each account's owner and run's play; call under :attr:`lock`.

        An account decided for the first time releases its recommendation's use now, or (``release``
        False) at the next :meth:`sync`.
        """
        counted = 0
        for p in plays:
            play = found[p.account_id]
            if p.decision_id in self._seen or play is None:
                continue
            owner, run_key = play
            res = self._resources_of(owner)
            if p.account_id not in self.decided:
                self.decided.add(p.account_id)
                batch = self._w[res, self._col.get(run_key, -1)]
                if release:
                    self.used[res] -= batch
                else:
                    self._unreleased[p.account_id] = (utcnow(), res, batch)
            self.used[res] += self._w[res, self._col.get(_play_key(p), -1)]
            self._seen[p.decision_id] = p.ts
            counted += 1
        return counted

    def sync(self, store: Store) -> int:
        """Count what the store's other processes logged for the run since the last read; how many decisions.

        Reads the plays logged from :data:`CAPACITY_SYNC_SLACK` before the last read on (one query on the
        decisions' time index), and counts those not counted yet.
        """
        started = utcnow()
        since = None if self._read_at is None else self._read_at - CAPACITY_SYNC_SLACK
        plays = [p for p in store.decision_plays(self.run_id, since=since) if p.decision_id not in self._seen]
        found = {p.account_id: self._batch_play(p.account_id) for p in plays}  # may read the store: not under the lock
        with self.lock:
            counted = self._count(plays, found)
            # What another process freed before this read: counted since, what it gave of it.
            for account_id, (at, res, batch) in list(self._unreleased.items()):
                if at < started:
                    self.used[res] -= batch
                    del self._unreleased[account_id]
            self._read_at = started
            # What the next read cannot return again need not be remembered (but what is not logged yet).
            horizon = started - CAPACITY_SYNC_SLACK
            self._seen = {d: ts for d, ts in self._seen.items() if ts >= horizon or d in self._pending}
        return counted


def _play_key(play: DecisionPlay) -> str:
    return play.action_id if play.variant is None else f"{play.action_id}:{play.variant}"


def _capacity_rows(
    spent: Sequence[tuple[str, str] | None], mean: NDArray[np.float64], choice: int, default: int | None
) -> list[tuple[str, str] | None]:
    """The ``capacity`` rows of a decision's runner-ups, worded as the run's receipts word them.

    An option worth more than the choice that does not fit: "worth more, but not enough of … is
    left for it"; the control cohort's default that does not fit, whatever its value: "not enough
    of … is left for it". Any other option that does not fit lost on its value.
    """
    out: list[tuple[str, str] | None] = []
    for i, block in enumerate(spent):
        if block is None or i == choice:
            out.append(None)
        elif i == default:
            out.append(block)
        elif mean[i] > mean[choice] + 1e-9:
            out.append((block[0], f"worth more, but {block[1]}"))
        else:
            out.append(None)
    return out


# ---- online learning --------------------------------------------------------------------------


@dataclass
class _Gaps:
    """Count, sum and sum of squares of the gaps ``z`` of one action (or of all of them)."""

    n: int = 0
    z_sum: float = 0.0
    z_sq: float = 0.0

    def takes(self, z: float) -> bool:
        """Whether ``z`` is finite, within :data:`MAX_GAP_Z`, and keeps the sum of squares within
        :data:`MAX_GAP_SQUARES`."""
        return math.isfinite(z) and abs(z) <= MAX_GAP_Z and self.z_sq + z * z <= MAX_GAP_SQUARES

    def add(self, z: float) -> None:
        self.n += 1
        self.z_sum += z
        self.z_sq += z * z

    @property
    def variance(self) -> float:
        """Sample variance of the gaps (NaN below two)."""
        if self.n < 2:
            return math.nan
        return max(self.z_sq - self.z_sum * self.z_sum / self.n, 0.0) / (self.n - 1)


MAX_GAP_Z: Final[float] = 1_000.0
"""The largest gap, in spreads, one outcome may count with; a farther one is stored, not learned from.

The closed-loop lab's variances of ``z`` were at most 2,800 (a standard deviation of 53 spreads: a
churn costs the whole ARR against a projection's spread of a few hundred dollars). One allowed but
absurd value (``value_usd`` 1e12, or dollars sent in cents: −250,000 for a $2,500 churn against a
spread of $3.60, a gap of 69,000) would otherwise set the pooled noise variance of every action, and
erase what each had learned, for good (stored events are replayed at start-up).
"""

MAX_GAP_SQUARES: Final[float] = 1e300
"""The largest sum of squared gaps one action (or all of them) holds: a gap that would pass it is not counted.

Real gaps are nowhere near (the closed-loop lab's variances of ``z`` were at most 2,800); an absurd
value (``value_usd`` of 1e300, stored before the API bounded it) would make ``z²`` infinite and
every posterior made from the sums NaN. Below this bound the variances, ``τ²`` and the posteriors
stay finite."""

CONTEXT_SEPARATOR: Final = "@"
"""Joins an action key and a decision's contact context into the key of the action's gap in that context
(``upsell_call@busy``): a batch decision logged with a ``contact`` moves both its action's correction and this one."""

NOISE_PRIOR_EVENTS = 30.0
"""Weight, in events, of the pooled noise variance in each action's own (see :class:`OnlineLearner`)."""


def _posterior(own: _Gaps, pooled_var: float) -> tuple[float, float]:
    """Posterior mean and variance of one action's mean gap: prior N(0, 1), each gap seen with variance τ²."""
    if own.n == 0:
        return 0.0, 1.0
    own_var = own.variance if own.n > 1 else pooled_var
    tau2 = max((own.n * own_var + NOISE_PRIOR_EVENTS * pooled_var) / (own.n + NOISE_PRIOR_EVENTS), 1.0)
    return own.z_sum / (own.n + tau2), tau2 / (tau2 + own.n)


@dataclass(frozen=True)
class ActionCorrection:
    """The online correction of one action: realised minus projected value, in projection spreads."""

    action_key: str
    outcomes: int
    """Outcome events with a realised value that moved it."""
    mean_z: float
    """Posterior mean of the gap (0: the projections were right on average)."""
    sd_z: float
    """Posterior standard deviation of the gap."""


class OnlineLearner:
    """Per-action normal posteriors of the gap between realised and projected value; thread-safe and idempotent.

    An outcome event counts when its payload names a logged ``decision_id`` and a realised
    ``value_usd`` (the dollars the client attributes to the decision, relative to doing nothing).
    The gap is measured in units of the decision's projected spread ``s`` (its interval's
    half-width over the normal quantile of the level), so actions of any size share one prior:
    ``z = (realised − projected) / s``, prior ``N(0, 1)`` on an action's mean gap.

    One decision's realised dollars are far noisier than its projection's spread (a churn costs
    the whole ARR): the closed-loop lab measured variances of ``z`` from 5 to 2,800. So each ``z``
    is taken as observed with variance ``τ²``: the action's sample variance of ``z``, shrunk toward
    the variance pooled over every action with the weight of :data:`NOISE_PRIOR_EVENTS` events,
    and never below 1. The posterior mean is ``Σz / (n + τ²)`` and its variance
    ``τ² / (τ² + n)``: a few large outcomes no longer move a whole action.
    An event counts once, however often it is replayed.

    Examples
    --------
    >>> learner = OnlineLearner(level=0.9)
    >>> learner.observe("e1", "qbr", realised_usd=0.0, projected_usd=1000.0, low_usd=500.0, high_usd=1500.0)
    True
    >>> learner.observe("e1", "qbr", realised_usd=0.0, projected_usd=1000.0, low_usd=500.0, high_usd=1500.0)
    False
    >>> round(learner.correction("qbr").mean_z, 2)
    -1.64
    """

    def __init__(self, level: float = 0.9) -> None:
        self.level = level
        self.z = NormalDist().inv_cdf(0.5 + level / 2)
        self._gaps: dict[str, _Gaps] = {}
        self._pooled = _Gaps()
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def spread(self, low_usd: float, high_usd: float) -> float:
        """The standard deviation implied by an interval at the learner's level."""
        return max(high_usd - low_usd, 0.0) / (2.0 * self.z)

    def observe(
        self,
        event_id: str,
        action_key: str,
        *,
        realised_usd: float,
        projected_usd: float,
        low_usd: float,
        high_usd: float,
    ) -> bool:
        """Count one realised outcome of a decision; False if the event was counted before or cannot be.

        An event cannot be counted without a spread, or when its gap ``z`` (or ``z²``, or the sums
        they join) would not be a finite number: an absurd ``value_usd`` moves nothing rather than
        turn the action's correction into NaN.
        """
        s = self.spread(low_usd, high_usd)
        if not s > 0 or not math.isfinite(s) or not math.isfinite(realised_usd) or not math.isfinite(projected_usd):
            return False
        z = (realised_usd - projected_usd) / s
        with self._lock:
            if event_id in self._seen:
                return False
            own = self._gaps.get(action_key, _Gaps())
            if not (own.takes(z) and self._pooled.takes(z)):
                return False
            self._seen.add(event_id)
            self._gaps[action_key] = own
            own.add(z)
            self._pooled.add(z)
        return True

    def has_seen(self, event_id: str) -> bool:
        """Whether the event ``event_id`` has been counted."""
        with self._lock:
            return event_id in self._seen

    def _pooled_var(self) -> float:
        """The variance of every action's gaps (1 below two gaps, never below 1); call under the lock."""
        var = self._pooled.variance
        return 1.0 if not math.isfinite(var) else max(var, 1.0)

    def correction(self, action_key: str) -> ActionCorrection:
        """The current correction of ``action_key`` (no outcomes yet: mean 0, sd 1)."""
        with self._lock:
            own = self._gaps.get(action_key, _Gaps())
            mean, var = _posterior(own, self._pooled_var())
        return ActionCorrection(action_key, own.n, mean, math.sqrt(var))

    def shifts(self, keys: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """Posterior means and standard deviations of the gap, and outcome counts, of ``keys`` (one lock).

        A posterior that is not finite (which :meth:`observe` keeps from happening) is given as the
        prior, mean 0 and sd 1, so that no NaN reaches a decision.
        """
        empty = _Gaps()
        with self._lock:
            pooled = self._pooled_var()
            gaps = [self._gaps.get(k, empty) for k in keys]
            posts = [_posterior(g, pooled) for g in gaps]
        mean = np.array([m for m, _ in posts], dtype=np.float64)
        sd = np.sqrt(np.array([v for _, v in posts], dtype=np.float64))
        sound = np.isfinite(mean) & np.isfinite(sd)
        n = np.array([g.n for g in gaps], dtype=np.int64)
        return np.where(sound, mean, 0.0), np.where(sound, sd, 1.0), n

    def corrections(self) -> list[ActionCorrection]:
        """Every action's correction that has seen at least one outcome, by action."""
        with self._lock:
            keys = sorted(self._gaps)
        return [self.correction(k) for k in keys]


# ---- rules since the run ----------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineTouch:
    """A play done (or decided and not dismissed) since the run, counted by the contact rules."""

    action_id: str
    ts: datetime
    variant: str | None = None
    """The variant the decision gave (None: none, or a ``done`` event): contact caps count it on its channel."""


def online_touches(activity: Iterable[ActivityRecord]) -> list[OnlineTouch]:
    """Plays since the run: decisions of a play not dismissed since, and ``done`` events naming no such decision.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> def act(source, record_id, kind, action_id, decision_id=None):
    ...     return ActivityRecord(
    ...         source=source, record_id=record_id, kind=kind, action_id=action_id, ts=t, decision_id=decision_id
    ...     )
    >>> acts = [
    ...     act("decision", "d1", "decided", "qbr"),
    ...     act("decision", "d2", "decided", "demo"),
    ...     act("feedback", "e1", "dismissed", "demo", "d2"),
    ...     act("feedback", "e2", "done", "qbr", "d1"),
    ...     act("feedback", "e3", "done", "call"),
    ... ]
    >>> [t.action_id for t in online_touches(acts)]
    ['qbr', 'call']
    """
    records = list(activity)
    dismissed = {r.decision_id for r in records if r.kind == "dismissed" and r.decision_id}
    decided = {
        r.record_id: OnlineTouch(r.action_id, r.ts, r.variant)
        for r in records
        if r.source == "decision" and r.action_id and r.action_id != NO_ACTION and r.record_id not in dismissed
    }
    out = list(decided.values())
    for r in records:
        if r.kind == "done" and r.action_id and r.action_id != NO_ACTION and r.decision_id not in decided:
            out.append(OnlineTouch(r.action_id, r.ts))
    return out


def hold_blocks(options: Sequence[Option], holds: Sequence[FeedbackHold]) -> list[tuple[str, str] | None]:
    """Per option, ``(why, reason)`` of the hold that ends last among those that hold it back, else None."""
    out: list[tuple[str, str] | None] = []
    for option in options:
        last = last_hold(holds, option.action_id)
        out.append(None if last is None else (last.why, last.reason))
    return out


class ContactRules:
    """The playbook's contact policy, applied to the plays since the run (made once per playbook)."""

    def __init__(self, playbook: Playbook) -> None:
        self.policy = playbook.contact_policy
        cands = candidates(playbook)
        self._by_key: dict[str, Candidate] = {c.key: c for c in cands}
        self._by_action: dict[str, Candidate] = {c.action_id: c for c in cands}
        self._team_of = {a.id: a.team for a in playbook.actions}
        self._channels = touch_channels(playbook)

    def blocks(
        self, options: Sequence[Option], touches: Sequence[OnlineTouch], now: datetime
    ) -> list[tuple[str, str] | None]:
        """Per option, ``(why, reason)`` if the contact rules block it given ``touches``, else None.

        Precedence as in the batch run: play in flight, cooldown, contact cap; ``none`` is never blocked.
        """
        if not touches:
            return [None] * len(options)
        policy = self.policy
        ages = [(t.action_id, (now - t.ts).total_seconds() / 86_400.0) for t in touches]
        in_window = sum(1 for _, age in ages if age < policy.window_days)
        # The channel each touch went out on: its variant's, else its action's (as the batch run counts them).
        channels = [channel_of(self._channels, t.action_id, t.variant) for t in touches]
        out: list[tuple[str, str] | None] = []
        for option in options:
            cand = self._by_key.get(option.key) or self._by_action.get(option.action_id)
            if option.action_id == NO_ACTION or cand is None:
                out.append(None)
            elif in_window >= policy.max_actions_per_window:
                out.append(
                    (
                        "in_flight",
                        NO_PLAY_ALLOWED
                        if policy.max_actions_per_window == 0
                        else f"a play is already in flight: {in_window} since the run in the last "
                        f"{policy.window_days} days (at most {policy.max_actions_per_window})",
                    )
                )
            else:
                last = min((age for a, age in ages if a == option.action_id), default=math.inf)
                if last < cand.cooldown_days:
                    done = f"done {days_said(last)} ago"  # as RuleCheck.reason says it
                    out.append(("cooldown", f"cooldown: {done}, cooldown {cand.cooldown_days} days"))
                else:
                    out.append(self._cap_block(cand, ages, channels))
        return out

    def _cap_block(
        self, cand: Candidate, ages: Sequence[tuple[str, float]], channels: Sequence[str | None]
    ) -> tuple[str, str] | None:
        for cap in self.policy.caps:
            team = cap.team
            if (team is not None and team != cand.team) or (cap.channel is not None and cap.channel != cand.channel):
                continue
            count = sum(
                1
                for (action_id, age), channel in zip(ages, channels, strict=True)
                if age < cap.window_days
                and (team is None or self._team_of.get(action_id) == team)
                and (cap.channel is None or channel == cap.channel)
            )
            if count >= cap.max_touches:
                scope = " ".join(x for x in (team, cap.channel) if x)
                return (
                    "contact_cap",
                    f"contact cap: {count} {scope} touches in {cap.window_days} days (max {cap.max_touches})",
                )
        return None


class _RowsByAccount:
    """Where each account's rows are in a frame, found once: an account's rows are read without a scan of the frame.

    The frame's row numbers in account order (a stable sort: an account's rows keep their order),
    and each account's run of them. :meth:`of` gives the rows a filter on ``account_id`` would, in
    the same order, at the cost of the account's own rows instead of the whole frame's.
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        # Sorted by account, then by row number: each account's rows in the frame's order.
        index = frame.select("account_id").with_row_index("row").sort("account_id", "row", nulls_last=True)
        runs = index.group_by("account_id", maintain_order=True).len().drop_nulls("account_id")
        ends = np.cumsum(runs.get_column("len").to_numpy())
        self._order: NDArray[np.int64] = index.get_column("row").to_numpy().astype(np.int64)
        self._runs: dict[str, tuple[int, int]] = {
            a: (int(end - n), int(end))
            for a, n, end in zip(
                runs.get_column("account_id").to_list(), runs.get_column("len").to_list(), ends, strict=True
            )
        }

    def of(self, account_id: str) -> pl.DataFrame:
        """The frame's rows of ``account_id``, in the frame's order (empty, with its schema, if none)."""
        start, end = self._runs.get(account_id, (0, 0))
        return self.frame[self._order[start:end]]


class FreshScorer:
    """Rescores one account from its own rows in the book plus fresh signals: features, rules, projected values.

    Uses the effect model of the served run (its summary's ``model_version``: the model it fitted or
    reused, whichever model version is active) and a feature vocabulary built from the whole book,
    so that the account's features have the columns the model was trained on. Loaded lazily, and
    again when the served run or the book changes; where each account's rows are in the book's
    tables is found then, once, so that a decision reads only its account's rows.
    """

    def __init__(self, book: Book, playbook: Playbook, model: Any, model_id: str) -> None:
        self.book = book
        self.playbook = playbook
        # One account's projection runs on the decision's own thread: with the run's n_jobs (2 by
        # default) each decision started and stopped a pool of threads for its objectives, which
        # cost more CPU than it saved (the same values either way; each objective draws its own
        # seeded numbers).
        model.n_jobs = 1
        self.model = model
        self.model_id = model_id
        self.rows = {
            name: _RowsByAccount(frame)
            for name, frame in (
                ("accounts", book.accounts),
                ("signals", book.signals),
                ("touches", book.touches),
                ("outcomes", book.outcomes),
            )
        }
        """Each table's rows by account (:meth:`_RowsByAccount.of`)."""
        self.vocabulary = FeatureVocabulary.build(
            accounts_schema=book.accounts.schema,
            signal_names=book.signals.get_column("name").unique().drop_nulls().to_list(),
            action_ids=book.touches.get_column("action_id").unique().drop_nulls().to_list(),
            outcome_kinds=book.outcomes.get_column("kind").unique().drop_nulls().to_list(),
            playbook=playbook,
        )

    def options(self, account_id: str, signals: Mapping[str, float], as_of: datetime) -> tuple[Option, ...]:
        """The account's options at ``as_of``, with ``signals`` as its latest values, best allowed first.

        ``as_of`` is the served run's: the effect model was fitted and the run's rules checked as of
        then, and the book holds nothing later, so features and rules (eligibility, cooldowns, caps,
        plays in flight) are those of the run with the fresh values seen just before it. At a later
        time every cooldown of the book's touches would have run out, and an action the run
        blocked could be chosen; what happened since the run is the online rules' part
        (:class:`ContactRules`), checked at the decision's own time.

        Raises
        ------
        NotFoundError
            If the book has no such account.
        """
        book, rows = self.book, self.rows
        accounts = rows["accounts"].of(account_id)
        if accounts.height == 0:
            raise NotFoundError(f"no account {account_id!r} in the server's book; fresh signals need it")
        # A fresh value is seen just before the decision time (features read ts < as_of).
        seen = as_of - timedelta(microseconds=1)
        fresh = pl.DataFrame(
            {
                "account_id": [account_id] * len(signals),
                "ts": [seen] * len(signals),
                "name": list(signals),
                "value": [float(v) for v in signals.values()],
            }
        )
        columns = book.signals.schema
        fresh = fresh.select(
            [
                (pl.col(c) if c in fresh.columns else pl.lit(None)).cast(columns[c]).alias(c)
                for c in book.signals.columns
            ]
        )
        touches = rows["touches"].of(account_id)
        sub = Book(
            accounts, pl.concat([rows["signals"].of(account_id), fresh]), touches, rows["outcomes"].of(account_id)
        )
        snapshot = compute_features(sub, as_of, playbook=self.playbook, vocabulary=self.vocabulary)
        projection = self.model.project(snapshot)
        values = projection.values
        rules = check_rules(snapshot, touches, self.playbook, as_of, feature_schema(snapshot))
        # The playbook's candidates (action × variant) valued as the run values them: a variant
        # takes the model's arm of its own when there is one, else its action's with its own cost.
        costs = {a.id: a.cost_usd for a in self.playbook.actions}
        v, lo, hi = (m[0] for m in value_matrices(values, [account_id], rules.candidates, action_cost_usd=costs))
        # Flagged as the run flags its receipts: by the arm a candidate is valued by (as value_matrices takes it).
        arms = set(values.get_column("action_id").cast(pl.String).unique().to_list())
        flagged = set(projection.flagged_actions)
        out = []
        for k, c in enumerate(rules.candidates):
            code = Why(int(rules.why[0, k]))
            projected = bool(np.isfinite(v[k]))
            if code != Why.ALLOWED:
                why, reason = code.code, rules.reason(self.playbook, 0, k)
            elif not projected:  # never chosen, as in the run
                why, reason = "rule", "the models have no projection for this action"
            else:
                why, reason = "lower_value", ""
            value = float(v[k]) if projected else 0.0
            arm = c.key if c.variant is not None and c.key in arms else c.action_id
            pooled = projected and arm in flagged
            out.append(
                Option(c.action_id, c.variant, value, _number(lo[k], value), _number(hi[k], value), why, reason, pooled)
            )
        out.append(Option(NO_ACTION, None, 0.0, 0.0, 0.0, "lower_value", "doing nothing is always possible"))
        out.sort(key=lambda o: -o.value_usd)
        # The best allowed option plays the part of the run's choice (first, without a reason).
        first = next(o for o in out if not o.blocked_by_run or o.action_id == NO_ACTION)
        chosen = Option(
            first.action_id, first.variant, first.value_usd, first.low_usd, first.high_usd, pooled=first.pooled
        )
        return (chosen, *(o for o in out if o is not first))


# ---- choice -----------------------------------------------------------------------------------


def thompson_probabilities(
    mean: NDArray[np.float64], sd: NDArray[np.float64], allowed: NDArray[np.bool_], rng: np.random.Generator, draws: int
) -> NDArray[np.float64]:
    """Probability of each option being the argmax of one normal draw, with one pseudo-draw spread over the allowed.

    The pseudo-draw keeps every allowed option's probability above 0, which inverse-propensity
    estimators need. The mask is applied to the draws, after the noise, and a draw that is not a
    number (NaN) counts as worth least: an option not allowed has probability 0 whatever its mean
    and sd, and a draw in which no allowed option has a number is left out.

    Examples
    --------
    >>> p = thompson_probabilities(
    ...     np.array([10.0, 0.0, 5.0]), np.array([1.0, 0.0, 1.0]), np.array([True, True, False]),
    ...     np.random.default_rng(0), 100,
    ... )
    >>> p.round(3).tolist(), bool(abs(p.sum() - 1) < 1e-12)
    ([0.995, 0.005, 0.0], True)
    """
    k = mean.shape[0]
    n_allowed = int(allowed.sum())
    if n_allowed == 0:
        raise ValueError("no option is allowed: doing nothing always should be")
    sample = mean[None, :] + rng.standard_normal((draws, k)) * sd[None, :]
    sample = np.where(allowed[None, :] & ~np.isnan(sample), sample, -np.inf)
    top = sample.argmax(axis=1)
    drawn = sample[np.arange(draws), top] > -np.inf
    counts = np.bincount(top[drawn], minlength=k).astype(float)
    probs = counts + np.where(allowed, 1.0 / n_allowed, 0.0)
    out: NDArray[np.float64] = probs / probs.sum()
    return out


def best_allowed(mean: NDArray[np.float64], allowed: NDArray[np.bool_]) -> int:
    """The index of the allowed option worth most; a value that is not a number (NaN) counts as worth least.

    Never an option not allowed: if no allowed option has a number, the first allowed one.

    Examples
    --------
    >>> best_allowed(np.array([np.nan, 5.0, 9.0]), np.array([True, True, False]))
    1
    >>> best_allowed(np.array([9.0, np.nan]), np.array([False, True]))
    1
    """
    scores = np.where(allowed & ~np.isnan(mean), mean, -np.inf)
    best = int(np.argmax(scores))
    if allowed[best] and scores[best] > -np.inf:
        return best
    return int(np.flatnonzero(allowed)[0])


def draw_index(probs: NDArray[np.float64], rng: np.random.Generator) -> int:
    """An index drawn with probabilities ``probs``: one uniform draw against their running sum.

    What ``rng.choice(len(probs), p=probs)`` does, without its checks of ``probs`` (a tenth of a
    decision's time); an option of probability 0 is never drawn.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sorted({draw_index(np.array([0.0, 0.7, 0.0, 0.3]), rng) for _ in range(200)})
    [1, 3]
    """
    cdf = np.cumsum(probs)
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(probs) - 1)


@dataclass(frozen=True)
class DecideRequest:
    """One account to decide for."""

    account_id: str
    signals: Mapping[str, float] = field(default_factory=dict)
    """Fresh context signals (signal name → latest value), logged with the decision."""
    request_id: str | None = None
    """Client id of the request: asking again with it returns the decision already made."""


@dataclass(frozen=True)
class DecideGroup:
    """Requests decided and logged all or nothing (one API call's accounts), with their key and audit entries."""

    requests: Sequence[DecideRequest]
    key_id: str | None = None
    audit: Sequence[AuditEntry] = ()


class OnlineDecider:
    """Decisions for single accounts from the served run, with rules, exploration and online learning.

    Parameters
    ----------
    store
        Where runs, decisions, feedback and policy versions live.
    playbook
        The playbook the served run was made under (checked by its hash).
    refresh_s
        :meth:`maybe_refresh` looks for a newer run or another active policy version at most this
        often.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> from nextmove.store import open_store
    >>> with open_store("sqlite://") as store:
    ...     decider = OnlineDecider(store, load_playbook())
    ...     decider.ready
    False
    """

    def __init__(self, store: Store, playbook: Playbook, *, refresh_s: float = 5.0, book: Book | None = None) -> None:
        self.store = store
        self.playbook = playbook
        self.book = book
        self._fresh: FreshScorer | None = None
        self._fresh_lock = threading.Lock()
        self._unloadable: str | None = None
        """The served run's model id that could not be loaded (gone, or not this playbook's): not tried again."""
        self.refresh_s = refresh_s
        self.learner = OnlineLearner(level=0.9)
        self._feedback_mark: datetime | None = None
        """The latest ``received_at`` of the outcome events read (None: not read yet, :meth:`replay_feedback`)."""
        self._feedback_read: dict[str, datetime] = {}
        """Outcome events read within :data:`FEEDBACK_SYNC_SLACK` of the mark, learned from or not: not read again."""
        self._snapshot: PolicySnapshot | None = None
        self._problem: str | None = "no run loaded yet"
        self._checked_at = 0.0
        self._refresh_lock = threading.Lock()
        # Per-account locks, shared with the store's other deciders here and in other processes
        # (two servers on one PostgreSQL store), so that one account's decisions are made one at a time.
        self._locks = account_locks(store)
        self._reserved: dict[str, OnlineCapacity] = {}
        """Decisions made and not logged yet, and the capacity they were counted in (:meth:`_settle`)."""
        self._local = threading.local()
        self._playbook_hash = playbook.content_hash()
        self.rules = ContactRules(playbook)
        self._longest_window = _longest_rule_window(playbook)
        self.refresh()
        self.replay_feedback()

    # --- which run is served -----------------------------------------------------------------

    @property
    def snapshot(self) -> PolicySnapshot | None:
        """The snapshot being served (None before any usable run)."""
        return self._snapshot

    @property
    def ready(self) -> bool:
        """Whether decisions can be made."""
        return self._snapshot is not None and self._problem is None

    @property
    def problem(self) -> str | None:
        """Why the decider is not ready, in words (None when it is)."""
        return self._problem

    def refresh(self) -> bool:
        """Serve the run of the active policy version (else :func:`servable_run`) if it changed.

        The new snapshot replaces the old one in one assignment: a decision in progress finishes
        on the snapshot it started with. Returns whether the served run changed. Then learns from
        the outcome events other processes sharing the store received since (:meth:`_learn_new_feedback`).
        """
        with self._refresh_lock:
            changed = self._refresh_run()
            if self._feedback_mark is not None:
                self._learn_new_feedback()
            return changed

    def _refresh_run(self) -> bool:
        """What :meth:`refresh` does to the served run; call under the refresh lock."""
        import time

        self._checked_at = time.monotonic()
        version = self.store.active_model(POLICY_MODEL_KIND)
        run: RunRecord | None
        if version is not None:
            run_id = _policy_run_id(version)
            run = self.store.get_run(run_id)
        else:
            run = servable_run(self.store)
        if run is None:
            self._problem = (
                "the store has no succeeded run to serve: run the batch first (POST /v1/runs, or `nextmove run`)"
            )
            return False
        current = self._snapshot
        version_id = version.model_id if version is not None else None
        if current is not None and current.run.run_id == run.run_id and current.policy_version == version_id:
            if current.capacity is not None:  # what other processes sharing the store decided since
                current.capacity.sync(self.store)
            return False
        if run.playbook_hash != self._playbook_hash:
            self._problem = (
                f"run {run.run_id!r} was made under playbook {run.playbook_hash} but the server's playbook is "
                f"{self._playbook_hash}: start the server with the playbook the run used (--playbook), "
                "or start a run with this playbook"
            )
            self._snapshot = None
            return True
        snap = PolicySnapshot.load(self.store, run, version_id)
        snap.capacity = OnlineCapacity.load(self.store, self.playbook, snap)
        self._snapshot = snap
        self._problem = None
        return True

    def maybe_refresh(self) -> bool:
        """:meth:`refresh` if the last check is older than ``refresh_s``."""
        import time

        if time.monotonic() - self._checked_at < self.refresh_s:
            return False
        return self.refresh()

    def _require_snapshot(self) -> PolicySnapshot:
        snap = self._snapshot
        if snap is None or self._problem is not None:
            raise DeciderNotReadyError(self._problem or "no run loaded yet")
        return snap

    # --- reading -------------------------------------------------------------------------------

    def account(self, account_id: str) -> AccountView:
        """The served run's view of ``account_id``.

        Raises
        ------
        NotFoundError
            If the served run has no recommendation for it.
        DeciderNotReadyError
            If no run is served.
        """
        return _view_of(self._require_snapshot(), account_id)

    def owner_of(self, account_id: str) -> str | None:
        """The owner of ``account_id`` in the served run (None if unknown or no run is served)."""
        snap = self._snapshot
        if snap is None:
            return None
        view = snap.account(account_id)
        return None if view is None else view.owner

    # --- deciding ------------------------------------------------------------------------------

    def decide(
        self,
        requests: Sequence[DecideRequest],
        *,
        key_id: str | None = None,
        now: datetime | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> list[DecisionRecord]:
        """Decide for each request's account and log every decision (with ``audit``) in one transaction.

        Raises
        ------
        NotFoundError
            If an account is not in the served run (nothing is logged then).
        DeciderNotReadyError
            If no run is served.
        StoreError
            If the store fails, or the accounts' locks across processes were lost before the
            decisions were logged (nothing is logged then; retrying is safe).
        """
        snap = self._require_snapshot()
        when = now or utcnow()
        views = [self._view(snap, r) for r in requests]
        stripes = sorted({self._stripe(r.account_id) for r in requests})
        # Per-account locks (taken in a fixed order, in this process and across the store's
        # processes) keep two concurrent decisions for one account from both seeing no play in
        # flight and both logging one: held from before the read until the decision is committed.
        held: list[int] = []
        locks = self._locks  # the set locked is the set unlocked, even if close() runs meanwhile
        try:
            for i in stripes:
                locks.lock(i)
                held.append(i)
            # A retried request_id gets the decision logged first (log_decisions returns it, and
            # _decide_in_order makes no draw for it when the call names its account again).
            made = self._decide_in_order(snap, views, requests, key_id, when)
            logged: list[DecisionRecord] = []
            try:
                locks.check_held(held)
                logged = self.store.log_decisions(made, audit=audit, fence=locks.fence(held))
            finally:
                self._settle(made, logged)
            return logged
        finally:
            locks.unlock(held)

    def decide_groups(
        self, groups: Sequence[DecideGroup], *, now: datetime | None = None
    ) -> list[list[DecisionRecord] | NextmoveError]:
        """Decide for several independent groups of requests, logging them together: one commit for many.

        Each group is all or nothing, as one call of :meth:`decide`: its result is its decisions,
        or the error that stopped it (nothing of it is logged then); one group's error does not
        stop the others. The groups' decisions and audit entries are logged in one transaction,
        unless a group has an account already decided in it: that transaction is committed first,
        so that the group's rules see the earlier decision exactly as if it had been logged alone.
        If the shared transaction fails, each group is logged again alone, so that one group's
        bad record fails only that group.
        """
        when = now or utcnow()
        results: list[list[DecisionRecord] | NextmoveError | None] = [None] * len(groups)
        pending: list[tuple[int, list[DecisionRecord]]] = []
        accounts: set[str] = set()
        held: set[int] = set()
        locks = self._locks  # the set locked is the set unlocked, even if close() runs meanwhile

        def release() -> None:
            # Forget the stripes before letting them go: a release that fails half-way has still
            # let go of this process's locks, which must not be released twice.
            stripes = list(held)
            held.clear()
            locks.unlock(stripes)

        def flush() -> None:
            try:
                try:
                    locks.check_held(held)
                except StoreError as exc:  # the pending groups decided without their locks: none is logged
                    for g, _ in pending:
                        results[g] = exc
                else:
                    self._log_groups(groups, pending, results, locks)
            finally:
                for g, made in pending:
                    result = results[g]
                    self._settle(made, result if isinstance(result, list) else [])
                pending.clear()
                accounts.clear()
                release()

        try:
            for g, group in enumerate(groups):
                ids = {r.account_id for r in group.requests}
                if not ids.isdisjoint(accounts):
                    flush()
                self._hold(locks, ids, held, flush)
                try:
                    snap = self._require_snapshot()
                    views = [self._view(snap, r) for r in group.requests]
                    made = self._decide_in_order(snap, views, group.requests, group.key_id, when)
                except NextmoveError as exc:
                    results[g] = exc
                    continue
                pending.append((g, made))
                accounts |= ids
            flush()
        finally:
            release()
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _hold(self, locks: AccountLocks, account_ids: set[str], held: set[int], flush: Callable[[], None]) -> None:
        # Take the accounts' stripes without waiting while others are held (taking them out of
        # order could deadlock with a concurrent decide()); if one is busy, log and release what
        # is held first, then wait for them in the fixed order.
        wanted = sorted({self._stripe(a) for a in account_ids} - held)
        taken: list[int] = []
        for i in wanted:
            try:
                free = locks.try_lock(i)
            except BaseException:
                locks.unlock(taken)
                raise
            if not free:
                locks.unlock(taken)
                flush()
                for k in sorted({self._stripe(a) for a in account_ids}):
                    locks.lock(k)
                    held.add(k)
                return
            taken.append(i)
        held.update(taken)

    def close(self) -> None:
        """Let go of the store's shared account locks (closed once no decider of the process holds them)."""
        self._locks = AccountLocks(None)

    def _log_groups(
        self,
        groups: Sequence[DecideGroup],
        pending: Sequence[tuple[int, list[DecisionRecord]]],
        results: list[list[DecisionRecord] | NextmoveError | None],
        locks: AccountLocks,
    ) -> None:
        if not pending:
            return
        stripes = {self._stripe(r.account_id) for g, _ in pending for r in groups[g].requests}
        try:
            logged = self.store.log_decisions(
                [d for _, made in pending for d in made],
                audit=[a for g, _ in pending for a in groups[g].audit],
                fence=locks.fence(stripes),
            )
        except NextmoveError as exc:
            if len(pending) == 1:
                results[pending[0][0]] = exc
                return
            for one in pending:
                self._log_groups(groups, [one], results, locks)
            return
        start = 0
        for g, made in pending:
            results[g] = logged[start : start + len(made)]
            start += len(made)

    def use_book(self, book: Book | None) -> None:
        """Rescore with ``book`` from now on (the server read its book again); a rescoring under way ends on its own."""
        with self._fresh_lock:
            self.book = book
            self._fresh = None

    def fresh_scorer(self, snap: PolicySnapshot | None = None) -> FreshScorer | None:
        """The rescorer of accounts with fresh signals, with the served run's own effect model.

        Needs the server's book and the effect model the served run (``snap``'s, default the one
        served now) projected with, as its summary names it (``model_version``), fitted under the
        playbook. Not the active effect model: that may be another run's (a later run's, fitted on
        data after the served run's ``as_of``, or one promoted elsewhere), and a rescored decision
        must be that run's decision.
        """
        if self.book is None:
            return None
        snap = snap or self._snapshot
        model_id = None if snap is None else snap.run.summary.get("model_version")
        if not isinstance(model_id, str):
            return None
        from nextmove.engine.run import load_effect_model

        with self._fresh_lock:
            if model_id == self._unloadable:
                return None  # tried already: not read again on every decision that brings signals
            if self._fresh is None or self._fresh.model_id != model_id:
                try:
                    model, model_id = load_effect_model(self.store, self.playbook, model_id)
                except (NotFoundError, ConfigError) as exc:
                    self._unloadable = model_id
                    logger.warning("decisions with fresh signals use the served run's projection: %s", exc)
                    return None  # the run's model is gone, not this playbook's or older: the run's projection serves
                self._fresh = FreshScorer(self.book, self.playbook, model, model_id)
            return self._fresh

    def _rng(self) -> np.random.Generator:
        # One generator per thread (a Generator is not thread-safe), seeded from the OS.
        rng: np.random.Generator | None = getattr(self._local, "rng", None)
        if rng is None:
            rng = self._local.rng = np.random.default_rng()
        return rng

    def _since(self, run: RunRecord, now: datetime) -> datetime:
        # Touches before the run were in its rule check; only later ones (and at most as far back
        # as the longest rule window) can change what is allowed now.
        return max(run.as_of or run.created_at, now - self._longest_window)

    def _stripe(self, account_id: str) -> int:
        return self._locks.stripe(account_id)

    def _view(self, snap: PolicySnapshot, request: DecideRequest) -> AccountView:
        view = _view_of(snap, request.account_id)
        if not request.signals:
            return view
        scorer = self.fresh_scorer(snap)
        if scorer is None:
            return view
        options = scorer.options(request.account_id, request.signals, snap.run.as_of or snap.run.created_at)
        return AccountView(view.recommendation, options, rescored=True, model_version=scorer.model_id)

    def _decide_in_order(
        self,
        snap: PolicySnapshot,
        views: Sequence[AccountView],
        requests: Sequence[DecideRequest],
        key_id: str | None,
        now: datetime,
    ) -> list[DecisionRecord]:
        """One decision per request, in order: an account named twice sees its earlier decision of the same call.

        The call's decisions are logged together after all are made, so a later copy of an account
        is given its earlier copy's play as in flight, as if the copies had been sent one after another.

        A retry (a ``request_id`` logged before for the account, or given earlier in the call) of an
        account the call names again gets the decision made for that ``request_id``, with no draw of
        its own: a fresh draw would be dropped when logging (:meth:`~nextmove.store.Store.log_decisions`
        returns the decision logged first), yet the later copies would be decided against it, a play
        in flight that is never logged. The logged decision is in the store's activity already.
        """
        made: list[DecisionRecord] = []
        earlier: dict[str, list[ActivityRecord]] = {}
        given = self._logged_retries(requests)
        try:
            for request, view in zip(requests, views, strict=True):
                rid = request.request_id
                known = None if rid is None else given.get(rid)
                if known is not None and known.account_id == request.account_id:
                    conflict = request_id_conflict(known, request.account_id, request.signals)
                    if conflict is not None:  # the same account, other fresh signals: not a retry
                        raise conflict
                    made.append(known)
                    continue
                decision = self._decide_one(snap, view, request, key_id, now, earlier.get(view.account_id, ()))
                made.append(decision)
                if rid is not None:
                    given.setdefault(rid, decision)  # a copy of it later in the call is the same request
                earlier.setdefault(view.account_id, []).append(_activity_of(decision))
        except BaseException:
            self._settle(made, [])  # none of the call's decisions will be logged
            raise
        return made

    def _settle(self, made: Sequence[DecisionRecord], logged: Sequence[DecisionRecord]) -> None:
        """Keep in the capacity counted what of ``made`` was ``logged``; give back the rest.

        The rest: decisions not logged (the store failed, the locks were lost) and fresh draws for a
        retried ``request_id``, which the store answers with the decision logged first (counted then).
        """
        kept = {d.decision_id for d in logged}
        for d in made:
            capacity = self._reserved.pop(d.decision_id, None)
            if capacity is not None:
                capacity.settle(d.decision_id, d.decision_id in kept)

    def _logged_retries(self, requests: Sequence[DecideRequest]) -> dict[str, DecisionRecord]:
        """The decisions logged before for the ``request_id`` of requests whose account the call names again.

        Only those: a retry of an account named once is settled by logging (it returns the decision
        logged first), and nothing else in the call is decided against it. Read under the accounts'
        locks, so no other decider logs one of these accounts' decisions meanwhile.
        """
        counts: dict[str, int] = {}
        for r in requests:
            counts[r.account_id] = counts.get(r.account_id, 0) + 1
        wanted: dict[str, set[str]] = {}
        for r in requests:
            if r.request_id is not None and counts[r.account_id] > 1:
                wanted.setdefault(r.account_id, set()).add(r.request_id)
        out: dict[str, DecisionRecord] = {}
        for account_id, request_ids in wanted.items():
            for d in self.store.decisions(account_id=account_id):
                if d.request_id in request_ids:
                    out[d.request_id] = d
        return out

    def _decide_one(
        self,
        snap: PolicySnapshot,
        view: AccountView,
        request: DecideRequest,
        key_id: str | None,
        now: datetime,
        earlier: Sequence[ActivityRecord] = (),
    ) -> DecisionRecord:
        options = view.options
        activity = self.store.activity(view.account_id, self._since(snap.run, now))
        touches = online_touches([*activity, *earlier] if earlier else activity)
        blocks = self.rules.blocks(options, touches, now)
        holds = self._holds(snap, view, now)
        if holds:  # what the account's users said comes first, and is the reason shown
            blocks = [h or b for h, b in zip(hold_blocks(options, holds), blocks, strict=True)]
        allowed = view.run_allowed & np.array([b is None for b in blocks]) if touches or holds else view.run_allowed
        shift_z, sd_z, counts = self.learner.shifts(view.keys)
        shift_z = np.minimum(shift_z, 0.0)  # lowering corrections only (docs/learning.md: both ways cost value)
        spreads = np.maximum(view.highs - view.lows, 0.0) / (2.0 * self.learner.z)
        mean = view.values + shift_z * spreads
        sd = spreads * np.sqrt(1.0 + sd_z**2)

        decision_id = uuid.uuid4().hex
        rng = self._rng()
        rec = view.recommendation
        # The variant of its default the run's control cohort gets (an action with variants has no bare key).
        keys = list(view.keys)
        default_key = _default_key(self.playbook, rec.default_action_id or self.playbook.default_action_for_stage(None))
        default = keys.index(default_key) if view.in_control and default_key in keys else None  # the control's
        capacity = snap.capacity
        if capacity is not None:
            # Another process's play for the account (it answered first) is counted before this
            # decision releases the account's recommendation: else that would be released twice.
            capacity.count_logged(view.account_id, view.owner, _run_key(rec), activity)
        spent: list[tuple[str, str] | None] = []
        guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext() if capacity is None else capacity.lock
        with guard:  # from what is left to what the choice uses: no other decision of the process in between
            if capacity is not None:
                # This decision replaces the account's recommendation: what that uses counts as left.
                spent = capacity.blocks(view.account_id, view.owner, _run_key(rec), keys)
                if any(spent):
                    allowed = allowed & np.array([c is None for c in spent])
            best = best_allowed(mean, allowed)
            if view.in_control:
                choice = default if default is not None and allowed[default] else keys.index(NO_ACTION)
                probs = np.zeros(len(options))
                probs[choice] = 1.0
                arm = "control"
            else:
                # As the run: a share epsilon explores (a draw of q), the rest gets the best allowed option.
                q, epsilon = self._exploration(mean, sd, allowed, rng)
                probs = epsilon * q
                probs[best] += 1.0 - epsilon
                choice = draw_index(probs, rng)
                # Explored with probability epsilon: any option but the best, and the best when the draw gave it.
                explores = choice != best or rng.random() * probs[best] < epsilon * q[best]
                arm = "explore" if explores else "model"
            if capacity is not None:
                capacity.take(decision_id, view.account_id, view.owner, _run_key(rec), keys[choice], now)
                self._reserved[decision_id] = capacity
        chosen = options[choice]
        shown = blocks
        if any(spent):  # the rules' reasons first, as in the run
            shown = [b or c for b, c in zip(blocks, _capacity_rows(spent, mean, choice, default), strict=True)]
            blocks = [b or c for b, c in zip(blocks, spent, strict=True)]
        evidence = self._receipt(view, options, chosen, arm, float(probs[choice]), options[best], blocks, snap, mean)
        alternatives = _alternatives(
            options,
            choice,
            shown,
            mean,
            allowed,
            run_key=_run_key(rec),
            held=self._held_words(arm),
            best=best,
            best_name=_option_name(self.playbook, options[best]),
        )
        context: dict[str, Any] = {
            "run_id": snap.run.run_id,
            "policy_version": snap.policy_version,
            # The run's own projection of the choice, before online corrections: what learn() compares with.
            "projected_value_usd": chosen.value_usd,
            "projected_low_usd": chosen.low_usd,
            "projected_high_usd": chosen.high_usd,
            "signals": {str(k): float(v) for k, v in request.signals.items()},
            "rescored": view.rescored,
            "propensities": {o.key: round(float(p), 6) for o, p in zip(options, probs, strict=True)},
            "online_corrections_z": {
                k: round(float(z), 4) for k, z, n in zip(view.keys, shift_z, counts, strict=True) if n
            },
            "method": "control" if view.in_control else self.playbook.exploration.method,
        }
        return DecisionRecord(
            decision_id=decision_id,
            account_id=view.account_id,
            action_id=chosen.action_id,
            variant=chosen.variant,
            arm=arm,
            propensity=float(min(max(probs[choice], 0.0), 1.0)),
            expected_value_usd=float(mean[choice]),
            value_low_usd=float(chosen.low_usd + mean[choice] - chosen.value_usd),
            value_high_usd=float(chosen.high_usd + mean[choice] - chosen.value_usd),
            ts=now,
            run_id=snap.run.run_id,
            # The model that projected the options: the rescorer's when it scored them.
            model_version=view.model_version or rec.model_version,
            owner=rec.owner,
            context=context,
            evidence=evidence,
            alternatives=alternatives,
            key_id=key_id,
            request_id=request.request_id,
        )

    def _holds(self, snap: PolicySnapshot, view: AccountView, now: datetime) -> list[FeedbackHold]:
        """What the account's snoozes and dismissals hold back now, sent before the run or since.

        One store read on the driver's own cursor (:meth:`~nextmove.store.Store.hold_events`), with the
        actions of the decisions and recommendations the events name. Only events at or before ``now``
        count (a decision backdated, or a client's clock ahead of the server's), as in the batch run.
        """
        items = self.store.hold_events(view.account_id, until=now)
        if not items:
            return []

        def answered(event: FeedbackEvent) -> str | None:
            # A dismissal that names nothing dismisses the recommendation it answers: of the run served then.
            run_id = answering_run(event.received_at, snap.run, snap.promoted_runs)
            if run_id is None or run_id == snap.run.run_id:
                return view.recommendation.action_id
            found = self.store.recommendations(run_id, account_ids=[view.account_id])
            return found[0].action_id if found else None

        actions = {i.event.event_id: hold_action(i, partial(answered, i.event)) for i in items}
        return feedback_holds([i.event for i in items], self.playbook, now, action_of=lambda e: actions.get(e.event_id))

    def _held_words(self, arm: str) -> str:
        """Why an allowed option worth more than the choice was not given, as the run words it."""
        if arm == "control":
            return (
                f"held back: this account is in the control cohort ({self.playbook.control_fraction:.0%} of "
                "accounts), which follows the lifecycle default"
            )
        return f"held back: this decision explores ({self.playbook.exploration.method} draw)"

    def _exploration(
        self, mean: NDArray[np.float64], sd: NDArray[np.float64], allowed: NDArray[np.bool_], rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], float]:
        """The exploration draw's probabilities ``q`` over the options, and the share ``epsilon`` of decisions it makes.

        As the run's (:func:`nextmove.decide.policy.decide`): under ``thompson`` and ``epsilon``
        alike a share ``epsilon`` of the decisions outside the control cohort explores, drawing an
        allowed option by Thompson sampling from the value intervals (``thompson``) or uniformly
        (``epsilon``); under ``none`` no decision explores. Each option's probability is then
        ``(1 − ε)·[best] + ε·q``, the run's propensities outside its control cohort.
        """
        method = self.playbook.exploration.method
        if method == "thompson":
            q = thompson_probabilities(mean, sd, allowed, rng, THOMPSON_DRAWS)
        else:
            q = allowed / max(int(allowed.sum()), 1)
        return q, 0.0 if method == "none" else float(self.playbook.exploration.epsilon)

    def _receipt(
        self,
        view: AccountView,
        options: Sequence[Option],
        chosen: Option,
        arm: str,
        propensity: float,
        model_best: Option,
        blocks: Sequence[tuple[str, str] | None],
        snap: PolicySnapshot,
        mean: NDArray[np.float64],
    ) -> dict[str, Any]:
        rec = view.recommendation
        base = dict(rec.evidence)
        same_as_run = chosen.key == options[0].key and not view.rescored
        i = options.index(chosen)
        default = rec.default_action_id
        run_key = _run_key(rec)
        r = next((k for k, o in enumerate(options) if o.key == run_key), None)
        run_choice = None if r is None else (options[r], blocks[r])
        summary = _summary(self.playbook, view, chosen, arm, model_best, run_choice, float(mean[i]))
        return {
            "schema": 1,
            "action_id": chosen.action_id,
            "variant": chosen.variant,
            "arm": arm,
            "propensity": round(propensity, 6),
            "model_action_id": model_best.action_id,
            "default_action_id": default,
            "differs_from_default": default is not None and chosen.action_id != default,
            # The run's words while the decision is the run's; else said again of this decision.
            "default_why": (
                base.get("default_why", "")
                if same_as_run and arm == rec.arm
                else _default_why(self.playbook, view, options, chosen, arm, blocks, mean, options.index(model_best))
            ),
            # In cents, as the run's receipts have them.
            "value_usd": round(float(mean[i]), 2),
            "value_low_usd": round(chosen.low_usd + float(mean[i]) - chosen.value_usd, 2),
            "value_high_usd": round(chosen.high_usd + float(mean[i]) - chosen.value_usd, 2),
            # Per-objective projections and comparables are the run's: its receipt's for its own choice,
            # else the runner-up's projection (runs since runner-ups carry one), and the run's comparables
            # that took the same action (another variant of the run's choice).
            "projected": base.get("projected", []) if same_as_run else _run_projection(view, chosen),
            "signals": base.get("signals", []),
            "comparables": base.get("comparables", []) if same_as_run else _run_comparables(view, chosen),
            "summary": summary,
            # Valued at the pooled effect, for want of a history of its own: as the run's receipts flag it.
            "pooled": chosen.pooled,
            "run_id": snap.run.run_id,
            "run_action_id": rec.action_id,
            "rescored_with_fresh_signals": view.rescored,
        }

    # --- learning ------------------------------------------------------------------------------

    def learn(self, events: Sequence[FeedbackEvent]) -> int:
        """Move the online corrections with the outcome events that name a decision and a realised value.

        Returns how many events counted (an event counts once, however often it is sent). An
        outcome dated before the decision it names cannot be that decision's, and counts nothing
        (it stays stored); nor does one whose value is absurd (:meth:`OnlineLearner.observe`).
        """
        counted = 0
        wanted = [e for e in events if _learnable(e)]
        for e in wanted:
            try:
                decision = self.store.get_decision(str(e.payload["decision_id"]))
            except NotFoundError:
                continue
            if dated_before(e.ts, decision.ts, whole_day=e.ts_is_date):
                continue
            realised = _realised(e)
            assert realised is not None
            key = decision.action_id if decision.variant is None else f"{decision.action_id}:{decision.variant}"
            ctx = decision.context
            projected = _number(ctx.get("projected_value_usd"), decision.expected_value_usd)
            low = _number(ctx.get("projected_low_usd"), _number(decision.value_low_usd, projected))
            high = _number(ctx.get("projected_high_usd"), _number(decision.value_high_usd, projected))
            counted += self.learner.observe(
                e.event_id, key, realised_usd=realised, projected_usd=projected, low_usd=low, high_usd=high
            )
            contact = ctx.get("contact")
            if isinstance(contact, str) and contact:
                # The same outcome once more, for the action's gap in the decision's contact context;
                # the event id differs so that the learner counts it once there too.
                self.learner.observe(
                    f"{e.event_id}{CONTEXT_SEPARATOR}{contact}",
                    f"{key}{CONTEXT_SEPARATOR}{contact}",
                    realised_usd=realised,
                    projected_usd=projected,
                    low_usd=low,
                    high_usd=high,
                )
        return counted

    def learn_stored(self, events: Sequence[FeedbackEvent], newly_stored: int) -> int:
        """:meth:`learn` from what the store holds under the ids of ``events``, just added with ``add_feedback``.

        ``newly_stored`` is what ``add_feedback`` returned. An id stored before keeps the body stored
        then (a retry with another body stores nothing), so the corrections move only with stored
        events, exactly as :meth:`replay_feedback` rebuilds them after a restart. When every id was
        new, the events stored are the first copy of each; otherwise the stored ones are read back.
        """
        first: dict[str, FeedbackEvent] = {}
        for e in events:
            first.setdefault(e.event_id, e)
        wanted = [e for e in first.values() if _learnable(e) and not self.learner.has_seen(e.event_id)]
        if not wanted:
            return 0
        if newly_stored == len(first):
            return self.learn(wanted)
        ids = {e.event_id for e in wanted}
        stored: list[FeedbackEvent] = []
        for account_id in sorted({e.account_id for e in wanted}):
            stored.extend(e for e in self.store.feedback(account_id=account_id) if e.event_id in ids)
        return self.learn(stored)

    def replay_feedback(self) -> int:
        """Rebuild the online corrections from every stored outcome event (at start-up)."""
        started = utcnow()
        events = self.store.feedback(kind="outcome")
        counted = self.learn(events)
        with self._refresh_lock:
            self._feedback_mark = max((as_utc(e.received_at) for e in events if e.received_at), default=started)
            self._remember_read(events)
        return counted

    def _learn_new_feedback(self) -> int:
        """Learn from the outcome events the store received since the last read: other processes'; how many counted.

        Several servers on one store each learn from the events sent to them at once, and from the
        others' at each refresh (every ``refresh_s``): one read, on the events' ``received_at`` index,
        from :data:`FEEDBACK_SYNC_SLACK` before the latest one read on (an event is stamped a moment
        before it is committed). Events counted before (this process's own) are not counted again.
        Does nothing before :meth:`replay_feedback` (at start-up) has read them all. Call under the refresh lock.
        """
        mark = self._feedback_mark
        if mark is None:
            return 0
        events = self.store.feedback(received_since=mark - FEEDBACK_SYNC_SLACK, kind="outcome")
        new = [e for e in events if e.event_id not in self._feedback_read and not self.learner.has_seen(e.event_id)]
        counted = self.learn(new) if new else 0
        self._feedback_mark = max((as_utc(e.received_at) for e in events if e.received_at), default=mark)
        self._remember_read(events)
        return counted

    def _remember_read(self, events: Iterable[FeedbackEvent]) -> None:
        # Only what the next read can return again.
        assert self._feedback_mark is not None
        horizon = self._feedback_mark - FEEDBACK_SYNC_SLACK
        read = {e.event_id: as_utc(e.received_at) for e in events if e.received_at}
        self._feedback_read = {i: t for i, t in {**self._feedback_read, **read}.items() if t >= horizon}

    # --- model versions ------------------------------------------------------------------------

    def promote_run(self, run_id: str, *, metrics: Mapping[str, Any] | None = None) -> ModelVersionRecord:
        """Save a ``policy`` version that serves ``run_id``, activate it, and swap it in.

        Raises
        ------
        NotFoundError
            If there is no such run.
        ConfigError
            If the run has not succeeded.
        """
        return promote_run(self.store, run_id, metrics=metrics, then=self.refresh)


SERVABLE_RUNS_SCANNED: Final[int] = 100
"""Succeeded runs :func:`servable_run` looks through, newest first, for one not started with ``promote=False``."""


def servable_run(store: Store) -> RunRecord | None:
    """The run served when no ``policy`` version is active: the newest succeeded run not started with ``promote=False``.

    A run started with ``promote=False`` (``POST /v1/runs``) is served only once promoted
    (:func:`promote_run`), never by being the newest.
    """
    for run in store.list_runs(SERVABLE_RUNS_SCANNED, status="succeeded"):
        if run.params.get("promote", True) is not False:
            return run
    return None


def served_run(store: Store) -> RunRecord | None:
    """The run online decisions come from now: the active ``policy`` version's, else :func:`servable_run`.

    None when there is none, or the active version names no run the store has.
    """
    version = store.active_model(POLICY_MODEL_KIND)
    if version is None:
        return servable_run(store)
    try:
        return store.get_run(_policy_run_id(version))
    except (NotFoundError, DeciderNotReadyError):
        return None


PROMOTE_ATTEMPTS: Final[int] = 20
"""How often :func:`promote_run` and :func:`rollback` try again when another process changed the active
policy version between their read of it and their write: each time, that process's change was made."""


def promote_run(
    store: Store, run_id: str, *, metrics: Mapping[str, Any] | None = None, then: Any = None
) -> ModelVersionRecord:
    """Save and activate a ``policy`` model version that makes online decisions from run ``run_id``.

    The effect model the run fitted (its summary's ``model_version``), if the store has it, becomes
    the active one too: fresh signals are then rescored with the served run's model. The version
    records the policy version it replaces (``metrics["replaces"]``, None when none was active):
    :func:`rollback_policy` goes back to it. Both are activated, and the version saved, in one
    transaction, only if the policy version it replaces is still the active one
    (:meth:`~nextmove.store.Store.activate_models`); else the active one is read again and the
    promotion tried again: two promotions at once end as if made one after the other, the second
    replacing the first, the served run's effect model active.

    Raises
    ------
    NotFoundError
        If there is no such run.
    ConfigError
        If the run has not succeeded, or its receipts were pruned (``nextmove store prune``).
    ConflictError
        If the active policy version changed :data:`PROMOTE_ATTEMPTS` times while promoting.
    """
    from nextmove.engine.run_process import require_succeeded

    run = require_succeeded(store.get_run(run_id), "only a succeeded run can be served")
    refuse_pruned(run)
    # The run's effect model with it: no policy version serves the run with another model.
    effect = _effect_model_of(store, run)
    for _ in range(PROMOTE_ATTEMPTS):
        now = utcnow()
        served = store.active_model(POLICY_MODEL_KIND)
        served_id = None if served is None else served.model_id
        # The version it replaces: what `models rollback` serves again (None: no policy was active).
        record = policy_version(
            run.run_id, run.playbook_hash, run.as_of, {**dict(metrics or {}), "replaces": served_id}, now=now
        )
        try:
            store.activate_models(effect, new=record, expect_active={POLICY_MODEL_KIND: served_id})
        except ModelsChangedError:
            continue  # another promotion, rollback or activation came first: this one replaces it
        if then is not None:
            then()
        return record
    raise ConflictError(
        f"the active policy version changed {PROMOTE_ATTEMPTS} times while run {run_id!r} was being promoted "
        "(other promotions or rollbacks at the same time); nothing was changed by this one: try again"
    )


def _effect_model_of(store: Store, run: RunRecord) -> list[str]:
    """The run's own effect model (its summary's ``model_version``) as a list of one, if the store has it."""
    from nextmove.engine.run import EFFECT_MODEL_KIND

    model_id = run.summary.get("model_version")
    if not isinstance(model_id, str):
        return []
    try:
        model = store.load_model(model_id)
    except NotFoundError:
        return []
    return [model_id] if model.kind == EFFECT_MODEL_KIND else []


def activate_version(
    store: Store, model_id: str, *, expect_active: Mapping[str, str | None] | None = None
) -> ModelVersionRecord:
    """Make ``model_id`` the active version of its kind; returns it, as stored now.

    A ``policy`` version brings its run's own effect model back with it (as :func:`promote_run`
    does), in the same transaction, so that what is served and the active effect model (which
    ``reuse_model`` projects with, and fresh signals are rescored with) stay the same run's. A
    policy version whose run the store no longer has is activated alone. ``expect_active``: as
    :meth:`~nextmove.store.Store.activate_models` takes it.

    Raises
    ------
    NotFoundError
        If there is no model ``model_id``.
    ConfigError
        If it is a policy version of a run whose receipts were pruned (``nextmove store prune``).
    ModelsChangedError
        If an active model is not the one ``expect_active`` names; nothing is changed.
    """
    record = store.load_model(model_id)
    effect: list[str] = []
    if record.kind == POLICY_MODEL_KIND:
        try:
            run = store.get_run(_policy_run_id(record))
        except (NotFoundError, DeciderNotReadyError):
            run = None
        if run is not None:
            refuse_pruned(run)
            effect = _effect_model_of(store, run)
    store.activate_models([*effect, model_id], expect_active=expect_active)
    return store.load_model(model_id)


@dataclass(frozen=True)
class RollbackStep:
    """What ``models rollback`` does: from the active version, to the version it activates."""

    current: ModelVersionRecord
    """The version active now."""
    target: ModelVersionRecord
    """The version a rollback activates."""
    passed_over: tuple[ModelVersionRecord, ...] = ()
    """Versions on the way that serve the same run as ``current`` (a run promoted twice), skipped."""


def rollback_step(store: Store, kind: str = POLICY_MODEL_KIND, *, version_id: str | None = None) -> RollbackStep:
    """The version a rollback from ``version_id`` (default: the active version of ``kind``) activates.

    For a ``policy`` version, the one it replaced when it was promoted (``metrics["replaces"]``),
    i.e. the run served before it, however that one was served (promoted, rolled back to,
    activated): rollbacks walk back through what was served, and promoting an older run again
    and rolling back returns to the run served before that promotion. Versions that serve the same
    run as the active one (a run promoted twice) are passed over, so a rollback always changes
    the run served. A version saved before versions recorded what they replaced, and every other
    kind, goes to the version of its kind saved before it.

    Raises
    ------
    NotFoundError
        If no version of ``kind`` is active (or there is no ``version_id``), or there is nothing to
        roll back to: the version replaced none, is the oldest, or every earlier one serves the
        same run.
    """
    versions = store.list_models(kind)  # newest first
    if version_id is None:
        current = next((v for v in versions if v.active), None)
        if current is None:
            raise NotFoundError(
                f"no active {kind!r} model in the store at {store.url}; `nextmove models list` shows them"
            )
    else:
        current = next((v for v in versions if v.model_id == version_id), None)
        if current is None:
            raise NotFoundError(f"no {kind!r} model {version_id!r} in the store at {store.url}")
    position = {v.model_id: i for i, v in enumerate(versions)}

    def before(version: ModelVersionRecord) -> ModelVersionRecord | None:
        if version.kind == POLICY_MODEL_KIND and "replaces" in version.metrics:
            replaced = version.metrics["replaces"]
            if replaced is None:
                return None
            if isinstance(replaced, str) and replaced in position:
                return versions[position[replaced]]
        older = position[version.model_id] + 1
        return versions[older] if older < len(versions) else None

    served = _served_run_id(current) if kind == POLICY_MODEL_KIND else None
    passed: list[ModelVersionRecord] = []
    target = before(current)
    while target is not None and served is not None and _served_run_id(target) == served:
        passed.append(target)
        target = before(target)
    if target is None:
        active = f"the {'active ' if version_id is None else ''}{kind!r} model {current.model_id!r}"
        if passed:
            why = f"every version served before {active} serves run {served} too"
        elif kind == POLICY_MODEL_KIND and current.metrics.get("replaces", "") is None:
            why = f"{active} was made when no policy version was active"
        else:
            why = f"{active} is the oldest one"
        raise NotFoundError(f"there is nothing to roll back to: {why}")
    return RollbackStep(current, target, tuple(passed))


def rollback_policy(store: Store, kind: str = POLICY_MODEL_KIND) -> ModelVersionRecord:
    """Re-activate the version a rollback goes to (:func:`rollback_step`); servers pick it up on their next refresh.

    Rolling back a ``policy`` version also re-activates the effect model of the run it serves
    (:func:`activate_version`). What :func:`rollback` does, returning the version activated.

    Raises
    ------
    NotFoundError
        If no version of ``kind`` is active, or there is nothing to roll back to.
    """
    return rollback(store, kind)[1]


def rollback(store: Store, kind: str = POLICY_MODEL_KIND) -> tuple[RollbackStep, ModelVersionRecord]:
    """Roll back (:func:`rollback_step`, then :func:`activate_version`), if the active version is still the one left.

    The version is activated only if the version rolled back from is still the active one (one
    transaction); else the step is read again from the version active now: two rollbacks at once
    go back two steps, as one after the other would, and a promotion at the same time is rolled
    back or not, never half. Returns the step taken and the version activated, as stored now.

    Raises
    ------
    NotFoundError
        If no version of ``kind`` is active, or there is nothing to roll back to.
    ConflictError
        If the active version changed :data:`PROMOTE_ATTEMPTS` times while rolling back.
    """
    for _ in range(PROMOTE_ATTEMPTS):
        step = rollback_step(store, kind)
        try:
            record = activate_version(store, step.target.model_id, expect_active={kind: step.current.model_id})
        except ModelsChangedError:
            continue
        return step, record
    raise ConflictError(
        f"the active {kind!r} model changed {PROMOTE_ATTEMPTS} times while rolling back (other promotions or "
        "rollbacks at the same time); nothing was changed by this one: try again"
    )


def _served_run_id(version: ModelVersionRecord) -> str | None:
    """The run a ``policy`` version serves (None: it names none)."""
    try:
        return _policy_run_id(version)
    except DeciderNotReadyError:
        return None


def promoted_run_ids(store: Store) -> set[str]:
    """The runs some ``policy`` version names: promoted once, whether served now or rolled back since."""
    ids: set[str] = set()
    for version in store.list_models(POLICY_MODEL_KIND):
        with contextlib.suppress(DeciderNotReadyError):
            ids.add(_policy_run_id(version))
    return ids


def _policy_run_id(version: ModelVersionRecord) -> str:
    try:
        run_id = json.loads(version.blob.decode()).get("run_id")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        run_id = None
    if not isinstance(run_id, str):
        raise DeciderNotReadyError(
            f"policy model {version.model_id!r} does not name a run; activate another one (`nextmove models list`)"
        )
    return run_id


def _view_of(snap: PolicySnapshot, account_id: str) -> AccountView:
    view = snap.account(account_id)
    if view is None:
        raise NotFoundError(
            f"no account {account_id!r} in run {snap.run.run_id!r}; GET /v1/recommendations lists the accounts"
        )
    return view


def _longest_rule_window(playbook: Playbook) -> timedelta:
    policy = playbook.contact_policy
    longest = max(
        [policy.window_days, *(a.cooldown_days for a in playbook.actions), *(c.window_days for c in policy.caps)]
    )
    return timedelta(days=longest)


def _activity_of(decision: DecisionRecord) -> ActivityRecord:
    """A decision not logged yet, as the contact rules read a logged one (:meth:`~nextmove.store.Store.activity`)."""
    return ActivityRecord(
        source="decision",
        record_id=decision.decision_id,
        kind="decided",
        action_id=decision.action_id,
        ts=decision.ts,
        variant=decision.variant,
    )


CLOCK_SLACK: Final[timedelta] = timedelta(minutes=5)
"""How far before its decision an outcome's time may be and still be that decision's: a client's clock."""


def dated_before(outcome_ts: datetime, decision_ts: datetime, *, whole_day: bool = False) -> bool:
    """Whether an outcome dated ``outcome_ts`` is before the decision made at ``decision_ts``, so not its.

    With ``whole_day``, the outcome was dated by a date alone (sent as ``2026-11-24``:
    :attr:`~nextmove.store.FeedbackEvent.ts_is_date`), which stands for the whole (UTC) day: an outcome
    dated the decision's day is not before it. A time is the instant it names, a UTC midnight as any
    other (``2026-11-23T19:00:00-05:00`` is one), with :data:`CLOCK_SLACK` allowed for a client's clock.

    Examples
    --------
    >>> from datetime import UTC
    >>> made = datetime(2025, 11, 24, 14, 0, tzinfo=UTC)
    >>> day, eve = datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 11, 23, tzinfo=UTC)
    >>> dated_before(day, made, whole_day=True), dated_before(eve, made, whole_day=True), dated_before(day, made)
    (False, True, True)
    >>> dated_before(made - timedelta(minutes=2), made), dated_before(made - timedelta(hours=1), made)
    (False, True)
    """
    outcome, decision = as_utc(outcome_ts), as_utc(decision_ts)
    if whole_day:
        return outcome.date() < decision.date()
    return outcome < decision - CLOCK_SLACK


def _learnable(event: FeedbackEvent) -> bool:
    """Whether ``event`` can move a correction: an outcome naming a decision and a realised value."""
    return event.kind == "outcome" and _realised(event) is not None and bool(event.payload.get("decision_id"))


def _realised(event: FeedbackEvent) -> float | None:
    value = event.payload.get("value_usd")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _run_projection(view: AccountView, chosen: Option) -> list[Any]:
    """The run's projection per objective of ``chosen``, one of its runner-ups: as its row in ``alternatives`` has it.

    Empty for a rescored view (the run's projection is not the rescored one), for doing nothing, and
    for runs stored before runner-ups carried their projection.
    """
    if view.rescored or chosen.action_id == NO_ACTION:
        return []
    for alt in view.recommendation.alternatives:
        if (
            isinstance(alt, Mapping)
            and alt.get("action_id") == chosen.action_id
            and alt.get("variant") == chosen.variant
            and isinstance(alt.get("projected"), list)
        ):
            return list(alt["projected"])
    return []


def _run_comparables(view: AccountView, chosen: Option) -> list[Any]:
    """The run's comparables of the action ``chosen`` gives, when its receipt's are of that action (else none)."""
    if view.rescored or chosen.action_id == NO_ACTION:
        return []
    found = view.recommendation.evidence.get("comparables")
    if not isinstance(found, list):
        return []
    return [c for c in found if isinstance(c, Mapping) and c.get("action_id") == chosen.action_id]


def _run_key(rec: RecommendationRecord) -> str:
    """The key (``action`` or ``action:variant``) of the run's choice for the account."""
    return rec.action_id if rec.variant is None else f"{rec.action_id}:{rec.variant}"


def _default_key(playbook: Playbook, action_id: str) -> str:
    """The option key of a lifecycle default of ``action_id``: its :func:`default_variant`'s, as the run gives it.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> pb = load_playbook()
    >>> _default_key(pb, "nurture_email"), _default_key(pb, "upsell_call"), _default_key(pb, NO_ACTION)
    ('nurture_email:morning', 'upsell_call', 'none')
    """
    variant = default_variant(playbook, action_id)
    return action_id if variant is None else Option(action_id, variant, 0.0, 0.0, 0.0).key


def _alternatives(
    options: Sequence[Option],
    choice: int,
    blocks: Sequence[tuple[str, str] | None],
    mean: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    *,
    run_key: str,
    held: str = "held back: this decision explores",
    best: int | None = None,
    best_name: str = "",
) -> list[dict[str, Any]]:
    """The runner-ups of an online decision, coded as the run codes them (``decide.policy``'s lost codes).

    Only the model's own pick (``best``), drawn over by exploration, was held back; another allowed
    option worth more than the draw but no more than that pick would not have been given either.
    """
    shift = mean - np.array([o.value_usd for o in options])
    rows: list[dict[str, Any]] = []
    for i, o in enumerate(options):
        if i == choice:
            continue
        if blocks[i] is not None:
            why, reason = blocks[i]  # type: ignore[misc]
        elif o.blocked_by_run:
            why, reason = o.run_why or "rule", o.run_reason
        elif allowed[i] and mean[i] > mean[choice] + 1e-9 and (best is None or i == best):
            # The model's pick, worth more and allowed: this decision's draw held it back, coded as the
            # run codes it (also when it is the run's own choice), so that the row names its variant.
            why, reason = "held_back", held
        elif allowed[i] and o.key == run_key:
            why, reason = "lower_value", "the run's choice, not drawn this time"
        elif i == 0 and allowed[i]:  # rescored: the best with the fresh signals plays the run's choice's part
            why, reason = "lower_value", "the best projection with the fresh signals, not drawn this time"
        elif allowed[i] and mean[i] > mean[choice] + 1e-9:
            why = "lower_value"
            reason = (
                "projected to be worth no more than doing nothing"
                if mean[i] <= 0
                else f"projected to be worth no more than the model's choice for this account, {best_name}"
            )
        elif o.run_why == "capacity" or not o.run_reason:
            # Worth no more than the choice. The run's capacity reason ("worth more, but not enough of
            # … is left") does not hold here: what is left now was checked (blocks), and it fits or lost on value.
            why = "lower_value"
            reason = (
                "projected to be worth no more than doing nothing"
                if mean[i] <= 0
                else "projected to be worth less than the recommended action"
            )
        else:
            why, reason = "lower_value", o.run_reason
        rows.append(
            {
                "action_id": o.action_id,
                "variant": o.variant,
                "value_usd": round(float(mean[i]), 2),
                "low": round(o.low_usd + float(shift[i]), 2),
                "high": round(o.high_usd + float(shift[i]), 2),
                "why": why,
                "reason": reason,
                "pooled": o.pooled,
            }
        )
    rows.sort(key=lambda r: -float(r["value_usd"]))  # by value, whatever the why (docs/evidence.md), as batch receipts
    return rows


def _default_why(
    playbook: Playbook,
    view: AccountView,
    options: Sequence[Option],
    chosen: Option,
    arm: str,
    blocks: Sequence[tuple[str, str] | None],
    mean: NDArray[np.float64],
    best: int | None = None,
) -> str:
    """``default_why`` of an online decision: how it compares with the lifecycle default, in the run's sentences."""
    default = view.recommendation.default_action_id
    if default is None:
        return "The lifecycle playbook has no default for this account."
    name = _action_name(playbook, default)
    mine = [i for i, o in enumerate(options) if o.action_id == default]
    if arm == "control":
        mine = [i for i in mine if options[i].key == _default_key(playbook, default)]
    d = max(mine, key=lambda i: float(mean[i]), default=None)
    block: tuple[str, str] | None = None
    if d is not None:
        o = options[d]
        block = blocks[d] or ((o.run_why or "rule", o.run_reason) if o.blocked_by_run else None)
    because = "" if block is None or not block[1] else f" ({block[1]})"
    if arm == "control":
        if default == NO_ACTION:
            return "Control group: the lifecycle playbook does nothing for this account, and so does this."
        if chosen.action_id != NO_ACTION:
            return f"Control group: follows the lifecycle playbook, whose default is {name}."
        return f"Control group: the lifecycle default, {name}, is not allowed now{because}, so nothing is done."
    if chosen.action_id == default:
        if default == NO_ACTION:
            return "The lifecycle playbook would also do nothing."
        return f"Same as the lifecycle playbook's default, {name}."
    value = float(mean[options.index(chosen)])
    chosen_name = _option_name(playbook, chosen)
    currency = playbook.currency
    if default == NO_ACTION:
        return f"The lifecycle playbook would do nothing; {chosen_name} is worth {money_text(value, currency)}."
    if block is not None:
        return f"The lifecycle default, {name}, is not allowed{because}."
    worth = "" if d is None else f", worth {money_text(float(mean[d]), currency)}"
    if arm == "explore" and d is not None and d == best:
        # Only the model's own pick was set aside to explore; a default worth less reads as on the model arm.
        return f"The lifecycle default, {name}{worth}, was set aside to explore another play."
    if d is None:  # the run kept too few runner-ups to value it
        if chosen.action_id == NO_ACTION:
            return f"The lifecycle default is {name}; doing nothing is worth more."
        return f"The lifecycle default is {name}; {chosen_name} is worth {money_text(value, currency)}."
    against = (
        f" against {money_text(0.0, currency)} for doing nothing"
        if chosen.action_id == NO_ACTION
        else f" against {money_text(value, currency)} for {chosen_name}"
    )
    return f"The lifecycle default, {name}{worth}{against}."


def _summary(
    playbook: Playbook,
    view: AccountView,
    chosen: Option,
    arm: str,
    model_best: Option,
    run_choice: tuple[Option, tuple[str, str] | None] | None,
    value: float,
) -> str:
    name = _option_name(playbook, chosen)
    if chosen.action_id == NO_ACTION:
        text = f"Do nothing for {view.account_id} now"
    else:
        text = f"{name} for {view.account_id}: projected {money_text(value, playbook.currency)} over doing nothing"
        if chosen.pooled and arm != "control":  # as the run's receipts say it (docs/evidence.md)
            text += "; too few past touches to learn its own effect, so it is projected from the other actions'"
    if arm == "control":
        text += " (control cohort: the lifecycle default playbook's move)"
    elif arm == "explore" and model_best.key == chosen.key:  # the draw gave the learned pick
        text += " (exploring: the draw gave the best guess)"
    elif arm == "explore":
        text += f" (exploring: the best guess is {_option_name(playbook, model_best)})"
    if run_choice is not None:
        option, block = run_choice
        if block is not None and option.key != chosen.key:
            text += f"; the run's choice, {_option_name(playbook, option)}, is blocked ({block[1]})"
    return text + "."


def _option_name(playbook: Playbook, option: Option) -> str:
    """An option as receipts name it: its action's name, and its variant in brackets ("Renewal email (short)").

    As the run's receipts and reasons name an action and its variant
    (:meth:`~nextmove.decide.policy.Decisions.lost`, :mod:`nextmove.decide.explain`).
    """
    name = _action_name(playbook, option.action_id)
    return name if option.variant is None else f"{name} ({option.variant})"


def _action_name(playbook: Playbook, action_id: str) -> str:
    """An action's name as the receipts' sentences hold it (:func:`~nextmove.decide.phrases.isolated`)."""
    if action_id == NO_ACTION:
        return "doing nothing"
    try:
        return isolated(playbook.action(action_id).name)
    except KeyError:
        return action_id
