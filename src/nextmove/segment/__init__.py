"""Behavioral segmentation: clusters of accounts by how they use, engage and need support, how each responds.

``segment_book`` is the one call a run makes; the parts are usable on their own.
"""

from nextmove.features.names import behavior_features
from nextmove.segment.cluster import (
    DAYS_SINCE_END,
    SEGMENT_WINDOW_DAYS,
    BehaviorSegmenter,
    Segment,
    SegmentResult,
    behavior_snapshot,
    signal_labels,
)
from nextmove.segment.moves import SegmentMoves, match_segments
from nextmove.segment.response import (
    FamilyResponse,
    SegmentResponse,
    SpendEfficiency,
    action_families,
    segment_responses,
    spend_efficiency,
)
from nextmove.segment.summary import OutcomeRate, SegmentProfile, SegmentReport, segment_book

__all__ = [
    "DAYS_SINCE_END",
    "SEGMENT_WINDOW_DAYS",
    "BehaviorSegmenter",
    "FamilyResponse",
    "OutcomeRate",
    "Segment",
    "SegmentMoves",
    "SegmentProfile",
    "SegmentReport",
    "SegmentResponse",
    "SegmentResult",
    "SpendEfficiency",
    "action_families",
    "behavior_features",
    "behavior_snapshot",
    "match_segments",
    "segment_book",
    "segment_responses",
    "signal_labels",
    "spend_efficiency",
]
