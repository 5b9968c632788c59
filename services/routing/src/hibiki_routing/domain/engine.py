"""The call engine as pure functions: (call state, flow version, event) → (new state, outputs, outcome)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from .business_hours import is_open
from .calls import (
    ORDINARY_CALLER,
    CallEnded,
    Caller,
    CallEvent,
    CallState,
    CallTransferred,
    CapturePhase,
    Decision,
    DigitsEntered,
    FallbackCause,
    HangUp,
    InputKind,
    InputTimedOut,
    Outcome,
    Output,
    Play,
    PlayAndCollect,
    Prompt,
    PromptFinished,
    PromptReason,
    SendSms,
    Step,
    Transfer,
)
from .flows import (
    AnnouncementNode,
    BusinessHoursNode,
    FlowDefinition,
    GuidanceChoice,
    GuidanceChoiceKind,
    HangupNode,
    MenuNode,
    Node,
    SendSmsNode,
    TransferNode,
)
from .mobile_capture import (
    CONFIRM_DIGIT,
    CORRECT_DIGIT,
    can_receive_sms,
    confirmation,
    keyed_mobile_number,
    number_entry,
    readback,
)
from .system_prompts import CLOSING, INPUT_TIMEOUT, INVALID_INPUT, NOT_IN_SERVICE, SMS_UNAVAILABLE

# A validated flow never passes this many nodes without waiting; the guard protects against bad data.
MAX_HOPS_PER_DECISION = 32


def start_call(
    state: CallState, definition: FlowDefinition, at: datetime, caller: Caller = ORDINARY_CALLER
) -> Decision:
    """A call reached a published flow: reject the caller, or run the flow until it waits for the caller."""
    turn = _Turn(state, definition, at)
    rejection = definition.caller_rejection
    reason = rejection.reason_to_reject(caller.withheld, caller.blocklisted)
    if reason:
        turn.hang_up(_guidance(rejection.announcement_guidance_id), reason, "")
        return turn.decision(Outcome.REJECTED)
    turn.enter(definition.entry_node_id)
    return turn.decision(Outcome.ROUTED)


def not_in_service(state: CallState) -> Decision:
    """A dialed number without a published flow hears the not-in-service announcement and is hung up."""
    hangup = HangUp(prompts=(NOT_IN_SERVICE,), reason="not_in_service")
    step = Step(state.step + 1, hangup)
    return Decision(replace(state, step=step.number, ended=True), (step,), Outcome.NOT_IN_SERVICE)


def decide(state: CallState, definition: FlowDefinition, event: CallEvent) -> Decision:
    """The next outputs of a call for one telephony event."""
    if state.ended:
        return Decision(state, (), Outcome.IGNORED_ENDED)
    if isinstance(event, CallEnded):
        return Decision(replace(state, ended=True), (), Outcome.CALL_ENDED)
    if event.step != state.awaiting_step:
        return Decision(state, (), Outcome.IGNORED_STALE)
    if isinstance(event, CallTransferred):
        return Decision(replace(state, ended=True), (), Outcome.CALL_ENDED)
    node = definition.node(state.node_id)
    turn = _Turn(state, definition, event.at)
    if state.capture_phase is not None and node is not None and isinstance(node.kind, SendSmsNode):
        if isinstance(event, PromptFinished):
            return Decision(state, (), Outcome.IGNORED_STALE)
        return turn.capture_input(node, node.kind, event)
    if isinstance(event, PromptFinished):
        if node is None or not isinstance(node.kind, AnnouncementNode | SendSmsNode):
            return Decision(state, (), Outcome.IGNORED_STALE)
        turn.enter(node.kind.next_node_id)
        return turn.decision(Outcome.CONTINUED)
    if node is None or not isinstance(node.kind, MenuNode):
        return Decision(state, (), Outcome.IGNORED_STALE)
    if isinstance(event, InputTimedOut) and not event.partial_digits:
        return turn.input_timed_out(node, node.kind)
    digits = event.digits if isinstance(event, DigitsEntered) else event.partial_digits
    target = node.kind.digit_targets.get(digits)
    if target is None:
        return turn.invalid_input(node, node.kind)
    turn.enter(target)
    return turn.decision(Outcome.ROUTED)


def _choice_prompts(choice: GuidanceChoice, default: Prompt) -> tuple[Prompt, ...]:
    if choice.kind is GuidanceChoiceKind.NONE:
        return ()
    if choice.kind is GuidanceChoiceKind.ORIGINAL_GUIDANCE:
        return _guidance(choice.guidance_id)
    return (default,)


def _guidance(guidance_id: str) -> tuple[Prompt, ...]:
    return (Prompt(guidance_id=guidance_id),) if guidance_id else ()


class _Turn:
    """One decision in the making: the state it moves and the outputs it numbers."""

    def __init__(self, state: CallState, definition: FlowDefinition, at: datetime) -> None:
        self.state = state
        self.definition = definition
        self.at = at
        self.steps: list[Step] = []
        # A route's limit was reached: the next call action is marked as the fallback (it answers that input).
        self.fallback: FallbackCause | None = None

    def decision(self, outcome: Outcome) -> Decision:
        return Decision(self.state, tuple(self.steps), outcome)

    def emit(self, output: Output, *, wait_at: str = "") -> None:
        number = self.state.step + 1
        fallback = None
        if not isinstance(output, SendSms):
            fallback, self.fallback = self.fallback, None
        self.steps.append(Step(number, output, fallback))
        self.state = replace(self.state, step=number)
        if wait_at:
            self.state = replace(self.state, node_id=wait_at, awaiting_step=number)

    def hang_up(self, prompts: tuple[Prompt, ...], reason: str, route_id: str) -> None:
        self.emit(HangUp(prompts, reason, route_id))
        self.state = replace(self.state, node_id=route_id, awaiting_step=0, ended=True)

    def enter(self, node_id: str) -> None:
        """Run nodes from `node_id` until one waits for the telephony side or the call ends."""
        if self.state.capture_phase is not None:  # leaving a capture (e.g. to its fallback)
            self.state = replace(self.state, capture_phase=None, captured_number="")
        for _ in range(MAX_HOPS_PER_DECISION):
            node = self.definition.node(node_id)
            if node is None:
                self.hang_up((), "flow_error", node_id)
                return
            following = self._run(node)
            if not following:
                return
            node_id = following
        self.hang_up((), "flow_error", node_id)

    def _run(self, node: Node) -> str:
        """Play one node; returns the node to continue with at once, or "" when the call waits or ends."""
        kind = node.kind
        if isinstance(kind, MenuNode):
            self.prompt(node, kind, PromptReason.INITIAL, ())
        elif isinstance(kind, AnnouncementNode):
            if not kind.next_node_id:
                self.hang_up(_guidance(kind.guidance_id), "completed", node.id)
            else:
                self.emit(Play(_guidance(kind.guidance_id), node.id), wait_at=node.id)
        elif isinstance(kind, SendSmsNode):
            return self._send_sms(node, kind)
        elif isinstance(kind, TransferNode):
            transfer = Transfer(kind.destination, _guidance(kind.announcement_guidance_id), node.id)
            self.emit(transfer, wait_at=node.id)
        elif isinstance(kind, HangupNode):
            self.hang_up(_guidance(kind.announcement_guidance_id), "completed", node.id)
        elif isinstance(kind, BusinessHoursNode):
            return kind.open_node_id if is_open(kind, self.at) else kind.closed_node_id
        return ""

    def _send_sms(self, node: Node, kind: SendSmsNode) -> str:
        caller = self.state.caller_number
        if kind.mobile_number_capture is not None and not can_receive_sms(caller):
            self.state = replace(self.state, capture_phase=CapturePhase.NUMBER, captured_number="")
            self.prompt(node, number_entry(kind.mobile_number_capture), PromptReason.INITIAL, ())
            return ""
        # The request is made even when it will be refused (a withheld number is sent as "", refused as
        # withheld_number; a landline as landline_number …), so the report shows why; the caller is told.
        return self._request_sms(node, kind, caller, captured=False)

    def _request_sms(self, node: Node, kind: SendSmsNode, recipient: str, *, captured: bool) -> str:
        """Ask for the SMS, then announce it and/or continue; returns the node to continue with at once.

        Only a request to a number that can receive SMS is announced as sent; one that sms-gateway will
        refuse is followed by system:sms_unavailable instead.
        """
        self.emit(SendSms(kind.box_number, recipient, self.state.dialed_number, node.id, captured))
        if can_receive_sms(recipient):
            announcement = _guidance(kind.announcement_guidance_id)
        else:
            announcement = (SMS_UNAVAILABLE,)
        if announcement and kind.next_node_id:
            self.emit(Play(announcement, node.id), wait_at=node.id)
            return ""
        if announcement or not kind.next_node_id:
            self.hang_up(announcement, "completed", node.id)
            return ""
        return kind.next_node_id

    def capture_input(self, node: Node, kind: SendSmsNode, event: CallEvent) -> Decision:
        """The caller keyed (or did not key) a mobile number, or answered its read-back."""
        capture = kind.mobile_number_capture
        if capture is None or not isinstance(event, DigitsEntered | InputTimedOut):
            return Decision(self.state, (), Outcome.IGNORED_STALE)
        confirming = self.state.capture_phase is CapturePhase.CONFIRM
        menu = confirmation(capture) if confirming else number_entry(capture)
        spoken = readback(self.state.captured_number) if confirming else None
        if isinstance(event, InputTimedOut) and not event.partial_digits:
            return self.input_timed_out(node, menu, spoken)
        digits = event.digits if isinstance(event, DigitsEntered) else event.partial_digits
        if not confirming:
            number = keyed_mobile_number(digits)
            if number is None:
                return self.invalid_input(node, menu)
            self.state = replace(self.state, capture_phase=CapturePhase.CONFIRM, captured_number=number)
            self.prompt(node, confirmation(capture), PromptReason.INITIAL, (), readback(number))
            return self.decision(Outcome.ROUTED)
        if digits == CORRECT_DIGIT:
            self.state = replace(self.state, capture_phase=CapturePhase.NUMBER, captured_number="")
            self.prompt(node, number_entry(capture), PromptReason.INITIAL, ())
            return self.decision(Outcome.ROUTED)
        if digits != CONFIRM_DIGIT:
            return self.invalid_input(node, menu, spoken)
        number = self.state.captured_number
        self.state = replace(self.state, capture_phase=None, captured_number="")
        following = self._request_sms(node, kind, number, captured=True)
        if following:
            self.enter(following)
        return self.decision(Outcome.ROUTED)

    def prompt(
        self,
        node: Node,
        kind: MenuNode,
        reason: PromptReason,
        before: tuple[Prompt, ...],
        main: tuple[Prompt, ...] | None = None,
    ) -> None:
        """Play `before`, then the menu's prompt (or `main`, e.g. a number read back), and collect."""
        phase = self.state.capture_phase
        if phase is CapturePhase.NUMBER:
            input_kind = InputKind.MOBILE_NUMBER
        elif phase is CapturePhase.CONFIRM:
            input_kind = InputKind.MOBILE_NUMBER_CONFIRMATION
        else:
            input_kind = InputKind.MENU_CHOICE
        self.emit(
            PlayAndCollect(
                prompts=(*before, *(main if main is not None else _guidance(kind.prompt_guidance_id))),
                route_id=node.id,
                route_name=node.name,
                reason=reason,
                max_digits=kind.max_digits,
                terminator=kind.terminator,
                first_digit_timeout=kind.first_digit_timeout,
                inter_digit_timeout=kind.inter_digit_timeout,
                invalid_attempts=self.state.invalid_attempts.get(node.id, 0),
                timeout_attempts=self.state.timeout_attempts.get(node.id, 0),
                input_kind=input_kind,
            ),
            wait_at=node.id,
        )

    def invalid_input(self, node: Node, kind: MenuNode, main: tuple[Prompt, ...] | None = None) -> Decision:
        count = self.state.invalid_attempts.get(node.id, 0) + 1
        self.state = replace(self.state, invalid_attempts={**self.state.invalid_attempts, node.id: count})
        if count >= kind.max_invalid_attempts:
            self.fall_back(node, kind, FallbackCause.INVALID_INPUT)
            return self.decision(Outcome.FALLBACK_INVALID)
        guidance = _choice_prompts(kind.invalid_input_guidance, INVALID_INPUT)
        self.prompt(node, kind, PromptReason.INVALID_INPUT, guidance, main)
        return self.decision(Outcome.REPROMPT_INVALID)

    def input_timed_out(self, node: Node, kind: MenuNode, main: tuple[Prompt, ...] | None = None) -> Decision:
        count = self.state.timeout_attempts.get(node.id, 0) + 1
        self.state = replace(self.state, timeout_attempts={**self.state.timeout_attempts, node.id: count})
        if count >= kind.max_timeout_attempts:
            self.fall_back(node, kind, FallbackCause.TIMEOUT)
            return self.decision(Outcome.FALLBACK_TIMEOUT)
        guidance = _choice_prompts(kind.input_timeout_guidance, INPUT_TIMEOUT)
        self.prompt(node, kind, PromptReason.TIMEOUT, guidance, main)
        return self.decision(Outcome.REPROMPT_TIMEOUT)

    def fall_back(self, node: Node, kind: MenuNode, cause: FallbackCause) -> None:
        """Past a limit: the fallback node, or the closing guidance and a hang-up; the next action says so."""
        self.fallback = cause
        if kind.fallback_node_id:
            self.enter(kind.fallback_node_id)
        else:
            self.hang_up((CLOSING,), "fallback", node.id)
