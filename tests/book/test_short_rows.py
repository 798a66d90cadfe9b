"""Rows of a CSV file with fewer fields than the header names are refused, not padded with empty values.

Polars fills the fields a row lacks with nulls: an accounts row cut to 5 of its 9 fields passed
validation, and a last line cut to ``…,2024-02-2`` loaded as contract_start 2024-02-02 with no owner
or renewal. Rows with too many fields were refused already; short ones are now refused the same way.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.book.problems import Rule
from nextmove.book.validate import load_book, validate_book
from nextmove.errors import BookError

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
HEADER = "account_id,name,segment,lifecycle_stage,arr,contract_start,renewal_date,owner,region"
ROWS = [f"a{i:02d},Acct {i},SMB,active,{1000 + i}.0,2024-02-{10 + i},2026-02-{10 + i},ana,west" for i in range(1, 13)]


def _write(tmp_path: Path, text: str, *, table: str = "accounts") -> Path:
    folder = tmp_path / "book"
    folder.mkdir(exist_ok=True)
    (folder / f"{table}.csv").write_text(text)
    if table != "accounts":
        (folder / "accounts.csv").write_text(HEADER + "\n" + "\n".join(ROWS) + "\n")
    return folder


def _unreadable(report_problems: list, table: str = "accounts") -> list[tuple[int | None, str]]:
    return [(p.row, p.expected) for p in report_problems if p.rule is Rule.UNREADABLE_FILE and p.table == table]


def test_a_row_cut_to_5_of_9_fields_is_refused(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[10] = "a11,Acct 11,SMB,active,1011.0"  # the hunter's row 11, cut after its ARR
    folder = _write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    report = validate_book(folder, as_of=AS_OF)
    assert not report.ok
    found = _unreadable(report.problems)
    assert [row for row, _ in found] == [11]
    assert found[0][1].startswith("9 fields as in the header; the row has 5, in the record starting on line 12")
    assert "export the file again" in found[0][1]
    with pytest.raises(BookError, match="the row has 5"):
        load_book(folder, as_of=AS_OF)


def test_a_last_line_cut_without_a_newline_is_refused(tmp_path: Path) -> None:
    """The usual truncation: the export stopped mid-line (it loaded as contract_start 2024-02-02, no owner)."""
    text = HEADER + "\n" + "\n".join(ROWS) + "\n" + "a13,Acct 13,SMB,active,1013.0,2024-02-2"
    report = validate_book(_write(tmp_path, text), as_of=AS_OF)
    assert [row for row, _ in _unreadable(report.problems)] == [13]
    assert "the row has 6" in report.problems[0].expected


def test_a_signal_row_cut_at_the_end_is_refused(tmp_path: Path) -> None:
    signals = "account_id,ts,name,value\n" + "".join(f"a{i:02d},2025-05-01,logins,{i}.5\n" for i in range(1, 13))
    folder = _write(tmp_path, signals + "a01,2025-05-02T08:0", table="signals")
    report = validate_book(folder, as_of=AS_OF)
    assert [row for row, _ in _unreadable(report.problems, "signals")] == [13]


def test_every_short_row_is_counted_and_the_first_are_listed(tmp_path: Path) -> None:
    rows = [r if i % 3 else ",".join(r.split(",")[:4]) for i, r in enumerate(ROWS)]
    report = validate_book(_write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"), as_of=AS_OF, max_examples=2)
    assert [row for row, _ in _unreadable(report.problems)] == [1, 4]
    assert report.problem_counts[(Rule.UNREADABLE_FILE, "accounts", None)] == 4


def test_rows_that_only_look_short_are_valid(tmp_path: Path) -> None:
    """Quoted commas and line breaks, an empty last value, empty lines, and the empty columns a header ends with."""
    text = (
        "account_id,name,arr,owner,,\n"  # two columns without a name, filled by no row
        'a1,"Beta, Inc.",10.0,ana\n'  # the unnamed columns left out: nothing is missing
        'a2,"two\nlines, and a comma",20.0,\n'  # an empty owner, written
        "\n"  # an empty line: a row of empty cells, skipped
        ",,,,,\n"
        'a3,"say ""hi"", then",30.0,ben,,\n'
    )
    report = validate_book(_write(tmp_path, text), as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert report.tables["accounts"].rows == 3
    book = load_book(tmp_path / "book", as_of=AS_OF)
    assert book.accounts.get_column("name").to_list() == ["Beta, Inc.", "two\nlines, and a comma", 'say "hi", then']


def test_a_short_row_after_a_value_with_line_breaks_is_located(tmp_path: Path) -> None:
    text = HEADER + "\n" + 'a1,"note\non three\nlines",SMB,active,1.0,2024-01-01,2025-01-01,ana,west\na2,Beta,SMB\n'
    report = validate_book(_write(tmp_path, text), as_of=AS_OF)
    [(row, expected)] = _unreadable(report.problems)
    assert row == 2
    assert "the row has 3, in the record starting on line 5" in expected


def test_a_value_with_a_line_break_without_quotes_is_refused(tmp_path: Path) -> None:
    """Such a value splits its row into two short ones."""
    text = HEADER + "\n" + "a1,Acme,SMB,active,1.0,2024-01-01,2025-01-01,a note\nwith a break,west\n"
    report = validate_book(_write(tmp_path, text), as_of=AS_OF)
    assert [(row, "the row has 8" in e or "the row has 2" in e) for row, e in _unreadable(report.problems)] == [
        (1, True),
        (2, True),
    ]


def test_a_line_holding_the_reading_separator_is_counted_too(tmp_path: Path) -> None:
    """The raw lines are read split at a control character: a file holding one is counted in Python."""
    from nextmove.book.sources import short_csv_rows

    path = tmp_path / "t.csv"
    path.write_text('id,note,arr\na1,x\x1fy,1\na2,"two\nlines"\n\na3,3\n')
    found = short_csv_rows(path, 3, limit=10)
    assert (found.count, found.first) == (2, [(2, 2, 3), (4, 2, 6)])


def _field(text: str, quoted: bool) -> str:
    if quoted or any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def _files(draw: st.DrawFn) -> tuple[str, int]:
    """A CSV text whose rows have 1 to one more than the header's fields, values with quotes and line breaks."""
    fields = draw(st.integers(1, 5))
    value = st.tuples(st.text(alphabet='ab ,"\n', max_size=5), st.booleans()).map(lambda t: _field(*t))
    rows = draw(st.lists(st.integers(1, fields + 1).flatmap(lambda n: st.lists(value, min_size=n, max_size=n))))
    text = "\n".join([",".join(f"h{i}" for i in range(fields)), *(",".join(r) for r in rows)])
    return text + ("\n" if draw(st.booleans()) else ""), fields


@settings(max_examples=300, deadline=None)
@given(_files())
def test_short_rows_are_those_a_csv_reader_reads_short(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, int]
) -> None:
    """The vectorised count agrees with Python's CSV reader (whose records are those Polars reads).

    A line empty or only of separators is a row of empty cells, not a short one.
    """
    from nextmove.book.sources import short_csv_rows

    text, fields = case
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text(text)
    expected = []
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    start = reader.line_num + 1
    for row, cells in enumerate(reader, start=1):
        raw = "\n".join(text.split("\n")[start - 1 : reader.line_num])
        if len(cells) < fields and raw.strip(",") != "":
            expected.append((row, len(cells), start))
        start = reader.line_num + 1
    found = short_csv_rows(path, fields, limit=1000)
    assert (found.count, found.first) == (len(expected), expected)
