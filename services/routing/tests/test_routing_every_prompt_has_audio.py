"""Every prompt routing sends names audio the platform can fetch from guidance-tts, in every kind of decision.

A media server plays audio, not text: a prompt with text only would be silence (or an error) on a real call.
The walk below drives the engine through each kind of decision and checks the call.actions records exactly
as they are published.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from buf.validate import validate_pb2
from hibiki.call.v1 import call_actions_pb2
from hibiki_routing.adapters.call_messages import outgoing
from hibiki_routing.domain.calls import (
    ORDINARY_CALLER,
    Caller,
    CallEvent,
    CallState,
    CallTransferred,
    Decision,
    DigitsEntered,
    InputTimedOut,
    Outcome,
    Play,
    PromptFinished,
    Transfer,
)
from hibiki_routing.domain.engine import decide, not_in_service, start_call
from hibiki_routing.domain.flows import (
    CallerRejection,
    FlowDefinition,
    GuidanceChoice,
    GuidanceChoiceKind,
    MenuNode,
    MobileNumberCapture,
    Node,
    SendSmsNode,
)
from hibiki_runtime.contract import violations

from services.routing.tests.routing_flows import CALLER, DIALED, sample_flow

AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Tokyo: open
LANDLINE = "+81612345678"
PROMPTS_MAX_ITEMS = (
    call_actions_pb2.PlayAndCollect.DESCRIPTOR.fields_by_name["prompts"]
    .GetOptions()
    .Extensions[validate_pb2.field]
    .repeated.max_items
)


def every_kind_of_flow() -> FlowDefinition:
    """The sample flow (hours, menu, SMS, transfer, hang-up, announcements) plus capture and rejection.

    Menu 4 leads to a second menu whose mistakes play original guidances instead of the seed's defaults.
    """
    flow = sample_flow(entry="hours")
    menu = MenuNode(
        "g-menu", {"1": "sms", "2": "transfer", "4": "own-guidances", "9": "bye"}, fallback_node_id="fallback"
    )
    own = MenuNode(
        "g-own",
        {"1": "bye"},
        invalid_input_guidance=GuidanceChoice(GuidanceChoiceKind.ORIGINAL_GUIDANCE, "g-own-invalid"),
        input_timeout_guidance=GuidanceChoice(GuidanceChoiceKind.NONE),
    )
    capture = MobileNumberCapture("g-capture", fallback_node_id="fallback")
    replaced = {
        "menu": Node("menu", menu, "メインメニュー"),
        "sms": Node("sms", SendSmsNode("100", "g-sms-sent", "bye", capture), "SMS"),
    }
    nodes = (
        *(replaced.get(node.id, node) for node in flow.nodes),
        Node("own-guidances", own, "独自ガイダンス"),
    )
    return replace(flow, nodes=nodes, caller_rejection=CallerRejection(True, True, "g-rejected"))


def call(caller: str = CALLER) -> CallState:
    return CallState("call-1", "tenant-a", "flow-1", 1, DIALED, caller)


def walk(
    flow: FlowDefinition, script: list[str], caller_number: str = CALLER, caller: Caller = ORDINARY_CALLER
) -> Iterator[Decision]:
    """Every decision of one call: announcements are listened to, menus answered from `script`."""
    decision = start_call(call(caller_number), flow, AT, caller)
    yield decision
    awaited = {step.number: step.output for step in decision.steps}
    inputs = iter(script)
    while not decision.state.ended:
        step = decision.state.awaiting_step
        output = awaited[step]
        event: CallEvent
        if isinstance(output, Play):
            event = PromptFinished(step, AT)
        elif isinstance(output, Transfer):
            event = CallTransferred(step, AT)
        else:
            given = next(inputs, None)
            if given is None:
                return
            event = InputTimedOut(step, "", AT) if given == "timeout" else DigitsEntered(step, given, AT)
        decision = decide(decision.state, flow, event)
        awaited.update((s.number, s.output) for s in decision.steps)
        yield decision


SCRIPTS: dict[str, tuple[list[str], str, Caller]] = {
    "menu → SMS to a mobile caller → announcement → hang-up": (["1"], CALLER, ORDINARY_CALLER),
    "invalid, timeout, then transfer": (["7", "timeout", "2"], CALLER, ORDINARY_CALLER),
    "three invalid inputs → fallback announcement": (["7", "8", "0"], CALLER, ORDINARY_CALLER),
    "three timeouts → fallback announcement": (["timeout"] * 3, CALLER, ORDINARY_CALLER),
    "original guidances and none on mistakes": (["4", "7", "timeout", "1"], CALLER, ORDINARY_CALLER),
    "original guidances up to the fallback hang-up": (["4", "7", "7", "7"], CALLER, ORDINARY_CALLER),
    "capture: bad number, timeout, read-back, mistakes there, correction, confirmation": (
        ["1", "0312345678#", "timeout", "09012345678#", "7", "timeout", "2", "08087654321#", "1"],
        LANDLINE,
        ORDINARY_CALLER,
    ),
    "capture: read-back mistakes up to the fallback": (
        ["1", "09012345678#", "5", "6", "7"],
        LANDLINE,
        ORDINARY_CALLER,
    ),
    "withheld caller rejected": ([], "", Caller(withheld=True)),
    "blocklisted caller rejected": ([], CALLER, Caller(blocklisted=True)),
}


def every_decision() -> Iterator[Decision]:
    flow = every_kind_of_flow()
    for script, caller_number, caller in SCRIPTS.values():
        yield from walk(flow, script, caller_number, caller)
    yield not_in_service(replace(call(), flow_id="", flow_version=0))


def published_prompts(decision: Decision) -> Iterator[tuple[str, call_actions_pb2.Prompt]]:
    """(where, prompt) of each prompt in the call.actions records of `decision`, as published."""
    for _topic, _key, message in outgoing(decision.state, decision.steps, "cause-1", ""):
        if not isinstance(message, call_actions_pb2.CallAction):
            continue
        assert violations(message) == [], message
        kind = message.WhichOneof("body") or ""
        prompts = getattr(message, kind).prompts
        assert len(prompts) <= PROMPTS_MAX_ITEMS
        for index, prompt in enumerate(prompts):
            yield f"step {message.step} {kind}.prompts[{index}]", prompt


def test_no_prompt_leaves_routing_without_audio_to_fetch() -> None:
    decisions = list(every_decision())
    silent = [
        f"{where}: {prompt.text!r}"
        for decision in decisions
        for where, prompt in published_prompts(decision)
        if not (prompt.guidance_id or prompt.audio_file_id)
    ]
    assert silent == []

    # The walk covers every kind of decision and every system prompt, so the check above means something.
    outcomes = {decision.outcome for decision in decisions}
    assert outcomes >= set(Outcome) - {Outcome.CALL_ENDED, Outcome.IGNORED_STALE, Outcome.IGNORED_ENDED}
    played = {p.guidance_id for d in decisions for _, p in published_prompts(d)}
    system = {f"system:{n}" for n in ("invalid_input", "input_timeout", "not_in_service", "pause")}
    system |= {"system:readback_confirm", "system:closing", *(f"system:digit-{d}" for d in range(10))}
    assert played >= system | {"g-rejected", "g-transfer", "g-bye", "g-fallback", "g-own-invalid"}
    kinds = {m.WhichOneof("body") for d in decisions for _, _, m in outgoing(d.state, d.steps, "c", "")}
    assert kinds >= {"play_and_collect", "play", "transfer", "hangup", "sms_requested"}


def test_system_prompts_keep_their_words_for_logs_and_traces() -> None:
    texts = {
        prompt.guidance_id: prompt.text
        for decision in every_decision()
        for _, prompt in published_prompts(decision)
        if prompt.guidance_id.startswith("system:")
    }
    assert all(texts.values())
    assert texts["system:digit-7"] == "7" and texts["system:pause"] == "-"
    assert texts["system:invalid_input"].startswith("入力が間違っています")
