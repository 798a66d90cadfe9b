"""The point-in-time rule: a snapshot at ``t`` reads only rows dated strictly before ``t``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import polars as pl

from nextmove.book import Book, default_as_of
from nextmove.errors import ConfigError

US_PER_DAY = 86_400_000_000
"""Microseconds in a day: windows compare integer ages so their boundaries are exact."""

ACCOUNT_ID = "account_id"
DECISION_TS = "decision_ts"
AGE_US = "_age_us"
"""Microseconds from a row's ``ts`` to its snapshot time; always > 0 after :func:`point_in_time`."""

TS_DTYPE = pl.Datetime("us", "UTC")


def to_utc(when: datetime | date, *, what: str = "as_of") -> datetime:
    """``when`` as an aware UTC datetime; naive datetimes are UTC, dates mean midnight UTC.

    Examples
    --------
    >>> to_utc(date(2024, 5, 1))
    datetime.datetime(2024, 5, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(when, datetime):
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if isinstance(when, date):
        return datetime.combine(when, time(), tzinfo=UTC)
    raise ConfigError(f"{what} must be a datetime or a date, got {type(when).__name__}: {when!r}")


def resolve_as_of(book: Book, as_of: datetime | date | None) -> datetime:
    """The time to read ``book`` as of: ``as_of`` in UTC, or the book's default (:func:`~nextmove.book.default_as_of`).

    Raises
    ------
    ConfigError
        If no time is given and the book has no ``as_of`` and no dated rows.
    """
    if as_of is not None:
        return to_utc(as_of)
    when = default_as_of(book)
    if when is None:
        raise ConfigError(
            "the book has no dated rows (signals, touches or outcomes) and no as_of: "
            "pass as_of (--as-of on the command line)"
        )
    return when


@dataclass(frozen=True)
class History:
    """The time tables of a book cut at one or many snapshot times.

    Each frame keeps only rows with ``ts`` strictly before its snapshot time and carries
    ``_age_us`` (microseconds from the row to the snapshot time) plus the key columns
    ``by``: ``account_id`` for one snapshot time, ``account_id, decision_ts`` for many.
    """

    signals: pl.LazyFrame
    touches: pl.LazyFrame
    outcomes: pl.LazyFrame
    by: tuple[str, ...]


_COLUMNS = {
    "signals": ("account_id", "ts", "name", "value"),
    "touches": ("account_id", "ts", "action_id"),
    "outcomes": ("account_id", "ts", "kind"),
}


def point_in_time(book: Book, when: datetime | pl.DataFrame) -> History:
    """Cut the book's signals, touches and outcomes at ``when``: the one place features filter time.

    Parameters
    ----------
    book
        The book of business.
    when
        One snapshot time (a UTC datetime), or a frame of ``account_id, decision_ts`` pairs,
        each its own snapshot time (rows of other accounts are dropped).

    Returns
    -------
    History
        Lazy frames with only the rows dated strictly before their snapshot time.

    Examples
    --------
    >>> from nextmove.book import empty_table
    >>> signals = pl.DataFrame(
    ...     {"account_id": ["a", "a"], "ts": [datetime(2024, 1, 1), datetime(2024, 1, 8)],
    ...      "name": ["logins", "logins"], "value": [3.0, 5.0]},
    ...     schema_overrides={"ts": TS_DTYPE},
    ... )
    >>> book = Book(empty_table("accounts"), signals, empty_table("touches"), empty_table("outcomes"))
    >>> point_in_time(book, datetime(2024, 1, 8, tzinfo=UTC)).signals.collect()["value"].to_list()
    [3.0]
    """
    if isinstance(when, datetime):
        at: pl.Expr = pl.lit(to_utc(when), dtype=TS_DTYPE)
        by: tuple[str, ...] = (ACCOUNT_ID,)
        keys = None
    else:
        at = pl.col(DECISION_TS)
        by = (ACCOUNT_ID, DECISION_TS)
        keys = when.lazy().select(ACCOUNT_ID, DECISION_TS)

    def cut(table: str) -> pl.LazyFrame:
        frame = book.table(table).lazy().select(_COLUMNS[table])
        if keys is not None:
            frame = frame.join(keys, on=ACCOUNT_ID)
        # The point-in-time rule, written once: nothing at or after the snapshot time.
        return frame.filter(pl.col("ts") < at).with_columns((at - pl.col("ts")).dt.total_microseconds().alias(AGE_US))

    return History(cut("signals"), cut("touches"), cut("outcomes"), by)


def days(age_us: pl.Expr) -> pl.Expr:
    """An integer age in microseconds as fractional days (Float64)."""
    return age_us.cast(pl.Float64) / US_PER_DAY


def within_days(window_days: int) -> pl.Expr:
    """True for rows in the window ``[t - window_days, t)``: the start is inclusive, ``t`` is not."""
    return pl.col(AGE_US) <= window_days * US_PER_DAY


def in_previous_window(window_days: int) -> pl.Expr:
    """True for rows in ``[t - 2·window_days, t - window_days)``, the window before :func:`within_days`."""
    age = pl.col(AGE_US)
    return (age > window_days * US_PER_DAY) & (age <= 2 * window_days * US_PER_DAY)
