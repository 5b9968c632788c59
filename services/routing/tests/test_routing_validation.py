"""Flow validation: shape errors refuse a save, graph problems block publishing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hibiki_routing.domain.flows import (
    AnnouncementNode,
    BusinessHoursNode,
    FlowDefinition,
    GuidanceChoice,
    GuidanceChoiceKind,
    MenuNode,
    Node,
    SendSmsNode,
    TimeWindow,
    TransferNode,
)
from hibiki_routing.domain.validation import check_shape, find_problems
from hibiki_runtime.errors import InvalidArgument

from services.routing.tests.routing_flows import sample_flow


def with_node(flow: FlowDefinition, node: Node) -> FlowDefinition:
    others = tuple(n for n in flow.nodes if n.id != node.id)
    return replace(flow, nodes=(*others, node))


def test_the_sample_flow_has_no_problems() -> None:
    assert find_problems(sample_flow(entry="hours")) == []


def menu(**changes: object) -> Node:
    base = MenuNode("g-menu", {"1": "sms", "2": "transfer", "9": "bye"}, fallback_node_id="fallback")
    return Node("menu", replace(base, **changes))  # type: ignore[arg-type]


PROBLEMS = {
    "dangling digit target": (
        menu(digit_targets={"1": "nowhere", "2": "transfer", "9": "bye"}),
        ("menu", "menu.digit_targets[1]", "targets missing node 'nowhere'"),
    ),
    "dangling fallback": (
        menu(fallback_node_id="gone"),
        ("menu", "menu.fallback_node_id", "targets missing node 'gone'"),
    ),
    "menu without choices": (
        menu(digit_targets={}),
        ("menu", "menu.digit_targets", "a menu needs at least one choice"),
    ),
    "menu that can never end": (
        menu(digit_targets={"1": "menu"}, fallback_node_id="menu"),
        ("menu", "id", "the call can never end from here (no path to a hang-up or transfer)"),
    ),
}


@pytest.mark.parametrize(("node", "problem"), PROBLEMS.values(), ids=PROBLEMS.keys())
def test_graph_problem(node: Node, problem: tuple[str, str, str]) -> None:
    problems = find_problems(with_node(sample_flow(entry="hours"), node))
    assert problem in [(p.node_id, p.field, p.description) for p in problems]


def test_unreachable_node_is_reported() -> None:
    problems = find_problems(sample_flow(entry="menu"))  # "hours" and "closed" are no longer reachable
    assert {(p.node_id, p.description) for p in problems} == {
        ("hours", "unreachable from the entry node"),
        ("closed", "unreachable from the entry node"),
    }


def test_missing_entry_node_is_reported() -> None:
    problems = find_problems(sample_flow(entry="nope"))
    assert problems[0].field == "entry_node_id"


def test_unknown_guidance_ids_are_reported_when_the_known_set_is_given() -> None:
    flow = sample_flow(entry="hours")
    known = {"g-menu", "g-sms-sent", "g-transfer", "g-bye", "g-fallback"}
    problems = find_problems(flow, known_guidance_ids=known)
    assert [(p.node_id, p.field) for p in problems] == [("closed", "announcement.guidance_id")]
    assert find_problems(flow) == []


def test_a_loop_that_never_waits_for_the_caller_is_reported() -> None:
    flow = FlowDefinition(
        "hours",
        (
            Node("hours", BusinessHoursNode("sms", "end", (TimeWindow(frozenset({1}), 0, 60),))),
            Node("sms", SendSmsNode("100", next_node_id="hours")),
            Node("end", AnnouncementNode("g-end")),
        ),
    )
    problems = {(p.node_id, p.description) for p in find_problems(flow)}
    assert ("sms", "loops back to itself without waiting for the caller") in problems
    assert ("hours", "loops back to itself without waiting for the caller") in problems


SHAPE = {
    "duplicate node id": (Node("bye", AnnouncementNode("g")), "flow.nodes[7].id"),
    "empty node id": (Node("", AnnouncementNode("g")), "flow.nodes[7].id"),
    "digits that are not DTMF keys": (
        menu(digit_targets={"x": "bye"}),
        "flow.nodes[6].menu.digit_targets[x]",
    ),
    "max digits out of range": (menu(max_digits=0), "flow.nodes[6].menu.max_digits"),
    "original guidance without id": (
        menu(invalid_input_guidance=GuidanceChoice(GuidanceChoiceKind.ORIGINAL_GUIDANCE)),
        "flow.nodes[6].menu.invalid_input_guidance.guidance_id",
    ),
    "transfer to a non-E.164 number": (
        Node("t", TransferNode("0312345678")),
        "flow.nodes[7].transfer.destination",
    ),
    "send SMS without a box": (Node("s", SendSmsNode("")), "flow.nodes[7].send_sms.box_number"),
    "window that ends before it starts": (
        Node("h", BusinessHoursNode("a", "b", (TimeWindow(frozenset({1}), 600, 540),))),
        "flow.nodes[7].business_hours.windows[0]",
    ),
    "bad closed date": (
        Node("h", BusinessHoursNode("a", "b", closed_dates=frozenset({"2026-13-01"}))),
        "flow.nodes[7].business_hours.closed_dates",
    ),
}


@pytest.mark.parametrize(("node", "field"), SHAPE.values(), ids=SHAPE.keys())
def test_shape_violation(node: Node, field: str) -> None:
    flow = sample_flow()
    nodes = (*flow.nodes, node) if node.id != "menu" else (*(n for n in flow.nodes if n.id != "menu"), node)
    with pytest.raises(InvalidArgument) as raised:
        check_shape(replace(flow, nodes=nodes))
    assert field in [v.field for v in raised.value.violations]
