"""What a call is doing, what it can receive, and what routing tells the telephony side and sms-gateway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum


@dataclass(frozen=True)
class Prompt:
    """Audio to play: a guidance of the tenant or a system prompt (`system:<name>`), both in guidance-tts.

    The text only says what the caller hears, for logs, traces and dry runs.
    """

    guidance_id: str
    text: str = ""


class PromptReason(Enum):
    INITIAL = "initial"
    INVALID_INPUT = "invalid_input"
    TIMEOUT = "timeout"


class InputKind(Enum):
    """What a PlayAndCollect collects: a menu choice, or the number capture of an SMS route."""

    MENU_CHOICE = "menu_choice"
    MOBILE_NUMBER = "mobile_number"
    MOBILE_NUMBER_CONFIRMATION = "mobile_number_confirmation"


class FallbackCause(Enum):
    """Which limit of a route sent the call to its fallback."""

    INVALID_INPUT = "invalid_input"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class PlayAndCollect:
    """Play the prompts, then collect digits; answered by DigitsEntered or InputTimedOut."""

    prompts: tuple[Prompt, ...]
    route_id: str
    route_name: str
    reason: PromptReason
    max_digits: int
    terminator: str
    first_digit_timeout: timedelta
    inter_digit_timeout: timedelta
    invalid_attempts: int
    timeout_attempts: int
    input_kind: InputKind = InputKind.MENU_CHOICE


@dataclass(frozen=True)
class Play:
    """Play the prompts; answered by PromptFinished."""

    prompts: tuple[Prompt, ...]
    route_id: str


@dataclass(frozen=True)
class Transfer:
    destination: str
    prompts: tuple[Prompt, ...]
    route_id: str


@dataclass(frozen=True)
class HangUp:
    """Play the prompts, then end the call."""

    prompts: tuple[Prompt, ...]
    reason: str
    route_id: str = ""


@dataclass(frozen=True)
class SendSms:
    """Ask sms-gateway to send an SMS box's content to the caller (or the mobile number the caller keyed)."""

    box_number: str
    recipient: str
    dialed_number: str
    route_id: str
    recipient_captured: bool = False


CallAction = PlayAndCollect | Play | Transfer | HangUp
Output = CallAction | SendSms


@dataclass(frozen=True)
class Step:
    """An output and its position in the call; ids downstream derive from call id and step number."""

    number: int
    output: Output
    # Set on the first call action after a route's limit was reached: it answers the input that reached it.
    fallback: FallbackCause | None = None


class CapturePhase(Enum):
    NUMBER = "number"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class CallState:
    """Everything routing remembers about a live call between two events."""

    call_id: str
    tenant_id: str
    flow_id: str
    flow_version: int
    dialed_number: str
    caller_number: str
    node_id: str = ""
    # The action whose answer the call waits for; answers to older actions are stale.
    awaiting_step: int = 0
    step: int = 0
    invalid_attempts: Mapping[str, int] = field(default_factory=dict)
    timeout_attempts: Mapping[str, int] = field(default_factory=dict)
    ended: bool = False
    # Mobile number capture at an SMS node: awaiting the number, or the confirmation of `captured_number`.
    capture_phase: CapturePhase | None = None
    captured_number: str = ""


@dataclass(frozen=True)
class Caller:
    """What the telephony side and the tenant's blocklist tell about who is calling."""

    withheld: bool = False
    blocklisted: bool = False


# A caller who shows the number and is not on the blocklist: nothing to reject.
ORDINARY_CALLER = Caller()


@dataclass(frozen=True)
class DigitsEntered:
    step: int
    digits: str
    at: datetime


@dataclass(frozen=True)
class InputTimedOut:
    step: int
    partial_digits: str
    at: datetime


@dataclass(frozen=True)
class PromptFinished:
    step: int
    at: datetime


@dataclass(frozen=True)
class CallTransferred:
    step: int
    at: datetime


@dataclass(frozen=True)
class CallEnded:
    at: datetime


CallEvent = DigitsEntered | InputTimedOut | PromptFinished | CallTransferred | CallEnded


class Outcome(Enum):
    """What a decision did; a bounded metric label."""

    ROUTED = "routed"
    REPROMPT_INVALID = "reprompt_invalid"
    REPROMPT_TIMEOUT = "reprompt_timeout"
    FALLBACK_INVALID = "fallback_invalid"
    FALLBACK_TIMEOUT = "fallback_timeout"
    CONTINUED = "continued"
    CALL_ENDED = "call_ended"
    NOT_IN_SERVICE = "not_in_service"
    REJECTED = "rejected"
    IGNORED_STALE = "ignored_stale"
    IGNORED_ENDED = "ignored_ended"


@dataclass(frozen=True)
class Decision:
    state: CallState
    steps: tuple[Step, ...]
    outcome: Outcome

    @property
    def outputs(self) -> tuple[Output, ...]:
        return tuple(step.output for step in self.steps)
