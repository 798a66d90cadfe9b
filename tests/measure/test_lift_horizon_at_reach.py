"""Lift on the export a horizon after a run: the book is read as far as a run on it reads it (its default as-of)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from nextmove.book import default_as_of
from nextmove.book.validate import load_book
from nextmove.measure.lift import HorizonNotOverError, estimate_lift
from nextmove.playbook import Action, Objective, Playbook

DECIDED = datetime(2026, 8, 10, tzinfo=UTC)
LAST_ROW = datetime(2026, 9, 6, 22, 37, tzinfo=UTC)  # the export's last row: late on the day the horizon ends before
IDS = [f"a{i}" for i in range(8)]


def _playbook() -> Playbook:
    return Playbook(
        horizon_days=28,
        objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
        actions=[Action(id="call", name="Call", team="cs", objective="win")],
    )


def _recommendations() -> pl.DataFrame:
    arms = ["model"] * 4 + ["control"] * 4
    return pl.DataFrame({"account_id": IDS, "action_id": ["call"] * 4 + ["none"] * 4, "arm": arms})


def _book(last_row: datetime = LAST_ROW):
    signals = pl.DataFrame(
        {
            "account_id": IDS * 2,
            "ts": [DECIDED - timedelta(days=3)] * len(IDS) + [last_row] * len(IDS),
            "name": ["logins"] * (2 * len(IDS)),
            "value": [1.0] * (2 * len(IDS)),
        }
    )
    wins = pl.DataFrame(
        {"account_id": ["a0", "a1", "a2", "a4"], "ts": [DECIDED + timedelta(days=9, hours=10)] * 4, "kind": ["win"] * 4}
    )
    return load_book({"accounts": pl.DataFrame({"account_id": IDS}), "signals": signals, "outcomes": wins})


def test_lift_measures_a_run_whose_horizon_ends_at_the_midnight_a_run_on_the_export_decides_as_of() -> None:
    book = _book()
    # A run on this export decides as of the midnight after its last row, the one the horizon ends at.
    assert default_as_of(book) == DECIDED + timedelta(days=28)
    report = estimate_lift(_recommendations(), book, _playbook(), as_of=DECIDED, run_id="w01")
    assert report.complete
    assert report.observed_until == DECIDED + timedelta(days=28)
    assert report.observed_days == 28
    [win] = report.objectives
    assert (win.treated_mean, win.control_mean, win.lift) == (0.75, 0.25, 0.5)


def test_lift_of_an_unfinished_horizon_says_the_real_wait() -> None:
    book = _book(LAST_ROW - timedelta(days=1))  # the export of a day before: read as of 2026-09-06 00:00
    with pytest.raises(HorizonNotOverError) as caught:
        estimate_lift(_recommendations(), book, _playbook(), as_of=DECIDED, run_id="w01")
    said = str(caught.value)
    assert "it ends 2026-09-07, 1 day after the book's data, read as of 2026-09-06" in said
    assert "runs up to" not in said  # the data's last row is said only when nothing was seen
    assert caught.value.days_left == pytest.approx(1.0)
    # A run decided in the evening: its horizon ends in the evening, hours (not a day) after that midnight.
    evening = DECIDED - timedelta(days=1) + timedelta(hours=19)
    with pytest.raises(HorizonNotOverError) as caught:
        estimate_lift(_recommendations(), book, _playbook(), as_of=evening, run_id="w01")
    assert "it ends 2026-09-06 19:00 UTC, 19 hours after the book's data" in str(caught.value)
    assert caught.value.days_left == pytest.approx(19 / 24)


def test_lift_with_until_says_the_gap_to_it_in_minutes() -> None:
    until = datetime(2026, 9, 6, 22, 37, tzinfo=UTC)
    with pytest.raises(HorizonNotOverError) as caught:
        estimate_lift(_recommendations(), _book(), _playbook(), as_of=DECIDED, observed_until=until, run_id="w01")
    assert "it ends 2026-09-07, 83 minutes after --until (2026-09-06 22:37 UTC)" in str(caught.value)
    assert caught.value.days_left == pytest.approx(83 / (24 * 60))


def test_lift_before_anything_is_seen_says_when_the_data_ends() -> None:
    with pytest.raises(HorizonNotOverError) as caught:
        estimate_lift(_recommendations(), _book(), _playbook(), as_of=datetime(2026, 9, 7, tzinfo=UTC), run_id="w05")
    said = str(caught.value)
    assert "the book's data runs up to 2026-09-06 22:37 UTC (read as of 2026-09-07, as a run reads it)" in said
    assert "the 28-day horizon ends 2026-10-05, 28 days after that" in said
