"""The trees of a LightGBM model that split on one feature: the same contrast as the full model."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from nextmove.models._trees import code_trees

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
def test_code_trees_one_per_tree_with_classes_give_the_full_models_contrast(num_iteration: int | None) -> None:
    booster, x = _s_learner(0, arm_effect=1.5)
    trees = code_trees(booster, _COLUMNS, 5, num_iteration)
    assert trees
    assert all(t.tree.booster is not None and t.tree.booster.num_trees() == 1 for t in trees)
    assert any(len(t.representatives) < 5 for t in trees)  # some trees tell only some arms apart
    assert all(len(t.tree.columns) < _COLUMNS for t in trees)  # each reads a few columns, renumbered

    def full(arm: int) -> np.ndarray:
        score = booster.predict(np.column_stack([x, np.full(len(x), arm)]), raw_score=True, num_iteration=num_iteration)
        return np.asarray(score)

    values = []
    for t in trees:
        xs = t.tree.matrix(x, 0.0)
        per_class = []
        for code in t.representatives:
            xs[:, t.tree.position] = code
            per_class.append(t.tree.predict(xs))
        values.append((t.classes, np.array(per_class)))
    for arm in range(1, 5):
        contrast = sum(v[classes[arm]] - v[classes[0]] for classes, v in values)
        np.testing.assert_allclose(contrast, full(arm) - full(0), atol=1e-10)


def test_code_trees_of_a_model_that_never_splits_on_the_column_are_none() -> None:
    booster, _ = _s_learner(1, arm_effect=1.5, arms=1)  # one arm: a constant column, never split on
    assert code_trees(booster, _COLUMNS, 1) == []
