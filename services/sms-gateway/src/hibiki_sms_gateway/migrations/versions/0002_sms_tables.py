"""SMS boxes and revisions, messages and their parts, delivery receipts, opt-outs.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "sms_boxes",
        sa.Column("tenant_id", sa.String(100), primary_key=True),
        sa.Column("box_number", sa.String(32), primary_key=True),
        sa.Column("box_name", sa.String(100), nullable=False),
        sa.Column("message_text", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        _when("created_at"),
        _when("updated_at"),
    )
    op.create_table(
        "sms_box_revisions",
        sa.Column("tenant_id", sa.String(100), primary_key=True),
        sa.Column("box_number", sa.String(32), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("actor", sa.String(200), nullable=False),
        _when("changed_at"),
        sa.Column("message_text_before", sa.Text, nullable=False),
        sa.Column("message_text_after", sa.Text, nullable=False),
        sa.Column("url_before", sa.Text, nullable=False),
        sa.Column("url_after", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "box_number"], ["sms_boxes.tenant_id", "sms_boxes.box_number"], ondelete="CASCADE"
        ),
    )
    op.create_table(
        "sms_messages",
        sa.Column("request_id", sa.String(200), primary_key=True),
        sa.Column("tenant_id", sa.String(100), nullable=False),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("carrier", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("box_number", sa.String(32), nullable=False),
        sa.Column("box_name", sa.String(100), nullable=False),
        sa.Column("box_revision", sa.Integer, nullable=False),
        sa.Column("message_text", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("rendered_text", sa.Text, nullable=False),
        sa.Column("segments", sa.Integer, nullable=False),
        _when("created_at"),
        _when("updated_at"),
    )
    op.create_index("ix_sms_messages_recipient", "sms_messages", ["tenant_id", "recipient", "created_at"])
    op.create_index("ix_sms_messages_state", "sms_messages", ["state", "updated_at"])
    op.create_table(
        "sms_message_parts",
        sa.Column("carrier_message_id", sa.String(100), primary_key=True),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("part_number", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["sms_messages.request_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_sms_message_parts_request_id", "sms_message_parts", ["request_id"])
    op.create_table(
        "sms_receipts",
        sa.Column("carrier_message_id", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("error_code", sa.String(20), nullable=False),
        _when("received_at"),
        sa.Column("applied", sa.Integer, nullable=False),
    )
    op.create_index("ix_sms_receipts_applied", "sms_receipts", ["applied"])
    op.create_table(
        "sms_opt_outs",
        sa.Column("tenant_id", sa.String(100), primary_key=True),
        sa.Column("recipient", sa.String(32), primary_key=True),
        _when("created_at"),
    )


def downgrade() -> None:
    for table in (
        "sms_opt_outs",
        "sms_receipts",
        "sms_message_parts",
        "sms_messages",
        "sms_box_revisions",
        "sms_boxes",
    ):
        op.drop_table(table)
