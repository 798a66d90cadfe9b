"""Tests of behavioral segmentation: recovers planted clusters, picks k by stability, is stable, names traits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from nextmove.errors import ConfigError, NotFittedError
from nextmove.segment import BehaviorSegmenter, SegmentResult, behavior_features


def _snapshot(seed: int = 0, n: int = 600) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    logins = np.array([5.0, 40.0, 12.0])[group] + rng.normal(0, 3, n)
    tickets = np.array([0.5, 0.5, 6.0])[group] + rng.normal(0, 0.5, n)
    frame = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "arr": rng.uniform(1e3, 1e5, n),
            "logins_mean_90d": logins,
            # A weekly export: 12-13 rows in 90 days for everyone, which says nothing about behavior.
            "logins_count_90d": np.full(n, 12.0) + rng.integers(0, 2, n),
            "tickets_opened_count_90d": np.clip(np.round(tickets), 0, None),
            "tickets_opened_mean_90d": np.where(tickets > 0, 1.0, np.nan),
        }
    )
    return frame, group


@pytest.fixture(scope="module")
def fitted() -> tuple[pl.DataFrame, np.ndarray, BehaviorSegmenter, SegmentResult]:
    frame, group = _snapshot()
    seg = BehaviorSegmenter().fit(frame)
    return frame, group, seg, seg.segment(frame)


def test_segmenter_recovers_planted_groups_and_picks_k_by_stability(
    fitted: tuple[pl.DataFrame, np.ndarray, BehaviorSegmenter, SegmentResult],
) -> None:
    _frame, group, _seg, result = fitted
    assert result.k == 3
    assert result.criterion == "stability"
    assert adjusted_rand_score(group, result.assignments.get_column("segment_id").to_numpy()) > 0.9
    assert set(result.stabilities) == set(range(2, 9))
    best = max(result.stabilities.values())
    assert result.stabilities[3] >= best - 0.03
    assert all(v < best - 0.03 for k, v in result.stabilities.items() if k > 3)
    # The cadence count and the constant event value are dropped; the ticket frequency is kept.
    assert result.features == ["logins_mean_90d", "tickets_opened_count_90d"]


def test_segmenter_silhouette_criterion_takes_the_best_silhouette() -> None:
    frame, _ = _snapshot(n=300)
    result = BehaviorSegmenter(criterion="silhouette", k_range=(2, 4)).fit(frame).segment(frame)
    assert result.criterion == "silhouette"
    assert result.silhouettes[result.k] == max(result.silhouettes.values())


def test_segmenter_is_stable_and_orders_by_size() -> None:
    frame, _ = _snapshot(n=300)
    a = BehaviorSegmenter(seed=3, k_range=(2, 4)).fit(frame).segment(frame)
    b = BehaviorSegmenter(seed=3, k_range=(2, 4)).fit(frame).segment(frame)
    assert a.assignments.equals(b.assignments)
    assert a.stabilities == b.stabilities
    sizes = [s.accounts for s in a.segments]
    assert sizes == sorted(sizes, reverse=True)


def test_segment_names_come_from_distinctive_traits(
    fitted: tuple[pl.DataFrame, np.ndarray, BehaviorSegmenter, SegmentResult],
) -> None:
    result = fitted[3]
    names = " | ".join(s.name for s in result.segments)
    assert "high logins" in names
    assert "high tickets opened frequency" in names


def test_segment_names_skip_near_copies_of_a_trait() -> None:
    frame, _ = _snapshot(n=300)
    # Severity comes with every ticket: its count copies the ticket count.
    frame = frame.with_columns(pl.col("tickets_opened_count_90d").alias("ticket_severity_count_90d"))
    result = BehaviorSegmenter(k=3).fit(frame).segment(frame)
    for s in result.segments:
        assert not ("tickets opened frequency" in s.name and "ticket severity frequency" in s.name)


def test_size_is_taken_out_so_big_accounts_are_not_a_segment() -> None:
    # Two behaviors (heavy and light use per seat); usage also scales with account size, which
    # spreads over two orders of magnitude and would otherwise dominate.
    rng = np.random.default_rng(1)
    n = 800
    group = rng.integers(0, 2, n)
    arr = np.exp(rng.uniform(np.log(5e3), np.log(5e5), n))
    per_seat = np.where(group == 1, 3.0, 1.0) * np.exp(rng.normal(0, 0.15, n))
    frame = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "arr": arr,
            "logins_mean_365d": per_seat * arr / 1000,
            "sessions_mean_365d": 1.4 * per_seat * arr / 1000 * np.exp(rng.normal(0, 0.1, n)),
        }
    )
    adjusted = BehaviorSegmenter(k=2).fit(frame).segment(frame)
    raw = BehaviorSegmenter(k=2, size_column=None).fit(frame).segment(frame)
    score = lambda r: adjusted_rand_score(group, r.assignments.get_column("segment_id").to_numpy())  # noqa: E731
    assert score(adjusted) > 0.9
    assert score(raw) < 0.5


def test_frequencies_are_per_observed_day_so_young_accounts_are_not_quiet() -> None:
    frame = pl.DataFrame(
        {
            "account_id": ["old", "young", "quiet", "busy"],
            "tenure_days": [900.0, 73.0, 900.0, 900.0],
            "tickets_opened_count_365d": [30, 6, 6, 60],
            "logins_mean_365d": [10.0, 10.0, 10.5, 9.0],
        }
    )
    seg = BehaviorSegmenter(k=2, min_spread=0.0, size_column=None).fit(frame)
    x = seg.transform(frame)
    j = seg.columns_.index("tickets_opened_count_365d")
    # 30 tickets in a year and 6 in 73 days are the same frequency; 6 in a year is a fifth of it.
    assert x[0, j] == pytest.approx(x[1, j])
    assert x[2, j] < x[0, j]


def test_predict_handles_missing_columns_and_new_accounts(
    fitted: tuple[pl.DataFrame, np.ndarray, BehaviorSegmenter, SegmentResult],
) -> None:
    frame, _group, seg, result = fitted
    assert (seg.predict(frame) == result.assignments.get_column("segment_id").to_numpy()).all()
    other = frame.head(5).drop("tickets_opened_count_90d")
    labels = seg.predict(other)
    assert labels.shape == (5,)
    assert set(labels.tolist()) <= set(range(seg.k_))


def test_behavior_features_leave_out_firmographics_and_touches_and_take_the_longest_window() -> None:
    cols = ["arr", "tenure_days", "logins_mean_90d", "logins_count_90d", "touch_call_count_90d", "logins_mean_28d"]
    assert behavior_features(cols) == ["logins_mean_90d", "logins_count_90d"]
    assert behavior_features(cols, window_days=28) == ["logins_mean_28d"]
    assert behavior_features([*cols, "logins_mean_365d", "logins_trend_365d"]) == ["logins_mean_365d"]
    assert behavior_features(["arr"]) == []


def test_segmenter_errors() -> None:
    with pytest.raises(ConfigError, match="no behavioral features"):
        BehaviorSegmenter().fit(pl.DataFrame({"account_id": ["a"], "arr": [1.0]}))
    with pytest.raises(NotFittedError, match="call fit"):
        BehaviorSegmenter().predict(pl.DataFrame({"account_id": ["a"]}))
    frame, _ = _snapshot(n=50)
    with pytest.raises(ConfigError, match="k_range"):
        BehaviorSegmenter(k_range=(1, 3)).fit(frame)
    with pytest.raises(ConfigError, match="criterion"):
        BehaviorSegmenter(criterion="gap").fit(frame)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="too few accounts"):
        BehaviorSegmenter().fit(frame.head(3))
    flat = frame.with_columns(pl.lit(1.0).alias("logins_mean_90d"), pl.lit(1).alias("tickets_opened_count_90d"))
    with pytest.raises(ConfigError, match="varies enough"):
        BehaviorSegmenter().fit(flat)
