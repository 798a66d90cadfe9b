"""Text values of a book lose their leading and trailing whitespace when it is read, in every table and file
format alike: ``" a1"`` in the signals is the account ``"a1 "`` of the accounts file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from nextmove.book.problems import Rule
from nextmove.book.validate import load_book, validate_book

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
ACCOUNTS = pl.DataFrame({"account_id": [" a1", "a2 ", "\ta3\u00a0"], "owner": ["ana ", " ben", "cleo"]})
SIGNALS = pl.DataFrame(
    {"account_id": ["a1", " a2", "a3 "], "ts": ["2025-05-01"] * 3, "name": ["logins "] * 3, "value": [1.0, 2.0, 3.0]}
)
TOUCHES = pl.DataFrame({"account_id": ["a1 "], "action_id": [" none"], "ts": ["2025-05-02"], "touch_id": ["t1 "]})
OUTCOMES = pl.DataFrame({"account_id": ["\u3000a3"], "ts": ["2025-05-03"], "kind": ["churn "], "touch_id": [" t1"]})


def _ids(book: object) -> list[list[str]]:
    return [
        getattr(book, name).get_column("account_id").to_list()
        for name in ("accounts", "signals", "touches", "outcomes")
    ]


def _tables(categorical: tuple[str, ...] = ()) -> dict[str, pl.DataFrame]:
    frames = {"accounts": ACCOUNTS, "signals": SIGNALS, "touches": TOUCHES, "outcomes": OUTCOMES}
    return {
        name: frame.with_columns(pl.col("account_id").cast(pl.Categorical)) if name in categorical else frame
        for name, frame in frames.items()
    }


def test_every_table_trims_its_ids_and_names_alike() -> None:
    book = load_book(_tables(), as_of=AS_OF)
    assert _ids(book) == [["a1", "a2", "a3"], ["a1", "a2", "a3"], ["a1"], ["a3"]]
    assert book.accounts.get_column("owner").to_list() == ["ana", "ben", "cleo"]
    assert book.signals.get_column("name").unique().to_list() == ["logins"]
    assert book.touches.row(0, named=True)["action_id"] == "none"
    assert book.outcomes.row(0, named=True)["kind"] == "churn"
    assert book.outcomes.row(0, named=True)["touch_id"] == book.touches.row(0, named=True)["touch_id"] == "t1"


@pytest.mark.parametrize("categorical", [("signals",), ("accounts",), ("accounts", "signals", "touches", "outcomes")])
def test_ids_of_a_categorical_column_are_trimmed_as_text_ones_are(tmp_path: Path, categorical: tuple[str, ...]) -> None:
    """A pandas export of ids as a category is a Parquet dictionary column, read as Categorical: its ids kept their
    spaces, and matched no account of a text column ("' a2' is not in accounts.account_id")."""
    for name, frame in _tables(categorical).items():
        frame.write_parquet(tmp_path / f"{name}.parquet")
    report = validate_book(tmp_path, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert _ids(load_book(tmp_path, as_of=AS_OF)) == [["a1", "a2", "a3"], ["a1", "a2", "a3"], ["a1"], ["a3"]]


def test_a_categorical_id_of_blanks_is_an_empty_value_as_a_text_one_is(tmp_path: Path) -> None:
    accounts = pl.DataFrame({"account_id": ["a1", "  "]})
    for kind in (pl.String, pl.Categorical):
        accounts.with_columns(pl.col("account_id").cast(kind)).write_parquet(tmp_path / "accounts.parquet")
        report = validate_book(tmp_path, as_of=AS_OF)
        assert [(p.rule, p.row) for p in report.problems] == [(Rule.EMPTY_VALUE, 2)], kind


def test_trim_text_removes_what_the_book_loader_removes() -> None:
    """The API trims an account id sent to it with the characters Polars' strip_chars removes, and only those."""
    from nextmove.book.parse import WHITESPACE, trim_text

    chars = [chr(c) for c in range(0x3001)]
    stripped = pl.Series([f"{c}x{c}" for c in chars]).str.strip_chars().to_list()
    assert {c for c, s in zip(chars, stripped, strict=True) if s == "x"} == set(WHITESPACE)
    assert [trim_text(f"{c}x{c}") for c in chars] == stripped
