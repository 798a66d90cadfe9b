"""Tests of probability accuracy: AUC, average precision, Brier, log-loss, ECE and the calibration table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from nextmove.errors import ConfigError
from nextmove.measure import (
    auc_or_none,
    calibration_table,
    evaluate_probabilities,
    expected_calibration_error,
)


def _sample(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 6, n)
    y = (rng.random(n) < p).astype(float)
    return y, p


def test_evaluate_probabilities_matches_scikit_learn() -> None:
    y, p = _sample()
    acc = evaluate_probabilities(y, p)
    assert acc.auc == pytest.approx(roc_auc_score(y, p))
    assert acc.average_precision == pytest.approx(average_precision_score(y, p))
    assert acc.brier == pytest.approx(brier_score_loss(y, p))
    assert acc.log_loss == pytest.approx(log_loss(y, p))
    assert acc.rows == 5000
    assert acc.events == int(y.sum())
    assert acc.base_rate == pytest.approx(y.mean())


def test_calibrated_probabilities_have_small_ece_and_miscalibrated_large() -> None:
    y, p = _sample(20000)
    assert evaluate_probabilities(y, p).ece < 0.01
    assert evaluate_probabilities(y, np.clip(p * 2, 0, 1)).ece > 0.1


def test_calibration_table_equal_mass_bins_hold_equal_rows() -> None:
    y, p = _sample(1000)
    table = calibration_table(y, p, bins=10, binning="equal_mass")
    assert [b.rows for b in table] == [100] * 10
    assert sum(b.events for b in table) == int(y.sum())
    assert all(b.lower <= b.upper for b in table)
    assert [b.mean_predicted for b in table] == sorted(b.mean_predicted for b in table)  # type: ignore[type-var]


def test_calibration_table_equal_width_bins_may_be_empty() -> None:
    table = calibration_table([0, 1, 0], [0.05, 0.92, 0.08], bins=10, binning="equal_width")
    assert [b.rows for b in table] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert table[1].mean_predicted is None
    assert table[1].gap is None
    assert (table[0].lower, table[0].upper) == (0.0, 0.1)
    assert table[9].observed_rate == 1.0


def test_ece_by_hand() -> None:
    # Two bins: predicted 0.15 vs observed 0 (2 rows), predicted 0.8 vs observed 1 (2 rows).
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2) == pytest.approx(0.175)
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=1) == pytest.approx(0.025)


def test_single_class_gives_none_with_a_reason_not_a_crash() -> None:
    acc = evaluate_probabilities([0, 0, 0, 0], [0.1, 0.2, 0.0, 0.05])
    assert acc.auc is None
    assert acc.auc_note == "AUC is undefined: the 4 rows hold a single class (no events)"
    assert acc.average_precision is None
    assert acc.average_precision_note is not None
    assert acc.brier == pytest.approx(np.mean(np.square([0.1, 0.2, 0.0, 0.05])))
    assert acc.ece == pytest.approx(0.0875)
    only = evaluate_probabilities([1, 1], [0.9, 0.6])
    assert only.auc is None
    assert only.auc_note is not None
    assert "only events" in only.auc_note
    assert only.average_precision == 1.0
    assert auc_or_none([1, 1], [0.2, 0.4]) is None


def test_log_loss_is_finite_for_certain_wrong_predictions() -> None:
    acc = evaluate_probabilities([1, 0], [0.0, 1.0])
    assert np.isfinite(acc.log_loss)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "same length"),
        ([], [], "at least one row"),
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, 1], [0.1, 1.2], r"probabilities in \[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "no missing values"),
    ],
)
def test_bad_inputs_raise_clear_errors(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        evaluate_probabilities(y, p)


def test_bad_binning_raises() -> None:
    with pytest.raises(ConfigError, match="binning must be"):
        calibration_table([0, 1], [0.1, 0.9], binning="quantile")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="bins must be a positive"):
        calibration_table([0, 1], [0.1, 0.9], bins=0)
