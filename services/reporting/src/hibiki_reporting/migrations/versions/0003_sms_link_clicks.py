"""Short-link clicks of SMS records, and whether the caller keyed the recipient in.

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
    # 0002 creates the tables from the current table definitions, so a new database has the columns already;
    # only databases made before this revision need them added.
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("sms_records")}
    if "clicks" not in existing:
        op.add_column("sms_records", sa.Column("clicks", sa.Integer, nullable=False, server_default="0"))
    if "first_click_time" not in existing:
        op.add_column("sms_records", sa.Column("first_click_time", sa.DateTime(timezone=True)))
    if "recipient_captured" not in existing:
        op.add_column(
            "sms_records",
            sa.Column("recipient_captured", sa.Boolean, nullable=False, server_default=sa.false()),
        )


def downgrade() -> None:
    op.drop_column("sms_records", "recipient_captured")
    op.drop_column("sms_records", "first_click_time")
    op.drop_column("sms_records", "clicks")
