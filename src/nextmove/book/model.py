"""The in-memory book of business: one typed Polars frame per contract table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import polars as pl

from nextmove.book.contract import CONTRACT

ExtraKind = Literal["number", "text", "time"]
"""How an extra column of accounts is used as a feature: a number, text (categories) or a time (days since)."""


def extra_kind(dtype: pl.DataType) -> ExtraKind | None:
    """How an extra account column of ``dtype`` is used as a feature, or None if it is not used.

    Numbers (and booleans, as 1 and 0), text and times are; lists, structs, durations, times of day
    and binary data are not (``nextmove validate`` notes each such column).

    Examples
    --------
    >>> extra_kind(pl.Decimal(12, 2)), extra_kind(pl.Boolean()), extra_kind(pl.Date()), extra_kind(pl.List(pl.String))
    ('number', 'number', 'time', None)
    """
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "number"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "text"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return "time"
    return None


def empty_table(name: str) -> pl.DataFrame:
    """An empty frame with the contract columns of table ``name``, in their contract dtypes.

    Examples
    --------
    >>> empty_table("touches").columns[:3]
    ['account_id', 'action_id', 'ts']
    """
    spec = CONTRACT[name]
    return pl.DataFrame(schema={c.name: c.type.polars for c in spec.columns})


@dataclass(frozen=True)
class Book:
    """A validated book of business.

    Every contract column is present in its contract dtype (ids and text as ``String``,
    numbers as ``Float64``, timestamps as ``Datetime("us", "UTC")``); optional columns a
    source lacks are filled with nulls; extra columns are kept with their own types.
    Tables the source lacks (all but ``accounts`` are optional) are empty.
    """

    accounts: pl.DataFrame
    signals: pl.DataFrame
    touches: pl.DataFrame
    outcomes: pl.DataFrame
    source: str = "<memory>"
    """Where the book was loaded from (a folder or a database URL, passwords removed)."""
    as_of: datetime | None = None
    """The time the book is read as of, when its maker gave one (``load_book(..., as_of=...)``): nothing in
    it lies after this, and it is what :func:`default_as_of` returns. None: how far the book's data
    reaches (:func:`data_reach`), rounded up to a UTC midnight."""
    notes: tuple[str, ...] = ()
    """What loading it noted without refusing it (:attr:`ValidationReport.notes`): rows left out, columns dropped …"""

    def table(self, name: str) -> pl.DataFrame:
        """The frame of contract table ``name``."""
        if name not in CONTRACT:
            raise KeyError(f"no table {name!r} in the contract (tables: {', '.join(CONTRACT)})")
        frame: pl.DataFrame = getattr(self, name)
        return frame

    @property
    def signal_names(self) -> list[str]:
        """Distinct signal names in the book, sorted."""
        return sorted(self.signals.get_column("name").unique().drop_nulls().to_list())

    @property
    def extra_account_columns(self) -> list[str]:
        """Account columns beyond the contract's."""
        known = set(CONTRACT["accounts"].column_names)
        return [c for c in self.accounts.columns if c not in known]


def latest_timestamp(book: Book) -> datetime | None:
    """The latest timestamp in a book's signals, touches and outcomes (None for a book without dated rows)."""
    frames = (book.signals, book.touches, book.outcomes)
    stamps = [f.get_column("ts").max() for f in frames if f.height and "ts" in f.columns]
    found = [as_utc(s) for s in stamps if isinstance(s, datetime)]
    return max(found) if found else None


DATES_SHARE = 0.95
"""A table is one of dates (:func:`of_dates`) when at least this share of its rows is at a UTC midnight.

A table exported as dates has every row at a midnight; one with times of day has few there by chance
(1 in 1,440 at minute resolution, 1 in 24 even at hourly resolution). 95 % keeps the two apart with
room both ways: a table of dates into which a second system wrote a few rows with times (up to 1 in
20) stays one of dates, instead of one timestamped row switching the whole table, and with it how
every label window and every end of an account is read; a table of times is never taken for one of
dates unless nearly all its times are midnights."""


