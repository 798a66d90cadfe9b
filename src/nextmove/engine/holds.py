"""What an account's users asked not to be given, and the plays they reported done, for online decisions and the run.

A **snooze** holds its action (or, naming none, every action) back until its ``snoozed_until``;
a **dismissal** holds its action back for the action's cooldown (:func:`feedback_holds`). The
online decider reads one account's holds on every decision (``OnlineDecider._holds``); the batch
run reads every account's at once (:func:`read_holds`) and its rules mark the held actions
(:func:`nextmove.decide.rules.check_rules`), so both give the same reasons: "snoozed until …",
"dismissed on …".

A ``done`` event is a play: online decisions count those dated since the served run's decision
time, and the run counts those the book's touches do not hold yet (:func:`with_done_plays`), for
cooldowns, plays in flight and contact caps.

A lift's completion reads the ``done``, ``dismissed`` and ``snoozed`` events of its horizon with
the actions they are about, as these read them (:func:`completion_feedback`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final

import polars as pl

from nextmove.book import NO_ACTION, of_dates
from nextmove.decide.rules import HOLD_COLUMNS
from nextmove.measure.completion import FEEDBACK_COLUMNS
from nextmove.playbook import Playbook
from nextmove.store import FeedbackEvent, HoldEvent, RunRecord, Store

HOLD_WHY: Final[tuple[str, ...]] = ("snoozed", "dismissed")
"""Codes of the options a user's feedback holds back (:class:`FeedbackHold`), in receipts' ``why``."""

RUNS_SCANNED: Final[int] = 100
"""Succeeded runs looked through, newest first, for the one a dismissal that names nothing answers."""

_ACCOUNTS_PER_READ: Final[int] = 5_000
"""Accounts whose recommendations of one run are read in one query (an ``IN`` list of bound values)."""

_RECOMMENDED_ACTION: Final[Mapping[str, tuple[str]]] = {"account_id": ("account_id",), "action_id": ("action_id",)}
"""What a dismissal that names nothing reads of the recommendation it answers (:meth:`Store.recommendation_values`)."""


@dataclass(frozen=True)
class FeedbackHold:
    """An action (or every action) an account's users asked not to be given again before a time."""

    action_id: str | None
    """The action held back; None: every action (a snooze that names none)."""
    until: datetime
    """When the hold ends (UTC)."""
    why: str
    """``snoozed`` or ``dismissed``."""
    reason: str
    """In plain words, e.g. ``snoozed until 2026-10-05: customer on holiday``."""

    def holds(self, action_id: str) -> bool:
        """Whether this hold keeps ``action_id`` back (doing nothing is never held back)."""
        return action_id != NO_ACTION and (self.action_id is None or self.action_id == action_id)


