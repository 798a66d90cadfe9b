"""Turning a feature frame into the numeric matrix tree models read, with stable category codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import polars as pl

from nextmove.errors import ConfigError, NotFittedError
from nextmove.features import feature_schema

MAX_CATEGORIES = 64
"""Text features with more distinct values keep the most frequent ones; the rest share one code."""


@dataclass
class FeatureMatrix:
    """Learns which columns are features and how text columns map to integer codes, then builds matrices.

    ``fit`` takes a snapshot or training set; ``transform`` gives a float32 matrix with the same
    columns in the same order for any later frame (a column it lacks is all-missing, a category
    unseen at fit time is missing). Text columns become integer codes that LightGBM reads as
    categorical (``categorical_indices_``).

    Examples
    --------
    >>> frame = pl.DataFrame({"account_id": ["a", "b"], "arr": [1.0, None], "segment": ["SMB", "Ent"]})
    >>> fm = FeatureMatrix().fit(frame)
    >>> fm.columns_, fm.categorical_indices_
    (['arr', 'segment'], [1])
    >>> fm.transform(pl.DataFrame({"account_id": ["c"], "segment": ["Ent"]})).tolist()
    [[nan, 0.0]]
    """

    exclude: Sequence[str] = ()
    max_categories: int = MAX_CATEGORIES
    columns_: list[str] = field(default_factory=list, init=False)
    categories_: dict[str, list[str]] = field(default_factory=dict, init=False)
    categorical_indices_: list[int] = field(default_factory=list, init=False)

    def fit(self, frame: pl.DataFrame) -> Self:
        """Learn the feature columns and the category codes of the text ones."""
        kinds = feature_schema(frame)
        excluded = set(self.exclude)
        self.columns_ = [c for c in kinds if c not in excluded]
        if not self.columns_:
            raise ConfigError("no feature columns to learn from (every column is a key, label or excluded)")
        self.categories_ = {}
        for name in self.columns_:
            if kinds[name] == "text":
                counts = frame.get_column(name).cast(pl.String).drop_nulls().value_counts(sort=True)
                values = counts.get_column(name).head(self.max_categories).to_list()
                self.categories_[name] = sorted(str(v) for v in values)
        self.categorical_indices_ = [i for i, c in enumerate(self.columns_) if c in self.categories_]
        return self

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """The float32 matrix of ``frame`` in the fitted column order (NaN = missing)."""
        if not self.columns_:
            raise NotFittedError("this FeatureMatrix is not fitted yet: call fit(frame) first")
        exprs: list[pl.Expr] = []
        for name in self.columns_:
            if name not in frame.columns:
                exprs.append(pl.lit(None, pl.Float32).alias(name))
            elif name in self.categories_:
                codes = pl.Series(name, self.categories_[name], dtype=pl.String)
                exprs.append(
                    pl.col(name)
                    .cast(pl.String)
                    .replace_strict(codes, list(range(len(codes))), default=None)
                    .cast(pl.Float32)
                    .alias(name)
                )
            else:
                exprs.append(pl.col(name).cast(pl.Float32).alias(name))
        out: np.ndarray = frame.select(exprs).to_numpy().astype(np.float32, copy=False)
        return out
