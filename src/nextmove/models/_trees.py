"""The trees of a LightGBM model that split on one feature, as a small model of their own.

An S-learner's contrast ``f(x, a) − f(x, none)`` only changes in the trees that split on the arm
feature: every other tree gives both arms the same leaf. In the effect model's fold models these
are about one tree in six, and they read a fraction of the columns, so the contrast of every arm
costs a fraction of a full prediction — and it is the same number (up to the order of the sums).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from nextmove.models._crossfit import F64

_TREE_HEADER = re.compile(r"^Tree=\d+$", re.MULTILINE)
_SPLIT_FEATURE = re.compile(r"^split_feature=(.*)$", re.MULTILINE)
_END_OF_TREES = "\nend of trees\n"


@dataclass(frozen=True)
class FeatureTrees:
    """The trees of a model that split on ``feature``, reading only the columns they use."""

    feature: int
    """The column (of the full model's matrix) the trees split on."""
    columns: NDArray[np.int64]
    """The full matrix's columns the sub-model reads, in its order (``feature`` among them)."""
    booster: lgb.Booster | None
    """The sub-model; None when no tree splits on ``feature``."""

    @property
    def position(self) -> int:
        """Where ``feature`` is among the sub-model's columns."""
        return int(np.flatnonzero(self.columns == self.feature)[0])

    def matrix(self, x: NDArray[np.float32], value: float) -> NDArray[np.float32]:
        """The sub-model's columns of ``x`` with column ``feature`` set to ``value``.

        ``x`` may end just before ``feature`` (the arm column of an S-learner is appended last).
        The result is a new array: set its ``position`` column to other values freely.
        """
        out = np.empty((x.shape[0], len(self.columns)), dtype=np.float32)
        others = self.columns != self.feature
        out[:, others] = x[:, self.columns[others]]
        out[:, self.position] = value
        return out

    def predict(self, xs: NDArray[np.float32]) -> F64:
        """The raw score of the trees on rows of :meth:`matrix` (zeros when there are none)."""
        if self.booster is None:
            return np.zeros(xs.shape[0])
        # One thread: the callers run one sub-model per thread, and OpenMP's start costs more than small
        # predictions take.
        out: F64 = np.asarray(self.booster.predict(xs, raw_score=True, num_threads=1), dtype=np.float64)
        return out


def feature_trees(booster: lgb.Booster, feature: int, num_iteration: int | None = None) -> FeatureTrees:
    """The trees among the first ``num_iteration`` of ``booster`` that split on column ``feature``.

    The sub-model is the booster's own text with the other trees left out and the columns renumbered
    to the ones the kept trees read; LightGBM loads it like any saved model.
    """
    text = booster.model_to_string(num_iteration=num_iteration or None)
    head, sep, rest = text.partition("\nTree=")
    trees_text, closing, _ = rest.partition(_END_OF_TREES)
    if not sep or not closing:
        raise ValueError("unexpected LightGBM model text: no trees section")
    blocks = [block.strip("\n") for block in _TREE_HEADER.split("Tree=" + trees_text) if block.strip()]
    kept: list[tuple[str, list[int], tuple[int, int]]] = []
    for block in blocks:
        match = _SPLIT_FEATURE.search(block)
        features = [int(f) for f in match.group(1).split()] if match else []
        if match and feature in features:
            kept.append((block, features, match.span(1)))
    if not kept:
        return FeatureTrees(feature, np.array([feature], dtype=np.int64), None)
    columns = sorted({f for _, features, _ in kept for f in features})
    renumber = {f: i for i, f in enumerate(columns)}
    trees = []
    for number, (block, features, (start, end)) in enumerate(kept):
        split = " ".join(str(renumber[f]) for f in features)
        trees.append(f"Tree={number}\n{block[:start]}{split}{block[end:]}")
    lines = []
    for line in head.split("\n"):
        key, _, value = line.partition("=")
        if key == "max_feature_idx":
            line = f"max_feature_idx={len(columns) - 1}"
        elif key in ("feature_names", "feature_infos"):
            items = value.split(" ")
            line = f"{key}=" + " ".join(items[f] for f in columns)
        elif key == "tree_sizes":
            continue  # the sizes of the full model's trees; without it LightGBM reads the trees in turn
        lines.append(line)
    model = "\n".join(lines) + "\n" + "\n\n".join(trees) + "\n\n" + _END_OF_TREES
    return FeatureTrees(feature, np.array(columns, dtype=np.int64), lgb.Booster(model_str=model))
