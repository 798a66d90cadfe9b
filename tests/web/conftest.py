"""Fixtures of the dashboard's tests: a real ``nextmove serve`` over a small book, and a headless Chromium."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.api.conftest import OWNERS, Keys, Server, make_keys, seed_run
from tests.report.conftest import chromium_path

from nextmove.playbook.loader import default_playbook_text, load_playbook
from nextmove.store import RecommendationRecord, open_store

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
"""The name of the first account: text, to be shown as text."""
ACCOUNTS = 30


@dataclass
class Dashboard:
    """A server with the dashboard over a book of 30 accounts (owners ana, ben, cleo in turn) and a served run."""

    server: Server
    keys: Keys
    recs: list[RecommendationRecord]
    store_url: str
    names: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    work = tmp_path_factory.mktemp("dashboard")
    book = work / "book"
    book.mkdir()
    playbook_path = book / "playbook.toml"
    playbook_path.write_text(default_playbook_text(), encoding="utf-8")
    ids = [f"acct-{i:03d}" for i in range(ACCOUNTS)]
    names = {a: (HOSTILE_NAME if i == 0 else f"Customer {i}") for i, a in enumerate(ids)}
    lines = ["account_id,name,owner"]
    lines += [f'{a},"{names[a]}",{OWNERS[i % len(OWNERS)]}' for i, a in enumerate(ids)]
    (book / "accounts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (book / "touches.csv").write_text(
        "account_id,action_id,ts\nacct-000,nurture_email,2026-05-01\nacct-003,upsell_call,2026-05-12\n",
        encoding="utf-8",
    )
    url = f"sqlite:///{(work / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        recs = seed_run(store, load_playbook(playbook_path), account_ids=ids)
        keys = make_keys(store)
    server = Server(url, playbook_path, extra=["--book", str(book)], log=work / "server.log").start()
    try:
        yield Dashboard(server, keys, recs, url, names)
    finally:
        server.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium (Debian's) per module, as the report's page tests use it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()
