"""evaluate --until on outcomes that lag: what it does with the decisions past their end is said, truly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
from tests.engine.test_run_time_ends import LAST, PLAYBOOK, write_book

from nextmove.book.validate import load_book
from nextmove.measure.ope import split_decisions


def test_an_until_past_where_the_outcomes_end_says_their_decisions_are_learned_from(tmp_path: Path) -> None:
    # Loading said of outcomes ending 60 days early "a decision whose horizon runs past that is not learned
    # from as finished"; with --until the evaluation takes them as complete to it and learns from those
    # decisions as ones after which nothing happened, and said nothing of it.
    folder = write_book(tmp_path / "book", touches_until=LAST)
    outcomes = (folder / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    cut = f"{LAST - timedelta(days=60):%Y-%m-%d}"
    kept = [outcomes[0], *(line for line in outcomes[1:] if line.split(",")[1] <= cut)]
    (folder / "outcomes.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    book = load_book(folder, playbook=PLAYBOOK)
    assert any("is not learned from as finished" in n for n in book.notes)
    end = max(line.split(",")[1] for line in kept[1:])
    until = LAST + timedelta(days=1)

    notes: list[str] = []
    training, evaluation, _, _ = split_decisions(
        book, PLAYBOOK, observed_until=until, holdout_fraction=0.3, notes=notes
    )
    [note] = [n for n in notes if n.startswith("the outcomes end")]
    assert note.startswith(f"the outcomes end {end}, ")
    # A date given to --until is that whole day: the instant LAST + 1 day is --until LAST's date, and the outcomes'
    # end, the midnight after their last date, is --until that date.
    assert "(--until) 2025-03-31 takes them as complete up to then: a decision whose horizon runs past" in note
    assert note.endswith(f"pass observed_until (--until) {end} to leave those decisions out")
    horizon = timedelta(days=PLAYBOOK.horizon_days)
    past = (pl.col("decision_ts") + horizon > pl.lit(LAST - timedelta(days=58))) & ~pl.col("censored")
    assert pl.concat([training, evaluation], how="diagonal_relaxed").filter(past).height > 0  # so they are

    # Without --until, loading's note is true: they are censored, and nothing more is said.
    notes = []
    training, evaluation, _, _ = split_decisions(book, PLAYBOOK, holdout_fraction=0.3, notes=notes)
    assert not [n for n in notes if n.startswith("the outcomes end")]
    assert pl.concat([training, evaluation], how="diagonal_relaxed").filter(past).height == 0


def test_a_date_given_as_observed_until_is_that_whole_day(tmp_path: Path) -> None:
    # As `nextmove evaluate --until 2025-03-30` reads it: up to the midnight after it.
    book = load_book(write_book(tmp_path / "book", touches_until=LAST), playbook=PLAYBOOK)
    day = (LAST - timedelta(days=1)).date()
    *_, instant = split_decisions(book, PLAYBOOK, observed_until=LAST, holdout_fraction=0.3)
    for given in (day, day.isoformat()):
        *_, until = split_decisions(book, PLAYBOOK, observed_until=given, holdout_fraction=0.3)
        assert until == instant == LAST
