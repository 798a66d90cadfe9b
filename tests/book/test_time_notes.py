"""Where a book's tables end and how their times are read: the default as-of, dates among times, rows far
after the rest, double exports, and exports that stop before the rest of the data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from nextmove.book import bulk_end, default_as_of, latest_timestamp, of_dates
from nextmove.book.notes import lagging_book_notes
from nextmove.book.validate import load_book, stale_as_of_note, validate_book

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 3, 31, tzinfo=UTC)
"""The export's last day: every table holds rows up to it."""


def _days(first: datetime, last: datetime) -> list[datetime]:
    return [first + timedelta(days=d) for d in range((last - first).days + 1)]


def write_book(
    folder: Path,
    *,
    accounts: int = 120,
    touches_until: datetime = END,
    outcomes_until: datetime = END,
    extra: dict[str, list[str]] | None = None,
) -> Path:
    """A book of ``accounts`` accounts: a signal a day with a time of day (in several offsets), a touch a week
    (times), and dated outcomes, a churn or an expansion every day or so; ``extra`` lines are appended."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"A{i:04d}" for i in range(accounts)]
    lines = {name: [header] for name, header in _HEADERS.items()}
    lines["accounts"] += [f"{a},{1000 + i}" for i, a in enumerate(ids)]
    for d, day in enumerate(_days(START, END)):
        for i, a in enumerate(ids):
            hour = 8 + (i + d) % 10
            lines["signals"].append(
                f"{a},{day + timedelta(hours=hour, minutes=i % 60):%Y-%m-%dT%H:%M:%SZ},logins,{i % 7}"
            )
            if (i + d) % 7 == 0 and day <= touches_until:
                lines["touches"].append(f"{a},nurture_email,{day + timedelta(hours=hour):%Y-%m-%dT%H:%M:%S}+01:00")
        if day <= outcomes_until:
            lines["outcomes"].append(f"{ids[(d * 7) % accounts]},{day:%Y-%m-%d},expansion,100")
    for name, rows in (extra or {}).items():
        lines[name] += rows
    for name, rows in lines.items():
        (folder / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


_HEADERS = {
    "accounts": "account_id,arr",
    "signals": "account_id,ts,name,value",
    "touches": "account_id,action_id,ts",
    "outcomes": "account_id,ts,kind,value",
}


def test_the_default_as_of_reads_the_last_day_of_dated_outcomes_when_the_signals_have_times(tmp_path: Path) -> None:
    # Signals end the day before, at 17:50; outcomes (dates) on the last day: 40 churns were ignored, the
    # book read as of that day's midnight because the latest row was a midnight in a book with times.
    churns = [f"A{i:04d},{END + timedelta(days=1):%Y-%m-%d},churn,1" for i in range(40)]
    book = load_book(write_book(tmp_path / "book", extra={"outcomes": churns}))
    assert latest_timestamp(book) == END + timedelta(days=1)
    assert default_as_of(book) == END + timedelta(days=2)  # the outcomes' last day is read whole
    # A table with times reaches its latest time, rounded up to a midnight.
    timed = load_book(write_book(tmp_path / "timed", outcomes_until=END - timedelta(days=3)))
    assert default_as_of(timed) == END + timedelta(days=1)


def test_one_timestamped_outcome_leaves_dated_outcomes_dates_and_is_noted(tmp_path: Path) -> None:
    # One 2024 expansion at 10:00 switched every outcome of the book from dates to times (and the lift with it).
    row = "A0001,2025-02-01T10:00:00Z,expansion,50"
    folder = write_book(tmp_path / "book", extra={"outcomes": [row]})
    book = load_book(folder)
    assert of_dates(book.outcomes)
    notes = validate_book(folder).notes
    rows = book.outcomes.height
    assert (
        f"{folder / 'outcomes.csv'}: 1 of its {rows} rows has a time of day (row {rows}, 2025-02-01 10:00 UTC) "
        "while the others are dates: the table is read as dates, and that row counts for its whole day, "
        "as a date would"
    ) in notes
    # Many times among dates make a table of times, as before.
    mixed = book.outcomes.with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 0).then(pl.col("ts") + timedelta(hours=3)).otherwise(pl.col("ts"))
    )
    assert not of_dates(mixed)


def test_validate_notes_rows_written_as_dates_alone_in_a_table_of_times(tmp_path: Path) -> None:
    # Health checks logged as dates (2025-03-31) in a touch log of times: read as the instant the day begins.
    checks = [f"A{i:04d},health_check_call,{END:%Y-%m-%d}" for i in range(30)]
    folder = write_book(tmp_path / "book", extra={"touches": checks})
    [note] = [n for n in validate_book(folder).notes if "written as dates alone" in n]
    first = len((folder / "touches.csv").read_text().splitlines()) - 30  # the header is no row
    assert note.startswith(f"{folder / 'touches.csv'}: 30 of its ")
    assert f"(the first: row {first}, '2025-03-31')" in note
    assert validate_book(write_book(tmp_path / "plain")).notes == []


def test_validate_notes_a_latest_row_far_after_the_rest_of_its_table(tmp_path: Path) -> None:
    # 2026-03-01 for 2025-03-01: the default as-of moved a year ahead, silently.
    folder = write_book(tmp_path / "book", extra={"signals": ["A0005,2026-03-01T10:00:00Z,logins,1"]})
    rows = len((folder / "signals.csv").read_text().splitlines()) - 1
    notes = validate_book(folder).notes
    assert notes == [
        f"{folder / 'signals.csv'}: its latest row (row {rows}, 2026-03-01 10:00 UTC) lies 334 days after the "
        "rest of the table (whose latest is 2025-03-31 17:50 UTC): is its date right? Without --as-of every "
        "command reads the book as of the midnight after it, when every other account's data is long past"
    ]  # the touches and outcomes, which end with the rest, are not said to lag a year behind
    book = load_book(folder)
    when = default_as_of(book)
    assert when == datetime(2026, 3, 2, tzinfo=UTC)
    end = bulk_end(book)
    assert end is not None
    assert end.date() == END.date()  # where 99 % of the accounts' latest rows are
    note = stale_as_of_note(end, when, latest=latest_timestamp(book))
    assert note is not None
    assert note.startswith("the decision time 2026-03-02 is 335 days after most of the book's data ends (2025-03-31)")
    assert "the book's latest row, 2026-03-01, lies 334 days beyond the rest" in note
    assert lagging_book_notes(book, when) == []
    # validate --as-of says it too, in the same words.
    assert note in validate_book(folder, run_as_of=when).notes


def test_validate_notes_rows_repeated_by_a_double_export(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book")
    signals = (folder / "signals.csv").read_text().splitlines()
    touches = (folder / "touches.csv").read_text().splitlines()
    # 500 signal rows written twice, and 60 touches again with an id the first export lacked.
    (folder / "signals.csv").write_text("\n".join([*signals, *signals[1:501]]) + "\n")
    (folder / "touches.csv").write_text(
        "\n".join(
            ["account_id,action_id,ts,touch_id"]
            + [f"{line}," for line in touches[1:]]
            + [f"{line},T{i}" for i, line in enumerate(touches[1:61])]
        )
        + "\n"
    )
    notes = validate_book(folder).notes
    assert notes == [
        "the touches table has 60 rows that repeat an earlier row in every column but touch_id (the first: "
        "A0000's nurture_email at 2025-01-01 07:00 UTC): each counts again in every sum and count of the features "
        "and labels; if the table was exported twice, remove the repeats (nextmove keeps them: two alike rows "
        "can be two real events)",
        "the signals table has 500 rows that repeat an earlier row in every column (the first: A0000's logins "
        "at 2025-01-01 08:00 UTC): each counts again in every sum and count of the features and labels; if the "
        "table was exported twice, remove the repeats (nextmove keeps them: two alike rows can be two real events)",
    ]
    # A few alike rows among many (two events in one second) are no double export.
    (folder / "signals.csv").write_text("\n".join([*signals, *signals[1:11]]) + "\n")
    assert not any(n.startswith("the signals table has") for n in validate_book(folder).notes)


def test_validate_and_a_run_note_a_touch_log_and_outcomes_that_stop_before_the_rest(tmp_path: Path) -> None:
    stopped = END - timedelta(days=60)
    folder = write_book(tmp_path / "book", touches_until=stopped, outcomes_until=stopped)
    touches = (
        "the touch log ends 2025-01-30, 60 days before the signals (2025-03-31): plays made since are not in the "
        "book, so the cooldowns and the in-flight limits do not see them and the decisions since are learned as "
        "untouched; if the touches are exported apart from the rest, add the recent ones"
    )
    outcomes = (
        "the outcomes end 2025-01-30, 60 days before the book's other data (2025-03-31): a decision whose "
        "horizon runs past that is not learned from as finished, and an account that churned since is still "
        "taken as active; if the outcomes are exported apart from the rest, add the recent ones"
    )
    assert validate_book(folder).notes == [touches, outcomes]
    book = load_book(folder)
    when = default_as_of(book)
    assert when is not None
    assert lagging_book_notes(book, when) == [touches, outcomes]  # a run's and health's notes, in the same words
    # A backtest decided before they stop: nothing lags then.
    assert lagging_book_notes(book, stopped) == []
    # Ended a week early: a table that ends so is no sign of a stopped export.
    assert validate_book(write_book(tmp_path / "week", touches_until=END - timedelta(days=7))).notes == []
