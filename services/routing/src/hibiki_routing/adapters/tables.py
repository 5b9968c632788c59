"""Tables of routing: flow drafts, their immutable published versions, live call state, blocked callers."""

from __future__ import annotations

from hibiki.call.v1.call_events_pb2 import CallEvent, CallStarted
from hibiki.common.v1.envelope_pb2 import Envelope
from hibiki_runtime.contract import stores
from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, String, Table, Text

metadata = MetaData()

flows = Table(
    "flows",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(100), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    # A number rings at one tenant only, so it is unique across tenants.
    Column("dialed_number", String(20), nullable=False, unique=True),
    Column("definition", JSON, nullable=False),
    # " id1 id2 " of every guidance the draft plays, for search by guidance.
    Column("guidance_ids", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("published_version", Integer, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("flow_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("tenant_id", String(100), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("publish_time", DateTime(timezone=True), nullable=False),
    Column("published_by", String(200), nullable=False),
    # Guidance id → content revision pinned in guidance-tts (migration 0004); NULL when published without
    # guidance-tts or before pinning existed: the version then plays the guidances as they are now.
    Column("content_revisions", JSON, nullable=True),
)

call_states = Table(
    "call_states",
    metadata,
    Column("call_id", String(200), primary_key=True, info=stores(CallEvent, "call_id")),
    Column("tenant_id", String(100), nullable=False, info=stores(Envelope, "tenant_id")),
    # Empty for calls to a number without a published flow.
    Column("flow_id", String(36), nullable=False),
    Column("flow_version", Integer, nullable=False),
    Column("dialed_number", String(20), nullable=False, info=stores(CallStarted, "dialed_number")),
    # Only a caller an SMS can reach is kept: an E.164 number (at most 16 characters), or "".
    Column("caller_number", String(20), nullable=False),
    Column("node_id", String(200), nullable=False),
    Column("awaiting_step", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("invalid_attempts", JSON, nullable=False),
    Column("timeout_attempts", JSON, nullable=False),
    Column("ended", Boolean, nullable=False),
    # Mobile number capture in progress: "number" or "confirm", and the number keyed (a mobile, E.164).
    Column("capture_phase", String(10), nullable=False, server_default=""),
    Column("captured_number", String(20), nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

blocked_numbers = Table(
    "blocked_numbers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("number", String(20), primary_key=True),
    Column("note", String(200), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)
