"""A flow run against a scripted caller: the engine's own decisions, answered from a script, no live state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hibiki_runtime.errors import FieldViolation, InvalidArgument

from .calls import (
    ORDINARY_CALLER,
    Caller,
    CallEvent,
    CallState,
    CallTransferred,
    DigitsEntered,
    InputTimedOut,
    Output,
    Play,
    PlayAndCollect,
    PromptFinished,
    Step,
    Transfer,
)
from .engine import decide, start_call
from .flows import FlowDefinition
from .validation import DTMF_KEYS, MAX_DIGITS

# A validated flow waits for the caller within a few steps; this bounds a run of announcements that loop.
MAX_DRY_RUN_STEPS = 500
MAX_SCRIPTED_INPUTS = 100


@dataclass(frozen=True)
class Keys:
    """The caller keys these DTMF digits."""

    digits: str


@dataclass(frozen=True)
class Silence:
    """The caller keys nothing until the input times out."""


ScriptedInput = Keys | Silence


def check_script(script: Sequence[ScriptedInput], field: str = "inputs") -> None:
    """Refuse a script a real caller could not produce (non-DTMF keys, too many inputs)."""
    if len(script) > MAX_SCRIPTED_INPUTS:
        raise InvalidArgument.field(field, f"at most {MAX_SCRIPTED_INPUTS} inputs")
    violations = [
        FieldViolation(f"{field}[{i}].digits", f"must be 1 to {MAX_DIGITS} DTMF keys (0-9, *, #)")
        for i, given in enumerate(script)
        if isinstance(given, Keys) and not (DTMF_KEYS.match(given.digits) and len(given.digits) <= MAX_DIGITS)
    ]
    if violations:
        raise InvalidArgument(*violations)


@dataclass(frozen=True)
class ScriptedStep:
    """An engine output and what the scripted caller did that led to it ("" for the call start)."""

    answered: str
    step: Step


@dataclass(frozen=True)
class DryRun:
    steps: tuple[ScriptedStep, ...]
    state: CallState
    inputs_used: int

    @property
    def awaiting_route_id(self) -> str:
        """The route still waiting for input when the script ran out; empty once the call ended."""
        return "" if self.state.ended else self.state.node_id


def dry_run(
    state: CallState,
    definition: FlowDefinition,
    script: Sequence[ScriptedInput],
    at: datetime,
    caller: Caller = ORDINARY_CALLER,
) -> DryRun:
    """Start a call and answer each awaited action: menus from the script, announcements by listening."""
    decision = start_call(state, definition, at, caller)
    steps = [ScriptedStep("", step) for step in decision.steps]
    awaited = {step.number: step.output for step in decision.steps}
    used = 0
    while not decision.state.ended and len(steps) < MAX_DRY_RUN_STEPS:
        answer = _answer(awaited.get(decision.state.awaiting_step), decision.state, script[used:], at)
        if answer is None:
            break
        answered, event = answer
        if isinstance(event, DigitsEntered | InputTimedOut):
            used += 1
        decision = decide(decision.state, definition, event)
        steps.extend(ScriptedStep(answered, step) for step in decision.steps)
        awaited.update((step.number, step.output) for step in decision.steps)
    return DryRun(tuple(steps), decision.state, used)


def _answer(
    output: Output | None, state: CallState, remaining: Sequence[ScriptedInput], at: datetime
) -> tuple[str, CallEvent] | None:
    """How the scripted caller answers the awaited output; None when the script has nothing to say."""
    step = state.awaiting_step
    if isinstance(output, Play):
        return "prompt_finished", PromptFinished(step, at)
    if isinstance(output, Transfer):
        return "transferred", CallTransferred(step, at)
    if not isinstance(output, PlayAndCollect) or not remaining:
        return None
    given = remaining[0]
    if isinstance(given, Keys):
        return given.digits, DigitsEntered(step, given.digits, at)
    return "timeout", InputTimedOut(step, "", at)
