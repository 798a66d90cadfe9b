"""Typed records the store keeps: runs, recommendations, feedback events and model versions."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias, get_args

from nextmove.errors import ConfigError, ConflictError

RunStatus: TypeAlias = Literal["running", "succeeded", "failed"]
"""The state of a run: ``running`` until it is finished, then ``succeeded`` or ``failed``."""

FeedbackKind: TypeAlias = Literal["done", "dismissed", "snoozed", "outcome"]
"""What a feedback event reports about a recommendation."""

Role: TypeAlias = Literal["admin", "manager", "csm", "service"]
"""What an API key may do: ``admin`` everything; ``manager`` the accounts of a team of owners;
``csm`` only the accounts one owner owns; ``service`` decide and send feedback, nothing else."""

RUN_STATUSES: Final[tuple[str, ...]] = get_args(RunStatus)
FEEDBACK_KINDS: Final[tuple[str, ...]] = get_args(FeedbackKind)
ROLES: Final[tuple[str, ...]] = get_args(Role)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC.

    Examples
    --------
    >>> utcnow().tzinfo
    datetime.timezone.utc
    """
    return datetime.now(UTC)


def _check_propensity(record: str, propensity: float, account_id: str) -> None:
    # Off-policy estimates divide by the propensity: a bad one must not be stored.
    if not (0.0 <= propensity <= 1.0) or math.isnan(propensity):
        raise ConfigError(
            f"{record}.propensity must be a probability in [0, 1]; got {propensity!r} for account {account_id!r}"
        )


