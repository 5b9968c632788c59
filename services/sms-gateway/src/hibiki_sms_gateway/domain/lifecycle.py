"""The state machine of one SMS request, persisted before and after every carrier interaction."""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    REQUESTED = "requested"
    REJECTED = "rejected"  # refused before any carrier saw it
    QUEUED = "queued"  # admitted, not yet on the wire: after a crash it is sent (never failed)
    SUBMITTING = "submitting"  # persisted just before its parts go on the wire: a crash here is uncertain
    ACCEPTED = "accepted"  # every part has a carrier message id (送信完了)
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"  # given up: permanent error or retries exhausted
    # Found SUBMITTING after a crash, no receipt came: never resubmitted automatically (a duplicate SMS is
    # worse than a missing one). A receipt that arrives later still tells the truth.
    UNCERTAIN = "uncertain"


_NEXT: dict[MessageState, frozenset[MessageState]] = {
    MessageState.REQUESTED: frozenset({MessageState.REJECTED, MessageState.QUEUED}),
    MessageState.QUEUED: frozenset({MessageState.SUBMITTING}),
    # A receipt can settle a message whose submit response never reached the database (a crash).
    MessageState.SUBMITTING: frozenset(
        {
            MessageState.ACCEPTED,
            MessageState.FAILED,
            MessageState.UNCERTAIN,
            MessageState.DELIVERED,
            MessageState.UNDELIVERED,
        }
    ),
    MessageState.ACCEPTED: frozenset({MessageState.DELIVERED, MessageState.UNDELIVERED}),
    MessageState.UNCERTAIN: frozenset({MessageState.DELIVERED, MessageState.UNDELIVERED}),
}
# No carrier interaction is pending any more (an UNCERTAIN message may still learn its fate from a receipt).
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
