"""The in-memory book of business: one typed Polars frame per contract table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
    """The time the book was validated against: nothing in it lies after this."""

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
