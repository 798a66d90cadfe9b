"""The kind of each feature column (number or text), for checking eligibility expressions and models."""

from __future__ import annotations

from typing import Literal, TypeAlias

import polars as pl

from nextmove.errors import ConfigError
from nextmove.features.names import LABEL_PREFIX, TRAINING_DECISION_COLUMNS, TRAINING_OUTCOME_COLUMNS

FeatureKind: TypeAlias = Literal["number", "text"]
FeatureSchema: TypeAlias = dict[str, FeatureKind]
"""Feature name → ``number`` or ``text``; what ``nextmove.playbook.expr`` checks expressions against."""

NON_FEATURE_COLUMNS = frozenset(TRAINING_DECISION_COLUMNS + TRAINING_OUTCOME_COLUMNS)
"""Columns of a snapshot or training set that are keys, decisions or labels, not features."""


def feature_kind(dtype: pl.DataType) -> FeatureKind | None:
    """``number`` for numeric and boolean dtypes, ``text`` for string-like ones, else None."""
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "number"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "text"
    return None


def feature_schema(frame: pl.DataFrame | pl.LazyFrame | pl.Schema) -> FeatureSchema:
    """The kind of every feature column of a snapshot or training set.

    Key, decision and label columns (``account_id``, ``decision_ts``, ``action_id``,
    ``propensity`` …, ``y_…``, ``censored``, ``observed_days``) are left out; feature names
    never start with ``y_`` (see :func:`~nextmove.features.names.sanitize_name`).

    Raises
    ------
    ConfigError
        If a column is neither a number nor text (a snapshot never has one).

    Examples
    --------
    >>> frame = pl.DataFrame({"account_id": ["a"], "arr": [10.0], "segment": ["SMB"], "logins_count_7d": [3]})
    >>> feature_schema(frame)
    {'arr': 'number', 'segment': 'text', 'logins_count_7d': 'number'}
    """
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame
    if isinstance(schema, pl.DataFrame):
        schema = schema.schema
    kinds: FeatureSchema = {}
    for name, dtype in schema.items():
        if name in NON_FEATURE_COLUMNS or name.startswith(LABEL_PREFIX):
            continue
        kind = feature_kind(dtype)
        if kind is None:
            raise ConfigError(f"column {name!r} has type {dtype}, which is neither a number nor text")
        kinds[name] = kind
    return kinds
