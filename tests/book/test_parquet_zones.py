"""Parquet times in any time zone Arrow allows read as the instants they are, zones Polars does not know included.

pandas writes a fixed offset such as ``+05:30`` as the zone of ``pd.to_datetime("…+05:30")``; other
tools write ``Z`` or ``UTC+0``. Polars knows none of these (it panics reading them), but whole hours.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.book.test_load import AS_OF, assert_book_equals_expected, write_parquet_book

from nextmove.book.problems import Rule
from nextmove.book.validate import load_book, validate_book
from nextmove.playbook import Playbook


def _in_zone(folder: Path, zone: str) -> Path:
    """Rewrite the book's Parquet files with every time column in ``zone`` (the same instants)."""
    for path in folder.glob("*.parquet"):
        table = pq.read_table(path)
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type):
                table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit, tz=zone)))
        pq.write_table(table, path)
    return folder


@pytest.mark.parametrize("zone", ["+05:30", "-03:30", "+09:30", "+05:45", "Z", "UTC+0", "+05:00", "Asia/Kolkata"])
def test_a_parquet_book_in_any_zone_reads_the_same_instants_as_in_utc(
    tmp_path: Path, playbook: Playbook, zone: str
) -> None:
    folder = _in_zone(write_parquet_book(tmp_path / "book"), zone)
    assert pq.read_schema(folder / "touches.parquet").field("ts").type.tz == zone
    report = validate_book(folder, playbook=playbook, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert_book_equals_expected(load_book(folder, playbook=playbook, as_of=AS_OF))


def test_a_damaged_parquet_file_is_still_refused_as_unreadable(tmp_path: Path, playbook: Playbook) -> None:
    folder = _in_zone(write_parquet_book(tmp_path / "book"), "+05:30")
    data = (folder / "touches.parquet").read_bytes()
    (folder / "touches.parquet").write_bytes(data[:8] + b"\x00" * (len(data) - 12) + data[-4:])
    report = validate_book(folder, playbook=playbook, as_of=AS_OF)
    assert [p.rule for p in report.problems] == [Rule.UNREADABLE_FILE]
    assert "touches.parquet" in report.problems[0].message()
