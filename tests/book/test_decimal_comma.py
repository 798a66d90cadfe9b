"""Numbers written with a decimal comma (a German export: 1,5 and 1.234,56) are refused with a hint, never converted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove.book.problems import BookValidationError, Rule
from nextmove.book.validate import load_book, validate_book
from nextmove.cli import app

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
HINT = "looks like a decimal comma: export numbers with a decimal point"


def _book(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


GERMAN = {
    "accounts.csv": 'account_id,arr\na1,100\na2,"1.234,56"\na3,NA\n',
    "signals.csv": 'account_id,ts,name,value\na1,2025-01-01,logins,3\na2,2025-02-01,nps,"1,5"\na3,2025-02-01,nps,x\n',
    "outcomes.csv": 'account_id,ts,kind,value\na1,2025-02-01,renewal,"-0,25"\n',
}


def test_a_decimal_comma_is_a_bad_type_that_says_so_with_file_row_and_column(tmp_path: Path) -> None:
    # The error said "got '1,5', expected a finite number": nothing about why 1,5 is no number.
    folder = _book(tmp_path / "book", GERMAN)
    report = validate_book(folder, as_of=AS_OF)
    found = {(p.rule, p.file, p.row, p.column, p.value): p.expected for p in report.problems}
    assert set(found) == {
        (Rule.BAD_TYPE, str(folder / "accounts.csv"), 2, "arr", "1.234,56"),
        (Rule.BAD_TYPE, str(folder / "signals.csv"), 2, "value", "1,5"),
        (Rule.BAD_TYPE, str(folder / "signals.csv"), 3, "value", "x"),
        (Rule.BAD_TYPE, str(folder / "outcomes.csv"), 1, "value", "-0,25"),
    }
    for (_, _, _, _, value), expected in found.items():
        assert expected.startswith("a finite number"), expected
        assert (HINT in expected) is (value != "x"), (value, expected)
    message = next(p for p in report.problems if p.value == "1,5").message()
    assert message == (
        f"{folder / 'signals.csv'}, row 2, column 'value': got '1,5', expected a finite number ({HINT}) [bad_type]"
    )
    # Refused, not converted: loading fails with the same words, and so does the CLI.
    with pytest.raises(BookValidationError, match=r"got '1\.234,56', .*decimal comma"):
        load_book(folder, as_of=AS_OF)
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2026-01-01"])
    assert result.exit_code != 0
    assert HINT in " ".join(result.output.split())


def test_a_comma_before_three_digits_may_be_a_thousands_separator(tmp_path: Path) -> None:
    folder = _book(tmp_path / "book", {"accounts.csv": 'account_id,arr\na1,"1,234"\n'})
    (problem,) = validate_book(folder, as_of=AS_OF).problems
    assert problem.expected.endswith(
        "(looks like a decimal comma or a thousands separator: export numbers with a decimal point and no separators)"
    )


def test_an_extra_column_of_decimal_commas_is_noted_as_text_with_the_hint(tmp_path: Path) -> None:
    # An extra column of 0,5 … was silently read as text (no note: it was not mostly numbers).
    rows = 'a1,"0,5",pro\na2,NA,pro\na3,"1.234,5",pro\na4,2,pro\n'
    folder = _book(tmp_path / "book", {"accounts.csv": "account_id,discount,plan\n" + rows})
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok
    (note,) = report.notes
    assert "column 'discount' is read as text, not numbers: 2 value(s) are not numbers" in note
    assert f"(the first: row 1, '0,5', {HINT})" in note
    assert load_book(folder, as_of=AS_OF).accounts.get_column("discount").to_list()[::2] == ["0,5", "1.234,5"]
