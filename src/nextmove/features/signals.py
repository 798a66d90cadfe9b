"""Signal features: level, sum, count, trend and recency of every signal name over a few windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.features.history import ACCOUNT_ID, AGE_US, DECISION_TS, US_PER_DAY, days, in_previous_window, within_days
from nextmove.features.names import FeatureVocabulary

HAS_SIGNALS = "_has_signals"
"""True on accounts with any signal row before the snapshot time: their counts are 0, not null."""

_SEP = "|"  # stems never hold "|", so "stat|stem" cannot clash with a feature name

_VALUE = pl.col("value")
_AGE = pl.col(AGE_US)


# ---- Long form: one row per (account[, decision_ts], signal name) --------------------------
# These run inside one group_by; each stays a plain conditional sum/count/min so Polars
# keeps them on its fast aggregation path (a per-group filter would be ~10x slower).


CANCELLED = 1e-12
"""Two window means within this share of the earlier one are no change: a trend of exactly 0."""


_EXACT = pl.Decimal(38, 12)
"""Sums are taken in fixed point (12 decimals, up to 1e26): exact, so the same in every order."""
_LARGE = 1e20
"""Values up to this magnitude are summed exactly; the part of a value beyond it is summed as a float."""


def _sum(cond: pl.Expr) -> pl.Expr:
    """Sum of the values where ``cond`` holds, exact to 1e-12 and the same from call to call.

    Polars adds a group's values in an order that varies from call to call (threads), so float
    sums differed in their last bits: values that cancel (sentiment −0.3, +0.1, +0.2) left 1e-17 in
    one call and 0 in the next, and trends came out 1e-13 apart, enough for tree models to split
    the same book differently. Fixed-point sums are exact, hence the same in any order.
    """
    value = pl.when(cond).then(_VALUE)
    bounded = value.clip(-_LARGE, _LARGE)  # a million values of 1e20 still fit the fixed point
    exact = bounded.cast(_EXACT, strict=False).sum().cast(pl.Float64)
    return exact + (value - bounded).sum()  # 0 but for values beyond 1e20 (NaN and ±inf included)


def window_sum(window_days: int) -> pl.Expr:
    """Sum of values in ``[t - window_days, t)``, as ``sum_{w}d``."""
    return _sum(within_days(window_days)).alias(f"sum_{window_days}d")


def window_count(window_days: int) -> pl.Expr:
    """Number of values in ``[t - window_days, t)``, as ``count_{w}d``."""
    return (within_days(window_days) & _VALUE.is_not_null()).sum().alias(f"count_{window_days}d")


def previous_window_sum(window_days: int) -> pl.Expr:
    """Sum of values in ``[t - 2w, t - w)``, as ``prev_sum_{w}d``."""
    return _sum(in_previous_window(window_days)).alias(f"prev_sum_{window_days}d")


def previous_window_count(window_days: int) -> pl.Expr:
    """Number of values in ``[t - 2w, t - w)``, as ``prev_count_{w}d``."""
    cond = in_previous_window(window_days) & _VALUE.is_not_null()
    return cond.sum().alias(f"prev_count_{window_days}d")


def latest_value() -> pl.Expr:
    """Value of the latest row, as ``last``; if several rows share that time, the largest value."""
    return _VALUE.min_by(pl.struct(_AGE, -_VALUE)).alias("last")


def latest_age() -> pl.Expr:
    """Age in microseconds of the latest row, as ``age_min``."""
    return _AGE.min().alias("age_min")


def signal_aggregations(windows_days: Sequence[int]) -> list[pl.Expr]:
    """The long-form aggregations, evaluated in one group_by over (account, signal name)."""
    exprs = [latest_value(), latest_age()]
    for w in windows_days:
        exprs += [window_sum(w), window_count(w), previous_window_sum(w), previous_window_count(w)]
    return exprs


def _stats(windows_days: Sequence[int]) -> list[str]:
    return ["last", "age_min"] + [f"{s}_{w}d" for w in windows_days for s in ("sum", "count", "prev_sum", "prev_count")]


def aggregate_signals(history: pl.LazyFrame, by: Sequence[str], vocab: FeatureVocabulary) -> pl.DataFrame:
    """Aggregate point-in-time signal rows and widen them to one row per ``by`` key.

    The result has the ``by`` columns, ``_has_signals``, and one ``{stat}|{stem}`` column per
    statistic and signal of the vocabulary (signals absent from ``history`` are null). The
    feature expressions below turn these into the named features.
    """
    by = list(by)
    long = (
        history.group_by([*by, "name"])
        .agg(signal_aggregations(vocab.windows_days))
        # Names outside a given vocabulary are dropped here, after the group_by has made the
        # frame small, rather than by filtering every row.
        .filter(pl.col("name").is_in(list(vocab.signals)))
        .collect()
    )
    return _widen(long, by, vocab)


def _widen(long: pl.DataFrame, by: list[str], vocab: FeatureVocabulary) -> pl.DataFrame:
    """One row per ``by`` key from the long form (one row per key and signal name)."""
    stats = _stats(vocab.windows_days)
    # Widen with one join per signal: four times faster than DataFrame.pivot on a training set.
    wide = long.select(by).unique()
    for name, stem in vocab.signals.items():
        part = long.filter(pl.col("name") == name).select(
            *by, *[pl.col(stat).alias(f"{stat}{_SEP}{stem}") for stat in stats]
        )
        wide = wide.join(part, on=by, how="left")
    return wide.with_columns(pl.lit(True).alias(HAS_SIGNALS))


_CUM_COUNT, _CUM_SUM, _SERIES = "_cum_count", "_cum_sum", "_series"
LOOKUP_ROWS_PER_BATCH = 2_000_000
"""Signal rows plus (decision time, signal) pairs of the accounts looked up in one batch: bounds memory."""


def aggregate_signals_at(signals: pl.DataFrame, keys: pl.DataFrame, vocab: FeatureVocabulary) -> pl.DataFrame | None:
    """:func:`aggregate_signals` of the point-in-time history at many ``keys``, from running totals.

    The history at many decision times repeats every earlier row of an account once per later
    decision (the lab's training set of 160,000 decisions joins about 30 million rows). Here each
    account's rows of each signal are summed once into running counts and exact running sums by
    time; a window's sum is the running sum just before its end minus the one just before its
    start, each found by a binary search. The sums are the fixed-point sums
    :func:`aggregate_signals` makes (exact, so their differences are too): the result is equal to
    it, value for value. Accounts go in batches of about ``LOOKUP_ROWS_PER_BATCH`` signal rows and
    (decision time, signal) pairs, which bounds the memory.

    Parameters
    ----------
    signals
        The book's signal rows (``account_id, ts, name, value``), already cut at ``as_of``.
    keys
        ``account_id, decision_ts``: each a snapshot time of its account.
    vocab
        The signal names and windows.

    Returns
    -------
    polars.DataFrame or None
        As :func:`aggregate_signals` with ``by = (account_id, decision_ts)``; None when a value is
        missing, not finite or beyond ±1e20 (rows the contract rejects, which only the row-wise
        aggregation handles as it always has), or when no key's account has a signal row (the
        row-wise aggregation then has nothing to join either).
    """
    by = [ACCOUNT_ID, DECISION_TS]
    rows = signals.lazy().select(ACCOUNT_ID, "ts", "name", "value").filter(pl.col("name").is_in(list(vocab.signals)))
    odd = rows.select((_VALUE.is_null() | _VALUE.is_nan() | (_VALUE.abs() > _LARGE)).any()).collect().item()
    if odd:
        return None
    # Accounts in batches of bounded size (their signal rows, and their keys times their signals).
    sizes = (
        rows.group_by(ACCOUNT_ID)
        .agg(pl.len().alias("_rows"), pl.col("name").n_unique().alias("_names"))
        .join(keys.lazy().group_by(ACCOUNT_ID).len("_keys"), on=ACCOUNT_ID)
        .sort(ACCOUNT_ID)
        .select(ACCOUNT_ID, (pl.col("_rows") + pl.col("_keys") * pl.col("_names")).cum_sum().alias("_size"))
        .with_columns(pl.col("_size").floordiv(LOOKUP_ROWS_PER_BATCH).alias("_batch"))
        .collect()
    )
    parts = [
        _lookups(rows.join(batch.lazy().select(ACCOUNT_ID), on=ACCOUNT_ID).collect(), keys, vocab)
        for batch in sizes.partition_by("_batch", maintain_order=True)
    ]
    if not parts:
        return None
    return _widen(pl.concat(parts), by, vocab)


def _lookups(rows: pl.DataFrame, keys: pl.DataFrame, vocab: FeatureVocabulary) -> pl.DataFrame:
    """The long form of :func:`aggregate_signals_at` for the accounts of ``rows`` (their keys among ``keys``)."""
    by = [ACCOUNT_ID, DECISION_TS]
    # Each account's signals as whole-number series; running totals over each series' distinct times
    # (the rows at one time are one step: a lookup reads all of them or none).
    series = rows.select(ACCOUNT_ID, "name").unique().with_row_index(_SERIES)
    steps = (
        rows.join(series, on=[ACCOUNT_ID, "name"])
        .group_by(_SERIES, "ts")
        .agg(
            pl.len().alias("_n"),
            _VALUE.cast(_EXACT).sum().alias("_s"),
            _VALUE.max().alias("last"),  # the latest row's value; at a tie, the largest (latest_value)
        )
        .sort(_SERIES, "ts")
        .select(
            _SERIES,
            "ts",
            "last",
            pl.col("_n").cum_sum().over(_SERIES).alias(_CUM_COUNT),
            pl.col("_s").cum_sum().over(_SERIES).alias(_CUM_SUM),
        )
    )
    # Every key with every series of its account. The step just before a time is found by a binary
    # search on (series, rank of the time among the steps' distinct times), one key per step; pairs in
    # the same order make the searches and the reads run forward through memory.
    step_series = steps.get_column(_SERIES).to_numpy().astype(np.int64)
    step_us = steps.get_column("ts").dt.epoch("us").to_numpy()
    times = np.unique(step_us)
    step_key = (step_series << 32) | np.searchsorted(times, step_us)
    pairs = keys.select(by).join(series, on=ACCOUNT_ID).sort(_SERIES, DECISION_TS)
    pair_series = pairs.get_column(_SERIES).to_numpy().astype(np.int64)
    pair_us = pairs.get_column(DECISION_TS).dt.epoch("us").to_numpy()

    def before(offset_days: int) -> NDArray[np.int64]:
        """Per pair: the row of ``steps`` last strictly before ``decision_ts − offset`` (−1: none)."""
        rank = np.searchsorted(times, pair_us - offset_days * US_PER_DAY)  # distinct step times before it
        at = np.searchsorted(step_key, (pair_series << 32) | rank) - 1
        found = (at >= 0) & (step_series[np.maximum(at, 0)] == pair_series)
        return np.where(found, at, -1)

    now = before(0)
    seen = np.flatnonzero(now >= 0)  # the pairs with a row of the series before the key's time
    pairs, pair_series, pair_us = pairs[seen], pair_series[seen], pair_us[seen]
    at = pl.Series(now[seen], dtype=pl.UInt32)
    read = ("ts", "last", _CUM_COUNT, _CUM_SUM)
    part = pairs.select(*by, "name").with_columns(steps.get_column(c).gather(at) for c in read)
    for offset in sorted({d for w in vocab.windows_days for d in (w, 2 * w)}):
        earlier = before(offset)
        index, none = pl.Series(np.maximum(earlier, 0), dtype=pl.UInt32), pl.Series(earlier < 0)
        part = part.with_columns(
            pl.when(none).then(0).otherwise(steps.get_column(c).gather(index)).alias(f"{c}{offset}")
            for c in (_CUM_COUNT, _CUM_SUM)
        )
    return part.select(*by, "name", "last", *_window_stats(vocab.windows_days))


def _window_stats(windows_days: Sequence[int]) -> list[pl.Expr]:
    """The long form's statistics from running totals at the key's time and ``w``, ``2w`` days before it."""

    def window(start: int, end: int | None, total: str) -> pl.Expr:
        late = pl.col(total if end is None else f"{total}{end}")
        return late - pl.col(f"{total}{start}")

    stats: list[pl.Expr] = [(pl.col(DECISION_TS) - pl.col("ts")).dt.total_microseconds().alias("age_min")]
    for w in windows_days:
        stats += [
            window(w, None, _CUM_SUM).cast(pl.Float64).alias(f"sum_{w}d"),
            window(w, None, _CUM_COUNT).alias(f"count_{w}d"),
            window(2 * w, w, _CUM_SUM).cast(pl.Float64).alias(f"prev_sum_{w}d"),
            window(2 * w, w, _CUM_COUNT).alias(f"prev_count_{w}d"),
        ]
    return stats


# ---- Wide form: one named feature per expression, over the output of aggregate_signals -----
# (with signal_means added: the trends read the window means by name)


def _stat(stat: str, stem: str) -> pl.Expr:
    return pl.col(f"{stat}{_SEP}{stem}")


def _covered() -> pl.Expr:
    return pl.col(HAS_SIGNALS).fill_null(False)


def _count(stem: str, window_days: int, *, previous: bool = False) -> pl.Expr:
    prefix = "prev_" if previous else ""
    return _stat(f"{prefix}count_{window_days}d", stem).fill_null(0)


def _mean(stem: str, window_days: int, *, previous: bool = False) -> pl.Expr:
    prefix = "prev_" if previous else ""
    n = _count(stem, window_days, previous=previous)
    total = _stat(f"{prefix}sum_{window_days}d", stem)
    return pl.when(n > 0).then(total / n)


def _mean_read(stem: str, window_days: int, *, previous: bool = False) -> pl.Expr:
    """The window mean as :func:`signal_means` made it (a column of the frame)."""
    return _stat(f"{'prev_' if previous else ''}mean_{window_days}d", stem)


def signal_means(vocab: FeatureVocabulary) -> list[pl.Expr]:
    """The window means the trends read, of every signal: over ``[t - w, t)`` and ``[t - 2w, t - w)``.

    Added to :func:`aggregate_signals`' output (named as its statistics, ``mean_{w}d|stem`` and
    ``prev_mean_{w}d|stem``) before :func:`signal_features` and :func:`role_features` are
    selected: a trend reads its two means by name instead of repeating their expressions (six
    times in a trend, and again in each role trend). The values are the same; Polars' planning of
    the select, whose cost grows with the expressions' size whatever the rows, falls from about
    35 ms to about 12 ms, most of the features of one account (an online decision rescored with
    fresh signals).
    """
    return [
        _mean(stem, w, previous=previous).alias(f"{'prev_' if previous else ''}mean_{w}d{_SEP}{stem}")
        for stem in vocab.signals.values()
        for w in vocab.windows_days
        for previous in (False, True)
    ]


def signal_last(stem: str) -> pl.Expr:
    """``{s}_last``: the latest value before ``t``; null if the signal was never seen."""
    return _stat("last", stem).cast(pl.Float64).alias(f"{stem}_last")


def signal_days_since_last(stem: str) -> pl.Expr:
    """``{s}_days_since_last``: days from the latest value to ``t``; null if never seen."""
    return days(_stat("age_min", stem)).alias(f"{stem}_days_since_last")


def signal_count(stem: str, window_days: int) -> pl.Expr:
    """``{s}_count_{w}d``: values in ``[t - w, t)``; 0 if none but the account has signals, else null."""
    count = _count(stem, window_days).cast(pl.Int64)
    return pl.when(_covered()).then(count).alias(f"{stem}_count_{window_days}d")


def signal_sum(stem: str, window_days: int) -> pl.Expr:
    """``{s}_sum_{w}d``: sum of values in ``[t - w, t)``; null when there are none."""
    total = _stat(f"sum_{window_days}d", stem)
    return pl.when(_count(stem, window_days) > 0).then(total).alias(f"{stem}_sum_{window_days}d")


def signal_mean(stem: str, window_days: int) -> pl.Expr:
    """``{s}_mean_{w}d``: mean of values in ``[t - w, t)``; null when there are none."""
    return _mean_read(stem, window_days).alias(f"{stem}_mean_{window_days}d")


def signal_trend(stem: str, window_days: int) -> pl.Expr:
    """``{s}_trend_{w}d``: relative change of the mean, ``(mean_w - mean_prev) / |mean_prev|``.

    ``mean_prev`` is the mean over ``[t - 2w, t - w)``. Null when either mean is missing or
    the previous mean is 0 (a relative change from 0 is undefined). Two means equal to float
    error (a flat signal, summed in varying order) are no change: exactly 0.
    """
    now, before = _mean_read(stem, window_days), _mean_read(stem, window_days, previous=True)
    change = now - before
    flat = change.abs() <= before.abs() * CANCELLED
    trend = pl.when(before != 0).then(pl.when(flat).then(0.0).otherwise(change / before.abs()))
    return trend.alias(f"{stem}_trend_{window_days}d")


def signal_features(vocab: FeatureVocabulary) -> list[pl.Expr]:
    """Every signal feature of the vocabulary, in snapshot order."""
    exprs: list[pl.Expr] = []
    for stem in vocab.signals.values():
        exprs += [signal_last(stem), signal_days_since_last(stem)]
        for w in vocab.windows_days:
            exprs += [
                signal_mean(stem, w),
                signal_sum(stem, w),
                signal_count(stem, w),
                signal_trend(stem, w),
            ]
    return exprs


def role_trend(role: str, stems: Sequence[str], window_days: int) -> pl.Expr:
    """``role_{role}_trend_{w}d``: mean of the role's signal trends, each clipped to [-1, 1].

    Clipping keeps one signal rising from almost nothing from drowning the others; signals
    without a trend are left out; null when none has one.
    """
    trends = [signal_trend(s, window_days).clip(-1.0, 1.0) for s in stems]
    return pl.mean_horizontal(trends).alias(f"role_{role}_trend_{window_days}d")


def role_features(vocab: FeatureVocabulary) -> list[pl.Expr]:
    """Every role feature of the vocabulary (roles come from the playbook's ``signal_roles``)."""
    return [role_trend(role, stems, w) for role, stems in vocab.roles.items() for w in vocab.windows_days]
