"""Signal kinds: whether a signal's values add up over a window (a count) or are readings of a level.

Every signal gets the same features (``docs/features.md``); the kind says which of them mean
something in words. Ten support tickets in 28 days are a total; the 28 daily readings of a
rolling 7-day count, or three NPS answers, add up to no quantity at all, so evidence never cites
a level's window total and counts its rows as readings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, TypeAlias

import polars as pl

from nextmove.features.names import BEHAVIOR_STAT, FeatureVocabulary
from nextmove.playbook import Playbook

SignalKind: TypeAlias = Literal["count", "level"]

ROLE_KINDS: Mapping[str, SignalKind] = {
    "engagement": "count",
    "support": "count",
    "sentiment": "level",
    "survey": "level",
}
"""The kind of each ``[signal_roles]`` role whose signals are of one kind, as the health score reads them:
engagement and support signals are summed (opens, meetings, tickets); sentiment and survey signals are
scores, averaged or taken last. Usage mixes both (active users are a level, logins per week add up),
so its signals are read from their data."""

STEADY_READINGS = 3
"""A window tells regular readings from random events once its typical account has this many rows in it."""

STEADY_DISPERSION = 0.5
"""Rows per account in a window whose variance is below this share of their mean come at regular
intervals. Events that arrive at random (a Poisson process) have a variance equal to their mean, and
more when accounts differ; a reading every day or week varies only where an account started, stopped
or missed one."""

MIN_ACCOUNTS = 20
"""Accounts with rows in a window needed to judge its regularity; with fewer, a signal reads as a count."""

_COUNT = re.compile(r"^(?P<stem>.+)_count_(?P<w>\d+)d$")


def cited_statistic(stat: str, kind: SignalKind | None) -> bool:
    """Whether a signal's window statistic (``mean``, ``sum``, ``count``, ``trend``) means something in words.

    A **level**'s window total is no quantity: the 28 daily readings of a rolling 7-day count add up
    to 28 overlapping weeks, four weekly readings of active users to no number of users. A
    **count**'s window mean is per row (one lesson in four weekly reports averages 0.25), which reads
    as a quantity it is not: its total says it. Neither is ever quoted, by the evidence of a receipt
    nor by the drivers of an outcome probability (``docs/features.md``); a signal of no known kind
    (None) has every statistic quoted.

    Examples
    --------
    >>> cited_statistic("sum", "level"), cited_statistic("mean", "count"), cited_statistic("sum", "count")
    (False, False, True)
    >>> cited_statistic("sum", None)
    True
    """
    return not ((kind == "level" and stat == "sum") or (kind == "count" and stat == "mean"))


def cited_feature(feature: str, kinds: Mapping[str, SignalKind]) -> bool:
    """Whether a feature's value means something in words, by its signal's kind (:func:`cited_statistic`).

    ``kinds`` maps signal stems to kinds (:func:`signal_kinds`); a feature that is no window
    statistic of one of them (a latest value, a touch count, an account column) is always cited.

    Examples
    --------
    >>> kinds = {"active_users": "level", "tickets": "count"}
    >>> [cited_feature(f, kinds) for f in ("active_users_sum_28d", "active_users_mean_28d", "tickets_mean_28d")]
    [False, True, False]
    >>> cited_feature("touch_call_count_90d", kinds), cited_feature("active_users_last", kinds)
    (True, True)
    """
    m = BEHAVIOR_STAT.match(feature)
    return m is None or cited_statistic(m["stat"], kinds.get(m["stem"]))


def declared_signal_kinds(playbook: Playbook, vocabulary: FeatureVocabulary | None = None) -> dict[str, SignalKind]:
    """Signal stem → kind as the playbook gives it: ``[signal_kinds]`` first, else the role's :data:`ROLE_KINDS`.

    Names match as ``[signal_roles]`` members do: each name's stem is the one ``vocabulary`` (the
    snapshot's) gives it (:meth:`~nextmove.features.FeatureVocabulary.signal_stem`); without one,
    its sanitised name.

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook(
    ...     '[objectives.keep]\\noutcome = "cancelled"\\nsense = "avoid"\\nvalue = "arr"\\n'
    ...     '[[actions]]\\nid = "push"\\nname = "Push"\\nteam = "crm"\\nobjective = "keep"\\n'
    ...     '[signal_roles]\\nsurvey = ["nps_last"]\\nsupport = ["crash_count"]\\n'
    ...     '[signal_kinds]\\nlevel = ["App Opens 7d"]\\n'
    ... )
    >>> declared_signal_kinds(pb)
    {'crash_count': 'count', 'nps_last': 'level', 'app_opens_7d': 'level'}
    """
    stem = (vocabulary if vocabulary is not None else FeatureVocabulary()).signal_stem
    kinds: dict[str, SignalKind] = {}
    for role, kind in ROLE_KINDS.items():
        for name in getattr(playbook.signal_roles, role):
            kinds[stem(name)] = kind
    for name in playbook.signal_kinds.count:
        kinds[stem(name)] = "count"
    for name in playbook.signal_kinds.level:
        kinds[stem(name)] = "level"
    return kinds


def signal_kinds(snapshot: pl.DataFrame, declared: Mapping[str, SignalKind] | None = None) -> dict[str, SignalKind]:
    """The kind of every signal of a snapshot, by stem: as ``declared``, else as its data shows.

    A signal not in ``declared`` (see :func:`declared_signal_kinds`) is a **level** when it is read
    at regular intervals: in the shortest window where the typical account (the median of those with
    a row there) has at least :data:`STEADY_READINGS` rows, the rows per account vary less than
    random events would (variance under :data:`STEADY_DISPERSION` × mean, over at least
    :data:`MIN_ACCOUNTS` accounts), and its values are not all 1 (rows of 1 mark events however
    regular). Any other signal is a **count**: events, which come at random, and signals too sparse
    to tell, which keep the reading every signal had before kinds existed. A total reported every
    period (logins per week) reads as a level by this rule; declare it a count to have its totals cited.

    Parameters
    ----------
    snapshot
        A snapshot (:func:`~nextmove.features.compute_features`): its ``{s}_count_{w}d`` columns.
    declared
        Stem → kind, which the data does not override.

    Examples
    --------
    >>> daily = pl.DataFrame(
    ...     {"opens_count_7d": [7] * 30, "opens_days_since_last": [1.0] * 30, "opens_last": [3.0] * 30}
    ... )
    >>> signal_kinds(daily)
    {'opens': 'level'}
    >>> signal_kinds(daily, {"opens": "count"})
    {'opens': 'count'}
    """
    declared = declared or {}
    windows: dict[str, list[int]] = {}
    for column in snapshot.columns:
        if (m := _COUNT.match(column)) and snapshot.schema[column].is_numeric():
            windows.setdefault(m["stem"], []).append(int(m["w"]))
    # A signal's columns include its recency; touch and outcome counts (``touch_…_count_90d``) have none.
    stems = sorted(s for s in windows if f"{s}_days_since_last" in snapshot.columns)
    kinds: dict[str, SignalKind] = {}
    undecided = []
    for stem in stems:
        if stem in declared:
            kinds[stem] = declared[stem]
        else:
            undecided.append(stem)
    if not undecided:
        return kinds
    stats = snapshot.select(
        expr for stem in undecided for w in windows[stem] for expr in _window_stats(f"{stem}_count_{w}d")
    ).row(0, named=True)
    for stem in undecided:
        steady = False
        for w in sorted(windows[stem]):
            column = f"{stem}_count_{w}d"
            n, median, mean, var = (stats[f"{column}:{s}"] for s in ("n", "median", "mean", "var"))
            if n < MIN_ACCOUNTS or median is None or median < STEADY_READINGS:
                continue
            steady = (var or 0.0) < STEADY_DISPERSION * mean
            break
        kinds[stem] = "level" if steady and not _all_ones(snapshot, stem, windows[stem]) else "count"
    return dict(sorted(kinds.items()))


def _window_stats(column: str) -> list[pl.Expr]:
    """Number, median, mean and variance of the positive counts of one ``{s}_count_{w}d`` column."""
    rows = pl.col(column).filter(pl.col(column) > 0).cast(pl.Float64)
    return [
        rows.len().alias(f"{column}:n"),
        rows.median().alias(f"{column}:median"),
        rows.mean().alias(f"{column}:mean"),
        rows.var().alias(f"{column}:var"),
    ]


def _all_ones(snapshot: pl.DataFrame, stem: str, windows: list[int]) -> bool:
    """Whether every latest value and window mean of the signal is 1: rows that mark events."""
    columns = [c for c in (f"{stem}_last", *(f"{stem}_mean_{w}d" for w in windows)) if c in snapshot.columns]
    if not columns:
        return False
    ones = snapshot.select(pl.all_horizontal((pl.col(c).is_null() | (pl.col(c) == 1)).all() for c in columns))
    return bool(ones.item())
