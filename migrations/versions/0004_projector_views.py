"""Projector checkpoints and the views they keep (docs/projectors.md).

Revision ID: 0004_projector_views
Revises: 0003_entries_type_index
Create Date: 2026-11-25

The views are derived from the log: dropping them loses nothing that `pactledger project
rebuild` cannot recompute. Identifier-like key columns use the "C" collation on PostgreSQL, like
the log's own identifiers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_projector_views"
down_revision = "0003_entries_type_index"
branch_labels = None
depends_on = None

KEY_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
VIEWS = (
    "view_regions",
    "view_residency",
    "view_chargeback",
    "view_provenance",
    "view_tranches",
    "view_rack_usage",
)


def upgrade() -> None:
    op.create_table(
        "projector_checkpoints",
        sa.Column("name", sa.String(64), primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_seq", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "view_regions",
        sa.Column("row_key", KEY_TEXT, primary_key=True, autoincrement=False),
        sa.Column("provider", KEY_TEXT, nullable=False),
        sa.Column("region", KEY_TEXT, nullable=False),
        sa.Column("tenant", sa.Text()),
        sa.Column("country", sa.Text()),
        sa.Column("jurisdiction", sa.Text()),
        sa.Column("sovereign", sa.Boolean()),
        sa.Column("version", sa.BigInteger()),
    )
    op.create_table(
        "view_residency",
        sa.Column("request_id", KEY_TEXT, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.Text()),
        sa.Column("decision_id", sa.Text()),
        sa.Column("decision_seq", sa.BigInteger()),
        sa.Column("decided_at", sa.Text()),
        sa.Column("outcome", sa.Text()),
        sa.Column("candidate_provider", sa.Text()),
        sa.Column("candidate_region", sa.Text()),
        sa.Column("decided_provider", sa.Text()),
        sa.Column("decided_region", sa.Text()),
        sa.Column("decided_jurisdiction", sa.Text()),
        sa.Column("policy_versions", sa.Text()),
        sa.Column("transfer_basis", sa.Text()),
        sa.Column("served_count", sa.BigInteger()),
        sa.Column("first_served_seq", sa.BigInteger()),
        sa.Column("last_served_seq", sa.BigInteger()),
        sa.Column("served_at", sa.Text()),
        sa.Column("served_provider", sa.Text()),
        sa.Column("served_region", sa.Text()),
        sa.Column("served_jurisdiction", sa.Text()),
        sa.Column("served_locations", sa.Text()),
        sa.Column("status", sa.Text()),
    )
    op.create_index("ix_view_residency_status", "view_residency", ["status"])
    op.create_index("ix_view_residency_tenant_status", "view_residency", ["tenant", "status"])
    op.create_table(
        "view_chargeback",
        sa.Column("row_key", KEY_TEXT, primary_key=True, autoincrement=False),
        sa.Column("tenant", KEY_TEXT, nullable=False),
        sa.Column("day", KEY_TEXT, nullable=False),
        sa.Column("business_unit", KEY_TEXT, nullable=False),
        sa.Column("cost_center", KEY_TEXT, nullable=False),
        sa.Column("application", KEY_TEXT, nullable=False),
        sa.Column("model", KEY_TEXT, nullable=False),
        sa.Column("model_tier", KEY_TEXT, nullable=False),
        sa.Column("provider", KEY_TEXT, nullable=False),
        sa.Column("region", KEY_TEXT, nullable=False),
        sa.Column("price_list_id", KEY_TEXT, nullable=False),
        sa.Column("price_list_version", sa.BigInteger(), nullable=False),
        sa.Column("currency", KEY_TEXT, nullable=False),
        sa.Column("requests", sa.BigInteger()),
        sa.Column("input_tokens", sa.BigInteger()),
        sa.Column("output_tokens", sa.BigInteger()),
        sa.Column("cached_tokens", sa.BigInteger()),
        sa.Column("cost", sa.Text()),
    )
    op.create_index("ix_view_chargeback_day", "view_chargeback", ["day"])
    op.create_index("ix_view_chargeback_tenant_day", "view_chargeback", ["tenant", "day"])
    op.create_table(
        "view_provenance",
        sa.Column("request_id", KEY_TEXT, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.Text()),
        sa.Column("type", sa.Text()),
        sa.Column("stream", sa.Text()),
    )
    op.create_table(
        "view_tranches",
        sa.Column("tranche_id", KEY_TEXT, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.Text()),
        sa.Column("provider", sa.Text()),
        sa.Column("region", sa.Text()),
        sa.Column("rack_family", sa.Text()),
        sa.Column("racks_contracted", sa.BigInteger()),
        sa.Column("gpus_contracted", sa.BigInteger()),
        sa.Column("power_mw", sa.Text()),
        sa.Column("committed_usd", sa.Text()),
        sa.Column("price_per_gpu_hour", sa.Text()),
        sa.Column("contracted_at", sa.Text()),
        sa.Column("milestones", sa.Text()),
        sa.Column("racks_delivered", sa.BigInteger()),
        sa.Column("gpus_delivered", sa.BigInteger()),
        sa.Column("first_delivered_at", sa.Text()),
        sa.Column("last_delivered_at", sa.Text()),
        sa.Column("deliveries", sa.Text()),
        sa.Column("delays", sa.BigInteger()),
        sa.Column("max_delay_days", sa.Text()),
        sa.Column("credits", sa.BigInteger()),
        sa.Column("credits_usd", sa.Text()),
        sa.Column("racks_retired", sa.BigInteger()),
        sa.Column("gpus_retired", sa.BigInteger()),
        sa.Column("retirements", sa.Text()),
        sa.Column("requests", sa.BigInteger()),
        sa.Column("input_tokens", sa.BigInteger()),
        sa.Column("output_tokens", sa.BigInteger()),
        sa.Column("inference_cost", sa.Text()),
        sa.Column("status", sa.Text()),
    )
    op.create_table(
        "view_rack_usage",
        sa.Column("row_key", KEY_TEXT, primary_key=True, autoincrement=False),
        sa.Column("tranche_id", KEY_TEXT, nullable=False),
        sa.Column("hour", KEY_TEXT, nullable=False),
        sa.Column("tenant", sa.Text()),
        sa.Column("requests", sa.BigInteger()),
        sa.Column("input_tokens", sa.BigInteger()),
        sa.Column("output_tokens", sa.BigInteger()),
        sa.Column("gpus_in_service", sa.BigInteger()),
    )
    op.create_index("ix_view_rack_usage_hour", "view_rack_usage", ["hour"])


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.drop_table(name)
    op.drop_table("projector_checkpoints")
