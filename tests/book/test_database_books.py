"""Books held in SQL databases (SQLite and PostgreSQL): which tables and views are read, in one snapshot, as what.

Also what is said of a database that cannot be read: a URL whose password needs encoding, a folder
given as a SQLite file, a user without the privileges to read the tables.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from nextmove.book.problems import Rule, ValidationReport
from nextmove.book.validate import discover, load_book, validate_book
from nextmove.errors import BookError
from nextmove.features.names import extra_kind
from nextmove.playbook.schema import Playbook

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (:func:`pg_url`)."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'book.db').as_posix()}"
    url: str = request.getfixturevalue("pg_url")
    return url


def run_sql(url: str, *statements: str) -> None:
    """Run ``statements`` in one transaction; ``TS`` is the type of a time column (ISO text in SQLite)."""
    engine = sa.create_engine(url)
    ts = "TEXT" if url.startswith("sqlite") else "timestamptz"
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.replace("TS", ts))
    finally:
        engine.dispose()


def test_a_database_book_reads_views_and_tables_named_in_another_case(db_url: str, playbook: Playbook) -> None:
    # Tools that quote every name make "Accounts" and "TOUCHES"; a view is how a warehouse shapes its tables.
    run_sql(
        db_url,
        'CREATE TABLE "Accounts" (account_id text, arr double precision)',
        "INSERT INTO \"Accounts\" VALUES ('a1', 100), ('a2', 200)",
        "CREATE TABLE signals_raw (account_id text, ts TS, name text, value double precision)",
        "INSERT INTO signals_raw VALUES ('a1', '2025-01-01T00:00:00Z', 'logins', 3), "
        "('a2', '2025-01-02T00:00:00Z', 'logins', 5)",
        "CREATE VIEW signals AS SELECT * FROM signals_raw",
        'CREATE TABLE "TOUCHES" (account_id text, action_id text, ts TS)',
        "INSERT INTO \"TOUCHES\" VALUES ('a1', 'nurture_email', '2025-01-03T00:00:00Z')",
    )
    report = validate_book(db_url, playbook=playbook, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert {name: s.rows for name, s in report.tables.items()} == {"accounts": 2, "signals": 2, "touches": 1}
    assert report.tables["signals"].file.startswith("view signals in ")
    assert report.tables["touches"].file.startswith("table TOUCHES in ")
    assert any(n.startswith("table signals_raw in ") and "read from view signals" in n for n in report.notes)
    book = load_book(db_url, playbook=playbook, as_of=AS_OF)
    assert book.signals["value"].to_list() == [3.0, 5.0]


@pytest.mark.postgres
def test_a_postgres_book_reads_materialized_views_and_refuses_two_tables_for_one(
    pg_url: str, playbook: Playbook
) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id text)",
        "INSERT INTO accounts VALUES ('a1')",
        "CREATE MATERIALIZED VIEW outcomes AS SELECT 'a1'::text AS account_id, "
        "'2025-02-01T00:00:00Z'::timestamptz AS ts, 'churn'::text AS kind",
        "CREATE TABLE signals (account_id text, ts timestamptz, name text, value double precision)",
        'CREATE TABLE "Signals" (account_id text, ts timestamptz, name text, value double precision)',
    )
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    assert report.tables["outcomes"].rows == 1
    assert report.tables["outcomes"].file.startswith("materialized view outcomes in ")
    (problem,) = report.problems
    assert problem.rule is Rule.AMBIGUOUS_TABLE
    assert "table Signals and table signals" in problem.expected


@pytest.mark.postgres
def test_a_postgres_partitioned_table_is_read_whole_and_its_partitions_not_noted(
    pg_url: str, playbook: Playbook
) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id text)",
        "INSERT INTO accounts VALUES ('a1')",
        "CREATE TABLE signals (account_id text, ts timestamptz, name text, value double precision) "
        "PARTITION BY RANGE (ts)",
        "CREATE TABLE signals_2024 PARTITION OF signals FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "CREATE TABLE signals_2025 PARTITION OF signals FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "INSERT INTO signals VALUES ('a1', '2024-06-01T00:00:00Z', 'logins', 1), "
        "('a1', '2025-06-01T00:00:00Z', 'logins', 2)",
        "CREATE TABLE signals_old (account_id text)",
    )
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert report.tables["signals"].rows == 2
    assert [n.split(" in ")[0] for n in report.notes if "is not read" in n] == ["table signals_old"]


def test_a_database_without_accounts_says_what_it_holds(db_url: str, playbook: Playbook) -> None:
    run_sql(
        db_url, "CREATE TABLE customers (id text)", "CREATE VIEW accounts_v AS SELECT id AS account_id FROM customers"
    )
    report = validate_book(db_url, playbook=playbook, as_of=AS_OF)
    (problem,) = report.problems
    assert problem.rule is Rule.MISSING_TABLE
    assert "a table or view named accounts (in any case" in problem.expected
    assert "has view accounts_v, table customers" in problem.expected


@pytest.mark.postgres
def test_a_postgres_book_without_accounts_names_the_schema_searched_and_the_one_holding_it(
    pg_url: str, playbook: Playbook
) -> None:
    searched = sa.make_url(pg_url).query["options"].removeprefix("-csearch_path=")
    other = f"a_book_{uuid.uuid4().hex[:12]}"  # sorts before the other tests' schemas
    run_sql(pg_url, f"CREATE SCHEMA {other}", f"CREATE TABLE {other}.accounts (account_id text)")
    try:
        report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    finally:
        run_sql(pg_url, f"DROP SCHEMA {other} CASCADE")
    (problem,) = report.problems
    assert f"schema {searched!r}, the one searched (the first of the search_path), has no table or view" in (
        problem.expected
    )
    assert repr(other) in problem.expected  # first of the schemas named, if other tests' hold an accounts too
    assert "?options=-csearch_path%3D" in problem.expected


def test_a_database_book_is_read_in_one_snapshot_while_a_load_commits(tmp_path: Path, playbook: Playbook) -> None:
    # SQLite in WAL mode lets a writer commit while the book is read: read apart, the touches read
    # after the signals would hold an account the accounts read before them do not.
    path = tmp_path / "book.db"
    url = f"sqlite:///{path.as_posix()}"
    run_sql(
        url,
        "CREATE TABLE accounts (account_id text)",
        "INSERT INTO accounts VALUES ('a0')",
        "CREATE TABLE signals (account_id text, ts text, name text, value real)",
        "CREATE TABLE touches (account_id text, action_id text, ts text)",
    )
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        rows = [("a0", f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", "logins", float(i)) for i in range(200_000)]
        conn.executemany("INSERT INTO signals VALUES (?, ?, ?, ?)", rows)
    stop = threading.Event()
    committed: list[int] = []

    def load() -> None:  # a nightly ETL: an account and its first touch, in one transaction
        with sqlite3.connect(path, timeout=30) as writer:
            n = 0
            while not stop.is_set():
                n += 1
                writer.execute("INSERT INTO accounts VALUES (?)", (f"new{n}",))
                writer.execute("INSERT INTO touches VALUES (?, 'nurture_email', '2025-01-02T00:00:00Z')", (f"new{n}",))
                writer.commit()
                committed.append(n)
                time.sleep(0.002)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        while not committed:
            time.sleep(0.001)
        start = len(committed)
        report = validate_book(url, playbook=playbook, as_of=AS_OF)
        assert len(committed) > start  # the load committed while the book was read
    finally:
        stop.set()
        thread.join()
    assert report.ok, [p.message() for p in report.problems[:3]]
    assert report.tables["touches"].rows == report.tables["accounts"].rows - 1


@pytest.mark.postgres
def test_a_postgres_book_is_read_in_one_snapshot_while_a_load_commits(pg_url: str, playbook: Playbook) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id text)",
        "INSERT INTO accounts VALUES ('a1')",
        "CREATE TABLE signals (account_id text, ts timestamptz, name text, value double precision)",
        "CREATE TABLE touches (account_id text, action_id text, ts timestamptz)",
        "INSERT INTO touches VALUES ('a1', 'nurture_email', '2025-01-02T00:00:00Z')",
    )
    engine = sa.create_engine(pg_url)
    found: list[ValidationReport] = []
    reader = threading.Thread(target=lambda: found.append(validate_book(pg_url, playbook=playbook, as_of=AS_OF)))
    try:
        with engine.connect() as etl:
            # The load holds the signals until it commits: the book's read, which reads them after the
            # accounts and before the touches, waits for them.
            etl.exec_driver_sql("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE")
            reader.start()
            deadline = time.monotonic() + 60
            while not _waits_for(engine, "signals"):
                if time.monotonic() > deadline:
                    pytest.fail("the book's read never waited for the signals")
                time.sleep(0.02)
            etl.exec_driver_sql("INSERT INTO accounts VALUES ('new1')")
            etl.exec_driver_sql("INSERT INTO touches VALUES ('new1', 'nurture_email', '2025-01-03T00:00:00Z')")
            etl.commit()
        reader.join(timeout=60)
    finally:
        engine.dispose()
    (report,) = found
    assert report.ok, [p.message() for p in report.problems]
    assert {n: s.rows for n, s in report.tables.items()} == {"accounts": 1, "signals": 0, "touches": 1}


def _waits_for(engine: sa.Engine, table: str) -> bool:
    """Whether a query naming ``table`` waits for a lock in the engine's database."""
    with engine.connect() as conn:
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query ILIKE :table"
            ),
            {"table": f"%{table}%"},
        ).scalar()
    return bool(waiting)


