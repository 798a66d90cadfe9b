"""The store's tables as SQLAlchemy Core metadata, portable between SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

SCHEMA_VERSION: Final[int] = 5
"""Version of the tables below; bump it (and add a migration) whenever they change.

History: 1, the first tables; 2 added ``api_keys``, ``audit_log``, ``decisions`` and the
``health_score`` / ``health_band`` columns of ``recommendations`` (migrated automatically from 1, which
had no ``policy`` model versions: the upgrade records the run a version-1 store served as the active one);
3 added the index of ``decisions`` by run (``run_id``, ``ts``, ``decision_id``; migrated automatically);
4 added the index of ``feedback_events`` by ``received_at`` (migrated automatically); 5 moved the
key id that a request refused for its key claimed out of ``audit_log.key_id`` into
``detail.claimed_key_id``, where later releases write it (:data:`CLAIMED_KEY_IDS_MOVED_IN_VERSION_5`).
"""

META_SCHEMA_VERSION_KEY: Final[str] = "schema_version"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware in UTC.

    PostgreSQL keeps ``timestamptz`` but answers in the session's time zone; SQLite keeps
    text and drops the offset. Converting on the way in and out makes both backends return
    the same values. A naive datetime is taken as UTC, like everywhere in nextmove.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert ``value`` to UTC (naive values are UTC); SQLite gets it naive."""
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DATETIME ignores the offset on write, so store naive UTC explicitly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return ``value`` timezone-aware in UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints make errors readable and keep future migrations deterministic.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meta = sa.Table(
    "nextmove_meta",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("as_of", UTCDateTime, nullable=True),
    sa.Column("book_source", sa.String, nullable=False),
    sa.Column("playbook_hash", sa.String, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
    sa.Index(None, "created_at"),
)

recommendations = sa.Table(
    "recommendations",
    metadata,
    sa.Column(
        "run_id",
        sa.String,
        sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("action_id", sa.String, nullable=False),
    sa.Column("variant", sa.String, nullable=True),
    sa.Column("arm", sa.String, nullable=False),
    sa.Column("propensity", sa.Double, nullable=False),
    sa.Column("expected_value_usd", sa.Double, nullable=False),
    sa.Column("value_low_usd", sa.Double, nullable=True),
    sa.Column("value_high_usd", sa.Double, nullable=True),
    sa.Column("default_action_id", sa.String, nullable=True),
    sa.Column("differs_from_default", sa.Boolean, nullable=False),
    sa.Column("owner", sa.String, nullable=True),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("alternatives", sa.JSON, nullable=False),
    sa.Column("model_version", sa.String, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("health_score", sa.Double, nullable=True),
    sa.Column("health_band", sa.String, nullable=True),
    sa.Index(None, "run_id", "owner"),
    sa.Index(None, "run_id", "action_id"),
)

# No foreign key on run_id: feedback arrives from CRMs and apps that may name runs this
# store never held, and an idempotent ingest must not reject it for that.
feedback_events = sa.Table(
    "feedback_events",
    metadata,
    sa.Column("event_id", sa.String, primary_key=True),
    sa.Column("run_id", sa.String, nullable=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("action_id", sa.String, nullable=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("kind IN ('done', 'dismissed', 'snoozed', 'outcome')", name="kind"),
    sa.Index(None, "account_id", "ts"),
    sa.Index(None, "run_id"),
    # The events stored lately, which each server reads at every refresh (what other servers learned from).
    sa.Index(None, "received_at"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("trained_from", UTCDateTime, nullable=True),
    sa.Column("trained_to", UTCDateTime, nullable=True),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("playbook_hash", sa.String, nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Index(None, "kind", "created_at"),
)

# A partial unique index makes "one active model per kind" a database guarantee, so even a
# buggy or concurrent writer cannot leave two active models of a kind behind.
sa.Index(
    "uq_model_versions_one_active_per_kind",
    model_versions.c.kind,
    unique=True,
    sqlite_where=model_versions.c.active,
    postgresql_where=model_versions.c.active,
)

# Decisions made online, one row each, with the propensity of the choice: off-policy evaluation
# of later policies divides by it, so it is logged in the same transaction as the decision.
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("action_id", sa.String, nullable=False),
    sa.Column("variant", sa.String, nullable=True),
    sa.Column("arm", sa.String, nullable=False),
    sa.Column("propensity", sa.Double, nullable=False),
    sa.Column("expected_value_usd", sa.Double, nullable=False),
    sa.Column("value_low_usd", sa.Double, nullable=True),
    sa.Column("value_high_usd", sa.Double, nullable=True),
    sa.Column("run_id", sa.String, nullable=True),
    sa.Column("model_version", sa.String, nullable=True),
    sa.Column("owner", sa.String, nullable=True),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("alternatives", sa.JSON, nullable=False),
    sa.Column("key_id", sa.String, nullable=True),
    # Unique so that a retried request finds the decision it already made.
    sa.Column("request_id", sa.String, nullable=True, unique=True),
    sa.CheckConstraint("propensity >= 0 AND propensity <= 1", name="propensity"),
    sa.Index(None, "account_id", "ts"),
    sa.Index(None, "ts"),
    # A run's decisions in the order Store.decision_plays reads them (what a served run's capacities have used).
    sa.Index(None, "run_id", "ts", "decision_id"),
)

# Only a salted hash of each key's secret is kept; key_id is the public half of the key.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String, primary_key=True),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("secret_hash", sa.LargeBinary, nullable=False),
    sa.Column("salt", sa.LargeBinary, nullable=False),
    sa.Column("hash_scheme", sa.String, nullable=False),
    sa.Column("owners", sa.JSON, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("role IN ('admin', 'manager', 'csm', 'service')", name="role"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("key_id", sa.String, nullable=True),
    sa.Column("role", sa.String, nullable=True),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("resource", sa.String, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index(None, "ts"),
    sa.Index(None, "key_id", "ts"),
)

TABLE_NAMES: Final[frozenset[str]] = frozenset(metadata.tables)

ADDED_IN_VERSION_2: Final[tuple[str, ...]] = ("decisions", "api_keys", "audit_log")
"""Tables that schema version 2 added (created when a version-1 store is upgraded)."""

COLUMNS_ADDED_IN_VERSION_2: Final[tuple[tuple[str, str], ...]] = (
    ("recommendations", "health_score"),
    ("recommendations", "health_band"),
)
"""(table, column) pairs that schema version 2 added to existing tables."""

INDEXES_ADDED_IN_VERSION_3: Final[tuple[str, ...]] = ("ix_decisions_run_id_ts_decision_id",)
"""Indexes (by name) that schema version 3 added to existing tables."""

INDEXES_ADDED_IN_VERSION_4: Final[tuple[str, ...]] = ("ix_feedback_events_received_at",)
"""Indexes (by name) that schema version 4 added to existing tables."""

CLAIMED_KEY_IDS_MOVED_IN_VERSION_5: Final[str] = "claimed_key_id"
"""The ``detail`` key into which schema version 5 moved the key ids of audit entries with a key id and no role.

Releases before version 5 filed a request refused for its key (no key has that id, a wrong
secret, a revoked key) under the key id it claimed, which anyone can claim; every verified key
has a role, and such an entry had none. Version 5 moved that id to ``detail.claimed_key_id``
and left ``key_id`` null, as later releases write such entries.
"""
