"""How far a book's tables reach, as validate and a run read them: only the rows a run keeps (rows dated after
now are left out of both alike), and a table's spacing that of its days, not of its rows."""

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


def test_outcomes_on_month_ends_are_no_lagging_export() -> None:
    # A billing export that dates every outcome on its month-end: the last one, 2025-02-28, lies 20 days before
    # the signals' end, as every month does. Its ~10 rows a month made a mean spacing of 3 days, so 20 days
    # read as a stopped export.
    ids = [f"A{i:04d}" for i in range(100)]
    first, last = datetime(2024, 3, 1, tzinfo=UTC), datetime(2025, 3, 20, tzinfo=UTC)
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    month_ends = [d - timedelta(days=1) for d in days if d.day == 1 and d > first]
    frames = {
        "accounts": pl.DataFrame({"account_id": ids}),
        "signals": pl.DataFrame(
            [(a, day, "logins", 1.0) for day in days for a in ids[:20]],
            schema=["account_id", "ts", "name", "value"],
            orient="row",
        ),
        "outcomes": pl.DataFrame(
            [(ids[(m * 10 + k) % 100], end, "expansion", 10.0) for m, end in enumerate(month_ends) for k in range(10)],
            schema=["account_id", "ts", "kind", "value"],
            orient="row",
        ),
    }
    assert validate_book(frames, as_of=last + timedelta(days=1)).notes == []
    book = load_book(frames, as_of=last + timedelta(days=1))
    assert lagging_book_notes(book, last + timedelta(days=1)) == []
    # Three month-ends without one is a stopped export still: twice the longest gap the table has had.
    stopped = {**frames, "outcomes": frames["outcomes"].filter(pl.col("ts") < datetime(2024, 12, 1, tzinfo=UTC))}
    [note] = validate_book(stopped, as_of=last + timedelta(days=1)).notes
    assert note.startswith("the outcomes end 2024-11-30, 110 days before the book's other data (2025-03-20)")
    assert lagging_book_notes(load_book(stopped, as_of=last + timedelta(days=1)), last + timedelta(days=1)) == [note]
    # A touch log written in batches every two weeks that misses four of them has stopped, though its days are
    # 14 apart (five spacings: 70 days; it ends 62 days before the signals).
    batches = [d for d in days if (d - first).days % 14 == 0 and d <= last - timedelta(days=56)]
    touches = pl.DataFrame(
        [(a, "call", d + timedelta(hours=10)) for d in batches for a in ids[:30]],
        schema=["account_id", "action_id", "ts"],
        orient="row",
    )
    notes = validate_book({**frames, "touches": touches}, as_of=last + timedelta(days=1)).notes
    assert [n.split(":")[0] for n in notes] == [
        "the touch log ends 2025-01-17, 62 days before the signals (2025-03-20)"
    ]


_BULK_END_PEAK = """
import resource, numpy as np, polars as pl
from nextmove.book import Book, bulk_end, empty_table
n, accounts = 3_000_000, 50_000
rng = np.random.default_rng(0)
ids = pl.Series([f"A{i:06d}" for i in range(accounts)])
ts = pl.Series(np.datetime64("2024-01-01T00:00:00", "us") + rng.integers(0, 365 * 86_400, n).astype("timedelta64[s]"))
signals = pl.DataFrame({"account_id": ids.gather(rng.integers(0, accounts, n)), "ts": ts.dt.replace_time_zone("UTC")})
signals = signals.with_columns(name=pl.lit("logins"), value=pl.lit(1.0))
touches = signals.head(n // 10).select("account_id", "ts", action_id=pl.lit("call"))
book = Book(pl.DataFrame({"account_id": ids}), signals, touches, empty_table("outcomes"))
read = sum(f.select("account_id", "ts").estimated_size() for f in (book.signals, book.touches))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
bulk_end(book)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / read)
"""


def test_where_most_of_a_large_book_ends_is_found_without_copying_its_rows() -> None:
    # bulk_end concatenated every table's account_id and ts before grouping them: its peak grew by 3.7 times
    # their size (+577 MiB at 10M signals); each table grouped alone (lazily) adds about their size.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _BULK_END_PEAK], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 2.0, out.stdout
