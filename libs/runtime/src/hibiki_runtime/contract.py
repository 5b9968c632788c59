"""Field limits declared once in proto/ (buf.validate rules), enforced with protovalidate at every edge.

The Kafka edge (`events.decode_event`), the gRPC edge (`grpc_server.RequestCheckInterceptor`) and the
producers (`outbox.enqueue_all`) check messages with `violations`; tables size the columns that store a
contract field with `max_len`, so a column is never shorter than what the contract lets through.
"""

from __future__ import annotations

from typing import Any

import protovalidate
from buf.validate import validate_pb2
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from hibiki_runtime.errors import FieldViolation

_validator = protovalidate.Validator()


def violations(message: Message) -> list[FieldViolation]:
    """The contract rules `message` breaks, each with its field path (e.g. "call_started.dialed_number")."""
    try:
        found = _validator.collect_violations(message)
    except (protovalidate.CompilationError, protovalidate.EvaluationError) as error:
        # A rule that cannot be evaluated on this value counts against the value, never crashes the caller.
        return [FieldViolation(message.DESCRIPTOR.full_name, f"cannot be checked: {error}")]
    return [FieldViolation(_path(v.proto.field), v.proto.message) for v in found]


def _path(field: Any) -> str:
    parts: list[str] = []
    for element in field.elements:
        subscript = getattr(element, "subscript", None)  # an index or map key, for repeated and map fields
        value = getattr(subscript, "value", None)
        parts.append(element.field_name if value is None else f"{element.field_name}[{value!r}]")
    return ".".join(parts) or "(message)"


def max_len(message_type: type[Message], field: str) -> int:
    """The declared maximum length of a string field (the buf.validate string.max_len rule)."""
    return max_len_of(f"{message_type.DESCRIPTOR.full_name}.{field}")


def max_len_of(field: str) -> int:
    """max_len of a field named in full, e.g. "hibiki.call.v1.CallStarted.caller_number"."""
    descriptor = descriptor_pool.Default().FindFieldByName(field)
    rules = descriptor.GetOptions().Extensions[validate_pb2.field]
    if not rules.string.HasField("max_len"):
        raise LookupError(f"{field} declares no max_len")
    return int(rules.string.max_len)


def stores(message_type: type[Message], field: str) -> dict[str, str]:
    """Column info naming the contract field a column stores: Column(..., info=stores(CallStarted, "x")).

    A test checks every such column on PostgreSQL: it must hold the field's declared max_len.
    """
    max_len(message_type, field)  # a typo or a field without a limit fails at import, not in production
    return {"contract": f"{message_type.DESCRIPTOR.full_name}.{field}"}
