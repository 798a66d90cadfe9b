"""Loading a valid book: the same book from CSV, Parquet, SQLite and PostgreSQL gives the same typed frames.

Also: timestamps (naive = UTC, offsets converted, ``Z``, date-only), extra columns, missing optional
tables, header blanks, a CSV round-trip property, and complete counts with bounded examples on a
large table where every row is bad.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from nextmove.book import CONTRACT, Book, default_as_of, empty_table, latest_timestamp
from nextmove.book.contract import ARMS, NO_ACTION, ColumnType
from nextmove.book.problems import Rule
from nextmove.book.validate import load_book, validate_book
from nextmove.errors import BookError
from nextmove.playbook.schema import Playbook

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# The small valid book, as typed values (what every source must load to) ...
ACCOUNTS: list[dict[str, Any]] = [
    {
        "account_id": "a1",
        "name": "Acme",
        "segment": "SMB",
        "arr": 12000.5,
        "contract_start": utc(2024, 1, 1),
        "renewal_date": utc(2025, 1, 1),
        "seats": 10.0,
        "plan": "pro",
    },
    {
        "account_id": "a2",
        "name": "Beta, Inc.",
        "segment": "Enterprise",
        "arr": None,
        "contract_start": utc(2024, 5, 1, 9, 30),
        "renewal_date": utc(2025, 5, 1, 9, 30),
        "seats": 250.0,
        "plan": "enterprise",
    },
    {
        "account_id": "a3",
        "name": "Gamma",
        "segment": None,
        "arr": 0.0,
        "contract_start": None,
        "renewal_date": None,
        "seats": None,
        "plan": None,
    },
]
SIGNALS: list[dict[str, Any]] = [
    {"account_id": "a1", "ts": utc(2025, 1, 1, 10), "name": "logins", "value": 12.0, "source": "product"},
    {"account_id": "a1", "ts": utc(2025, 1, 2, 10), "name": "nps", "value": 9.0, "source": None},
    {"account_id": "a2", "ts": utc(2025, 1, 3, 10), "name": "logins", "value": -3.5, "source": "support"},
    {"account_id": "a3", "ts": datetime(2025, 1, 4, 8, 15, 30, 250000, UTC), "name": "usage", "value": 0.0},
]
TOUCHES: list[dict[str, Any]] = [
    {
        "account_id": "a1",
        "action_id": "nurture_email",
        "ts": utc(2025, 1, 5),
        "touch_id": "t1",
        "arm": "model",
        "propensity": 0.25,
        "status": "done",
    },
    {"account_id": "a2", "action_id": NO_ACTION, "ts": utc(2025, 1, 6), "touch_id": "t2", "arm": "control"},
    {"account_id": "a3", "action_id": "upsell_call", "ts": utc(2025, 1, 7, 14), "touch_id": "t3", "propensity": 1.0},
]
OUTCOMES: list[dict[str, Any]] = [
    {"account_id": "a1", "ts": utc(2025, 2, 1), "kind": "renewal", "outcome_id": "o1", "value": 1.0, "touch_id": "t1"},
    {"account_id": "a2", "ts": utc(2025, 2, 2), "kind": "expansion", "outcome_id": "o2", "value": 5000.0},
    {"account_id": "a3", "ts": utc(2025, 2, 3), "kind": "churn"},
]
ROWS = {"accounts": ACCOUNTS, "signals": SIGNALS, "touches": TOUCHES, "outcomes": OUTCOMES}
EXTRAS: dict[str, dict[str, pl.DataType]] = {"accounts": {"seats": pl.Float64(), "plan": pl.String()}}
WRITTEN_COLUMNS = {
    "accounts": ["account_id", "name", "segment", "arr", "contract_start", "renewal_date", "seats", "plan"],
    "signals": ["account_id", "ts", "name", "value", "source"],
    "touches": ["account_id", "action_id", "ts", "touch_id", "arm", "propensity", "status"],
    "outcomes": ["account_id", "ts", "kind", "outcome_id", "value", "touch_id"],
}
# ... and the same timestamps as a person's export spells them: date-only, naive (UTC), Z, offsets.
TS_TEXT = {
    ("accounts", 0, "contract_start"): "2024-01-01",
    ("accounts", 0, "renewal_date"): "2025-01-01T00:00:00Z",
    ("accounts", 1, "contract_start"): "2024-05-01T11:30:00+02:00",
    ("accounts", 1, "renewal_date"): "2025-05-01 09:30",
    ("signals", 0, "ts"): "2025-01-01T10:00:00",
    ("signals", 1, "ts"): "2025-01-02T10:00:00Z",
    ("signals", 2, "ts"): "2025-01-03T12:00:00+02:00",
    ("signals", 3, "ts"): "2025-01-04 08:15:30.250",
    ("touches", 0, "ts"): "2025-01-05",
    ("touches", 1, "ts"): "2025-01-06T00:00:00Z",
    ("touches", 2, "ts"): "2025-01-07T09:00:00-05:00",
    ("outcomes", 0, "ts"): "2025-02-01",
    ("outcomes", 1, "ts"): "2025-02-02T00:00Z",
    ("outcomes", 2, "ts"): "2025-02-03T01:00:00+01:00",
}


def expected_frame(table: str, rows: list[dict[str, Any]] | None = None) -> pl.DataFrame:
    """The frame a source must load to: contract columns in contract dtypes, then the extras."""
    schema: dict[str, pl.DataType] = {c.name: c.type.polars for c in CONTRACT[table].columns}
    schema.update(EXTRAS.get(table, {}))
    rows = ROWS[table] if rows is None else rows
    return pl.DataFrame({k: [row.get(k) for row in rows] for k in schema}, schema=schema)


def source_frame(table: str) -> pl.DataFrame:
    """The written columns only, typed (what a Parquet export or a database holds)."""
    return expected_frame(table).select(WRITTEN_COLUMNS[table])


def text_cell(table: str, index: int, column: str, value: Any) -> str:
    if value is None:
        return ""
    if (table, index, column) in TS_TEXT:
        return TS_TEXT[(table, index, column)]
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv_book(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, columns in WRITTEN_COLUMNS.items():
        with (folder / f"{table}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            for i, row in enumerate(ROWS[table]):
                writer.writerow([text_cell(table, i, c, row.get(c)) for c in columns])
    return folder


def write_parquet_book(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table in WRITTEN_COLUMNS:
        source_frame(table).write_parquet(folder / f"{table}.parquet")
    return folder


def write_sql_book(url: str, *, timestamps_as_text: bool) -> None:
    """Create the contract tables in the database at ``url`` and insert the book.

    SQLite has no timestamp type, so there timestamps are stored as the same ISO text as in the CSV.
    """
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    tables = {}
    for table, columns in WRITTEN_COLUMNS.items():
        dtypes = expected_frame(table).schema
        cols = []
        for name in columns:
            dtype = dtypes[name]
            if dtype == pl.Float64:
                sql_type: sa.types.TypeEngine[Any] = sa.Double()
            elif isinstance(dtype, pl.Datetime):
                sql_type = sa.Text() if timestamps_as_text else sa.DateTime(timezone=True)
            else:
                sql_type = sa.Text()
            cols.append(sa.Column(name, sql_type))
        tables[table] = sa.Table(table, metadata, *cols)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            for table, columns in WRITTEN_COLUMNS.items():
                records = []
                for i, row in enumerate(ROWS[table]):
                    record = {c: row.get(c) for c in columns}
                    if timestamps_as_text:
                        for c in columns:
                            if isinstance(record[c], datetime):
                                record[c] = TS_TEXT.get((table, i, c), record[c].isoformat())
                    records.append(record)
                conn.execute(tables[table].insert(), records)
    finally:
        engine.dispose()


def assert_book_equals_expected(book: Book) -> None:
    for table in WRITTEN_COLUMNS:
        frame = book.table(table)
        for col in CONTRACT[table].columns:
            assert frame.schema[col.name] == col.type.polars, (table, col.name, frame.schema[col.name])
        assert_frame_equal(frame, expected_frame(table))


def test_load_book_reads_csv_as_contract_frames(tmp_path: Path, playbook: Playbook) -> None:
    book = load_book(write_csv_book(tmp_path / "book"), playbook=playbook, as_of=AS_OF)
    assert_book_equals_expected(book)
    assert book.as_of == AS_OF
    assert book.source == str(tmp_path / "book")
    assert default_as_of(book) == AS_OF  # the time given is the time the book is read as of


def test_load_book_without_as_of_is_read_as_of_the_midnight_after_its_data(tmp_path: Path, playbook: Playbook) -> None:
    book = load_book(write_csv_book(tmp_path / "book"), playbook=playbook)
    assert book.as_of is None  # checked against the current time, which says nothing of the data
    latest = latest_timestamp(book)
    when = default_as_of(book)
    assert latest is not None
    assert when is not None
    # The latest row is an outcome at 2025-02-03 00:00 UTC; the outcomes are dates (every one at a
    # midnight), so that day is read whole, though the touches have times of day.
    assert latest == datetime(2025, 2, 3, tzinfo=UTC)
    assert when == latest + timedelta(days=1)


def test_load_book_reads_parquet_as_contract_frames(tmp_path: Path, playbook: Playbook) -> None:
    book = load_book(write_parquet_book(tmp_path / "book"), playbook=playbook, as_of=AS_OF)
    assert_book_equals_expected(book)


def test_load_book_reads_sqlite_as_contract_frames(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'book.db').as_posix()}"
    write_sql_book(url, timestamps_as_text=True)
    assert validate_book(url, playbook=playbook, as_of=AS_OF).ok
    assert_book_equals_expected(load_book(url, playbook=playbook, as_of=AS_OF))


@pytest.mark.postgres
def test_load_book_reads_postgres_as_contract_frames(pg_url: str, playbook: Playbook) -> None:
    write_sql_book(pg_url, timestamps_as_text=False)
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert {name: s.rows for name, s in report.tables.items()} == {name: len(rows) for name, rows in ROWS.items()}
    assert_book_equals_expected(load_book(pg_url, playbook=playbook, as_of=AS_OF))


@pytest.mark.postgres
def test_validate_book_locates_problems_in_postgres_tables(pg_url: str, playbook: Playbook) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE accounts (account_id text, arr double precision)")
        conn.exec_driver_sql("INSERT INTO accounts VALUES ('a1', 10), ('a2', -5), ('a1', 1)")
    engine.dispose()
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    found = {(p.rule, p.row, p.column) for p in report.problems}
    assert found == {(Rule.NEGATIVE, 2, "arr"), (Rule.DUPLICATE_KEY, 3, "account_id")}
    assert all(p.file.startswith("table accounts in postgresql") for p in report.problems)


@pytest.mark.postgres
def test_load_book_source_hides_the_password_of_the_url_and_of_its_query_string(
    pg_url: str, playbook: Playbook
) -> None:
    write_sql_book(pg_url, timestamps_as_text=False)
    # The test server trusts local connections: the passwords are ignored, and must never be shown.
    url = sa.make_url(pg_url).set(password="S3cret").update_query_dict({"password": "S3cret"})
    book = load_book(url.render_as_string(hide_password=False), playbook=playbook, as_of=AS_OF)
    assert "S3cret" not in book.source
    assert book.source.startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    assert "password=***" in book.source


def _write_late_values_book(url: str) -> None:
    """Tables whose text, number and time columns are null in their first 150 rows, then hold values."""
    engine = sa.create_engine(url)
    ts_type = "TEXT" if url.startswith("sqlite") else "timestamptz"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE accounts (account_id text, arr double precision)")
            conn.exec_driver_sql("INSERT INTO accounts VALUES ('a1', 1000)")
            conn.exec_driver_sql(
                f"CREATE TABLE touches (account_id text, action_id text, ts {ts_type}, variant text, "
                "propensity double precision)"
            )
            rows = [
                {
                    "ts": f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
                    "variant": None if i < 150 else f"v{i % 2}",
                    "propensity": None if i < 150 else 0.5,
                }
                for i in range(200)
            ]
            insert = "INSERT INTO touches VALUES ('a1', 'nurture_email', :ts, :variant, :propensity)"
            conn.execute(sa.text(insert), rows)
    finally:
        engine.dispose()


def test_a_mistyped_sqlite_book_path_is_an_error_that_creates_no_file(tmp_path: Path, playbook: Playbook) -> None:
    # Connecting would create an empty database, read as a book without tables ("missing table accounts").
    missing = tmp_path / "nonexist.db"
    for check in (validate_book, load_book):
        with pytest.raises(BookError, match="no such SQLite database file"):
            check(f"sqlite:///{missing.as_posix()}", playbook=playbook, as_of=AS_OF)
    assert not missing.exists()


def test_load_book_reads_sqlite_columns_whose_first_rows_are_null(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'book.db').as_posix()}"
    _write_late_values_book(url)
    touches = load_book(url, playbook=playbook, as_of=AS_OF).touches
    assert touches["variant"].drop_nulls().to_list() == ["v0", "v1"] * 25
    assert touches["propensity"].drop_nulls().to_list() == [0.5] * 50


@pytest.mark.postgres
def test_load_book_reads_postgres_columns_whose_first_rows_are_null(pg_url: str, playbook: Playbook) -> None:
    _write_late_values_book(pg_url)
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    assert report.tables["touches"].rows == 200
    touches = load_book(pg_url, playbook=playbook, as_of=AS_OF).touches
    assert touches.schema["variant"] == pl.String
    assert touches["variant"].drop_nulls().to_list() == ["v0", "v1"] * 25
    assert touches["propensity"].drop_nulls().to_list() == [0.5] * 50


def test_validate_book_hides_the_password_of_a_url_sqlalchemy_cannot_read(playbook: Playbook) -> None:
    from nextmove.errors import BookError

    with pytest.raises(BookError) as info:
        validate_book("postgresql://u:S3cret@db:notaport/crm?password=S3cret", playbook=playbook)
    assert "S3cret" not in str(info.value)


def test_validate_book_locates_problems_in_sqlite_tables(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'book.db').as_posix()}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE accounts (account_id TEXT, arr REAL)")
        conn.exec_driver_sql("CREATE TABLE signals (account_id TEXT, ts TEXT, name TEXT, value REAL)")
        conn.exec_driver_sql("INSERT INTO accounts VALUES ('a1', 10), ('a2', -5)")
        conn.exec_driver_sql("INSERT INTO signals VALUES ('a1', '2025-01-01', 'x', 1), ('zz', 'soon', 'x', 2)")
    engine.dispose()
    report = validate_book(url, playbook=playbook, as_of=AS_OF)
    found = {(p.table, p.rule, p.row, p.column) for p in report.problems}
    assert found == {
        ("accounts", Rule.NEGATIVE, 2, "arr"),
        ("signals", Rule.UNKNOWN_REFERENCE, 2, "account_id"),
        ("signals", Rule.BAD_TYPE, 2, "ts"),
    }
    assert {p.file for p in report.problems} == {f"table accounts in {url}", f"table signals in {url}"}


TIMESTAMP_FORMS = [
    ("2024-05-01T11:30:00+02:00", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01T09:30:00Z", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01T09:30:00z", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01T09:30:00", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01 09:30", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01", utc(2024, 5, 1)),
    ("2024-05-01T04:30:00-05:00", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01T15:15:00.5+05:45", datetime(2024, 5, 1, 9, 30, 0, 500000, UTC)),
    ("2024-05-01T00:30:00+01:00", utc(2024, 4, 30, 23, 30)),
    (" 2024-05-01T09:30:00Z ", utc(2024, 5, 1, 9, 30)),
    # Offsets of whole hours, a UTC written out (BigQuery, Snowflake), an offset after a blank.
    ("2024-05-01T11:30:00+02", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01 11:30+02", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01T04:30:00.000-05", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01 09:30:00 UTC", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01 09:30:00.000 utc", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01 11:30:00 +02:00", utc(2024, 5, 1, 9, 30)),
    ("2024-05-01 11:30:00.000 +0200", utc(2024, 5, 1, 9, 30)),
]
"""Every form a book's timestamp may take, and what it means; ``--as-of`` takes the same."""


