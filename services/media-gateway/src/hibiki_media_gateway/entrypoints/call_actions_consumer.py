"""The call.actions edge of media-gateway: a contract-checked record becomes an action for one live call.

The runtime has already refused records that break the contract (lengths, characters, keys, timeouts
within their limits). Every replica reads every action — a call lives in the replica that answered it — and
the service layer drops the actions of calls it does not hold. Durations that are missing or negative
fall back to the usual IVR timers rather than end input at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.duration_pb2 import Duration
from hibiki.call.v1 import call_actions_pb2 as pb
from hibiki_runtime.consumer import ConsumerEdge
from hibiki_runtime.events import CALL_ACTIONS, DecodedEvent, InvalidEvent

from hibiki_media_gateway.domain.commands import CallCommand
from hibiki_media_gateway.domain.session import Hangup, Play, PlayAndCollect, Prompt, Transfer

# The timers a PlayAndCollect without its own gets (seconds), as common IVR defaults.
DEFAULT_FIRST_DIGIT_TIMEOUT = 5.0
DEFAULT_INTER_DIGIT_TIMEOUT = 3.0
# Longer timers are cut to this: a caller never waits on a silent line for minutes.
MAX_TIMEOUT = 60.0


def _prompts(prompts: Iterable[pb.Prompt]) -> tuple[Prompt, ...]:
    return tuple(Prompt(p.guidance_id or p.audio_file_id, p.text) for p in prompts)


def _seconds(duration: Duration, default: float) -> float:
    seconds = duration.seconds + duration.nanos / 1e9
    return min(seconds, MAX_TIMEOUT) if seconds > 0 else default


def call_action_command(event: DecodedEvent) -> CallCommand:
    """The command of a call.actions record (registered with runtime.consume)."""
    message = event.message
    assert isinstance(message, pb.CallAction)
    action_id = message.action_id
    match message.WhichOneof("body"):
        case "play_and_collect":
            collect = message.play_and_collect
            action: PlayAndCollect | Play | Transfer | Hangup = PlayAndCollect(
                action_id,
                _prompts(collect.prompts),
                collect.max_digits,
                collect.terminator,
                _seconds(collect.first_digit_timeout, DEFAULT_FIRST_DIGIT_TIMEOUT),
                _seconds(collect.inter_digit_timeout, DEFAULT_INTER_DIGIT_TIMEOUT),
            )
        case "play":
            action = Play(action_id, _prompts(message.play.prompts))
        case "transfer":
            transfer = message.transfer
            action = Transfer(action_id, transfer.destination, _prompts(transfer.prompts))
        case "hangup":
            hangup = message.hangup
            action = Hangup(action_id, _prompts(hangup.prompts), hangup.reason)
        case other:
            raise InvalidEvent("unknown_schema", f"media-gateway does not carry out {other!r}")
    return CallCommand(message.call_id, action)


TRANSLATORS = {CALL_ACTIONS: call_action_command}
EDGE = ConsumerEdge(TRANSLATORS)
