"""Comparable accounts: the nearest past decisions that took an action, and what followed."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.neighbors import NearestNeighbors

from nextmove.errors import ConfigError

FOUND_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "rank": pl.Int64(),
    "comparable_id": pl.String(),
    "decision_ts": pl.Datetime("us", "UTC"),
    "outcome": pl.Float64(),
    "distance": pl.Float64(),
    "similarity": pl.Float64(),
}
"""Columns of :meth:`ComparableFinder.find_frame`."""


@dataclass(frozen=True)
class Comparable:
    """A past decision like this account's, with the action in question and its outcome."""

    account_id: str
    decision_ts: str
    distance: float
    outcome: float
    """The objective's label after that decision (1/0 for events, the amount for amounts)."""


@dataclass
class ComparableFinder:
    """Finds, for each account and action, the ``k`` most similar past decisions that took that action.

    Similarity is Euclidean distance over the given numeric features, each standardised by its
    spread in the history (missing values set to the history's median, so a gap does not make
    two accounts look alike or different). :meth:`find_frame` keeps one decision per other
    account (its nearest), so the comparables are ``k`` different accounts and never the
    account itself. Each action indexes at most ``max_rows`` of its past decisions, the latest.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> history = pl.DataFrame(
    ...     {"account_id": ["a", "b", "c"], "decision_ts": [datetime(2025, 1, 1, tzinfo=UTC)] * 3,
    ...      "action_id": ["call"] * 3, "arr": [1_000.0, 1_100.0, 9_000.0], "y_churn": [1, 0, 0]}
    ... )
    >>> finder = ComparableFinder(["arr"], k=1).fit(history, {"call": "y_churn"})
    >>> finder.find_frame(pl.DataFrame({"account_id": ["z"], "arr": [1_050.0]}), "call")["comparable_id"].to_list()
    ['a']
    """

    features: Sequence[str]
    k: int = 3
    max_rows: int = 100_000
    features_: list[str] = field(default_factory=list, init=False)

    def fit(self, history: pl.DataFrame, label_of_action: Mapping[str, str]) -> ComparableFinder:
        """Index ``history`` (a training set) by action; ``label_of_action`` maps action → label column.

        Rows with ``censored`` True (their outcome is not known yet) are left out.

        Raises
        ------
        ConfigError
            If ``k`` or ``max_rows`` is not a positive whole number, or ``history`` lacks
            ``account_id``, ``decision_ts`` or ``action_id``.
        """
        for name in ("k", "max_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ComparableFinder: {name} must be a positive whole number, got {value!r}")
        for column in ("account_id", "decision_ts", "action_id"):
            if column not in history.columns:
                raise ConfigError(f"comparables need the history column {column!r}, which the history lacks")
        schema = history.schema
        usable = [f for f in self.features if f in schema and schema[f].is_numeric()]
        self.features_ = usable
        done = history.filter(~pl.col("censored").fill_null(False)) if "censored" in history.columns else history
        x = done.select([pl.col(f).cast(pl.Float64) for f in usable]).to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature: handled below
            center = np.nanmedian(x, axis=0) if x.size else np.zeros(len(usable))
            spread = np.nanstd(x, axis=0) if x.size else np.ones(len(usable))
        self.scale_ = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        self.center_ = np.where(np.isfinite(center), center, 0.0)
        self.index_: dict[str, tuple[NearestNeighbors, pl.DataFrame, str]] = {}
        for action, label in label_of_action.items():
            if label not in done.columns:
                continue
            rows = done.filter(pl.col("action_id") == action)
            if rows.height == 0:
                continue
            rows = rows.sort("decision_ts").tail(self.max_rows)
            z = self._standardise(rows)
            nn = NearestNeighbors(n_neighbors=min(self.k, rows.height)).fit(z)
            kept = rows.select(
                pl.col("account_id").cast(pl.String),
                _utc(pl.col("decision_ts"), rows.schema["decision_ts"]),
                pl.col(label).cast(pl.Float64).fill_null(0.0).alias("outcome"),
            )
            self.index_[action] = (nn, kept, label)
        return self

    def _standardise(self, frame: pl.DataFrame) -> np.ndarray:
        columns = set(frame.columns)
        exprs = [
            pl.col(f).cast(pl.Float64) if f in columns else pl.lit(None, pl.Float64).alias(f) for f in self.features_
        ]
        if not exprs:
            return np.zeros((frame.height, 1))
        x = frame.select(exprs).to_numpy()
        x = np.where(np.isnan(x), self.center_, x)
        out: np.ndarray = (x - self.center_) / self.scale_
        return out

    def find_frame(self, snapshot: pl.DataFrame, action: str, *, exclude_self: bool = True) -> pl.DataFrame:
        """The comparables of every row of ``snapshot`` that took ``action``, as one long table.

        Returns
        -------
        polars.DataFrame
            :data:`FOUND_SCHEMA`: ``row`` (the snapshot row), ``rank`` (0 = nearest),
            ``comparable_id``, ``decision_ts``, ``outcome``, ``distance`` and ``similarity``
            (``1 / (1 + distance / √features)``: 1 for the same features, 0.5 for one standard
            deviation apart on every feature). Empty when the action was never taken.
        """
        if action not in self.index_ or snapshot.height == 0:
            return pl.DataFrame(schema=FOUND_SCHEMA)
        nn, rows, _ = self.index_[action]
        # Ask for more neighbours than needed: some are the account itself or the same account twice.
        wanted = min(rows.height, self.k * 4 + 1)
        dist, idx = nn.kneighbors(self._standardise(snapshot), n_neighbors=wanted)
        n = snapshot.height
        dims = max(len(self.features_), 1)
        found = pl.DataFrame(
            {
                "row": np.repeat(np.arange(n, dtype=np.int64), wanted),
                "_j": idx.ravel().astype(np.int64),
                "distance": dist.ravel(),
            }
        )
        found = found.with_columns(
            rows.get_column("account_id").gather(found.get_column("_j")).alias("comparable_id"),
            rows.get_column("decision_ts").gather(found.get_column("_j")).alias("decision_ts"),
            rows.get_column("outcome").gather(found.get_column("_j")).alias("outcome"),
        )
        if exclude_self and "account_id" in snapshot.columns:
            own = snapshot.get_column("account_id").cast(pl.String).gather(found.get_column("row"))
            found = found.filter(pl.col("comparable_id") != own)
        found = (
            found.unique(["row", "comparable_id"], keep="first", maintain_order=True)
            .with_columns(pl.int_range(pl.len()).over("row").cast(pl.Int64).alias("rank"))
            .filter(pl.col("rank") < self.k)
            .with_columns((1.0 / (1.0 + pl.col("distance") / dims**0.5)).alias("similarity"))
        )
        return found.select(list(FOUND_SCHEMA)).cast(pl.Schema(FOUND_SCHEMA))

    def find(self, snapshot: pl.DataFrame, action: str) -> list[list[Comparable]]:
        """For every row of ``snapshot``, its comparables that took ``action`` (empty if none were ever taken).

        The same decisions as :meth:`find_frame` without leaving out the account itself, as objects
        (for a few accounts; use :meth:`find_frame` for many).
        """
        found = self.find_frame(snapshot, action, exclude_self=False)
        out: list[list[Comparable]] = [[] for _ in range(snapshot.height)]
        for row, account, ts, outcome, distance in found.select(
            "row", "comparable_id", "decision_ts", "outcome", "distance"
        ).iter_rows():
            out[row].append(Comparable(account, str(ts), float(distance), float(outcome)))
        return out


def _utc(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A timestamp column as UTC microseconds (naive timestamps are UTC, as in the data contract)."""
    if isinstance(dtype, pl.Datetime):
        column = column.dt.replace_time_zone("UTC") if dtype.time_zone is None else column.dt.convert_time_zone("UTC")
    return column.cast(pl.Datetime("us", "UTC"))
