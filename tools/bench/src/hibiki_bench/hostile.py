"""Hostile records for the consumers: valid events of every body of every topic, each record class that once
stopped a consumer, and variants with one field set to a value that breaks careless consumers.

Used by the consumer tests (tests/integration) and by `make soak`, which feeds thousands of them to the
running services.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2 as actions
from hibiki.call.v1 import call_events_pb2 as events
from hibiki.sms.v1 import sms_requests_pb2 as requests
from hibiki.sms.v1 import sms_results_pb2 as results
from hibiki_runtime.events import (
    CALL_ACTIONS,
    CALL_EVENTS,
    SMS_REQUESTS,
    SMS_RESULTS,
    TOPIC_MESSAGES,
    body_of,
)
from hibiki_runtime.events import new_envelope as envelope_of

GOOD_TENANT = "t-good"


def topic_message(topic: str, key: str, body_field: str, body: Message, tenant: str = GOOD_TENANT) -> Message:
    """A message of `topic` about call or request `key` with a fresh envelope."""
    message_type = TOPIC_MESSAGES[topic]
    key_field = "call_id" if topic in (CALL_EVENTS, CALL_ACTIONS) else "request_id"
    message = message_type(**{key_field: key, body_field: body})
    extra = {"action_id": f"{key}:1", "step": 1} if topic == CALL_ACTIONS else {}
    for name, value in extra.items():
        setattr(message, name, value)
    message.envelope.CopyFrom(envelope_of(tenant, body_of(message), event_id=f"{key}:{body_field}"))  # type: ignore[attr-defined]
    return message


def every_body(topic: str, key: str, tenant: str = GOOD_TENANT) -> list[Message]:
    """A valid message of each body kind of `topic`, about call or request `key`."""
    snapshot = results.MessageSnapshot(
        box_number="100", box_name="資料請求", message_text="こちら", url="https://example.jp/a", segments=1
    )
    bodies: dict[str, dict[str, Message]] = {
        CALL_EVENTS: {
            "call_started": events.CallStarted(dialed_number="+81312345678", caller_number="+819012345678"),
            "digits_collected": events.DigitsCollected(action_id=f"{key}:1", digits="1"),
            "input_timed_out": events.InputTimedOut(
                action_id=f"{key}:1", kind=events.TIMEOUT_KIND_FIRST_DIGIT
            ),
            "prompt_finished": events.PromptFinished(action_id=f"{key}:2"),
            "call_transferred": events.CallTransferred(action_id=f"{key}:2", destination="+81356780900"),
            "call_ended": events.CallEnded(
                reason=events.END_REASON_CALLER_HANGUP, during_action_id=f"{key}:1"
            ),
        },
        CALL_ACTIONS: {
            "play_and_collect": actions.PlayAndCollect(
                prompts=[actions.Prompt(guidance_id="g1", text="ご用件の番号を押してください")],
                max_digits=1,
                terminator="#",
                route_id="menu",
                route_name="メニュー",
                reason=actions.PROMPT_REASON_INITIAL,
            ),
            "play": actions.Play(prompts=[actions.Prompt(text="お知らせ")], route_id="info"),
            "transfer": actions.Transfer(destination="+81356780900", route_id="operator"),
            "hangup": actions.Hangup(reason="completed", route_id="sms"),
        },
        SMS_REQUESTS: {
            "sms_requested": requests.SmsRequested(
                call_id=key, box_number="100", recipient="+819012345678", dialed_number="+81312345678"
            ),
        },
        SMS_RESULTS: {
            "sms_accepted": results.SmsAccepted(
                carrier=results.CARRIER_DOCOMO,
                carrier_message_ids=["m1"],
                snapshot=snapshot,
                reason="accepted",
            ),
            "sms_delivered": results.SmsDelivered(carrier=results.CARRIER_KDDI, reason="DELIVRD"),
            "sms_undelivered": results.SmsUndelivered(reason="UNDELIV", error_code="011"),
            "sms_rejected": results.SmsRejected(reason=results.REJECT_REASON_UNKNOWN_BOX, detail="no box"),
            "sms_failed": results.SmsFailed(reason="retries_exhausted", attempts=3),
            "sms_link_clicked": results.SmsLinkClicked(click_number=1, url="https://example.jp/a"),
        },
    }
    return [topic_message(topic, key, name, body, tenant) for name, body in bodies[topic].items()]


def good_event(topic: str) -> tuple[str, Message]:
    """(key, event) of a fresh call or SMS that the consumer must handle whatever surrounds it."""
    key = f"good-{uuid.uuid4().hex}"
    body_field = {
        CALL_EVENTS: "call_started",
        CALL_ACTIONS: "hangup",
        SMS_REQUESTS: "sms_requested",
        SMS_RESULTS: "sms_rejected",
    }[topic]
    (message,) = [m for m in every_body(topic, key) if m.WhichOneof("body") == body_field]
    return key, message


def measured_classes(tenant: str) -> dict[str, list[tuple[str, bytes]]]:
    """(key, value) per topic of each record class that once stopped a consumer for good."""
    key = f"hostile-{uuid.uuid4().hex[:8]}"

    def sample(topic: str, body_field: str, body: Message, **changes: str) -> tuple[str, bytes]:
        message = topic_message(topic, key, body_field, body, tenant)
        envelope = message.envelope  # type: ignore[attr-defined]
        for name, value in changes.items():
            target = envelope if name in ("event_id", "tenant_id") else message
            setattr(target, name, value)
        return key, message.SerializeToString()

    started = events.CallStarted(dialed_number="+81312345678", caller_number="+819012345678")
    request = requests.SmsRequested(call_id=key, box_number="100", recipient="+819012345678")
    return {
        CALL_EVENTS: [
            sample(CALL_EVENTS, "digits_collected", events.DigitsCollected(action_id=f"{key}:²", digits="1")),
            sample(CALL_EVENTS, "call_ended", events.CallEnded(reason=999)),  # type: ignore[arg-type]
            sample(CALL_EVENTS, "call_started", started, event_id="e" * 201),
            sample(CALL_EVENTS, "call_started", started, tenant_id="t" * 101),
            sample(CALL_EVENTS, "call_started", events.CallStarted(dialed_number="+81" + "3" * 30)),
            sample(CALL_EVENTS, "call_started", started, call_id="c" * 201),
            (key, b"\x0a\x05abc"),  # field 1 announces five bytes, three follow
        ],
        CALL_ACTIONS: [
            sample(CALL_ACTIONS, "hangup", actions.Hangup(reason="completed", route_id="r" * 101)),
            sample(CALL_ACTIONS, "play_and_collect", actions.PlayAndCollect(reason=999)),  # type: ignore[arg-type]
        ],
        SMS_REQUESTS: [
            sample(SMS_REQUESTS, "sms_requested", requests.SmsRequested(box_number="1" * 65)),
            sample(SMS_REQUESTS, "sms_requested", request, request_id="r" * 201),
            sample(SMS_REQUESTS, "sms_requested", request, tenant_id="t" * 101),
        ],
        SMS_RESULTS: [
            sample(SMS_RESULTS, "sms_rejected", results.SmsRejected(reason=999)),  # type: ignore[arg-type]
            sample(SMS_RESULTS, "sms_delivered", results.SmsDelivered(carrier=999, reason="DELIVRD")),  # type: ignore[arg-type]
            sample(SMS_RESULTS, "sms_accepted", results.SmsAccepted(carrier_message_ids=["x" * 101])),
        ],
    }


# ---- one hostile field at a time ------------------------------------------------------------

_HOSTILE_STRINGS = ("", "\x00", "a\x00b", "²", "c:²", "a\nb", "𠮷野家", "9" * 33, "e" * 201, "あ" * 4001)
_HOSTILE_NUMBERS = {
    FieldDescriptor.TYPE_UINT32: (2**32 - 1,),
    FieldDescriptor.TYPE_UINT64: (2**64 - 1,),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_BOOL: (True,),
}
_HOSTILE_WELL_KNOWN = {
    "google.protobuf.Timestamp": ((-1, 0), (253402300800, 0), (0, 999_999_999)),
    "google.protobuf.Duration": ((-1, 0), (315576000000, 0), (10**9, 0)),
}


def leaf_paths(descriptor: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every scalar, enum and well-known field under `descriptor` (nested messages walked), as name paths."""
    paths: list[tuple[str, ...]] = []
    for field in descriptor.fields:
        path = (*prefix, field.name)
        if field.message_type is None or field.message_type.full_name in _HOSTILE_WELL_KNOWN:
            paths.append(path)
        elif len(prefix) < 4:
            paths += leaf_paths(field.message_type, path)
    return paths