def _check_choice(record: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    # Literal types are not checked at run time, and a bad value would otherwise surface as
    # an opaque CHECK-constraint failure from the database.
    if value not in allowed:
        raise ConfigError(f"{record}.{name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run of the engine over a book of business.

    Parameters
    ----------
    run_id : str
        Unique id of the run.
    book_source : str
        Where the book was loaded from (a folder or a database URL, passwords removed).
    playbook_hash : str
        Hash of the playbook the run used, so a run can be tied to its configuration.
    status : {"running", "succeeded", "failed"}, default "running"
        State of the run.
    created_at : datetime, default now
        When the run started (UTC; a naive value is taken as UTC).
    finished_at : datetime or None
        When the run finished, None while it is running.
    as_of : datetime or None
        The decision time the run's features were computed at.
    params : dict
        The run's parameters (JSON-serialisable).
    summary : dict
        Figures about the run's result (JSON-serialisable); a failed run's is ``{"error": "why"}``.

    A run as of a time well before its book's data ends records ``params["backtest"] = True``
    (:attr:`backtest`).

    Examples
    --------
    >>> RunRecord(run_id="r1", book_source="books/acme", playbook_hash="ab12").status
    'running'
    >>> RunRecord(run_id="r2", book_source="b", playbook_hash="h", status="failed", summary={"error": "x"}).error
    'x'
    """

    run_id: str
    book_source: str
    playbook_hash: str
    status: RunStatus = "running"
    created_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    as_of: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice("RunRecord", "status", self.status, RUN_STATUSES)

    @property
    def backtest(self) -> bool:
        """True when the run was a backtest (``params["backtest"]``, :func:`~nextmove.book.is_backtest`): the
        stages it read, and so the lifecycle defaults it recorded, are the book's of today, not of its ``as_of``.
        False for a run recorded before runs said so.

        Examples
        --------
        >>> RunRecord(run_id="r", book_source="b", playbook_hash="h", params={"backtest": True}).backtest
        True
        """
        return self.params.get("backtest") is True

    @property
    def error(self) -> str | None:
        """Why the run failed, as recorded when it did (``summary["error"]``); None unless it failed."""
        error = self.summary.get("error") if self.status == "failed" else None
        return error if isinstance(error, str) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendationRecord:
    """The action recommended to one account in one run, with its evidence.

    Parameters
    ----------
    run_id : str
        The run that made the recommendation.
    account_id : str
        The account it is for; one recommendation per account and run.
    action_id : str
        The recommended action (``none`` for "do nothing").
    arm : str
        Which policy chose it, e.g. ``model``, ``default``, ``control``, ``explore``.
    propensity : float
        Probability, in [0, 1], that the policy chose this action for this account.
    expected_value_usd : float
        Expected value of the action over doing nothing, in USD.
    variant : str or None
        Variant of the action (message, channel …), if the action has variants.
    value_low_usd, value_high_usd : float or None
        Interval around ``expected_value_usd``.
    default_action_id : str or None
        What the default lifecycle playbook would have done.
    differs_from_default : bool, default False
        Whether ``action_id`` differs from ``default_action_id``.
    owner : str or None
        The account's owner (CSM), for "my accounts" views.
    evidence : dict
        The signals, projections and comparable accounts behind the choice (JSON-serialisable).
    alternatives : list of dict
        The runner-up actions with their values (JSON-serialisable).
    model_version : str or None
        The model version that scored the account.
    created_at : datetime, default now
        When the recommendation was made (UTC; a naive value is taken as UTC).
    health_score : float or None
        The account's health score (0–100) at the run's decision time, if scored.
    health_band : str or None
        Its band (``Healthy``, ``At risk``, ``Critical``), for "accounts by band" views.

    Examples
    --------
    >>> rec = RecommendationRecord(
    ...     run_id="r1", account_id="a1", action_id="qbr", arm="model",
    ...     propensity=0.9, expected_value_usd=1200.0,
    ... )
    >>> rec.differs_from_default
    False
    """

    run_id: str
    account_id: str
    action_id: str
    arm: str
    propensity: float
    expected_value_usd: float
    variant: str | None = None
    value_low_usd: float | None = None
    value_high_usd: float | None = None
    default_action_id: str | None = None
    differs_from_default: bool = False
    owner: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    model_version: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    health_score: float | None = None
    health_band: str | None = None

    def __post_init__(self) -> None:
        _check_propensity("RecommendationRecord", self.propensity, self.account_id)


TS_IS_DATE: Final[str] = "ts_is_date"
"""The feedback payload's key saying ``ts`` was sent as a date alone (:attr:`FeedbackEvent.ts_is_date`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackEvent:
    """What happened to a recommendation: done, dismissed, snoozed, or an outcome.

    Parameters
    ----------
    event_id : str
        Unique id chosen by the client; sending the same event twice stores it once.
    account_id : str
        The account the event is about.
    kind : {"done", "dismissed", "snoozed", "outcome"}
        What the event reports.
    ts : datetime
        When it happened (UTC; a naive value is taken as UTC).
    run_id : str or None
        The run whose recommendation the event answers, if known.
    action_id : str or None
        The action the event is about, if any.
    reason : str or None
        Free-text or coded reason (e.g. why a recommendation was dismissed).
    payload : dict
        Anything else the client sent (JSON-serialisable); :data:`TS_IS_DATE` set true says ``ts`` was
        sent as a date alone (see :attr:`ts_is_date`).
    received_at : datetime or None
        When the store received the event; None lets the store stamp it.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> FeedbackEvent(
    ...     event_id="e1", account_id="a1", kind="done", ts=datetime(2024, 5, 1, tzinfo=UTC)
    ... ).kind
    'done'
    """

    event_id: str
    account_id: str
    kind: FeedbackKind
    ts: datetime
    run_id: str | None = None
    action_id: str | None = None
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_choice("FeedbackEvent", "kind", self.kind, FEEDBACK_KINDS)

    @property
    def ts_is_date(self) -> bool:
        """Whether ``ts`` was sent as a date alone (``2026-11-24``): the whole day, not its first instant.

        A time sent with an offset can fall on a UTC midnight too (``2026-11-23T19:00:00-05:00``): it is
        that instant, so what was sent is kept in the payload (:data:`TS_IS_DATE`), not read off ``ts``.

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 11, 24, tzinfo=UTC)
        >>> FeedbackEvent(event_id="e1", account_id="a1", kind="outcome", ts=t, payload={TS_IS_DATE: True}).ts_is_date
        True
        >>> FeedbackEvent(event_id="e2", account_id="a1", kind="outcome", ts=t).ts_is_date
        False
        """
        return self.payload.get(TS_IS_DATE) is True

    def same_event_as(self, other: FeedbackEvent) -> bool:
        """Whether ``other`` is this event sent again: same id, account, kind, run, action, reason and payload.

        ``ts`` and ``received_at`` are not compared: an event sent without a time is stamped when
        it is received, so each retry of it carries another ``ts`` (the first one stored is kept).

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> done = FeedbackEvent(event_id="e1", account_id="a1", kind="done", ts=datetime(2024, 5, 1, tzinfo=UTC))
        >>> done.same_event_as(FeedbackEvent(event_id="e1", account_id="a1", kind="done", ts=datetime.now(UTC)))
        True
        >>> done.same_event_as(FeedbackEvent(event_id="e1", account_id="a2", kind="done", ts=done.ts))
        False
        """
        return (self.event_id, self.account_id, self.kind, self.run_id, self.action_id, self.reason, self.payload) == (
            other.event_id,
            other.account_id,
            other.kind,
            other.run_id,
            other.action_id,
            other.reason,
            other.payload,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldEvent:
    """A feedback event with the actions it names through a decision or a run: what holds (and done plays) read.

    Parameters
    ----------
    event : FeedbackEvent
        The event.
    decision_action_id : str or None
        The action of the decision its payload's ``decision_id`` names (None: it names none, or
        the store has no such decision).
    run_action_id : str or None
        The action its run (``run_id``) recommended to the account (None: it names no run, or the
        store has no recommendation of that run for the account).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> event = FeedbackEvent(event_id="e1", account_id="a1", kind="dismissed", ts=datetime(2026, 5, 1, tzinfo=UTC))
    >>> HoldEvent(event=event, run_action_id="qbr").decision_action_id is None
    True
    """

    event: FeedbackEvent
    decision_action_id: str | None = None
    run_action_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersionRecord:
    """One trained model, serialised, with what it was trained on and how well it did.

    Parameters
    ----------
    model_id : str
        Unique id of this model version.
    kind : str
        What the model is for (e.g. ``health``, ``outcome``, ``effect``); one version of
        each kind is active at a time.
    playbook_hash : str
        Hash of the playbook the model was trained under.
    blob : bytes
        The serialised model.
    created_at : datetime, default now
        When the model was trained (UTC; a naive value is taken as UTC).
    trained_from, trained_to : datetime or None
        The time window of the training data.
    features : list of str
        Names of the features the model reads.
    metrics : dict
        Evaluation figures (JSON-serialisable).
    active : bool, default False
        Whether this is the active model of its kind.

    Examples
    --------
    >>> ModelVersionRecord(model_id="m1", kind="health", playbook_hash="ab12", blob=b"..").active
    False
    """

    model_id: str
    kind: str
    playbook_hash: str
    # Kept out of repr: a model can weigh megabytes.
    blob: bytes = field(repr=False)
    created_at: datetime = field(default_factory=utcnow)
    trained_from: datetime | None = None
    trained_to: datetime | None = None
    features: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    active: bool = False


POLICY_MODEL_KIND: Final[str] = "policy"
"""The kind of the model versions that serve runs: each names the run it serves."""


def policy_version(
    run_id: str,
    playbook_hash: str,
    as_of: datetime | None,
    metrics: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> ModelVersionRecord:
    """A new, active policy version serving run ``run_id`` (``metrics``: its ``replaces``, who started it, …).

    The one shape of a promotion's record: ``nextmove models promote`` and a store's upgrade make it alike.

    Examples
    --------
    >>> v = policy_version("run-1", "ab12", None, {"replaces": None}, now=datetime(2026, 1, 6, tzinfo=UTC))
    >>> v.model_id.startswith("policy-20260106T000000-"), v.kind, v.blob, v.metrics, v.active
    (True, 'policy', b'{"run_id": "run-1"}', {'run_id': 'run-1', 'replaces': None}, True)
    """
    now = utcnow() if now is None else now
    return ModelVersionRecord(
        model_id=f"policy-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        kind=POLICY_MODEL_KIND,
        playbook_hash=playbook_hash,
        blob=json.dumps({"run_id": run_id}).encode(),
        created_at=now,
        trained_to=as_of,
        metrics={"run_id": run_id, **dict(metrics)},
        active=True,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """One decision made online (``POST /v1/decide``), logged with its propensity for unbiased evaluation.

    Parameters
    ----------
    decision_id : str
        Unique id of the decision.
    account_id : str
        The account decided for.
    action_id : str
        The chosen action (``none`` for "do nothing").
    arm : str
        How it was chosen: ``model`` (the best guess), ``explore`` (an exploration draw that
        differs from the best guess) or ``control`` (the control cohort's default).
    propensity : float
        Probability, in [0, 1], that the decider chose this action for this account.
    expected_value_usd : float
        Expected value of the action over doing nothing, in USD.
    ts : datetime, default now
        When the decision was made (UTC; a naive value is taken as UTC).
    variant : str or None
        Variant of the action, if any.
    value_low_usd, value_high_usd : float or None
        Interval around ``expected_value_usd``.
    run_id : str or None
        The run whose projection the decision used, if any.
    model_version : str or None
        The model version that scored the account.
    owner : str or None
        The account's owner at decision time.
    context : dict
        What the decision saw beyond the run: fresh signals sent with the request, the
        probability of every option, the online adjustments (JSON-serialisable).
    evidence : dict
        The decision receipt (JSON-serialisable).
    alternatives : list of dict
        The runner-up actions (JSON-serialisable).
    key_id : str or None
        The API key that asked for the decision.
    request_id : str or None
        Client-chosen id of the request: asking again with the same id returns the logged
        decision instead of making (and logging) a second one.

    Examples
    --------
    >>> DecisionRecord(
    ...     decision_id="d1", account_id="a1", action_id="qbr", arm="model",
    ...     propensity=0.95, expected_value_usd=800.0,
    ... ).arm
    'model'
    """

    decision_id: str
    account_id: str
    action_id: str
    arm: str
    propensity: float
    expected_value_usd: float
    ts: datetime = field(default_factory=utcnow)
    variant: str | None = None
    value_low_usd: float | None = None
    value_high_usd: float | None = None
    run_id: str | None = None
    model_version: str | None = None
    owner: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    key_id: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        _check_propensity("DecisionRecord", self.propensity, self.account_id)


def request_id_conflict(logged: DecisionRecord, account_id: str, signals: Mapping[str, Any]) -> ConflictError | None:
    """Why a request for ``account_id`` with fresh ``signals`` is not a retry of the decision ``logged`` for its
    ``request_id``; None if it is one (the same account, the same signals).

    A request id is a retry only of the request it was first used for: the decision of another
    account (another key's, perhaps) is never returned, nor is the account named; nor is a decision
    made from other fresh signals, which a client sending new signals would take for a decision
    made from them.

    Examples
    --------
    >>> logged = DecisionRecord(decision_id="d1", account_id="a1", action_id="qbr", arm="model", propensity=0.9,
    ...                         expected_value_usd=1.0, request_id="r1", context={"signals": {"nps": 4.0}})
    >>> request_id_conflict(logged, "a1", {"nps": 4}) is None
    True
    >>> print(request_id_conflict(logged, "a1", {"nps": 9}))  # doctest: +ELLIPSIS
    request_id 'r1' was already used for this account with other fresh signals (nps differ); ...
    """
    if logged.account_id != account_id:
        return ConflictError(
            f"request_id {logged.request_id!r} was already used for another request; "
            "send a new request_id to ask for a new decision (reuse one only to retry the same request)"
        )
    before = logged.context.get("signals") or {}
    now = {str(k): float(v) for k, v in signals.items()}
    if before != now:
        differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        return ConflictError(
            f"request_id {logged.request_id!r} was already used for this account with other fresh signals "
            f"({shown} differ); send a new request_id to ask for a decision from these signals (reuse one only to "
            "retry the same request: the same account and signals)"
        )
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyRecord:
    """An API key as stored: its public id, role and scope, and a salted hash of its secret.

    The secret itself is never stored; see :mod:`nextmove.store.keys` to make and check keys.

    Parameters
    ----------
    key_id : str
        Public id of the key (the part of the key before its secret); looked up on each request.
    role : {"admin", "manager", "csm", "service"}
        What the key may do.
    secret_hash : bytes
        Salted hash of the key's secret.
    salt : bytes
        The per-key salt.
    hash_scheme : str
        How ``secret_hash`` was made, e.g. ``scrypt:16384:8:1``.
    owners : list of str
        ``csm``: the one owner whose accounts the key sees; ``manager``: the owners of the team;
        empty for ``admin`` and ``service``.
    name : str
        A label for people (who or what holds the key).
    created_at : datetime, default now
        When the key was made (UTC).
    revoked_at : datetime or None
        When it was revoked; a revoked key is refused.

    Examples
    --------
    >>> ApiKeyRecord(
    ...     key_id="k1", role="csm", secret_hash=b"h", salt=b"s", hash_scheme="scrypt:16384:8:1", owners=["maria"]
    ... ).active
    True
    """

    key_id: str
    role: Role
    secret_hash: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    hash_scheme: str
    owners: list[str] = field(default_factory=list)
    name: str = ""
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_choice("ApiKeyRecord", "role", self.role, ROLES)
        if self.role in ("csm", "manager") and not self.owners:
            raise ConfigError(f"an API key with role {self.role!r} needs at least one owner (whose accounts it sees)")
        if self.role == "csm" and len(self.owners) != 1:
            raise ConfigError(f"an API key with role 'csm' sees one owner's accounts; got owners {self.owners!r}")

    @property
    def active(self) -> bool:
        """Whether the key is usable (not revoked)."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """Who read or changed what, through the API.

    Parameters
    ----------
    action : str
        ``read``, ``change`` or ``denied``.
    method : str
        The HTTP method.
    path : str
        The request path (without the query string).
    status : int
        The HTTP status answered.
    key_id : str or None
        The API key used (None when none, or one that is not valid, was sent: the id such a key
        claims is in ``detail["claimed_key_id"]``, never here, since anyone can claim any id;
        entries that older releases filed under it are moved there by the upgrade to schema version 5).
    role : str or None
        The key's role.
    resource : str
        What was read or changed, e.g. ``account:acct-1`` or ``feedback:3 events``.
    detail : dict
        Anything else worth keeping (query parameters, counts); JSON-serialisable.
    ts : datetime, default now
        When it happened (UTC).

    Examples
    --------
    >>> AuditEntry(action="read", method="GET", path="/v1/accounts/a1", status=200, key_id="k1").action
    'read'
    """

    action: str
    method: str
    path: str
    status: int
    key_id: str | None = None
    role: str | None = None
    resource: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityRecord:
    """A play decided online or reported done or dismissed: what the contact rules read, without payloads.

    Parameters
    ----------
    source : {"decision", "feedback"}
        Where it comes from.
    record_id : str
        The decision's or the event's id.
    kind : str
        ``decided`` for a decision; the feedback kind (``done``, ``dismissed``) for an event.
    action_id : str or None
        The action.
    ts : datetime
        When it was decided or happened (UTC).
    decision_id : str or None
        For an event: the decision it answers, if it names one.
    variant : str or None
        For a decision: the variant of the action it gave, if any (its channel may be the variant's).
    run_id : str or None
        For a decision: the run it was decided from, if it names one.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ActivityRecord(
    ...     source="decision", record_id="d1", kind="decided", action_id="qbr", ts=datetime(2026, 1, 1, tzinfo=UTC)
    ... ).kind
    'decided'
    """

    source: Literal["decision", "feedback"]
    record_id: str
    kind: str
    action_id: str | None
    ts: datetime
    decision_id: str | None = None
    variant: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionPlay:
    """What a logged online decision gave, without its receipt: what the online decider counts against capacity.

    Parameters
    ----------
    decision_id : str
        The decision.
    account_id : str
        Its account.
    ts : datetime
        When it was made (UTC).
    action_id : str
        The action it gave (``none`` for doing nothing).
    variant : str or None
        The variant of the action, if any.
    """

    decision_id: str
    account_id: str
    ts: datetime
    action_id: str
    variant: str | None = None
