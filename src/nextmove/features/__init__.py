"""Features: point-in-time snapshots of every account, and training sets of past decisions."""

from nextmove.features.history import History, point_in_time
from nextmove.features.names import (
    DEFAULT_WINDOWS_DAYS,
    OUTCOME_WINDOW_DAYS,
    ExtraColumn,
    FeatureVocabulary,
    sanitize_name,
    terminal_outcome_kinds,
)
from nextmove.features.schema import NON_FEATURE_COLUMNS, FeatureKind, FeatureSchema, feature_schema
from nextmove.features.snapshot import compute_features
from nextmove.features.training import build_training_set, in_label_window

__all__ = [
    "DEFAULT_WINDOWS_DAYS",
    "NON_FEATURE_COLUMNS",
    "OUTCOME_WINDOW_DAYS",
    "ExtraColumn",
    "FeatureKind",
    "FeatureSchema",
    "FeatureVocabulary",
    "History",
    "build_training_set",
    "compute_features",
    "feature_schema",
    "in_label_window",
    "point_in_time",
    "sanitize_name",
    "terminal_outcome_kinds",
]
