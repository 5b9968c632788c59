"""What the report learns from the four topics, as plain facts (adapters translate protobuf into them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class PromptReason(StrEnum):
    INITIAL = "initial"
    INVALID_INPUT = "invalid_input"
    TIMEOUT = "timeout"


class InputKind(StrEnum):
    """What a prompt collects: a menu choice, or the number capture of an SMS route."""

    MENU_CHOICE = "menu_choice"
    MOBILE_NUMBER = "mobile_number"
    MOBILE_NUMBER_CONFIRMATION = "mobile_number_confirmation"


class FallbackCause(StrEnum):
    """Which limit of a route routing's action fell back on ("" on an ordinary action)."""

    NONE = ""
    INVALID_INPUT = "invalid_input"
    TIMEOUT = "timeout"


class TargetKind(StrEnum):
    """Actions that end the guidance: the caller reached a terminal target."""

    ANNOUNCEMENT = "announcement"
    TRANSFER = "transfer"
    HANGUP = "hangup"


@dataclass(frozen=True)
class CallStarted:
    at: datetime
    dialed_number: str
    caller_number: str


@dataclass(frozen=True)
class PromptIssued:
    """Routing asked the telephony side to play a route's prompt and collect digits."""

    at: datetime
    step: int
    action_id: str
    route_id: str
    route_name: str
    reason: PromptReason
    invalid_attempts: int
    timeout_attempts: int
    input_kind: InputKind = InputKind.MENU_CHOICE
    # Set when this prompt is the first action after another route's (or this one's) limit was reached.
    fallback: FallbackCause = FallbackCause.NONE
    # The routing flow the call runs on: route ids are unique within a flow only.
    flow_id: str = ""


@dataclass(frozen=True)
class TargetIssued:
    """Routing sent the call to an announcement, a transfer or a hang-up."""

    at: datetime
    step: int
    action_id: str
    kind: TargetKind
    route_id: str
    hangup_reason: str = ""
    # Set when this target is the first action after a route's limit was reached.
    fallback: FallbackCause = FallbackCause.NONE


@dataclass(frozen=True)
class DigitsCollected:
    at: datetime
    action_id: str
    digits: str


@dataclass(frozen=True)
class InputTimedOut:
    at: datetime
    action_id: str


@dataclass(frozen=True)
class CallTransferred:
    at: datetime
    action_id: str


@dataclass(frozen=True)
class CallEnded:
    at: datetime
    reason: str
    during_action_id: str


@dataclass(frozen=True)
class SmsRequestedByCall:
    """Routing asked for an SMS during the call (a terminal target)."""

    at: datetime
    request_id: str
    dialed_number: str


CallFact = (
    CallStarted
    | PromptIssued
    | TargetIssued
    | DigitsCollected
    | InputTimedOut
    | CallTransferred
    | CallEnded
    | SmsRequestedByCall
)


class SmsStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True)
class MessageSnapshot:
    """The SMS exactly as sent (the box may have changed since)."""

    box_number: str
    box_name: str
    message_text: str
    url: str
    box_revision: int
    rendered_text: str
    segments: int


@dataclass(frozen=True)
class SmsRequested:
    at: datetime
    call_id: str
    box_number: str
    recipient: str
    dialed_number: str
    route_id: str
    # The caller keyed the recipient in (their own number could not receive SMS).
    recipient_captured: bool = False


@dataclass(frozen=True)
class SmsResultReported:
    """One result from sms-gateway: accepted, a receipt, a rejection or a failure."""

    at: datetime
    status: SmsStatus
    # Receipt state, failure reason, or the reject reason key (e.g. "unsupported_carrier").
    reason: str
    carrier: str = ""
    snapshot: MessageSnapshot | None = None
    detail: str = ""


@dataclass(frozen=True)
class LinkClicked:
    """The recipient opened the message's short link (the n-th counted open)."""

    at: datetime
    click_number: int


SmsFact = SmsRequested | SmsResultReported | LinkClicked