@pytest.mark.postgres
def test_postgres_columns_of_types_polars_lacks_are_read_as_text(pg_url: str, playbook: Playbook) -> None:
    # uuid and inet come from psycopg as Python objects, json and jsonb as dicts: a CSV export holds their text.
    account = "6f1c0f8e-2a4b-4c1d-9e5f-0a1b2c3d4e5f"
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id uuid, arr numeric(12, 2), ip inet, prefs jsonb, settings json, "
        "tags text[], trial interval, big_id numeric(20, 0))",
        f"INSERT INTO accounts VALUES ('{account}', 10.50, '10.0.0.1', '{{\"hd\": 1}}', '{{\"a\": [1, 2]}}', "
        "'{a,b}', '14 days', 12345678901234567890)",
        "CREATE TABLE signals (account_id uuid, ts timestamptz, name text, value double precision)",
        f"INSERT INTO signals VALUES ('{account}', '2025-01-01T10:00:00+02:00', 'logins', 3)",
    )
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    book = load_book(pg_url, playbook=playbook, as_of=AS_OF)
    row = book.accounts.row(0, named=True)
    assert row["account_id"] == account
    assert book.signals["account_id"].to_list() == [account]
    assert book.signals["ts"].to_list() == [datetime(2025, 1, 1, 8, tzinfo=UTC)]
    assert row["arr"] == 10.5
    texts = ("10.0.0.1", '{"hd": 1}', '{"a": [1, 2]}', "{a,b}")
    assert (row["ip"], row["prefs"], row["settings"], row["tags"]) == texts
    assert str(row["big_id"]) == "12345678901234567890"  # exact: a numeric(20) id is no float
    # The same columns a CSV export holds as text are features as text, as they are from CSV.
    assert {c: extra_kind(book.accounts.schema[c]) for c in ("ip", "prefs", "settings")} == dict.fromkeys(
        ("ip", "prefs", "settings"), "text"
    )