def feedback_holds(
    events: Iterable[FeedbackEvent],
    playbook: Playbook,
    now: datetime,
    *,
    action_of: Callable[[FeedbackEvent], str | None] | None = None,
) -> list[FeedbackHold]:
    """What an account's ``snoozed`` and ``dismissed`` feedback holds back at ``now``.

    - A **snooze** holds its action back until its ``snoozed_until``; a snooze that names no
      action (and no decision) holds back every action, i.e. the account. A later snooze of the
      same action, or of every action, replaces the earlier one (snoozing again until an earlier
      day shortens it).
    - A **dismissal** holds its action back for the action's ``cooldown_days`` from when it was
      dismissed, as if it had been done, and at least for the contact policy's ``window_days``
      (an action without a cooldown does not come straight back either).

    An event's action is its ``action_id``, else what ``action_of`` says (the action of the decision
    it names; for a dismissal, that of the recommendation it answers); an event about ``none``, or
    an action the playbook no longer has, holds nothing back. Every event given counts, whenever it
    was sent: give only those that happened before ``now`` (a backtest's ``as_of``).

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.playbook.loader import load_playbook
    >>> pb, t = load_playbook(), datetime(2026, 9, 21, tzinfo=UTC)
    >>> events = [
    ...     FeedbackEvent(event_id="e1", account_id="a", kind="snoozed", ts=t, action_id="upsell_call",
    ...                   reason="customer on holiday", payload={"snoozed_until": "2026-10-05T00:00:00+00:00"}),
    ...     FeedbackEvent(event_id="e2", account_id="a", kind="dismissed", ts=t, action_id="nurture_email",
    ...                   reason="already in touch"),
    ... ]
    >>> for hold in feedback_holds(events, pb, t + timedelta(days=1)):  # doctest: +ELLIPSIS
    ...     print(hold.why, hold.action_id, "|", hold.reason)
    snoozed upsell_call | snoozed until 2026-10-05: customer on holiday
    dismissed nurture_email | dismissed on 2026-09-21 (already in touch); held back for its 30-day cooldown, ...
    >>> [h.action_id for h in feedback_holds(events, pb, datetime(2026, 10, 6, tzinfo=UTC))]
    ['nurture_email']
    """
    known = {a.id: a for a in playbook.actions}
    window = playbook.contact_policy.window_days
    snoozes: dict[str | None, FeedbackHold] = {}
    dismissals: list[FeedbackHold] = []
    ordered = sorted((e for e in events if e.kind in HOLD_WHY), key=lambda e: (e.ts, e.received_at or e.ts, e.event_id))
    for event in ordered:
        action = event.action_id or (action_of(event) if action_of is not None else None)
        if action == NO_ACTION or (action is not None and action not in known):
            continue
        said = (event.reason or "").strip()
        if event.kind == "snoozed":
            until = _snoozed_until(event)
            if until is None:
                continue
            whom = "snoozed" if action is not None else "the account is snoozed"
            # A later snooze of the same scope replaces an earlier one, even one already over.
            text = f"{whom} until {_day(until)}" + (f": {said}" if said else "")
            snoozes[action] = FeedbackHold(action, until, "snoozed", text)
        elif action is not None:
            cooldown = known[action].cooldown_days
            days = max(cooldown, window)
            until = _utc(event.ts) + timedelta(days=days)
            span = f"its {days}-day cooldown" if cooldown >= window else f"the {days}-day contact window"
            text = f"dismissed on {_utc(event.ts):%Y-%m-%d}" + (f" ({said})" if said else "")
            dismissals.append(
                FeedbackHold(action, until, "dismissed", f"{text}; held back for {span}, until {_day(until)}")
            )
    return [h for h in (*snoozes.values(), *dismissals) if h.until > now]


def last_hold(holds: Iterable[FeedbackHold], action_id: str) -> FeedbackHold | None:
    """The hold that ends last among those that keep ``action_id`` back (None: none does).

    Examples
    --------
    >>> t = datetime(2026, 10, 5, tzinfo=UTC)
    >>> holds = [FeedbackHold(None, t, "snoozed", "quiet"), FeedbackHold("qbr", t + timedelta(9), "dismissed", "no")]
    >>> last_hold(holds, "qbr").why, last_hold(holds, "demo").why, last_hold(holds, NO_ACTION)
    ('dismissed', 'snoozed', None)
    """
    return max((h for h in holds if h.holds(action_id)), key=lambda h: h.until, default=None)


def hold_action(item: HoldEvent, answered: Callable[[], str | None]) -> str | None:
    """The action ``item``'s event is about: what a snooze or dismissal holds back (None: a snooze of every action).

    Its ``action_id``; else the action of the decision its payload names (``decision_id``; None if
    the store has no such decision); else, for a snooze, None (it keeps the whole account quiet);
    for a dismissal, the action of the recommendation it answers: of its ``run_id`` if it names
    one, else what ``answered()`` says (of the run served when it was received, :func:`answering_run`).
    """
    event = item.event
    if event.action_id:
        return event.action_id
    decision_id = event.payload.get("decision_id") if isinstance(event.payload, Mapping) else None
    if isinstance(decision_id, str):
        return item.decision_action_id
    if event.kind != "dismissed":
        return None
    if event.run_id is not None:
        return item.run_action_id
    return answered()


