"""Route funnel rows name their flow: route ids are unique within a flow only.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # As in 0004: a database made from the current table definitions (0002) has the column already. Rows
    # written before this revision keep "" until their call is folded again.
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("route_funnel")}
    if "flow_id" not in existing:
        op.add_column("route_funnel", sa.Column("flow_id", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("route_funnel", "flow_id")
