"""The file-level checks of CSV books: the sniff of a file's start, the whole file's quoting, where errors are named.

Rows count data records (row 1 is the record after the header), whatever line breaks quoted
fields hold: a notes column written by Polars or Excel spans several lines per record.
"""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.book.problems import Rule
from nextmove.book.sources import _SNIFF_BYTES, check_csv_file, locate_csv_error
from nextmove.book.validate import load_book, validate_book
from nextmove.errors import BookError

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def _quoted_at_cut() -> str:
    """A valid accounts CSV over 64 KiB whose last newline before byte 65,536 lies inside a quoted field.

    Built deterministically: plain rows up to a little before the cut, then a note whose first
    line ends just before the cut and whose second line ends (and closes the quote) after it.
    """
    head = "account_id,notes\n"
    rows = []
    size = len(head)
    i = 0
    while size < _SNIFF_BYTES - 200:
        row = f"a{i:05d},plain note {i}\n"
        rows.append(row)
        size += len(row)
        i += 1
    first = f'a{i:05d},"first line of a note'
    pad = _SNIFF_BYTES - 50 - size - len(first)
    first += "." * pad + "\n"
    rows.append(first + "second line, past the cut" + "!" * 100 + '"\n')
    rows += [f'b{j:05d},"two\nlines"\n' for j in range(400)]
    text = head + "".join(rows)
    data = text.encode("utf-8")
    assert len(data) > _SNIFF_BYTES
    cut = data[:_SNIFF_BYTES]
    last_newline = cut.rfind(b"\n")
    # The construction holds: the cut's last newline is inside a quoted field (odd quotes before it).
    assert cut[:last_newline].count(b'"') % 2 == 1
    assert list(csv.reader(io.StringIO(text, newline=""), strict=True))  # and the file is valid CSV
    return text


