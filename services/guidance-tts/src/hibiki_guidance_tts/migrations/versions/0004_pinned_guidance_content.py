"""Pinned guidance content: what a published flow version plays stays as it was published.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guidance_contents",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("guidance_id", sa.String(36), primary_key=True),
        sa.Column("content_revision", sa.Integer, primary_key=True),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "guidance_id", "cache_key", name="uq_guidance_contents_key"),
    )
    op.add_column("guidance_usages", sa.Column("content_revision", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guidance_usages") as batch:
        batch.drop_column("content_revision")
    op.drop_table("guidance_contents")
