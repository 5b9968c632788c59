"""Report tables: call and SMS facts, call and SMS records, per-route funnel entries.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from hibiki_reporting.adapters.tables import REPORT_TABLES, metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=list(REPORT_TABLES))


def downgrade() -> None:
    for table in reversed(REPORT_TABLES):
        op.drop_table(table.name)
