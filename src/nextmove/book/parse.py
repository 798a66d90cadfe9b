"""Expressions that turn raw columns (text from CSV, native from Parquet or SQL) into contract dtypes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import polars as pl

from nextmove.book.contract import ColumnType

_TZ_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d %H:%M%z",
)
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_FOUR_DIGIT_YEAR = r"^\d{4}-"
"""Where a timestamp's text starts: a year of four digits (``2024-01-06``; ``24-01-06`` is no timestamp)."""
UTC_DATETIME = pl.Datetime("us", "UTC")
_YEAR_1000_US = -30610224000 * 10**6
"""1000-01-01 in microseconds since 1970: an earlier timestamp's year has fewer than four digits."""
_YEAR_10000_US = 253402300800 * 10**6
"""10000-01-01 in microseconds since 1970: a later timestamp's year has more than four digits."""
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""What a book's text values lose at either end when the book is read (:func:`trim_text`): Unicode's white space,
as Polars' ``strip_chars()`` removes it (Python's ``str.strip()`` removes ``\x1c``–``\x1f`` too)."""
_ZONE_RULES = (
    # A UTC written out (" UTC", as BigQuery and Snowflake print timestamps) is the +00:00 offset.
    (r"(?i)(\d)\s*utc$", "${1}+00:00"),
    # An offset of whole hours (+02), after a time: chrono's %z wants its minutes (+02:00).
    (r"(:\d{2}(?:\.\d+)?)\s*([+-]\d{2})$", "${1}${2}:00"),
)


def _parse_timestamp_batch(text: pl.Series) -> pl.Series:
    """Parse one batch of timestamp text, trying each ISO 8601 form only on the rows still unparsed.

    A book's column nearly always uses one form, so the first form that matches parses almost
    every row and the others run on what is left. Trying all nine forms on every row (a
    ``coalesce``) costs as much for the forms that fail as for the one that succeeds.
    """
    clean = text.str.strip_chars().str.replace(r"[Zz]$", "+00:00")
    result = _parse_forms(clean)
    left = result.is_null() & clean.is_not_null()
    if left.any():
        # The rarer spellings of a zone, rewritten only on the rows no form parsed.
        idx = left.arg_true()
        rest = clean.gather(idx)
        for pattern, replacement in _ZONE_RULES:
            rest = rest.str.replace(pattern, replacement)
        again = _parse_forms(rest)
        hit = again.is_not_null()
        if hit.any():
            result = result.scatter(idx.filter(hit), again.filter(hit))
    # chrono's %Y takes a year of any number of digits: 24-01-06 would be the year 24, 730,000 days
    # before the rest of the book. A year is written with four digits; only the rows whose year is
    # outside 1000–9999 can break that, so only they are looked at again.
    micros = result.to_physical()  # compared as microseconds: a year past 9999 is no Python datetime
    odd = (micros < _YEAR_1000_US) | (micros >= _YEAR_10000_US)
    if odd.any():
        idx = odd.arg_true()
        short = ~clean.gather(idx).str.contains(_FOUR_DIGIT_YEAR)
        if short.any():
            result = result.scatter(idx.filter(short), None)
    return result


def _parse_forms(clean: pl.Series) -> pl.Series:
    """Parse stripped timestamp text with each form in turn, each tried only on the rows still unparsed."""
    result = pl.Series(clean.name, [None] * len(clean), dtype=UTC_DATETIME)
    todo = clean.is_not_null()
    for fmt in _TZ_FORMATS + _NAIVE_FORMATS:
        idx = todo.arg_true()
        if len(idx) == 0:
            break
        subset = clean.gather(idx)
        if "%z" in fmt:
            parsed = subset.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
        else:
            parsed = subset.str.to_datetime(fmt, strict=False, time_unit="us").dt.replace_time_zone("UTC")
        hit = parsed.is_not_null()
        if hit.any():
            result = result.scatter(idx.filter(hit), parsed.filter(hit))
            todo = todo.scatter(idx.filter(hit), False)
    return result


def parse_timestamp_text(expr: pl.Expr) -> pl.Expr:
    """Parse ISO 8601 text to UTC timestamps: offsets are converted, naive values are taken as UTC.

    Offsets may be written ``+02:00``, ``+0200`` or ``+02``; ``Z`` (in any case) and a trailing ``UTC``
    (``2024-05-01 09:30:00 UTC``, as BigQuery and Snowflake print times) mean UTC. The year has four
    digits (``24-05-01`` is no timestamp, not the year 24). Values that match no ISO 8601 form become
    null; the validator reports them.

    Examples
    --------
    >>> df = pl.DataFrame({"ts": ["2024-05-01", "2024-05-01T09:30:00Z", "2024-05-01T11:30:00+02", "May 1", "24-05-01"]})
    >>> df.select(parse_timestamp_text(pl.col("ts"))).to_series().dt.hour().to_list()
    [0, 9, 9, None, None]
    """
    return expr.map_batches(_parse_timestamp_batch, return_dtype=UTC_DATETIME, is_elementwise=True)


def no_such_date(text: str) -> str | None:
    """Why ``text``, written as an ISO 8601 date or time, names none (``2026-02-29 is no such date``); None if not so.

    Examples
    --------
    >>> no_such_date("2026-02-29T10:00:00Z")
    '2026-02-29 is no such date: day is out of range for month'
    >>> no_such_date("2026-01-05T24:00") is None, no_such_date("May 1") is None
    (False, True)
    """
    found = re.match(r"\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?", text)
    if found is None:
        return None
    y, m, d = (int(g) for g in found.groups()[:3])
    try:
        date(y, m, d)
    except ValueError as exc:
        return f"{found.group(0).strip()[:10]} is no such date: {exc}"
    hour, minute, second = (int(g) if g else 0 for g in found.groups()[3:])
    if hour > 23 or minute > 59 or second > 59:
        return f"{found.group(0).strip()[11:]} is no such time of day"
    return None


_SHORT_YEAR = re.compile(r"\s*(\d{1,3}|\d{5,})-\d{1,2}-\d{1,2}(?:[T ]|$)")


def short_year(text: str) -> str | None:
    """What to say of a timestamp whose year is not written with four digits (``24-01-06``); None if not one.

    Such a year is refused rather than read as the year 24 (or guessed to be 2024: ``24-01-06`` may as
    well be the 24th of January 2006).

    Examples
    --------
    >>> short_year("24-01-06")
    'its year has 2 digits: write the year with four digits, e.g. 2024-01-06'
    >>> short_year("2024-01-06") is None, short_year("0024-01-06") is None, short_year("May 1") is None
    (True, True, True)
    """
    found = _SHORT_YEAR.match(text)
    if found is None:
        return None
    digits = len(found.group(1))
    return f"its year has {digits} digit{'' if digits == 1 else 's'}: write the year with four digits, e.g. 2024-01-06"


_EPOCH = re.compile(r"\s*[+-]?\d{9,13}(?:\.\d+)?\s*")


def epoch_number(text: str) -> str | None:
    """What to say of a timestamp written as a number of 9 to 13 digits (epoch seconds or milliseconds).

    Such a number is refused, never guessed to be seconds or milliseconds since 1970.

    Examples
    --------
    >>> epoch_number("1714555800")
    'a number, epoch seconds or milliseconds? Write the time as ISO 8601 text, e.g. 2024-05-01T09:30:00Z'
    >>> epoch_number("2024-05-01") is None, epoch_number("20240501") is None
    (True, True)
    """
    if _EPOCH.fullmatch(text) is None:
        return None
    return "a number, epoch seconds or milliseconds? Write the time as ISO 8601 text, e.g. 2024-05-01T09:30:00Z"


def parse_timestamp(text: str) -> datetime:
    """Parse one timestamp as a book's timestamp columns are parsed (:func:`parse_timestamp_text`), to UTC.

    Command-line times (``--as-of``, ``--until``) use it, so they take the same forms as the book.

    Raises
    ------
    ValueError
        Saying ``no such date`` (or time) for a well-formed but impossible one, else that it is not ISO 8601.

    Examples
    --------
    >>> parse_timestamp("2026-01-05 09:30:00 UTC").isoformat()
    '2026-01-05T09:30:00+00:00'
    >>> parse_timestamp("2026-01-05T11:30+02").isoformat()
    '2026-01-05T09:30:00+00:00'
    >>> parse_timestamp("2026-02-29")
    Traceback (most recent call last):
    ...
    ValueError: 2026-02-29 is no such date: day is out of range for month
    """
    parsed = _parse_timestamp_batch(pl.Series([text], dtype=pl.String)).item()
    if isinstance(parsed, datetime):
        return parsed.astimezone(UTC)
    raise ValueError(no_such_date(text) or "not an ISO 8601 time")


def parse_day_or_time(text: str) -> date | datetime:
    """A cut-off's text (``--until``, ``observed_until``): a bare date (``2026-03-31``) as that date, anything
    else as the time it is (:func:`parse_timestamp`).

    Raises
    ------
    ValueError
        As :func:`parse_timestamp`.

    Examples
    --------
    >>> parse_day_or_time("2026-03-31"), parse_day_or_time("2026-03-31T00:00:00Z").isoformat()
    (datetime.date(2026, 3, 31), '2026-03-31T00:00:00+00:00')
    """
    stamp = parse_timestamp(text)
    return stamp.date() if is_bare_date(text) else stamp


def is_bare_date(text: str) -> bool:
    """True when ``text`` (a time that parses) is a date alone, ``YYYY-MM-DD``: what a cut-off reads as that whole day.

    Examples
    --------
    >>> is_bare_date(" 2026-03-31 "), is_bare_date("2026-03-31T00:00")
    (True, False)
    """
    bare = text.strip()
    return len(bare) == 10 and bare[4] == "-" and bare[7] == "-"


MISSING_TOKENS: tuple[str, ...] = ("na", "n/a", "null", "none", "nan")
"""Texts CRM and spreadsheet exports write for a missing value, besides an empty cell (compared trimmed,
in any case). They are missing in optional number and timestamp columns and in extra columns."""

_LEADING_ZERO = r"^[+-]?0[0-9]"
"""A number written with a leading zero (``01000``): a code such as a zip code, kept as text."""


_DECIMAL_COMMA = re.compile(r"\s*[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+\s*")
_THOUSANDS_COMMA = re.compile(r"\s*[+-]?\d{1,3},\d{3}\s*")


def decimal_comma_hint(text: str) -> str | None:
    """What to say of a number written with a decimal comma (``1,5``, ``1.234,56``, a German export); None if not one.

    A comma before exactly three digits (``1,234``) may as well be a thousands separator: the hint says both.
    Nothing is converted: the book must be exported again.

    Examples
    --------
    >>> decimal_comma_hint("1,5")
    'looks like a decimal comma: export numbers with a decimal point'
    >>> decimal_comma_hint(" -1.234,56 ") == decimal_comma_hint("1,5")
    True
    >>> decimal_comma_hint("1,234")
    'looks like a decimal comma or a thousands separator: export numbers with a decimal point and no separators'
    >>> decimal_comma_hint("1.5"), decimal_comma_hint("a,b"), decimal_comma_hint("1,2,3"), decimal_comma_hint("1.23,4")
    (None, None, None, None)
    """
    if _THOUSANDS_COMMA.fullmatch(text):
        return (
            "looks like a decimal comma or a thousands separator: export numbers with a decimal point and no separators"
        )
    if _DECIMAL_COMMA.fullmatch(text):
        return "looks like a decimal comma: export numbers with a decimal point"
    return None


_THOUSANDS_DOT = r"^\s*[+-]?[1-9]\d{0,2}(?:\.\d{3})+\s*$"
"""A whole number written with '.' between its thousands (``85.360``, ``1.234.567``), as a German export writes it."""
_SMALL_WHOLE = r"^\s*[+-]?\d{1,3}\s*$"
"""A whole number below 1,000 (``360``): such an export writes it without a separator."""
THOUSANDS_SHARE = 0.8
"""The share of a number column's values written like ``85.360`` (:func:`thousands_dots`) that make it look
like numbers with thousands separators, the others all whole numbers below 1,000."""
THOUSANDS_MIN = 5
"""How many values written like ``85.360`` a column needs, at least, to look like numbers with thousands separators."""


def thousands_dot_hint(text: str) -> str | None:
    """What to say of a number written with two or more '.' between thousands (``1.234.567``); None if not one.

    Such a value is no number. One with a single '.' (``85.360``) reads as a number with three
    decimals: only a whole column of them says more (:func:`thousands_dots`).

    Examples
    --------
    >>> thousands_dot_hint("1.234.567")
    "looks like thousands separators '.': export numbers without them"
    >>> thousands_dot_hint("85.360") is None, thousands_dot_hint("1.2.3") is None
    (True, True)
    """
    if re.fullmatch(_THOUSANDS_DOT, text) and text.count(".") >= 2:
        return "looks like thousands separators '.': export numbers without them"
    return None


def thousands_dot_flags(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Where text ``expr`` is a number written like ``85.360``, and where it is present and neither that nor ``360``."""
    dotted = expr.str.contains(_THOUSANDS_DOT).fill_null(False)
    other = ~is_missing_text(expr) & ~dotted & ~expr.str.contains(_SMALL_WHOLE).fill_null(False)
    return dotted, other


