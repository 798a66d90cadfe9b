"""An account id sent to the API with white space at either end is the book's account, as the book reads it:
``"acct-1 "`` in a file is ``acct-1``, so ``"acct-1 "`` sent to /v1/decide, /v1/accounts or /v1/feedback is too."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import make_keys, seed_run
from tests.api.test_surface import _app, _ask

from nextmove.playbook import Playbook
from nextmove.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def test_an_account_id_with_spaces_at_either_end_is_the_books_account(store: Store, playbook: Playbook) -> None:
    # It was a 404 "no account 'a1 ' in run 'run-1'" for an account the book reads from "a1 " as a1.
    seed_run(store, playbook, account_ids=["a1", "a2", "E 5"], owners=("ana",))
    keys = make_keys(store)
    done = {"events": [{"event_id": "e1", "account_id": "\u00a0a2\t", "kind": "done"}]}

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post("/v1/decide", json={"account_id": "a1 "}),
            await client.post("/v1/decide", json={"accounts": [{"account_id": " a2"}, {"account_id": "E 5 "}]}),
            await client.get(f"/v1/accounts/{urllib.parse.quote(' a1 ', safe='')}"),
            await client.post("/v1/feedback", json=done),
            await client.post("/v1/decide", json={"account_id": " \t "}),
            await client.get("/v1/accounts/%20%20"),
        ]

    single, batch, page, feedback, blank, blank_page = _ask(_app(store, playbook), keys.admin, calls)
    assert single.status_code == 200, single.text
    assert [d["account_id"] for d in single.json()["decisions"]] == ["a1"]
    assert batch.status_code == 200, batch.text
    assert [d["account_id"] for d in batch.json()["decisions"]] == ["a2", "E 5"]  # a space inside stays
    assert page.status_code == 200, page.text
    assert page.json()["account_id"] == "a1"
    assert feedback.status_code == 200, feedback.text
    assert [e.account_id for e in store.feedback()] == ["a2"]
    assert blank.status_code == 422, blank.text
    assert "an account id must not be blank" in blank.json()["message"]
    assert blank_page.status_code == 422, blank_page.text
    assert "an account id must not be blank" in blank_page.json()["message"]
