"""Outcome features: how often and how recently each outcome kind happened to the account."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from nextmove.features.history import AGE_US, days, within_days
from nextmove.features.names import OUTCOME_WINDOW_DAYS, FeatureVocabulary

HAS_OUTCOMES = "_has_outcomes"
"""True on accounts with any outcome row before the snapshot time."""

_KIND = pl.col("kind")


def outcome_count(kind: str, stem: str, window_days: int = OUTCOME_WINDOW_DAYS) -> pl.Expr:
    """``outcome_{k}_count_365d``: outcomes of ``kind`` in ``[t - 365 days, t)``."""
    selected = (_KIND.eq(kind)) & within_days(window_days)
    return selected.sum().cast(pl.Int64).alias(f"outcome_{stem}_count_{window_days}d")


def outcome_days_since(kind: str, stem: str) -> pl.Expr:
    """``outcome_{k}_days_since``: days since the latest outcome of ``kind``; null if none."""
    age = pl.when(_KIND.eq(kind)).then(pl.col(AGE_US)).min()
    return days(age).alias(f"outcome_{stem}_days_since")


def outcome_features(vocab: FeatureVocabulary) -> list[pl.Expr]:
    """Every outcome feature of the vocabulary, in snapshot order (plus the coverage flag)."""
    exprs = [pl.lit(True).alias(HAS_OUTCOMES)]
    for kind, stem in vocab.outcome_kinds.items():
        exprs += [outcome_count(kind, stem), outcome_days_since(kind, stem)]
    return exprs


def aggregate_outcomes(history: pl.LazyFrame, by: Sequence[str], vocab: FeatureVocabulary) -> pl.DataFrame:
    """One row per ``by`` key with any outcome before its snapshot time, with every outcome feature."""
    return history.group_by(list(by)).agg(outcome_features(vocab)).collect()
