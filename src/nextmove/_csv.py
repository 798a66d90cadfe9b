"""CSV outputs safe to open in a spreadsheet: text a spreadsheet would run as a formula is escaped, reversibly.

A book's text (account ids, owners, segment names, signal names) comes from other systems and may
be written by anyone with access to them: a cell such as ``=HYPERLINK(…)`` or ``@SUM(…)`` in a
CSV is run as a formula by Excel, LibreOffice or Google Sheets (CSV injection). The outputs'
CSV files therefore prefix such text cells with a single quote (OWASP's advice), which a
spreadsheet shows as text. Numbers, and text that is a plain number (``-12.5``), are left as they
are; the Parquet outputs keep every value raw, for programs. :func:`read_csv` undoes the escape.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl

FORMULA_CHARACTERS = "=+-@\t\r"
"""What a spreadsheet may read as the start of a formula (tab and carriage return too, per OWASP)."""

# Text starting with any quotes and then a formula character is escaped (quotes included, so that
# text already starting with a quote reads back unchanged); a plain number is not a formula.
_RISKY = r"^'*[=+\-@\t\r]"
_NUMBER = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_ESCAPED = r"^'+[=+\-@\t\r]"
_TEXT = (pl.String, pl.Categorical, pl.Enum)


def escape_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell (and column name) a spreadsheet would run as a formula prefixed with ``'``.

    Examples
    --------
    >>> frame = pl.DataFrame({"owner": ["=1+1", "-12.5", "ana", "'=x", None], "arr": [1.0, -2.0, 3.0, 4.0, 5.0]})
    >>> escape_formulas(frame)["owner"].to_list()
    ["'=1+1", '-12.5', 'ana', "''=x", None]
    >>> escape_formulas(frame)["arr"].to_list()
    [1.0, -2.0, 3.0, 4.0, 5.0]
    """
    text = [name for name, dtype in frame.schema.items() if isinstance(dtype, _TEXT)]
    escaped = frame.with_columns(_escaped(pl.col(name).cast(pl.String)).alias(name) for name in text)
    return escaped.rename({name: _escape_name(name) for name in frame.columns if _escape_name(name) != name})


def unescape_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """What :func:`escape_formulas` escaped, as it was: one leading ``'`` removed from each escaped text cell.

    Examples
    --------
    >>> frame = pl.DataFrame({"owner": ["=1+1", "-12.5", "ana", "'=x", "'plain"]})
    >>> unescape_formulas(escape_formulas(frame)).equals(frame)
    True
    """
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    unescaped = frame.with_columns(
        pl.when(pl.col(c).str.contains(_ESCAPED)).then(pl.col(c).str.slice(1)).otherwise(pl.col(c)).alias(c)
        for c in text
    )
    return unescaped.rename({c: c[1:] for c in frame.columns if re.match(_ESCAPED, c)})


def write_csv(frame: pl.DataFrame, path: Path | str, **options: Any) -> None:
    """Write ``frame`` as CSV at ``path``, :func:`escape_formulas` applied; ``options`` go to Polars' ``write_csv``."""
    escape_formulas(frame).write_csv(path, **options)


def read_csv(path: Path | str, **options: Any) -> pl.DataFrame:
    """Read a CSV written by :func:`write_csv` back to its raw values; ``options`` go to Polars' ``read_csv``."""
    return unescape_formulas(pl.read_csv(path, **options))


def _escaped(column: pl.Expr) -> pl.Expr:
    risky = column.str.contains(_RISKY) & ~column.str.contains(_NUMBER)
    return pl.when(risky).then(pl.lit("'") + column).otherwise(column)


def _escape_name(name: str) -> str:
    return "'" + name if re.match(_RISKY, name) and not re.match(_NUMBER, name) else name
