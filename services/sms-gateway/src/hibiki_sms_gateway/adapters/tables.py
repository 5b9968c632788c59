"""Tables of the sms-gateway database (boxes and their revisions, messages, parts, receipts, opt-outs)."""

from __future__ import annotations

from hibiki.common.v1.envelope_pb2 import Envelope
from hibiki.sms.v1.sms_requests_pb2 import SmsRequest, SmsRequested
from hibiki_runtime.contract import stores
from hibiki_runtime.instances import instances_table
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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
    # The process that sends it while it is queued or submitting (an sms_instances id).
    Column("owner", String(64), nullable=True),
    # When it was marked submitting (its parts went on the wire right after): what a receipt's submit date
    # is matched against when the SMSC's message id was lost (updated_at moves on with later states).
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Index("ix_sms_messages_recipient", "tenant_id", "recipient", "created_at"),
    Index("ix_sms_messages_state", "state", "updated_at"),
)

# Carrier message ids are unique only per connector (SMSC account) and for a while: SMSCs restart their
# numbering and wrap around. A receipt names the latest part of its connector submitted before it arrived.
sms_message_parts = Table(
    "sms_message_parts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # "smpp:<system_id>@<host>:<port>", "kannel:…"; "" for parts stored before connectors were named.
    Column("connector", String(200), nullable=False),
    Column("carrier_message_id", String(100), nullable=False),
    Column("request_id", String(200), nullable=False, index=True),
    Column("part_number", Integer, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["request_id"], ["sms_messages.request_id"], ondelete="CASCADE"),
    Index("ix_sms_message_parts_carrier_id", "carrier_message_id", "submitted_at"),
)

# Receipts land here first: a receipt can arrive before the submit response is committed. One receipt of a
# part is kept once however often the SMSC sends it (receipt_key: its submit date, else the day it came).
sms_receipts = Table(
    "sms_receipts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("connector", String(200), nullable=False),
    Column("carrier_message_id", String(100), nullable=False),
    Column("receipt_key", String(20), nullable=False),
    Column("state", String(10), nullable=False),
    Column("error_code", String(20), nullable=False),
    # The handset's number and the SMSC's submit date: what matches a receipt whose part was never stored.
    Column("recipient", String(32), nullable=False),
    Column("submit_date", String(12), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # 0 while it waits for its part, 1 once matched to one (part_id), 2 given up (it matched nothing).
    Column("applied", Integer, nullable=False, default=0),
    Column("part_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True, index=True),
    UniqueConstraint("connector", "carrier_message_id", "receipt_key", name="uq_sms_receipts_part"),
    Index("ix_sms_receipts_pending", "applied", "received_at"),
    Index("ix_sms_receipts_received_at", "received_at"),  # retention
)

# Live sms-gateway processes: each heartbeats here; messages it owns (queued or submitting) whose owner
# stopped heartbeating are taken over by another (queued ones are sent, submitting ones reconciled).
sms_instances = instances_table(metadata, "sms_instances")

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
