"""Point-in-time snapshots: one row of features per account at a decision time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import polars as pl

from nextmove.book import Book
from nextmove.errors import ConfigError
from nextmove.features.account import account_features
from nextmove.features.history import ACCOUNT_ID, DECISION_TS, History, point_in_time, to_utc
from nextmove.features.names import DEFAULT_WINDOWS_DAYS, FeatureVocabulary, validate_windows
from nextmove.features.outcomes import aggregate_outcomes, outcome_features
from nextmove.features.signals import aggregate_signals, role_features, signal_features, signal_means
from nextmove.features.touches import aggregate_touches, touch_features
from nextmove.playbook import Playbook


def compute_features(
    book: Book,
    as_of: datetime | date,
    *,
    playbook: Playbook | None = None,
    windows_days: Sequence[int] | None = None,
    vocabulary: FeatureVocabulary | None = None,
) -> pl.DataFrame:
    """One row of features per account of ``book.accounts``, computed from rows dated before ``as_of``.

    Parameters
    ----------
    book
        The book of business. Every account gets a row, with or without history.
    as_of
        The snapshot time. Signals, touches and outcomes with ``ts >= as_of`` are never read.
        Naive datetimes are UTC; a date means midnight UTC.
    playbook
        Optional: adds per-team touch features, touch and outcome features for every catalog
        action and objective (even if never seen), and role-level trends from ``signal_roles``.
    windows_days
        Windows of the signal features (default ``(7, 28, 90)``); the longest is also the
        window of the per-action and per-team touch counts.
    vocabulary
        Fix the columns, e.g. to those of a training set (:class:`FeatureVocabulary`). By
        default it is built from the names seen before ``as_of`` (and the playbook's).

    Returns
    -------
    polars.DataFrame
        ``account_id`` then the features, in ``book.accounts`` order. Numbers are Float64
        (counts Int64), text is String; see ``docs/features.md`` for every family.

    Raises
    ------
    ConfigError
        If ``as_of`` is not a date or datetime, or ``windows_days`` is not a set of positive
        whole numbers of days, or disagrees with ``vocabulary``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from nextmove.book import empty_table
    >>> accounts = pl.DataFrame({"account_id": ["a", "b"], "arr": [1000.0, 5000.0]})
    >>> signals = pl.DataFrame(
    ...     {"account_id": ["a", "a", "a"],
    ...      "ts": [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 8, 15)],
    ...      "name": ["Active Users"] * 3, "value": [10.0, 12.0, 99.0]},
    ... )
    >>> book = Book(accounts, signals, empty_table("touches"), empty_table("outcomes"))
    >>> snap = compute_features(book, datetime(2024, 1, 15, tzinfo=UTC), windows_days=(7,))
    >>> snap.select("account_id", "active_users_last", "active_users_count_7d", "active_users_trend_7d").rows()
    [('a', 12.0, 1, 0.2), ('b', None, None, None)]
    """
    when = to_utc(as_of)
    history = point_in_time(book, when)
    if vocabulary is None:
        vocabulary = vocabulary_of(
            book.accounts.schema,
            history,
            playbook=playbook,
            windows_days=DEFAULT_WINDOWS_DAYS if windows_days is None else windows_days,
        )
    elif windows_days is not None and validate_windows(windows_days) != vocabulary.windows_days:
        raise ConfigError(
            f"windows_days {tuple(windows_days)!r} differ from the vocabulary's "
            f"{vocabulary.windows_days!r}; pass one or the other"
        )
    return snapshot(book.accounts, history, vocabulary, as_of=when)


def vocabulary_of(
    accounts_schema: pl.Schema,
    history: History,
    *,
    playbook: Playbook | None = None,
    windows_days: Sequence[int] = DEFAULT_WINDOWS_DAYS,
) -> FeatureVocabulary:
    """The vocabulary of the names present in a point-in-time history (plus the playbook's)."""
    names, actions, kinds = pl.collect_all(
        [
            history.signals.select(pl.col("name").unique()),
            history.touches.select(pl.col("action_id").unique()),
            history.outcomes.select(pl.col("kind").unique()),
        ]
    )
    return FeatureVocabulary.build(
        accounts_schema=accounts_schema,
        signal_names=names.get_column("name").drop_nulls().to_list(),
        action_ids=actions.get_column("action_id").drop_nulls().to_list(),
        outcome_kinds=kinds.get_column("kind").drop_nulls().to_list(),
        playbook=playbook,
        windows_days=windows_days,
    )


_AT = "__nextmove_snapshot_time__"


def _names(exprs: Sequence[pl.Expr]) -> list[str]:
    return [e.meta.output_name() for e in exprs if not e.meta.output_name().startswith("_")]


SIGNIFICANT_DIGITS = 12
"""Float features are rounded to this many significant digits (far below any measurement's precision)."""


def snapshot(
    accounts: pl.DataFrame,
    history: History,
    vocab: FeatureVocabulary,
    *,
    as_of: datetime | None = None,
    keys: pl.DataFrame | None = None,
    signals_wide: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Assemble the features of every family from a point-in-time history.

    With ``as_of``: one row per account. With ``keys`` (``account_id, decision_ts``, as
    given to :func:`point_in_time`): one row per key, in key order. ``signals_wide``: the
    history's signals already aggregated (:func:`~nextmove.features.signals.aggregate_signals_at`,
    possibly for more keys), instead of aggregating ``history.signals``.
    """
    by = list(history.by)
    if keys is None:
        if as_of is None:
            raise ConfigError("snapshot needs as_of or keys")
        at = pl.lit(as_of)
        base = accounts.select(ACCOUNT_ID, *account_features(vocab, at, accounts.schema))
    else:
        # The key travels under a name no accounts column has, so an extra column that happens
        # to be called decision_ts stays a feature.
        base = (
            keys.select(ACCOUNT_ID, pl.col(DECISION_TS).alias(_AT))
            .join(accounts, on=ACCOUNT_ID, how="left", maintain_order="left")
            .select(
                ACCOUNT_ID,
                pl.col(_AT).alias(DECISION_TS),
                *account_features(vocab, pl.col(_AT), accounts.schema),
            )
        )
    account_cols = [c for c in base.columns if c not in by]

    frame = base
    if vocab.signals:
        wide = aggregate_signals(history.signals, by, vocab) if signals_wide is None else signals_wide
        frame = frame.join(wide, on=by, how="left", maintain_order="left").with_columns(signal_means(vocab))
    for part in (
        aggregate_touches(history.touches, by, vocab),
        aggregate_outcomes(history.outcomes, by, vocab),
    ):
        frame = frame.join(part, on=by, how="left", maintain_order="left")

    derived = signal_features(vocab) + role_features(vocab)
    later = _names(touch_features(vocab)) + _names(outcome_features(vocab))
    assembled = frame.select(*by, *account_cols, *derived, *later)
    # Parallel sums add in varying order, so the same book could give features that differ in the
    # last bits from one call to the next and flip a tree's split: rounding to SIGNIFICANT_DIGITS
    # makes the snapshot, and every model fitted on it, the same on every call.
    return assembled.with_columns(pl.col(pl.Float64).round_sig_figs(SIGNIFICANT_DIGITS))
