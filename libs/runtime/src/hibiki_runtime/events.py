"""The four topics, their message types, envelopes, and strict decoding with reasons for the DLQ."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError, Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.common.v1 import envelope_pb2
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2

from hibiki_runtime import contract

CALL_EVENTS = "call.events"
CALL_ACTIONS = "call.actions"
SMS_REQUESTS = "sms.requests"
SMS_RESULTS = "sms.results"
DLQ_SUFFIX = ".dlq"

TOPIC_MESSAGES: Mapping[str, type[Message]] = {
    CALL_EVENTS: call_events_pb2.CallEvent,
    CALL_ACTIONS: call_actions_pb2.CallAction,
    SMS_REQUESTS: sms_requests_pb2.SmsRequest,
    SMS_RESULTS: sms_results_pb2.SmsResult,
}
# The field of each topic message whose value is the record key: all records about one call (or one SMS
# request) share a partition, so they are consumed in order.
TOPIC_KEYS: Mapping[str, str] = {
    CALL_EVENTS: "call_id",
    CALL_ACTIONS: "call_id",
    SMS_REQUESTS: "request_id",
    SMS_RESULTS: "request_id",
}
ALL_TOPICS = tuple(TOPIC_MESSAGES) + tuple(topic + DLQ_SUFFIX for topic in TOPIC_MESSAGES)
SUPPORTED_SCHEMA_VERSION = 1
CONTENT_TYPE = "application/x-protobuf"


# Every instant Hibiki deals with (calls, reports, schedules) lies well inside this window; outside it, date
# arithmetic (time zones, business days) can overflow.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)


def timestamp_of(at: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


def timestamp_problem(stamp: timestamp_pb2.Timestamp) -> str:
    """Why a protobuf timestamp cannot be used ("" when it can): invalid, or outside 1970–2199."""
    try:
        at = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return "is not a valid timestamp"
    if not EARLIEST_TIMESTAMP <= at < LATEST_TIMESTAMP:
        return "must be between 1970 and 2199"
    return ""


def traceparent_for(key: str) -> str:
    """A W3C traceparent derived from a key (e.g. a call id), so that every event about it shares a trace."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-01"


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


class InvalidEvent(Exception):
    """A record that can never be processed; it goes to the DLQ with `reason` (a short code) and detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def new_envelope(
    tenant_id: str,
    body: Message,
    *,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    causation_id: str = "",
    traceparent: str = "",
) -> envelope_pb2.Envelope:
    """Envelope for `body`; pass a deterministic event_id whenever the producer can derive one."""
    envelope = envelope_pb2.Envelope(
        event_id=event_id or str(uuid.uuid4()),
        tenant_id=tenant_id,
        schema=body.DESCRIPTOR.full_name,
        schema_version=SUPPORTED_SCHEMA_VERSION,
        causation_id=causation_id,
        traceparent=traceparent,
    )
    envelope.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    return envelope


def body_of(message: Message) -> Message:
    """The event inside a topic message (the set member of its `body` oneof)."""
    which = message.WhichOneof("body")
    if which is None:
        raise InvalidEvent("unknown_schema", f"{message.DESCRIPTOR.full_name} carries no known body")
    body: Message = getattr(message, which)
    return body


@dataclass(frozen=True)
class DecodedEvent:
    """A validated topic message with its envelope and body at hand."""

    message: Message
    envelope: envelope_pb2.Envelope
    body: Message

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenant_id


def decode_event(topic: str, value: bytes | None) -> DecodedEvent:
    """Parse and check a record of `topic` (envelope, then the contract's field rules); raises InvalidEvent
    with a DLQ reason."""
    message_type = TOPIC_MESSAGES.get(topic)
    if message_type is None:
        raise InvalidEvent("unknown_topic", f"no contract for topic {topic!r}")
    if not value:
        raise InvalidEvent("malformed", "empty record value")
    message = message_type()
    try:
        message.ParseFromString(value)
    except DecodeError as error:
        raise InvalidEvent("malformed", f"not a {message_type.DESCRIPTOR.full_name}: {error}") from error
    envelope: envelope_pb2.Envelope = message.envelope  # type: ignore[attr-defined]
    if not message.HasField("envelope"):
        raise InvalidEvent("missing_envelope", "record has no envelope")
    if not envelope.event_id:
        raise InvalidEvent("missing_event_id", "envelope.event_id is empty")
    if not envelope.tenant_id:
        raise InvalidEvent("missing_tenant", "envelope.tenant_id is empty")
    # Consumers compute with it (Tokyo days, retention); a bad one must not crash them batch after batch.
    if envelope.HasField("occurred_at") and (problem := timestamp_problem(envelope.occurred_at)):
        raise InvalidEvent("invalid_occurred_at", f"envelope.occurred_at {problem}")
    body = body_of(message)
    if envelope.schema != body.DESCRIPTOR.full_name:
        raise InvalidEvent(
            "schema_mismatch", f"envelope.schema {envelope.schema!r} but body is {body.DESCRIPTOR.full_name}"
        )
    if envelope.schema_version != SUPPORTED_SCHEMA_VERSION:
        raise InvalidEvent(
            "unsupported_schema_version",
            f"{envelope.schema} version {envelope.schema_version} (supported: {SUPPORTED_SCHEMA_VERSION})",
        )
    if broken := contract.violations(message):
        raise InvalidEvent("invalid_field", "; ".join(f"{v.field}: {v.description}" for v in broken))
    return DecodedEvent(message=message, envelope=envelope, body=body)


def record_headers(message: Message) -> list[tuple[str, bytes]]:
    """Kafka headers that let tools route and inspect a record without decoding it."""
    envelope: envelope_pb2.Envelope = message.envelope  # type: ignore[attr-defined]
    headers = [
        ("content-type", CONTENT_TYPE.encode()),
        ("schema", envelope.schema.encode()),
        ("event-id", envelope.event_id.encode()),
        ("tenant-id", envelope.tenant_id.encode()),
    ]
    if envelope.traceparent:
        headers.append(("traceparent", envelope.traceparent.encode()))
    return headers
