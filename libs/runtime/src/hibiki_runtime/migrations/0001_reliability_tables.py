"""Outbox and processed-event tables, shared by every service (see hibiki_runtime.db.RUNTIME_VERSIONS).

Revision ID: 0001
Revises:
"""

from alembic import op
from hibiki_runtime.outbox import create_reliability_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_reliability_tables(op)


def downgrade() -> None:
    op.drop_table("processed_events")
    op.drop_table("outbox")
