"""The in-memory book of business: one typed Polars frame per contract table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from nextmove.book.contract import CONTRACT


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
    it lies after this, and it is what :func:`default_as_of` returns. None: the book's latest timestamp,
    rounded up to a UTC midnight."""
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


def default_as_of(book: Book) -> datetime | None:
    """The time a book is read as of when none is given: ``book.as_of`` if its maker gave one, else its latest
    timestamp rounded up to a UTC midnight (for a book of dates only, the midnight after its last date).

    Every command that reads a book (run, features, health, segment, training sets) uses it, so they
    all see the same data. A book whose last signal is Sunday 23:00 is read as of Monday 00:00, so
    the features see all of Sunday (a snapshot at ``t`` reads only rows dated strictly before
    ``t``). A latest timestamp at midnight is the time itself, unless every dated row of the book is
    at a midnight: then its times are dates, each standing for its whole day, and the last day is
    read too. None for a book without dated rows and no ``as_of``.

    Examples
    --------
    >>> import polars as pl
    >>> def signal_at(ts):
    ...     row = {"account_id": ["a"], "ts": [ts], "name": ["x"], "value": [1.0]}
    ...     signals = pl.concat([empty_table("signals"), pl.DataFrame(row)], how="diagonal_relaxed")
    ...     return Book(empty_table("accounts"), signals, empty_table("touches"), empty_table("outcomes"))
    >>> default_as_of(signal_at(datetime(2025, 3, 2, 23, tzinfo=UTC))).isoformat()
    '2025-03-03T00:00:00+00:00'
    >>> default_as_of(signal_at(datetime(2025, 3, 2, tzinfo=UTC))).isoformat()  # a book of dates
    '2025-03-03T00:00:00+00:00'
    """
    if book.as_of is not None:
        return as_utc(book.as_of)
    latest = latest_timestamp(book)
    if latest is None:
        return None
    day = datetime(latest.year, latest.month, latest.day, tzinfo=UTC)
    return day if day == latest and not dates_only(book) else day + timedelta(days=1)


def dates_only(book: Book) -> bool:
    """True when every dated row of the book (signals, touches, outcomes) is at a UTC midnight: a book of dates."""
    return all(of_dates(frame) for frame in (book.signals, book.touches, book.outcomes))


def of_dates(frame: pl.DataFrame) -> bool:
    """True when every ``ts`` of a table is at a UTC midnight (its times are dates); True for a table without rows."""
    if not frame.height or "ts" not in frame.columns:
        return True
    ts = pl.col("ts").cast(pl.Datetime("us", "UTC"))
    return bool(frame.select((ts == ts.dt.truncate("1d")).all()).item())


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
    return as_utc(latest) + timedelta(days=1) if of_dates(frame) else as_utc(latest)


def as_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime (a naive one is taken as UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
