"""The verifiable event log: entries, Merkle nodes, checkpoints, head, append-only triggers.

Revision ID: 0001_event_log
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_event_log"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("entries", "merkle_nodes", "checkpoints")

POSTGRES_FUNCTIONS = """
CREATE FUNCTION pactledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pactledger: % is append-only; % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE FUNCTION pactledger_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.size < OLD.size OR NEW.origin <> OLD.origin THEN
        RAISE EXCEPTION 'pactledger: the ledger head only moves forward; % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
"""


def _identifier(length: int) -> sa.types.TypeEngine[str]:
    """Byte-order ("C") collation on PostgreSQL for identifiers: fast, locale-independent."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("event_id", _identifier(36), nullable=False),
        sa.Column("stream", _identifier(265), nullable=False),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("type", _identifier(128), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("tenant", _identifier(128), nullable=False),
        sa.Column("occurred_at", _utc(), nullable=False),
        sa.Column("recorded_at", _utc(), nullable=False),
        sa.Column("idempotency_key", _identifier(200), nullable=True),
        sa.Column("request_digest", sa.LargeBinary(32), nullable=True),
        sa.Column("entry_bytes", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_entries_event_id"),
        sa.UniqueConstraint("stream", "stream_version", name="uq_entries_stream_version"),
    )
    op.create_index(
        "uq_entries_tenant_idempotency_key",
        "entries",
        ["tenant", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("key_name", sa.String(255), nullable=False),
        sa.Column("key_id", sa.LargeBinary(4), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.UniqueConstraint("key_id", "tree_size", name="uq_checkpoints_key_size"),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chain_head", sa.LargeBinary(32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_ledger_head_single_row"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _postgres_triggers() -> None:
    op.execute(POSTGRES_FUNCTIONS)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION pactledger_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION pactledger_append_only()"
        )
    op.execute(
        "CREATE TRIGGER ledger_head_forward_only BEFORE UPDATE OR DELETE ON ledger_head "
        "FOR EACH ROW EXECUTE FUNCTION pactledger_head_forward_only()"
    )
    op.execute(
        "CREATE TRIGGER ledger_head_no_truncate BEFORE TRUNCATE ON ledger_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION pactledger_append_only()"
    )


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'pactledger: {table} is append-only; "
                f"{action} refused'); END"
            )
    op.execute(
        "CREATE TRIGGER ledger_head_forward_only BEFORE UPDATE ON ledger_head "
        "WHEN NEW.size < OLD.size OR NEW.origin <> OLD.origin "
        "BEGIN SELECT RAISE(ABORT, 'pactledger: the ledger head only moves forward'); END"
    )
    op.execute(
        "CREATE TRIGGER ledger_head_no_delete BEFORE DELETE ON ledger_head "
        "BEGIN SELECT RAISE(ABORT, 'pactledger: the ledger head cannot be deleted'); END"
    )


def downgrade() -> None:
    for table in ("ledger_head", "checkpoints", "merkle_nodes", "entries"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS pactledger_append_only()")
        op.execute("DROP FUNCTION IF EXISTS pactledger_head_forward_only()")
