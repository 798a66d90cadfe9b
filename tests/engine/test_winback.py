"""A customer won back (churned, then re-signed) is active again from its new start, in every job.

The book: a subscription book with two of its cancelled subscribers active again weeks after their
cancellation, with signals and decisions up to the book's last day. One's ``contract_start`` says when
it re-signed (``back``); the other's book gives no later start (``unmarked``): it stays gone, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.cli import app
from nextmove.engine.health import active_accounts, score_health
from nextmove.engine.run import run
from nextmove.features import build_training_set
from nextmove.measure.lift import measured_outcomes
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.segment import behavior_snapshot, segment_book
from nextmove.segment.cluster import BehaviorSegmenter
from nextmove.testing.subscriptions import write_subscription_book

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


@dataclass(frozen=True)
class WinBacks:
    folder: Path
    book: Book
    playbook: Playbook
    back: str
    unmarked: str
    cancelled_at: dict[str, datetime]
    restart: datetime
    cancelled: int
    """Accounts with a cancellation, the two won back among them."""


@pytest.fixture(scope="module")
def winbacks(tmp_path_factory: pytest.TempPathFactory) -> WinBacks:
    folder = tmp_path_factory.mktemp("winback")
    write_subscription_book(folder, accounts=300, weeks=20)
    frames = {n: pl.read_parquet(folder / f"{n}.parquet") for n in ("accounts", "signals", "touches", "outcomes")}
    cancels = frames["outcomes"].filter(pl.col("kind") == "cancel").sort("ts", "account_id")
    back, unmarked = cancels.get_column("account_id").head(2).to_list()
    cancelled_at = dict(cancels.head(2).select("account_id", "ts").iter_rows())
    end = frames["signals"].get_column("ts").max()
    assert isinstance(end, datetime)
    restart = (max(cancelled_at.values()) + timedelta(days=35)).replace(hour=0, minute=0)
    weeks = int((end - restart).days // 7)
    assert weeks >= 8  # weeks of activity after the return, up to the book's last week
    again = [restart + timedelta(days=7 * w, hours=20) for w in range(weeks + 1)]
    for account in (back, unmarked):
        frames["signals"] = pl.concat(
            [
                frames["signals"],
                pl.DataFrame({"account_id": account, "ts": again, "name": "minutes_watched", "value": 280.0}),
            ]
        )
        frames["touches"] = pl.concat(
            [
                frames["touches"],
                pl.DataFrame({"account_id": account, "action_id": "none", "ts": again[::2]}).with_columns(
                    pl.col("ts") - timedelta(hours=10)
                ),
            ]
        )
    frames["accounts"] = frames["accounts"].with_columns(
        pl.when(pl.col("account_id") == back).then(pl.lit(restart)).otherwise(None).alias("contract_start")
    )
    for name, frame in frames.items():
        frame.write_parquet(folder / f"{name}.parquet")
    playbook = load_playbook(folder / "playbook.toml")
    book = load_book(folder, playbook=playbook)
    return WinBacks(
        folder, book, playbook, back, unmarked, cancelled_at, restart, cancels.get_column("account_id").n_unique()
    )


def test_run_decides_for_a_won_back_account_and_notes_one_without_a_later_start(winbacks: WinBacks) -> None:
    w = winbacks
    result = run(w.book, w.playbook, effect_params=FAST, jobs=1)
    decided = set(result.recommendations.get_column("account_id").to_list())
    assert w.back in decided
    assert w.unmarked not in decided
    notes = [n for n in result.summary["notes"] if "gone by its cancel" in n]
    assert len(notes) == 1, result.summary["notes"]
    assert f"({w.unmarked})" in notes[0]
    assert "set its contract_start to the day it re-signed" in notes[0]


def test_health_scores_a_won_back_account_and_leaves_out_only_the_gone(winbacks: WinBacks) -> None:
    w = winbacks
    result = score_health(w.book, w.playbook)
    scored = set(result.accounts.get_column("account_id").to_list())
    assert w.back in scored
    assert w.unmarked not in scored
    # Every account had started; those cancelled are gone, but for the one won back.
    assert result.left_out == w.cancelled - 1
    # As validate and run, health says which account looks back without a later start.
    assert any("gone by its cancel" in n and f"({w.unmarked})" in n for n in result.notes), result.notes
    assert "new" not in result.accounts.filter(pl.col("account_id") == w.back).get_column("health_trend").to_list()
    # Scored two weeks after its return, its earlier score would fall in its time away: it is new, not
    # compared with a score of the months it was gone.
    early = score_health(w.book, w.playbook, as_of=w.restart + timedelta(days=14))
    row = early.accounts.filter(pl.col("account_id") == w.back)
    assert row.get_column("health_trend").to_list() == ["new"]


def test_training_rows_of_a_won_back_account_resume_at_its_new_start(winbacks: WinBacks) -> None:
    w = winbacks
    rows = build_training_set(w.book, w.playbook)
    back = rows.filter(pl.col("account_id") == w.back)
    times = back.get_column("decision_ts")
    cancelled = w.cancelled_at[w.back]
    assert (times < cancelled).any()
    assert not ((times >= cancelled) & (times < w.restart)).any()  # away: no decision
    assert (times >= w.restart).sum() >= 4  # back: its decisions are rows again
    # Its cancellation is still the outcome of the decisions before it whose horizon held it.
    held = back.filter((pl.col("decision_ts") < cancelled) & (pl.col("decision_ts") >= cancelled - timedelta(days=27)))
    assert held.height
    assert held.get_column("y_cancel").to_list() == [1] * held.height
    assert back.filter(pl.col("decision_ts") >= w.restart).get_column("y_cancel").sum() == 0
    unmarked = rows.filter(pl.col("account_id") == w.unmarked)
    assert unmarked.height
    assert (unmarked.get_column("decision_ts") < w.cancelled_at[w.unmarked]).all()


def test_lift_and_segments_count_a_won_back_account_as_active(winbacks: WinBacks) -> None:
    w = winbacks
    as_of = w.restart + timedelta(days=14)
    measured = set(measured_outcomes(w.book, w.playbook, as_of).get_column("account_id").to_list())
    assert w.back in measured
    assert w.unmarked not in measured
    # Between its cancellation and its new start it is gone, as the run at that time would say.
    away = max(w.cancelled_at.values()) + timedelta(days=7)
    assert w.back not in set(measured_outcomes(w.book, w.playbook, away).get_column("account_id").to_list())
    assert w.back not in set(active_accounts(w.book, w.playbook, away).get_column("account_id").to_list())

    when = w.book.signals.get_column("ts").max() + timedelta(days=1)
    report = segment_book(
        behavior_snapshot(w.book, when, playbook=w.playbook),
        playbook=w.playbook,
        outcomes=w.book.outcomes,
        accounts=w.book.accounts,
        as_of=when,
        segmenter=BehaviorSegmenter(k=2),
    )
    segmented = set(report.assignments.get_column("account_id").to_list())
    assert w.back in segmented
    assert w.unmarked not in segmented
    assert report.accounts == len(active_accounts(w.book, w.playbook, when))


def test_validate_notes_an_account_active_after_its_cancellation_without_a_later_start(winbacks: WinBacks) -> None:
    result = CliRunner().invoke(app, ["validate", "--book", str(winbacks.folder)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    expected = f"1 account gone by its cancel shows signals or touches 30 days or more after it ({winbacks.unmarked})"
    assert expected in text
    assert "won back" not in text  # the one whose start says so is no question


def test_the_runs_earlier_snapshot_leaves_out_a_won_back_account_while_it_was_away(winbacks: WinBacks) -> None:
    # The receipts compare an account with itself 28 days earlier; a customer back for two weeks was
    # away then, and its away weeks read as a change (health's earlier score already left it out).
    from nextmove.engine.run import PREVIOUS_DAYS, _features

    soon = winbacks.restart + timedelta(days=PREVIOUS_DAYS // 2)
    snapshot, previous, *_ = _features(winbacks.book, winbacks.playbook, soon)
    assert winbacks.back in snapshot["account_id"].to_list()
    assert winbacks.back not in previous["account_id"].to_list()
    later = winbacks.restart + timedelta(days=PREVIOUS_DAYS + 14)
    assert winbacks.back in _features(winbacks.book, winbacks.playbook, later)[1]["account_id"].to_list()
