"""Values and headers that read as something else without a word: two-digit years, a contract column spelt
another way, thousands separators '.', and times stored as numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from nextmove.book.parse import parse_timestamp_text
from nextmove.book.problems import BookValidationError, Rule
from nextmove.book.validate import load_book, validate_book

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def _book(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


# Two-digit years.


def test_parse_timestamp_text_refuses_a_year_of_fewer_than_four_digits() -> None:
    # chrono's %Y took 24-01-06 as the year 24: 730,000 days before the rest of the book.
    texts = ["24-01-06", "25-03-02T10:00:00Z", "5-01-06 10:00+02:00", "20245-01-06", "2024-01-06", "0024-01-06"]
    parsed = pl.DataFrame({"ts": texts}).select(parse_timestamp_text(pl.col("ts"))).to_series().to_list()
    assert parsed[:4] == [None] * 4
    assert parsed[4] == datetime(2024, 1, 6, tzinfo=UTC)
    assert parsed[5] == datetime(24, 1, 6, tzinfo=UTC)  # four digits: the year written, however odd


def test_validate_book_refuses_two_digit_years_naming_file_row_column_and_the_fix(tmp_path: Path) -> None:
    # contract_start 24-01-06 made a tenure of 731,233 days; a churn dated 25-03-02 preceded the contract, so
    # the account counted as won back. Both validated as a valid book.
    folder = _book(
        tmp_path / "book",
        {
            "accounts.csv": "account_id,contract_start\na1,2024-01-06\na2,24-01-06\n",
            "outcomes.csv": "account_id,ts,kind\na1,2025-03-02,churn\na2,25-03-02,churn\n",
            "touches.csv": "account_id,action_id,ts\na1,none,25-01-06T09:00:00Z\n",
        },
    )
    report = validate_book(folder, as_of=AS_OF)
    found = {(p.rule, p.file, p.row, p.column, p.value) for p in report.problems}
    assert found == {
        (Rule.BAD_TYPE, str(folder / "accounts.csv"), 2, "contract_start", "24-01-06"),
        (Rule.BAD_TYPE, str(folder / "outcomes.csv"), 2, "ts", "25-03-02"),
        (Rule.BAD_TYPE, str(folder / "touches.csv"), 1, "ts", "25-01-06T09:00:00Z"),
    }
    for problem in report.problems:
        assert "its year has 2 digits: write the year with four digits, e.g. 2024-01-06" in problem.expected
    with pytest.raises(BookValidationError, match="write the year with four digits"):
        load_book(folder, as_of=AS_OF)


def test_an_extra_column_of_two_digit_years_stays_text(tmp_path: Path) -> None:
    folder = _book(tmp_path / "book", {"accounts.csv": "account_id,signed\na1,24-01-06\na2,23-11-30\n"})
    accounts = load_book(folder, as_of=AS_OF).accounts
    assert accounts.get_column("signed").to_list() == ["24-01-06", "23-11-30"]


# Contract columns spelt another way.


def test_validate_book_refuses_optional_contract_columns_spelt_in_another_case_or_with_spaces(
    tmp_path: Path,
) -> None:
    # ARR, Lifecycle_Stage, Renewal Date and Owner were read as features: arr, the stage defaults, renewals and
    # the owners' capacity lost, with only a note that no account has an arr.
    header = "account_id,name,segment,Lifecycle_Stage,ARR,contract_start,Renewal Date,Owner,seats_bought"
    folder = _book(
        tmp_path / "book", {"accounts.csv": f"{header}\na1,Acme,Ent,growing,85360,2024-01-06,2027-01-05,ann,38\n"}
    )
    report = validate_book(folder, as_of=AS_OF)
    found = {p.column: p for p in report.problems}
    assert set(found) == {"lifecycle_stage", "arr", "renewal_date", "owner"}
    for column, spelt in [("arr", "ARR"), ("lifecycle_stage", "Lifecycle_Stage"), ("renewal_date", "Renewal Date")]:
        problem = found[column]
        assert problem.rule is Rule.MISNAMED_COLUMN
        assert problem.file == str(folder / "accounts.csv")
        assert f"found {spelt!r}, which is read as an extra column (a feature), not as {column}" in problem.expected
        assert f"rename it {column!r}" in problem.expected
    assert (
        found["owner"].message().startswith(f"{folder / 'accounts.csv'}, column 'owner': expected the column 'owner'")
    )


def test_a_contract_column_and_an_extra_spelt_like_it_are_both_kept(tmp_path: Path) -> None:
    # With arr there, ARR is an extra column of its own: nothing is lost, nothing refused.
    folder = _book(tmp_path / "book", {"accounts.csv": "account_id,arr,ARR\na1,100,1\n"})
    assert validate_book(folder, as_of=AS_OF).ok


def test_a_required_column_spelt_with_spaces_is_named_in_the_missing_column_problem(tmp_path: Path) -> None:
    folder = _book(
        tmp_path / "book",
        {"accounts.csv": "account_id\na1\n", "signals.csv": "Account ID,ts,name,value\na1,2025-01-01,logins,3\n"},
    )
    (problem,) = validate_book(folder, as_of=AS_OF).problems
    assert problem.rule is Rule.MISSING_COLUMN
    assert problem.column == "account_id"
    assert "found 'Account ID': rename it 'account_id'" in problem.expected


# Thousands separators '.'.

GERMAN_ARR = "account_id,arr\n" + "".join(
    f"a{i},{v}\n" for i, v in enumerate(["85.360", "48.694", "20.108", "9.073", "57.126", "360", "NA"])
)


def test_validate_book_notes_arr_written_with_thousands_separators(tmp_path: Path) -> None:
    # 85.360 (85,360 in a German export) was read as 85.36, a thousand times too small, without a word.
    folder = _book(tmp_path / "book", {"accounts.csv": GERMAN_ARR})
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok  # three decimals can be meant: noted, not refused
    (note,) = [n for n in report.notes if "thousands" in n]
    assert note.startswith(f"{folder / 'accounts.csv'}, column 'arr': 5 of its 6 values are written like '85.360'")
    assert "(the first: row 1), which is read as 85.36" in note
    assert "export numbers without thousands separators" in note


def test_thousands_note_reaches_a_run_through_the_loaded_book(tmp_path: Path) -> None:
    folder = _book(tmp_path / "book", {"accounts.csv": GERMAN_ARR})
    assert any("column 'arr'" in n and "thousands" in n for n in load_book(folder, as_of=AS_OF).notes)


def test_outcome_values_and_extra_columns_with_thousands_separators_are_noted_too(tmp_path: Path) -> None:
    rows = "".join(f"a1,2025-0{m}-01,expansion,{m}.500\n" for m in range(1, 7))
    seats = "account_id,seats\n" + "".join(f"a{i},{i + 1}.000\n" for i in range(6))
    folder = _book(tmp_path / "book", {"accounts.csv": seats, "outcomes.csv": "account_id,ts,kind,value\n" + rows})
    notes = [n for n in validate_book(folder, as_of=AS_OF).notes if "thousands" in n]
    assert len(notes) == 2
    assert any("accounts.csv, column 'seats': 6 of its 6 values" in n for n in notes)
    assert any("outcomes.csv, column 'value': 6 of its 6 values" in n for n in notes)


@pytest.mark.parametrize(
    "values",
    [
        ["1.250", "2.500", "0.125", "3.000", "4.750", "5.125"],  # weights with three decimals, one below 1
        ["1.250", "2.5", "3.000", "4.750", "5.125", "6.000"],  # not all written with three decimals
        ["1.250", "2.500", "3.000", "4.750"],  # too few to tell
        ["12", "15", "1.250", "30", "7", "9"],  # mostly plain numbers
    ],
)
def test_no_thousands_note_on_genuine_decimals(tmp_path: Path, values: list[str]) -> None:
    text = "account_id,arr\n" + "".join(f"a{i},{v}\n" for i, v in enumerate(values))
    report = validate_book(_book(tmp_path / "book", {"accounts.csv": text}), as_of=AS_OF)
    assert report.ok
    assert not [n for n in report.notes if "thousands" in n]


def test_a_number_with_two_thousands_separators_is_a_bad_type_that_says_so(tmp_path: Path) -> None:
    folder = _book(tmp_path / "book", {"accounts.csv": "account_id,arr\na1,1.234.567\n"})
    (problem,) = validate_book(folder, as_of=AS_OF).problems
    assert problem.rule is Rule.BAD_TYPE
    assert problem.expected.endswith("(looks like thousands separators '.': export numbers without them)")


# Times stored as numbers.


def test_a_parquet_time_column_of_epoch_numbers_is_told_to_store_a_timestamp_type(tmp_path: Path) -> None:
    # It was told "expected an ISO 8601 timestamp", as if text were stored.
    folder = _book(tmp_path / "book", {"accounts.csv": "account_id\na1\n"})
    pl.DataFrame({"account_id": ["a1"], "ts": [1735707600000], "name": ["logins"], "value": [3.0]}).write_parquet(
        folder / "signals.parquet"
    )
    (problem,) = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row, problem.column, problem.value) == (Rule.BAD_TYPE, 1, "ts", "1735707600000")
    assert "epoch seconds or milliseconds?" in problem.expected
    assert "store it as a timestamp type, or as ISO 8601 text" in problem.expected


def test_a_csv_time_column_of_epoch_numbers_says_so_and_how_to_write_it(tmp_path: Path) -> None:
    # 1714555800 got only "an ISO 8601 timestamp such as …": nothing said it was read as a number.
    folder = _book(
        tmp_path / "book",
        {
            "accounts.csv": "account_id\na1\n",
            "touches.csv": "account_id,action_id,ts\na1,none,1714555800\na1,none,1714555800000\na1,none,20240501\n",
        },
    )
    problems = sorted(validate_book(folder, as_of=AS_OF).problems, key=lambda p: p.row or 0)
    assert [(p.rule, p.row, p.value) for p in problems] == [
        (Rule.BAD_TYPE, 1, "1714555800"),
        (Rule.BAD_TYPE, 2, "1714555800000"),
        (Rule.BAD_TYPE, 3, "20240501"),
    ]
    for problem in problems[:2]:
        assert "epoch seconds or milliseconds? Write the time as ISO 8601 text" in problem.expected
    assert "epoch" not in problems[2].expected  # a date written without dashes is no epoch time
