"""Tests of matching two runs' segments: renumbering is not moving; movers, new and gone accounts are counted."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.errors import ConfigError
from nextmove.segment import match_segments


def _frame(labels: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"account_id": list(labels), "segment_id": list(labels.values())})


def test_renumbered_segments_are_matched_and_nobody_moves() -> None:
    before = _frame({"a": 0, "b": 0, "c": 1, "d": 1, "e": 2})
    after = _frame({"a": 2, "b": 2, "c": 0, "d": 0, "e": 1})
    moves = match_segments(before, after)
    assert (moves.accounts, moves.moved, moves.new, moves.gone) == (5, 0, 0, 0)
    assert moves.matches == {0: 2, 1: 0, 2: 1}
    assert moves.flows == []


def test_movers_new_and_gone_accounts_are_counted() -> None:
    before = _frame({"a": 0, "b": 0, "c": 0, "d": 1, "e": 1, "x": 1})
    after = _frame({"a": 5, "b": 5, "c": 7, "d": 7, "e": 7, "y": 5, "z": 7})
    moves = match_segments(before, after)
    assert moves.matches == {0: 5, 1: 7}
    assert (moves.accounts, moves.moved, moves.new, moves.gone) == (5, 1, 2, 1)
    assert moves.flows == [(0, 7, 1)]
    assert moves.moved_share == pytest.approx(0.2)
    assert json.loads(json.dumps(moves.to_dict()))["flows"] == [{"from": 0, "to": 7, "accounts": 1}]


def test_a_split_segment_counts_the_smaller_part_as_moved() -> None:
    before = _frame({f"a{i}": 0 for i in range(10)})
    after = _frame({f"a{i}": 0 if i < 7 else 1 for i in range(10)})
    moves = match_segments(before, after)
    assert moves.matches == {0: 0}
    assert moves.moved == 3


def test_no_common_accounts() -> None:
    moves = match_segments(_frame({"a": 0}), _frame({"b": 0}))
    assert (moves.accounts, moves.moved, moves.new, moves.gone, moves.moved_share) == (0, 0, 1, 1, 0.0)


def test_match_segments_errors() -> None:
    good = _frame({"a": 0})
    with pytest.raises(ConfigError, match="segment_id"):
        match_segments(pl.DataFrame({"account_id": ["a"]}), good)
    with pytest.raises(ConfigError, match="more than once"):
        match_segments(good, pl.DataFrame({"account_id": ["a", "a"], "segment_id": [0, 1]}))
    with pytest.raises(ConfigError, match="without a segment_id"):
        match_segments(
            good, pl.DataFrame({"account_id": ["a"], "segment_id": [None]}, schema_overrides={"segment_id": pl.Int64})
        )


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=60),
    perm_seed=st.integers(0, 1000),
    moved=st.integers(0, 60),
)
def test_relabelling_never_counts_as_moving(labels: list[int], perm_seed: int, moved: int) -> None:
    ids = [f"a{i}" for i in range(len(labels))]
    before = pl.DataFrame({"account_id": ids, "segment_id": labels})
    perm = np.random.default_rng(perm_seed).permutation(10)
    after = pl.DataFrame({"account_id": ids, "segment_id": [int(perm[x]) for x in labels]})
    assert match_segments(before, after).moved == 0
    # Moving m accounts to a brand-new segment moves at most m (the matching may do better).
    m = min(moved, len(labels))
    shifted = after.with_columns(
        pl.when(pl.int_range(pl.len()) < m).then(pl.lit(99)).otherwise(pl.col("segment_id")).alias("segment_id")
    )
    result = match_segments(before, shifted)
    assert result.moved <= m
    assert result.accounts == len(labels)
