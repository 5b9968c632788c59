"""One call as the telephony platform carries it: routing's actions, what the caller did, what happens next.

Pure and synchronous. Inputs are routing's actions and what happens on the line (the call was answered, a key,
the end of a playback, a timer, the caller hanging up, the result of a transfer); every input returns the
effects to carry out, in order: play or stop prompts, (re)start the call's timer, transfer, hang up, and the
call.events to publish. Nothing here knows SIP, Kafka, databases or the clock.

The timers are those of a media server's play-and-collect (FreeSWITCH `play_and_get_digits`, Twilio
`<Gather>`): the first-digit timer starts when the prompts have played, a key during the prompts stops them
(barge-in) and counts, each key restarts the inter-digit timer, the terminator or `max_digits` completes the
input. While it waits for routing's next action the call runs an idle timer; a call that hears nothing from
routing for that long is hung up rather than left in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# DigitsCollected carries at most 32 keys (contract); a PlayAndCollect without max_digits collects up to that.
MAX_DIGITS = 32
DTMF_KEYS = frozenset("0123456789*#ABCD")


# -- routing's actions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    """Audio to play: a guidance, system prompt or audio file id of guidance-tts; the text is for logs."""

    audio_id: str
    text: str = ""


@dataclass(frozen=True)
class PlayAndCollect:
    action_id: str
    prompts: tuple[Prompt, ...]
    max_digits: int
    terminator: str
    first_digit_timeout: float  # seconds
    inter_digit_timeout: float


@dataclass(frozen=True)
class Play:
    action_id: str
    prompts: tuple[Prompt, ...]


@dataclass(frozen=True)
class Transfer:
    action_id: str
    destination: str
    prompts: tuple[Prompt, ...]


@dataclass(frozen=True)
class Hangup:
    action_id: str
    prompts: tuple[Prompt, ...]
    reason: str


Action = PlayAndCollect | Play | Transfer | Hangup


# -- call.events ------------------------------------------------------------------------------------------
class EndReason(StrEnum):
    CALLER_HANGUP = "caller_hangup"
    SYSTEM_HANGUP = "system_hangup"
    TRANSFERRED = "transferred"
    NETWORK_ERROR = "network_error"
    PLATFORM_FAILURE = "platform_failure"


class TimeoutKind(StrEnum):
    FIRST_DIGIT = "first_digit"
    INTER_DIGIT = "inter_digit"


@dataclass(frozen=True)
class CallStarted:
    dialed_number: str
    caller_number: str
    caller_withheld: bool
    kind: str = "started"


@dataclass(frozen=True)
class DigitsCollected:
    action_id: str
    digits: str
    terminated_by_key: bool
    kind: str = "digits"


@dataclass(frozen=True)
class InputTimedOut:
    action_id: str
    timeout: TimeoutKind
    partial_digits: str
    kind: str = "timeout"


@dataclass(frozen=True)
class PromptFinished:
    action_id: str
    kind: str = "finished"


@dataclass(frozen=True)
class CallTransferred:
    action_id: str
    destination: str
    kind: str = "transferred"


@dataclass(frozen=True)
class CallEnded:
    reason: EndReason
    during_action_id: str
    kind: str = "ended"


CallEvent = CallStarted | DigitsCollected | InputTimedOut | PromptFinished | CallTransferred | CallEnded


# -- effects ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Publish:
    """Publish a call.events record; `sequence` numbers the call's events from 1 (its event id)."""

    sequence: int
    event: CallEvent
    causation: str = ""  # the action answered, if any


@dataclass(frozen=True)
class PlayPrompts:
    playback: int  # numbers this call's playbacks: the end of an older one is ignored
    prompts: tuple[Prompt, ...]


@dataclass(frozen=True)
class StopPlayback:
    pass


@dataclass(frozen=True)
class StartTimer:
    timer: int  # numbers this call's timers: an older one that fires is ignored
    seconds: float


@dataclass(frozen=True)
class TransferTo:
    destination: str


@dataclass(frozen=True)
class HangUp:
    pass


Effect = Publish | PlayPrompts | StopPlayback | StartTimer | TransferTo | HangUp


class Phase(StrEnum):
    WAITING = "waiting"  # for routing's next action
    PLAYING = "playing"
    COLLECTING = "collecting"
    TRANSFERRING = "transferring"
    ENDED = "ended"


