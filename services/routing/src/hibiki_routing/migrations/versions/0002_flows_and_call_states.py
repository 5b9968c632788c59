"""Flows, published flow versions and per-call state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dialed_number", sa.String(20), nullable=False, unique=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("guidance_ids", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("published_version", sa.Integer, nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_flows_tenant_id", "flows", ["tenant_id"])
    op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.String(100), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("publish_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "call_states",
        sa.Column("call_id", sa.String(200), primary_key=True),
        sa.Column("tenant_id", sa.String(100), nullable=False),
        sa.Column("flow_id", sa.String(36), nullable=False),
        sa.Column("flow_version", sa.Integer, nullable=False),
        sa.Column("dialed_number", sa.String(20), nullable=False),
        sa.Column("caller_number", sa.String(20), nullable=False),
        sa.Column("node_id", sa.String(200), nullable=False),
        sa.Column("awaiting_step", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("invalid_attempts", sa.JSON, nullable=False),
        sa.Column("timeout_attempts", sa.JSON, nullable=False),
        sa.Column("ended", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_call_states_updated_at", "call_states", ["updated_at"])


def downgrade() -> None:
    op.drop_table("call_states")
    op.drop_table("flow_versions")
    op.drop_index("ix_flows_tenant_id", "flows")
    op.drop_table("flows")
