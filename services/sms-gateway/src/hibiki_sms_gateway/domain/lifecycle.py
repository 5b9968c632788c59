"""The state machine of one SMS request, persisted before and after every carrier interaction."""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    REQUESTED = "requested"
    REJECTED = "rejected"  # refused before any carrier saw it
    SUBMITTING = "submitting"  # persisted before the first submit_sm: a crash here leaves it uncertain
    ACCEPTED = "accepted"  # every part has a carrier message id (送信完了)
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"  # given up: permanent error or retries exhausted
    UNCERTAIN = "uncertain"  # found SUBMITTING after a crash; never resubmitted automatically


_NEXT: dict[MessageState, frozenset[MessageState]] = {
    MessageState.REQUESTED: frozenset({MessageState.REJECTED, MessageState.SUBMITTING}),
    MessageState.SUBMITTING: frozenset({MessageState.ACCEPTED, MessageState.FAILED, MessageState.UNCERTAIN}),
    MessageState.ACCEPTED: frozenset({MessageState.DELIVERED, MessageState.UNDELIVERED}),
}
TERMINAL = frozenset(
    {
        MessageState.REJECTED,
        MessageState.DELIVERED,
        MessageState.UNDELIVERED,
        MessageState.FAILED,
        MessageState.UNCERTAIN,
    }
)


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow (e.g. a late receipt for a failed message)."""


def advance(current: MessageState, target: MessageState) -> MessageState:
    """The new state; raises IllegalTransition when `target` cannot follow `current`."""
    if target not in _NEXT.get(current, frozenset()):
        raise IllegalTransition(f"{current.value} cannot become {target.value}")
    return target
