"""validate reads the times of the rows a run keeps: rows dated after now are left out of both alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from nextmove.book import default_as_of
from nextmove.book.notes import lagging_book_notes
from nextmove.book.validate import load_book, validate_book


def _book(*, scheduled_touches: int, future_outcomes: int) -> dict[str, pl.DataFrame]:
    """120 accounts with a signal a day up to yesterday, touches and outcomes that stop 60 days ago, and
    ``scheduled_touches`` touches and ``future_outcomes`` outcomes dated 60 days from now."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, stopped, ahead = today - timedelta(days=200), today - timedelta(days=60), today + timedelta(days=60)
    ids = [f"A{i:04d}" for i in range(120)]
    days = [first + timedelta(days=d) for d in range((today - first).days)]
    signals = [(a, day + timedelta(hours=8 + i % 9), "logins", float(i % 7)) for day in days for i, a in enumerate(ids)]
    touches = [
        (a, "nurture_email", day + timedelta(hours=10))
        for d, day in enumerate(days)
        if day <= stopped
        for i, a in enumerate(ids)
        if (i + d) % 7 == 0
    ] + [(ids[i], "nurture_email", ahead + timedelta(hours=10)) for i in range(scheduled_touches)]
    outcomes = [(ids[(d * 7) % 120], day, "expansion", 100.0) for d, day in enumerate(days) if day <= stopped]
    outcomes += [(ids[i], ahead, "renewal", 1.0) for i in range(future_outcomes)]
    return {
        "accounts": pl.DataFrame({"account_id": ids}),
        "signals": pl.DataFrame(signals, schema=["account_id", "ts", "name", "value"], orient="row"),
        "touches": pl.DataFrame(touches, schema=["account_id", "action_id", "ts"], orient="row"),
        "outcomes": pl.DataFrame(outcomes, schema=["account_id", "ts", "kind", "value"], orient="row"),
    }


def _time_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if "dated after now" not in n]


def test_validate_gives_the_lag_notes_a_run_gives_when_rows_lie_after_now() -> None:
    # Touches and outcomes stop 60 days ago, but a few are scheduled ahead: a run leaves those out and notes
    # both lags; validate read every row, so each table seemed to reach the future and neither lag was said.
    frames = _book(scheduled_touches=10, future_outcomes=20)
    book = load_book(frames)
    when = default_as_of(book)
    assert when is not None
    run_notes = lagging_book_notes(book, when)
    assert [n.split(" ")[:3] for n in run_notes] == [["the", "touch", "log"], ["the", "outcomes", "end"]]
    assert _time_notes(validate_book(frames).notes) == run_notes


def test_validate_does_not_name_scheduled_rows_as_far_after_the_rest() -> None:
    # Two touches scheduled 60 days ahead were named "lie 60 days after the rest … every command reads the
    # book as of the midnight after the latest", untrue: a run leaves them out until their time.
    notes = validate_book(_book(scheduled_touches=2, future_outcomes=0)).notes
    assert not any("after the rest of the table" in n for n in notes)
    assert any("2 row(s) are dated after now" in n for n in notes)
