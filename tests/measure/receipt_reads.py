"""Which SQL statements a read sends, and whether any reads a stored receipt whole (tests' helpers)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa


def statements_of(read: Callable[[], object]) -> list[str]:
    """The SQL statements sent while ``read()`` runs."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        read()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    return statements


def assert_no_receipt_read_whole(statements: list[str]) -> None:
    """The receipts (evidence, alternatives) are read only through JSON paths the database follows, never whole."""
    read = [s for s in statements if re.search(r"\bFROM recommendations\b", s)]
    assert read
    for statement in read:
        assert "alternatives" not in statement, statement
        for match in re.finditer(r"recommendations\.evidence\b", statement):
            before, after = statement[: match.start()], statement[match.end() :]
            assert before.rstrip().lower().endswith("json_extract(") or after.lstrip().startswith("#>"), statement
