"""The API's request and response bodies (pydantic), in families: ``…In`` for requests, ``…Public`` for answers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

from nextmove.api.errors import InvalidRequestError
from nextmove.book.nfc import nfc
from nextmove.book.parse import parse_timestamp, trim_text
from nextmove.store import DecisionRecord, FeedbackEvent, RecommendationRecord, RunRecord
from nextmove.store.records import TS_IS_DATE

MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 2000
MAX_SIGNALS = 200
MAX_BATCH_ACCOUNTS = 100
MAX_FEEDBACK_EVENTS = 1000
MAX_PAYLOAD_DEPTH = 8
MAX_VALUE_USD = 1e12
"""The largest ``value_usd`` (either sign) an outcome event may attribute to a decision: a trillion (of the playbook's
currency)."""


def clean_text(value: str) -> str:
    """Refuse text the store cannot keep: NUL characters and lone surrogates (not valid UTF-8).

    Examples
    --------
    >>> clean_text("acct-1")
    'acct-1'
    >>> clean_text("a\\x00b")
    Traceback (most recent call last):
    ...
    ValueError: text must not contain NUL characters (\\u0000)
    """
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate such as \\ud800)") from None
    return value


def clean_json(value: Any, depth: int = 0) -> Any:
    """Check a free-form JSON value: clean text everywhere, finite numbers, bounded nesting."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"payload nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("payload numbers must be finite (no NaN or Infinity)")
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, depth + 1) for v in value]
    return value


def withhold_comparables(evidence: dict[str, Any], visible: Callable[[str], bool] | None) -> dict[str, Any]:
    """The receipt ``evidence`` with each comparable account's id that ``visible`` refuses replaced by null.

    A receipt's ``comparables`` are other accounts that got the action, with what followed: a key
    limited to some owners' accounts (``manager``, ``csm``) is shown their action, date, outcome and
    similarity, never which account they were, unless it sees that account. ``visible`` None: a key
    that sees every account, shown the receipt as it is. The stored receipt is never changed.

    Examples
    --------
    >>> evidence = {"comparables": [{"account_id": "mine", "ts": "2026-01-05"}, {"account_id": "theirs"}]}
    >>> withhold_comparables(evidence, lambda account_id: account_id == "mine")["comparables"]
    [{'account_id': 'mine', 'ts': '2026-01-05'}, {'account_id': None}]
    >>> evidence["comparables"][1]
    {'account_id': 'theirs'}
    """
    comparables = evidence.get("comparables")
    if visible is None or not isinstance(comparables, list):
        return evidence
    shown = [
        {**c, "account_id": None}
        if isinstance(c, dict) and isinstance(c.get("account_id"), str) and not visible(c["account_id"])
        else c
        for c in comparables
    ]
    return evidence if shown == comparables else {**evidence, "comparables": shown}