@pytest.mark.parametrize(("text", "expected"), TIMESTAMP_FORMS)
def test_parse_as_of_takes_every_form_a_book_timestamp_takes(text: str, expected: datetime) -> None:
    from nextmove.cli._common import parse_as_of

    assert parse_as_of(text) == expected


@pytest.mark.parametrize("text", ["2026-02-29", "2026-13-01", "2026-04-31T10:00:00Z", "2026-01-05T24:00:00"])
def test_parse_as_of_says_no_such_date_for_an_impossible_one(text: str) -> None:
    from nextmove.cli._common import parse_as_of
    from nextmove.errors import ConfigError

    with pytest.raises(ConfigError, match=r"is no such (date|time)") as info:
        parse_as_of(text)
    assert "ISO 8601" not in str(info.value)
    with pytest.raises(ConfigError, match="is not an ISO 8601 time"):
        parse_as_of("2026-01-05T10:00:00 CET")


def test_validate_book_says_no_such_date_for_an_impossible_timestamp(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,renewal_date\na1,2026-02-29\na2,2026-03-01\n", encoding="utf-8")
    (folder / "signals.csv").write_text(
        "account_id,ts,name,value\na1,2025-02-29T10:00:00Z,x,1\na1,May 1,x,1\n", encoding="utf-8"
    )
    report = validate_book(folder, as_of=AS_OF)
    no_such = "a date and time that exist ({} is no such date: day is out of range for month)"
    assert [(p.table, p.row, p.column, p.rule, p.expected) for p in report.problems] == [
        ("accounts", 1, "renewal_date", Rule.BAD_TYPE, no_such.format("2026-02-29")),
        ("signals", 1, "ts", Rule.BAD_TYPE, no_such.format("2025-02-29")),
        ("signals", 2, "ts", Rule.BAD_TYPE, ColumnType.TIMESTAMP.expected),
    ]
    assert report.problem_counts[(Rule.BAD_TYPE, "signals", "ts")] == 2


@pytest.mark.parametrize(("text", "expected"), TIMESTAMP_FORMS)
def test_load_book_reads_timestamps_as_utc(tmp_path: Path, text: str, expected: datetime) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    (folder / "signals.csv").write_text(f'account_id,ts,name,value\na1,"{text}",x,1\n', encoding="utf-8")
    book = load_book(folder, as_of=AS_OF)
    assert book.signals.schema["ts"] == pl.Datetime("us", "UTC")
    assert book.signals["ts"].to_list() == [expected]


def test_load_book_keeps_and_types_extra_columns(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text(
        "account_id,seats,plan,last_login,zip_or_code,empty\n"
        "a1,10,pro,2025-01-01T10:00:00Z,02134,\n"
        "a2, 2.5 ,basic,2025-02-01,X1,\n"
        "a3,,,,,\n",
        encoding="utf-8",
    )
    (folder / "signals.csv").write_text("account_id,ts,name,value,unit\na1,2025-01-01,x,1,pct\n", encoding="utf-8")
    book = load_book(folder, as_of=AS_OF)
    accounts = book.accounts
    assert accounts.columns[: len(CONTRACT["accounts"].columns)] == list(CONTRACT["accounts"].column_names)
    assert book.extra_account_columns == ["seats", "plan", "last_login", "zip_or_code", "empty"]
    assert accounts.schema["seats"] == pl.Float64
    assert accounts["seats"].to_list() == [10.0, 2.5, None]
    assert accounts.schema["plan"] == pl.String
    assert accounts["plan"].to_list() == ["pro", "basic", None]
    assert accounts.schema["last_login"] == pl.Datetime("us", "UTC")
    assert accounts["last_login"].to_list() == [utc(2025, 1, 1, 10), utc(2025, 2, 1), None]
    assert accounts.schema["zip_or_code"] == pl.String
    assert accounts["empty"].to_list() == [None, None, None]
    assert book.signals["unit"].to_list() == ["pct"]


def test_load_book_keeps_native_types_of_parquet_extra_columns(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    pl.DataFrame({"account_id": ["a1"], "seats": pl.Series([3], dtype=pl.Int32), "vip": [True]}).write_parquet(
        folder / "accounts.parquet"
    )
    accounts = load_book(folder, as_of=AS_OF).accounts
    assert accounts.schema["seats"] == pl.Int32
    assert accounts.schema["vip"] == pl.Boolean


def test_load_book_reads_a_csv_column_of_true_and_false_as_boolean_as_parquet_does(tmp_path: Path) -> None:
    # Polars writes booleans as true/false, pandas as True/False: such a column is the boolean it
    # was, hence the same 0/1 number feature as from Parquet, not a text feature.
    from nextmove.features import compute_features

    csv_book, parquet_book = tmp_path / "csv", tmp_path / "parquet"
    csv_book.mkdir()
    parquet_book.mkdir()
    (csv_book / "accounts.csv").write_text(
        "account_id,has_sso,vip,answer\na1,true,True,yes\na2,false,FALSE ,no\na3,NA,,yes\na4,true,False,no\n",
        encoding="utf-8",
    )
    pl.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "a4"],
            "has_sso": [True, False, None, True],
            "vip": [True, False, None, False],
        }
    ).write_parquet(parquet_book / "accounts.parquet")
    from_csv = load_book(csv_book, as_of=AS_OF)
    assert from_csv.accounts.schema["has_sso"] == pl.Boolean
    assert from_csv.accounts["has_sso"].to_list() == [True, False, None, True]
    assert from_csv.accounts["vip"].to_list() == [True, False, None, False]
    assert from_csv.accounts.schema["answer"] == pl.String  # yes/no may as well be labels: text
    features = compute_features(from_csv, AS_OF).select("has_sso", "vip")
    assert features.schema["has_sso"] == pl.Float64
    assert_frame_equal(features, compute_features(load_book(parquet_book, as_of=AS_OF), AS_OF).select("has_sso", "vip"))


