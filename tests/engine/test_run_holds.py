"""The batch run honours what the accounts' users said: snoozes and dismissals hold actions back as online."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

# The store tests' fixtures (pg_admin_url, pg_schema_url) serve these tests too.
from tests.store.conftest import pg_admin_url, pg_schema_url  # noqa: F401

from nextmove.engine.online import DecideRequest, OnlineDecider
from nextmove.engine.run import EFFECT_MODEL_KIND, RunResult, run
from nextmove.playbook import Playbook
from nextmove.sim import SimConfig, SimResult, simulate
from nextmove.store import FeedbackEvent, ModelVersionRecord, Store, open_store

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}
SAID = "customer asked to wait for their budget"


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=150, months=8, seed=3))


@pytest.fixture(scope="module")
def playbook(lab: SimResult) -> Playbook:
    # No exploration draw: an online decision is then the best allowed option, as the run's is.
    data = lab.config.resolved_playbook().model_dump(mode="json")
    data["exploration"]["method"] = "none"
    return Playbook.model_validate(data)


@pytest.fixture(scope="module")
def fitted(lab: SimResult, playbook: Playbook) -> ModelVersionRecord:
    """The effect model, fitted once: each test's store gets it, and its runs reuse it."""
    with open_store("sqlite://") as store:
        run(lab.book, playbook, as_of=lab.as_of, store=store, effect_params=FAST, evaluate=False, segments=False)
        model = store.active_model(EFFECT_MODEL_KIND)
    assert model is not None
    return model


def _open(url: str, fitted: ModelVersionRecord) -> Store:
    store = open_store(url)
    store.save_model(fitted)
    return store


@pytest.fixture
def store(tmp_path: Path, fitted: ModelVersionRecord) -> Iterator[Store]:
    with _open(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}", fitted) as opened:
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path, fitted: ModelVersionRecord) -> Iterator[Store]:
    url = (
        f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    with _open(url, fitted) as opened:
        yield opened


def _run(lab: SimResult, playbook: Playbook, store: Store, *, as_of: datetime | None = None) -> RunResult:
    # Without capacities each account gets its best allowed option, as an online decision does.
    return run(
        lab.book,
        playbook,
        as_of=as_of or lab.as_of,
        store=store,
        reuse_model=True,
        evaluate=False,
        segments=False,
        capacity=False,
    )


def _acting(result: RunResult, n: int) -> list[tuple[str, str]]:
    """``n`` accounts of the learned policy's arm that get a play, with their play."""
    rows = result.recommendations.filter((pl.col("arm") == "model") & (pl.col("action_id") != "none")).head(n)
    assert rows.height == n
    return list(zip(rows["account_id"].to_list(), rows["action_id"].to_list(), strict=True))


def _row(result: RunResult, account_id: str) -> dict[str, Any]:
    (row,) = result.recommendations.filter(pl.col("account_id") == account_id).iter_rows(named=True)
    return row


def _snooze(account_id: str, event_id: str, ts: datetime, until: datetime, action_id: str | None) -> FeedbackEvent:
    """A snooze as ``POST /v1/feedback`` stores it (``snoozed_until`` in the payload)."""
    return FeedbackEvent(
        event_id=event_id,
        account_id=account_id,
        kind="snoozed",
        ts=ts,
        action_id=action_id,
        reason=SAID,
        payload={"snoozed_until": until.isoformat()},
    )


def _dismissal(account_id: str, event_id: str, ts: datetime, action_id: str | None = None) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=event_id, account_id=account_id, kind="dismissed", ts=ts, action_id=action_id, reason="in touch"
    )


def test_run_does_not_recommend_a_snoozed_action_and_says_why(
    lab: SimResult, playbook: Playbook, any_store: Store
) -> None:
    store = any_store
    before = _run(lab, playbook, store)
    (account, action), *_ = _acting(before, 1)
    until = lab.as_of + timedelta(days=14)
    store.add_feedback([_snooze(account, "snooze-1", lab.as_of - timedelta(days=1), until, action)])

    after = _run(lab, playbook, store)
    row = _row(after, account)
    assert row["action_id"] != action
    # The receipt's runner-up, in the recommendations (recommendations.csv) and in the store (GET /v1/recommendations).
    (alt,) = [a for a in json.loads(row["alternatives"]) if a["action_id"] == action]
    assert (alt["why"], alt["reason"]) == ("snoozed", f"snoozed until {until:%Y-%m-%d}: {SAID}")
    (stored,) = store.recommendations(after.run_id, account_ids=[account])
    assert stored.action_id == row["action_id"]
    assert any(a["action_id"] == action and a["why"] == "snoozed" for a in stored.alternatives)
    assert after.decisions is not None
    lost = after.decisions.lost(playbook).filter((pl.col("account_id") == account) & (pl.col("action_id") == action))
    assert lost.select("why", "reason").rows() == [("snoozed", f"snoozed until {until:%Y-%m-%d}: {SAID}")]
    # Nobody else's recommendation changes.
    others = pl.col("account_id") != account
    keep = ["account_id", "action_id", "variant"]
    assert after.recommendations.filter(others).select(keep).equals(before.recommendations.filter(others).select(keep))


