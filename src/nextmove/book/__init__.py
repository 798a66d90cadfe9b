"""The book of business: the data contract, loaders and validation."""

from nextmove.book.contract import CONTRACT, NO_ACTION, ColumnSpec, ColumnType, TableSpec
from nextmove.book.model import (
    Book,
    data_reach,
    dates_only,
    default_as_of,
    empty_table,
    latest_timestamp,
    of_dates,
    table_reach,
)

__all__ = [
    "CONTRACT",
    "NO_ACTION",
    "Book",
    "ColumnSpec",
    "ColumnType",
    "TableSpec",
    "data_reach",
    "dates_only",
    "default_as_of",
    "empty_table",
    "latest_timestamp",
    "of_dates",
    "table_reach",
]
