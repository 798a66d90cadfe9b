"""Account features: ARR, tenure, days to renewal, the contract's text columns and every extra column by its type."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from nextmove.features.history import TS_DTYPE, US_PER_DAY
from nextmove.features.names import ACCOUNT_TEXT_COLUMNS, ExtraColumn, FeatureVocabulary


def _as_utc(column: str, dtype: pl.DataType | None) -> pl.Expr:
    """A date or datetime column as ``Datetime("us", "UTC")``; naive values are UTC, as in the contract."""
    expr = pl.col(column)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        expr = expr.cast(pl.Datetime("us", dtype.time_zone))
        if dtype.time_zone is None:
            return expr.dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC")
    return expr.cast(TS_DTYPE)


def _days_between(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    return (end - start).dt.total_microseconds().cast(pl.Float64) / US_PER_DAY


def arr(schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """``arr``: the account's annual recurring revenue (Float64; null when unknown)."""
    if "arr" not in schema:
        return pl.lit(None, dtype=pl.Float64).alias("arr")
    return pl.col("arr").cast(pl.Float64).alias("arr")


def tenure_days(as_of: pl.Expr, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """``tenure_days``: days from ``customer_since`` (else ``contract_start``) to the snapshot time."""
    starts = [_as_utc(c, schema[c]) for c in ("customer_since", "contract_start") if c in schema]
    if not starts:
        return pl.lit(None, dtype=pl.Float64).alias("tenure_days")
    return _days_between(pl.coalesce(starts), as_of).alias("tenure_days")


def days_to_renewal(as_of: pl.Expr, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """``days_to_renewal``: days from the snapshot time to the next renewal; negative once it has passed.

    The accounts table holds only the current term. For a snapshot before ``contract_start`` (a
    past decision in a training set), the renewal then pending is inferred by assuming earlier
    terms had the current term's length: it is the latest of ``contract_start − k · term`` that is
    not before the snapshot. Without this, every past decision would see the current term's
    renewal date, which can be a year off.
    """
    if "renewal_date" not in schema:
        return pl.lit(None, dtype=pl.Float64).alias("days_to_renewal")
    renewal = _as_utc("renewal_date", schema["renewal_date"])
    current = _days_between(as_of, renewal)
    if "contract_start" not in schema:
        return current.alias("days_to_renewal")
    start = _as_utc("contract_start", schema["contract_start"])
    term = _days_between(start, renewal)
    gap = _days_between(as_of, start)
    earlier = gap - (gap / term).floor() * term
    inferred = pl.when((gap > 0) & (term > 0)).then(earlier).otherwise(current)
    return inferred.alias("days_to_renewal")


def account_text(column: str, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """A contract text column (``segment``, ``owner`` …) as String, ready to be a category."""
    if column not in schema:
        return pl.lit(None, dtype=pl.String).alias(column)
    return pl.col(column).cast(pl.String).alias(column)


def extra_feature(extra: ExtraColumn, as_of: pl.Expr, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """An extra account column by its type: numbers → Float64, text → String, times → ``days_since_<col>``."""
    name = extra.feature
    if extra.source not in schema:
        # A vocabulary from another book of the same shape: keep the column, unknown.
        dtype = pl.String if extra.kind == "text" else pl.Float64
        return pl.lit(None, dtype=dtype).alias(name)
    if extra.kind == "number":
        return pl.col(extra.source).cast(pl.Float64).alias(name)
    if extra.kind == "text":
        return pl.col(extra.source).cast(pl.String).alias(name)
    return _days_between(_as_utc(extra.source, schema[extra.source]), as_of).alias(name)


def account_features(vocab: FeatureVocabulary, as_of: pl.Expr, schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """Every account feature, evaluated over the accounts table.

    Parameters
    ----------
    vocab
        Gives the extra columns and their stems.
    as_of
        The snapshot time: a literal, or the ``decision_ts`` column of a training grid.
    schema
        Schema of the accounts table (missing contract columns give null features).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> accounts = pl.DataFrame(
    ...     {"account_id": ["a"], "arr": [1200.0], "seats": [12]},
    ... )
    >>> vocab = FeatureVocabulary.build(accounts_schema=accounts.schema)
    >>> as_of = pl.lit(datetime(2024, 1, 1, tzinfo=UTC))
    >>> accounts.select(account_features(vocab, as_of, accounts.schema)).columns
    ['arr', 'tenure_days', 'days_to_renewal', 'segment', 'lifecycle_stage', 'industry', 'region', 'owner', 'seats']
    """
    exprs = [arr(schema), tenure_days(as_of, schema), days_to_renewal(as_of, schema)]
    exprs += [account_text(c, schema) for c in ACCOUNT_TEXT_COLUMNS]
    exprs += [extra_feature(e, as_of, schema) for e in vocab.extras]
    return exprs