@pytest.mark.postgres
def test_a_postgres_value_that_cannot_be_read_is_a_problem_naming_its_column(pg_url: str, playbook: Playbook) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id text)",
        "INSERT INTO accounts VALUES ('a1')",
        "CREATE TABLE signals (account_id text, ts timestamptz, name text, value double precision)",
        "INSERT INTO signals VALUES ('a1', '2025-01-01T00:00:00Z', 'x', 1), ('a1', 'infinity', 'x', 2)",
    )
    report = validate_book(pg_url, playbook=playbook, as_of=AS_OF)
    (problem,) = report.problems
    assert (problem.rule, problem.table, problem.row, problem.column, problem.value) == (
        Rule.UNREADABLE_FILE,
        "signals",
        2,
        "ts",
        "infinity",
    )
    assert "timestamp with time zone" in problem.expected
    assert "store NULL for a missing value" in problem.expected


def test_a_sqlite_column_that_cannot_be_read_is_a_problem_naming_it(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'book.db').as_posix()}"
    run_sql(
        url,
        "CREATE TABLE accounts (account_id text, logo text)",
        "INSERT INTO accounts VALUES ('a1', 'none'), ('a2', X'89504E47')",
    )
    report = validate_book(url, playbook=playbook, as_of=AS_OF)
    (problem,) = report.problems
    assert (problem.rule, problem.table, problem.column) == (Rule.UNREADABLE_FILE, "accounts", "logo")
    assert "(bytes, str)" in problem.expected


