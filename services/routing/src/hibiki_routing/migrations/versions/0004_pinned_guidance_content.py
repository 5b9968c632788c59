"""The guidance content revisions a published version plays (pinned in guidance-tts when it was published).

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
    op.add_column("flow_versions", sa.Column("content_revisions", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_versions") as batch:
        batch.drop_column("content_revisions")
