"""SQLAlchemy Core tables of the log. The Alembic revisions in ``migrations/versions`` create the
same schema (a test compares them) plus the append-only triggers, which live only there.

* ``entries`` — one row per entry; ``entry_bytes`` are the hashed RFC 8785 bytes, the other
  columns are indexed copies that ``verify`` checks against them.
* ``merkle_nodes`` — every complete Merkle subtree of level >= 1 (level 0 is entries.leaf_hash).
* ``checkpoints`` — signed C2SP checkpoints, one per (key, tree size).
* ``ledger_head`` — the single row holding the log's end; its row lock is the writer lock on
  PostgreSQL.
* ``api_keys`` — API keys: the SHA-256 of each secret (never the secret), role, tenant scope,
  revocation time. Not part of the log: keys are access control, not evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (text) alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def identifier(length: int) -> String:
    """Identifier text compared byte by byte: PostgreSQL's "C" collation makes every index
    probe a memcmp instead of a locale comparison (SQLite compares bytes already)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


metadata = MetaData()

entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", identifier(36), nullable=False),
    Column("stream", identifier(265), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("type", identifier(128), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("tenant", identifier(128), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("idempotency_key", identifier(200), nullable=True),
    Column("request_digest", LargeBinary(32), nullable=True),
    Column("entry_bytes", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    UniqueConstraint("event_id", name="uq_entries_event_id"),
    UniqueConstraint("stream", "stream_version", name="uq_entries_stream_version"),
    Index(
        "uq_entries_tenant_idempotency_key",
        "tenant",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index("ix_entries_type_seq", "type", "seq"),  # audit queries page through one type
)

merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("key_name", String(255), nullable=False),
    Column("key_id", LargeBinary(4), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("key_id", "tree_size", name="uq_checkpoints_key_size"),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("origin", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("chain_head", LargeBinary(32), nullable=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("id = 1", name="ck_ledger_head_single_row"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True, autoincrement=False),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("tenants", Text, nullable=False),  # JSON list of tenant names
    Column("all_tenants", Boolean, nullable=False),
    Column("name", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    CheckConstraint("role IN ('admin', 'ingest', 'auditor', 'viewer')", name="ck_api_keys_role"),
)
