"""Tests of open_store: URL schemes, defaults from Settings, unreachable servers, closing."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from nextmove.errors import NotFoundError, StoreError, StoreURLError
from nextmove.settings import Settings
from nextmove.store import SCHEMA_VERSION, RunRecord, SqlStore, Store, open_store
from nextmove.store import sql as sql_module


def test_open_store_rejects_unknown_scheme_naming_supported_ones() -> None:
    with pytest.raises(StoreError) as info:
        open_store("mysql://bob:hunter2@db.example.com/crm")
    message = str(info.value)
    assert "'mysql'" in message
    assert "sqlite" in message
    assert "postgresql+psycopg" in message
    assert "hunter2" not in message
    assert "bob:***@db.example.com" in message


def test_open_store_rejects_unsupported_postgres_driver() -> None:
    with pytest.raises(StoreError, match="postgresql\\+psycopg2"):
        open_store("postgresql+psycopg2://bob@127.0.0.1/test")


def test_open_store_rejects_unparseable_url_hiding_password() -> None:
    with pytest.raises(StoreError, match="cannot read the store URL") as info:
        open_store("::bob:hunter2@nowhere")
    assert "hunter2" not in str(info.value)


def test_open_store_rejects_a_non_numeric_port_hiding_password() -> None:
    with pytest.raises(StoreError, match="cannot read the store URL") as info:
        open_store("postgresql://u:hunter2@127.0.0.1:notaport/db")
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1:notaport/db" in str(info.value)


def test_open_store_reports_unreachable_server_with_password_masked() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql+psycopg://bob:hunter2@127.0.0.1:1/test")
    message = str(info.value)
    assert "cannot connect" in message
    assert "postgresql+psycopg://bob:***@127.0.0.1:1/test" in message
    assert "hunter2" not in message
    assert "check that the PostgreSQL server is running" in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://bob@127.0.0.1:1/test?password=hunter2&sslmode=disable",
        "mysql://bob@db.example.com/crm?PassWord=hunter2",
        "postgresql://bob@127.0.0.1:notaport/db?sslpassword=hunter2",
    ],
)
def test_open_store_hides_a_password_given_in_the_query_string(url: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert "hunter2" not in message
    assert "=***" in message


def test_open_store_maps_plain_postgresql_scheme_to_psycopg() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://bob:hunter2@127.0.0.1:1/test")
    assert "postgresql+psycopg://bob:***@127.0.0.1:1/test" in str(info.value)


def test_open_store_reports_unusable_sqlite_file(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("this is not a database, " * 100)
    with pytest.raises(StoreError, match="SQLite database"):
        open_store(f"sqlite:///{not_a_db}")


def test_open_store_defaults_to_sqlite_in_settings_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "deep" / "workspace"
    with open_store(settings=Settings(workspace=workspace)) as store:
        store.start_run(RunRecord(run_id="r1", book_source="b", playbook_hash="h"))
        assert store.url == f"sqlite:///{(workspace / 'nextmove.db').as_posix()}"
    assert (workspace / "nextmove.db").is_file()


def test_open_store_reads_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{(tmp_path / 'env' / 'store.db').as_posix()}"
    monkeypatch.setenv("NEXTMOVE_STORE_URL", url)
    with open_store() as store:
        assert store.url == url


def test_open_store_returns_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store, SqlStore)
    assert repr(store).startswith("SqlStore(url=")


@pytest.mark.postgres
def test_store_url_hides_password(pg_schema_url: str) -> None:
    url = make_url(pg_schema_url)
    if not url.password:
        # The test server trusts local connections, so any password is accepted.
        url = url.set(password="hunter2")
    with open_store(url.render_as_string(hide_password=False)) as store:
        assert str(url.password) not in store.url
        assert "***" in store.url


def test_store_close_makes_store_unusable(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()


# --- what an open leaves in a database that is not a nextmove store -----------------------------


def _make_folder(store_url: str) -> None:
    """Make the folder of a SQLite store URL (the fixture's folder does not exist yet); nothing for PostgreSQL."""
    database = make_url(store_url).database
    if store_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _tables(store_url: str) -> set[str]:
    engine = sa.create_engine(store_url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _journal_mode(store_url: str) -> str:
    database = make_url(store_url).database
    with contextlib.closing(sqlite3.connect(str(database))) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_open_store_to_read_another_applications_database_leaves_it_as_it_was(store_url: str, sql) -> None:
    # `nextmove models list --store sqlite:///crm.db` created nextmove's tables in the CRM's file.
    _make_folder(store_url)
    sql("CREATE TABLE accounts (account_id VARCHAR(20) PRIMARY KEY, arr FLOAT)")
    with pytest.raises(NotFoundError, match=r"there is no nextmove store at .*other tables \(accounts\)") as info:
        open_store(store_url, create=False)
    assert info.value.exit_code == 4
    assert _tables(store_url) == {"accounts"}
    if store_url.startswith("sqlite"):
        assert _journal_mode(store_url) == "delete"


def test_open_store_to_read_an_empty_database_creates_nothing(store_url: str) -> None:
    _make_folder(store_url)
    if store_url.startswith("sqlite"):
        Path(str(make_url(store_url).database)).touch()
    with pytest.raises(NotFoundError, match=r"there is no nextmove store at .*none of nextmove's tables"):
        open_store(store_url, create=False)
    assert _tables(store_url) == set()


def test_open_store_refuses_to_add_a_store_to_another_applications_database(store_url: str, sql) -> None:
    _make_folder(store_url)
    sql("CREATE TABLE invoices (invoice_id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreURLError, match=r"is not a nextmove store: it holds other tables \(invoices\)") as info:
        open_store(store_url)
    assert "an empty database" in str(info.value)
    assert info.value.exit_code == 2
    assert _tables(store_url) == {"invoices"}
    if store_url.startswith("sqlite"):
        assert _journal_mode(store_url) == "delete"


def test_open_store_reads_a_store_without_waiting_for_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checking the schema took the write lock: a reader waited behind any writer, up to the busy timeout.
    monkeypatch.setattr(sql_module, "SQLITE_BUSY_TIMEOUT_MS", 1_000)
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    open_store(url).close()
    with contextlib.closing(sqlite3.connect(tmp_path / "nextmove.db", isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        for create in (False, True):
            with open_store(url, create=create) as store:
                assert store.list_runs() == []
        assert time.monotonic() - started < 0.9
        writer.execute("ROLLBACK")


# --- a store that cannot be written -------------------------------------------------------------


@pytest.fixture
def read_only_url(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a store (on each backend) that opens and reads but refuses every write."""
    monkeypatch.chdir(tmp_path)  # SQLite's file: URI form once made a folder named file: in the current one
    open_store(store_url).close()
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        # A read-only file even for root (which may write a file chmod'ed read-only).
        return f"sqlite:///file:{url.database}?mode=ro&uri=true"
    options = f"{url.query.get('options', '')} -cdefault_transaction_read_only=on".strip()
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_check_writable_refuses_a_store_that_takes_no_writes(read_only_url: str) -> None:
    with open_store(read_only_url) as store:
        assert store.list_runs() == []
        assert isinstance(store, SqlStore)
        with pytest.raises(StoreError, match=r"cannot be written: .*read-?only") as info:
            store.check_writable()
    assert info.value.exit_code == 3


def test_check_writable_changes_nothing_in_a_writable_store(store: Store, sql) -> None:
    assert isinstance(store, SqlStore)
    store.check_writable()
    assert sql("SELECT key, value FROM nextmove_meta") == [("schema_version", str(SCHEMA_VERSION))]


# --- SQLite paths: ~, and three slashes where four were meant ----------------------------------


def test_open_store_expands_the_home_folder_in_a_sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sqlite:///~/x.db made a folder named ~ in the current folder (which `rm -rf ~` cleans with the home).
    home, here = tmp_path / "home", tmp_path / "here"
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    with open_store("sqlite:///~/stores/nextmove.db") as store:
        assert store.url == f"sqlite:///{(home / 'stores' / 'nextmove.db').as_posix()}"
    assert (home / "stores" / "nextmove.db").is_file()
    assert list(here.iterdir()) == []


def test_open_store_notes_a_relative_path_that_looks_meant_as_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Path("/tmp").is_dir()
    with pytest.raises(
        NotFoundError, match=re.escape("for the absolute path /tmp/nm-x/s.db write sqlite:////tmp/nm-x/s.db")
    ):
        open_store("sqlite:///tmp/nm-x/s.db", create=False)
    with caplog.at_level(logging.WARNING, logger="nextmove.store.sql"):
        open_store("sqlite:///tmp/nm-x/s.db").close()
    assert "sqlite:////tmp/nm-x/s.db (four slashes)" in caplog.text
    assert (tmp_path / "tmp" / "nm-x" / "s.db").is_file()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextmove.store.sql"):
        open_store("sqlite:///tmp/nm-x/s.db").close()  # tmp/ is in the current folder now: relative is meant
    assert caplog.text == ""


def test_open_store_names_an_absolute_sqlite_url_in_its_examples() -> None:
    with pytest.raises(StoreURLError) as info:
        open_store("mysql://db.example.com/crm")
    assert "sqlite:////absolute/path/nextmove.db" in str(info.value)


# --- PostgreSQL URL options ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["sslmode=bogus", "bogus_option=1", "connect_timeout=soon"])
def test_open_store_calls_a_bad_postgres_option_bad_input(pg_admin_url: str, query: str) -> None:
    with pytest.raises(StoreURLError, match="has an option PostgreSQL does not accept") as info:
        open_store(f"{pg_admin_url}?{query}")
    assert info.value.exit_code == 2


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # The store holds customer data and the scrypt hashes of API keys: SQLite made it (and its -wal and
    # -shm files, which take the database file's mode) 0644, readable by every user of the machine.
    path = tmp_path / "new" / "nextmove.db"
    with open_store(f"sqlite:///{path.as_posix()}") as store:
        store.start_run(RunRecord(run_id="r1", book_source="demo", playbook_hash="h"))
        made = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
    assert {"nextmove.db", "nextmove.db-wal", "nextmove.db-shm"} <= set(made)
    assert set(made.values()) == {0o600}, made


def test_an_existing_sqlite_store_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "nextmove.db"
    open_store(f"sqlite:///{path.as_posix()}").close()
    path.chmod(0o640)  # shared with a group on purpose: not nextmove's to change
    with open_store(f"sqlite:///{path.as_posix()}") as store:
        assert store.latest_run() is None
    assert path.stat().st_mode & 0o777 == 0o640


def _sqlite_store_file(folder: Path) -> Path:
    path = folder / "store.db"
    with open_store(f"sqlite:///{path}") as store:
        store.start_run(RunRecord(run_id="r1", book_source="b", playbook_hash="h"))
    return path


@pytest.mark.parametrize(("offset", "length"), [(100, 60), (2 * 4096, 8 * 4096)])
def test_a_damaged_sqlite_file_is_said_to_be_damaged_not_a_folder_to_fix(
    tmp_path: Path, offset: int, length: int
) -> None:
    path = _sqlite_store_file(tmp_path)
    with path.open("r+b") as file:  # its first page past the header, or its tables' pages
        file.seek(offset)
        file.write(b"\xff" * length)
    with pytest.raises(StoreError) as info, open_store(f"sqlite:///{path}", create=False) as store:
        store.list_runs()
    message = str(info.value)
    assert "database disk image is malformed" in message
    assert "the SQLite file is damaged (or is no SQLite database): restore it from a backup" in message
    assert "folder" not in message
    assert info.value.exit_code == 3


def test_a_sqlite_store_in_a_folder_that_cannot_be_written_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    import os
    import subprocess

    source = tmp_path / "source"
    source.mkdir()
    _sqlite_store_file(source)
    folder = tmp_path / "mounted"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes any folder: a read-only mount it is
        bound = subprocess.run(["mount", "--bind", str(source), str(folder)], capture_output=True, check=False)
        if bound.returncode != 0:
            pytest.skip("root, and no mount allowed here to make a read-only folder")
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        expected = f"{folder} is on a read-only mount, and SQLite writes beside the file even to read it"
    else:
        folder.rmdir()
        source.rename(folder)
        folder.chmod(0o555)
        expected = f"{folder} is not writable by this user, and SQLite writes beside the file even to read it"
    try:
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{folder / 'store.db'}", create=False)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)
    message = " ".join(str(info.value).split())
    assert expected in message
    assert "(store.db-wal, store.db-shm): copy the file to a writable folder and give --store the copy" in message


def test_a_sqlite_store_on_a_full_disk_says_the_disk_may_be_full_and_what_is_free(tmp_path: Path) -> None:
    """A disk so full that SQLite cannot make its write-ahead log: "disk I/O error" said it was the folder's fault."""
    from nextmove.store.sql import sqlite_open_hint

    hint = sqlite_open_hint(tmp_path / "store.db", "disk I/O error")
    assert hint.startswith(f"the disk holding {tmp_path} (")
    assert " free) may be full, or failing: free some space on it" in hint
    assert "or give --store a file on another disk" in hint
    assert "database or disk is full" not in hint
    assert "may be full" in sqlite_open_hint(tmp_path / "store.db", "database or disk is full")


def test_opening_a_sqlite_store_on_a_full_disk_says_so(tmp_path: Path) -> None:
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root, to mount a small disk to fill")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=False).returncode != 0:
        pytest.skip("no mount allowed here")
    try:
        path = disk / "store.db"
        open_store(f"sqlite:///{path}").close()
        for beside in (disk / "store.db-wal", disk / "store.db-shm"):
            beside.unlink(missing_ok=True)
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{path}", create=False)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    message = " ".join(str(info.value).split())
    assert f"the disk holding {disk} (0 bytes free) may be full" in message, message
