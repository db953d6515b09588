"""Per-subject data keys for personal fields (crypto-shredding, DESIGN §2.5).

Revision ID: 0005_subject_keys
Revises: 0004_projector_views
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_subject_keys"
down_revision = "0004_projector_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_keys",
        sa.Column("key_id", sa.String(32), primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("subject_digest", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_seq", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "ux_subject_keys_active",
        "subject_keys",
        ["subject_digest"],
        unique=True,
        sqlite_where=sa.text("wrapped_key IS NOT NULL"),
        postgresql_where=sa.text("wrapped_key IS NOT NULL"),
    )
    op.create_index("ix_subject_keys_digest", "subject_keys", ["subject_digest"])


def downgrade() -> None:
    op.drop_table("subject_keys")
