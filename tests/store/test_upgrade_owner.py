"""PostgreSQL: upgrading a store's schema needs the owner of its tables, and a role that is not is told so.

A team's store often has an owner (who created the tables) and roles granted only to read and
write their rows (a server's, an analyst's). Version 3 adds an index, which only the owner may
do: such a role got "could not prepare the store's tables …: must be owner of table decisions"
from every command, without a word of the upgrade or of what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from nextmove.cli.app import app as cli
from nextmove.errors import StoreError
from nextmove.store import SCHEMA_VERSION, RunRecord, open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
def member_url(pg_schema_url: str, pg_admin_url: str) -> Iterator[str]:
    """The store's URL for a role granted to read and write the rows of its tables, not their owner; dropped after."""
    role = f"nextmove_test_member_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{_schema_of(pg_schema_url)}" TO "{role}"'))
        yield make_url(pg_schema_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))  # its grants
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _schema_of(url: str) -> str:
    """The PostgreSQL schema of a store URL (pg_schema_url's ``?options=-csearch_path=…``)."""
    options = make_url(url).query["options"]
    assert isinstance(options, str)
    return options.removeprefix("-csearch_path=")


def _sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _version_2_store(owner_url: str, member_url: str) -> str:
    """A store as nextmove with schema version 2 left it, its rows granted to the member; returns the member."""
    with open_store(owner_url) as store:
        store.save_run(RunRecord(run_id="r1", book_source="b", playbook_hash="h", status="succeeded"), [])
    member = make_url(member_url).username
    _sql(
        owner_url,
        "DROP INDEX ix_decisions_run_id_ts_decision_id",
        "UPDATE nextmove_meta SET value = '2' WHERE key = 'schema_version'",
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{_schema_of(owner_url)}" TO "{member}"',
    )
    assert member is not None
    return member


def test_a_role_that_does_not_own_the_tables_is_told_the_upgrade_needs_their_owner(
    pg_schema_url: str, member_url: str
) -> None:
    member = _version_2_store(pg_schema_url, member_url)
    owner = make_url(pg_schema_url).username
    for create in (True, False):
        with pytest.raises(StoreError) as refused:
            open_store(member_url, create=create)
        said = str(refused.value)
        assert f"has schema version 2 and this nextmove needs version {SCHEMA_VERSION}" in said
        assert "it upgrades the store in place, once" in said
        assert f"which only the owner of its tables ({owner!r}) may do, and the store's user {member!r} is not" in said
        assert "must be owner of table" in said
        assert said.endswith(
            "run any nextmove command once as the tables' owner (`nextmove models list --store` with a URL of "
            "that user), then other users can use the store"
        )
    # The command line says it too (exit 3: the store cannot be used as it is).
    answer = CliRunner().invoke(cli, ["models", "list", "--store", member_url])
    assert answer.exit_code == 3, answer.output
    assert "which only the owner of its tables" in " ".join(answer.output.split())
    # Nothing changed: the owner's first open upgrades it; then the member uses it.
    with open_store(pg_schema_url) as store:
        assert store.get_run("r1").status == "succeeded"
    with open_store(member_url, create=False) as store:
        assert [r.run_id for r in store.list_runs()] == ["r1"]
        assert store.decision_plays("r1") == []
