"""A run says so when none of the decisions its models learn from has a signal before it.

Signals exported for the last weeks only, while every decision whose horizon is over is older, leave
every signal feature of the learned rows empty: the models learn from attributes and touches alone
and the evidence cites only attributes, which a run said nothing of.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import polars as pl
import pytest
from tests.measure.stage_leak_book import LeakBook, write_leak_book

import nextmove
from nextmove.book import Book
from nextmove.engine.run import RunResult, run

FAST = {"n_folds": 2, "n_estimators": 20}
NOTE = "the book's signals (logins_wk) hold no value before any of the "


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> LeakBook:
    return write_leak_book(tmp_path_factory.mktemp("signals") / "book", accounts=300, months=10, churn=1.5, seed=3)


def run_on(book: Book, leak: LeakBook, **effect: object) -> RunResult:
    playbook = nextmove.load_playbook(leak.folder / "playbook.toml")
    return run(book, playbook, effect_params={**FAST, **effect}, evidence=False, segments=False, evaluate=False)


def recent_signals_only(leak: LeakBook) -> Book:
    """The book with its signals of the last 4 weeks before its last decision only."""
    book = nextmove.load_book(leak.folder, playbook=nextmove.load_playbook(leak.folder / "playbook.toml"))
    last = book.touches.get_column("ts").max()
    return dataclasses.replace(book, signals=book.signals.filter(pl.col("ts") >= last - timedelta(weeks=4)))


def test_run_notes_that_no_learned_decision_has_a_signal_with_the_dates_and_what_to_do(leak: LeakBook) -> None:
    book = recent_signals_only(leak)
    result = run_on(book, leak)
    (note,) = [n for n in result.summary["notes"] if n.startswith(NOTE)]
    first = book.signals.get_column("ts").min()
    # The decisions every 30 days: the latest whose 30-day horizon is over is the one before the last.
    decided = sorted(set(book.touches.get_column("ts").to_list()))
    assert f"its first signal is dated {first:%Y-%m-%d}" in note
    assert f"after the latest decision whose 30-day horizon is over ({decided[-2]:%Y-%m-%d})" in note
    assert f"add older signal exports (from before {decided[-2]:%Y-%m-%d})" in note
    assert note.endswith("or learn from open horizons too (--partial-horizon-days, e.g. 28)")


def test_run_says_nothing_when_learned_decisions_have_signals(leak: LeakBook) -> None:
    whole = nextmove.load_book(leak.folder, playbook=nextmove.load_playbook(leak.folder / "playbook.toml"))
    assert not any(n.startswith(NOTE) for n in run_on(whole, leak).summary["notes"])
    # Learning from open horizons too: the last decisions, a day after their signals, have them.
    partial = run_on(recent_signals_only(leak), leak, partial_horizon_days=7)
    assert not any(n.startswith(NOTE) for n in partial.summary["notes"])