def answering_run(
    received_at: datetime | None, served: RunRecord | None, earlier: Callable[[], Sequence[RunRecord]]
) -> str | None:
    """The run whose recommendation a dismissal that names nothing answers: the one served when it was received.

    The served run, if the event was received once it was made (or either time is unknown);
    else the latest promoted run of ``earlier()`` (:func:`promoted_runs`) that had finished by
    then, rollbacks aside; the served run if none had. So a dismissal keeps answering the
    recommendation it was sent about after a later run (which held that action back) is served.
    """
    made = None if served is None else (served.finished_at or served.created_at)
    if served is not None and (received_at is None or made is None or _utc(received_at) >= _utc(made)):
        return served.run_id
    if received_at is not None:
        for run in earlier():
            if _utc(run.finished_at or run.created_at) <= _utc(received_at):
                return run.run_id
    return None if served is None else served.run_id


def promoted_runs(store: Store) -> list[RunRecord]:
    """The succeeded runs not started with ``promote=False``, the latest finished first (of the newest 100)."""
    runs = [r for r in store.list_runs(RUNS_SCANNED, status="succeeded") if r.params.get("promote", True) is not False]
    return sorted(runs, key=lambda r: _utc(r.finished_at or r.created_at), reverse=True)


def read_holds(store: Store, playbook: Playbook, when: datetime) -> pl.DataFrame:
    """What the stored snoozes and dismissals hold back at ``when``: one row per held (account, action).

    The batch run's feedback step: every account's ``snoozed`` and ``dismissed`` events that
    happened at or before ``when`` (a backtest's ``as_of`` sees none sent later), with the actions
    of the decisions and recommendations they name, in one store read
    (:meth:`~nextmove.store.Store.hold_events`); dismissals that name nothing read the
    recommendations of the run they answer, once per such run. Each account's holds are those
    an online decision at ``when`` would apply (:func:`feedback_holds`, :func:`last_hold`), as the
    plain data :func:`~nextmove.decide.rules.check_rules` takes: ``account_id, action_id, why, reason``.
    """
    items = store.hold_events(until=when)
    if not items:
        return pl.DataFrame(schema=HOLD_COLUMNS)
    actions = _hold_actions(store, items)
    by_account: dict[str, list[FeedbackEvent]] = {}
    for item in items:
        by_account.setdefault(item.event.account_id, []).append(item.event)
    rows: list[tuple[str, str, str, str]] = []
    action_ids = playbook.action_ids
    for account_id, events in by_account.items():
        # Per action, the hold that ends last (the first of those that end together), as last_hold picks it.
        last: dict[str, FeedbackHold] = {}
        for hold in feedback_holds(events, playbook, when, action_of=lambda e: actions.get(e.event_id)):
            for action_id in action_ids if hold.action_id is None else (hold.action_id,):
                if action_id not in last or hold.until > last[action_id].until:
                    last[action_id] = hold
        rows.extend((account_id, action_id, hold.why, hold.reason) for action_id, hold in last.items())
    return pl.DataFrame(rows, schema=HOLD_COLUMNS, orient="row")


def _hold_actions(store: Store, items: Sequence[HoldEvent]) -> dict[str, str | None]:
    """The action each snooze or dismissal of ``items`` is about (:func:`hold_action`), by ``event_id``.

    Dismissals that name nothing answer the recommendation of the run served when they were
    received (:func:`answering_run`): that run's recommendations are read, one read per such run.
    """
    from nextmove.engine.online import served_run

    nameless = [item for item in items if _names_nothing(item)]
    served = served_run(store) if nameless else None
    scanned: list[list[RunRecord]] = []

    def earlier() -> list[RunRecord]:
        if not scanned:  # read only if a dismissal was sent before the served run was made
            scanned.append(promoted_runs(store))
        return scanned[0]

    answers: dict[str, str] = {}
    for item in nameless:
        run_id = answering_run(item.event.received_at, served, earlier)
        if run_id is not None:
            answers[item.event.event_id] = run_id
    recommended: dict[tuple[str, str], str] = {}
    wanted = sorted({(run_id, e.account_id) for e in (i.event for i in items) if (run_id := answers.get(e.event_id))})
    for run_id, pairs in itertools.groupby(wanted, key=lambda p: p[0]):
        accounts = [account for _, account in pairs]
        for start in range(0, len(accounts), _ACCOUNTS_PER_READ):
            chunk = accounts[start : start + _ACCOUNTS_PER_READ]
            # Only the action of each: never a receipt.
            for batch in store.recommendation_values(run_id, _RECOMMENDED_ACTION, account_ids=chunk):
                for account_id, action_id in batch:
                    recommended[(run_id, account_id)] = action_id
    return {
        item.event.event_id: hold_action(
            item, partial(recommended.get, (answers.get(item.event.event_id, ""), item.event.account_id))
        )
        for item in items
    }