def looks_like_thousands(dotted: int, other: int, present: int) -> bool:
    """Whether a column with ``dotted`` values written like ``85.360`` of ``present`` (``other`` of them neither
    that nor a whole number below 1,000) looks like numbers written with thousands separators.

    Examples
    --------
    >>> looks_like_thousands(400, 0, 400), looks_like_thousands(4, 0, 4), looks_like_thousands(400, 1, 400)
    (True, False, False)
    """
    return other == 0 and dotted >= THOUSANDS_MIN and dotted >= THOUSANDS_SHARE * present


def thousands_dots(series: pl.Series) -> tuple[int, int, str] | None:
    """When a text column of numbers looks written with thousands separators: ``(count, first index, first value)``.

    A German export writes 85,360 as ``85.360``, which reads as 85.36, a thousand times too small. It
    looks so when at least :data:`THOUSANDS_MIN` values, and :data:`THOUSANDS_SHARE` of those present,
    are whole numbers written with '.' before each three digits, and every other is a whole number below
    1,000 (written without one). Genuine decimals rarely look so: numbers written with three decimals
    (``1.250`` kg) have values below 1 (``0.125``, not matched), or at or above 1,000 (``1250.000``).
    None when the column is not text or does not look so.

    Examples
    --------
    >>> thousands_dots(pl.Series("arr", ["85.360", "48.694", "360", "NA", "20.108", "9.073", "1.057.126"]))
    (5, 0, '85.360')
    >>> thousands_dots(pl.Series("weight", ["1.250", "2.500", "0.125", "3.000", "4.750", "5.125"])) is None
    True
    """
    if series.dtype != pl.String:
        return None
    dotted, other = thousands_dot_flags(pl.col(series.name))
    flags = series.to_frame().select(
        dotted.alias("dotted"), other.alias("other"), ~is_missing_text(pl.col(series.name))
    )
    count = int(flags["dotted"].sum())
    if not looks_like_thousands(count, int(flags["other"].sum()), int(flags[series.name].sum())):
        return None
    first = int(flags["dotted"].arg_true()[0])
    return count, first, str(series[first])


