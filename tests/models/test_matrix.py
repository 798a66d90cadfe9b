"""Tests of FeatureMatrix: stable columns, category codes, unseen values and missing columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError, NotFittedError
from nextmove.models.matrix import FeatureMatrix


def test_feature_matrix_excludes_keys_labels_and_listed_columns() -> None:
    frame = pl.DataFrame(
        {"account_id": ["a"], "decision_ts": [None], "y_churn": [1], "arr": [5.0], "owner": ["x"], "seats": [3]}
    )
    fm = FeatureMatrix(exclude=["owner"]).fit(frame)
    assert fm.columns_ == ["arr", "seats"]


def test_feature_matrix_codes_are_stable_and_unseen_is_missing() -> None:
    train = pl.DataFrame({"account_id": ["a", "b", "c"], "segment": ["SMB", "Ent", "SMB"]})
    fm = FeatureMatrix().fit(train)
    later = pl.DataFrame({"account_id": ["d", "e"], "segment": ["Ent", "Mid"]})
    got = fm.transform(later)
    assert got[0, 0] == 0.0  # "Ent" sorts first
    assert np.isnan(got[1, 0])


def test_feature_matrix_caps_categories() -> None:
    train = pl.DataFrame({"account_id": [str(i) for i in range(100)], "city": [f"c{i % 10}" for i in range(100)]})
    fm = FeatureMatrix(max_categories=3).fit(train)
    assert len(fm.categories_["city"]) == 3


def test_feature_matrix_errors() -> None:
    with pytest.raises(NotFittedError):
        FeatureMatrix().transform(pl.DataFrame({"a": [1]}))
    with pytest.raises(ConfigError, match="no feature columns"):
        FeatureMatrix().fit(pl.DataFrame({"account_id": ["a"]}))
