"""Online decisions and their logged records: receipts that name variants, retries inside a batch.

Each test uses a small playbook of its own (an email action with two subject lines, two calls),
not the built-in lab's, and a real SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import make_keys

from nextmove.api import ApiConfig, create_app
from nextmove.api.schemas import DecisionPublic
from nextmove.engine.online import DecideRequest, OnlineDecider
from nextmove.playbook import Playbook
from nextmove.store import DecisionRecord, RecommendationRecord, RunRecord, Store, open_store

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
NOW = AS_OF + timedelta(days=1)
ACCOUNTS = 40


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _playbook(*, epsilon: float = 1.0, max_actions_per_window: int = 1) -> Playbook:
    """An email with two subject lines (its variants) and two calls; every account may explore (epsilon 1)."""
    return Playbook.model_validate(
        {
            "objectives": {"keep": {"outcome": "churn", "sense": "avoid", "value": "fixed", "value_usd": 1000}},
            "actions": [
                {
                    "id": "mail",
                    "name": "Renewal mail",
                    "team": "crm",
                    "objective": "keep",
                    "channel": "email",
                    "variants": [{"id": "short_subject"}, {"id": "long_subject"}],
                },
                {"id": "ring", "name": "Check-in call", "team": "cs", "objective": "keep"},
                {"id": "deck", "name": "Value deck", "team": "cs", "objective": "keep"},
            ],
            "contact_policy": {"max_actions_per_window": max_actions_per_window, "window_days": 14},
            "control_fraction": 0.0,
            "exploration": {"method": "epsilon", "epsilon": epsilon},
        }
    )


def _alt(action_id: str, variant: str | None, value: float) -> dict[str, Any]:
    return {
        "action_id": action_id,
        "variant": variant,
        "value_usd": value,
        "low": value - 100.0,
        "high": value + 100.0,
        "why": "lower_value",
        "reason": "projected to be worth less than the recommended action",
    }


def _serve(store: Store, playbook: Playbook) -> list[str]:
    """A run whose choice for every account is the email's long subject line (the model's pick, $900)."""
    recs = [
        RecommendationRecord(
            run_id="run-v",
            account_id=f"acct-{i:02d}",
            action_id="mail",
            variant="long_subject",
            arm="model",
            propensity=0.9,
            expected_value_usd=900.0,
            value_low_usd=800.0,
            value_high_usd=1000.0,
            default_action_id="ring",
            differs_from_default=True,
            owner="ana",
            evidence={
                "schema": 1,
                "action_id": "mail",
                "variant": "long_subject",
                "arm": "model",
                "model_action_id": "mail",
                "default_action_id": "ring",
                "summary": "Renewal mail (long_subject)",
                "projected": [],
                "signals": [],
                "comparables": [],
            },
            alternatives=[_alt("mail", "short_subject", 700.0), _alt("ring", None, 500.0), _alt("deck", None, 300.0)],
            model_version="effect-test",
        )
        for i in range(ACCOUNTS)
    ]
    run = RunRecord(
        run_id="run-v",
        book_source="tests",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
        created_at=AS_OF + timedelta(hours=1),
        finished_at=AS_OF + timedelta(hours=2),
        summary={"accounts": ACCOUNTS},
    )
    store.save_run(run, recs)
    return [r.account_id for r in recs]


def _exploring_below_the_runner_ups(decider: OnlineDecider, accounts: list[str]) -> DecisionRecord:
    """The first decision that explored to the value deck or nothing (each is 2 in 5 under epsilon 1)."""
    for account in accounts:
        (made,) = decider.decide([DecideRequest(account)], now=NOW)
        if made.arm == "explore" and made.action_id in ("deck", "none"):
            return made
    raise AssertionError(f"none of {len(accounts)} decisions explored below the runner-ups (0.6^n)")


def test_an_exploring_decision_names_the_model_s_pick_with_its_variant(store: Store) -> None:
    """The model's pick was "Renewal mail" in the reasons and the summary, which of its two subject lines unsaid;
    and, being also the run's choice, its row was coded lower_value ("not drawn this time"), not held back."""
    pb = _playbook()
    accounts = _serve(store, pb)
    made = _exploring_below_the_runner_ups(OnlineDecider(store, pb), accounts)
    assert made.evidence["model_action_id"] == "mail"
    rows = {(a["action_id"], a["variant"]): a for a in made.alternatives}
    # The structured record names the pick the draw held back, action and variant, as a run's receipt does.
    held = [(a["action_id"], a["variant"]) for a in made.alternatives if a["why"] == "held_back"]
    assert held == [("mail", "long_subject")]
    assert rows[("mail", "long_subject")]["reason"] == "held back: this decision explores (epsilon draw)"
    # The runner-ups worth more than the draw but less than the pick say which pick, variant included.
    for key in [("mail", "short_subject"), ("ring", None)]:
        assert rows[key]["why"] == "lower_value"
        assert rows[key]["reason"] == (
            "projected to be worth no more than the model's choice for this account, Renewal mail (long_subject)"
        )
    assert "(exploring: the best guess is Renewal mail (long_subject))" in made.evidence["summary"]
    # Runner-ups are ranked by value whatever their why (docs/evidence.md), as in a run's receipt: the held-back
    # pick, worth the most, comes first (it came after every lower_value row).
    values = [float(a["value_usd"]) for a in made.alternatives]
    assert values == sorted(values, reverse=True), made.alternatives
    assert made.alternatives[0]["why"] == "held_back"
    # What was logged is what was served.
    (logged,) = store.decisions(account_id=made.account_id)
    assert logged == made


