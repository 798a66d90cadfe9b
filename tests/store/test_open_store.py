"""Tests of open_store: URL schemes, defaults from Settings, unreachable servers, closing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from nextmove.errors import StoreError
from nextmove.settings import Settings
from nextmove.store import RunRecord, SqlStore, Store, open_store


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
