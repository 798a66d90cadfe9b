"""Measure: accuracy of predicted probabilities, lift against control, off-policy value."""

from nextmove.measure.accuracy import (
    Binning,
    CalibrationBin,
    ProbabilityAccuracy,
    auc_or_none,
    calibration_table,
    evaluate_probabilities,
    expected_calibration_error,
)
from nextmove.measure.ope import PolicyValue, evaluate_policy, policy_difference, row_value_usd
from nextmove.measure.policy import (
    do_nothing_policy,
    learned_policy,
    lifecycle_default_policy,
    logged_policy,
    table_policy,
)

__all__ = [
    "Binning",
    "CalibrationBin",
    "PolicyValue",
    "ProbabilityAccuracy",
    "auc_or_none",
    "calibration_table",
    "do_nothing_policy",
    "evaluate_policy",
    "evaluate_probabilities",
    "expected_calibration_error",
    "learned_policy",
    "lifecycle_default_policy",
    "logged_policy",
    "policy_difference",
    "row_value_usd",
    "table_policy",
]
