"""Names sent to the API are read in Unicode NFC, as the book's are; an account id differing from the book's only by
its form is still unknown (ids are matched as written), and the 404 says why."""

from __future__ import annotations

import dataclasses
import unicodedata
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import make_keys, seed_run
from tests.api.test_surface import _app, _ask, _book

from nextmove.api.schemas import DecideIn
from nextmove.book.validate import load_book
from nextmove.errors import ConfigError
from nextmove.playbook import Playbook
from nextmove.store import Store, open_store

KIND = "Kündigung"
SIGNAL = "Ödeme hatası"
ACCOUNT = "müller-1"


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _folder(tmp_path: Path) -> Path:
    folder = _book(
        tmp_path / "book",
        f"account_id,owner,arr\na1,ana,1000\n{ACCOUNT},ana,1000\n",
        f"account_id,ts,kind\na1,2026-01-02T00:00:00Z,{KIND}\n",
    )
    (folder / "signals.csv").write_text(f"account_id,ts,name,value\na1,2026-01-01T00:00:00Z,{SIGNAL},1\n")
    return folder


def test_a_feedback_outcome_kind_in_nfd_is_the_books_kind(tmp_path: Path, store: Store, playbook: Playbook) -> None:
    # It was a 422: "neither the playbook's objectives nor the book know outcome kind 'Kündigung'".
    book = load_book(str(_folder(tmp_path)), playbook=playbook)
    seed_run(store, playbook, account_ids=["a1", ACCOUNT], owners=("ana",))
    keys = make_keys(store)
    event = {"event_id": "e1", "account_id": "a1", "kind": "outcome", "outcome": {"kind": nfd(KIND), "value": 1}}

    async def calls(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/feedback", json={"events": [event]})

    answer = _ask(_app(store, playbook, book=book), keys.admin, calls)
    assert answer.status_code == 200, answer.text
    [stored] = store.feedback()
    assert stored.payload["outcome"]["kind"] == KIND


def test_fresh_signal_names_in_nfd_are_the_books_signals(tmp_path: Path, store: Store, playbook: Playbook) -> None:
    # check_signals refused the book's own signal: "the book has no signal 'Ödeme hatası'".
    book = load_book(str(_folder(tmp_path)), playbook=playbook)
    body = DecideIn.model_validate({"account_id": "a1", "signals": {nfd(SIGNAL): 3.0}})
    assert list(body.signals) == [SIGNAL]
    app = _app(store, playbook, book=book)
    try:
        app.state.services.check_signals([item.signals for item in body.items()])
        with pytest.raises(ConfigError, match="the book has no signal 'nope'"):
            app.state.services.check_signals([{"nope": 1.0}])
    finally:
        app.state.services.close()


def test_an_account_id_unknown_only_by_its_form_says_so(tmp_path: Path, store: Store, playbook: Playbook) -> None:
    """Ids are matched as written (a CRM joins on them byte for byte): the NFD form of a book's id is unknown, and
    the 404 says which id of the book it differs from, with escapes, as both print alike."""
    folder = _folder(tmp_path)
    book = load_book(str(folder), playbook=playbook)
    seed_run(store, playbook, account_ids=["a1", ACCOUNT], owners=("ana",))
    keys = make_keys(store)
    written = nfd(ACCOUNT)
    done = {"events": [{"event_id": "e1", "account_id": written, "kind": "done"}]}

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post("/v1/feedback", json=done),
            await client.get(f"/v1/accounts/{urllib.parse.quote(written, safe='')}"),
            await client.post("/v1/decide", json={"account_id": written}),
            await client.get("/v1/accounts/ghost"),
        ]

    feedback, page, decide, ghost = _ask(_app(store, playbook, book=book, book_path=str(folder)), keys.admin, calls)
    why = "'mu\\u0308ller-1' differs from 'm\\xfcller-1' in the book only by Unicode normalisation (NFC vs NFD)"
    for answer in (feedback, page, decide):
        assert answer.status_code == 404, answer.text
        assert why in answer.json()["message"], answer.json()["message"]
    assert ghost.status_code == 404
    assert "Unicode" not in ghost.json()["message"]
    assert store.feedback() == []


def test_a_keys_owner_in_nfd_names_the_books_nfc_owner() -> None:
    from nextmove.api.auth import principal_of
    from nextmove.store.keys import new_api_key

    _, record = new_api_key("csm", [nfd(" Zoë Müller ")], scheme="scrypt:1024:8:1")
    assert list(record.owners) == ["Zoë Müller"]
    # A key stored in another form before (by hand, or by an older release) is read in NFC too.
    old = dataclasses.replace(record, owners=[nfd("Zoë Müller")])
    assert principal_of(old).owners == frozenset({"Zoë Müller"})
