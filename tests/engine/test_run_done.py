"""The batch run counts the plays reported ``done`` that the book's touches do not hold yet, as online decisions do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from nextmove.book import Book
from nextmove.engine.run import EFFECT_MODEL_KIND, RunResult, run
from nextmove.playbook import Playbook
from nextmove.sim import SimConfig, SimResult, simulate
from nextmove.store import FeedbackEvent, ModelVersionRecord, Store, open_store

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=150, months=8, seed=3))


@pytest.fixture(scope="module")
def playbook(lab: SimResult) -> Playbook:
    data = lab.config.resolved_playbook().model_dump(mode="json")
    data["exploration"]["method"] = "none"
    return Playbook.model_validate(data)


@pytest.fixture(scope="module")
def book(lab: SimResult) -> Book:
    """The lab's book: its touches end two weeks before its decision time (it logs plays every other Monday)."""
    latest = lab.book.touches.get_column("ts").max()
    assert isinstance(latest, datetime)
    assert lab.as_of - latest >= timedelta(days=7)
    return lab.book


@pytest.fixture(scope="module")
def fitted(book: Book, lab: SimResult, playbook: Playbook) -> ModelVersionRecord:
    with open_store("sqlite://") as store:
        run(book, playbook, as_of=lab.as_of, store=store, effect_params=FAST, evaluate=False, segments=False)
        model = store.active_model(EFFECT_MODEL_KIND)
    assert model is not None
    return model


@pytest.fixture
def store(tmp_path: Path, fitted: ModelVersionRecord) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        opened.save_model(fitted)
        yield opened


def _run(book: Book, lab: SimResult, playbook: Playbook, store: Store) -> RunResult:
    return run(
        book,
        playbook,
        as_of=lab.as_of,
        store=store,
        reuse_model=True,
        evaluate=False,
        segments=False,
        capacity=False,
    )


def _done(account_id: str, action_id: str, ts: datetime, event_id: str) -> FeedbackEvent:
    return FeedbackEvent(event_id=event_id, account_id=account_id, kind="done", ts=ts, action_id=action_id)


def _row(result: RunResult, account_id: str) -> dict[str, Any]:
    (row,) = result.recommendations.filter(pl.col("account_id") == account_id).iter_rows(named=True)
    return row


def _in_flight(row: dict[str, Any]) -> list[str]:
    return [a["reason"] for a in json.loads(row["alternatives"]) if a["why"] == "in_flight"]


def test_plays_reported_done_after_the_books_touches_count_as_plays(
    book: Book, lab: SimResult, playbook: Playbook, store: Store
) -> None:
    before = _run(book, lab, playbook, store)
    acting = before.recommendations.filter((pl.col("arm") == "model") & (pl.col("action_id") != "none")).head(3)
    pairs = list(zip(acting["account_id"].to_list(), acting["action_id"].to_list(), strict=True))
    assert len(pairs) == 3
    when = lab.as_of - timedelta(days=3)  # after the book's latest touch, within the 14-day window
    store.add_feedback([_done(a, act, when, f"crm-{i}") for i, (a, act) in enumerate(pairs)])

    after = _run(book, lab, playbook, store)
    window = playbook.contact_policy.window_days
    for account, action in pairs:
        row = _row(after, account)
        assert row["action_id"] == "none", (account, action)
        reasons = _in_flight(row)
        assert reasons
        assert reasons[0].startswith(f"a play is already in flight: 1 in the last {window} days")
    latest = book.touches.get_column("ts").max()
    assert isinstance(latest, datetime)
    (note,) = [n for n in after.summary["notes"] if "reported done" in n]
    assert note.startswith(f"3 plays reported done (feedback) after the book's latest touch ({latest:%Y-%m-%d}")
    # Every other account's recommendation is the same.
    others = ~pl.col("account_id").is_in([a for a, _ in pairs])
    assert after.recommendations.filter(others)["action_id"].to_list() == (
        before.recommendations.filter(others)["action_id"].to_list()
    )


def test_a_done_play_the_books_touches_may_hold_counts_once(
    book: Book, lab: SimResult, playbook: Playbook, store: Store
) -> None:
    """A ``done`` event dated at or before the touches' latest row is the export's to hold: not counted again."""
    before = _run(book, lab, playbook, store)
    account, action = (
        before.recommendations.filter((pl.col("arm") == "model") & (pl.col("action_id") != "none"))
        .select("account_id", "action_id")
        .row(0)
    )
    when = lab.as_of - timedelta(days=5)
    touch = pl.DataFrame({"account_id": [account], "action_id": [action], "ts": [when], "touch_id": ["crm-77"]})
    exported = Book(
        book.accounts, book.signals, pl.concat([book.touches, touch], how="diagonal_relaxed"), book.outcomes
    )
    store.add_feedback([_done(account, action, when, "crm-77-done")])

    result = _run(exported, lab, playbook, store)
    window = playbook.contact_policy.window_days
    reasons = _in_flight(_row(result, account))
    assert reasons
    assert reasons[0].startswith(f"a play is already in flight: 1 in the last {window} days")
    assert not [n for n in result.summary["notes"] if "reported done" in n]


def test_done_events_after_the_decision_time_and_other_kinds_are_not_plays(
    book: Book, lab: SimResult, playbook: Playbook, store: Store
) -> None:
    before = _run(book, lab, playbook, store)
    (account, action) = (
        before.recommendations.filter((pl.col("arm") == "model") & (pl.col("action_id") != "none"))
        .select("account_id", "action_id")
        .row(0)
    )
    store.add_feedback(
        [
            _done(account, action, lab.as_of + timedelta(days=1), "later"),  # online decisions count it, at their time
            _done(account, "none", lab.as_of - timedelta(days=2), "nothing"),
            _done(account, "not_in_the_playbook", lab.as_of - timedelta(days=2), "unknown"),
            FeedbackEvent(event_id="o", account_id=account, kind="outcome", ts=lab.as_of - timedelta(days=2)),
        ]
    )
    after = _run(book, lab, playbook, store)
    assert _row(after, account)["action_id"] == action
    assert not [n for n in after.summary["notes"] if "reported done" in n]
