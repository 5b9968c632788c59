"""The report's tables: facts as received (the source of truth) and records folded from them."""

from __future__ import annotations

from hibiki.call.v1.call_actions_pb2 import CallAction, PlayAndCollect
from hibiki.call.v1.call_events_pb2 import CallEvent, CallStarted
from hibiki.common.v1.envelope_pb2 import Envelope
from hibiki.sms.v1.sms_requests_pb2 import SmsRequest, SmsRequested
from hibiki_runtime.contract import stores
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    false,
)

metadata = MetaData()

_ID = 200
# Longest EndReason name today: "platform_failure" (16); room for reasons a newer contract adds.
END_REASON_LENGTH = 32
_TENANT = stores(Envelope, "tenant_id")


def _facts_table(name: str, key: str, source: dict[str, str]) -> Table:
    return Table(
        name,
        metadata,
        Column(key, String(_ID), primary_key=True, info=source),
        Column("event_id", String(_ID), primary_key=True, info=stores(Envelope, "event_id")),
        Column("tenant_id", String(100), nullable=False, info=_TENANT),
        Column("topic", String(100), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        # The whole topic message, re-translated whenever the record is folded again.
        Column("payload", LargeBinary, nullable=False),
    )


call_facts = _facts_table("call_facts", "call_id", stores(CallEvent, "call_id"))
sms_facts = _facts_table("sms_facts", "request_id", stores(SmsRequest, "request_id"))

call_records = Table(
    "call_records",
    metadata,
    Column("call_id", String(_ID), primary_key=True, info=stores(CallEvent, "call_id")),
    Column("tenant_id", String(100), nullable=False, info=_TENANT),
    Column("report_date", Date, nullable=False),
    Column("dialed_number", String(32), nullable=False, info=stores(CallStarted, "dialed_number")),
    Column("caller_number", String(32), nullable=False, info=stores(CallStarted, "caller_number")),
    Column("start_time", DateTime(timezone=True)),
    Column("end_time", DateTime(timezone=True)),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("path", JSON, nullable=False),
    Column("abandonment", JSON),
    # CallEnded's reason as the domain names it ("caller_hangup", "platform_failure", "unknown", …; "" while
    # no end is known); added by migration 0004.
    Column("end_reason", String(END_REASON_LENGTH), nullable=False, default="", server_default=""),
    Index("ix_call_records_tenant_day", "tenant_id", "report_date", "dialed_number"),
    Index("ix_call_records_tenant_caller", "tenant_id", "caller_number"),
)

route_funnel = Table(
    "route_funnel",
    metadata,
    Column("call_id", String(_ID), primary_key=True, info=stores(CallEvent, "call_id")),
    Column("route_id", String(_ID), primary_key=True, info=stores(PlayAndCollect, "route_id")),
    Column("tenant_id", String(100), nullable=False, info=_TENANT),
    Column("report_date", Date, nullable=False),
    Column("dialed_number", String(32), nullable=False, info=stores(CallStarted, "dialed_number")),
    Column("route_name", String(200), nullable=False, info=stores(PlayAndCollect, "route_name")),
    Column("invalid_inputs", Integer, nullable=False),
    Column("timeouts", Integer, nullable=False),
    Column("abandoned", Boolean, nullable=False),
    # Route ids are unique within a flow only (added by migration 0005).
    Column(
        "flow_id",
        String(_ID),
        nullable=False,
        default="",
        server_default="",
        info=stores(CallAction, "flow_id"),
    ),
    Index("ix_route_funnel_tenant_day", "tenant_id", "report_date"),
)

sms_records = Table(
    "sms_records",
    metadata,
    Column("request_id", String(_ID), primary_key=True, info=stores(SmsRequest, "request_id")),
    Column("tenant_id", String(100), nullable=False, info=_TENANT),
    Column("report_date", Date, nullable=False),
    Column("call_id", String(_ID), nullable=False, info=stores(SmsRequested, "call_id")),
    Column("dialed_number", String(32), nullable=False, info=stores(SmsRequested, "dialed_number")),
    Column("recipient", String(32), nullable=False, info=stores(SmsRequested, "recipient")),
    Column("box_number", String(64), nullable=False, info=stores(SmsRequested, "box_number")),
    Column("route_id", String(_ID), nullable=False, info=stores(SmsRequested, "route_id")),
    Column("request_time", DateTime(timezone=True)),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("status_time", DateTime(timezone=True), nullable=False),
    Column("carrier", String(20), nullable=False),
    Column("snapshot", JSON),
    Column("timeline", JSON, nullable=False),
    # Short-link opens (added by migration 0003).
    Column("clicks", Integer, nullable=False, default=0, server_default="0"),
    Column("first_click_time", DateTime(timezone=True)),
    # The caller keyed the recipient in during the call (added by migration 0003).
    Column("recipient_captured", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_sms_records_tenant_day", "tenant_id", "report_date", "dialed_number"),
    Index("ix_sms_records_tenant_call", "tenant_id", "call_id"),
    Index("ix_sms_records_tenant_recipient", "tenant_id", "recipient"),
)

REPORT_TABLES = (call_facts, sms_facts, call_records, route_funnel, sms_records)
