"""Tables of the sms-gateway database (boxes and their revisions, messages, parts, receipts, opt-outs)."""

from __future__ import annotations

from hibiki.common.v1.envelope_pb2 import Envelope
from hibiki.sms.v1.sms_requests_pb2 import SmsRequest, SmsRequested
from hibiki_runtime.contract import stores
from sqlalchemy import Column, DateTime, ForeignKeyConstraint, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

sms_boxes = Table(
    "sms_boxes",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("box_number", String(32), primary_key=True),
    Column("box_name", String(100), nullable=False),
    Column("message_text", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sms_box_revisions = Table(
    "sms_box_revisions",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("box_number", String(32), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("actor", String(200), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("message_text_before", Text, nullable=False),
    Column("message_text_after", Text, nullable=False),
    Column("url_before", Text, nullable=False),
    Column("url_after", Text, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "box_number"], ["sms_boxes.tenant_id", "sms_boxes.box_number"], ondelete="CASCADE"
    ),
)

# One row per request_id: the idempotency record and the persisted state machine of the message.
sms_messages = Table(
    "sms_messages",
    metadata,
    Column("request_id", String(200), primary_key=True, info=stores(SmsRequest, "request_id")),
    Column("tenant_id", String(100), nullable=False, info=stores(Envelope, "tenant_id")),
    Column("recipient", String(32), nullable=False, info=stores(SmsRequested, "recipient")),
    Column("state", String(20), nullable=False),
    Column("reason", String(50), nullable=False, default=""),
    Column("carrier", String(20), nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("box_number", String(32), nullable=False, info=stores(SmsRequested, "box_number")),
    Column("box_name", String(100), nullable=False),
    Column("box_revision", Integer, nullable=False),
    Column("message_text", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("rendered_text", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_sms_messages_recipient", "tenant_id", "recipient", "created_at"),
    Index("ix_sms_messages_state", "state", "updated_at"),
)

sms_message_parts = Table(
    "sms_message_parts",
    metadata,
    Column("carrier_message_id", String(100), primary_key=True),
    Column("request_id", String(200), nullable=False, index=True),
    Column("part_number", Integer, nullable=False),
    ForeignKeyConstraint(["request_id"], ["sms_messages.request_id"], ondelete="CASCADE"),
)

# Receipts land here first: a receipt can arrive before the submit response is committed.
sms_receipts = Table(
    "sms_receipts",
    metadata,
    Column("carrier_message_id", String(100), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("error_code", String(20), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("applied", Integer, nullable=False, default=0, index=True),
)

sms_opt_outs = Table(
    "sms_opt_outs",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("recipient", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One tracked short link per sent message; clicks counts the recipient's opens (previews excluded).
sms_short_links = Table(
    "sms_short_links",
    metadata,
    Column("token", String(32), primary_key=True),
    Column("request_id", String(200), nullable=False, unique=True),
    Column("tenant_id", String(100), nullable=False),
    Column("target_url", Text, nullable=False),
    Column("short_url", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("clicks", Integer, nullable=False),
    ForeignKeyConstraint(["request_id"], ["sms_messages.request_id"], ondelete="CASCADE"),
)
