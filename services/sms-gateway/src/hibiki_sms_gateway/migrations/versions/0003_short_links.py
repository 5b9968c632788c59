"""Tracked short links of sent messages.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_short_links",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(200), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(100), nullable=False),
        sa.Column("target_url", sa.Text, nullable=False),
        sa.Column("short_url", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clicks", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["sms_messages.request_id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("sms_short_links")