def default_as_of(book: Book) -> datetime | None:
    """The time a book is read as of when none is given: ``book.as_of`` if its maker gave one, else how
    far its data reaches (:func:`data_reach`) rounded up to a UTC midnight.

    Every command that reads a book (run, features, health, segment, training sets) uses it, so they
    all see the same data. Each table reaches as far as it has seen: a table with times to its latest
    time, a table of dates (:func:`of_dates`) to the midnight after its last date, that day being seen
    whole. A book whose last signal is Sunday 23:00 is read as of Monday 00:00, so the features see all
    of Sunday (a snapshot at ``t`` reads only rows dated strictly before ``t``); so is one whose
    outcomes, dates, end on Sunday, whatever time its signals end at that day. A table with times
    whose latest time is a midnight reaches that midnight, so it is read as of it. None for a book
    without dated rows and no ``as_of``.

    Examples
    --------
    >>> import polars as pl
    >>> def book_of(signal_ts, outcome_ts=None):
    ...     row = {"account_id": ["a"], "ts": [signal_ts], "name": ["x"], "value": [1.0]}
    ...     signals = pl.concat([empty_table("signals"), pl.DataFrame(row)], how="diagonal_relaxed")
    ...     outcomes = empty_table("outcomes")
    ...     if outcome_ts is not None:
    ...         row = {"account_id": ["a"], "ts": [outcome_ts], "kind": ["churn"]}
    ...         outcomes = pl.concat([outcomes, pl.DataFrame(row)], how="diagonal_relaxed")
    ...     return Book(empty_table("accounts"), signals, empty_table("touches"), outcomes)
    >>> default_as_of(book_of(datetime(2025, 3, 2, 23, tzinfo=UTC))).isoformat()
    '2025-03-03T00:00:00+00:00'
    >>> default_as_of(book_of(datetime(2025, 3, 2, tzinfo=UTC))).isoformat()  # a book of dates
    '2025-03-03T00:00:00+00:00'
    >>> # signals with times up to 1 March, outcomes dated 2 March: 2 March is read too
    >>> default_as_of(book_of(datetime(2025, 3, 1, 15, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))).isoformat()
    '2025-03-03T00:00:00+00:00'
    """
    if book.as_of is not None:
        return as_utc(book.as_of)
    reach = data_reach(book)
    return None if reach is None else as_of_of_reach(reach)


def as_of_of_reach(reach: datetime) -> datetime:
    """The time a book whose data reaches ``reach`` is read as of (:func:`default_as_of`): that midnight, or the next.

    Examples
    --------
    >>> as_of_of_reach(datetime(2025, 3, 2, 23, tzinfo=UTC)).isoformat()
    '2025-03-03T00:00:00+00:00'
    >>> as_of_of_reach(datetime(2025, 3, 3, tzinfo=UTC)).isoformat()
    '2025-03-03T00:00:00+00:00'
    """
    reach = as_utc(reach)
    day = datetime(reach.year, reach.month, reach.day, tzinfo=UTC)
    return day if day == reach else day + timedelta(days=1)


BACKTEST_TOLERANCE = timedelta(days=1)
"""How far before where a book's data reaches a decision time may lie and still read the book as it is now
(:func:`is_backtest`): a run as of the midnight that starts the export's last day is not a backtest."""


def is_backtest(book: Book, as_of: datetime) -> bool:
    """True when reading ``book`` as of ``as_of`` is a backtest: ``as_of`` lies more than
    :data:`BACKTEST_TOLERANCE` before how far the book's data reaches (:func:`data_reach`).

    The accounts table holds each account's state when the book was exported (its
    ``lifecycle_stage`` today), not at a past ``as_of``: what a backtest reads of it was written
    after its decision time. The default decision time (:func:`default_as_of`) is never one. False
    for a book without dated rows.

    Examples
    --------
    >>> def signal_at(ts):
    ...     row = {"account_id": ["a"], "ts": [ts], "name": ["x"], "value": [1.0]}
    ...     signals = pl.concat([empty_table("signals"), pl.DataFrame(row)], how="diagonal_relaxed")
    ...     return Book(empty_table("accounts"), signals, empty_table("touches"), empty_table("outcomes"))
    >>> book = signal_at(datetime(2025, 3, 2, 15, tzinfo=UTC))
    >>> is_backtest(book, datetime(2025, 3, 2, tzinfo=UTC)), is_backtest(book, datetime(2025, 2, 1, tzinfo=UTC))
    (False, True)
    """
    return is_backtest_at(data_reach(book), as_of)


def is_backtest_at(reach: datetime | None, as_of: datetime) -> bool:
    """:func:`is_backtest` given how far the data reach (``None``: no dated rows, never a backtest)."""
    return reach is not None and as_utc(as_of) + BACKTEST_TOLERANCE < reach


def dates_only(book: Book) -> bool:
    """True when every table of the book with rows (signals, touches, outcomes) is one of dates (:func:`of_dates`)."""
    return all(of_dates(frame) for frame in (book.signals, book.touches, book.outcomes))


def of_dates(frame: pl.DataFrame) -> bool:
    """True when a table's times are dates: :data:`DATES_SHARE` of its rows or more at a UTC midnight.

    Its few rows with a time of day, if any, then count as their day, as its dates do. True for a
    table without rows.

    Examples
    --------
    >>> days = [datetime(2025, 1, d, tzinfo=UTC) for d in range(1, 31)]
    >>> of_dates(pl.DataFrame({"ts": days}))
    True
    >>> of_dates(pl.DataFrame({"ts": [*days, datetime(2025, 1, 4, 10, tzinfo=UTC)]}))  # one row in 31 with a time
    True
    >>> of_dates(pl.DataFrame({"ts": [datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 4, 10, tzinfo=UTC)]}))
    False
    """
    if not frame.height or "ts" not in frame.columns:
        return True
    ts = pl.col("ts").cast(pl.Datetime("us", "UTC"))
    counts = frame.select(ts.is_not_null().sum().alias("rows"), (ts == ts.dt.truncate("1d")).sum().alias("midnights"))
    return are_dates(int(counts["midnights"][0]), int(counts["rows"][0]))


