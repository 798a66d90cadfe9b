"""The API on a book the lab did not make: a streaming service's subscribers (no owners, other signals and actions)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.api.conftest import Served, Server, make_keys

from nextmove.book.validate import load_book
from nextmove.engine.online import promote_run
from nextmove.engine.run import EFFECT_MODEL_KIND, run
from nextmove.playbook.loader import load_playbook
from nextmove.playbook.money import money_text
from nextmove.store import open_store
from nextmove.testing import write_subscription_book


@pytest.fixture(scope="module")
def subs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over the subscription book, its one run served for being the newest (as `nextmove run` leaves it)."""
    work = tmp_path_factory.mktemp("subscriptions")
    book_dir = work / "book"
    write_subscription_book(book_dir, 300)
    playbook_path = book_dir / "playbook.toml"
    playbook = load_playbook(playbook_path)
    book = load_book(book_dir, playbook=playbook)
    url = f"sqlite:///{(work / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        first = run(book, playbook, store=store, seed=0)
        keys = make_keys(store)
        recs = store.recommendations(first.run_id)
    server = Server(url, playbook_path, extra=["--book", str(book_dir)], log=work / "server.log").start()
    try:
        yield Served(server, keys, recs, url, playbook, signal_names=book.signal_names)
    finally:
        server.kill(signal.SIGTERM)


def _served_run(client: httpx.Client) -> Any:
    return client.get("/readyz").json()["detail"]["served_run"]


def _wait_for(client: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if found.get("status") in ("succeeded", "failed") or found.get("error"):
            return found
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish")


def test_a_run_started_with_promote_false_is_never_served_nor_its_model_activated(subs: Served) -> None:
    served = subs.recs[0].run_id
    with open_store(subs.store_url) as store:
        effect_before = store.active_model(EFFECT_MODEL_KIND)
    with subs.client("admin") as client:
        assert _served_run(client) == served
        started = client.post("/v1/runs", json={"promote": False, "seed": 1})
        assert started.status_code == 202, started.text
        quiet = _wait_for(client, started.json()["run_id"])
        assert quiet["status"] == "succeeded", quiet
        time.sleep(1.0)  # the server looks for a newer run every 0.3 s
        assert _served_run(client) == served
        assert client.get(f"/v1/runs/{quiet['run_id']}").json()["served"] is False
    with open_store(subs.store_url) as store:
        effect_after = store.active_model(EFFECT_MODEL_KIND)
    assert effect_before is not None
    assert effect_after is not None
    assert effect_after.model_id == effect_before.model_id
    # Promoted, it is served, and rescoring uses its own effect model.
    with open_store(subs.store_url) as store:
        promote_run(store, quiet["run_id"])
        effect_promoted = store.active_model(EFFECT_MODEL_KIND)
        promote_run(store, served)  # back, for the tests after this one
    assert effect_promoted is not None
    assert effect_promoted.model_id == quiet["summary"]["model_version"]


def test_fresh_signals_the_book_does_not_have_are_refused_with_the_books_names(subs: Served) -> None:
    account = subs.recs[0].account_id
    with subs.client("admin") as client:
        one = client.post("/v1/decide", json={"account_id": account, "signals": {"nps": 4}})
        batch = client.post(
            "/v1/decide",
            json={"accounts": [{"account_id": account, "signals": {"minutes_watched": 300.0, "csat": 2.0}}]},
        )
        known = client.post("/v1/decide", json={"account_id": account, "signals": {"minutes_watched": 300.0}})
    for refused, name in ((one, "'nps'"), (batch, "'csat'")):
        assert refused.status_code == 422, refused.text
        message = refused.json()["message"]
        assert name in message
        assert "minutes_watched, payment_failed" in message
    assert known.status_code == 200, known.text
    assert known.json()["decisions"][0]["evidence"]["rescored_with_fresh_signals"] is True


def test_rescoring_keeps_blocked_what_the_runs_contact_rules_blocked(subs: Served) -> None:
    blocking = {"cooldown", "contact_cap", "in_flight"}
    blocked = {
        r.account_id: {a["action_id"] for a in r.alternatives if a.get("why") in blocking}
        for r in subs.recs
        if r.arm != "control"
    }
    accounts = [a for a, actions in blocked.items() if actions][:40]
    assert len(accounts) >= 20
    run_action = {r.account_id: r.action_id for r in subs.recs}
    with subs.client("admin") as client:
        decided = [
            client.post("/v1/decide", json={"account_id": a, "signals": {"minutes_watched": 300.0}}).json()[
                "decisions"
            ][0]
            for a in accounts
        ]
    for decision in decided:
        account = decision["account_id"]
        assert decision["evidence"]["rescored_with_fresh_signals"] is True
        assert decision["action_id"] not in blocked[account], decision["evidence"]["summary"]
        still = {a["action_id"] for a in decision["alternatives"] if a["why"] in blocking}
        assert blocked[account] <= still
        for alternative in decision["alternatives"]:
            if "the run's choice" in alternative["reason"]:
                assert alternative["action_id"] == run_action[account], decision["alternatives"]


def test_online_receipts_write_dollars_as_the_runs_do(subs: Served) -> None:
    accounts = [r.account_id for r in subs.recs if r.arm != "control"][60:100]
    with subs.client("admin") as client:
        plain = client.post("/v1/decide", json={"accounts": [{"account_id": a} for a in accounts[:20]]})
        fresh = client.post(
            "/v1/decide",
            json={"accounts": [{"account_id": a, "signals": {"minutes_watched": 120.0}} for a in accounts[20:]]},
        )
    decisions = plain.json()["decisions"] + fresh.json()["decisions"]
    acting = [d for d in decisions if d["action_id"] != "none"]
    assert acting
    for decision in decisions:
        evidence = decision["evidence"]
        numbers = [evidence[k] for k in ("value_usd", "value_low_usd", "value_high_usd")]
        numbers += [a[k] for a in decision["alternatives"] for k in ("value_usd", "low", "high")]
        assert all(x == round(x, 2) for x in numbers), decision
        assert "$-" not in evidence["summary"]
    for decision in acting:
        assert (
            f"projected {money_text(decision['evidence']['value_usd'], 'USD')} over" in decision["evidence"]["summary"]
        )