def trim_text(value: str) -> str:
    """``value`` as a book's text column gives it once read: without white space at either end (:data:`WHITESPACE`).

    The id ``"acct-1 "`` of an export is the account ``acct-1`` in every table of the book, and so
    it is where an id comes from elsewhere (the API's ``account_id``).

    Examples
    --------
    >>> trim_text(" acct-1\u00a0"), trim_text("E 5")
    ('acct-1', 'E 5')
    """
    return value.strip(WHITESPACE)


def is_missing_text(expr: pl.Expr) -> pl.Expr:
    """True where text ``expr`` is null, blank or one of :data:`MISSING_TOKENS`.

    Examples
    --------
    >>> cells = pl.DataFrame({"x": ["NA", " n/a ", "", None, "0", "NaN"]})
    >>> cells.select(is_missing_text(pl.col("x"))).to_series().to_list()
    [True, True, True, True, False, True]
    """
    clean = expr.str.strip_chars()
    return (clean.is_null() | (clean == "") | clean.str.to_lowercase().is_in(MISSING_TOKENS)).fill_null(True)


def is_category(dtype: pl.DataType) -> bool:
    """Whether ``dtype`` holds text as categories (``Categorical``, ``Enum``: a Parquet dictionary column)."""
    return dtype == pl.Categorical or dtype == pl.Enum


