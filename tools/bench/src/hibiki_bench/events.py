"""The records the benchmark produces, built from the real contracts (as the telephony platform and
routing would send them)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from hibiki.call.v1 import call_events_pb2
from hibiki.sms.v1 import sms_requests_pb2
from hibiki_runtime.events import new_envelope, record_headers

from hibiki_bench.environment import TENANT
from hibiki_bench.kafka_load import Outgoing


def _outgoing(key: str, message: Message) -> Outgoing:
    return key.encode(), message.SerializeToString(), record_headers(message)


def _call_event(call_id: str, event_id: str, field: str, body: Message) -> Outgoing:
    event = call_events_pb2.CallEvent(call_id=call_id)
    getattr(event, field).CopyFrom(body)
    event.envelope.CopyFrom(new_envelope(TENANT, body, event_id=event_id, occurred_at=datetime.now(UTC)))
    return _outgoing(call_id, event)


def call_started(call_id: str, dialed: str, caller: str) -> Outgoing:
    body = call_events_pb2.CallStarted(dialed_number=dialed, caller_number=caller)
    return _call_event(call_id, f"{call_id}:started", "call_started", body)


def digits_collected(call_id: str, step: int, digits: str) -> Outgoing:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:{step}", digits=digits)
    return _call_event(call_id, f"{call_id}:digits:{step}", "digits_collected", body)


def call_ended(call_id: str) -> Outgoing:
    body = call_events_pb2.CallEnded(reason=call_events_pb2.END_REASON_CALLER_HANGUP)
    return _call_event(call_id, f"{call_id}:ended", "call_ended", body)


def sms_requested(request_id: str, box_number: str, recipient: str) -> Outgoing:
    body = sms_requests_pb2.SmsRequested(call_id=request_id, box_number=box_number, recipient=recipient)
    request = sms_requests_pb2.SmsRequest(request_id=request_id, sms_requested=body)
    request.envelope.CopyFrom(new_envelope(TENANT, body, event_id=f"{request_id}:requested"))
    return _outgoing(request_id, request)
