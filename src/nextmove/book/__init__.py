"""The book of business: the data contract, loaders and validation."""

from nextmove.book.contract import CONTRACT, NO_ACTION, ColumnSpec, ColumnType, TableSpec
from nextmove.book.model import Book, empty_table

__all__ = ["CONTRACT", "NO_ACTION", "Book", "ColumnSpec", "ColumnType", "TableSpec", "empty_table"]