def hostile_values(field: Any) -> tuple[Any, ...]:
    """Values of the field's type that a careless consumer stumbles on."""
    if field.message_type is not None:
        return _HOSTILE_WELL_KNOWN[field.message_type.full_name]
    if field.type == FieldDescriptor.TYPE_STRING:
        return _HOSTILE_STRINGS
    if field.type == FieldDescriptor.TYPE_BYTES:
        return (b"\x00" * 300,)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return (999, -1, 2**31 - 1)
    return _HOSTILE_NUMBERS.get(field.type, ())


def with_field(message: Message, path: tuple[str, ...], value: Any) -> Message | None:
    """A copy of `message` with the field at `path` set to `value` (repeated fields get many of them);
    None when the path lies in another member of a oneof than the one the message holds."""
    copy = type(message)()
    copy.CopyFrom(message)
    target: Any = copy
    for name in path[:-1]:
        field = target.DESCRIPTOR.fields_by_name[name]
        if field.containing_oneof is not None and target.WhichOneof(field.containing_oneof.name) not in (
            None,
            name,
        ):
            return None
        target = getattr(target, name)
        if field.is_repeated:
            target = target[0] if len(target) else target.add()
    field = target.DESCRIPTOR.fields_by_name[path[-1]]
    if field.containing_oneof is not None and target.WhichOneof(field.containing_oneof.name) not in (
        None,
        path[-1],
    ):
        return None
    if field.message_type is not None:  # a well-known type: (seconds, nanos)
        inner = getattr(target, path[-1])
        if field.is_repeated:
            inner = inner.add()
        inner.seconds, inner.nanos = value
    elif field.is_repeated:  # many short items, or a few long ones (a record stays under a megabyte)
        getattr(target, path[-1]).extend([value] * (300 if len(str(value)) < 100 else 3))
    else:
        setattr(target, path[-1], value)
    return copy


