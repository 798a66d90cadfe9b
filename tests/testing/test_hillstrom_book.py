"""A real book the lab did not generate: the Hillstrom e-mail test, validated, loaded and featurised."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from nextmove.features import build_training_set, compute_features
from nextmove.playbook.loader import parse_playbook
from nextmove.testing import HILLSTROM_PLAYBOOK, hillstrom_book, hillstrom_test_positions

DATA = Path(
    os.environ.get("NEXTMOVE_HILLSTROM", Path(__file__).resolve().parents[3] / "shared" / "data" / "hillstrom.csv")
)


@pytest.fixture(scope="module")
def book() -> object:
    assert DATA.is_file(), f"{DATA} is missing: the shared data folder must sit beside the repository"
    return hillstrom_book(DATA, rows=6000)


def test_hillstrom_book_matches_the_published_rates(book: object) -> None:
    touches = book.touches  # type: ignore[attr-defined]
    outcomes = book.outcomes  # type: ignore[attr-defined]
    assert touches.height == 6000
    assert set(touches.get_column("action_id").unique()) == {"mens_email", "womens_email", "none"}
    assert touches.get_column("propensity").to_list() == [pytest.approx(1 / 3)] * 6000
    visits = outcomes.filter(pl.col("kind") == "visit").join(touches, on="touch_id")
    rate = (
        visits.group_by("action_id").len().sort("action_id").get_column("len").to_numpy()
        / touches.group_by("action_id").len().sort("action_id").get_column("len").to_numpy()
    )
    mens, none, womens = rate.tolist()
    assert mens > womens > none  # the data README's ordering: 0.183 / 0.151 / 0.106
    assert 0.14 < mens < 0.23
    assert 0.07 < none < 0.14


def test_hillstrom_training_set_has_one_row_per_customer(book: object) -> None:
    playbook = parse_playbook(HILLSTROM_PLAYBOOK)
    train = build_training_set(book, playbook, outcomes_until=book.as_of)  # type: ignore[arg-type,attr-defined]
    assert train.height == 6000  # every decision is logged, none invented
    assert not train.get_column("censored").any()  # a finished experiment: every 14-day horizon is over
    assert {"recency", "history", "zip_code", "channel", "y_visit", "y_spend_value"} <= set(train.columns)
    snapshot = compute_features(book, book.as_of, playbook=playbook)  # type: ignore[arg-type,attr-defined]
    assert snapshot.height == 6000


def test_hillstrom_test_positions_are_the_fixed_half() -> None:
    test = hillstrom_test_positions()
    assert test.size == 32_000
    assert len(set(test.tolist())) == 32_000