def parse_column(name: str, target: ColumnType, dtype: pl.DataType, *, tokens_missing: bool = False) -> pl.Expr:
    """An expression that converts column ``name`` of input ``dtype`` to the contract ``target`` type.

    The result is null where a non-null input cannot be converted, so that comparing input and
    output nulls finds every value of the wrong type. With ``tokens_missing`` (optional columns), a
    number or timestamp written as text is missing (null) where it is one of :data:`MISSING_TOKENS`.
    """
    parsed = _parse_column(name, target, dtype)
    if tokens_missing and dtype == pl.String and target is not ColumnType.STRING:
        return pl.when(is_missing_text(pl.col(name))).then(None).otherwise(parsed).alias(name)
    return parsed


def _parse_column(name: str, target: ColumnType, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    # A column of no type that converts (a list; Null, as pl.DataFrame({"ts": []}) makes) gives a null per
    # row, not one literal null, which would make a table of no rows one row of nulls.
    nothing = pl.when(col.is_null()).then(pl.lit(None, target.polars))
    if target is ColumnType.STRING:
        if dtype == pl.String or is_category(dtype):
            # Trimmed whatever the file format: a Parquet column of categories (a pandas export) is text too, and
            # its " a1" the account "a1" of the other tables.
            stripped = col.cast(pl.String).str.strip_chars()
            # A value of blanks is empty, not an id or a category named "".
            return pl.when(stripped == "").then(None).otherwise(stripped)
        if dtype.is_float():
            # Ids stored as floats (a Parquet export of 1, 2, …) are the whole numbers, "1" not "1.0" (and
            # "10000000000000000", not "1e+16"), so that they match the same ids written as text or integers
            # in the other tables. NaN is how pandas stores a missing value in a column of floats.
            whole = col.is_finite() & (col == col.round()) & (col.abs() < 2.0**63)
            as_text = pl.when(whole).then(col.cast(pl.Int64, strict=False).cast(pl.String))
            return as_text.when(col.is_nan()).then(None).otherwise(col.cast(pl.String))
        if dtype.is_numeric() or dtype == pl.Boolean:
            return col.cast(pl.String)
        return nothing
    if target is ColumnType.FLOAT:
        if dtype == pl.String:
            return col.str.strip_chars().cast(pl.Float64, strict=False)
        if dtype.is_numeric() or dtype == pl.Boolean:
            return col.cast(pl.Float64)
        return nothing
    # Timestamps.
    if dtype == pl.String:
        return parse_timestamp_text(col)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return col.dt.cast_time_unit("us").dt.replace_time_zone("UTC")
        return col.dt.cast_time_unit("us").dt.convert_time_zone("UTC")
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return nothing


BOOLEAN_TOKENS: dict[str, bool] = {"true": True, "false": False}
"""Texts of a boolean extra column (compared trimmed, in any case), as Polars, pandas and SQL exports write them.

A column of ``1``/``0`` already loads as numbers; ``yes``/``no`` or ``t``/``f`` stay text, as such words
may as well be labels."""


def infer_extra_column(series: pl.Series) -> pl.Series:
    """Give an extra (non-contract) text column its natural type: numbers, booleans, timestamps, or text.

    A column becomes numeric (or boolean, or a timestamp) only when every value that is not missing
    (empty, or one of :data:`MISSING_TOKENS`) parses as one; the missing ones become null. Booleans are
    ``true`` and ``false`` in any case (:data:`BOOLEAN_TOKENS`), as Polars and pandas write them. Numbers
    written with a leading zero (``01000``) are codes, and keep the column text.

    Examples
    --------
    >>> infer_extra_column(pl.Series("seats", ["10", "25", None, "NA"])).to_list()
    [10.0, 25.0, None, None]
    >>> sso = infer_extra_column(pl.Series("has_sso", ["true", "False", " TRUE ", ""]))
    >>> sso.name, sso.dtype, sso.to_list()
    ('has_sso', Boolean, [True, False, True, None])
    >>> infer_extra_column(pl.Series("plan", ["pro", "10"])).dtype
    String
    >>> infer_extra_column(pl.Series("zip", ["01000", "75001"])).to_list()
    ['01000', '75001']
    """
    if series.dtype != pl.String:
        return series
    frame = series.to_frame()
    col = pl.col(series.name)
    missing = int(frame.select(is_missing_text(col).sum()).item())
    if missing == series.len():
        return series
    as_float = frame.select(parse_column(series.name, ColumnType.FLOAT, pl.String(), tokens_missing=True)).to_series()
    if as_float.null_count() == missing:
        if frame.select(col.str.strip_chars().str.contains(_LEADING_ZERO).any()).item():
            return series
        return as_float
    words = frame.select(
        pl.when(is_missing_text(col)).then(None).otherwise(col.str.strip_chars().str.to_lowercase()).alias(series.name)
    ).to_series()
    if words.drop_nulls().is_in(list(BOOLEAN_TOKENS)).all():
        return words.replace_strict(BOOLEAN_TOKENS, default=None, return_dtype=pl.Boolean)
    as_ts = frame.select(parse_column(series.name, ColumnType.TIMESTAMP, pl.String(), tokens_missing=True)).to_series()
    if as_ts.null_count() == missing:
        return as_ts
    return series


def non_finite_extra(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """Where extra column ``name`` (of input ``dtype``) holds a number that is not finite; None if it cannot.

    A native float column (Parquet, SQL, frames) is refused NaN and infinity, as the contract's
    number columns are. A text column is checked only if it loads as numbers (see
    :func:`infer_extra_column`): there ``inf``, ``-inf``, ``Infinity`` or ``1e999`` would load as
    an infinite number, while ``NaN`` is a missing value. In a column that stays text (``plan``,
    a brand named ``Infinity``) the same words are just text.

    Examples
    --------
    >>> frame = pl.DataFrame({"seats": ["10", "inf", "NaN", " -Infinity"], "brand": ["Acme", "Infinity", "x", "y"]})
    >>> frame.select(non_finite_extra("seats", pl.String()), non_finite_extra("brand", pl.String())).rows()
    [(False, False), (True, False), (False, False), (True, False)]
    >>> non_finite_extra("seats", pl.Int64()) is None
    True
    """
    col = pl.col(name)
    if dtype.is_float():
        return col.is_nan() | col.is_infinite()
    if dtype != pl.String:
        return None
    present = ~is_missing_text(col)
    stripped = col.str.strip_chars()
    parsed = stripped.cast(pl.Float64, strict=False)
    # The same test infer_extra_column makes, over the whole column: every present value a number, no code.
    loads_as_numbers = present.any() & ~(present & parsed.is_null()).any() & ~stripped.str.contains(_LEADING_ZERO).any()
    return loads_as_numbers & present & parsed.is_infinite()


def non_numbers(series: pl.Series) -> tuple[int, int, str] | None:
    """When a text column is mostly numbers, how many values are not: ``(count, first index, first value)``.

    None when the column is not text, has no number-like majority, or every present value is a number.
    "Mostly" is more than half of the values that are not missing.

    Examples
    --------
    >>> non_numbers(pl.Series("seats", ["10", "12", "unknown", "NA", "8"]))
    (1, 2, 'unknown')
    >>> non_numbers(pl.Series("plan", ["pro", "10"])) is None
    True
    """
    if series.dtype != pl.String:
        return None
    frame = series.to_frame()
    present = ~is_missing_text(pl.col(series.name))
    number = _parse_column(series.name, ColumnType.FLOAT, pl.String()).is_not_null()
    flags = frame.select(present.alias("present"), (present & ~number).alias("bad"))
    bad = int(flags["bad"].sum())
    if bad == 0 or 2 * bad >= int(flags["present"].sum()):
        return None
    first = int(flags["bad"].arg_true()[0])
    return bad, first, str(series[first])


def decimal_commas(series: pl.Series) -> tuple[int, int, str] | None:
    """When a text column would be numbers but for decimal commas: ``(count, first index, first value)`` of those.

    None when the column is not text, has no value with a decimal comma (:func:`decimal_comma_hint`),
    or has another value that is not a number either (it is text, not numbers with commas).

    Examples
    --------
    >>> decimal_commas(pl.Series("discount", ["0,5", "12", "NA", "1.234,5"]))
    (2, 0, '0,5')
    >>> decimal_commas(pl.Series("plan", ["1,5", "pro"])) is None, decimal_commas(pl.Series("n", ["1.5"])) is None
    (True, True)
    """
    if series.dtype != pl.String:
        return None
    frame = series.to_frame()
    col = pl.col(series.name)
    present = ~is_missing_text(col)
    number = _parse_column(series.name, ColumnType.FLOAT, pl.String()).is_not_null()
    comma = col.str.contains(f"^(?:{_DECIMAL_COMMA.pattern})$").fill_null(False)
    flags = frame.select((present & comma).alias("comma"), (present & ~number & ~comma).alias("other"))
    count = int(flags["comma"].sum())
    if count == 0 or bool(flags["other"].any()):
        return None
    first = int(flags["comma"].arg_true()[0])
    return count, first, str(series[first])