EARLIEST_TIME: Final[datetime] = datetime(1900, 1, 1, tzinfo=UTC)
"""The earliest time the API takes (feedback ``ts``, ``snoozed_until``, a run's ``as_of``, the audit's ``since``)."""
LATEST_TIME: Final[datetime] = datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The latest time the API takes. Beyond these a time is surely a mistake, and near Python's limits
(years 1 and 9999) a time cannot be converted to UTC, nor moved by a window of days, without overflowing."""


class TimeOutOfRangeError(InvalidRequestError, ValueError):
    """A time outside years 1900–2999 (UTC): a 422 from a route, a field's validation error in a schema."""


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC; a naive one is taken as UTC; refused outside 1900-01-01 to 2999-12-31 (UTC).

    Raises
    ------
    TimeOutOfRangeError
        If the time is outside that range (also when converting it to UTC would overflow).

    Examples
    --------
    >>> from datetime import timedelta, timezone
    >>> as_utc(datetime(2026, 1, 1, 10, tzinfo=timezone(timedelta(hours=-5)))).isoformat()
    '2026-01-01T15:00:00+00:00'
    >>> as_utc(datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nextmove.api.schemas.TimeOutOfRangeError: a time must be from 1900-01-01T00:00:00Z ... got 9999-12-31T23:59:00-05:00
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_TIME <= utc <= LATEST_TIME:
        raise TimeOutOfRangeError(
            f"a time must be from {EARLIEST_TIME:%Y-%m-%dT%H:%M:%SZ} to {LATEST_TIME:%Y-%m-%dT%H:%M:%SZ} (UTC); "
            f"got {value.isoformat()}"
        )
    return utc


TIME_FORMS: Final[str] = (
    "ISO 8601 text, as the book's times: a date (2026-01-05) or a date and time (2026-01-05T09:30:00Z, "
    "2026-01-05 09:30); an offset written Z, +02:00, +0200, +02 or a trailing UTC, none meaning UTC"
)
"""The forms of time the API reads (:func:`parse_api_time`), as its error messages name them."""
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_PLAIN_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?")
"""The common forms, all of them the book's too, read by Python directly: the book's parser costs half a millisecond."""


def parse_api_time(value: Any) -> Any:
    """A time sent to the API, read as the book reads its times (:func:`~nextmove.book.parse.parse_timestamp`).

    Only ISO 8601 text is a time (:data:`TIME_FORMS`): a number, or text that is one (``"20261124"``,
    ``"0.5"``), is refused, where pydantic would read it as seconds since 1970 and a dismissal sent
    with ``"ts": "20261124"`` would be dated 1970-08-23. A datetime passes (a schema made in Python);
    anything else is left to the schema to refuse.

    Raises
    ------
    ValueError
        Saying what was sent and which forms are read.

    Examples
    --------
    >>> parse_api_time("2026-01-05T11:30+02").isoformat(), parse_api_time("2026-01-05 09:30 UTC").isoformat()
    ('2026-01-05T09:30:00+00:00', '2026-01-05T09:30:00+00:00')
    >>> parse_api_time("2026-01-05").isoformat()
    '2026-01-05T00:00:00'
    >>> parse_api_time("20261124")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '20261124' is a number, not a time (it would be read as seconds since 1970): write 2026-11-24; ...
    """
    if isinstance(value, datetime) or value is None:
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time: send {TIME_FORMS}")
    if isinstance(value, int | float):
        raise ValueError(f"{value!r} is a number, not a time (it would be read as seconds since 1970): {_forms(value)}")
    if not isinstance(value, str):
        return value
    if _NUMBER_TEXT.fullmatch(value):
        raise ValueError(f"{value!r} is a number, not a time (it would be read as seconds since 1970): {_forms(value)}")
    text = value.strip()
    if _PLAIN_ISO.fullmatch(text):
        try:
            return datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
        except ValueError:
            pass  # no such date or time: the book's parser says which
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        why = f"{value!r} is not a time the API reads" if str(exc) == "not an ISO 8601 time" else str(exc)
        raise ValueError(f"{why}: {_plus_as_space_hint(text)}send {TIME_FORMS}") from None


_SIGN_AS_SPACE = re.compile(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)")
"""A time whose offset has a space for its sign: a ``+`` sent unencoded in a URL's query string, read as a space."""


def _plus_as_space_hint(text: str) -> str:
    """What to say of a time whose offset's ``+`` was read as a space (``since=2026-01-05T09:30:00+02:00`` unencoded).

    Examples
    --------
    >>> _plus_as_space_hint("2026-01-05T09:30:00 02:00")
    "a '+' in a URL's query string is read as a space: write it %2B (2026-01-05T09:30:00%2B02:00); "
    >>> _plus_as_space_hint("2026-01-05 09:30")
    ''
    """
    found = _SIGN_AS_SPACE.fullmatch(text)
    if found is None:
        return ""
    return f"a '+' in a URL's query string is read as a space: write it %2B ({found[1]}%2B{found[2]}); "


_DATE_ALONE = re.compile(r"\d{4}-\d{2}-\d{2}")


def sent_as_date(value: Any) -> bool:
    """Whether a time sent to the API is a date alone (``2026-11-24``), which stands for the whole day.

    :func:`parse_api_time` reads it as the day's midnight (UTC), as a time at that midnight is read:
    only the text sent tells the two apart.

    Examples
    --------
    >>> sent_as_date("2026-11-24"), sent_as_date(" 2026-11-24 "), sent_as_date("2026-11-23T19:00:00-05:00")
    (True, True, False)
    """
    return isinstance(value, str) and _DATE_ALONE.fullmatch(value.strip()) is not None


def _forms(number: object) -> str:
    """What to send instead of ``number``: its date, if it reads as one written without dashes (20261124)."""
    digits = str(number).strip()
    if re.fullmatch(r"\d{8}", digits):
        try:
            day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            pass
        else:
            return f"write {day.isoformat()}; send {TIME_FORMS}"
    return f"send {TIME_FORMS}"


def clean_account_id(value: str) -> str:
    """An account id as the book reads it: :func:`clean_text`, without white space at either end, not blank.

    A book's ``" acct-1"`` is the account ``acct-1`` (:func:`~nextmove.book.parse.trim_text`), so
    ``"acct-1 "`` sent to the API is that account too, never an unknown one.

    Examples
    --------
    >>> clean_account_id("acct-1 "), clean_account_id("E 5")
    ('acct-1', 'E 5')
    >>> clean_account_id("  ")
    Traceback (most recent call last):
    ...
    ValueError: an account id must not be blank
    """
    trimmed = trim_text(clean_text(value))
    if not trimmed:
        raise ValueError("an account id must not be blank")
    return trimmed


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(clean_text)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(clean_text), AfterValidator(nfc)]
"""A name the book and playbook key on (a signal's name, an outcome kind, an action id): read in Unicode NFC, as
they are (:mod:`nextmove.book.nfc`)."""
AccountId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(clean_account_id)]
"""An account's id: trimmed as the book trims it (:func:`clean_account_id`)."""
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(clean_text)]
UtcTime = Annotated[datetime, BeforeValidator(parse_api_time), AfterValidator(as_utc)]
"""A time: ISO 8601 text only (:func:`parse_api_time`), in UTC (:func:`as_utc`)."""
Payload = Annotated[dict[str, Any], AfterValidator(clean_json)]


