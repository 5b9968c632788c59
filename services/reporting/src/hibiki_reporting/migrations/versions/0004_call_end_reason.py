"""Why each call ended (CallEnded's reason), kept on the call record.

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
    # 0002 creates the tables from the current table definitions, so a new database has the column already;
    # only databases made before this revision need it added. Records folded before it keep "" until a new
    # fact of their call folds them again; their outcomes and the daily figures do not depend on it.
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("call_records")}
    if "end_reason" not in existing:
        op.add_column(
            "call_records", sa.Column("end_reason", sa.String(32), nullable=False, server_default="")
        )


def downgrade() -> None:
    op.drop_column("call_records", "end_reason")