def completion_feedback(store: Store, when: datetime, until: datetime) -> pl.DataFrame:
    """The ``done``, ``dismissed`` and ``snoozed`` events that happened in ``[when, until)``, for lift's completion.

    Each with the action it is about, as the run reads it: a ``done`` event's as for
    :func:`done_plays` (its ``action_id``, else its decision's, else its run's recommendation to the
    account; none: dropped), a snooze's or dismissal's as for holds (:func:`hold_action`; a snooze
    of no action is of the whole account, ``action_id`` null). An event sent as a date alone dated
    ``when``'s day counts as at ``when``. Two store reads (:meth:`~nextmove.store.Store.done_events`,
    :meth:`~nextmove.store.Store.hold_events`), plus one per run a dismissal that names nothing answers.
    Rows of :data:`nextmove.measure.completion.FEEDBACK_COLUMNS`.
    """
    start, end = _utc(when), _utc(until)
    day = _midnight(start)
    items = [
        *store.done_events(after=day - timedelta(microseconds=1), before=end),
        *(i for i in store.hold_events(until=end) if _utc(i.event.ts) >= day),
    ]
    items = [i for i in items if _utc(i.event.ts) < end and (_utc(i.event.ts) >= start or i.event.ts_is_date)]
    holds = _hold_actions(store, [i for i in items if i.event.kind in HOLD_WHY])
    rows: list[tuple[str, str | None, str, datetime]] = []
    for item in items:
        event = item.event
        action = (event.action_id or _named_action(item)) if event.kind == "done" else holds.get(event.event_id)
        if action is None and event.kind != "snoozed":
            continue  # a play nobody can name
        rows.append((event.account_id, action, event.kind, max(_utc(event.ts), start)))
    return pl.DataFrame(rows, schema=FEEDBACK_COLUMNS, orient="row")


def done_plays(
    store: Store,
    playbook: Playbook,
    touches: pl.DataFrame,
    when: datetime,
    *,
    accounts: Iterable[str],
    until: datetime | None = None,
) -> pl.DataFrame:
    """The plays reported ``done`` in the store that the book's touches cannot hold yet, as touches.

    Events of the book's ``accounts`` (a store shared by books keeps the others' feedback too),
    after the touches table's latest row (every event when it has none) and before ``until``
    (default ``when``): an export that ends earlier lacks them (a missing weekly export, a CRM that
    lags), while one that reaches past an event may hold its touch, which must not count twice.
    When the touches are dates (:func:`~nextmove.book.of_dates`), "after" is by day: an event on
    the touches' last day is that day's export's to hold. And an event whose account and action
    the touches already hold on or after the day before its own (a day's slack, as a CRM dates a
    play a day early or late) is that touch. Events at or after ``when`` (read when ``until`` is
    later: a run at the book's default as-of reads what was reported since) count as just before
    it. Later events are the online decisions' to count, at their own time
    (:func:`~nextmove.engine.online.online_touches`).

    An event's action is its ``action_id``, else that of the decision its payload names
    (``decision_id``), else that of its run's (``run_id``) recommendation to the account, as for a
    dismissal (:func:`hold_action`); one about ``none``, about an action the playbook does not
    have, or about no action is no play. One store read (:meth:`~nextmove.store.Store.done_events`).
    Rows ``account_id, action_id, ts`` (touches' dtypes), oldest first.
    """
    schema: dict[str, pl.DataType] = {
        "account_id": pl.String(),
        "action_id": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
    }
    has_ts = touches.height > 0 and "ts" in touches.columns
    latest = touches.get_column("ts").max() if has_ts else None
    after = _utc(latest) if isinstance(latest, datetime) else None
    if after is not None and of_dates(touches):
        after = _midnight(after) + timedelta(days=1) - timedelta(microseconds=1)
    start = _utc(when)
    end = max(start, _utc(until)) if until is not None else start
    book_accounts = set(accounts)
    known = set(playbook.action_ids)
    held = _latest_touches(touches) if has_ts and "action_id" in touches.columns else {}
    just_before = start - timedelta(microseconds=1)
    rows: list[tuple[str, str, datetime]] = []
    for item in store.done_events(after=after, before=end):
        event = item.event
        if event.account_id not in book_accounts:
            continue
        action = event.action_id or _named_action(item)
        if action is None or action not in known:
            continue
        ts = _utc(event.ts)
        touched = held.get((event.account_id, action))
        if touched is not None and touched >= _midnight(ts) - timedelta(days=1):
            continue
        rows.append((event.account_id, action, min(ts, just_before)))
    return pl.DataFrame(rows, schema=schema, orient="row")


