"""API keys: hashed secrets with a role and tenant scopes, revocable.

Revision ID: 0002_api_keys
Revises: 0001_event_log
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_api_keys"
down_revision = "0001_event_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True, autoincrement=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenants", sa.Text(), nullable=False),
        sa.Column("all_tenants", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'ingest', 'auditor', 'viewer')", name="ck_api_keys_role"
        ),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