def one_hostile_field_each(message: Message) -> list[tuple[str, Message]]:
    """(description, variant) for every leaf field of `message`'s type and every hostile value of it."""
    variants: list[tuple[str, Message]] = []
    for path in leaf_paths(message.DESCRIPTOR):
        descriptor: Any = message.DESCRIPTOR
        for name in path[:-1]:
            descriptor = descriptor.fields_by_name[name].message_type
        field = descriptor.fields_by_name[path[-1]]
        for value in hostile_values(field):
            variant = with_field(message, path, value)
            if variant is not None:
                variants.append((f"{'.'.join(path)}={value!r:.40}", variant))
    return variants


def garbage(rng: random.Random, valid: bytes) -> bytes:
    """Bytes that are not a valid record: random, or a valid record cut short or with bits flipped."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        return valid[: rng.randrange(1, max(2, len(valid)))]
    flipped = bytearray(valid)
    for _ in range(rng.randrange(1, 4)):
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    return bytes(flipped)


def hostile_stream(topic: str, rng: random.Random, tenant: str) -> Any:
    """An endless mix for `topic`: the measured classes, one-field variants of every body, garbage."""
    while True:
        key = f"soak-{uuid.uuid4().hex[:12]}"
        bases = [
            topic_message(topic, key, m.WhichOneof("body") or "", body_of(m), tenant)
            for m in every_body(topic, key)
        ]
        variants = [
            variant.SerializeToString() for base in bases for _, variant in one_hostile_field_each(base)
        ]
        rng.shuffle(variants)
        for value in variants[:40]:
            yield key, value
        for key, value in measured_classes(tenant)[topic]:
            yield key, value
        yield key, garbage(rng, rng.choice(bases).SerializeToString())