def test_load_book_keeps_extra_columns_named_with_leading_underscores(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,__source\na1,crm\n", encoding="utf-8")
    assert load_book(folder, as_of=AS_OF).accounts["__source"].to_list() == ["crm"]


def test_load_book_fills_missing_optional_tables_with_empty_contract_frames(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\na2\n", encoding="utf-8")
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.height == 2
    for table in ("signals", "touches", "outcomes"):
        frame = book.table(table)
        assert frame.height == 0
        assert frame.schema == empty_table(table).schema
    # Optional account columns the file lacks are there, as nulls of their contract type.
    assert book.accounts.schema == pl.Schema({c.name: c.type.polars for c in CONTRACT["accounts"].columns})
    assert book.accounts["arr"].null_count() == 2


def test_load_book_fills_missing_optional_tables_from_frames() -> None:
    book = load_book({"accounts": pl.DataFrame({"account_id": ["a1"]}).lazy()}, as_of=AS_OF)
    assert book.signals.schema == empty_table("signals").schema
    assert book.source == "<memory>"


def test_load_book_accepts_header_names_with_surrounding_blanks(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text(" account_id ,arr , seats\na1,5,3\n", encoding="utf-8")
    (folder / "signals.csv").write_text("account_id,  ts,name ,value\na1,2025-01-01,x,1\n", encoding="utf-8")
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.select("account_id", "arr", "seats").row(0) == ("a1", 5.0, 3.0)
    assert book.signals.select("ts", "name").row(0) == (utc(2025, 1, 1), "x")


def test_load_book_accepts_a_utf8_bom_and_crlf_line_ends(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_bytes(b"\xef\xbb\xbfaccount_id,arr\r\na1,5\r\na2,6\r\n")
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.select("account_id", "arr").rows() == [("a1", 5.0), ("a2", 6.0)]


# --- round trip: random valid books written as CSV load back to the same values -----------------

_TEXT = st.text(alphabet="abcxyzAZ019 -_.,'\"é€/:\n", min_size=1, max_size=8).filter(
    lambda s: s == s.strip() and s != ""
)
_IDS = st.text(alphabet="abcAZ019-_.", min_size=1, max_size=6)
_INSTANT = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2025, 12, 30)).map(
    lambda d: d.replace(tzinfo=UTC)
)
_OFFSET_MINUTES = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: q * 15)
_SPELLING = st.sampled_from(["Z", "offset", "naive", "naive_space", "date"])
_FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def _timestamp(draw: st.DrawFn) -> tuple[datetime, str]:
    """A UTC instant and one ISO 8601 spelling of it."""
    instant, spelling = draw(_INSTANT), draw(_SPELLING)
    if spelling == "date":
        instant = instant.replace(hour=0, minute=0, second=0, microsecond=0)
        return instant, instant.strftime("%Y-%m-%d")
    if spelling == "Z":
        return instant, instant.replace(tzinfo=None).isoformat() + "Z"
    if spelling == "offset":
        local = instant.astimezone(timezone(timedelta(minutes=draw(_OFFSET_MINUTES))))
        return instant, local.isoformat()
    naive = instant.replace(tzinfo=None)
    return instant, naive.isoformat(sep=" " if spelling == "naive_space" else "T")


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def _books(draw: st.DrawFn, actions: list[str]) -> dict[str, list[dict[str, tuple[Any, str]]]]:
    """A random valid book: per table, rows of column -> (typed value, CSV text)."""

    def cell(value: Any, text: str | None = None) -> tuple[Any, str]:
        if value is None:
            return None, ""
        return value, text if text is not None else (repr(value) if isinstance(value, float) else str(value))

    def ts() -> tuple[Any, str]:
        instant, text = draw(_timestamp())
        return instant, text

    def opt_ts() -> tuple[Any, str]:
        return ts() if draw(st.booleans()) else (None, "")

    ids = draw(st.lists(_IDS, min_size=1, max_size=6, unique=True))
    accounts = []
    for account_id in ids:
        start = opt_ts()
        renewal = opt_ts()
        if start[0] is not None and renewal[0] is not None and renewal[0] < start[0]:
            start, renewal = renewal, start
        accounts.append(
            {
                "account_id": cell(account_id),
                "name": cell(draw(_optional(_TEXT))),
                "arr": cell(draw(_optional(st.floats(min_value=0.0, max_value=1e15)))),
                "contract_start": start,
                "renewal_date": renewal,
                "score": cell(draw(_optional(_FINITE))),
            }
        )
    signals = [
        {
            "account_id": cell(draw(st.sampled_from(ids))),
            "ts": ts(),
            "name": cell(draw(_TEXT)),
            "value": cell(draw(_FINITE)),
            "source": cell(draw(_optional(_TEXT))),
        }
        for _ in range(draw(st.integers(0, 8)))
    ]
    touch_ids = draw(st.lists(_IDS, max_size=5, unique=True))
    touches = [
        {
            "account_id": cell(draw(st.sampled_from(ids))),
            "action_id": cell(draw(st.sampled_from(actions))),
            "ts": ts(),
            "touch_id": cell(touch_id),
            "arm": cell(draw(_optional(st.sampled_from(ARMS)))),
            "propensity": cell(draw(_optional(st.floats(min_value=0.0, max_value=1.0)))),
        }
        for touch_id in touch_ids
    ]
    outcome_ids = draw(st.lists(_IDS, max_size=5, unique=True))
    outcomes = [
        {
            "account_id": cell(draw(st.sampled_from(ids))),
            "ts": ts(),
            "kind": cell(draw(_TEXT)),
            "outcome_id": cell(outcome_id),
            "value": cell(draw(_optional(_FINITE))),
            "touch_id": cell(draw(_optional(st.sampled_from(touch_ids))) if touch_ids else None),
        }
        for outcome_id in outcome_ids
    ]
    return {"accounts": accounts, "signals": signals, "touches": touches, "outcomes": outcomes}


def _write_rows(path: Path, rows: list[dict[str, tuple[Any, str]]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c][1] for c in columns])