def with_done_plays(
    store: Store,
    playbook: Playbook,
    touches: pl.DataFrame,
    when: datetime,
    notes: list[str],
    *,
    accounts: Iterable[str],
    until: datetime | None = None,
) -> pl.DataFrame:
    """``touches`` with the plays reported ``done`` since they end (:func:`done_plays`): what the run's rules count.

    Appends a note to ``notes`` saying how many there are, when there are any.
    """
    done = done_plays(store, playbook, touches, when, accounts=accounts, until=until)
    if done.height == 0:
        return touches
    latest = touches.get_column("ts").max() if touches.height else None
    since = f" after the book's latest touch ({_day(latest)})" if isinstance(latest, datetime) else ""
    plays = "play" if done.height == 1 else "plays"
    notes.append(
        f"{done.height:,} {plays} reported done (feedback){since} count as plays: for the cooldowns, plays in "
        "flight and contact caps, as online decisions count them"
    )
    return pl.concat([touches, done], how="diagonal_relaxed")


def _named_action(item: HoldEvent) -> str | None:
    """The action a ``done`` event without ``action_id`` names: its decision's, else its run's recommendation's."""
    event = item.event
    decision_id = event.payload.get("decision_id") if isinstance(event.payload, Mapping) else None
    if isinstance(decision_id, str):
        return item.decision_action_id
    return item.run_action_id if event.run_id is not None else None


def _latest_touches(touches: pl.DataFrame) -> dict[tuple[str, str], datetime]:
    """Each (account, action) of the touches with its latest time (UTC)."""
    latest = touches.group_by("account_id", "action_id").agg(pl.col("ts").max())
    return {
        (account, action): _utc(ts)
        for account, action, ts in latest.iter_rows()
        if isinstance(account, str) and isinstance(action, str) and isinstance(ts, datetime)
    }


def _midnight(when: datetime) -> datetime:
    """The UTC midnight that starts ``when``'s day."""
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


def _names_nothing(item: HoldEvent) -> bool:
    """Whether a dismissal names no action, decision or run: it answers the recommendation served when it was sent."""
    event = item.event
    if event.kind != "dismissed" or event.action_id or event.run_id is not None:
        return False
    decision_id = event.payload.get("decision_id") if isinstance(event.payload, Mapping) else None
    return not isinstance(decision_id, str)


def _snoozed_until(event: FeedbackEvent) -> datetime | None:
    value = event.payload.get("snoozed_until") if isinstance(event.payload, Mapping) else None
    if isinstance(value, datetime):
        return _utc(value)
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _day(when: datetime) -> str:
    """A day (``2026-10-05``), with its time when it is not midnight UTC (``2026-10-05 14:30 UTC``)."""
    when = _utc(when)
    if (when.hour, when.minute, when.second, when.microsecond) == (0, 0, 0, 0):
        return f"{when:%Y-%m-%d}"
    return f"{when:%Y-%m-%d %H:%M} UTC"
