"""``validate_book`` beyond the corpus: the summary of a valid book, ordering, as-of handling, errors."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.book.problems import Rule
from nextmove.book.validate import load_book, playbook_fit_notes, validate_book
from nextmove.cli import app
from nextmove.errors import BookError
from nextmove.playbook.schema import Playbook

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def write_book(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


VALID = {
    "accounts.csv": "account_id,arr\na1,100\na2,200\n",
    "signals.csv": (
        "account_id,ts,name,value\na1,2025-01-01,logins,3\na2,2025-03-01T10:00:00Z,logins,4\na2,2025-02-01,nps,9\n"
    ),
    "touches.csv": "account_id,action_id,ts,touch_id\na1,nurture_email,2025-01-02,t1\na2,none,2025-01-03,t2\n",
    "outcomes.csv": "account_id,ts,kind,touch_id\na1,2025-02-01,renewal,t1\n",
}


def test_validate_book_summarises_a_valid_book(tmp_path: Path, playbook: Playbook) -> None:
    report = validate_book(write_book(tmp_path / "book", VALID), playbook=playbook, as_of=AS_OF)
    assert report.ok
    assert report.problems == []
    assert report.total_problems == 0
    assert {name: s.rows for name, s in report.tables.items()} == {
        "accounts": 2,
        "signals": 3,
        "touches": 2,
        "outcomes": 1,
    }
    signals = report.tables["signals"]
    assert (signals.ts_min, signals.ts_max) == (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, 10, tzinfo=UTC))
    assert report.signal_counts == {"logins": 2, "nps": 1}
    assert report.action_counts == {"nurture_email": 1, "none": 1}
    assert report.outcome_counts == {"renewal": 1}
    assert report.as_of == AS_OF


def test_validate_book_takes_a_naive_as_of_as_utc(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", {"accounts.csv": "account_id\na1\n"})
    assert validate_book(folder, as_of=datetime(2026, 1, 1)).as_of == AS_OF
    shifted = datetime.fromisoformat("2026-01-01T02:00:00+02:00")
    assert validate_book(folder, as_of=shifted).as_of == AS_OF


def test_validate_book_lists_problems_of_a_table_in_file_order(tmp_path: Path) -> None:
    folder = write_book(
        tmp_path / "book",
        {"accounts.csv": "account_id,arr\na1,-1\na1,x\n,3\na4,nan\n"},
    )
    rows = [p.row for p in validate_book(folder, as_of=AS_OF).problems]
    assert rows == sorted(rows)


def test_validate_book_without_playbook_accepts_any_action(tmp_path: Path, playbook: Playbook) -> None:
    files = {**VALID, "touches.csv": "account_id,action_id,ts\na1,send_flowers,2025-01-02\n"}
    files.pop("outcomes.csv")
    folder = write_book(tmp_path / "book", files)
    assert validate_book(folder, as_of=AS_OF).ok
    [problem] = validate_book(folder, playbook=playbook, as_of=AS_OF).problems
    assert (problem.rule, problem.row, problem.value) == (Rule.UNKNOWN_ACTION, 1, "send_flowers")


def test_validate_book_raises_book_error_for_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BookError, match="no such folder"):
        validate_book(tmp_path / "nowhere", as_of=AS_OF)


def test_validate_book_checks_frames_by_table_name(playbook: Playbook) -> None:
    frames = {
        "accounts": pl.DataFrame({"account_id": ["a1"], "arr": [-1.0]}),
        "signals": pl.DataFrame({"account_id": ["zz"], "ts": [datetime(2025, 1, 1)], "name": ["x"], "value": [1.0]}),
    }
    report = validate_book(frames, playbook=playbook, as_of=AS_OF)
    assert {(p.table, p.rule, p.row, p.column, p.file) for p in report.problems} == {
        ("accounts", Rule.NEGATIVE, 1, "arr", "<memory>:accounts"),
        ("signals", Rule.UNKNOWN_REFERENCE, 1, "account_id", "<memory>:signals"),
    }


def test_cli_validate_exits_0_on_a_valid_book(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", VALID)
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2026-01-01"])
    assert result.exit_code == 0, result.output
    assert "valid:" in result.stdout


def test_validate_book_uses_no_deprecated_polars_api(tmp_path: Path, playbook: Playbook) -> None:
    folder = write_book(tmp_path / "book", VALID)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = validate_book(folder, playbook=playbook, as_of=AS_OF)
    assert report.ok
    deprecations = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, DeprecationWarning)]
    assert deprecations == []


def test_validate_book_names_the_row_of_a_latin1_byte_past_the_first_64_kib(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    rows = [f"a{i:05d},Customer {i:05d}" for i in range(5000)]
    text = "account_id,name\n" + "\n".join(rows) + "\n"
    assert len(text) > 64 * 1024
    (folder / "accounts.csv").write_bytes(text.encode("utf-8") + "a99999,Café\n".encode("latin-1"))
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert problem.rule is Rule.UNREADABLE_FILE
    assert problem.row == 5001


def test_missing_arr_note_when_an_objective_is_valued_at_arr(playbook: Playbook) -> None:
    from nextmove.book import Book, empty_table
    from nextmove.book.validate import missing_arr_note

    def book(accounts: pl.DataFrame) -> Book:
        return Book(accounts, empty_table("signals"), empty_table("touches"), empty_table("outcomes"))

    # The default playbook values retention at each account's ARR.
    without = book(
        pl.DataFrame({"account_id": ["a1", "a2"], "arr": [None, None]}, schema_overrides={"arr": pl.Float64})
    )
    note = missing_arr_note(without, playbook)
    assert note is not None
    assert "values 'retention' at each account's ARR" in note
    assert missing_arr_note(book(pl.DataFrame({"account_id": ["a1", "a2"], "arr": [None, 10.0]})), playbook) is None
    assert missing_arr_note(book(pl.DataFrame({"account_id": ["a1"]})), playbook) is not None


def test_playbook_fit_notes_say_what_a_valid_book_lacks_for_its_playbook(playbook: Playbook) -> None:
    from nextmove.book.validate import playbook_fit_notes

    frames = {
        "accounts": pl.DataFrame({"account_id": ["a1"], "seats": [3]}),
        "touches": pl.DataFrame({"account_id": ["a1"], "action_id": ["upsell_call"], "ts": ["2025-01-02"]}),
        "outcomes": pl.DataFrame({"account_id": ["a1"], "ts": ["2025-01-09"], "kind": ["Churn"]}),
    }
    report = validate_book(frames, playbook=playbook, as_of=AS_OF)
    assert report.ok
    notes = playbook_fit_notes(report, playbook)
    assert (
        "objective 'retention' is measured by outcome kind 'churn', which no outcome row has (the book has 'Churn': "
        "kinds are case-sensitive): its effects cannot be learned, and accounts that had it are not ended (they "
        "still get actions)"
    ) in notes
    assert (
        "objective 'expansion' is measured by outcome kind 'expansion', which no outcome row has (the book's kinds: "
        "Churn): its effects cannot be learned"
    ) in notes
    untaken = next(n for n in notes if n.startswith("no touch took"))
    assert "upsell_call" not in untaken
    assert "exec_sponsor_call" in untaken
    assert any(n.startswith("the playbook values 'retention' at each account's ARR") for n in notes)


def test_validate_book_with_a_playbook_gives_its_fit_notes_and_load_book_leaves_them_to_a_run(
    playbook: Playbook,
) -> None:
    frames = {
        "accounts": pl.DataFrame({"account_id": ["a1"], "lifecycle_stage": ["Renewal"]}),
        "outcomes": pl.DataFrame({"account_id": ["a1"], "ts": ["2025-01-09"], "kind": ["Churn"]}),
    }
    report = validate_book(frames, playbook=playbook, as_of=AS_OF)
    assert report.ok
    fit = playbook_fit_notes(report, playbook)
    assert any(n.startswith("objective 'retention'") for n in fit)
    assert any(n.startswith("default_for_stages names") for n in fit)
    assert report.notes == fit  # as `nextmove validate` says them, from Python too
    assert validate_book(frames, as_of=AS_OF).notes == []  # without a playbook, nothing to fit
    # Loading does not repeat them in every command's output: a run says them of the book it is given.
    assert load_book(frames, playbook=playbook, as_of=AS_OF).notes == ()
    # An invalid book gets its problems, not notes on what it would lack.
    broken = {**frames, "accounts": pl.DataFrame({"account_id": ["a1", "a1"]})}
    assert validate_book(broken, playbook=playbook, as_of=AS_OF).notes == []


def test_unmatched_kinds_notes_for_a_run_match_validate(playbook: Playbook) -> None:
    from nextmove.book import Book, empty_table
    from nextmove.book.validate import unmatched_kinds_notes

    kinds = ["CHURN", "Churn"]
    outcomes = pl.DataFrame({"account_id": ["a1", "a1"], "ts": ["2025-01-09", "2025-02-01"], "kind": kinds})
    frames = {"accounts": pl.DataFrame({"account_id": ["a1"], "arr": [10.0]}), "outcomes": outcomes}
    book = load_book(frames, as_of=AS_OF)
    notes = unmatched_kinds_notes(book, playbook)
    assert notes == [n for n in playbook_fit_notes(validate_book(frames, as_of=AS_OF), playbook) if n in notes]
    assert notes[0].startswith(
        "objective 'retention' is measured by outcome kind 'churn', which no outcome row has (the book has "
        "'CHURN', 'Churn': kinds are case-sensitive)"
    )
    assert len(notes) == len(playbook.objectives)
    empty = Book(book.accounts, empty_table("signals"), empty_table("touches"), empty_table("outcomes"))
    assert "(the book's kinds: none)" in unmatched_kinds_notes(empty, playbook)[0]


def test_kind_notes_name_rows_of_the_objectives_kind_spelt_in_another_case(playbook: Playbook) -> None:
    # 214 'churn' rows and 23 'Churn' rows from a second system: the 23 were silently another kind.
    from nextmove.book.validate import unmatched_kinds_notes

    outcomes = pl.DataFrame(
        {"account_id": ["a1", "a1"], "ts": ["2025-01-09", "2025-02-01"], "kind": ["churn", "Churn"]}
    )
    frames = {"accounts": pl.DataFrame({"account_id": ["a1"], "arr": [10.0]}), "outcomes": outcomes}
    notes = unmatched_kinds_notes(load_book(frames, as_of=AS_OF), playbook)
    [churn] = [n for n in notes if "'retention'" in n]
    assert churn.startswith("objective 'retention' is measured by outcome kind 'churn'; the book also has 'Churn'")
    assert "spell them 'churn' if they are the same" in churn


def test_validate_book_finds_table_files_whatever_their_case(tmp_path: Path, playbook: Playbook) -> None:
    files = {
        "ACCOUNTS.csv": VALID["accounts.csv"],
        "Signals.Csv": VALID["signals.csv"],
        "Touches.csv": VALID["touches.csv"],
        "outcomes.CSV": VALID["outcomes.csv"],
    }
    report = validate_book(write_book(tmp_path / "book", files), playbook=playbook, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert {name: s.rows for name, s in report.tables.items()} == {
        "accounts": 2,
        "signals": 3,
        "touches": 2,
        "outcomes": 1,
    }
    assert report.tables["touches"].file.endswith("Touches.csv")


def test_validate_book_names_both_files_of_one_table_in_different_cases(tmp_path: Path) -> None:
    # Touches.csv and touches.parquet are two names on every file system, and both match 'touches'.
    folder = write_book(tmp_path / "book", {"accounts.csv": "account_id\na1\n", "Touches.csv": VALID["touches.csv"]})
    pl.DataFrame({"account_id": ["a1"], "action_id": ["qbr"], "ts": ["2025-01-01"]}).write_parquet(
        folder / "touches.parquet"
    )
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert problem.rule is Rule.AMBIGUOUS_TABLE
    assert problem.expected == "one file for table 'touches'; found Touches.csv and touches.parquet: remove one"


def test_validate_book_notes_an_extra_column_of_numbers_made_text_by_a_few_values(tmp_path: Path) -> None:
    rows = "".join(f"a{i},{'unknown' if i == 3 else ('NA' if i == 5 else i)},pro\n" for i in range(1, 9))
    folder = write_book(tmp_path / "book", {"accounts.csv": "account_id,seats,plan\n" + rows})
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok
    [note] = report.notes
    assert "column 'seats' is read as text, not numbers: 1 value(s) are not numbers" in note
    assert "(the first: row 3, 'unknown')" in note
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2026-01-01"])
    assert result.exit_code == 0, result.output
    assert "column 'seats' is read as text" in " ".join(result.stdout.split())


def test_validate_book_refuses_infinite_numbers_in_extra_columns_naming_file_row_and_column(tmp_path: Path) -> None:
    # "inf is an error in any number column": an extra column of numbers flowed into features with inf.
    accounts = "account_id,seats,brand,score\na1,10,Acme,1\na2,inf,Infinity,NaN\na3,NA,Zeta,-Infinity\na4,-inf,x,2\n"
    folder = write_book(tmp_path / "book", {"accounts.csv": accounts})
    report = validate_book(folder, as_of=AS_OF)
    found = [(p.rule, p.file, p.row, p.column, p.value) for p in report.problems]
    assert found == [
        (Rule.NOT_FINITE, str(folder / "accounts.csv"), 2, "seats", "inf"),
        (Rule.NOT_FINITE, str(folder / "accounts.csv"), 3, "score", "-Infinity"),
        (Rule.NOT_FINITE, str(folder / "accounts.csv"), 4, "seats", "-inf"),
    ]  # 'Infinity' in a text column is text; NaN is a missing value
    assert "a finite number" in report.problems[0].message()
    # A native float column (Parquet) is refused NaN and infinity, as the contract's number columns are.
    native = tmp_path / "native"
    native.mkdir()
    pl.DataFrame({"account_id": ["a1", "a2", "a3"], "seats": [1.0, float("inf"), float("nan")]}).write_parquet(
        native / "accounts.parquet"
    )
    native_found = [(p.row, p.column, p.rule) for p in validate_book(native, as_of=AS_OF).problems]
    assert native_found == [(2, "seats", Rule.NOT_FINITE), (3, "seats", Rule.NOT_FINITE)]
    # Extra columns of the other tables too; the signals' own value column already was.
    signals = "account_id,ts,name,value,weight\na1,2025-01-01,nps,inf,1\na1,2025-01-02,nps,3,inf\n"
    other = write_book(tmp_path / "other", {"accounts.csv": "account_id\na1\n", "signals.csv": signals})
    assert [(p.table, p.row, p.column) for p in validate_book(other, as_of=AS_OF).problems] == [
        ("signals", 1, "value"),
        ("signals", 2, "weight"),
    ]


def test_validate_book_at_a_mid_book_run_as_of_notes_later_rows_instead_of_rejecting_them(
    tmp_path: Path, playbook: Playbook
) -> None:
    folder = write_book(tmp_path / "book", VALID)
    report = validate_book(folder, playbook=playbook, run_as_of=datetime(2025, 1, 15))
    assert report.ok, [p.message() for p in report.problems]
    assert report.notes == [
        "2 signals row(s), 1 outcomes row(s) are after --as-of 2025-01-15 00:00 UTC: a run at that time ignores "
        "them (a backtest), so they are left out here too, not errors",
        *playbook_fit_notes(report, playbook),  # the book's own notes first, then what it lacks for the playbook
    ]
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2025-01-15"])
    assert result.exit_code == 0, result.output
    assert "a run at that time ignores them" in " ".join(result.stdout.split())
    # A row after the current time (a scheduled touch) is no error either: it is noted, and left out.
    future = write_book(
        tmp_path / "future", {**VALID, "touches.csv": "account_id,action_id,ts,touch_id\na1,none,2999-01-02,t1\n"}
    )
    report = validate_book(future, run_as_of=datetime(2025, 1, 15))
    assert report.ok, [p.message() for p in report.problems]
    assert any(n.startswith(f"{future / 'touches.csv'}: 1 row(s) are dated after now") for n in report.notes)


def test_validate_book_notes_a_run_as_of_long_after_the_book_ends(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", VALID)

    def stale(run_as_of: datetime) -> list[str]:
        return [n for n in validate_book(folder, run_as_of=run_as_of).notes if n.startswith("the decision time")]

    [note] = stale(datetime(2025, 12, 1))
    assert note.startswith("the decision time 2025-12-01 is 274 days after the book's latest row (2025-03-01)")
    assert "every account's 7-, 28- and 90-day windows of recent activity are empty" in note
    # From 28 days on, when the 7- and 28-day windows (the health scorecard's) hold nothing any more.
    [note] = stale(datetime(2025, 3, 29, 10))  # the latest row: 2025-03-01 10:00
    assert note.startswith("the decision time 2025-03-29 is 28 days after")
    assert "every account's 7- and 28-day windows of recent activity are empty" in note
    assert stale(datetime(2025, 3, 29)) == []


def test_playbook_fit_notes_an_arr_column_that_is_entirely_empty(tmp_path: Path, playbook: Playbook) -> None:
    from nextmove.book.validate import playbook_fit_notes

    folder = write_book(tmp_path / "book", {"accounts.csv": "account_id,arr\na1,\na2,NA\n"})
    report = validate_book(folder, playbook=playbook, as_of=AS_OF)
    assert report.ok
    assert any(
        n.startswith("the playbook values 'retention' at each account's ARR")
        for n in playbook_fit_notes(report, playbook)
    )
    filled = write_book(tmp_path / "filled", {"accounts.csv": "account_id,arr\na1,\na2,10\n"})
    notes = playbook_fit_notes(validate_book(filled, playbook=playbook, as_of=AS_OF), playbook)
    assert not any("ARR" in n for n in notes)


def test_playbook_fit_notes_default_stages_no_account_has(tmp_path: Path, playbook: Playbook) -> None:
    from nextmove.book.validate import playbook_fit_notes

    # The default playbook's defaults: renewal, onboarding, adoption, growth, maturity.
    accounts = "account_id,lifecycle_stage\na1,Onboarding\na2,adoption\na3,growth\na4,maturity\na5,renewal\n"
    report = validate_book(write_book(tmp_path / "book", {"accounts.csv": accounts}), playbook=playbook, as_of=AS_OF)
    [note] = [n for n in playbook_fit_notes(report, playbook) if n.startswith("default_for_stages")]
    assert note.startswith("default_for_stages names 'onboarding', which no account's lifecycle_stage is")
    assert "(the book's stages: Onboarding, adoption, growth, maturity, renewal;" in note
    fixed = write_book(tmp_path / "fixed", {"accounts.csv": accounts.replace("Onboarding", "onboarding")})
    notes = playbook_fit_notes(validate_book(fixed, playbook=playbook, as_of=AS_OF), playbook)
    assert not any(n.startswith("default_for_stages") for n in notes)


def test_validate_book_skips_rows_whose_every_cell_is_empty_with_a_note(tmp_path: Path) -> None:
    # A spreadsheet's CSV export: CRLF, and rows of commas below (and here between) the data.
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_bytes(b'account_id,name,arr\r\na1,Acme,10\r\n,,\r\na2,Beta,-5\r\n,,\r\n"",,\r\n')
    (folder / "signals.csv").write_bytes(b"account_id,ts,name,value\r\na1,2025-01-01,logins,3\r\n,,,\r\n")
    report = validate_book(folder, as_of=AS_OF)
    # Rows keep their number in the file: the negative ARR is row 3, after the skipped row 2.
    assert [(p.rule, p.row) for p in report.problems] == [(Rule.NEGATIVE, 3)]
    assert report.tables["accounts"].rows == 2
    assert report.tables["signals"].rows == 1
    assert f"{folder / 'accounts.csv'}: 3 row(s) with every cell empty" in " ".join(report.notes)
    assert f"{folder / 'signals.csv'}: 1 row(s) with every cell empty" in " ".join(report.notes)
    (folder / "accounts.csv").write_bytes(b"account_id,name,arr\r\na1,Acme,10\r\n,,\r\na2,Beta,5\r\n,,\r\n")
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.select("account_id", "arr").rows() == [("a1", 10.0), ("a2", 5.0)]
    assert book.signals.height == 1
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2026-01-01"])
    assert result.exit_code == 0, result.output
    assert "2 row(s) with every cell empty" in " ".join(result.stdout.split())


def test_validate_book_leaves_out_a_column_without_name_or_values_with_a_note(tmp_path: Path) -> None:
    # A trailing comma in the header (and every row) makes a column named "".
    folder = write_book(
        tmp_path / "book",
        {
            "accounts.csv": "account_id,arr,\na1,10,\na2,20,\n",
            "signals.csv": "account_id,ts,name,value,,\na1,2025-01-01,logins,3,,\n",
        },
    )
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert report.notes == [
        f"{folder / 'accounts.csv'}: column 3 has no name in the header and no values (a trailing comma?): left out",
        f"{folder / 'signals.csv'}: columns 5, 6 have no name in the header and no values (a trailing comma?): "
        "left out",
    ]
    book = load_book(folder, as_of=AS_OF)
    assert book.extra_account_columns == []
    assert book.signals.columns == ["account_id", "ts", "name", "value", "source"]


def test_validate_book_refuses_a_column_without_name_holding_values_naming_its_position(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", {"accounts.csv": "account_id,arr,\na1,10,\na2,20,vip\n"})
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row, problem.column, problem.value) == (Rule.UNNAMED_COLUMN, 2, None, "vip")
    assert problem.message() == (
        f"{folder / 'accounts.csv'}, row 2: got 'vip', expected a name in the header for column 3, "
        "which holds 1 value(s): name the column, or delete it [unnamed_column]"
    )


def _book_with_a_touch_at(folder: Path, touch_ts: datetime) -> Path:
    """A small book whose only play is a health_check_call at ``touch_ts``; its other rows lie in the past."""
    past = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return write_book(
        folder,
        {
            "accounts.csv": "account_id,arr\na1,100\na2,200\n",
            "signals.csv": f"account_id,ts,name,value\na1,{past},logins,3\na2,{past},logins,4\n",
            "touches.csv": f"account_id,action_id,ts,touch_id\na2,none,{past},t0\n"
            f"a1,health_check_call,{touch_ts:%Y-%m-%dT%H:%M:%SZ},t1\n",
        },
    )


def test_validate_book_notes_rows_after_now_with_their_row_and_time_instead_of_refusing_them(tmp_path: Path) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    folder = _book_with_a_touch_at(tmp_path / "book", ahead)
    report = validate_book(folder)
    assert report.ok, [p.message() for p in report.problems]
    [note] = [n for n in report.notes if "after now" in n]
    assert note.startswith(f"{folder / 'touches.csv'}: 1 row(s) are dated after now (")
    assert f"the first: row 2, {ahead:%Y-%m-%d %H:%M} UTC" in note
    assert "scheduled?" in note
    assert "naive times are read as UTC" in note
    # From the command line too, with an --as-of before it (a backtest) or without one.
    for args in ([], ["--as-of", "2026-01-05"]):
        result = CliRunner().invoke(app, ["validate", "--book", str(folder), *args])
        assert result.exit_code == 0, result.output
        assert "dated after now" in " ".join(result.stdout.split())


def test_validate_book_with_a_given_as_of_refuses_later_rows_naming_that_time_and_what_to_do(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", VALID)
    [problem] = [p for p in validate_book(folder, as_of=datetime(2025, 2, 15, 12)).problems if p.table == "signals"]
    assert problem.rule is Rule.AFTER_AS_OF
    assert problem.expected == (
        "a time no later than the as_of the book was given, 2025-02-15 12:00:00 UTC (naive times are read as UTC): "
        "remove the later rows, or give a later as_of"
    )


def test_load_book_leaves_a_scheduled_touch_out_until_its_time_so_it_is_no_done_play(
    tmp_path: Path, playbook: Playbook
) -> None:
    from nextmove.book import default_as_of
    from nextmove.decide.rules import Why, check_rules
    from nextmove.features import compute_features, feature_schema

    def cooling(book_folder: Path) -> tuple[bool, datetime]:
        """Whether a1's health_check_call counts as done at the book's decision time (blocked, days since it)."""
        book = load_book(book_folder, playbook=playbook)
        when = default_as_of(book)
        assert when is not None
        features = compute_features(book, when, playbook=playbook)
        check = check_rules(features, book.touches, playbook, when, feature_schema(features))
        i = check.account_ids.index("a1")
        k = next(j for j, c in enumerate(check.candidates) if c.action_id == "health_check_call")
        blocked = check.why[i, k] in (Why.IN_FLIGHT, Why.COOLDOWN)
        assert blocked == (not np.isnan(check.days_since[i, k]))
        return bool(blocked), when

    now = datetime.now(UTC)
    # Done yesterday, the play cools down (the check works) ...
    assert cooling(_book_with_a_touch_at(tmp_path / "done", now - timedelta(days=1)))[0]
    # ... scheduled for tomorrow, it is no done play: left out of the book, with a note, and the
    # book's default decision time does not move to after it.
    scheduled = _book_with_a_touch_at(tmp_path / "scheduled", now + timedelta(days=1))
    book = load_book(scheduled, playbook=playbook)
    assert book.touches["touch_id"].to_list() == ["t0"]
    assert any("1 row(s) are dated after now" in n for n in book.notes)
    is_cooling, when = cooling(scheduled)
    assert not is_cooling
    assert when < now
    # A command that reads the book says what it left out.
    result = CliRunner().invoke(app, ["features", "--book", str(scheduled), "--out", str(tmp_path / "f.parquet")])
    assert result.exit_code == 0, result.output
    assert "1 row(s) are dated after now" in " ".join(result.stderr.split())


def test_load_book_keeps_rows_up_to_a_later_run_time(tmp_path: Path, playbook: Playbook) -> None:
    # A book whose history runs past today's clock (a simulated one, or a run as of next week) is read
    # whole up to the time the command reads it as of, not cut at now.
    now = datetime.now(UTC)
    ahead = _book_with_a_touch_at(tmp_path / "ahead", now + timedelta(days=10))
    assert "t1" not in load_book(ahead, playbook=playbook).touches["touch_id"].to_list()
    kept = load_book(ahead, playbook=playbook, run_as_of=now + timedelta(days=20))
    assert "t1" in kept.touches["touch_id"].to_list()
    cut = load_book(ahead, playbook=playbook, run_as_of=now - timedelta(days=20))
    assert "t1" not in cut.touches["touch_id"].to_list()


def test_validate_notes_owner_hours_for_owners_no_account_has(tmp_path: Path, playbook: Playbook) -> None:
    from nextmove.playbook.loader import default_playbook_text, parse_playbook

    # Owners as the book writes them: padded, and one in NFD (as macOS writes it); both read as the playbook's.
    accounts = "account_id,owner\na1, Ana Souza \na2,Zoe\u0308\na3,\n"
    with_hours = parse_playbook(
        default_playbook_text() + '[capacity.owner_hours]\n"Ana Souza" = 16\n"Zoë" = 0\n"ana" = 4\nGhost = 8\n'
    )
    report = validate_book(write_book(tmp_path / "book", {"accounts.csv": accounts}), playbook=with_hours, as_of=AS_OF)
    assert report.ok
    [note] = [n for n in report.notes if n.startswith("owner_hours")]
    assert note == "owner_hours names 'ana', 'Ghost', which no account's owner is: their hours apply to nobody"
    assert report.owners == frozenset({"Ana Souza", "Zoë"})
    # Without owner_hours the owners are not read, and there is nothing to note.
    plain = validate_book(write_book(tmp_path / "plain", {"accounts.csv": accounts}), playbook=playbook, as_of=AS_OF)
    assert plain.owners is None
    assert not any(n.startswith("owner_hours") for n in plain.notes)