def test_validate_notes_each_extra_account_column_that_is_no_feature(playbook: Playbook) -> None:
    accounts = pl.DataFrame(
        {
            "account_id": ["a1"],
            "tags": [["vip", "beta"]],
            "prefs": [{"hd": 1}],
            "trial": [timedelta(days=14)],
            "seats": [10],
            "empty": [None],
        }
    )
    notes = validate_book({"accounts": accounts}, playbook=playbook, as_of=AS_OF).notes
    unused = [n for n in notes if "is not used as a feature" in n]
    assert [n.split("'")[1] for n in unused] == ["tags", "prefs", "trial"]
    assert unused[0].startswith("<memory>:accounts, column 'tags' is not used as a feature: it holds lists")
    assert "it holds records of fields (structs)" in unused[1]
    assert "store it as a number (of days, say)" in unused[2]


def test_a_url_whose_password_holds_an_at_sign_says_to_percent_encode_it(playbook: Playbook) -> None:
    with pytest.raises(BookError) as info:
        validate_book("postgresql+psycopg://bob:p@ss:w0rd@db.example.com/crm", playbook=playbook)
    message = str(info.value)
    assert "percent-encode it (@ as %40" in message
    assert "w0rd" not in message
    assert "p@ss" not in message


def test_a_sqlite_url_of_a_folder_says_to_pass_the_folder(tmp_path: Path, playbook: Playbook) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    with pytest.raises(BookError, match=r"is a folder, not a SQLite database file.*--book .*without sqlite:///"):
        validate_book(f"sqlite:///{folder.as_posix()}", playbook=playbook)
    assert list(folder.iterdir()) == []


def test_a_sqlite_url_of_a_file_that_is_no_database_names_it_and_what_to_give(
    tmp_path: Path, playbook: Playbook
) -> None:
    # A table of a folder book given as the database: the driver said only "file is not a database".
    folder = tmp_path / "book"
    folder.mkdir()
    accounts = folder / "accounts.csv"
    accounts.write_text("account_id,arr\na1,100\n", encoding="utf-8")
    with pytest.raises(BookError) as info:
        validate_book(f"sqlite:///{accounts.as_posix()}", playbook=playbook)
    message = str(info.value)
    assert f"{str(accounts)!r} is not a SQLite database" in message
    assert f"pass the folder holding them as the book (--book {folder}, without sqlite:///)" in message
    assert "else give the right database file" in message
    assert accounts.read_text(encoding="utf-8") == "account_id,arr\na1,100\n"
    # Any other file: the folder is not guessed.
    other = tmp_path / "crm.db"
    other.write_bytes(b"\x00encrypted or another format\x00" * 40)
    with pytest.raises(BookError, match=r"'.*crm\.db' is not a SQLite database.*--book FOLDER"):
        validate_book(f"sqlite:///{other.as_posix()}", playbook=playbook)
    # An empty file is an empty SQLite database (SQLite makes it one): it is read, and lacks the tables.
    empty = tmp_path / "empty.db"
    empty.touch()
    report = validate_book(f"sqlite:///{empty.as_posix()}", playbook=playbook)
    assert not report.ok


