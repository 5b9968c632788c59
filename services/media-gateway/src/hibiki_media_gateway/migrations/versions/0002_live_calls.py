"""Calls in progress and the media-gateway processes that carry them.

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
        "media_instances",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "media_calls",
        sa.Column("call_id", sa.String(100), primary_key=True),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(100), nullable=False),
        sa.Column("dialed_number", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_media_calls_instance_id", "media_calls", ["instance_id"])


def downgrade() -> None:
    op.drop_table("media_calls")
    op.drop_table("media_instances")
