"""Hypothesis strategies for hostile input: random field values for any protobuf message type.

Values lean towards what breaks parsers and validators: empty and very long strings, control characters,
Japanese text, digit runs and phone-number shapes, negative and huge numbers, unknown enum values.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hibiki_runtime.events import SUPPORTED_SCHEMA_VERSION, body_of
from hypothesis import strategies as st

_TRICKY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "0",
        "+81",
        "+819012345678",
        "09012345678",
        "090-1234-5678",
        "0120-000-000",
        "2026-11-25",
        "2026-02-30",
        "9999-12-31",
        "../../etc/passwd",
        '=HYPERLINK("http://evil")',
        "' OR 1=1 --",
        "\x00",
        "a\x00b",
        "\u202e",
        "\n",
        "+81312345678\n",
        "²",
        "c:²",
        "١٢٣",
        "１２３",
        "\ud7ff\U0010ffff",
        "お電話ありがとうございます",
        "🎉" * 10,
        "𠮷野家",
        # Just over the contract's limits (and the columns' lengths): 32, 64, 100, 200, 2048, 4000.
        "9" * 33,
        "t" * 65,
        "c" * 101,
        "e" * 201,
        "u" * 2049,
        "あ" * 4001,
        "1" * 300,
    ]
)
TEXT = st.one_of(_TRICKY_TEXT, st.text(max_size=40), st.from_regex(r"\+?[0-9#*\-]{0,20}", fullmatch=True))
_INTEGERS = {
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.one_of(st.integers(0, 1000), st.integers(0, 2**32 - 1)),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: st.one_of(st.integers(0, 1000), st.integers(0, 2**64 - 1)),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000))  # open enums keep unknown numbers
    return _INTEGERS[kind]


@functools.cache
def messages(descriptor: Descriptor, depth: int = 3) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type with random values in a random subset of fields (one per oneof)."""
    message_class = GetMessageClass(descriptor)

    def field_value(field: FieldDescriptor) -> st.SearchStrategy[Any]:
        if field.message_type is not None:
            if depth <= 0:
                return st.just(None)
            if field.message_type.GetOptions().map_entry:
                key, value = (
                    field.message_type.fields_by_name["key"],
                    field.message_type.fields_by_name["value"],
                )
                return st.dictionaries(_scalar(key), field_value(value), max_size=4)
            inner = st.deferred(lambda: messages(field.message_type, depth - 1))
            return st.lists(inner, max_size=3) if _repeated(field) else inner
        return st.lists(_scalar(field), max_size=4) if _repeated(field) else _scalar(field)

    plain = [f for f in descriptor.fields if f.containing_oneof is None]
    oneofs = [list(o.fields) for o in descriptor.oneofs]

    values = {field.name: field_value(field) for field in descriptor.fields}

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = message_class()
        chosen: list[FieldDescriptor] = [f for f in plain if draw(st.booleans())]
        for group in oneofs:
            if draw(st.booleans()):
                chosen.append(draw(st.sampled_from(group)))
        for field in chosen:
            _assign(message, field, draw(values[field.name]))
        return message

    return build()


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    if value is None:
        return
    target = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif _repeated(field):
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def topic_records(message_type: type[Message], tenants: list[str]) -> st.SearchStrategy[bytes]:
    """Record values of a topic: random bytes, random messages, and random messages with a valid envelope."""

    @st.composite
    def plausible(draw: st.DrawFn) -> bytes:
        message = draw(messages(message_type.DESCRIPTOR))
        if message.WhichOneof("body") is not None:
            envelope = message.envelope  # type: ignore[attr-defined]
            envelope.schema = body_of(message).DESCRIPTOR.full_name
            envelope.schema_version = SUPPORTED_SCHEMA_VERSION
            envelope.tenant_id = draw(st.sampled_from(tenants))
            envelope.event_id = envelope.event_id or draw(st.uuids()).hex
            if draw(st.integers(0, 3)):  # mostly fresh, so that reporting's fact code sees it (not retention)
                ago = draw(st.integers(0, 3 * 86400))
                envelope.occurred_at.FromDatetime(datetime.now(UTC) - timedelta(seconds=ago))
        return message.SerializeToString()

    return st.one_of(
        st.binary(max_size=200),
        messages(message_type.DESCRIPTOR).map(lambda m: m.SerializeToString()),
        plausible(),
    )