def test_validate_book_accepts_a_large_csv_whose_64_kib_sample_ends_inside_a_quoted_field(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    text = _quoted_at_cut()
    (folder / "accounts.csv").write_text(text, encoding="utf-8")
    assert check_csv_file(folder / "accounts.csv", "accounts") is None
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.height == len(list(csv.reader(io.StringIO(text, newline="")))) - 1
    assert book.accounts.filter(book.accounts["account_id"] == "b00000")["notes"].item() == "two\nlines"


def test_validate_book_still_refuses_a_stray_quote_in_a_large_file_before_the_cut(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    text = _quoted_at_cut().replace("a00010,plain note 10\n", 'a00010,"Beta "Best" Ltd"\n')
    (folder / "accounts.csv").write_text(text, encoding="utf-8")
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 11)


def test_quoting_errors_name_the_data_row_after_multi_line_fields_and_the_line_it_starts_on(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text(
        'account_id,notes\na1,"one\ntwo\nthree"\na2,"x\ny"\na3,"Beta "Best" Ltd"\na4,ok\n', encoding="utf-8"
    )
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 3)
    assert "in the record starting on line 7" in problem.expected
    assert "row 3" in problem.message()


def test_quoting_errors_without_multi_line_fields_name_the_line_after_the_row(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text('account_id,notes\na1,x\na2,"Beta "Best" Ltd"\n', encoding="utf-8")
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert problem.row == 2
    assert "in the record starting on line 3" in problem.expected


def _multi_line_rows(n: int) -> str:
    return "".join(f'a{i:05d},"note {i}\nsecond line"\n' for i in range(n))


def test_a_non_utf8_byte_past_the_sniff_names_its_data_row_after_multi_line_fields(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    text = "account_id,notes\n" + _multi_line_rows(3000)
    assert len(text) > _SNIFF_BYTES
    (folder / "accounts.csv").write_bytes(text.encode("utf-8") + 'z99999,"Café\nNoir"\n'.encode("latin-1"))
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 3001)
    assert "on line 6002" in problem.expected


def test_a_non_utf8_byte_in_the_sniff_names_its_data_row_and_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(b'account_id,notes\na1,"x\ny"\na2,"Caf\xe9"\n')
    problem = check_csv_file(path, "accounts")
    assert problem is not None
    assert problem.row == 2
    assert "byte 0xe9 on line 4" in problem.expected


def test_locate_csv_error_names_the_data_row_and_line_of_a_ragged_record_after_multi_line_fields(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,notes\n" + _multi_line_rows(3) + "a9,x,extra\n", encoding="utf-8")
    row, expected = locate_csv_error(path, 2)
    assert row == 4
    assert expected == "2 fields as in the header; the row has 3, in the record starting on line 8"


def test_a_quote_left_open_early_in_a_large_csv_is_refused_not_read_as_one_long_field(tmp_path: Path) -> None:
    # A stray quote on row 6, and another quote 8,000 rows later: Polars reads everything between them
    # as one field (6 of 8,007 accounts loaded, without a word). The sample's cut falls inside that
    # field, which is no multi-line note: it has run on for thousands of lines.
    folder = tmp_path / "book"
    folder.mkdir()
    rows = [f"a{i:05d},1,ok" for i in range(5)] + ['a_bad,1,"oops']
    rows += [f"b{i:05d},1,fine" for i in range(8000)] + ['c0,1,"closing"']
    (folder / "accounts.csv").write_text("account_id,seats,notes\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert (folder / "accounts.csv").stat().st_size > _SNIFF_BYTES
    problem = check_csv_file(folder / "accounts.csv", "accounts")
    assert problem is not None
    assert problem.rule is Rule.UNREADABLE_FILE
    assert problem.row == 6
    assert "probably not closed" in problem.message()
    assert not validate_book(folder, as_of=AS_OF).ok


def test_validate_book_reads_pandas_frames_as_polars_would() -> None:
    pd = pytest.importorskip("pandas")
    accounts = pd.DataFrame({"account_id": ["a1", "a2", "a3"], "arr": [10.0, float("nan"), 30.0]})
    signals = pd.DataFrame(
        {"account_id": ["a1"], "ts": [pd.Timestamp("2025-01-01", tz="UTC")], "name": ["x"], "value": [1.0]}
    )
    frames = {"accounts": accounts[accounts["arr"] != 30.0], "signals": signals}  # a filtered frame has an index
    assert validate_book(frames, as_of=AS_OF).ok
    book = load_book(frames, as_of=AS_OF)
    assert book.accounts["account_id"].to_list() == ["a1", "a2"]
    assert book.accounts["arr"].to_list() == [10.0, None]  # NaN is pandas' missing value
    assert "__index_level_0__" not in book.accounts.columns
    assert book.signals["ts"].to_list() == [datetime(2025, 1, 1, tzinfo=UTC)]


def test_validate_book_names_the_column_a_pandas_frame_cannot_be_converted_by() -> None:
    pd = pytest.importorskip("pandas")
    accounts = pd.DataFrame({"account_id": ["a1", "a2"], "zip": [75001, "01000"]})
    with pytest.raises(BookError, match=r"<memory>:accounts, column 'zip': the pandas frame of table 'accounts'"):
        validate_book({"accounts": accounts}, as_of=AS_OF)


def test_validate_book_refuses_a_table_that_is_no_frame() -> None:
    class Sheet:
        """Something that is no frame (a spreadsheet object, a list of rows)."""

    frames = {"accounts": pl.DataFrame({"account_id": ["a1"]}), "signals": Sheet()}
    for read in (validate_book, load_book):
        with pytest.raises(BookError) as caught:
            read(frames, as_of=AS_OF)  # type: ignore[arg-type]
        message = str(caught.value)
        assert message.startswith("<memory>:signals: table 'signals' is a ")
        assert message.endswith("Sheet, not a table nextmove reads; pass a Polars frame (pl.from_pandas(df))")


def _accounts_rows(n: int) -> list[list[str]]:
    """Rows of an accounts file of nine columns, as the hunt's books have: well over 64 KiB for 2,000 rows."""
    return [
        [f"K{i:05d}", f"Firma {i}", "Ent", "growing", f"{1000 + i}.5", "2024-01-06", "2027-01-05", "ann", str(i % 90)]
        for i in range(n)
    ]


_ACCOUNTS_HEADER = "account_id,name,segment,lifecycle_stage,arr,contract_start,renewal_date,owner,seats_bought"


def _write_accounts(folder: Path, rows: list[list[str]]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "accounts.csv"
    path.write_text(_ACCOUNTS_HEADER + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    assert path.stat().st_size > _SNIFF_BYTES
    return path


def test_a_quote_left_open_past_the_sniff_that_a_later_quote_closes_is_refused_not_read_as_one_row(
    tmp_path: Path,
) -> None:
    # Row 1500's name opens a quote that row 1510's closes: Polars reads the eleven lines as one valid row
    # (the rows between lost, row 1500 taking row 1510's values), and the file looked valid.
    rows = _accounts_rows(2000)
    rows[1499][1] = '"Acme Screens'
    rows[1509][1] = 'Zeta"'
    folder = tmp_path / "book"
    path = _write_accounts(folder, rows)
    problem = check_csv_file(path, "accounts")
    assert problem is not None
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 1500)
    assert "in the record starting on line 1501" in problem.expected
    assert "whole row of the header's 9 fields" in problem.expected
    assert "probably not closed" in problem.expected
    [reported] = validate_book(folder, as_of=AS_OF).problems
    assert reported == problem


def test_a_quoted_multi_line_value_past_the_sniff_is_still_read(tmp_path: Path) -> None:
    rows = _accounts_rows(2000)
    rows[1499][1] = '"Acme, Screens\nsecond line of the name"'
    rows[1700][7] = '"He said ""hi""\r\nand left"'
    folder = tmp_path / "book"
    _write_accounts(folder, rows)
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.height == 2000
    assert book.accounts["name"][1499] == "Acme, Screens\nsecond line of the name"
    assert book.accounts["owner"][1700] == 'He said "hi"\r\nand left'


def test_a_long_quoted_note_past_the_sniff_such_as_an_e_mail_thread_is_read(tmp_path: Path) -> None:
    # A CRM's description field can hold a whole e-mail thread: 300 lines, 120 KiB, and no row of the header's width.
    line = "the customer wrote about the invoice and its due date; " * 7
    thread = "\n".join(f"> On day {i} {line}" for i in range(300))
    rows = _accounts_rows(2000)
    rows[1600][2] = '"' + thread + '"'
    folder = tmp_path / "book"
    path = _write_accounts(folder, rows)
    assert len(thread.encode()) > 100_000
    assert check_csv_file(path, "accounts") is None
    assert load_book(folder, as_of=AS_OF).accounts["segment"][1600] == thread.strip()  # values are trimmed


def test_a_stray_quote_inside_a_quoted_field_past_the_sniff_is_refused_not_dropped(tmp_path: Path) -> None:
    # Polars reads "Beta "Best" Ltd" as Beta Best Ltd without a word; only the first 64 KiB were checked.
    rows = _accounts_rows(2000)
    rows[1499][1] = '"Beta "Best" Ltd"'
    folder = tmp_path / "book"
    _write_accounts(folder, rows)
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 1500)
    assert problem.expected == (
        "well-formed CSV quoting: a quote ends a quoted field but is followed by 'B', in the record starting on "
        'line 1501 (a quote inside a field must be doubled: "")'
    )


def test_a_quote_inside_an_unquoted_field_past_the_sniff_names_its_row_and_what_to_do(tmp_path: Path) -> None:
    # Polars failed with "CSV malformed: expected 0 rows, actual 501 rows, in chunk starting at row_offset 1499".
    rows = _accounts_rows(2000)
    rows[1499][1] = 'Acme 5" Screens'
    folder = tmp_path / "book"
    _write_accounts(folder, rows)
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 1500)
    assert problem.expected == (
        "well-formed CSV quoting: a quote inside an unquoted field ('Acme 5\" Screens'), in the record starting "
        'on line 1501 (quote the field and double the quote: "Acme 5"" Screens")'
    )


def test_quotes_inside_unquoted_fields_in_pairs_are_read_as_written(tmp_path: Path) -> None:
    rows = _accounts_rows(2000)
    rows[1499][1] = '5" x 7" frames'
    folder = tmp_path / "book"
    _write_accounts(folder, rows)
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts["name"][1499] == '5" x 7" frames'


def test_a_quote_left_open_to_the_end_of_a_large_file_is_refused(tmp_path: Path) -> None:
    rows = _accounts_rows(2000)
    rows[1990][1] = '"Acme Screens'
    folder = tmp_path / "book"
    _write_accounts(folder, rows)
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert (problem.rule, problem.row) == (Rule.UNREADABLE_FILE, 1991)
    assert "runs on to the end of the file" in problem.expected


def test_a_non_utf8_byte_past_the_sniff_is_refused_before_polars_reads_the_file(tmp_path: Path) -> None:
    # Polars' streaming engine met it first, and now and then printed a panic's backtrace beside the error.
    rows = _accounts_rows(2000)
    folder = tmp_path / "book"
    path = _write_accounts(folder, rows)
    path.write_bytes(path.read_bytes().replace(b"Firma 1990,", "Büro,".encode("cp1252")))
    problem = check_csv_file(path, "accounts")
    assert problem is not None
    assert problem.row == 1991
    assert "byte 0xfc on line 1992 is not UTF-8" in problem.expected


def _cut_anywhere_texts() -> list[str]:
    """Texts to check whatever the chunks they are read in: well-formed, and broken in every way checked."""
    notes = "".join(f'a{i},"note {i}, with a comma\nand a ""quote"" on its second line",{i}\n' for i in range(40))
    return [
        "id,note,n\n" + notes,
        "id,note,n\r\n" + notes.replace("\n", "\r\n"),
        "id,note,n\n" + notes + 'z1,"Beta "Best" Ltd",1\n' + notes,
        "id,note,n\n" + notes + 'z1,12" screen,1\n' + notes,
        "id,note,n\n" + notes + 'z1,12" screen,1" x\n' + notes,
        "id,note,n\n" + notes + 'z1,"open,1\nz2,x,2\nz3,y",3\n' + notes,
        "id,note,n\n" + notes + 'z1,"open,1\n',
        "\ufeffid,note,n\n" + notes + "z1,Caf\udce9,1\n" + notes,
    ]


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1000])
def test_scan_csv_file_finds_the_same_wherever_its_chunks_are_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    from nextmove.book import csvscan

    path = tmp_path / "accounts.csv"
    found = []
    for text in _cut_anywhere_texts():
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        whole = csvscan.scan_csv_file(path, 3)
        with monkeypatch.context() as patch:
            patch.setattr(csvscan, "CHUNK_BYTES", chunk_bytes)
            assert csvscan.scan_csv_file(path, 3) == whole, text[-60:]
        found.append(whole)
    assert [f is None for f in found] == [True, True, False, False, True, False, False, False]
    assert [f[0] for f in found if f is not None] == [41, 41, 41, 41, 41]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.text(alphabet='ab ,"\n\r', max_size=6), min_size=2, max_size=2), min_size=1, max_size=30),
    chunk_bytes=st.integers(min_value=1, max_value=50),
    crlf=st.booleans(),
)
def test_scan_csv_file_passes_every_file_the_csv_module_writes(
    rows: list[list[str]], chunk_bytes: int, crlf: bool
) -> None:
    from nextmove.book import csvscan

    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n" if crlf else "\n").writerows([["id", "note"], *rows])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accounts.csv"
        path.write_bytes(out.getvalue().encode("utf-8"))
        original = csvscan.CHUNK_BYTES
        csvscan.CHUNK_BYTES = chunk_bytes
        try:
            assert csvscan.scan_csv_file(path, 2) is None
        finally:
            csvscan.CHUNK_BYTES = original


