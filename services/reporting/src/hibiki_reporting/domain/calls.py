"""Call records folded from facts; the result is the same whatever order or how often the facts arrive."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from .calendar import report_date
from .facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallTransferred,
    DigitsCollected,
    FallbackCause,
    InputKind,
    InputTimedOut,
    PromptIssued,
    PromptReason,
    SmsRequestedByCall,
    TargetIssued,
    TargetKind,
)


class CallOutcome(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    SMS_SENT = "sms_sent"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    NOT_IN_SERVICE = "not_in_service"
    # Turned away by the dialed number's caller rejection (withheld number, blocklist): never abandoned.
    REJECTED = "rejected"
    # Cut off by the platform before a terminal target (the call's media-gateway process stopped): the
    # caller did not leave, so never abandoned.
    PLATFORM_FAILURE = "platform_failure"
    # Abandoned (途中放棄) during the number capture of an SMS route: the caller chose the SMS, was asked
    # for a mobile number (or to confirm it) and hung up before any SMS was requested. Counted as abandoned.
    ABANDONED_IN_NUMBER_CAPTURE = "abandoned_capture"


# Both are 途中放棄: the caller left before a terminal target.
ABANDONED_OUTCOMES = frozenset({CallOutcome.ABANDONED, CallOutcome.ABANDONED_IN_NUMBER_CAPTURE})
_NUMBER_CAPTURE = frozenset({InputKind.MOBILE_NUMBER, InputKind.MOBILE_NUMBER_CONFIRMATION})


# routing's hang-up reasons of rejected callers: "rejected_withheld", "rejected_blocklist".
REJECTION_PREFIX = "rejected_"
# CallEnded's reason (hibiki.call.v1.END_REASON_PLATFORM_FAILURE) when the platform lost the call.
PLATFORM_FAILURE_END = "platform_failure"


class AbandonedStage(StrEnum):
    """What the caller was hearing when hanging up: the route's prompt, or a re-prompt after a mistake."""

    PROMPT = "prompt"
    INVALID_INPUT = "invalid_input"
    TIMEOUT = "timeout"
    # Keying in a mobile number or answering its read-back (outcome ABANDONED_IN_NUMBER_CAPTURE).
    NUMBER_CAPTURE = "number_capture"


_STAGE_OF_PROMPT = {
    PromptReason.INITIAL: AbandonedStage.PROMPT,
    PromptReason.INVALID_INPUT: AbandonedStage.INVALID_INPUT,
    PromptReason.TIMEOUT: AbandonedStage.TIMEOUT,
}


@dataclass(frozen=True)
class RouteStep:
    """One visit of an input-instruction route: the digits that left it and the mistakes made there."""

    route_id: str
    route_name: str
    digits: str
    invalid_attempts: int
    timeout_attempts: int


@dataclass(frozen=True)
class Abandonment:
    route_id: str
    route_name: str
    stage: AbandonedStage
    invalid_attempts: int
    timeout_attempts: int


@dataclass(frozen=True)
class RouteFunnelEntry:
    """What one call did on one route (visits of the same route are added up)."""

    route_id: str
    route_name: str
    invalid_inputs: int
    timeouts: int
    abandoned_here: bool


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    dialed_number: str
    caller_number: str
    start_time: datetime | None
    end_time: datetime | None
    first_seen: datetime
    path: tuple[RouteStep, ...]
    outcome: CallOutcome
    abandonment: Abandonment | None
    # CallEnded's reason ("caller_hangup", "platform_failure", …; "unknown" for a number this version does
    # not name); "" while no end is known.
    end_reason: str = ""
    # The routing flow of its prompts ("" before the first prompt, or for a call no flow answered).
    flow_id: str = ""

    @property
    def report_date(self) -> date:
        """The Asia/Tokyo day the call counts for (its start; the earliest fact until the start arrives)."""
        return report_date(self.start_time or self.first_seen)

    def funnel_entries(self) -> list[RouteFunnelEntry]:
        """One entry per route the call reached."""
        entries: dict[str, RouteFunnelEntry] = {}
        for step in self.path:
            known = entries.get(step.route_id)
            entries[step.route_id] = RouteFunnelEntry(
                step.route_id,
                step.route_name,
                step.invalid_attempts + (known.invalid_inputs if known else 0),
                step.timeout_attempts + (known.timeouts if known else 0),
                False,
            )
        if self.abandonment is not None and self.abandonment.route_id in entries:
            entry = entries[self.abandonment.route_id]
            entries[entry.route_id] = RouteFunnelEntry(
                entry.route_id, entry.route_name, entry.invalid_inputs, entry.timeouts, True
            )
        return list(entries.values())


