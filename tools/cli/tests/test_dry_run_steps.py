"""How `hibiki routing dry-run` shows a step: what the caller hears, a number read back as one number."""

from __future__ import annotations

from hibiki.call.v1 import call_actions_pb2 as actions
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki_cli.routing import _describe_step


def prompt(guidance_id: str, text: str = "") -> actions.Prompt:
    return actions.Prompt(guidance_id=guidance_id, text=text)


def test_a_read_back_number_shows_as_one_number_then_the_question() -> None:
    spelled = [
        prompt(f"system:digit-{d}", d) if d != "-" else prompt("system:pause", "-") for d in "090-1234-5678"
    ]
    collect = actions.PlayAndCollect(
        prompts=[
            prompt("system:invalid_input", "入力が間違っています。"),
            *spelled,
            prompt("system:readback_confirm", "でよろしければ1を、訂正は2を押してください。"),
        ],
        route_id="sms",
        reason=actions.PROMPT_REASON_INVALID_INPUT,
    )
    step = pb.DryRunStep(step=4, action=actions.CallAction(play_and_collect=collect))
    assert _describe_step(step) == (
        "play and collect on sms (invalid_input): "
        "入力が間違っています。 + 090-1234-5678 + でよろしければ1を、訂正は2を押してください。"
    )


def test_a_guidance_without_text_shows_its_id() -> None:
    hangup = actions.Hangup(prompts=[prompt("g-bye")], reason="completed")
    step = pb.DryRunStep(step=2, action=actions.CallAction(hangup=hangup))
    assert _describe_step(step) == "hang up (completed): g-bye"
