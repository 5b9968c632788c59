"""The routing flow of a dialed number: menus, announcements, SMS, transfer, hang-up, business hours."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_FIRST_DIGIT_TIMEOUT = timedelta(seconds=5)
DEFAULT_INTER_DIGIT_TIMEOUT = timedelta(seconds=3)


class GuidanceChoiceKind(Enum):
    """Which guidance plays on invalid input or input timeout."""

    SYSTEM_DEFAULT = "system_default"  # the seed's text: system_prompts.INVALID_INPUT / INPUT_TIMEOUT
    ORIGINAL_GUIDANCE = "original_guidance"
    NONE = "none"


@dataclass(frozen=True)
class GuidanceChoice:
    kind: GuidanceChoiceKind = GuidanceChoiceKind.SYSTEM_DEFAULT
    guidance_id: str = ""


@dataclass(frozen=True)
class MenuNode:
    """An input-instruction route (入力指示ルーティング): play a prompt, collect digits, branch."""

    prompt_guidance_id: str
    digit_targets: Mapping[str, str]
    max_digits: int = 1
    terminator: str = ""
    first_digit_timeout: timedelta = DEFAULT_FIRST_DIGIT_TIMEOUT
    inter_digit_timeout: timedelta = DEFAULT_INTER_DIGIT_TIMEOUT
    invalid_input_guidance: GuidanceChoice = GuidanceChoice()
    input_timeout_guidance: GuidanceChoice = GuidanceChoice()
    max_invalid_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_timeout_attempts: int = DEFAULT_MAX_ATTEMPTS
    # Empty: the call is hung up with reason "fallback" past a limit.
    fallback_node_id: str = ""

    def targets(self) -> Iterator[tuple[str, str]]:
        for digits, target in self.digit_targets.items():
            yield f"menu.digit_targets[{digits}]", target
        if self.fallback_node_id:
            yield "menu.fallback_node_id", self.fallback_node_id

    def guidance_ids(self) -> Iterator[tuple[str, str]]:
        yield "menu.prompt_guidance_id", self.prompt_guidance_id
        for name, choice in (
            ("invalid_input_guidance", self.invalid_input_guidance),
            ("input_timeout_guidance", self.input_timeout_guidance),
        ):
            if choice.kind is GuidanceChoiceKind.ORIGINAL_GUIDANCE:
                yield f"menu.{name}.guidance_id", choice.guidance_id


@dataclass(frozen=True)
class AnnouncementNode:
    """Play a guidance, then continue; an empty next node hangs up."""

    guidance_id: str
    next_node_id: str = ""

    def targets(self) -> Iterator[tuple[str, str]]:
        if self.next_node_id:
            yield "announcement.next_node_id", self.next_node_id

    def guidance_ids(self) -> Iterator[tuple[str, str]]:
        yield "announcement.guidance_id", self.guidance_id


@dataclass(frozen=True)
class MobileNumberCapture:
    """Ask a caller whose number cannot receive SMS for a mobile number; read it back; send when confirmed."""

    prompt_guidance_id: str
    invalid_input_guidance: GuidanceChoice = GuidanceChoice()
    input_timeout_guidance: GuidanceChoice = GuidanceChoice()
    max_invalid_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_timeout_attempts: int = DEFAULT_MAX_ATTEMPTS
    # Empty: the call is hung up with reason "fallback" past a limit.
    fallback_node_id: str = ""


@dataclass(frozen=True)
class SendSmsNode:
    """Send the content of an SMS box (蓄積BOX) to the caller, optionally announce it, then continue."""

    box_number: str
    announcement_guidance_id: str = ""
    next_node_id: str = ""
    mobile_number_capture: MobileNumberCapture | None = None

    def targets(self) -> Iterator[tuple[str, str]]:
        if self.next_node_id:
            yield "send_sms.next_node_id", self.next_node_id
        if self.mobile_number_capture and self.mobile_number_capture.fallback_node_id:
            yield (
                "send_sms.mobile_number_capture.fallback_node_id",
                self.mobile_number_capture.fallback_node_id,
            )

    def guidance_ids(self) -> Iterator[tuple[str, str]]:
        if self.announcement_guidance_id:
            yield "send_sms.announcement_guidance_id", self.announcement_guidance_id
        capture = self.mobile_number_capture
        if capture is not None:
            yield "send_sms.mobile_number_capture.prompt_guidance_id", capture.prompt_guidance_id
            for name, choice in (
                ("invalid_input_guidance", capture.invalid_input_guidance),
                ("input_timeout_guidance", capture.input_timeout_guidance),
            ):
                if choice.kind is GuidanceChoiceKind.ORIGINAL_GUIDANCE:
                    yield f"send_sms.mobile_number_capture.{name}.guidance_id", choice.guidance_id


@dataclass(frozen=True)
class TransferNode:
    destination: str
    announcement_guidance_id: str = ""

    def targets(self) -> Iterator[tuple[str, str]]:
        yield from ()

    def guidance_ids(self) -> Iterator[tuple[str, str]]:
        if self.announcement_guidance_id:
            yield "transfer.announcement_guidance_id", self.announcement_guidance_id


@dataclass(frozen=True)
class HangupNode:
    announcement_guidance_id: str = ""

    def targets(self) -> Iterator[tuple[str, str]]:
        yield from ()

    def guidance_ids(self) -> Iterator[tuple[str, str]]:
        if self.announcement_guidance_id:
            yield "hangup.announcement_guidance_id", self.announcement_guidance_id


@dataclass(frozen=True)
class TimeWindow:
    """Open on these ISO weekdays (1 = Monday) from start to end minute of the day, Asia/Tokyo."""

    weekdays: frozenset[int]
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class BusinessHoursNode:
    open_node_id: str
    closed_node_id: str
    windows: tuple[TimeWindow, ...] = ()
    closed_on_public_holidays: bool = False
    closed_dates: frozenset[str] = frozenset()  # ISO dates, e.g. "2026-12-29"

    def targets(self) -> Iterator[tuple[str, str]]:
        yield "business_hours.open_node_id", self.open_node_id
        yield "business_hours.closed_node_id", self.closed_node_id

    def guidance_ids(self) -> Iterator[tuple[str, str]]:
        yield from ()


@dataclass(frozen=True)
class CallerRejection:
    """Which callers a dialed number turns away before its flow starts, and what they hear first."""

    reject_withheld: bool = False
    reject_blocklisted: bool = False
    # Empty: a silent hang-up.
    announcement_guidance_id: str = ""

    def reason_to_reject(self, caller_withheld: bool, caller_blocklisted: bool) -> str:
        """The hang-up reason for this caller, or "" when the call goes on to the flow."""
        if self.reject_withheld and caller_withheld:
            return "rejected_withheld"
        if self.reject_blocklisted and caller_blocklisted:
            return "rejected_blocklist"
        return ""


NodeKind = MenuNode | AnnouncementNode | SendSmsNode | TransferNode | HangupNode | BusinessHoursNode


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    name: str = ""


@dataclass(frozen=True)
class FlowDefinition:
    """What a published version freezes: the entry node and the nodes."""

    entry_node_id: str
    nodes: tuple[Node, ...] = ()
    caller_rejection: CallerRejection = CallerRejection()
    _by_id: dict[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {node.id: node for node in self.nodes})

    def node(self, node_id: str) -> Node | None:
        return self._by_id.get(node_id)

    def guidance_ids(self) -> set[str]:
        """Every guidance the flow plays (used by search and by guidance-deletion checks)."""
        played = {gid for node in self.nodes for _, gid in node.kind.guidance_ids() if gid}
        if self.caller_rejection.announcement_guidance_id:
            played.add(self.caller_rejection.announcement_guidance_id)
        return played
