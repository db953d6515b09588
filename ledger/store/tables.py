"""SQLAlchemy Core tables of the log. The Alembic revisions in ``migrations/versions`` create the
same schema (a test compares them) plus the append-only triggers, which live only there.

* ``entries`` — one row per entry; ``entry_bytes`` are the hashed RFC 8785 bytes, the other
  columns are indexed copies that ``verify`` checks against them.
* ``merkle_nodes`` — every complete Merkle subtree of level >= 4 (smaller ones are hashed from
  ``entries.leaf_hash`` when a proof needs them; ledger.integrity.merkle.STORED_MIN_LEVEL).
* ``checkpoints`` — signed C2SP checkpoints, one per (key, tree size).
* ``ledger_head`` — the single row holding the log's end; its row lock is the writer lock on
  PostgreSQL.
* ``api_keys`` — API keys: the SHA-256 of each secret (never the secret), role, tenant scope,
  revocation time. Not part of the log: keys are access control, not evidence.
* ``subject_keys`` — per-subject data keys for personal fields, wrapped by the key-encryption
  key, found by a keyed digest of (tenant, subject id); erasure sets ``wrapped_key`` to NULL
  (crypto-shredding). Not part of the log: destroying a key changes no hashed byte.
* ``verification_runs`` — each full verification of the log (`pactledger verify`, the
  dashboard's "verify now"): when, at what size and root, passed or the first failure. Not
  part of the log: a record that someone looked, appended only.
* ``projector_checkpoints`` and the ``view_*`` tables — the projectors' positions and views
  (docs/projectors.md); derived from the log, rebuildable from it at any time.
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

from ledger.projections import TableSpec, all_projections


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

subject_keys = Table(
    "subject_keys",
    metadata,
    Column("key_id", String(32), primary_key=True, autoincrement=False),
    Column("tenant", String(128), nullable=False),
    Column("subject_digest", String(64), nullable=False),
    Column("wrapped_key", LargeBinary(40), nullable=True),  # NULL once erased
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=False),
    Column("erased_at", UTCDateTime(), nullable=True),
    Column("erased_seq", BigInteger, nullable=True),
    Index(
        "ux_subject_keys_active",
        "subject_digest",
        unique=True,
        sqlite_where=text("wrapped_key IS NOT NULL"),
        postgresql_where=text("wrapped_key IS NOT NULL"),
    ),
    Index("ix_subject_keys_digest", "subject_digest"),
)


# --- projector views (docs/projectors.md) -------------------------------------------------------

projector_checkpoints = Table(
    "projector_checkpoints",
    metadata,
    Column("name", String(64), primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),  # last seq projected; -1: none yet
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("error", Text, nullable=True),  # why the projector stopped, until it moves again
    Column("error_seq", BigInteger, nullable=True),
)

_INTEGER_COLUMNS = frozenset(
    {
        "seq",
        "decision_seq",
        "served_count",
        "first_served_seq",
        "last_served_seq",
        "price_list_version",
        "requests",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "racks_contracted",
        "gpus_contracted",
        "racks_delivered",
        "gpus_delivered",
        "delays",
        "credits",
        "racks_retired",
        "gpus_retired",
        "gpus_in_service",
        "version",
    }
)
_BOOLEAN_COLUMNS = frozenset({"sovereign"})
# Extra indexes for the queries of ledger.app.views, by view table.
_VIEW_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "view_residency": (("tenant", "status"), ("status",)),
    "view_chargeback": (("tenant", "day"), ("day",)),
    "view_rack_usage": (("hour",),),
}


def view_table(spec: TableSpec, *, name: str | None = None, target: MetaData = metadata) -> Table:
    """The SQL table of a projection's view (or, with ``name``, its rebuild shadow, whose
    index names carry the same suffix as its name)."""
    table_name = name or spec.name
    suffix = table_name[len(spec.name) :]
    columns: list[Any] = []
    if spec.has_row_key:
        columns.append(Column("row_key", _key_text(), primary_key=True, autoincrement=False))
    for column in spec.columns:
        is_key = column in spec.key
        if column in _INTEGER_COLUMNS:
            kind: Any = BigInteger
        elif column in _BOOLEAN_COLUMNS:
            kind = Boolean
        elif is_key:
            kind = _key_text()
        else:
            kind = Text
        columns.append(
            Column(
                column,
                kind,
                primary_key=is_key and not spec.has_row_key,
                autoincrement=False,
                nullable=not is_key,
            )
        )
    indexes = [
        Index(f"ix_{spec.name}_{'_'.join(cols)}{suffix}", *cols)
        for cols in _VIEW_INDEXES.get(spec.name, ())
    ]
    return Table(table_name, target, *columns, *indexes)


def _key_text() -> Any:
    return Text().with_variant(Text(collation="C"), "postgresql")


view_tables: dict[str, Table] = {
    spec.name: view_table(spec)
    for projection in all_projections().values()
    for spec in projection.tables
}


verification_runs = Table(
    "verification_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=True),
    Column("ok", Boolean, nullable=False),
    Column("kind", String(32), nullable=True),  # the failure's kind: changed, missing, …
    Column("error", Text, nullable=True),
    Column("source", String(200), nullable=False),  # cli, dashboard:<key id>, …
)