class _Facts:
    """The facts of one call sorted by kind, each kept once (duplicates under new ids are absorbed)."""

    def __init__(self, facts: Iterable[CallFact]) -> None:
        ordered = sorted(set(facts), key=lambda fact: (fact.at, repr(fact)))
        self.started = next((f for f in ordered if isinstance(f, CallStarted)), None)
        self.ended = _end_of([f for f in ordered if isinstance(f, CallEnded)])
        self.prompts: dict[int, PromptIssued] = {}
        self.targets: dict[int, TargetIssued] = {}
        self.digits: dict[str, str] = {}
        self.timed_out: set[str] = set()
        self.transferred = False
        self.sms_requests: dict[str, SmsRequestedByCall] = {}
        fallbacks: list[PromptIssued | TargetIssued] = []
        for fact in ordered:
            if isinstance(fact, PromptIssued | TargetIssued) and fact.fallback is not FallbackCause.NONE:
                fallbacks.append(fact)
            if isinstance(fact, PromptIssued):
                self.prompts.setdefault(fact.step, fact)
            elif isinstance(fact, TargetIssued):
                self.targets.setdefault(fact.step, fact)
            elif isinstance(fact, DigitsCollected):
                self.digits.setdefault(fact.action_id, fact.digits)
            elif isinstance(fact, InputTimedOut):
                self.timed_out.add(fact.action_id)
            elif isinstance(fact, CallTransferred):
                self.transferred = True
            elif isinstance(fact, SmsRequestedByCall):
                self.sms_requests.setdefault(fact.request_id, fact)
        self.first_seen = ordered[0].at
        # action id of a prompt → the limit its last input reached (answered by a fallback, not a re-prompt).
        self.fell_back: dict[str, FallbackCause] = {}
        for action in fallbacks:
            answered = max((step for step in self.prompts if step < action.step), default=None)
            if answered is not None:
                self.fell_back[self.prompts[answered].action_id] = action.fallback


def _end_of(ends: list[CallEnded]) -> CallEnded | None:
    """The call's end: the earliest one its own media server reported, else the earliest at all.

    A lost-call report (reason platform_failure, sent by another media-gateway process once the call's own
    process looks dead) is a presumption; if the call's process did report an end after all, that end says
    what happened, whichever arrives or occurred first.
    """
    observed = [end for end in ends if end.reason != PLATFORM_FAILURE_END]
    if observed:
        return observed[0]
    return ends[0] if ends else None


def materialize_call(call_id: str, facts: Iterable[CallFact]) -> CallRecord:
    """The call record that the facts seen so far describe."""
    known = _Facts(facts)
    outcome = CallOutcome.REJECTED if _rejected(known) else _outcome(known)
    abandonment = _abandonment(known) if outcome in ABANDONED_OUTCOMES else None
    if abandonment is not None and abandonment.stage is AbandonedStage.NUMBER_CAPTURE:
        outcome = CallOutcome.ABANDONED_IN_NUMBER_CAPTURE
    dialed_number = known.started.dialed_number if known.started else ""
    if not dialed_number and known.sms_requests:
        dialed_number = next(iter(known.sms_requests.values())).dialed_number
    return CallRecord(
        call_id=call_id,
        dialed_number=dialed_number,
        caller_number=known.started.caller_number if known.started else "",
        start_time=known.started.at if known.started else None,
        end_time=known.ended.at if known.ended else None,
        first_seen=known.first_seen,
        path=_path(known),
        outcome=outcome,
        abandonment=abandonment,
        end_reason=known.ended.reason if known.ended else "",
        flow_id=next((prompt.flow_id for prompt in known.prompts.values() if prompt.flow_id), ""),
    )


def _rejected(known: _Facts) -> bool:
    """True when routing turned the caller away before the flow (whatever the caller did after)."""
    return any(target.hangup_reason.startswith(REJECTION_PREFIX) for target in known.targets.values())


