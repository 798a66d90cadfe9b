"""The duplicate-key check counts rows per key and reads the rows of only the keys it lists (capped)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from nextmove.book.problems import Rule
from nextmove.book.validate import duplicate_key_rows, validate_book


def _accounts(folder: Path, ids: list[str]) -> Path:
    folder.mkdir()
    pl.DataFrame({"account_id": ids, "arr": [10.0] * len(ids)}).write_csv(folder / "accounts.csv")
    return folder


def test_duplicate_keys_are_counted_whole_and_listed_up_to_the_limit(tmp_path: Path) -> None:
    # b repeats 3 times (rows 2, 5, 8), a twice (rows 4, 7), c once; the rest are unique.
    ids = ["u1", "b", "u2", "a", "b", "u3", "a", "b", "c", "u4"]
    book = _accounts(tmp_path / "book", ids)
    full = validate_book(book, as_of=datetime(2025, 1, 1, tzinfo=UTC))
    listed = [(p.row, p.value, p.expected) for p in full.problems if p.rule is Rule.DUPLICATE_KEY]
    assert listed == [
        (5, "b", "a unique account_id; it repeats row 2"),
        (7, "a", "a unique account_id; it repeats row 4"),
        (8, "b", "a unique account_id; it repeats row 2"),
    ]
    assert full.problem_counts[(Rule.DUPLICATE_KEY, "accounts", "account_id")] == 3
    # Capped: keys in order (a, then b), rows in file order; the count stays complete.
    capped = validate_book(book, as_of=datetime(2025, 1, 1, tzinfo=UTC), max_examples=2)
    assert [(p.row, p.value) for p in capped.problems if p.rule is Rule.DUPLICATE_KEY] == [(5, "b"), (7, "a")]
    assert capped.problem_counts[(Rule.DUPLICATE_KEY, "accounts", "account_id")] == 3
    none = validate_book(book, as_of=datetime(2025, 1, 1, tzinfo=UTC), max_examples=0)
    assert not [p for p in none.problems if p.rule is Rule.DUPLICATE_KEY]
    assert none.problem_counts[(Rule.DUPLICATE_KEY, "accounts", "account_id")] == 3


def test_only_the_listed_keys_rows_are_read() -> None:
    """A table exported twice whole: every key repeats, and only the first few keys' rows are looked up."""
    n = 50_000
    keys = [f"k{i:06d}" for i in range(n)] * 2
    lf = pl.LazyFrame({"k": keys}).with_row_index("__row", offset=1)
    repeated = (
        lf.group_by("k")
        .agg(pl.len().alias("n"), pl.col("__row").min().alias("first"))
        .filter(pl.col("n") > 1)
        .sort("k")
    ).collect()
    assert repeated.height == n
    rows = duplicate_key_rows(lf, "k", repeated, limit=3)
    assert rows.rows() == [("k000000", 1, n + 1), ("k000001", 2, n + 2), ("k000002", 3, n + 3)]
    assert duplicate_key_rows(lf, "k", repeated, limit=0).height == 0
