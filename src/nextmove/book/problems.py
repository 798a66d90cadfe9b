"""Typed validation problems and the report that collects them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from nextmove._words import plural
from nextmove.errors import BookError


class Rule(StrEnum):
    """What kind of contract breach a problem is."""

    UNREADABLE_FILE = "unreadable_file"
    AMBIGUOUS_TABLE = "ambiguous_table"
    MISSING_TABLE = "missing_table"
    MISSING_COLUMN = "missing_column"
    MISNAMED_COLUMN = "misnamed_column"
    DUPLICATE_COLUMN = "duplicate_column"
    UNNAMED_COLUMN = "unnamed_column"
    EMPTY_VALUE = "empty_value"
    BAD_TYPE = "bad_type"
    NOT_FINITE = "not_finite"
    NEGATIVE = "negative"
    OUT_OF_RANGE = "out_of_range"
    NOT_ALLOWED = "not_allowed"
    DUPLICATE_KEY = "duplicate_key"
    UNKNOWN_REFERENCE = "unknown_reference"
    UNKNOWN_ACTION = "unknown_action"
    AFTER_AS_OF = "after_as_of"
    DATE_ORDER = "date_order"


@dataclass(frozen=True)
class Problem:
    """One breach of the data contract, located as precisely as the source allows.

    ``row`` counts data rows from 1 (in a CSV file, row 1 is the line after the header).
    """

    rule: Rule
    table: str
    file: str
    expected: str
    row: int | None = None
    column: str | None = None
    value: str | None = None

    def message(self) -> str:
        """The problem as one readable line.

        Examples
        --------
        >>> Problem(Rule.NEGATIVE, "accounts", "book/accounts.csv", "a number ≥ 0",
        ...         row=3, column="arr", value="-5").message()
        "book/accounts.csv, row 3, column 'arr': got '-5', expected a number ≥ 0 [negative]"
        """
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        got = f"got {self.value!r}, " if self.value is not None else ""
        return f"{', '.join(where)}: {got}expected {self.expected} [{self.rule.value}]"


@dataclass(frozen=True)
class TableSummary:
    """What was found in one table of a valid (or invalid) book."""

    table: str
    file: str
    rows: int
    columns: tuple[str, ...]
    ts_min: datetime | None = None
    ts_max: datetime | None = None
    filled: dict[str, int] = field(default_factory=dict)
    """Rows with a value, per contract column the table has."""


@dataclass(frozen=True)
class ValidationReport:
    """Everything validation found: the problems (each located) and a summary of the book.

    ``problems`` holds up to a limit of examples per rule and column; ``problem_counts`` holds the
    full count of rows breaking each (rule, table, column).
    """

    source: str
    as_of: datetime
    problems: list[Problem] = field(default_factory=list)
    problem_counts: dict[tuple[Rule, str, str | None], int] = field(default_factory=dict)
    tables: dict[str, TableSummary] = field(default_factory=dict)
    signal_counts: dict[str, int] = field(default_factory=dict)
    action_counts: dict[str, int] = field(default_factory=dict)
    outcome_counts: dict[str, int] = field(default_factory=dict)
    stage_counts: dict[str, int] = field(default_factory=dict)
    """Accounts per ``lifecycle_stage``."""
    owners: frozenset[str] | None = None
    """The accounts' owners, read only when the playbook names some (``owner_hours``); None: not read."""
    notes: list[str] = field(default_factory=list)
    """What is worth knowing about a book but breaks no rule (e.g. a column of numbers read as text)."""

    @property
    def ok(self) -> bool:
        """True when the book meets the contract."""
        return not self.problems

    @property
    def total_problems(self) -> int:
        """Number of problem rows in all, including those not listed as examples."""
        return sum(self.problem_counts.values())

    def raise_for_problems(self) -> None:
        """Raise :class:`BookValidationError` if there is any problem."""
        if self.problems:
            raise BookValidationError(self)


class BookValidationError(BookError):
    """The book breaks the data contract; ``report`` lists every problem."""

    def __init__(self, report: ValidationReport) -> None:
        shown = report.problems[:20]
        lines = [f"  {p.message()}" for p in shown]
        more = report.total_problems - len(shown)
        if more > 0:
            lines.append(f"  … and {more} more")
        super().__init__(
            f"the book at {report.source} breaks the data contract "
            f"({plural(report.total_problems, 'problem')}):\n" + "\n".join(lines)
        )
        self.report = report
