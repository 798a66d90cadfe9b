"""Touch features: how often and how recently each action, each team and any action touched the account."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from nextmove.book import NO_ACTION
from nextmove.features.history import AGE_US, days, within_days
from nextmove.features.names import FeatureVocabulary

HAS_TOUCHES = "_has_touches"
"""True on accounts with any touch row (``none`` included) before the snapshot time."""

_ACTION = pl.col("action_id")
_AGE = pl.col(AGE_US)

# Every expression below runs in one group_by over the account's point-in-time touches.
# A logged "do nothing" (action ``none``) is not a contact: it counts nowhere, but it does
# show the account is in the touch log, so its counts are 0 rather than unknown.


def _count(selected: pl.Expr, window_days: int, name: str) -> pl.Expr:
    return (selected & within_days(window_days)).sum().cast(pl.Int64).alias(name)


def _days_since(selected: pl.Expr, name: str) -> pl.Expr:
    return days(pl.when(selected).then(_AGE).min()).alias(name)


def touch_count(action_id: str, stem: str, window_days: int) -> pl.Expr:
    """``touch_{a}_count_{w}d``: touches with action ``action_id`` in ``[t - w, t)``."""
    return _count(_ACTION.eq(action_id), window_days, f"touch_{stem}_count_{window_days}d")


def touch_days_since(action_id: str, stem: str) -> pl.Expr:
    """``touch_{a}_days_since``: days since the latest touch with action ``action_id``; null if none."""
    return _days_since(_ACTION.eq(action_id), f"touch_{stem}_days_since")


def team_touch_count(team: str, action_ids: Sequence[str], window_days: int) -> pl.Expr:
    """``touch_team_{team}_count_{w}d``: touches with any of the team's actions in ``[t - w, t)``."""
    return _count(_ACTION.is_in(list(action_ids)), window_days, f"touch_team_{team}_count_{window_days}d")


def team_touch_days_since(team: str, action_ids: Sequence[str]) -> pl.Expr:
    """``touch_team_{team}_days_since``: days since the team's latest touch; null if none."""
    return _days_since(_ACTION.is_in(list(action_ids)), f"touch_team_{team}_days_since")


def any_touch_count(window_days: int) -> pl.Expr:
    """``touch_any_count_{w}d``: touches with any action but ``none`` in ``[t - w, t)``."""
    return _count(_ACTION != NO_ACTION, window_days, f"touch_any_count_{window_days}d")


def any_touch_days_since() -> pl.Expr:
    """``touch_any_days_since``: days since the latest touch with any action but ``none``."""
    return _days_since(_ACTION != NO_ACTION, "touch_any_days_since")


def touch_features(vocab: FeatureVocabulary) -> list[pl.Expr]:
    """Every touch feature of the vocabulary, in snapshot order (plus the coverage flag)."""
    w = vocab.touch_window_days
    exprs = [pl.lit(True).alias(HAS_TOUCHES)]
    exprs += [any_touch_count(x) for x in vocab.windows_days] + [any_touch_days_since()]
    for team, actions in vocab.teams.items():
        exprs += [team_touch_count(team, actions, w), team_touch_days_since(team, actions)]
    for action_id, stem in vocab.actions.items():
        exprs += [touch_count(action_id, stem, w), touch_days_since(action_id, stem)]
    return exprs


def aggregate_touches(history: pl.LazyFrame, by: Sequence[str], vocab: FeatureVocabulary) -> pl.DataFrame:
    """One row per ``by`` key with any touch before its snapshot time, with every touch feature."""
    return history.group_by(list(by)).agg(touch_features(vocab)).collect()