def are_dates(midnights: int, rows: int) -> bool:
    """The rule of :func:`of_dates` on counts: ``midnights`` of a table's ``rows`` (with a time) at a UTC midnight."""
    return rows == 0 or midnights >= DATES_SHARE * rows


def data_reach(book: Book) -> datetime | None:
    """How far a book's data reaches: the latest time any of its tables has seen (None without dated rows).

    A table of dates (:func:`of_dates`) has seen the whole of its last day, so it reaches the midnight
    after it; a table with times reaches its latest time.

    Examples
    --------
    >>> def outcome_at(ts):
    ...     row = {"account_id": ["a"], "ts": [ts], "kind": ["churn"]}
    ...     outcomes = pl.concat([empty_table("outcomes"), pl.DataFrame(row)], how="diagonal_relaxed")
    ...     return Book(empty_table("accounts"), empty_table("signals"), empty_table("touches"), outcomes)
    >>> data_reach(outcome_at(datetime(2025, 3, 1, 15, tzinfo=UTC))).isoformat()
    '2025-03-01T15:00:00+00:00'
    >>> data_reach(outcome_at(datetime(2025, 3, 1, tzinfo=UTC))).isoformat()  # a date: 1 March is seen whole
    '2025-03-02T00:00:00+00:00'
    """
    reach = [r for r in map(table_reach, (book.signals, book.touches, book.outcomes)) if r is not None]
    return max(reach) if reach else None


def table_reach(frame: pl.DataFrame) -> datetime | None:
    """How far one table's times reach (see :func:`data_reach`); None for a table without rows."""
    latest = frame.get_column("ts").max() if frame.height and "ts" in frame.columns else None
    if not isinstance(latest, datetime):
        return None
    return reach_of(latest, dates=of_dates(frame))


def reach_of(latest: datetime, *, dates: bool) -> datetime:
    """How far a table whose latest time is ``latest`` reaches: the midnight after its day for a table of dates."""
    when = as_utc(latest)
    if not dates:
        return when
    return datetime(when.year, when.month, when.day, tzinfo=UTC) + timedelta(days=1)


MOST_ACCOUNTS_SHARE = 0.99
"""Where most of a book's data ends (:func:`bulk_end`) is where this share of its accounts' latest rows is."""


def bulk_end(book: Book) -> datetime | None:
    """Where most of a book's data ends: the time by which :data:`MOST_ACCOUNTS_SHARE` of its accounts
    have their latest row (signals, touches, outcomes); None without dated rows.

    The latest timestamp is one row's: a year typed wrong in one row (2026 for 2025) moves it a year
    ahead while every other account's data ends where it did. This is what a decision time is stale
    against (:func:`~nextmove.book.validate.stale_as_of_note`). With 51 accounts or fewer it is the
    latest timestamp.

    Examples
    --------
    >>> ts = [datetime(2025, 3, 1, tzinfo=UTC)] * 199 + [datetime(2026, 3, 1, tzinfo=UTC)]
    >>> signals = pl.DataFrame({"account_id": [f"a{i}" for i in range(200)], "ts": ts})
    >>> book = Book(empty_table("accounts"), signals, empty_table("touches"), empty_table("outcomes"))
    >>> bulk_end(book).isoformat()
    '2025-03-01T00:00:00+00:00'
    """
    # Each table's latest time per account, then the latest of those. Concatenating the tables' rows
    # first copied every account_id and ts of the book (+577 MiB of peak at 10M signals, 1M touches);
    # grouped lazily, each table's two columns alone are read (+92 MiB; eagerly, +300 MiB).
    return bulk_end_of(
        [
            f.lazy().group_by("account_id").agg(pl.col("ts").max()).collect()
            for f in (book.signals, book.touches, book.outcomes)
            if f.height
        ]
    )


def bulk_end_of(account_ends: list[pl.DataFrame]) -> datetime | None:
    """:func:`bulk_end` from each table's ``account_id, ts``: every account's latest time in it (None if none)."""
    if not account_ends:
        return None
    ends = pl.concat(account_ends, how="vertical_relaxed").group_by("account_id").agg(pl.col("ts").max())
    end = ends.get_column("ts").quantile(MOST_ACCOUNTS_SHARE, interpolation="nearest")
    return as_utc(end) if isinstance(end, datetime) else None


def as_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime (a naive one is taken as UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