def sane_usd(value: float) -> float:
    """Refuse amounts beyond ±:data:`MAX_VALUE_USD`: no outcome is worth that, and the learner's sums would overflow.

    Examples
    --------
    >>> sane_usd(-2500.0)
    -2500.0
    >>> sane_usd(1e300)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 1e+300 is beyond ±1e+12: send the amount the outcome brought or cost (in the playbook's currency), ...
    """
    if abs(value) > MAX_VALUE_USD:
        raise ValueError(
            f"{value:g} is beyond ±{MAX_VALUE_USD:g}: send the amount the outcome brought or cost (in the playbook's "
            "currency), relative to doing nothing"
        )
    return value


Usd = Annotated[float, AfterValidator(sane_usd)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- decide -----------------------------------------------------------------------------------


class DecideItemIn(_In):
    """One account to decide for."""

    account_id: AccountId
    """The account (white space at either end is not part of it, as in the book)."""
    signals: dict[Name, float] = Field(default_factory=dict, max_length=MAX_SIGNALS)
    """Fresh context signals (signal name → latest value) seen by the caller, logged with the decision; on a
    server with a book, only the book's signal names (others are refused with 422)."""
    request_id: Id | None = None
    """Your id for this request: retrying it for the same account returns the decision already made instead of a
    new one; an id already used for another account is refused (409)."""


class DecideIn(_In):
    """One account (``account_id``, …) or a small batch (``accounts``) to decide for."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"oneOf": [{"required": ["account_id"]}, {"required": ["accounts"]}]},
    )

    account_id: AccountId | None = None
    """The account, for a single decision."""
    signals: dict[Name, float] = Field(default_factory=dict, max_length=MAX_SIGNALS)
    """Fresh context signals for the single account."""
    request_id: Id | None = None
    """Your id for the single request (see ``DecideItemIn.request_id``)."""
    accounts: list[DecideItemIn] | None = Field(default=None, min_length=1, max_length=MAX_BATCH_ACCOUNTS)
    """A batch of accounts (at most 100), instead of ``account_id``."""

    @model_validator(mode="after")
    def _one_or_batch(self) -> Self:
        if self.account_id is None and self.accounts is None:
            raise ValueError("send account_id (one account) or accounts (a batch of at most 100)")
        if self.account_id is not None and self.accounts is not None:
            raise ValueError("send either account_id (one account) or accounts (a batch of at most 100), not both")
        if self.accounts is not None and (self.signals or self.request_id):
            raise ValueError("with accounts, put signals and request_id inside each item")
        return self

    def items(self) -> list[DecideItemIn]:
        """The accounts asked for, as items."""
        if self.accounts is not None:
            return self.accounts
        assert self.account_id is not None
        return [DecideItemIn(account_id=self.account_id, signals=self.signals, request_id=self.request_id)]


class DecisionPublic(_Out):
    """A decision: the action, how it was chosen and with what probability, its value and receipt."""

    decision_id: str
    account_id: str
    action_id: str
    """The action (``none`` means do nothing now)."""
    variant: str | None
    arm: str
    """``model`` (the best guess), ``explore`` (an exploration draw) or ``control`` (the control cohort)."""
    propensity: float
    """Probability that this action was chosen for this account (for unbiased evaluation later)."""
    expected_value_usd: float
    value_low_usd: float | None
    value_high_usd: float | None
    ts: datetime
    run_id: str | None
    model_version: str | None
    request_id: str | None
    evidence: dict[str, Any]
    """The decision receipt: projected outcomes, signals, comparables, summary."""
    alternatives: list[dict[str, Any]]
    """The runner-up actions, best first, with why each was not chosen."""

    @classmethod
    def of(cls, record: DecisionRecord, visible: Callable[[str], bool] | None = None) -> DecisionPublic:
        """From a stored decision; its comparables' ids withheld where ``visible`` refuses them
        (:func:`withhold_comparables`)."""
        return cls(
            decision_id=record.decision_id,
            account_id=record.account_id,
            action_id=record.action_id,
            variant=record.variant,
            arm=record.arm,
            propensity=record.propensity,
            expected_value_usd=record.expected_value_usd,
            value_low_usd=record.value_low_usd,
            value_high_usd=record.value_high_usd,
            ts=record.ts,
            run_id=record.run_id,
            model_version=record.model_version,
            request_id=record.request_id,
            evidence=withhold_comparables(record.evidence, visible),
            alternatives=record.alternatives,
        )


class DecisionsPublic(_Out):
    """The decisions made, in the order asked."""

    decisions: list[DecisionPublic]


# ---- feedback ---------------------------------------------------------------------------------


class OutcomeIn(_In):
    """What happened to the account (for ``kind = "outcome"``)."""

    kind: Name
    """The outcome kind: one an objective of the playbook measures, or one of the book's ``outcomes.kind``."""
    value: float | None = None
    """The outcome's own value, if any, as the book's ``outcomes.value`` has it (e.g. the amount it brought)."""


class FeedbackIn(_In):
    """One feedback event about an account: done, dismissed (with a reason), snoozed, or an outcome."""

    event_id: Id
    """Your unique id for the event: sending it again (a retry) never counts it twice."""
    account_id: AccountId
    kind: Literal["done", "dismissed", "snoozed", "outcome"]
    ts: UtcTime | None = None
    """When it happened: ISO 8601 text (:data:`TIME_FORMS`; naive means UTC), never a number; a date alone
    (``2026-11-24``) is the whole (UTC) day; default: when the server receives it."""
    decision_id: Id | None = None
    """The decision (from POST /v1/decide) the event answers, if any."""
    run_id: Id | None = None
    """The batch run whose recommendation the event answers, if any."""
    action_id: Name | None = None
    """The action done, dismissed or snoozed."""
    reason: Text | None = None
    """Why it was dismissed (required for ``dismissed``) or snoozed."""
    snoozed_until: UtcTime | None = None
    """Until when a ``snoozed`` recommendation should stay quiet (ISO 8601 text, as ``ts``)."""
    outcome: OutcomeIn | None = None
    """What happened (required for ``outcome``)."""
    value_usd: Usd | None = None
    """For ``outcome``: the amount you attribute to the decision (relative to doing nothing), in the playbook's
    ``currency`` (the key keeps its ``_usd`` suffix whatever it is), at most 1e12 either way; with ``decision_id``,
    it moves the online correction of the decision's action, unless the event is dated before the decision."""
    payload: Payload = Field(default_factory=dict)
    """Anything else worth keeping (JSON object)."""

    _ts_is_date: bool = PrivateAttr(default=False)
    """Whether ``ts`` was sent as a date alone: the form is lost once it is read (:func:`sent_as_date`)."""

    @model_validator(mode="wrap")
    @classmethod
    def _ts_sent_as_date(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        event = handler(data)
        event._ts_is_date = isinstance(data, dict) and sent_as_date(data.get("ts"))
        return event

    @model_validator(mode="after")
    def _kind_needs(self) -> Self:
        if self.kind == "dismissed" and not (self.reason and self.reason.strip()):
            raise ValueError("a dismissed event needs a reason (e.g. 'already in touch with the customer')")
        if self.kind != "outcome" and (self.outcome is not None or self.value_usd is not None):
            raise ValueError("outcome and value_usd belong to outcome events only")
        return self

    def to_event(self, received_at: datetime) -> FeedbackEvent:
        """The store's event; fields without a column travel in its payload."""
        payload: dict[str, Any] = dict(self.payload)
        if self.decision_id is not None:
            payload["decision_id"] = self.decision_id
        if self.snoozed_until is not None:
            payload["snoozed_until"] = self.snoozed_until.isoformat()
        if self.outcome is not None:
            payload["outcome"] = {"kind": self.outcome.kind, "value": self.outcome.value}
        if self.value_usd is not None:
            payload["value_usd"] = self.value_usd
        if self._ts_is_date:
            payload[TS_IS_DATE] = True  # stored, so that the day is read whole again when the server restarts
        return FeedbackEvent(
            event_id=self.event_id,
            account_id=self.account_id,
            kind=self.kind,
            ts=self.ts or received_at,
            run_id=self.run_id,
            action_id=self.action_id,
            reason=self.reason,
            payload=payload,
        )


class FeedbackBatchIn(_In):
    """Feedback events, at most 1,000 per request."""

    events: list[FeedbackIn] = Field(min_length=1, max_length=MAX_FEEDBACK_EVENTS)


class FeedbackReceiptPublic(_Out):
    """What became of a batch of feedback: every event is stored (durably) before this answer is sent."""

    received: int
    """Events in the request."""
    stored: int
    """Events stored now."""
    duplicates: int
    """Events already stored before (or repeated in the request): counted once, not again."""
    learned: int
    """Outcome events that moved the online corrections (not one dated before the decision it names: stored, not
    learned from)."""


class FeedbackPublic(_Out):
    """A stored feedback event."""

    event_id: str
    account_id: str
    kind: str
    ts: datetime
    run_id: str | None
    action_id: str | None
    reason: str | None
    payload: dict[str, Any]
    received_at: datetime | None

    @classmethod
    def of(cls, event: FeedbackEvent) -> FeedbackPublic:
        """From a stored event."""
        return cls(
            event_id=event.event_id,
            account_id=event.account_id,
            kind=event.kind,
            ts=event.ts,
            run_id=event.run_id,
            action_id=event.action_id,
            reason=event.reason,
            payload=event.payload,
            received_at=event.received_at,
        )


# ---- recommendations and accounts -------------------------------------------------------------


class RecommendationPublic(_Out):
    """A batch run's recommendation for one account, with its receipt."""

    run_id: str
    account_id: str
    name: str | None = None
    """The account's ``name`` in the server's book (None without a book, or when the book gives it no name)."""
    owner: str | None
    action_id: str
    variant: str | None
    arm: str
    propensity: float
    expected_value_usd: float
    value_low_usd: float | None
    value_high_usd: float | None
    default_action_id: str | None
    differs_from_default: bool
    health_score: float | None
    health_band: str | None
    model_version: str | None
    created_at: datetime
    evidence: dict[str, Any]
    alternatives: list[dict[str, Any]]

    @classmethod
    def of(cls, rec: RecommendationRecord, visible: Callable[[str], bool] | None = None) -> RecommendationPublic:
        """From a stored recommendation; its comparables' ids withheld where ``visible`` refuses them
        (:func:`withhold_comparables`)."""
        return cls(
            run_id=rec.run_id,
            account_id=rec.account_id,
            owner=rec.owner,
            action_id=rec.action_id,
            variant=rec.variant,
            arm=rec.arm,
            propensity=rec.propensity,
            expected_value_usd=rec.expected_value_usd,
            value_low_usd=rec.value_low_usd,
            value_high_usd=rec.value_high_usd,
            default_action_id=rec.default_action_id,
            differs_from_default=rec.differs_from_default,
            health_score=rec.health_score,
            health_band=rec.health_band,
            model_version=rec.model_version,
            created_at=rec.created_at,
            evidence=withhold_comparables(rec.evidence, visible),
            alternatives=rec.alternatives,
        )


class RecommendationPagePublic(_Out):
    """One page of a run's recommendations."""

    run_id: str | None
    total: int
    """Recommendations matching the filters (all pages)."""
    limit: int
    offset: int
    next_offset: int | None
    """Offset of the next page; None on the last one."""
    items: list[RecommendationPublic]


class HealthPublic(_Out):
    """The account's health as the run scored it."""

    score: float | None
    band: str | None


class RiskPublic(_Out):
    """The projected level of one objective's outcome if nothing is done (e.g. its probability within the horizon)."""

    objective: str
    outcome: str
    unit: str
    without: float | None


class TouchPublic(_Out):
    """A touch from the book of business."""

    action_id: str
    ts: datetime
    arm: str | None
    status: str | None


class OutcomePublic(_Out):
    """An outcome from the book of business."""

    kind: str
    ts: datetime
    value: float | None


class AccountPublic(_Out):
    """One account: health, risk, the current recommendation with its evidence, and its history."""

    account_id: str
    name: str | None = None
    """The account's ``name`` in the server's book (None without a book, or when the book gives it no name)."""
    owner: str | None
    run_id: str | None
    health: HealthPublic | None
    risk: list[RiskPublic]
    recommendation: RecommendationPublic | None
    decisions: list[DecisionPublic]
    """The latest decisions made online (newest first, at most 20)."""
    feedback: list[FeedbackPublic]
    """Feedback received (newest first, at most 50)."""
    touches: list[TouchPublic]
    """Touches in the book (newest first, at most 50), when the server has the book."""
    outcomes: list[OutcomePublic]
    """Outcomes in the book (newest first, at most 50), when the server has the book."""


# ---- runs -------------------------------------------------------------------------------------


class RunIn(_In):
    """Start a batch run over the server's book."""

    as_of: UtcTime | None = None
    """Decision time (ISO 8601 text, as a feedback event's ``ts``); default: how far the book's data reaches,
    rounded up to a UTC midnight."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seed of the run."""
    promote: bool = True
    """Serve the run's decisions online when it succeeds (a new ``policy`` model version, swapped in atomically),
    and make its effect model the active one; False: neither, until ``nextmove models promote RUN_ID``."""


class RunPublic(_Out):
    """A batch run and its progress."""

    run_id: str
    status: str
    created_at: datetime = Field(
        description="When the run was recorded as started; for a run this server started and has not recorded yet, "
        "when the server accepted it."
    )
    finished_at: datetime | None
    as_of: datetime | None = Field(
        description="The run's decision time: the one asked for, else the book's latest data as the run resolved it "
        "(filled when the run is recorded, normally before POST /v1/runs answers; null only for a run started "
        "without one and not recorded yet)."
    )
    book_source: str
    playbook_hash: str
    params: dict[str, Any]
    summary: dict[str, Any]
    progress: list[str]
    """Steps done so far (while the run goes on in this server)."""
    served: bool
    """Whether online decisions come from this run."""
    error: str | None = None
    """Why the run failed, if it did."""

    @classmethod
    def of(cls, run: RunRecord, *, progress: list[str], served: bool, error: str | None = None) -> RunPublic:
        """From a stored run."""
        return cls(
            run_id=run.run_id,
            status=run.status,
            created_at=run.created_at,
            finished_at=run.finished_at,
            as_of=run.as_of,
            book_source=run.book_source,
            playbook_hash=run.playbook_hash,
            params=run.params,
            summary=run.summary,
            progress=progress,
            served=served,
            error=error,
        )


class RunListPublic(_Out):
    """Runs, newest first."""

    items: list[RunPublic]


# ---- the rest ---------------------------------------------------------------------------------


class AuditEntryPublic(_Out):
    """Who read or changed what."""

    ts: datetime
    key_id: str | None
    role: str | None
    action: str
    method: str
    path: str
    resource: str
    status: int
    detail: dict[str, Any]


class AuditPagePublic(_Out):
    """Audit entries, newest first."""

    items: list[AuditEntryPublic]


class StatusPublic(_Out):
    """Liveness or readiness."""

    status: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorPublic(_Out):
    """Every error: the HTTP status, a stable code, and a message that says what to fix."""

    status: int
    code: str
    message: str
    problems: list[dict[str, Any]] | None = None
    """For invalid requests: one entry per field (``field``, ``problem``)."""


class ReportPublic(_Out):
    """A measurement (lift, segments) as JSON."""

    run_id: str | None
    data: dict[str, Any]
