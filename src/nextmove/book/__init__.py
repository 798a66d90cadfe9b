"""The book of business: the data contract, loaders and validation."""

from nextmove.book.contract import CONTRACT, NO_ACTION, ColumnSpec, ColumnType, TableSpec
from nextmove.book.lifetime import (
    START_COLUMNS,
    gone_accounts,
    gone_at,
    gone_at_lazy,
    latest_start,
    terminal_outcome_kinds,
)
from nextmove.book.model import (
    DATES_SHARE,
    Book,
    are_dates,
    as_of_of_reach,
    bulk_end,
    data_reach,
    dates_only,
    default_as_of,
    empty_table,
    latest_timestamp,
    of_dates,
    reach_of,
    table_reach,
)

__all__ = [
    "CONTRACT",
    "DATES_SHARE",
    "NO_ACTION",
    "START_COLUMNS",
    "Book",
    "ColumnSpec",
    "ColumnType",
    "TableSpec",
    "are_dates",
    "as_of_of_reach",
    "bulk_end",
    "data_reach",
    "dates_only",
    "default_as_of",
    "empty_table",
    "gone_accounts",
    "gone_at",
    "gone_at_lazy",
    "latest_start",
    "latest_timestamp",
    "of_dates",
    "reach_of",
    "table_reach",
    "terminal_outcome_kinds",
]