def _outcome(known: _Facts) -> CallOutcome:
    # 途中放棄: the caller left while a prompt was waiting for input (or before the first one), i.e. before
    # a terminal target. If that target is merely late (a hang-up before the last action), its arrival
    # folds the call again. A call the platform lost at that point is a platform failure instead: the
    # caller did not leave. After a terminal target, the target decides, however the call ended.
    if known.ended and _waiting_for_input(known):
        if known.ended.reason == PLATFORM_FAILURE_END:
            return CallOutcome.PLATFORM_FAILURE
        return CallOutcome.ABANDONED
    kinds = {target.kind for target in known.targets.values()}
    if known.transferred or TargetKind.TRANSFER in kinds:
        return CallOutcome.TRANSFERRED
    if known.sms_requests:
        return CallOutcome.SMS_SENT
    if any(t.hangup_reason == "not_in_service" for t in known.targets.values()):
        return CallOutcome.NOT_IN_SERVICE
    if kinds:
        return CallOutcome.COMPLETED
    return CallOutcome.IN_PROGRESS


def _waiting_for_input(known: _Facts) -> bool:
    """True when the latest action is a prompt and no SMS was requested after it."""
    steps = [*known.prompts, *known.targets]
    if not steps:
        return not known.sms_requests
    last = max(steps)
    if last not in known.prompts:
        return False
    prompted_at = known.prompts[last].at
    return not any(request.at >= prompted_at for request in known.sms_requests.values())


def _path(known: _Facts) -> tuple[RouteStep, ...]:
    """Route visits in step order; re-prompts after a mistake belong to the visit they repeat."""
    visits: list[list[PromptIssued]] = []
    for step in sorted(known.prompts):
        prompt = known.prompts[step]
        same_visit = visits and visits[-1][-1].route_id == prompt.route_id
        if same_visit and prompt.reason is not PromptReason.INITIAL:
            visits[-1].append(prompt)
        else:
            visits.append([prompt])
    return tuple(_route_step(known, visit) for visit in visits)


def _route_step(known: _Facts, visit: list[PromptIssued]) -> RouteStep:
    """Mistakes counted from the re-prompts of this visit (routing's counters add up across visits)."""
    last = visit[-1]
    reprompts = Counter(prompt.reason for prompt in visit)
    timed_out = sum(1 for prompt in visit if prompt.action_id in known.timed_out)
    fell_back = known.fell_back.get(last.action_id, FallbackCause.NONE)
    over_limit = fell_back is FallbackCause.INVALID_INPUT or _fell_back_on_digits(known, last)
    return RouteStep(
        route_id=last.route_id,
        route_name=last.route_name,
        digits=known.digits.get(last.action_id, ""),
        invalid_attempts=reprompts[PromptReason.INVALID_INPUT] + int(over_limit),
        # Either signal may still be in flight: the time-out event or routing's action after it.
        timeout_attempts=max(
            reprompts[PromptReason.TIMEOUT] + int(fell_back is FallbackCause.TIMEOUT), timed_out
        ),
    )


def _fell_back_on_digits(known: _Facts, last: PromptIssued) -> bool:
    """For actions recorded before CallAction.fallback existed: the last input of a visit was one mistake
    too many and routing hung up ("fallback"). Such a fallback to another route cannot be told apart from
    a valid choice; routing now marks the action that enters any fallback (`known.fell_back`).
    """
    following = known.targets.get(last.step + 1)
    fell_back = following is not None and following.hangup_reason == "fallback"
    return fell_back and last.action_id in known.digits


def _abandonment(known: _Facts) -> Abandonment:
    in_progress = _prompt_in_progress(known)
    if in_progress is None:  # hung up before the first prompt reached us
        return Abandonment("", "", AbandonedStage.PROMPT, 0, 0)
    capturing = in_progress.input_kind in _NUMBER_CAPTURE
    return Abandonment(
        in_progress.route_id,
        in_progress.route_name,
        AbandonedStage.NUMBER_CAPTURE if capturing else _STAGE_OF_PROMPT[in_progress.reason],
        in_progress.invalid_attempts,
        in_progress.timeout_attempts,
    )


def _prompt_in_progress(known: _Facts) -> PromptIssued | None:
    """The prompt the telephony side named as in progress at the end, else the latest one."""
    during = known.ended.during_action_id if known.ended else ""
    for prompt in known.prompts.values():
        if during and prompt.action_id == during:
            return prompt
    return known.prompts[max(known.prompts)] if known.prompts else None
