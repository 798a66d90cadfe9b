"""Accounts that moved between segments from one run to the next, whatever numbers the segments got."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from nextmove.errors import ConfigError


@dataclass(frozen=True)
class SegmentMoves:
    """How two assignments of the same book compare, segments matched by the accounts they share.

    A previous segment and a current one are the *same* segment when the matching pairs them;
    the matching maximises the accounts that stay (the Hungarian algorithm on the table of shared
    accounts), so renumbered or reordered segments are not counted as moves. When the two
    assignments have a different number of segments (the clustering chose another k), the
    segments were re-formed: some accounts must change segment whatever their behavior did, so
    the moves are not comparable (:attr:`reformed`; the report and the CLI say so instead of
    counting them).
    """

    accounts: int
    """Accounts in both assignments."""
    moved: int
    """Of those, accounts whose segment is not the match of their previous one."""
    new: int
    """Accounts only in the current assignment."""
    gone: int
    """Accounts only in the previous assignment."""
    matches: dict[int, int] = field(default_factory=dict)
    """Previous segment id → current segment id, for the matched pairs."""
    flows: list[tuple[int, int, int]] = field(default_factory=list)
    """``(previous id, current id, accounts)`` for every pair with movers, largest first."""
    segments_before: int = 0
    """Segments of the previous assignment (0: not counted)."""
    segments_after: int = 0
    """Segments of the current assignment (0: not counted)."""

    @property
    def reformed(self) -> bool:
        """The two assignments have a different number of segments: the moves are not comparable."""
        return bool(self.segments_before and self.segments_after) and self.segments_before != self.segments_after

    @property
    def moved_share(self) -> float:
        """Share of the accounts in both assignments that moved (0 when there are none)."""
        return self.moved / self.accounts if self.accounts else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "accounts": self.accounts,
            "moved": self.moved,
            "moved_share": self.moved_share,
            "new": self.new,
            "gone": self.gone,
            "matches": {str(k): v for k, v in self.matches.items()},
            "flows": [{"from": a, "to": b, "accounts": n} for a, b, n in self.flows],
            "segments_before": self.segments_before,
            "segments_after": self.segments_after,
            "reformed": self.reformed,
        }


def _labels(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    for column in ("account_id", "segment_id"):
        if column not in frame.columns:
            raise ConfigError(f"the {what} assignment needs columns account_id and segment_id; it lacks {column!r}")
    out = frame.select(pl.col("account_id").cast(pl.String), pl.col("segment_id").cast(pl.Int64))
    if out.get_column("account_id").is_duplicated().any():
        raise ConfigError(f"the {what} assignment lists an account more than once")
    if out.get_column("segment_id").is_null().any():
        raise ConfigError(f"the {what} assignment has accounts without a segment_id")
    return out


def match_segments(previous: pl.DataFrame, current: pl.DataFrame) -> SegmentMoves:
    """Match the segments of two assignments and count the accounts that moved.

    Parameters
    ----------
    previous, current
        ``account_id, segment_id`` (other columns are ignored), e.g. two runs' ``segments.csv``.

    Returns
    -------
    SegmentMoves

    Raises
    ------
    ConfigError
        If a frame lacks the columns, lists an account twice or has a missing segment id.

    Examples
    --------
    Segments renumbered from one run to the next are matched; only ``e`` moved:

    >>> before = pl.DataFrame({"account_id": ["a", "b", "c", "d", "e", "x"], "segment_id": [0, 0, 1, 1, 1, 0]})
    >>> after = pl.DataFrame({"account_id": ["a", "b", "c", "d", "e", "f"], "segment_id": [1, 1, 0, 0, 1, 0]})
    >>> moves = match_segments(before, after)
    >>> moves.moved, moves.new, moves.gone, moves.matches, moves.reformed
    (1, 1, 1, {0: 1, 1: 0}, False)
    """
    prev = _labels(previous, "previous")
    cur = _labels(current, "current")
    both = prev.join(cur, on="account_id", how="inner", suffix="_now")
    new = cur.join(prev, on="account_id", how="anti").height
    gone = prev.join(cur, on="account_id", how="anti").height
    before_k = prev.get_column("segment_id").n_unique()
    after_k = cur.get_column("segment_id").n_unique()
    if both.height == 0:
        return SegmentMoves(0, 0, new, gone, segments_before=before_k, segments_after=after_k)
    pairs = both.group_by("segment_id", "segment_id_now").len()
    before_ids = np.sort(pairs.get_column("segment_id").unique().to_numpy())
    after_ids = np.sort(pairs.get_column("segment_id_now").unique().to_numpy())
    table = np.zeros((before_ids.size, after_ids.size), dtype=np.int64)
    rows = np.searchsorted(before_ids, pairs.get_column("segment_id").to_numpy())
    cols = np.searchsorted(after_ids, pairs.get_column("segment_id_now").to_numpy())
    table[rows, cols] = pairs.get_column("len").to_numpy()
    r, c = linear_sum_assignment(table, maximize=True)
    matches = {int(before_ids[i]): int(after_ids[j]) for i, j in zip(r, c, strict=True)}
    stayed = int(table[r, c].sum())
    flows = [
        (int(before_ids[i]), int(after_ids[j]), int(table[i, j]))
        for i in range(before_ids.size)
        for j in range(after_ids.size)
        if table[i, j] and matches.get(int(before_ids[i])) != int(after_ids[j])
    ]
    flows.sort(key=lambda f: (-f[2], f[0], f[1]))
    return SegmentMoves(
        both.height, both.height - stayed, new, gone, matches, flows, segments_before=before_k, segments_after=after_k
    )
