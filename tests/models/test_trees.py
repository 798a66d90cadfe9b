"""The trees of a LightGBM model that split on one feature: the same contrast as the full model."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from nextmove.models._trees import feature_trees

_COLUMNS = 60


def _s_learner(seed: int, arm_effect: float, arms: int = 5) -> tuple[lgb.Booster, np.ndarray]:
    """A binary S-learner on 60 columns (one categorical, some NaN) and an arm column last."""
    rng = np.random.default_rng(seed)
    n = 6000
    x = rng.normal(size=(n, _COLUMNS)).astype(np.float32)
    x[:, 3] = rng.integers(0, 4, n)  # a categorical column besides the arm
    x[rng.random((n, _COLUMNS)) < 0.05] = np.nan
    x[:, 3] = np.nan_to_num(x[:, 3])
    arm = rng.integers(0, arms, n).astype(np.float32)
    logit = 0.8 * np.nan_to_num(x[:, 0]) - 0.5 * (x[:, 3] == 2) + arm_effect * (arm == 2) * np.nan_to_num(x[:, 1])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    xa = np.column_stack([x, arm]).astype(np.float32)
    params = {"objective": "binary", "num_leaves": 7, "min_child_samples": 20, "verbose": -1, "num_threads": 1}
    data = lgb.Dataset(xa, y, categorical_feature=[3, _COLUMNS], free_raw_data=False)
    return lgb.train(params, data, num_boost_round=40), x


@pytest.mark.parametrize("num_iteration", [None, 17])
def test_feature_trees_give_the_full_models_contrast(num_iteration: int | None) -> None:
    booster, x = _s_learner(0, arm_effect=1.5)
    trees = feature_trees(booster, _COLUMNS, num_iteration)
    assert trees.booster is not None
    assert 0 < trees.booster.num_trees() < (num_iteration or 40)
    assert _COLUMNS in trees.columns
    assert len(trees.columns) < _COLUMNS  # the kept trees read a few columns: they are renumbered
    xs = trees.matrix(x, 0.0)

    def full(arm: int) -> np.ndarray:
        score = booster.predict(np.column_stack([x, np.full(len(x), arm)]), raw_score=True, num_iteration=num_iteration)
        return np.asarray(score)

    none_full, none_sub = full(0), trees.predict(xs)
    for arm in range(1, 5):
        xs[:, trees.position] = arm
        np.testing.assert_allclose(trees.predict(xs) - none_sub, full(arm) - none_full, atol=1e-10)
    # The arm matters in this model: the contrast is not zero everywhere.
    xs[:, trees.position] = 2
    assert np.abs(trees.predict(xs) - none_sub).max() > 0.1


def test_feature_trees_of_a_model_that_never_splits_on_the_feature_are_empty() -> None:
    booster, x = _s_learner(1, arm_effect=1.5, arms=1)  # one arm: a constant column, never split on
    trees = feature_trees(booster, _COLUMNS)
    assert trees.booster is None
    np.testing.assert_array_equal(trees.predict(trees.matrix(x, 1.0)), np.zeros(len(x)))
