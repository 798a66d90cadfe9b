"""The checks of feedback events before they are stored: the accounts, actions, decisions and outcomes they name."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from nextmove.api.errors import InvalidRequestError
from nextmove.api.schemas import FeedbackIn
from nextmove.api.service import MAX_NAMES_LISTED, Services
from nextmove.book import NO_ACTION
from nextmove.errors import NotFoundError
from nextmove.store import FeedbackEvent

MAX_PROBLEMS_SHOWN = 5
"""Problems spelled out in an error's message; ``problems`` lists them all."""


def check_feedback(services: Services, events: Sequence[FeedbackIn], now: datetime) -> None:
    """Refuse events that name what the server does not have, unless they are stored already.

    An event already stored (the same ``event_id``, account and body) is a retry and is answered
    as before (not stored again): a snooze retried after its ``snoozed_until`` has passed, say.
    An ``event_id`` stored for another event is no retry: the store refuses it (a 409).

    Raises
    ------
    NotFoundError
        If an event's account is in neither the served run nor the book (when the server has either).
    InvalidRequestError
        If an action is not in the playbook, a decision is not the account's, an outcome kind is
        measured by no objective, or a snooze has no ``snoozed_until`` or one in the past; with one
        problem per field.
    """
    unknown: dict[int, str] = {}
    problems: dict[int, list[dict[str, Any]]] = {}
    knows_accounts = services.decider.snapshot is not None or services.config.book is not None
    for i, event in enumerate(events):
        if knows_accounts and not services.knows_account(event.account_id, look_again=False):
            unknown[i] = (
                f"events.{i}.account_id: no account {event.account_id!r} in the served run or the book"
                + services.id_twin_note(event.account_id)
            )
        found = _problems(services, event, now)
        if found:
            problems[i] = [{"field": f"events.{i}.{field}", "problem": problem} for field, problem in found]
    if unknown and services.books is not None and not services.books.in_database:
        # The book's files may have changed since they were read: one look for the whole batch.
        services.refresh_book()
        unknown = {
            i: text for i, text in unknown.items() if not services.knows_account(events[i].account_id, look_again=False)
        }
    if not unknown and not problems:
        return
    stored = _stored_event_ids(services, [events[i] for i in {*unknown, *problems}], now)
    unknown = {i: text for i, text in unknown.items() if events[i].event_id not in stored}
    if unknown:
        raise NotFoundError("; ".join(list(unknown.values())[:MAX_PROBLEMS_SHOWN]))
    listed = [p for i, found in problems.items() if events[i].event_id not in stored for p in found]
    if listed:
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in listed[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(listed) - MAX_PROBLEMS_SHOWN} more)" if len(listed) > MAX_PROBLEMS_SHOWN else ""
        raise InvalidRequestError(f"the events name what the server does not have: {summary}{more}", listed)


def _problems(services: Services, event: FeedbackIn, now: datetime) -> list[tuple[str, str]]:
    playbook = services.config.playbook
    out: list[tuple[str, str]] = []
    actions = [*playbook.action_ids, NO_ACTION]
    if event.action_id is not None and event.action_id not in actions:
        out.append(("action_id", f"no action {event.action_id!r} in the playbook; its actions: {_names(actions)}"))
    kinds = services.outcome_kinds
    if event.kind == "outcome":
        example = next((o.outcome for o in playbook.objectives.values()), kinds[0] if kinds else "churn")
        if event.outcome is None:
            out.append(("outcome", f'an outcome event needs outcome, e.g. {{"kind": "{example}", "value": 1.0}}'))
        elif event.outcome.kind not in kinds:
            out.append(
                (
                    "outcome.kind",
                    f"neither the playbook's objectives nor the book know outcome kind {event.outcome.kind!r}; "
                    f"the outcome kinds: {_names(kinds)}",
                )
            )
    if event.kind == "snoozed":
        if event.snoozed_until is None:
            out.append(("snoozed_until", "a snoozed event needs snoozed_until: until when to keep it quiet (ISO 8601)"))
        elif event.snoozed_until <= now:
            out.append(
                (
                    "snoozed_until",
                    f"{event.snoozed_until.isoformat()} is not in the future "
                    f"(now: {now.isoformat(timespec='seconds')}); send when to bring it back",
                )
            )
    if event.decision_id is not None:
        try:
            decision = services.store.get_decision(event.decision_id)
        except NotFoundError:
            decision = None
        # One answer whether it does not exist or is another account's: a decision is not revealed.
        if decision is None or decision.account_id != event.account_id:
            out.append(
                (
                    "decision_id",
                    f"no decision {event.decision_id!r} for account {event.account_id!r}; send the decision_id "
                    "POST /v1/decide answered for this account",
                )
            )
    return out


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_LISTED])
    return shown + (f" … ({len(names)} in all)" if len(names) > MAX_NAMES_LISTED else "")


def _stored_event_ids(services: Services, events: Sequence[FeedbackIn], now: datetime) -> set[str]:
    """The ids of ``events`` stored as these very events (retries); read only when an event was refused."""
    wanted: dict[str, FeedbackEvent] = {}
    for event in events:
        wanted.setdefault(event.event_id, event.to_event(now))
    stored: set[str] = set()
    for account_id in sorted({e.account_id for e in events}):
        stored |= {
            e.event_id
            for e in services.store.feedback(account_id=account_id)
            if e.event_id in wanted and wanted[e.event_id].same_event_as(e)
        }
    return stored
