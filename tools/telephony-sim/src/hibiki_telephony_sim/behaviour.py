"""The simulated caller as a pure state machine: (caller plan, action) → replies.

A media server plays what routing tells it and answers each action once; the caller decides what to key,
when to stay silent and when to hang up. Times here are *simulated* seconds after the action started playing
(the simulator divides them by its time-compression factor). No broker, no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hibiki_telephony_sim.scenario import Answer, CallerSpec

DEFAULT_FIRST_DIGIT_TIMEOUT = 5.0  # seconds, when a PlayAndCollect leaves it unset


@dataclass(frozen=True)
class PromptRef:
    guidance_id: str = ""
    audio_file_id: str = ""
    text: str = ""


# ---- actions (what routing asks for) -------------------------------------------------------------------


@dataclass(frozen=True)
class PlayAndCollect:
    action_id: str
    step: int
    prompts: tuple[PromptRef, ...]
    max_digits: int
    terminator: str
    first_digit_timeout: float
    inter_digit_timeout: float
    route_id: str = ""
    route_name: str = ""
    reason: str = "initial"  # initial | invalid_input | timeout
    kind: str = "play_and_collect"


@dataclass(frozen=True)
class Play:
    action_id: str
    step: int
    prompts: tuple[PromptRef, ...]
    route_id: str = ""
    kind: str = "play"


@dataclass(frozen=True)
class Transfer:
    action_id: str
    step: int
    destination: str
    prompts: tuple[PromptRef, ...]
    route_id: str = ""
    kind: str = "transfer"


@dataclass(frozen=True)
class Hangup:
    action_id: str
    step: int
    prompts: tuple[PromptRef, ...]
    reason: str
    route_id: str = ""
    kind: str = "hangup"


Action = PlayAndCollect | Play | Transfer | Hangup


# ---- events (what the telephony side reports) ----------------------------------------------------------


class EndReason(StrEnum):
    CALLER_HANGUP = "caller_hangup"
    SYSTEM_HANGUP = "system_hangup"
    TRANSFERRED = "transferred"


@dataclass(frozen=True)
class DigitsCollected:
    action_id: str
    digits: str
    terminated_by_key: bool
    kind: str = "digits"


@dataclass(frozen=True)
class InputTimedOut:
    action_id: str
    timeout: str = "first_digit"
    kind: str = "timeout"


@dataclass(frozen=True)
class PromptFinished:
    action_id: str
    kind: str = "prompt_finished"


@dataclass(frozen=True)
class CallTransferred:
    action_id: str
    destination: str
    kind: str = "transferred"


@dataclass(frozen=True)
class CallEnded:
    reason: EndReason
    during_action_id: str = ""
    kind: str = "ended"


Event = DigitsCollected | InputTimedOut | PromptFinished | CallTransferred | CallEnded


@dataclass(frozen=True)
class Reply:
    """An event to report `after` simulated seconds from the start of the action it answers."""

    after: float
    event: Event


class Outcome(StrEnum):
    """What the caller experienced at the end of the call."""

    IN_PROGRESS = "in_progress"
    ABANDONED = "abandoned"  # the caller hung up during guidance or input, by plan
    TRANSFERRED = "transferred"
    SYSTEM_HANGUP = "hangup"  # the system hung up; see hangup_reason
    GAVE_UP = "gave_up"  # nothing happened for too long; the caller hung up on silence


@dataclass(frozen=True)
class Timing:
    """Simulated human timings."""

    think_seconds: float = 0.8  # after the prompt ends, before the first key
    hangup_fraction: float = 0.5  # how far into the guidance a hanging-up caller leaves


@dataclass
class Caller:
    """One caller's state. Feed it actions with `on_action`; it answers each action id once."""

    spec: CallerSpec
    timing: Timing = field(default_factory=Timing)
    collects: int = 0  # PlayAndCollects answered so far
    ended: bool = False
    outcome: Outcome = Outcome.IN_PROGRESS
    hangup_reason: str = ""
    transferred_to: str = ""
    sms_promised: bool = False
    answers: list[str] = field(default_factory=list)  # the Answer used for each PlayAndCollect
    duplicates: int = 0
    late_actions: int = 0
    _seen: set[str] = field(default_factory=set)
    _current: str = ""  # action being played or awaited
    _sms_pending: tuple[str, str] | None = None  # (route_id, action_id) of a right key that promises an SMS

    def has_seen(self, action_id: str) -> bool:
        return action_id in self._seen

    def on_action(self, action: Action, prompt_seconds: float) -> list[Reply]:
        """Replies to `action`, which takes `prompt_seconds` to play; [] for a repeat or after the end."""
        if action.action_id in self._seen:
            self.duplicates += 1
            return []
        self._seen.add(action.action_id)
        if self.ended:
            self.late_actions += 1
            return []
        self._settle_sms(action)
        self._current = action.action_id
        if isinstance(action, PlayAndCollect):
            return self._collect(action, prompt_seconds)
        if isinstance(action, Play):
            return [Reply(prompt_seconds, PromptFinished(action.action_id))]
        if isinstance(action, Transfer):
            self._end(Outcome.TRANSFERRED)
            self.transferred_to = action.destination
            return [
                Reply(prompt_seconds, CallTransferred(action.action_id, action.destination)),
                Reply(prompt_seconds, CallEnded(EndReason.TRANSFERRED, action.action_id)),
            ]
        self._end(Outcome.SYSTEM_HANGUP)
        self.hangup_reason = action.reason
        return [Reply(prompt_seconds, CallEnded(EndReason.SYSTEM_HANGUP, action.action_id))]

    def give_up(self) -> list[Reply]:
        """Nothing came for too long: the caller hangs up during whatever was last going on."""
        if self.ended:
            return []
        self._end(Outcome.GAVE_UP)
        return [Reply(0.0, CallEnded(EndReason.CALLER_HANGUP, self._current))]

    def _collect(self, action: PlayAndCollect, prompt_seconds: float) -> list[Reply]:
        answer = self.spec.behaviour.answer(self.collects)
        self.collects += 1
        self.answers.append(answer.value)
        if answer is Answer.HANGUP:
            self._end(Outcome.ABANDONED)
            after = prompt_seconds * self.timing.hangup_fraction
            return [Reply(after, CallEnded(EndReason.CALLER_HANGUP, action.action_id))]
        if answer is Answer.TIMEOUT:
            timeout = action.first_digit_timeout or DEFAULT_FIRST_DIGIT_TIMEOUT
            return [Reply(prompt_seconds + timeout, InputTimedOut(action.action_id))]
        keys = self.spec.keys_for(action.route_id, action.route_name)
        digits = keys.right if answer is Answer.RIGHT else keys.wrong
        if action.max_digits and len(digits) > action.max_digits:
            digits = digits[: action.max_digits]
        by_key = bool(action.terminator) and len(digits) < max(action.max_digits, 1)
        if answer is Answer.RIGHT and keys.sms and not self.spec.withheld:
            self._sms_pending = (action.route_id, action.action_id)
        after = prompt_seconds + self.timing.think_seconds
        return [Reply(after, DigitsCollected(action.action_id, digits, by_key))]

    def _settle_sms(self, action: Action) -> None:
        """A right key promised an SMS unless routing answered it with a re-prompt of the same menu."""
        if self._sms_pending is None:
            return
        route_id, _ = self._sms_pending
        self._sms_pending = None
        reprompt = (
            isinstance(action, PlayAndCollect) and action.route_id == route_id and action.reason != "initial"
        )
        if not reprompt:
            self.sms_promised = True

    def _end(self, outcome: Outcome) -> None:
        self.ended = True
        self.outcome = outcome

    @property
    def outcome_label(self) -> str:
        if self.outcome is Outcome.SYSTEM_HANGUP:
            return f"hangup:{self.hangup_reason or 'unspecified'}"
        return self.outcome.value
