"""Parts and receipts keyed by connector and time (carrier message ids are reused), message owners.

Revision ID: 0004
Revises: 0003

Carrier message ids were unique across everything; an SMSC that numbers from 1 again after a restart (or
wraps around, or a second account) made the insert of new parts fail. Parts and receipts get a surrogate
key; a part is found by its connector, its id and when it was submitted. Parts and receipts kept from
before have connector "" (matched for any connector). Messages get an owner (the process that sends them)
and the time they went on the wire; live processes heartbeat in sms_instances.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    op.add_column("sms_messages", sa.Column("owner", sa.String(64), nullable=True))
    op.add_column("sms_messages", sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sms_instances",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "sms_message_parts_v4",
        _id(),
        sa.Column("connector", sa.String(200), nullable=False),
        sa.Column("carrier_message_id", sa.String(100), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("part_number", sa.Integer, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["sms_messages.request_id"], ondelete="CASCADE"),
    )
    op.execute(
        "INSERT INTO sms_message_parts_v4"
        " (connector, carrier_message_id, request_id, part_number, submitted_at)"
        " SELECT '', p.carrier_message_id, p.request_id, p.part_number, m.updated_at"
        " FROM sms_message_parts p JOIN sms_messages m ON m.request_id = p.request_id"
    )
    op.drop_table("sms_message_parts")
    op.rename_table("sms_message_parts_v4", "sms_message_parts")
    op.create_index("ix_sms_message_parts_request_id", "sms_message_parts", ["request_id"])
    op.create_index(
        "ix_sms_message_parts_carrier_id", "sms_message_parts", ["carrier_message_id", "submitted_at"]
    )

    op.create_table(
        "sms_receipts_v4",
        _id(),
        sa.Column("connector", sa.String(200), nullable=False),
        sa.Column("carrier_message_id", sa.String(100), nullable=False),
        sa.Column("receipt_key", sa.String(20), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("error_code", sa.String(20), nullable=False),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("submit_date", sa.String(12), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Integer, nullable=False),
        sa.Column("part_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=True),
        sa.UniqueConstraint("connector", "carrier_message_id", "receipt_key", name="uq_sms_receipts_part"),
    )
    op.execute(
        "INSERT INTO sms_receipts_v4 (connector, carrier_message_id, receipt_key, state, error_code,"
        " recipient, submit_date, received_at, applied)"
        " SELECT '', carrier_message_id, '', state, error_code, '', '', received_at, applied"
        " FROM sms_receipts"
    )
    op.drop_table("sms_receipts")
    op.rename_table("sms_receipts_v4", "sms_receipts")
    op.create_index("ix_sms_receipts_pending", "sms_receipts", ["applied", "received_at"])
    op.create_index("ix_sms_receipts_part_id", "sms_receipts", ["part_id"])
    op.create_index("ix_sms_receipts_received_at", "sms_receipts", ["received_at"])  # retention


def downgrade() -> None:
    raise NotImplementedError("0004 keys parts by connector; going back would lose reused message ids")