def test_check_csv_file_refuses_lines_ending_with_cr_only_at_once(tmp_path: Path) -> None:
    # Excel for Mac's "CSV (Macintosh)": Polars, splitting at LF only, read a 42 KB file as one line of a header
    # for a minute and 5.8 GB (700 KB: 16 minutes and more).
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    signals = "account_id,ts,name,value\r" + "".join(f"a1,2025-01-{1 + i % 28:02d},logins,{i}\r" for i in range(3000))
    (folder / "signals.csv").write_text(signals, encoding="utf-8", newline="")
    assert check_csv_file(folder / "signals.csv", "signals") is not None
    started = time.perf_counter()
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert time.perf_counter() - started < 10
    assert (problem.rule, problem.table, problem.file) == (Rule.UNREADABLE_FILE, "signals", str(folder / "signals.csv"))
    assert "end with CR only" in problem.expected
    assert 'save it as "CSV UTF-8"' in problem.expected


def test_check_csv_file_reads_a_header_alone_ending_with_cr(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    path.write_bytes(b"account_id,ts,name,value\r")
    assert check_csv_file(path, "signals") is None


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("signals.csv.gz", "it is compressed: decompress it to signals.csv"),
        ("signals.tsv", "save it as comma-separated CSV, named signals.csv"),
        ("Signals.xlsx", "it is a spreadsheet: export it as CSV UTF-8, named signals.csv"),
        ("signals (1).csv", "rename it to signals.csv"),
        ("signals.txt", "if it is comma-separated CSV, rename it to signals.csv"),
    ],
)
def test_discover_folder_notes_a_file_named_after_a_table_that_is_not_read(
    tmp_path: Path, name: str, advice: str
) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    (folder / name).write_bytes(b"account_id,ts,name,value\na1,2025-01-01,logins,3\n")
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok
    assert report.notes[0] == (
        f"{folder / name} is not read, so the signals table is empty: nextmove reads signals.csv or "
        f"signals.parquet; {advice}"
    )


def test_discover_folder_notes_a_copy_beside_the_file_it_reads(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    (folder / "outcomes.csv").write_text("account_id,ts,kind\na1,2025-01-01,churn\n", encoding="utf-8")
    (folder / "outcomes (1).csv").write_text("account_id,ts,kind\na1,2025-02-01,churn\n", encoding="utf-8")
    notes = validate_book(folder, as_of=AS_OF).notes
    assert f"{folder / 'outcomes (1).csv'} is not read: the outcomes table is read from outcomes.csv" in notes


def test_a_missing_accounts_table_names_the_compressed_file_found(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv.gz").write_bytes(gzip.compress(b"account_id\na1\n"))
    [problem] = validate_book(folder, as_of=AS_OF).problems
    assert problem.rule is Rule.MISSING_TABLE
    assert problem.expected == (
        "a file accounts.csv or accounts.parquet (the accounts table is required); found accounts.csv.gz, "
        "which is not read: it is compressed: decompress it to accounts.csv"
    )
