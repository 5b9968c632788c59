"""A sample flow and readable summaries of engine outputs, shared by the routing tests."""

from __future__ import annotations

from hibiki_routing.domain.calls import HangUp, Output, Play, PlayAndCollect, Prompt, SendSms, Transfer
from hibiki_routing.domain.flows import (
    AnnouncementNode,
    BusinessHoursNode,
    FlowDefinition,
    HangupNode,
    MenuNode,
    Node,
    SendSmsNode,
    TimeWindow,
    TransferNode,
)

CALLER = "+819012345678"
DIALED = "+81312345678"
WEEKDAYS_9_TO_18 = TimeWindow(frozenset({1, 2, 3, 4, 5}), 9 * 60, 18 * 60)


def sample_flow(menu: MenuNode | None = None, entry: str = "menu") -> FlowDefinition:
    """Business hours → menu: 1 = SMS, 2 = transfer, 9 = goodbye; fallback announcement."""
    menu = menu or MenuNode(
        prompt_guidance_id="g-menu",
        digit_targets={"1": "sms", "2": "transfer", "9": "bye"},
        fallback_node_id="fallback",
    )
    return FlowDefinition(
        entry_node_id=entry,
        nodes=(
            Node("hours", BusinessHoursNode("menu", "closed", (WEEKDAYS_9_TO_18,), True), "営業時間"),
            Node("menu", menu, "メインメニュー"),
            Node("sms", SendSmsNode("100", announcement_guidance_id="g-sms-sent")),
            Node("transfer", TransferNode("+81311112222", "g-transfer")),
            Node("bye", HangupNode("g-bye")),
            Node("fallback", AnnouncementNode("g-fallback", next_node_id="bye")),
            Node("closed", AnnouncementNode("g-closed")),
        ),
    )


def _prompts(prompts: tuple[Prompt, ...]) -> str:
    """Guidance ids; a number read back clip by clip shows as its digits ("090-1234-5678")."""
    shown: list[str] = []
    spelling = False
    for prompt in prompts:
        spelled = prompt.guidance_id.startswith("system:digit-") or prompt.guidance_id == "system:pause"
        if spelled and spelling:
            shown[-1] += prompt.text
        else:
            shown.append(prompt.text if spelled else prompt.guidance_id)
        spelling = spelled
    return ",".join(shown)


def describe(output: Output) -> str:
    """A one-line summary that tables can compare."""
    if isinstance(output, PlayAndCollect):
        return (
            f"collect {output.route_id} {output.reason.value} [{_prompts(output.prompts)}]"
            f" i{output.invalid_attempts} t{output.timeout_attempts}"
        )
    if isinstance(output, Play):
        return f"play {output.route_id} [{_prompts(output.prompts)}]"
    if isinstance(output, Transfer):
        return f"transfer {output.destination} [{_prompts(output.prompts)}]"
    if isinstance(output, HangUp):
        return f"hangup {output.reason} [{_prompts(output.prompts)}]"
    if isinstance(output, SendSms):
        return f"sms box {output.box_number} to {output.recipient}"
    raise AssertionError(output)
