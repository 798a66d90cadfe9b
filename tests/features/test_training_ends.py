"""Labels of decisions the book never saw the end of: outcomes that stop before the rest of the data, a
decision time after the data's end, and dated outcomes with a time of day among them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from nextmove.book import Book
from nextmove.book.notes import lagging_book_notes
from nextmove.features import build_training_set
from nextmove.playbook import Playbook

from .conftest import day

MakeBook = Callable[..., Book]
ACCOUNTS = [f"a{i}" for i in range(6)]


def _book(make_book: MakeBook, outcomes: list[tuple[str, datetime, str, float | None]]) -> Book:
    """Six accounts with a signal every day (times of day) and a call every week from day 0 to day 120."""
    signals = [(a, day(d) + timedelta(hours=9), "logins", 3.0) for a in ACCOUNTS for d in range(121)]
    touches = [(a, "call", day(d) + timedelta(hours=11)) for a in ACCOUNTS for d in range(0, 121, 7)]
    return make_book(ACCOUNTS, signals=signals, touches=touches, outcomes=outcomes)


def _labels(train: pl.DataFrame) -> pl.DataFrame:
    return train.select("account_id", "decision_ts", "y_churn", "censored", "observed_days")


def test_decisions_after_the_outcomes_stop_are_censored_not_learned_as_no_churn(
    make_book: MakeBook, playbook: Playbook
) -> None:
    # The outcomes export stops at day 60 (the last row, a churn of a5 on day 60) while signals and
    # touches run to day 120; the churns of a0 and a1 on day 100 are not in it.
    book = _book(make_book, [("a5", day(60) + timedelta(hours=2), "churn", None)])
    train = build_training_set(book, playbook, as_of=day(121))  # horizon 30 days
    seen_until = day(60) + timedelta(hours=2)
    late = _labels(train).filter(pl.col("decision_ts") > seen_until - timedelta(days=30))
    assert late.height > 0
    assert late.get_column("censored").all()  # their horizon runs past what the outcomes show
    observed = (seen_until - late.get_column("decision_ts")).dt.total_seconds() / 86_400
    assert late.get_column("observed_days").to_list() == observed.clip(0.0, 30.0).to_list()
    after = late.filter(pl.col("decision_ts") > seen_until)
    assert after.height > 0
    assert after.get_column("observed_days").to_list() == [0.0] * after.height  # nothing of it seen
    finished = _labels(train).filter(pl.col("decision_ts") <= seen_until - timedelta(days=30))
    assert finished.height > 0
    assert not finished.get_column("censored").any()


def test_a_decision_time_after_the_data_does_not_finish_the_last_horizons(
    make_book: MakeBook, playbook: Playbook
) -> None:
    # Data to day 120 (outcomes too), a run dated day 140: the decisions of days 91-120 were seen for
    # less than their 30 days, and learned as finished "no churn" ones.
    book = _book(make_book, [("a5", day(120) + timedelta(hours=2), "churn", None)])
    train = _labels(build_training_set(book, playbook, as_of=day(140)))
    # Seen to the midnight after the data's last day (day 121), as the default as-of reads the book.
    open_ = train.filter(pl.col("decision_ts") + timedelta(days=30) > day(121))
    assert open_.height > 0
    assert open_.get_column("censored").all()
    assert open_.get_column("observed_days").max() < 30
    assert not train.filter(pl.col("decision_ts") + timedelta(days=30) <= day(121)).get_column("censored").any()


def test_one_timestamped_outcome_changes_no_label_of_dated_outcomes(make_book: MakeBook, playbook: Playbook) -> None:
    # Churns dated on the day of a touch: each is that touch's label when the outcomes are dates. One
    # unrelated expansion with a time of day switched the whole table to times, and every such churn
    # fell before its touch and out of its window.
    dated = [(a, day(d), "churn", None) for a, d in (("a0", 28), ("a1", 63), ("a2", 91))]
    dated += [(a, day(d), "expansion", 100.0) for a in ACCOUNTS[3:] for d in range(0, 121, 3)]
    book = _book(make_book, dated)
    one_timed = _book(make_book, [*dated, ("a3", day(10) + timedelta(hours=10), "expansion", 50.0)])
    plain = _labels(build_training_set(book, playbook, as_of=day(121)))
    mixed = _labels(build_training_set(one_timed, playbook, as_of=day(121)))
    assert plain.filter(pl.col("y_churn") == 1).height >= 3
    assert_frame_equal(mixed, plain)


def test_sparse_outcomes_that_end_as_such_a_table_goes_leave_the_last_decisions_learned_from(
    make_book: MakeBook, playbook: Playbook
) -> None:
    # A churn a month, the last on day 90 while signals run to day 120: no lag note (a month without one is how
    # such a table goes), yet the decisions of days 61-90 were censored, silently: 1,108 of 1,212 learned from
    # in the reviewer's book. Censoring now follows the note's rule.
    churns = [
        (a, day(d) + timedelta(hours=2), "churn", None) for a, d in (("a0", 5), ("a1", 35), ("a2", 65), ("a3", 90))
    ]
    book = _book(make_book, churns)
    assert lagging_book_notes(book, day(121)) == []
    train = _labels(build_training_set(book, playbook, as_of=day(121)))  # horizon 30 days
    recent = train.filter((pl.col("decision_ts") > day(61)) & (pl.col("decision_ts") <= day(90)))
    assert recent.height > 0
    assert not recent.get_column("censored").any()
    assert recent.get_column("observed_days").min() == 30.0
    # Past where the book's data ends (signals at day 120 09:00), horizons are still open.
    assert train.filter(pl.col("decision_ts") > day(91)).get_column("censored").all()


def test_horizons_ending_on_the_export_s_last_evening_are_finished(make_book: MakeBook, playbook: Playbook) -> None:
    # The last signals are at 09:00 of day 120, and the default as-of is the midnight after (day 121). A call at
    # noon of day 91 is decided that day, and its 30 days are over at that midnight: it was censored, its horizon
    # read as ending after "the data's end" at 09:00 (on a weekly book, a whole batch of decisions: 11 % of one
    # book's history, which flipped the policy learned from it).
    signals = [(a, day(d) + timedelta(hours=9), "logins", 3.0) for a in ACCOUNTS for d in range(121)]
    touches = [(a, "call", day(d) + timedelta(hours=12)) for a in ACCOUNTS for d in (31, 61, 91)]
    book = make_book(ACCOUNTS, signals=signals, touches=touches, outcomes=[("a5", day(119), "churn", None)])
    train = _labels(build_training_set(book, playbook, as_of=day(121)))
    last = train.filter(pl.col("decision_ts") == day(91))
    assert last.height > 0
    assert not last.get_column("censored").any()
