"""``--outcomes-until``: the outcomes said complete through a date, checked, and the notes that say what it changes.

A training set censors each past decision at the outcomes' end (:func:`~nextmove.features.outcomes_seen_until`):
a horizon running past the last outcome is not over, because an export that stopped and a quiet spell
look the same. A user whose book had no outcome lately says how far the outcomes are complete, and the
decisions whose horizon ends by then are learned from as finished, with no outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from nextmove.book.model import as_utc
from nextmove.book.notes import day_text, last_day
from nextmove.book.parse import parse_day_or_time
from nextmove.errors import ConfigError

LAG_NOTE_START = "the outcomes end "
"""How the note of outcomes ending before the rest begins (:func:`~nextmove.book.notes.lagging_outcomes_note`)."""

OPTION = "--outcomes-until"


def outcomes_until_instant(value: datetime | date) -> datetime:
    """The instant up to which outcomes are complete: a date is the whole day (the midnight after it), a time itself.

    Examples
    --------
    >>> outcomes_until_instant(date(2026, 3, 31)).isoformat()
    '2026-04-01T00:00:00+00:00'
    >>> outcomes_until_instant(datetime(2026, 3, 31, 12, 0)).isoformat()
    '2026-03-31T12:00:00+00:00'
    """
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime.combine(value + timedelta(days=1), time(), tzinfo=UTC)
    raise ConfigError(f"outcomes_until must be a date or a datetime, got {value!r}")


def until_instant(value: datetime | date | str, *, what: str = "observed_until") -> datetime:
    """A cut-off given from Python (``observed_until``) as the instant it ends, as the command line reads one.

    A date, or ISO 8601 text of a date alone (``"2026-01-14"``), is that whole day: the midnight (UTC)
    after it (:func:`outcomes_until_instant`), as ``--until`` and ``--outcomes-until`` read one. A
    datetime, or text with a time, is that instant (naive: UTC).

    Raises
    ------
    ConfigError
        If ``value`` is none of those (``what`` names it).

    Examples
    --------
    >>> until_instant(date(2026, 1, 14)).isoformat(), until_instant("2026-01-14").isoformat()
    ('2026-01-15T00:00:00+00:00', '2026-01-15T00:00:00+00:00')
    >>> until_instant(datetime(2026, 1, 14)).isoformat(), until_instant("2026-01-14T12:00+02:00").isoformat()
    ('2026-01-14T00:00:00+00:00', '2026-01-14T10:00:00+00:00')
    """
    if isinstance(value, str):
        try:
            value = parse_day_or_time(value)
        except ValueError as exc:
            if "no such" in str(exc):
                raise ConfigError(f"{what} {value!r}: {exc}") from None
            raise ConfigError(
                f"{what} {value!r} is not an ISO 8601 time; write e.g. 2026-01-14 or 2026-01-14T12:00:00Z"
            ) from None
    if not isinstance(value, date):  # a datetime is a date too
        raise ConfigError(f"{what} must be a datetime, a date or ISO 8601 text, got {type(value).__name__}: {value!r}")
    return outcomes_until_instant(value)


def checked_outcomes_until(value: datetime | date | None, when: datetime) -> datetime | None:
    """``value`` as an instant (:func:`outcomes_until_instant`), refused when after the decision time ``when``.

    Raises
    ------
    ConfigError
        If the outcomes are said complete past ``when``: nothing after the decision time is read.

    Examples
    --------
    >>> checked_outcomes_until(date(2026, 3, 31), datetime(2026, 4, 1, tzinfo=UTC)).isoformat()
    '2026-04-01T00:00:00+00:00'
    >>> checked_outcomes_until(date(2026, 4, 1), datetime(2026, 4, 1, tzinfo=UTC))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nextmove.errors.ConfigError: --outcomes-until 2026-04-01 (outcomes_until) says the outcomes are complete through ...
    """
    if value is None:
        return None
    until = outcomes_until_instant(value)
    at = as_utc(when)
    if until > at:
        given = value.isoformat() if not isinstance(value, datetime) else day_text(until)
        through = f"through {value.isoformat()}" if not isinstance(value, datetime) else f"up to {day_text(until)}"
        latest = (at - timedelta(days=1)).date() if at.time() == time() else at.date()
        raise ConfigError(
            f"{OPTION} {given} (outcomes_until) says the outcomes are complete {through}, past the decision time "
            f"{day_text(at)} (--as-of; nothing after it is read): give {latest.isoformat()} or earlier"
        )
    return until


def outcomes_until_notes(
    notes: Iterable[str | None], until: datetime | date | None, outcomes_reach: datetime | None
) -> list[str]:
    """``notes`` (a book's), with what ``until`` changes: the lag note of the outcomes gives way to what was said.

    Without ``until``, the note of outcomes that end before the rest gets the way out for a quiet spell.
    With it, that note is replaced by one saying how far the outcomes are taken as complete, and how far
    past the latest outcome that is (``outcomes_reach``, :func:`~nextmove.book.table_reach`); a date ``until`` is
    that whole day (:func:`outcomes_until_instant`).
    """
    out: list[str] = []
    for note in notes:
        if note is None:
            continue
        if not note.startswith(LAG_NOTE_START):
            out.append(note)
        elif until is None:
            out.append(
                f"{note}; if there were none since (a quiet spell, not an export that stopped), say so with "
                f"{OPTION} DATE: the outcomes are then taken as complete through DATE"
            )
    if until is not None:
        out.append(outcomes_until_note(outcomes_until_instant(until), outcomes_reach))
    return out


def outcomes_until_note(until: datetime, outcomes_reach: datetime | None) -> str:
    """What ``--outcomes-until`` does to the training set, against where the outcomes end.

    Examples
    --------
    >>> print(outcomes_until_note(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)))
    ... # doctest: +NORMALIZE_WHITESPACE
    the outcomes are taken as complete through 2026-03-31 (--outcomes-until), 59 days past the latest one
    (2026-01-31): a past decision whose horizon ends by then is learned from as finished, with no outcome
    since counted as none
    """
    through = last_day(until)
    if outcomes_reach is None:
        return (
            f"the outcomes are taken as complete through {through} ({OPTION}): the book has none, so every past "
            "decision whose horizon ends by then is learned from as finished, with no outcome"
        )
    reach = as_utc(outcomes_reach)
    if until < reach:
        return (
            f"the outcomes are taken as complete through {through} ({OPTION}), before the latest one "
            f"({last_day(reach)}): a past decision whose horizon runs past it is not learned from as finished, "
            "and the outcomes after it do not count in any label"
        )
    days = (until - reach).days
    gap = "" if days < 1 else f", {days} day{'s' if days != 1 else ''} past the latest one ({last_day(reach)})"
    return (
        f"the outcomes are taken as complete through {through} ({OPTION}){gap}: a past decision whose horizon ends "
        "by then is learned from as finished, with no outcome since counted as none"
    )
