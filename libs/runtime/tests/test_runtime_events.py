import pytest
from hibiki.call.v1 import call_events_pb2
from hibiki_runtime.events import CALL_EVENTS, InvalidEvent, decode_event, new_envelope, record_headers


def valid_event() -> call_events_pb2.CallEvent:
    body = call_events_pb2.CallStarted(dialed_number="+81312345678", caller_number="+819012345678")
    event = call_events_pb2.CallEvent(call_id="c1", call_started=body)
    event.envelope.CopyFrom(new_envelope("tenant-a", body, event_id="c1:started"))
    return event


def reason_for(value: bytes, topic: str = CALL_EVENTS) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(topic, value)
    return caught.value.reason


def test_valid_event_decodes_with_its_body() -> None:
    decoded = decode_event(CALL_EVENTS, valid_event().SerializeToString())
    assert decoded.event_id == "c1:started"
    assert decoded.tenant_id == "tenant-a"
    assert isinstance(decoded.body, call_events_pb2.CallStarted)
    assert decoded.envelope.schema == "hibiki.call.v1.CallStarted"


def test_garbage_is_malformed() -> None:
    assert reason_for(b"\xff\xfe not protobuf") == "malformed"
    assert reason_for(b"") == "malformed"


def test_envelope_fields_are_required() -> None:
    event = valid_event()
    event.ClearField("envelope")
    assert reason_for(event.SerializeToString()) == "missing_envelope"
    event = valid_event()
    event.envelope.event_id = ""
    assert reason_for(event.SerializeToString()) == "missing_event_id"
    event = valid_event()
    event.envelope.tenant_id = ""
    assert reason_for(event.SerializeToString()) == "missing_tenant"


def test_unknown_body_schema_and_version_are_refused() -> None:
    event = valid_event()
    event.ClearField("call_started")
    assert reason_for(event.SerializeToString()) == "unknown_schema"
    event = valid_event()
    event.envelope.schema = "hibiki.call.v1.CallEnded"
    assert reason_for(event.SerializeToString()) == "schema_mismatch"
    event = valid_event()
    event.envelope.schema_version = 2
    assert reason_for(event.SerializeToString()) == "unsupported_schema_version"


def test_unknown_topic_is_refused() -> None:
    assert reason_for(valid_event().SerializeToString(), topic="other.topic") == "unknown_topic"


def test_headers_repeat_schema_event_id_and_tenant() -> None:
    headers = dict(record_headers(valid_event()))
    assert headers["schema"] == b"hibiki.call.v1.CallStarted"
    assert headers["event-id"] == b"c1:started"
    assert headers["tenant-id"] == b"tenant-a"


@pytest.mark.parametrize(("seconds", "nanos"), [(0, -1), (-(2**62), 0), (253402300000, 0), (-86400, 0)])
def test_events_with_unusable_occurred_at_are_invalid_not_a_crash(seconds: int, nanos: int) -> None:
    event = valid_event()
    event.envelope.occurred_at.seconds, event.envelope.occurred_at.nanos = seconds, nanos
    assert reason_for(event.SerializeToString()) == "invalid_occurred_at"


def test_a_missing_occurred_at_breaks_the_contract() -> None:
    event = valid_event()
    event.envelope.ClearField("occurred_at")
    with pytest.raises(InvalidEvent) as caught:
        decode_event(CALL_EVENTS, event.SerializeToString())
    assert (caught.value.reason, caught.value.detail) == (
        "invalid_field",
        "envelope.occurred_at: value is required",
    )


def test_field_limits_of_the_contract_are_enforced_with_the_field_named() -> None:
    event = valid_event()
    event.call_started.dialed_number = "+81312345678\n"
    with pytest.raises(InvalidEvent) as caught:
        decode_event(CALL_EVENTS, event.SerializeToString())
    assert caught.value.reason == "invalid_field"
    assert caught.value.detail.startswith("call_started.dialed_number: does not match regex pattern")
