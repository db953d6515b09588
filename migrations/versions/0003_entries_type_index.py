"""An index on (type, seq) for audit queries that page through one entry type.

Revision ID: 0003_entries_type_index
Revises: 0002_api_keys
Create Date: 2026-11-25

On a large existing PostgreSQL ledger this builds the index inside the migration's
transaction, blocking appends while it runs; for such a ledger create it beforehand with
``CREATE INDEX CONCURRENTLY ix_entries_type_seq ON entries (type, seq)``, then migrate.
"""

from __future__ import annotations

from alembic import op

revision = "0003_entries_type_index"
down_revision = "0002_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entries_type_seq", "entries", ["type", "seq"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_entries_type_seq", table_name="entries")
