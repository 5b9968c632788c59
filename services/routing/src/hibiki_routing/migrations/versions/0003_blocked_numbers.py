"""The tenants' blocklists of caller numbers; mobile number capture state of calls.

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
        "blocked_numbers",
        sa.Column("tenant_id", sa.String(100), primary_key=True),
        sa.Column("number", sa.String(20), primary_key=True),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("call_states", sa.Column("capture_phase", sa.String(10), nullable=False, server_default=""))
    op.add_column(
        "call_states", sa.Column("captured_number", sa.String(20), nullable=False, server_default="")
    )


def downgrade() -> None:
    op.drop_column("call_states", "captured_number")
    op.drop_column("call_states", "capture_phase")
    op.drop_table("blocked_numbers")
