"""The trees of a LightGBM model that split on one feature, each as a small model of its own.

An S-learner's contrast ``f(x, a) − f(x, none)`` only changes in the trees that split on the arm
feature: every other tree gives both arms the same leaf. In the effect model's fold models these
are about one tree in six. Each is cut out of the model's text with the few columns it reads, and
evaluated once per class of arms it tells apart (arms that take the same branch at each of its
splits on the arm): the contrast of every arm costs a fraction of a full prediction, and it is the
same number (up to the order of the sums).
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
    """One tree of a model that splits on ``feature``, as a model reading only the columns it uses."""

    feature: int
    """The column (of the full model's matrix) the tree splits on."""
    columns: NDArray[np.int64]
    """The full matrix's columns the sub-model reads, in its order (``feature`` among them)."""
    booster: lgb.Booster
    """The sub-model."""

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
        """The raw score of the tree on rows of :meth:`matrix`."""
        # One thread: the callers run one sub-model per thread, and OpenMP's start costs more than small
        # predictions take.
        out: F64 = np.asarray(self.booster.predict(xs, raw_score=True, num_threads=1), dtype=np.float64)
        return out


@dataclass(frozen=True)
class _Block:
    """One tree of a model's text, with the columns its splits read."""

    text: str
    features: list[int]
    span: tuple[int, int]
    """Where the ``split_feature`` values are in ``text``."""


def _split_model(booster: lgb.Booster, feature: int, num_iteration: int | None) -> tuple[str, list[_Block]]:
    """The model text's header, and its trees (among the first ``num_iteration``) that split on ``feature``."""
    text = booster.model_to_string(num_iteration=num_iteration or None)
    head, sep, rest = text.partition("\nTree=")
    trees_text, closing, _ = rest.partition(_END_OF_TREES)
    if not sep or not closing:
        raise ValueError("unexpected LightGBM model text: no trees section")
    kept = []
    for block in _TREE_HEADER.split("Tree=" + trees_text):
        block = block.strip("\n")
        match = _SPLIT_FEATURE.search(block)
        features = [int(f) for f in match.group(1).split()] if match else []
        if match and feature in features:
            kept.append(_Block(block, features, match.span(1)))
    return head, kept


def _model(head: str, block: _Block, feature: int) -> FeatureTrees:
    """A LightGBM model of the tree ``block`` alone, its columns renumbered to the ones it reads."""
    columns = sorted(set(block.features))
    renumber = {f: i for i, f in enumerate(columns)}
    split = " ".join(str(renumber[f]) for f in block.features)
    start, end = block.span
    tree = f"Tree=0\n{block.text[:start]}{split}{block.text[end:]}"
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
    model = "\n".join(lines) + "\n" + tree + "\n\n" + _END_OF_TREES
    return FeatureTrees(feature, np.array(columns, dtype=np.int64), lgb.Booster(model_str=model))


@dataclass(frozen=True)
class CodeTree:
    """One tree that splits on a code column (an S-learner's arm), and which codes it tells apart."""

    tree: FeatureTrees
    classes: NDArray[np.int64]
    """Per code ``0 … codes−1``: its class; codes of one class take the same branch at every split on the
    column, so the tree gives them the same value on every row."""
    representatives: NDArray[np.int64]
    """One code per class."""


def code_trees(booster: lgb.Booster, feature: int, codes: int, num_iteration: int | None = None) -> list[CodeTree]:
    """Every tree of ``booster`` that splits on the code column ``feature``, each alone with its classes of codes.

    A contrast ``f(x, a) − f(x, b)`` is the sum over these trees of the values of ``a``'s and ``b``'s
    classes. Evaluating each tree once per class, on the few columns it reads, costs a fraction of
    evaluating all of them once per code.
    """
    head, blocks = _split_model(booster, feature, num_iteration)
    out = []
    for block in blocks:
        branches = np.stack([_goes_left(block, node, codes) for node in _nodes(block, feature)], axis=1)
        _, representatives, classes = np.unique(branches, axis=0, return_index=True, return_inverse=True)
        out.append(
            CodeTree(
                _model(head, block, feature),
                np.asarray(classes, dtype=np.int64).reshape(-1),
                np.asarray(representatives, dtype=np.int64),
            )
        )
    return out


def _field(block: _Block, name: str) -> list[str]:
    match = re.search(rf"^{name}=(.*)$", block.text, re.MULTILINE)
    return match.group(1).split() if match else []


def _nodes(block: _Block, feature: int) -> list[int]:
    return [node for node, f in enumerate(block.features) if f == feature]


def _goes_left(block: _Block, node: int, codes: int) -> NDArray[np.bool_]:
    """For every code ``0 … codes−1``: whether the split at ``node`` sends it left."""
    decision = int(_field(block, "decision_type")[node])
    threshold = float(_field(block, "threshold")[node])
    values = np.arange(codes)
    if decision & 1:  # categorical: left when the code's bit is set in the split's bitset
        boundaries = [int(v) for v in _field(block, "cat_boundaries")]
        words = [int(v) for v in _field(block, "cat_threshold")]
        bitset = words[boundaries[int(threshold)] : boundaries[int(threshold) + 1]]
        word = values // 32
        bits = np.array(
            [(bitset[w] >> (v % 32)) & 1 if w < len(bitset) else 0 for v, w in zip(values, word, strict=True)]
        )
        out: NDArray[np.bool_] = bits.astype(bool)
        return out
    return values <= threshold  # numerical: codes are whole numbers, never missing
