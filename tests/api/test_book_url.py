"""A server whose book is a database: its URL is shown with every password hidden (readiness, runs)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from tests.api.conftest import Server, make_keys, seed_run

from nextmove.playbook.loader import load_playbook
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import open_store

SECRET = "S3cretPw"


def _write_tables(url: str, frames: dict[str, pl.DataFrame]) -> None:
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    try:
        with engine.begin() as conn:
            for name, frame in frames.items():
                columns = []
                for column, dtype in frame.schema.items():
                    if dtype.is_numeric():
                        kind: sa.types.TypeEngine[Any] = sa.Double()
                    elif isinstance(dtype, pl.Datetime):
                        kind = sa.DateTime(timezone=True)
                    else:
                        kind = sa.Text()
                    columns.append(sa.Column(column, kind))
                table = sa.Table(name, metadata, *columns)
                table.create(conn)
                conn.execute(table.insert(), frame.to_dicts())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_database_books_passwords_are_never_shown_by_the_api(pg_schema_url: str, tmp_path: Path) -> None:
    result = simulate(SimConfig(accounts=60, months=4, seed=5))
    book = result.book
    _write_tables(
        pg_schema_url,
        {"accounts": book.accounts, "signals": book.signals, "touches": book.touches, "outcomes": book.outcomes},
    )
    playbook_path = write_book(result, tmp_path / "book") / "playbook.toml"
    playbook = load_playbook(playbook_path)
    # The test server trusts local connections: both passwords are ignored by it, and must never be shown.
    book_url = (
        sa.make_url(pg_schema_url)
        .set(password=SECRET)
        .update_query_dict({"password": SECRET})
        .render_as_string(hide_password=False)
    )
    store_url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(store_url) as store:
        seed_run(store, playbook, account_ids=book.accounts.get_column("account_id").to_list())
        keys = make_keys(store)
    server = Server(store_url, playbook_path, extra=["--book", book_url], log=tmp_path / "server.log").start()
    try:
        with server.client() as anyone:
            ready = anyone.get("/readyz")
        with server.client(keys.admin) as admin:
            started = admin.post("/v1/runs", json={"seed": 1, "promote": False})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            answers = [ready, started, admin.get(f"/v1/runs/{run_id}")]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                run = admin.get(f"/v1/runs/{run_id}")
                answers.append(run)
                if run.json().get("status") in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
            answers.append(admin.get("/v1/runs"))
    finally:
        server.kill(signal.SIGTERM)
    for answer in answers:
        assert SECRET not in answer.text, (answer.request.url, answer.text)
    assert ready.json()["detail"]["book"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    assert "password=***" in ready.json()["detail"]["book"]
    assert started.json()["book_source"] == ready.json()["detail"]["book"]
    assert answers[-2].json()["status"] == "succeeded", answers[-2].text
    assert SECRET not in (tmp_path / "server.log").read_text()