@dataclass
class CallSession:
    call_id: str
    idle_timeout: float  # seconds without an action from routing before the call is hung up
    phase: Phase = Phase.WAITING
    current: Action | None = None
    digits: str = ""
    playback: int = 0
    timer: int = 0
    sequence: int = 0
    handled: set[str] = field(default_factory=set)

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    # -- inputs ------------------------------------------------------------------------------------------
    def start(self, dialed_number: str, caller_number: str, withheld: bool) -> list[Effect]:
        """The call was accepted: announce it and wait for routing's first action."""
        return [
            self._publish(CallStarted(dialed_number, caller_number, withheld)),
            self._start_timer(self.idle_timeout),
        ]

    def act(self, action: Action) -> list[Effect]:
        """Carry out an action of routing; a repeated action id (redelivery) changes nothing."""
        if self.ended or action.action_id in self.handled:
            return []
        self.handled.add(action.action_id)
        effects: list[Effect] = [StopPlayback()] if self.phase is Phase.PLAYING else []
        self.current, self.digits = action, ""
        self.timer += 1  # whatever ran is void
        if action.prompts:
            self.phase, self.playback = Phase.PLAYING, self.playback + 1
            return [*effects, PlayPrompts(self.playback, action.prompts)]
        return [*effects, *self._prompts_done()]

    def playback_ended(self, playback: int) -> list[Effect]:
        """A playback reached its end (not when it was stopped)."""
        if playback != self.playback or self.phase is not Phase.PLAYING:
            return []
        return self._prompts_done()

    def key(self, key: str) -> list[Effect]:
        """The caller pressed a key (RFC 4733 or SIP INFO); only a PlayAndCollect listens."""
        action = self.current
        if (
            key not in DTMF_KEYS
            or not isinstance(action, PlayAndCollect)
            or self.phase not in (Phase.PLAYING, Phase.COLLECTING)
        ):
            return []
        effects: list[Effect] = []
        if self.phase is Phase.PLAYING:  # barge-in: the key stops the prompts and counts
            effects.append(StopPlayback())
            self.phase = Phase.COLLECTING
        if action.terminator and key == action.terminator:
            return [*effects, *self._collected(terminated_by_key=True)]
        self.digits += key
        if len(self.digits) >= _max_digits(action):
            return [*effects, *self._collected(terminated_by_key=False)]
        return [*effects, self._start_timer(action.inter_digit_timeout)]

    def timer_fired(self, timer: int) -> list[Effect]:
        if timer != self.timer or self.ended:
            return []
        action = self.current
        if self.phase is Phase.COLLECTING and isinstance(action, PlayAndCollect):
            kind = TimeoutKind.INTER_DIGIT if self.digits else TimeoutKind.FIRST_DIGIT
            timed_out = InputTimedOut(action.action_id, kind, self.digits)
            self.phase = Phase.WAITING
            return [self._publish(timed_out, action.action_id), self._start_timer(self.idle_timeout)]
        if self.phase is Phase.WAITING:  # routing said nothing: end the call rather than leave it silent
            return self._end(EndReason.NETWORK_ERROR, hang_up=True)
        return []

    def transfer_result(self, succeeded: bool) -> list[Effect]:
        action = self.current
        if self.phase is not Phase.TRANSFERRING or not isinstance(action, Transfer):
            return []
        if not succeeded:
            return self._end(EndReason.NETWORK_ERROR, hang_up=True)
        transferred = self._publish(CallTransferred(action.action_id, action.destination), action.action_id)
        return [transferred, *self._end(EndReason.TRANSFERRED, hang_up=True)]

    def line_closed(self) -> list[Effect]:
        """The call ended on the line (the caller hung up, or the network dropped it)."""
        if self.ended:
            return []
        return self._end(EndReason.CALLER_HANGUP, hang_up=False)

    def cut_off(self) -> list[Effect]:
        """This process stops (shutdown) with the call still up."""
        if self.ended:
            return []
        return self._end(EndReason.PLATFORM_FAILURE, hang_up=True)

    # -- steps ------------------------------------------------------------------------------------------
    def _prompts_done(self) -> list[Effect]:
        action = self.current
        if isinstance(action, PlayAndCollect):
            self.phase = Phase.COLLECTING
            return [self._start_timer(action.first_digit_timeout)]
        if isinstance(action, Play):
            self.phase = Phase.WAITING
            return [
                self._publish(PromptFinished(action.action_id), action.action_id),
                self._start_timer(self.idle_timeout),
            ]
        if isinstance(action, Transfer):
            self.phase = Phase.TRANSFERRING
            return [TransferTo(action.destination)]
        assert isinstance(action, Hangup)
        return self._end(EndReason.SYSTEM_HANGUP, hang_up=True)

    def _collected(self, *, terminated_by_key: bool) -> list[Effect]:
        action = self.current
        assert isinstance(action, PlayAndCollect)
        self.phase = Phase.WAITING
        collected = DigitsCollected(action.action_id, self.digits, terminated_by_key)
        return [self._publish(collected, action.action_id), self._start_timer(self.idle_timeout)]

    def _end(self, reason: EndReason, *, hang_up: bool) -> list[Effect]:
        """End the call; `during_action_id` is the action in progress (a Hangup or Transfer ends the call
        by carrying it out; one that was answered already is not in progress any more)."""
        in_progress = self.phase is not Phase.WAITING or reason in (
            EndReason.SYSTEM_HANGUP,
            EndReason.TRANSFERRED,
        )
        during = self.current.action_id if self.current is not None and in_progress else ""
        effects: list[Effect] = [StopPlayback()] if self.phase is Phase.PLAYING else []
        self.phase = Phase.ENDED
        self.timer += 1
        effects.append(self._publish(CallEnded(reason, during), during))
        if hang_up:
            effects.append(HangUp())
        return effects

    def _publish(self, event: CallEvent, causation: str = "") -> Publish:
        self.sequence += 1
        return Publish(self.sequence, event, causation)

    def _start_timer(self, seconds: float) -> StartTimer:
        self.timer += 1
        return StartTimer(self.timer, seconds)


def _max_digits(action: PlayAndCollect) -> int:
    return action.max_digits if 0 < action.max_digits <= MAX_DIGITS else MAX_DIGITS