def test_run_gives_nothing_to_an_account_snoozed_whole(lab: SimResult, playbook: Playbook, store: Store) -> None:
    before = _run(lab, playbook, store)
    (account, _), *_ = _acting(before, 1)
    until = lab.as_of + timedelta(days=30)
    store.add_feedback([_snooze(account, "quiet-1", lab.as_of - timedelta(hours=2), until, None)])

    row = _row(_run(lab, playbook, store), account)
    assert row["action_id"] == "none"
    plays = [a for a in json.loads(row["alternatives"]) if a["action_id"] != "none"]
    assert plays
    assert {a["why"] for a in plays} == {"snoozed"}
    assert {a["reason"] for a in plays} == {f"the account is snoozed until {until:%Y-%m-%d}: {SAID}"}


def test_run_holds_a_dismissed_action_back_for_its_cooldown(lab: SimResult, playbook: Playbook, store: Store) -> None:
    before = _run(lab, playbook, store)
    (held, held_action), (over, over_action) = _acting(before, 2)
    window = playbook.contact_policy.window_days
    days = max(playbook.action(held_action).cooldown_days, window)
    gone = max(playbook.action(over_action).cooldown_days, window)
    dismissed_on = lab.as_of - timedelta(days=2)
    store.add_feedback(
        [
            _dismissal(held, "dismiss-1", dismissed_on, held_action),
            _dismissal(over, "dismiss-2", lab.as_of - timedelta(days=gone + 1), over_action),  # its hold is over
        ]
    )

    after = _run(lab, playbook, store)
    row = _row(after, held)
    assert row["action_id"] != held_action
    (alt,) = [a for a in json.loads(row["alternatives"]) if a["action_id"] == held_action]
    assert alt["why"] == "dismissed"
    assert alt["reason"] == (
        f"dismissed on {dismissed_on:%Y-%m-%d} (in touch); held back for "
        + (f"its {days}-day cooldown" if days > window else f"the {days}-day contact window")
        + f", until {dismissed_on + timedelta(days=days):%Y-%m-%d}"
    )
    assert _row(after, over)["action_id"] == over_action


def test_a_backtest_does_not_see_a_snooze_sent_after_its_as_of(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    before = _run(lab, playbook, store)
    (account, action), *_ = _acting(before, 1)
    later = lab.as_of + timedelta(days=1)
    store.add_feedback([_snooze(account, "snooze-later", later, later + timedelta(days=14), action)])

    row = _row(_run(lab, playbook, store), account)
    assert row["action_id"] == action
    assert all(a["why"] != "snoozed" for a in json.loads(row["alternatives"]))


def test_online_decisions_agree_with_the_run_that_honoured_the_feedback(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    """Same choice and same reason for a snoozed account; and a dismissal that names nothing keeps answering
    the recommendation it was sent about once a later run (which held that action back) is served."""
    first = _run(lab, playbook, store)
    (snoozed, snoozed_action), (dismissed, dismissed_action) = _acting(first, 2)
    until = lab.as_of + timedelta(days=14)
    store.add_feedback(
        [
            _snooze(snoozed, "snooze-1", lab.as_of - timedelta(days=1), until, snoozed_action),
            _dismissal(dismissed, "dismiss-rec", lab.as_of - timedelta(hours=1)),  # about the first run's choice
        ]
    )

    second = _run(lab, playbook, store)  # served from now on
    assert _row(second, dismissed)["action_id"] != dismissed_action
    decider = OnlineDecider(store, playbook)
    made = decider.decide([DecideRequest(snoozed), DecideRequest(dismissed)], now=lab.as_of + timedelta(hours=1))
    for d, (account, action) in zip(made, [(snoozed, snoozed_action), (dismissed, dismissed_action)], strict=True):
        row = _row(second, account)
        assert d.context["run_id"] == second.run_id
        assert (d.action_id, d.variant) == (row["action_id"], row["variant"])
        batch = {a["action_id"]: (a["why"], a["reason"]) for a in json.loads(row["alternatives"])}
        online = {a["action_id"]: (a["why"], a["reason"]) for a in d.alternatives}
        assert online[action] == batch[action]
        assert online[action][0] in ("snoozed", "dismissed")


def test_a_run_of_todays_book_reads_snoozes_sent_since_its_last_row(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    # Without as_of the run decides as of the midnight after the book's last row; a snooze sent after
    # the export (this morning, say) must still hold, as it does online.
    before = _run(lab, playbook, store)
    (account, action), *_ = _acting(before, 1)
    now = datetime.now(UTC)
    sent = max(lab.as_of + timedelta(days=1), now - timedelta(hours=1))
    store.add_feedback([_snooze(account, "snooze-today", sent, now + timedelta(days=14), action)])
    today = run(lab.book, playbook, store=store, reuse_model=True, evaluate=False, segments=False, capacity=False)
    assert today.as_of < sent  # the book's time is before the snooze ...
    row = _row(today, account)
    assert row["action_id"] != action  # ... which holds all the same
    assert any(a["action_id"] == action and a["why"] == "snoozed" for a in json.loads(row["alternatives"]))
