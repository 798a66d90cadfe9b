"""Notes on a book's times and rows that ``nextmove validate`` and the commands that read a book share.

None of these is a problem of the contract: a book with them is valid, but what a run learns or
decides from it is wrong in a way nothing else says. Each note is built by one function from plain
figures, so ``validate`` (which reads the files without loading them) and a run (which reads the
loaded book) say the same thing in the same words, and a command prints it once.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

import polars as pl

from nextmove.book.model import Book, are_dates, as_utc, reach_of

TOUCHES_LAG_DAYS = 28
"""A touch log that ends this many days or more before the signals gets a note (a sparse one, longer:
:data:`GAP_SPACINGS`). Two of the playbook's default 14-day decision windows without one logged touch,
while the usage data runs on, is an export that stopped rather than teams that stopped working: the
cooldowns and in-flight limits then see no play made since, and the decisions since are learned as
untouched."""

OUTCOMES_LAG_DAYS = 14
"""Outcomes that end this many days or more before the book's other data get a note (sparse ones,
longer: :data:`GAP_SPACINGS`). Then, and only then (:func:`outcomes_lag`), the training set censors the
decisions whose horizon runs past the outcomes' end (:func:`~nextmove.features.outcomes_seen_until`); the
note says why fewer are learned from, and that an account that churned since still counts as active. Two
weeks, one default decision window, is short enough to catch a monthly export that missed its last run."""

GAP_SPACINGS = 5
"""A table's rows end well before the rest, or its latest rows lie far after the others, only across a gap
of this many mean spacings of its days or more (the days with a row: a table whose rows all fall on
month-ends has a spacing of a month, however many rows each month-end holds): in a sparse table (a few
outcomes a month) weeks without a row are how it goes, and days with rows that come at random leave a gap
of five mean spacings less than 1 % of the time (e⁻⁵)."""

LONGEST_GAPS = 2
"""A table's rows also end well before the rest across a gap of this many times the longest it has had between
two of its days with a row, if that is shorter than :data:`GAP_SPACINGS` mean spacings: a log written on a
schedule (touches every two weeks, outcomes on month-ends) has gaps all alike, and four batches missing (56
days of a fortnightly log) is an export that stopped, though not five of its spacings."""

FAR_LATEST_DAYS = 28
"""The latest rows of a table (up to :data:`FAR_LATEST_ROWS`) get a note when they lie this many days or
more after the rest of it (and :data:`GAP_SPACINGS` of its spacings): a date typed wrong (2026 for 2025)
rather than a quiet month. Without ``--as-of`` every command reads the book as of its latest row, and
28 days on every 7- and 28-day feature window is empty (:data:`~nextmove.book.validate.STALE_AS_OF_DAYS`)."""

FAR_LATEST_ROWS = 5
"""At most this many latest rows are told apart from the rest of their table (:data:`FAR_LATEST_DAYS`)."""

DUPLICATE_SHARE = 0.01
"""A table whose rows repeat an earlier row (in every column but its id) this share of the time or more gets a
note. A double export writes a whole file, or a whole day of it, twice; a few repeats among many rows are
more likely two real events in one second (the lab's satisfaction surveys have some), and move the book's
sums and counts by less than 1 %."""

ID_COLUMNS = {"touches": "touch_id", "outcomes": "outcome_id"}
"""The id column of a table that duplicate rows are compared without: a double export may number its copies anew."""

NAME_COLUMNS = {"signals": "name", "touches": "action_id", "outcomes": "kind"}
"""The column that says what a row of a table is, shown in a duplicate row's example."""


def day_text(when: datetime) -> str:
    """A time as a note shows it: the date alone at a UTC midnight, else the date and the time in UTC.

    Examples
    --------
    >>> day_text(datetime(2025, 3, 1, tzinfo=UTC)), day_text(datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    ('2025-03-01', '2025-03-01 09:30 UTC')
    """
    at = as_utc(when)
    return f"{at:%Y-%m-%d}" if at == datetime(at.year, at.month, at.day, tzinfo=UTC) else f"{at:%Y-%m-%d %H:%M} UTC"


def option_time(when: datetime) -> str:
    """A time as a cut-off option's value (``--until``, ``--outcomes-until``), which reads a date alone as that
    whole day: a UTC midnight is the date of the day it ends, any other time ISO 8601 in UTC.

    Examples
    --------
    >>> option_time(datetime(2025, 3, 1, tzinfo=UTC)), option_time(datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    ('2025-02-28', '2025-03-01T09:30:00Z')
    """
    at = as_utc(when)
    if at == datetime(at.year, at.month, at.day, tzinfo=UTC):
        return f"{at - timedelta(days=1):%Y-%m-%d}"
    return f"{at:%Y-%m-%dT%H:%M:%SZ}"


def last_day(reach: datetime) -> str:
    """The last day a table reaching ``reach`` has seen (the day before the midnight a table of dates reaches).

    Examples
    --------
    >>> last_day(datetime(2024, 12, 1, tzinfo=UTC)), last_day(datetime(2024, 12, 1, 15, tzinfo=UTC))
    ('2024-11-30', '2024-12-01')
    """
    return f"{reach - timedelta(microseconds=1):%Y-%m-%d}"


def _days_between(earlier: datetime, later: datetime) -> int:
    """Calendar days from the last day a table reaching ``earlier`` has seen to that of one reaching ``later``."""
    return (as_utc(later) - timedelta(microseconds=1)).date().toordinal() - (
        as_utc(earlier) - timedelta(microseconds=1)
    ).date().toordinal()


def _days(n: int) -> str:
    return f"{n:,} day" if n == 1 else f"{n:,} days"


def wide_gap(
    gap: timedelta, days: int, first: datetime, last: datetime, dated: int, longest: timedelta | None = None
) -> bool:
    """Whether ``gap`` after (or before) rows on ``dated`` distinct days from ``first`` to ``last`` is ``days``
    days or more, and :data:`GAP_SPACINGS` of their days' mean spacings or more, or :data:`LONGEST_GAPS` times
    ``longest`` (the longest gap between two of those days) if that is shorter. Rows on one day have no
    spacing to tell by: ``days`` days alone.

    Examples
    --------
    >>> year = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 31, tzinfo=UTC)
    >>> wide_gap(timedelta(days=30), 28, *year, dated=366), wide_gap(timedelta(days=30), 28, *year, dated=12)
    (True, False)
    >>> wide_gap(timedelta(days=56), 28, *year, dated=27, longest=timedelta(days=14))  # four fortnights missed
    True
    """
    if gap < timedelta(days=days):
        return False
    if dated < 2:
        return True
    limit = GAP_SPACINGS * (as_utc(last) - as_utc(first)) / (dated - 1)
    if longest is not None and longest > timedelta(0):
        limit = min(limit, LONGEST_GAPS * longest)
    return gap >= limit


@dataclass(frozen=True)
class TableSpan:
    """A table's rows with a time: the first time, how far they reach (:func:`~nextmove.book.table_reach`), on how
    many distinct (UTC) days."""

    first: datetime
    reach: datetime
    dated: int
    longest: timedelta | None = None
    """The longest gap between two of its days with a row (None: unknown)."""

    def lags(self, behind: datetime, days: int) -> bool:
        """Whether the table ends before ``behind`` by a wide gap (:func:`wide_gap`) of ``days`` days or more."""
        return wide_gap(as_utc(behind) - as_utc(self.reach), days, self.first, self.reach, self.dated, self.longest)


def table_span(
    first: datetime | None,
    latest: datetime | None,
    rows: int,
    midnights: int,
    dated: int,
    longest: timedelta | None = None,
) -> TableSpan | None:
    """A table's span from its figures: its first and latest times, its rows with a time, how many at a midnight,
    on how many distinct days, the longest gap between two of them."""
    if first is None or latest is None:
        return None
    return TableSpan(as_utc(first), reach_of(latest, dates=are_dates(midnights, rows)), dated, longest)


def lagging_touches_note(touches: TableSpan | None, signals: datetime | None, when: datetime) -> str | None:
    """A note when the touch log ends :data:`TOUCHES_LAG_DAYS` days or more before the signals, up to ``when``.

    ``touches`` is the touch log's span, ``signals`` how far the signals reach
    (:func:`~nextmove.book.table_reach`), ``when`` the decision time: what the signals hold after it
    does not count. A sparse log must end longer before (:func:`wide_gap`).

    Examples
    --------
    >>> log = TableSpan(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC), 335)
    >>> print(lagging_touches_note(log, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)))
    ... # doctest: +NORMALIZE_WHITESPACE
    the touch log ends 2024-11-30, 121 days before the signals (2025-03-31): plays made since are not in the
    book, so the cooldowns and the in-flight limits do not see them and the decisions since are learned as
    untouched; if the touches are exported apart from the rest, add the recent ones
    """
    if touches is None or signals is None:
        return None
    seen = min(as_utc(signals), as_utc(when))
    if not touches.lags(seen, TOUCHES_LAG_DAYS):
        return None
    days = _days(_days_between(touches.reach, seen))
    return (
        f"the touch log ends {last_day(touches.reach)}, {days} before the signals ({last_day(seen)}): "
        "plays made since are not in the book, so the cooldowns and the in-flight limits do not see them and the "
        "decisions since are learned as untouched; if the touches are exported apart from the rest, add the "
        "recent ones"
    )


def outcomes_lag(spans: Mapping[str, TableSpan | None], when: datetime) -> tuple[datetime, datetime] | None:
    """Where the outcomes end and where the book's other data do (up to ``when``), when the outcomes end
    :data:`OUTCOMES_LAG_DAYS` days or more before them across a wide gap (:func:`wide_gap`); None if not.

    The one rule of the outcomes' lag: :func:`lagging_outcomes_note` (validate, run, health), the lift's
    note (:func:`lift_lagging_outcomes_note`) and how far the training set takes the outcomes as seen
    (:func:`outcomes_complete_until`) all ask it. ``spans`` are the tables' spans (:func:`book_spans`).

    Examples
    --------
    >>> spans = {"outcomes": TableSpan(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC), 300),
    ...          "signals": TableSpan(datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC), 456)}
    >>> [f"{t:%Y-%m-%d}" for t in outcomes_lag(spans, datetime(2025, 4, 1, tzinfo=UTC))]
    ['2024-12-01', '2025-04-01']
    >>> outcomes_lag(spans, datetime(2024, 12, 10, tzinfo=UTC)) is None  # a decision before the gap: no lag
    True
    """
    others = max((s.reach for n in ("signals", "touches") if (s := spans.get(n)) is not None), default=None)
    return _outcomes_lag(spans.get("outcomes"), others, when)


def _outcomes_lag(
    outcomes: TableSpan | None, others: datetime | None, when: datetime
) -> tuple[datetime, datetime] | None:
    """:func:`outcomes_lag` from the outcomes' span and how far the signals and touches reach."""
    if outcomes is None or others is None:
        return None
    seen = min(as_utc(others), as_utc(when))
    return (outcomes.reach, seen) if outcomes.lags(seen, OUTCOMES_LAG_DAYS) else None


def _outcomes_end_words(reach: datetime, seen: datetime) -> str:
    return (
        f"the outcomes end {last_day(reach)}, {_days(_days_between(reach, seen))} before the book's other data "
        f"({last_day(seen)})"
    )


def lagging_outcomes_note(
    outcomes: TableSpan | None, others: datetime | None, when: datetime, horizon_days: int | None = None
) -> str | None:
    """A note when the outcomes end :data:`OUTCOMES_LAG_DAYS` days or more before the book's other data, up to ``when``.

    ``outcomes`` is the outcomes table's span, ``others`` how far the signals and touches reach
    (:func:`~nextmove.book.table_reach`), ``when`` the decision time. Sparse outcomes must end
    longer before (:func:`wide_gap`). The rule is :func:`outcomes_lag`'s.

    Examples
    --------
    >>> ended = TableSpan(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC), 300)
    >>> print(lagging_outcomes_note(ended, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC), 60))
    ... # doctest: +NORMALIZE_WHITESPACE
    the outcomes end 2024-11-30, 121 days before the book's other data (2025-03-31): a decision whose 60-day
    horizon runs past that is not learned from as finished, and an account that churned since is still
    taken as active; if the outcomes are exported apart from the rest, add the recent ones
    """
    lag = _outcomes_lag(outcomes, others, when)
    if lag is None:
        return None
    horizon = "" if horizon_days is None else f"{horizon_days}-day "
    return (
        f"{_outcomes_end_words(*lag)}: a decision whose {horizon}horizon runs past that is not learned from as "
        "finished, and an account that churned since is still taken as active; if the outcomes are exported apart "
        "from the rest, add the recent ones"
    )


def lift_lagging_outcomes_note(lag: tuple[datetime, datetime], until: str) -> str:
    """The lift's note on outcomes that lag (:func:`outcomes_lag`) and end inside the window it measures.

    ``until`` is the ``--until`` that measures only what was seen (the outcomes' reach, as the option takes it).

    Examples
    --------
    >>> lag = datetime(2025, 1, 9, tzinfo=UTC), datetime(2025, 3, 31, 18, tzinfo=UTC)
    >>> print(lift_lagging_outcomes_note(lag, "2025-01-08"))  # doctest: +NORMALIZE_WHITESPACE
    the outcomes end 2025-01-08, 82 days before the book's other data (2025-03-31), inside the window measured:
    an outcome after that is not in the book and counts as not having happened; if the outcomes are exported
    apart from the rest, add the recent ones, or measure only what was seen: pass observed_until (--until)
    2025-01-08 with allow_partial (--partial)
    """
    return (
        f"{_outcomes_end_words(*lag)}, inside the window measured: an outcome after that is not in the book and "
        "counts as not having happened; if the outcomes are exported apart from the rest, add the recent ones, or "
        f"measure only what was seen: pass observed_until (--until) {until} with allow_partial (--partial)"
    )


def complete_until_note(lag: tuple[datetime, datetime], until: str, end: str) -> str:
    """The note on outcomes that lag (:func:`outcomes_lag`) when an ``--until`` after their end says they are
    complete up to it (``nextmove evaluate --until``): then decisions past their end are learned from.

    ``until`` is that time and ``end`` the outcomes' reach, as the option takes them.

    Examples
    --------
    >>> lag = datetime(2025, 1, 9, tzinfo=UTC), datetime(2025, 3, 31, 18, tzinfo=UTC)
    >>> print(complete_until_note(lag, "2025-03-31", "2025-01-08"))  # doctest: +NORMALIZE_WHITESPACE
    the outcomes end 2025-01-08, 82 days before the book's other data (2025-03-31), and observed_until
    (--until) 2025-03-31 takes them as complete up to then: a decision whose horizon runs past their end is
    learned from and scored as one after which no outcome happened; if the outcomes are exported apart from
    the rest, add the recent ones, or pass observed_until (--until) 2025-01-08 to leave those decisions out
    """
    return (
        f"{_outcomes_end_words(*lag)}, and observed_until (--until) {until} takes them as complete up to then: a "
        "decision whose horizon runs past their end is learned from and scored as one after which no outcome "
        "happened; if the outcomes are exported apart from the rest, add the recent ones, or pass observed_until "
        f"(--until) {end} to leave those decisions out"
    )


def is_lagging_outcomes_note(note: str) -> bool:
    """Whether ``note`` is a :func:`lagging_outcomes_note` (loading's, about learning: the lift has its own)."""
    return note.startswith("the outcomes end ") and "is not learned from as finished" in note


def lagging_notes(spans: Mapping[str, TableSpan | None], when: datetime, horizon_days: int | None = None) -> list[str]:
    """The notes of :func:`lagging_touches_note` and :func:`lagging_outcomes_note` from each table's span."""
    signals, touches, outcomes = (spans.get(n) for n in ("signals", "touches", "outcomes"))
    others = max((s.reach for s in (signals, touches) if s is not None), default=None)
    notes = [
        lagging_touches_note(touches, None if signals is None else signals.reach, when),
        lagging_outcomes_note(outcomes, others, when, horizon_days),
    ]
    return [n for n in notes if n is not None]


def book_spans(book: Book) -> dict[str, TableSpan | None]:
    """Each dated table's span (:func:`settled_span`): what the notes on a loaded book read."""
    return {name: settled_span(book.table(name)) for name in ("signals", "touches", "outcomes")}


def lagging_book_notes(book: Book, when: datetime, horizon_days: int | None = None) -> list[str]:
    """:func:`lagging_notes` for a loaded book read as of ``when``, in the words ``nextmove validate`` uses.

    A table's latest rows far after the rest of it (:func:`far_latest_rows`) do not count: they
    have their own note.
    """
    return lagging_notes(book_spans(book), when, horizon_days)


def settled_span(frame: pl.DataFrame) -> TableSpan | None:
    """A table's span (:class:`TableSpan`) without its latest rows far after the rest (None without rows).

    A date typed a year ahead in one signal row would otherwise make every other table look a year
    behind the signals (:func:`far_latest_rows`); that row has its own note.
    """
    if not frame.height or "ts" not in frame.columns:
        return None
    ts = pl.col("ts").cast(pl.Datetime("us", "UTC"))
    figures = frame.select(
        ts.is_not_null().sum().alias("rows"),
        (ts == ts.dt.truncate("1d")).sum().alias("midnights"),
        ts.min().alias("first"),
        ts.drop_nulls().top_k(FAR_LATEST_ROWS + 1).sort(descending=True).implode().alias("latest"),
    ).row(0, named=True)
    latest: list[datetime] = figures["latest"]
    if not latest:
        return None
    days = (  # grouped: a few hundred days, without a column of the table's every day
        frame.lazy().group_by(ts.dt.truncate("1d").alias("day")).agg().collect().get_column("day").drop_nulls().sort()
    )
    far = far_latest_rows(latest, days.len(), figures["first"])
    settled = days.filter(days <= latest[far])
    longest = settled.diff().max()
    return table_span(
        figures["first"],
        latest[far],
        figures["rows"] - far,
        figures["midnights"],
        settled.len(),
        longest if isinstance(longest, timedelta) else None,
    )


def far_latest_rows(latest: list[datetime], dated: int, first: datetime | None) -> int:
    """How many of a table's latest rows lie :data:`FAR_LATEST_DAYS` days or more after the rest (0: none).

    ``latest`` are its latest times, newest first (:data:`FAR_LATEST_ROWS` + 1 of them, or all when
    it has fewer rows), ``dated`` on how many distinct days its rows are, ``first`` the earliest time.
    The gap must be wide for the days before it, too (:func:`wide_gap`).

    Examples
    --------
    >>> days = [datetime(2026, 3, 1, tzinfo=UTC)] + [datetime(2025, 3, 31 - i, tzinfo=UTC) for i in range(5)]
    >>> far_latest_rows(days, 456, datetime(2024, 1, 1, tzinfo=UTC))  # a row every day, and one a year on
    1
    >>> month_ends = [datetime(2025, 3, 31, tzinfo=UTC)] + [datetime(2025, 2, 28, tzinfo=UTC)] * 5
    >>> far_latest_rows(month_ends, 15, datetime(2024, 1, 31, tzinfo=UTC))  # rows on month-ends: a month apart
    0
    """
    if first is None:
        return 0
    stamps = [as_utc(t) for t in latest]
    for n in range(1, min(FAR_LATEST_ROWS, len(stamps) - 1) + 1):
        gap = stamps[n - 1] - stamps[n]
        if gap >= timedelta(days=FAR_LATEST_DAYS):
            before = dated - far_days(stamps, n)  # rows on one day before the gap: no spacing to tell by
            return n if before >= 2 and wide_gap(gap, FAR_LATEST_DAYS, first, stamps[n], before) else 0
    return 0


def far_days(latest: list[datetime], far: int) -> int:
    """On how many distinct days the ``far`` newest of ``latest`` (newest first) are."""
    return len({as_utc(t).date() for t in latest[:far]})


def far_latest_note(label: str, found: list[tuple[int, datetime]], rest: datetime) -> str:
    """The note on the latest rows of a table lying far after the rest (:func:`far_latest_rows`).

    ``found`` are those rows (their number in the file and time, newest first), ``rest`` the latest
    time of the others.

    Examples
    --------
    >>> print(far_latest_note("signals.csv", [(34884, datetime(2026, 3, 1, 10, tzinfo=UTC))],
    ...                       datetime(2025, 3, 31, 21, 15, tzinfo=UTC)))  # doctest: +NORMALIZE_WHITESPACE
    signals.csv: its latest row (row 34884, 2026-03-01 10:00 UTC) lies 334 days after the rest of the table
    (whose latest is 2025-03-31 21:15 UTC): is its date right? Without --as-of every command reads the book
    as of the midnight after it, when every other account's data is long past
    """
    gap = as_utc(found[-1][1]) - as_utc(rest)
    if len(found) == 1:
        row, ts = found[0]
        which = f"its latest row (row {row}, {day_text(ts)}) lies"
        right, that = "is its date right", "the midnight after it"
    else:
        shown = ", ".join(f"row {row} ({day_text(ts)})" for row, ts in found)
        which = f"its latest {len(found)} rows ({shown}) lie"
        right, that = "are their dates right", "the midnight after the latest"
    return (
        f"{label}: {which} {_days(gap.days)} after the rest of the table (whose latest is {day_text(rest)}): "
        f"{right}? Without --as-of every command reads the book as of {that}, when every other account's data "
        "is long past"
    )


def mixed_times_note(label: str, rows: int, midnights: int, timed: tuple[int, datetime] | None) -> str | None:
    """A note on outcomes that are dates (:func:`~nextmove.book.of_dates`) with a few times of day among them.

    ``rows`` of the table have a time, ``midnights`` of them at a UTC midnight; ``timed`` is the first
    row with a time of day (its number in the file, its time). Each such row counts for its day, as
    the dates do: one timestamped row no longer switches how every outcome is read.

    Examples
    --------
    >>> print(mixed_times_note("outcomes.csv", 415, 414, (416, datetime(2024, 6, 1, 10, tzinfo=UTC))))
    ... # doctest: +NORMALIZE_WHITESPACE
    outcomes.csv: 1 of its 415 rows has a time of day (row 416, 2024-06-01 10:00 UTC) while the others are
    dates: the table is read as dates, and that row counts for its whole day, as a date would
    """
    timed_rows = rows - midnights
    if timed is None or timed_rows == 0 or not are_dates(midnights, rows):
        return None
    row, ts = timed
    one = timed_rows == 1
    return (
        f"{label}: {timed_rows:,} of its {rows:,} rows {'has' if one else 'have'} a time of day "
        f"({'' if one else 'the first: '}row {row}, {day_text(ts)}) while the others are dates: the table "
        f"is read as dates, and {'that row counts' if one else 'each of those rows counts'} for its whole day, "
        "as a date would"
    )


def written_dates_note(label: str, rows: int, midnights: int, dates: int, first: tuple[int, str] | None) -> str | None:
    """A note on touches or outcomes read as times in which ``dates`` rows are written as dates alone (``2025-04-01``).

    ``rows`` of the table have a time, ``midnights`` of them at a UTC midnight; ``first`` is the first
    row written as a date (its number in the file, its text). A row written ``2025-04-01T00:00:00Z``
    is a time like any other; one written ``2025-04-01`` means the whole day, but a table of times
    (:func:`~nextmove.book.of_dates` False) reads it as the instant the day begins: the default as-of,
    that very midnight when it is the table's last day, does not read it.

    Examples
    --------
    >>> print(written_dates_note("touches.csv", 15_175, 358, 358, (14_819, "2025-04-01")))
    ... # doctest: +NORMALIZE_WHITESPACE
    touches.csv: 358 of its 15,175 rows are written as dates alone (the first: row 14819, '2025-04-01') while
    the others have times of day: the table is read as times, so each of those rows is the instant its day
    begins, not the whole day (on the table's last day, a run as of that midnight does not read it); give
    them a time of day, or write every row as a date
    """
    if first is None or dates == 0 or dates == rows or are_dates(midnights, rows):
        return None
    row, text = first
    one = dates == 1
    return (
        f"{label}: {dates:,} of its {rows:,} rows {'is' if one else 'are'} written as {'a date' if one else 'dates'} "
        f"alone ({'' if one else 'the first: '}row {row}, {text!r}) while the others have times of day: the table "
        f"is read as times, so {'that row' if one else 'each of those rows'} is the instant its day begins, not the "
        "whole day (on the table's last day, a run as of that midnight does not read it); give "
        f"{'it' if one else 'them'} a time of day, or write every row as a date"
    )


def row_hash(columns: list[str]) -> pl.Expr:
    """A 64-bit hash of a row's ``columns``, for counting rows that repeat another.

    Each column's hash, seeded by its position, combined: faster than hashing the row as a struct
    (``nextmove validate`` hashes every row of every table). Two different rows of a table of 20
    million share a hash with a chance of about 1 in 100,000 (n² / 2⁶⁵): a count of repeats is exact
    but for that.
    """
    return reduce(operator.xor, [pl.col(c).hash(seed=i) for i, c in enumerate(columns)])


def duplicate_columns(table: str, columns: list[str]) -> list[str]:
    """The columns two rows of ``table`` are compared on to count duplicates: all but its id (:data:`ID_COLUMNS`)."""
    return [c for c in columns if c != ID_COLUMNS.get(table) and not c.startswith("__")]


def duplicate_rows_note(table: str, repeats: int, example: Mapping[str, object]) -> str:
    """The note on ``repeats`` rows of ``table`` that repeat an earlier row in every column (its id aside).

    ``example`` is the first such row (``account_id``, ``ts`` and the column that says what it is).
    ``nextmove validate`` gives it when they are :data:`DUPLICATE_SHARE` of the table or more. They are
    kept, not dropped: two rows alike in every column can be two real events (two tickets opened in
    the same second), which nextmove cannot tell from an export that wrote a row twice.

    Examples
    --------
    >>> print(duplicate_rows_note("signals", 5000, {"account_id": "A00005", "name": "active_users",
    ...                                             "ts": datetime(2024, 3, 1, 10, tzinfo=UTC)}))
    ... # doctest: +NORMALIZE_WHITESPACE
    the signals table has 5,000 rows that repeat an earlier row in every column (the first: A00005's
    active_users at 2024-03-01 10:00 UTC): each counts again in every sum and count of the features and
    labels; if the table was exported twice, remove the repeats (nextmove keeps them: two alike rows can be
    two real events)
    """
    what = example.get(NAME_COLUMNS.get(table, ""))
    ts = example.get("ts")
    first = f"{example.get('account_id')}'s {what if what is not None else 'row'}"
    if isinstance(ts, datetime):
        first += f" at {day_text(ts)}"
    columns = f"every column but {ID_COLUMNS[table]}" if table in ID_COLUMNS else "every column"
    rows = "1 row that repeats" if repeats == 1 else f"{repeats:,} rows that repeat"
    return (
        f"the {table} table has {rows} an earlier row in {columns} (the first: {first}): each counts "
        "again in every sum and count of the features and labels; if the table was exported twice, remove the "
        "repeats (nextmove keeps them: two alike rows can be two real events)"
    )
