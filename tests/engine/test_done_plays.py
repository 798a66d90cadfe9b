"""Which plays reported ``done`` the run counts: those of the book's accounts its touches do not hold yet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from nextmove.engine.holds import done_plays
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.store import FeedbackEvent, RecommendationRecord, RunRecord, Store, open_store

DAY = datetime(2025, 8, 18, tzinfo=UTC)
"""The touches' last day."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return load_playbook()


def _action(playbook: Playbook) -> str:
    return next(a for a in playbook.action_ids if a != "none")


def _touches(rows: list[tuple[str, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")}, orient="row"
    )


def _done(
    event_id: str, account_id: str, ts: datetime, action_id: str | None, run_id: str | None = None
) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=event_id, account_id=account_id, kind="done", ts=ts, action_id=action_id, run_id=run_id
    )


def _plays(frame: pl.DataFrame) -> list[tuple[str, str, datetime]]:
    return [(a, b, c) for a, b, c in frame.select("account_id", "action_id", "ts").iter_rows()]


def test_a_done_play_on_the_last_day_of_a_book_of_dates_is_that_days_touch(store: Store, playbook: Playbook) -> None:
    """Touches that are dates hold the whole of their last day: a play done at 15:00 that day is not counted again."""
    act = _action(playbook)
    touches = _touches([("a", act, DAY), ("d", act, DAY), ("z", act, DAY - timedelta(days=30))])
    store.add_feedback(
        [
            _done("same-day", "a", DAY + timedelta(hours=15), act),  # the export's row of that day
            _done("other-day-untouched", "b", DAY + timedelta(hours=15), act),  # on the export's day: its to hold
            _done("next-day", "c", DAY + timedelta(days=1, hours=9), act),  # after the export: counts
            _done("slack", "d", DAY + timedelta(days=1, hours=9), act),  # the export holds it, dated a day early
            _done("old-touch", "z", DAY + timedelta(days=1, hours=9), act),  # touched a month ago: a new play
        ]
    )
    when = DAY + timedelta(days=7)
    plays = done_plays(store, playbook, touches, when, accounts=["a", "b", "c", "d", "z"])
    assert _plays(plays) == [
        ("c", act, DAY + timedelta(days=1, hours=9)),
        ("z", act, DAY + timedelta(days=1, hours=9)),
    ]


def test_touches_with_times_compare_by_time(store: Store, playbook: Playbook) -> None:
    act = _action(playbook)
    latest = DAY + timedelta(hours=10)
    touches = _touches([("a", act, latest)])
    store.add_feedback(
        [_done("before", "b", latest - timedelta(hours=1), act), _done("after", "b", latest + timedelta(hours=5), act)]
    )
    plays = done_plays(store, playbook, touches, DAY + timedelta(days=7), accounts=["a", "b"])
    assert _plays(plays) == [("b", act, latest + timedelta(hours=5))]


def test_only_the_books_accounts_done_plays_count(store: Store, playbook: Playbook) -> None:
    """A store shared by books keeps the others' feedback: another book's account is not this one's."""
    act = _action(playbook)
    touches = _touches([("a", act, DAY - timedelta(days=20))])
    ts = DAY + timedelta(days=2)
    store.add_feedback([_done("mine", "a", ts, act), _done("theirs", "x-9", ts, act)])
    plays = done_plays(store, playbook, touches, DAY + timedelta(days=7), accounts=["a"])
    assert _plays(plays) == [("a", act, ts)]


def test_done_plays_reported_since_the_default_as_of_count_just_before_it(store: Store, playbook: Playbook) -> None:
    act = _action(playbook)
    touches = _touches([("a", act, DAY - timedelta(days=20))])
    when = DAY + timedelta(days=1)
    store.add_feedback([_done("since", "a", when + timedelta(days=3), act)])
    assert done_plays(store, playbook, touches, when, accounts=["a"]).height == 0  # a backtest at ``when``
    plays = done_plays(store, playbook, touches, when, accounts=["a"], until=when + timedelta(days=5))
    assert _plays(plays) == [("a", act, when - timedelta(microseconds=1))]


def test_a_done_play_naming_only_its_run_is_the_runs_recommendation(store: Store, playbook: Playbook) -> None:
    act = _action(playbook)
    store.save_run(
        RunRecord(run_id="r1", book_source="tests", playbook_hash="h", status="succeeded"),
        [
            RecommendationRecord(
                run_id="r1", account_id="a", action_id=act, arm="model", propensity=1.0, expected_value_usd=1.0
            )
        ],
    )
    ts = DAY + timedelta(days=2)
    store.add_feedback([_done("by-run", "a", ts, None, run_id="r1"), _done("no-run", "b", ts, None, run_id="r9")])
    plays = done_plays(store, playbook, _touches([]), DAY + timedelta(days=7), accounts=["a", "b"])
    assert _plays(plays) == [("a", act, ts)]
