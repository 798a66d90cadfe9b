"""The store: runs, recommendations, feedback, decisions, models, API keys and audit (SQLite or PostgreSQL)."""

from nextmove.store.base import ModelsChangedError, Store
from nextmove.store.identity import recorded_source, same_book
from nextmove.store.records import (
    FEEDBACK_KINDS,
    ROLES,
    RUN_STATUSES,
    ActivityRecord,
    ApiKeyRecord,
    AuditEntry,
    DecisionPlay,
    DecisionRecord,
    FeedbackEvent,
    FeedbackKind,
    HoldEvent,
    ModelVersionRecord,
    RecommendationRecord,
    Role,
    RunRecord,
    RunStatus,
)
from nextmove.store.schema import SCHEMA_VERSION
from nextmove.store.sql import SqlStore, open_store

__all__ = [
    "FEEDBACK_KINDS",
    "ROLES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "ActivityRecord",
    "ApiKeyRecord",
    "AuditEntry",
    "DecisionPlay",
    "DecisionRecord",
    "FeedbackEvent",
    "FeedbackKind",
    "HoldEvent",
    "ModelVersionRecord",
    "ModelsChangedError",
    "RecommendationRecord",
    "Role",
    "RunRecord",
    "RunStatus",
    "SqlStore",
    "Store",
    "open_store",
    "recorded_source",
    "same_book",
]
