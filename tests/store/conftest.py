"""Fixtures that run the store contract once against SQLite and once against PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from nextmove.store import Store, open_store
from nextmove.store.locks import PostgresStripes

PG_URL_ENV = "NEXTMOVE_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SKIP_PG_ENV = "NEXTMOVE_SKIP_POSTGRES"

SqlRunner = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of the test PostgreSQL server; fails (does not skip) when it cannot be reached."""
    if os.environ.get(SKIP_PG_ENV) == "1":
        pytest.skip(f"{SKIP_PG_ENV}=1: PostgreSQL store tests skipped")
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    problem = None
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        problem = " ".join(str(exc.orig).split())
    finally:
        engine.dispose()
    if problem is not None:
        shown = make_url(url).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is not reachable at {shown} ({problem}); start it "
            f"(pg_isready -h 127.0.0.1), point {PG_URL_ENV} at a server, or set "
            f"{SKIP_PG_ENV}=1 to skip the PostgreSQL store tests",
            pytrace=False,
        )
    return url


@pytest.fixture
def pg_schema_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema, dropped after the test (xdist-safe)."""
    schema = f"nextmove_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(pg_admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(pg_admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_zoned_db_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a fresh PostgreSQL database whose default time zone is America/Los_Angeles, dropped after the test.

    A store must not depend on the server's or the database's time zone: its sessions answer in it.
    """
    name = f"nextmove_test_tz_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/Los_Angeles'"))
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty store on each backend; the SQLite file's folder does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'workspace' / 'nextmove.db').as_posix()}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, empty store on each backend, closed after the test."""
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def sql(store_url: str) -> Iterator[SqlRunner]:
    """Run raw SQL against the store's database, behind the store's back."""
    engines: list[Engine] = []

    def run(statement: str, **params: Any) -> list[tuple[Any, ...]]:
        if not engines:
            engines.append(sa.create_engine(store_url))
        with engines[0].begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []

    yield run
    for engine in engines:
        engine.dispose()


def terminate_lock_connection(url: str, stripes: PostgresStripes) -> None:
    """End, from another connection, the session that holds ``stripes``' advisory locks (as a server restart would)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            ended = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM (SELECT DISTINCT pid FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND classid::bigint = :space) AS holders"
                ),
                {"space": stripes._space},
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in ended] == [(True,)]
