"""A run says when its decision time repeats a stored run's, or lies a decision window or more after the book's data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from nextmove.book import Book, empty_table
from nextmove.engine.run import EFFECT_MODEL_KIND, RunResult, run
from nextmove.engine.run_facts import late_as_of_note
from nextmove.playbook import Playbook
from nextmove.sim import SimConfig, SimResult, simulate
from nextmove.store import ModelVersionRecord, Store, open_store

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=150, months=8, seed=3))


@pytest.fixture(scope="module")
def playbook(lab: SimResult) -> Playbook:
    """The lab's playbook with a weekly decision window, as a team deciding every week sets it."""
    data = lab.config.resolved_playbook().model_dump(mode="json")
    data["contact_policy"]["window_days"] = 7
    return Playbook.model_validate(data)


@pytest.fixture(scope="module")
def fitted(lab: SimResult, playbook: Playbook) -> ModelVersionRecord:
    with open_store("sqlite://") as store:
        run(lab.book, playbook, as_of=lab.as_of, store=store, effect_params=FAST, evaluate=False, segments=False)
        model = store.active_model(EFFECT_MODEL_KIND)
    assert model is not None
    return model


@pytest.fixture
def store(tmp_path: Path, fitted: ModelVersionRecord) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        opened.save_model(fitted)
        yield opened


def _run(book: Book, playbook: Playbook, store: Store, as_of: datetime | None = None) -> RunResult:
    return run(book, playbook, as_of=as_of, store=store, reuse_model=True, evaluate=False, segments=False)


def _notes(result: RunResult, words: str) -> list[str]:
    return [n for n in result.summary["notes"] if words in n]


def test_a_book_that_ends_where_a_stored_run_did_says_the_run_repeats_it(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    """A week's export missing: the new folder's book ends where last week's did, and the run says so."""
    last_week = _run(replace(lab.book, source="crm/w04"), playbook, store)
    assert not _notes(last_week, "already holds run")
    again = _run(replace(lab.book, source="crm/w05"), playbook, store)
    assert again.as_of == last_week.as_of
    (note,) = _notes(again, "already holds run")
    assert note.startswith(
        f"the store already holds run {last_week.run_id} (book crm/w04) as of {last_week.as_of:%Y-%m-%d}, "
        "and the book's data ends there too: this run decides again on no newer data"
    )
    assert note.endswith("check that the latest export reached the book")
    stored = store.get_run(again.run_id)
    assert note in stored.summary["notes"]


def test_a_run_after_the_stored_ones_or_at_a_given_as_of_says_nothing_of_them(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    earlier = lab.as_of - timedelta(days=14)
    _run(replace(lab.book, source="crm/w02"), playbook, store, as_of=earlier)
    newer = _run(replace(lab.book, source="crm/w04"), playbook, store)  # the book ends after the stored run
    assert not _notes(newer, "already holds run")
    backtest = _run(replace(lab.book, source="crm/w04"), playbook, store, as_of=earlier)  # an --as-of chosen
    assert not _notes(backtest, "already holds run")


def test_a_decision_time_more_than_a_window_after_the_books_data_is_noted(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    """An --as-of 8 days after the book's latest row: a week's touches and signals are missing, and the run says so."""
    stamps = [lab.book.touches.get_column("ts").max(), lab.book.signals.get_column("ts").max()]
    latest = max(s for s in stamps if isinstance(s, datetime))
    late = _run(lab.book, playbook, store, as_of=latest + timedelta(days=8))
    (note,) = _notes(late, "decision window")
    assert note.startswith(
        f"the decision time {latest + timedelta(days=8):%Y-%m-%d} is 8 days after the book's latest touch or "
        f"signal ({latest:%Y-%m-%d}), more than the playbook's 7-day decision window"
    )
    assert not _notes(late, "windows of recent activity are empty")  # the 28-day staleness note is not due


def test_the_late_as_of_note_waits_for_the_longer_of_the_window_and_a_week(playbook: Playbook) -> None:
    t = datetime(2025, 6, 1, tzinfo=UTC)
    touches = pl.DataFrame({"account_id": ["a"], "action_id": ["none"], "ts": [t]})
    book = Book(empty_table("accounts"), empty_table("signals"), touches, empty_table("outcomes"))
    assert late_as_of_note(book, playbook, t + timedelta(days=7)) is None
    assert late_as_of_note(book, playbook, t + timedelta(days=7, hours=1)) is not None
    assert late_as_of_note(book, playbook, t + timedelta(days=28)) is None  # the book's staleness note says it
    data = playbook.model_dump(mode="json")
    data["contact_policy"]["window_days"] = 3
    weekly = Playbook.model_validate(data)
    assert late_as_of_note(book, weekly, t + timedelta(days=6)) is None  # at least a week
    data["contact_policy"]["window_days"] = 21
    three_weeks = Playbook.model_validate(data)
    assert late_as_of_note(book, three_weeks, t + timedelta(days=20)) is None
    empty = Book(empty_table("accounts"), empty_table("signals"), empty_table("touches"), empty_table("outcomes"))
    assert late_as_of_note(empty, playbook, t) is None


def test_at_the_default_as_of_the_late_note_names_the_exports_that_are_behind(
    lab: SimResult, playbook: Playbook, store: Store
) -> None:
    """No --as-of given: the outcomes reach two weeks past the touches and signals, and the note names those exports."""
    latest = lab.book.touches.get_column("ts").max()
    assert isinstance(latest, datetime)
    book = replace(lab.book, signals=lab.book.signals.filter(pl.col("ts") <= latest))
    result = _run(book, playbook, store)
    assert result.as_of - latest >= timedelta(days=8)
    (note,) = _notes(result, "decision window")
    assert "--as-of" not in note
    assert note.startswith(f"the book's touches and signals end {(result.as_of - latest).days} days before its data")
    assert note.endswith("add the missing touches and signals exports")