_ACTIONS = [
    "nurture_email",
    "upsell_call",
    "health_check_call",
    NO_ACTION,
]
_COLUMNS = {
    "accounts": ["account_id", "name", "arr", "contract_start", "renewal_date", "score"],
    "signals": ["account_id", "ts", "name", "value", "source"],
    "touches": ["account_id", "action_id", "ts", "touch_id", "arm", "propensity"],
    "outcomes": ["account_id", "ts", "kind", "outcome_id", "value", "touch_id"],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=_books(_ACTIONS))
def test_load_book_round_trips_random_valid_books_through_csv(
    book: dict[str, list[dict[str, tuple[Any, str]]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for table, rows in book.items():
            if table == "accounts" or rows:
                _write_rows(folder / f"{table}.csv", rows, _COLUMNS[table])
        report = validate_book(folder, as_of=AS_OF)
        assert report.ok, [p.message() for p in report.problems]
        loaded = load_book(folder, as_of=AS_OF)
    for table, rows in book.items():
        frame = loaded.table(table)
        assert frame.height == len(rows)
        if table == "accounts":
            # Loaded in the order of their ids, whatever the file's (canonical_accounts).
            rows = sorted(rows, key=lambda row: row["account_id"][0])
        for column in _COLUMNS[table]:
            want = [row[column][0] for row in rows]
            got = frame[column].to_list()
            if column in CONTRACT[table].column_names and CONTRACT[table].column(column).type is ColumnType.FLOAT:
                assert frame.schema[column] == pl.Float64
            assert got == want, (table, column, [row[column][1] for row in rows])


# --- large tables: complete counts, bounded examples ------------------------------------------

LARGE_ROWS = 200_000


def test_validate_book_counts_every_bad_row_but_lists_at_most_max_examples(tmp_path: Path, playbook: Playbook) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    n = LARGE_ROWS
    pl.DataFrame(
        {
            "account_id": pl.repeat("nobody", n, eager=True),
            "ts": pl.repeat("not a time", n, eager=True),
            "name": pl.repeat("logins", n, eager=True),
            "value": pl.repeat("abc", n, eager=True),
        }
    ).write_csv(folder / "signals.csv")
    max_examples = 100
    report = validate_book(folder, playbook=playbook, as_of=AS_OF, max_examples=max_examples)
    assert report.problem_counts == {
        (Rule.UNKNOWN_REFERENCE, "signals", "account_id"): n,
        (Rule.BAD_TYPE, "signals", "ts"): n,
        (Rule.BAD_TYPE, "signals", "value"): n,
    }
    assert report.total_problems == 3 * n
    listed_rows = {p.row for p in report.problems}
    assert 0 < len(listed_rows) <= max_examples
    assert len(report.problems) <= 3 * max_examples
    assert report.tables["signals"].rows == n


def test_validate_book_lists_at_most_max_examples_duplicate_keys(tmp_path: Path, playbook: Playbook) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    n = LARGE_ROWS
    pl.DataFrame(
        {
            "account_id": pl.repeat("a1", n, eager=True),
            "action_id": pl.repeat(NO_ACTION, n, eager=True),
            "ts": pl.repeat("2025-01-01", n, eager=True),
            "touch_id": pl.repeat("t1", n, eager=True),
        }
    ).write_csv(folder / "touches.csv")
    report = validate_book(folder, playbook=playbook, as_of=AS_OF, max_examples=100)
    assert report.problem_counts == {(Rule.DUPLICATE_KEY, "touches", "touch_id"): n - 1}
    assert len(report.problems) <= 100


MISSING_SPELLINGS = ["NA", "N/A", "null", "NULL", "None", "NaN", " na ", "nan"]


def test_load_book_reads_missing_value_spellings_as_missing_in_optional_and_extra_columns(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    rows = [f"a{i},{token},{i},{token}" for i, token in enumerate(MISSING_SPELLINGS)]
    (folder / "accounts.csv").write_text(
        "account_id,arr,seats,renewal_date\n" + "\n".join(rows) + "\nz,5,20,2025-01-01\n", encoding="utf-8"
    )
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    accounts = load_book(folder, as_of=AS_OF).accounts
    assert accounts.schema["seats"] == pl.Float64
    assert accounts["arr"].to_list() == [None] * len(MISSING_SPELLINGS) + [5.0]
    assert accounts["renewal_date"].null_count() == len(MISSING_SPELLINGS)
    with_tokens = tmp_path / "extra"
    with_tokens.mkdir()
    (with_tokens / "accounts.csv").write_text(
        "account_id,seats\n" + "\n".join(f"a{i},{t}" for i, t in enumerate(MISSING_SPELLINGS)) + "\nz,12\n",
        encoding="utf-8",
    )
    seats = load_book(with_tokens, as_of=AS_OF).accounts["seats"]
    assert seats.dtype == pl.Float64
    assert seats.to_list() == [None] * len(MISSING_SPELLINGS) + [12.0]


def test_load_book_keeps_missing_value_spellings_errors_where_a_value_is_required(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,arr\na1,inf\na2,abc\n", encoding="utf-8")
    (folder / "signals.csv").write_text("account_id,ts,name,value\na1,2025-01-01,logins,NA\n", encoding="utf-8")
    problems = {(p.table, p.row, p.column, p.rule): p for p in validate_book(folder, as_of=AS_OF).problems}
    assert set(problems) == {
        ("accounts", 1, "arr", Rule.NOT_FINITE),
        ("accounts", 2, "arr", Rule.BAD_TYPE),
        ("signals", 1, "value", Rule.BAD_TYPE),
    }
    # An optional number says how to leave it missing; a required one does not offer it.
    assert "an empty cell (NA, null) to leave it missing" in problems["accounts", 2, "arr", Rule.BAD_TYPE].expected
    assert problems["signals", 1, "value", Rule.BAD_TYPE].expected == "a finite number"


def test_load_book_keeps_codes_with_leading_zeros_as_text(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text(
        "account_id,zip,seats\na1,01000,10\na2,75001,0\na3,02134,0.5\n", encoding="utf-8"
    )
    accounts = load_book(folder, as_of=AS_OF).accounts
    assert accounts["zip"].to_list() == ["01000", "75001", "02134"]
    assert accounts["seats"].to_list() == [10.0, 0.0, 0.5]


def test_load_book_reads_whole_float_ids_as_whole_numbers(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    pl.DataFrame({"account_id": [1.0, 2.0, 3.5], "arr": [10.0, 20.0, 30.0]}).write_parquet(folder / "accounts.parquet")
    (folder / "signals.csv").write_text(
        "account_id,ts,name,value\n1,2025-01-01,logins,3\n2,2025-01-02,logins,4\n3.5,2025-01-02,logins,4\n",
        encoding="utf-8",
    )
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert load_book(folder, as_of=AS_OF).accounts["account_id"].to_list() == ["1", "2", "3.5"]


def test_load_book_writes_whole_float_ids_beyond_2_53_as_integers() -> None:
    accounts = pl.DataFrame({"account_id": [1e16, 12345678901234567.0, -3.0, 2.5]})
    child = {"account_id": ["10000000000000000"], "ts": [utc(2025, 1, 1)], "name": ["x"], "value": [1.0]}
    signals = pl.DataFrame(child)
    report = validate_book({"accounts": accounts, "signals": signals}, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    # 12345678901234567 has no float: the float holds 12345678901234568, and that is the id written.
    assert load_book({"accounts": accounts}, as_of=AS_OF).accounts["account_id"].to_list() == [
        "-3",
        "10000000000000000",
        "12345678901234568",
        "2.5",
    ]


def test_validate_book_takes_a_nan_float_id_for_a_missing_one() -> None:
    # pl.from_pandas(..., nan_to_null=False), or a frame made with NaN: pandas' missing value, not an id "NaN".
    accounts = pl.DataFrame({"account_id": [101.0, float("nan"), 103.0], "arr": [1.0, 2.0, 3.0]})
    report = validate_book({"accounts": accounts}, as_of=AS_OF)
    assert [(p.rule, p.row, p.column) for p in report.problems] == [(Rule.EMPTY_VALUE, 2, "account_id")]
    # An optional text column of floats (a stage coded as numbers) takes NaN for missing too.
    staged = pl.DataFrame({"account_id": ["a1", "a2"], "lifecycle_stage": [1.0, float("nan")]})
    assert load_book({"accounts": staged}, as_of=AS_OF).accounts["lifecycle_stage"].to_list() == ["1", None]


def test_load_book_reads_an_empty_frame_of_null_columns_as_no_rows() -> None:
    # pl.DataFrame({"ts": []}) gives columns of dtype Null: the usual way to write an empty table.
    frames = {
        "accounts": pl.DataFrame({"account_id": ["a1", "a2"]}),
        "signals": pl.DataFrame({"account_id": [], "ts": [], "name": [], "value": []}),
        "touches": pl.DataFrame({"account_id": [], "action_id": [], "ts": []}),
    }
    report = validate_book(frames, as_of=AS_OF)
    assert report.ok
    book = load_book(frames, as_of=AS_OF)
    assert book.signals.height == 0
    assert book.touches.height == 0
    assert book.signals.schema == empty_table("signals").schema


def test_validate_book_reads_a_null_column_of_a_non_empty_table_as_missing_values() -> None:
    frames = {"accounts": pl.DataFrame({"account_id": [None, None], "arr": [1.0, 2.0], "region": [None, None]})}
    report = validate_book(frames, as_of=AS_OF)
    assert [(p.rule, p.row, p.column) for p in report.problems] == [
        (Rule.EMPTY_VALUE, 1, "account_id"),
        (Rule.EMPTY_VALUE, 2, "account_id"),
    ]
    optional = {"accounts": pl.DataFrame({"account_id": ["a1", "a2"], "arr": [None, None]})}
    accounts = load_book(optional, as_of=AS_OF).accounts
    assert accounts["arr"].dtype == pl.Float64
    assert accounts["arr"].to_list() == [None, None]


def test_load_book_takes_a_date_as_of_as_its_midnight_utc_as_run_does() -> None:
    from datetime import date

    from nextmove.features.history import to_utc

    frames = {
        "accounts": pl.DataFrame({"account_id": ["a1"]}),
        "signals": pl.DataFrame({"account_id": ["a1"], "ts": [utc(2025, 5, 31, 23)], "name": ["x"], "value": [1.0]}),
    }
    book = load_book(frames, as_of=date(2025, 6, 1))
    assert book.as_of == to_utc(date(2025, 6, 1)) == utc(2025, 6, 1)
    assert book.signals.height == 1
    assert validate_book(frames, as_of=date(2025, 5, 31)).problems[0].rule is Rule.AFTER_AS_OF
    assert validate_book(frames, run_as_of=date(2025, 5, 31)).ok


@pytest.mark.parametrize("as_of", ["2025-06-01", 1748736000])
def test_load_book_refuses_an_as_of_that_is_no_time(as_of: object) -> None:
    from nextmove.errors import ConfigError

    frames = {"accounts": pl.DataFrame({"account_id": ["a1"]})}
    with pytest.raises(ConfigError, match="as_of must be a datetime or a date, got"):
        load_book(frames, as_of=as_of)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="run_as_of must be a datetime or a date"):
        validate_book(frames, run_as_of=as_of)  # type: ignore[arg-type]


def test_load_book_leaves_out_the_index_pandas_writes_with_a_note(tmp_path: Path) -> None:
    # pandas' to_parquet of a filtered frame stores its index as __index_level_0__; it is not a feature.
    folder = tmp_path / "book"
    folder.mkdir()
    pl.DataFrame({"account_id": ["a1", "a3"], "seats": [3.0, 5.0], "__index_level_0__": [0, 2]}).write_parquet(
        folder / "accounts.parquet"
    )
    pl.DataFrame(
        {"account_id": ["a1"], "ts": [utc(2025, 1, 1)], "name": ["x"], "value": [1.0], "__index_level_1__": [7]}
    ).write_parquet(folder / "signals.parquet")
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok
    assert report.notes == [
        f"{folder / 'accounts.parquet'}: '__index_level_0__' is the index pandas writes beside the data "
        "(to_parquet after a filter or sort), not data: left out",
        f"{folder / 'signals.parquet'}: '__index_level_1__' is the index pandas writes beside the data "
        "(to_parquet after a filter or sort), not data: left out",
    ]
    book = load_book(folder, as_of=AS_OF)
    assert book.extra_account_columns == ["seats"]
    assert "__index_level_1__" not in book.signals.columns
    # A column merely named like it is kept.
    frames = {"accounts": pl.DataFrame({"account_id": ["a1"], "__index_level_x__": [1]})}
    assert load_book(frames, as_of=AS_OF).extra_account_columns == ["__index_level_x__"]