@pytest.mark.postgres
def test_a_postgres_url_as_heroku_writes_it_is_read(pg_url: str, playbook: Playbook) -> None:
    run_sql(pg_url, "CREATE TABLE accounts (account_id text)", "INSERT INTO accounts VALUES ('a1')")
    url = "postgres://" + pg_url.split("://", 1)[1]
    report = validate_book(url, playbook=playbook, as_of=AS_OF)
    assert report.ok
    assert report.tables["accounts"].rows == 1
    assert report.source.startswith("postgresql+psycopg://")


@pytest.fixture
def reader_role(pg_url: str) -> Iterator[tuple[str, str]]:
    """A login role without any privilege, and ``pg_url`` as that role."""
    role = f"nextmove_reader_{uuid.uuid4().hex[:8]}"
    run_sql(pg_url, f"CREATE ROLE {role} LOGIN")
    try:
        yield role, sa.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    finally:
        run_sql(pg_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


@pytest.mark.postgres
def test_a_table_the_user_may_not_read_says_what_to_grant(
    pg_url: str, reader_role: tuple[str, str], playbook: Playbook
) -> None:
    role, url = reader_role
    schema = sa.make_url(pg_url).query["options"].removeprefix("-csearch_path=")
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id text)",
        "CREATE TABLE signals (account_id text, ts timestamptz, name text, value double precision)",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT ON accounts TO {role}",
    )
    with pytest.raises(BookError) as info:
        validate_book(url, playbook=playbook, as_of=AS_OF)
    message = str(info.value)
    assert message.startswith("table signals in postgresql+psycopg://")
    assert f"GRANT SELECT ON {schema}.signals TO {role}" in message
    assert f"GRANT USAGE ON SCHEMA {schema} TO {role}" in message


@pytest.mark.postgres
def test_a_schema_the_user_may_not_use_says_to_grant_usage(
    pg_url: str, reader_role: tuple[str, str], playbook: Playbook
) -> None:
    role, url = reader_role
    schema = sa.make_url(pg_url).query["options"].removeprefix("-csearch_path=")
    run_sql(pg_url, "CREATE TABLE accounts (account_id text)", f"GRANT SELECT ON accounts TO {role}")
    report = validate_book(url, playbook=playbook, as_of=AS_OF)
    (problem,) = report.problems
    assert f"accounts is in schema {schema!r}, which user {role!r} may not use" in problem.expected
    assert f"GRANT USAGE ON SCHEMA {schema} TO {role}" in problem.expected


@pytest.mark.postgres
def test_a_postgres_table_is_read_in_batches_of_text_not_as_python_rows(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row by row, 3M signal rows peaked at 2.9 GB (docs/benchmarks.md); Polars' memory is not traced, Python's is.
    monkeypatch.setattr("nextmove.book.database._BATCH_BYTES", 1 << 20)
    run_sql(
        pg_url,
        "CREATE TABLE accounts (account_id text)",
        "INSERT INTO accounts VALUES ('a1')",
        "CREATE TABLE signals (account_id text, ts timestamptz, name text, value double precision, source text)",
        "INSERT INTO signals SELECT 'a1', timestamptz '2025-01-01' + i * interval '1 second', 'logins', i, 'app' "
        "FROM generate_series(1, 200000) AS i",
    )
    tracemalloc.start()
    try:
        found = discover(pg_url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB of Python objects at the peak"
    signals = found.tables["signals"].scan().collect()
    assert signals.height == 200_000
    assert signals.schema["ts"] == pl.Datetime("us", "UTC")
