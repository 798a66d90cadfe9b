"""Fixtures shared by the book tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from nextmove.playbook.loader import load_playbook
from nextmove.playbook.schema import Playbook

PG_URL = os.environ.get("NEXTMOVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def playbook() -> Playbook:
    """The built-in default playbook (its catalog decides which action_ids are known)."""
    return load_playbook()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database (dropped afterwards), as a URL whose search_path is it."""
    admin = sa.create_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        shown = sa.make_url(PG_URL).render_as_string(hide_password=True)
        if os.environ.get("NEXTMOVE_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL at {shown} is unreachable and NEXTMOVE_SKIP_POSTGRES=1")
        pytest.fail(
            f"PostgreSQL at {shown} is unreachable ({exc.__class__.__name__}); start it, point "
            "NEXTMOVE_TEST_PG_URL at one, or set NEXTMOVE_SKIP_POSTGRES=1 to skip"
        )
    schema = f"nextmove_book_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