def _sees_one_play_in_flight(decision: DecisionRecord) -> None:
    """Under ``max_actions_per_window = 2`` with one play in flight, every option stays open (epsilon 1: 1/5 each)."""
    assert not [a for a in decision.alternatives if a["why"] == "in_flight"], decision.alternatives
    assert decision.context["propensities"] == pytest.approx(
        {"mail:short_subject": 0.2, "mail:long_subject": 0.2, "ring": 0.2, "deck": 0.2, "none": 0.2}
    )


def test_a_batch_retrying_a_request_then_asking_anew_for_its_account_decides_against_what_was_logged(
    store: Store,
) -> None:
    """The retry was drawn afresh and its draw dropped when logged, but the new request was decided against it:
    a play in flight that was never logged (here, past max_actions_per_window = 2, so it got `none`)."""
    pb = _playbook(max_actions_per_window=2)
    accounts = _serve(store, pb)
    decider = OnlineDecider(store, pb)
    plays = 0
    for n, account in enumerate(accounts[:12]):
        (first,) = decider.decide([DecideRequest(account, request_id=f"crm-{n}-a")], now=NOW)
        if first.action_id == "none":
            continue  # nothing in flight: a fresh draw for the retry could not be counted against the new one
        plays += 1
        retried, new = decider.decide(
            [DecideRequest(account, request_id=f"crm-{n}-a"), DecideRequest(account, request_id=f"crm-{n}-b")],
            now=NOW + timedelta(minutes=1),
        )
        assert retried == first  # the stored response, exactly
        _sees_one_play_in_flight(new)
        logged = {d.decision_id: d for d in store.decisions(account_id=account)}
        assert set(logged) == {first.decision_id, new.decision_id}
        assert logged[new.decision_id] == new  # the draw and propensity served are the ones logged
    assert plays >= 3


def test_a_request_id_twice_in_a_batch_is_drawn_once_for_the_requests_after_it(store: Store) -> None:
    """The second copy of a request was drawn afresh (and dropped when logged); a later request was decided against
    both plays."""
    pb = _playbook(max_actions_per_window=2)
    accounts = _serve(store, pb)
    decider = OnlineDecider(store, pb)
    plays = 0
    for n, account in enumerate(accounts[:12]):
        once = DecideRequest(account, request_id=f"twice-{n}")
        first, copy, new = decider.decide([once, once, DecideRequest(account, request_id=f"then-{n}")], now=NOW)
        assert copy == first
        logged = {d.decision_id: d for d in store.decisions(account_id=account)}
        assert set(logged) == {first.decision_id, new.decision_id}
        assert logged[new.decision_id] == new
        if first.action_id != "none":
            plays += 1
            _sees_one_play_in_flight(new)
    assert plays >= 3


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_over_the_api_a_retry_in_a_batch_answers_the_stored_decision_and_the_rest_is_logged_as_served(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """POST /v1/decide, on SQLite and PostgreSQL: a batch [retry of an account's request, new request for it]."""
    store_url: str = (
        f"sqlite:///{(tmp_path / 'api.db').as_posix()}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    pb = _playbook(max_actions_per_window=2)
    with open_store(store_url) as seeding:
        accounts = _serve(seeding, pb)
        keys = make_keys(seeding)
    app = create_app(ApiConfig(playbook=pb, store_url=store_url, refresh_s=3600.0))

    async def calls(client: httpx.AsyncClient) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        out = []
        for n, account in enumerate(accounts[:10]):
            first = await client.post("/v1/decide", json={"account_id": account, "request_id": f"api-{n}-a"})
            assert first.status_code == 200, first.text
            batch = await client.post(
                "/v1/decide",
                json={
                    "accounts": [
                        {"account_id": account, "request_id": f"api-{n}-a"},
                        {"account_id": account, "request_id": f"api-{n}-b"},
                    ]
                },
            )
            assert batch.status_code == 200, batch.text
            out.append((first.json()["decisions"][0], batch.json()["decisions"]))
        return out

    async def main() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {keys.admin}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:
            return await calls(client)

    services = app.state.services
    services.audit.start()
    try:
        answers = asyncio.run(main())
    finally:
        services.close()
    plays = 0
    with open_store(store_url) as store:
        for first, (retried, new) in answers:
            assert retried == first  # the stored response, exactly
            logged = {d.decision_id: d for d in store.decisions(account_id=first["account_id"])}
            assert set(logged) == {first["decision_id"], new["decision_id"]}
            stored = DecisionPublic.of(logged[new["decision_id"]]).model_dump(mode="json")
            assert new == stored  # the draw, propensity and receipt answered are the ones logged
            if first["action_id"] != "none":
                plays += 1
                assert not [a for a in new["alternatives"] if a["why"] == "in_flight"]
                # One play in flight of two allowed: every option open, 1 in 5 each under epsilon 1.
                assert new["propensity"] == pytest.approx(0.2)
    assert plays >= 3
