"""Features: point-in-time snapshots of every account, and training sets of past decisions."""

from nextmove.features.history import History, point_in_time
from nextmove.features.kinds import (
    ROLE_KINDS,
    SignalKind,
    cited_feature,
    cited_statistic,
    declared_signal_kinds,
    signal_kinds,
)
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
from nextmove.features.training import (
    WindowFallback,
    build_training_set,
    in_label_window,
    outcomes_seen_until,
    training_vocabulary,
    window_fallbacks,
)

__all__ = [
    "DEFAULT_WINDOWS_DAYS",
    "NON_FEATURE_COLUMNS",
    "OUTCOME_WINDOW_DAYS",
    "ROLE_KINDS",
    "ExtraColumn",
    "FeatureKind",
    "FeatureSchema",
    "FeatureVocabulary",
    "History",
    "SignalKind",
    "WindowFallback",
    "build_training_set",
    "cited_feature",
    "cited_statistic",
    "compute_features",
    "declared_signal_kinds",
    "feature_schema",
    "in_label_window",
    "outcomes_seen_until",
    "point_in_time",
    "sanitize_name",
    "signal_kinds",
    "terminal_outcome_kinds",
    "training_vocabulary",
    "window_fallbacks",
]
