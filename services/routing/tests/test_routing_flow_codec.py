"""Protobuf and JSON forms of a flow: lossless round trips, proto3 defaults, field paths of decode errors."""

from __future__ import annotations

import pytest
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki_routing.adapters.flow_codec import (
    definition_from_json,
    definition_from_pb,
    definition_to_json,
    definition_to_pb,
)
from hibiki_routing.domain.flows import DEFAULT_MAX_ATTEMPTS, GuidanceChoiceKind, MenuNode
from hibiki_runtime.errors import InvalidArgument

from services.routing.tests.routing_flows import sample_flow


def test_definitions_survive_protobuf_and_json_round_trips() -> None:
    definition = sample_flow(entry="hours")
    assert definition_from_pb(definition_to_pb(definition)) == definition
    assert definition_from_json(definition_to_json(definition)) == definition


def test_zero_values_mean_the_documented_defaults() -> None:
    message = pb.Flow(entry_node_id="m", nodes=[pb.Node(id="m", menu=pb.MenuNode(prompt_guidance_id="g"))])
    (node,) = definition_from_pb(message).nodes
    assert isinstance(node.kind, MenuNode)
    assert node.kind.max_digits == 1
    assert node.kind.max_invalid_attempts == node.kind.max_timeout_attempts == DEFAULT_MAX_ATTEMPTS
    assert node.kind.invalid_input_guidance.kind is GuidanceChoiceKind.SYSTEM_DEFAULT
    assert node.kind.first_digit_timeout.total_seconds() > 0


@pytest.mark.parametrize(
    ("node", "field"),
    [
        (pb.Node(id="x"), "flow.nodes[0].kind"),
        (
            pb.Node(
                id="h",
                business_hours=pb.BusinessHoursNode(
                    windows=[pb.TimeWindow(weekdays=[1], start_time="9時", end_time="18:00")]
                ),
            ),
            "flow.nodes[0].business_hours.windows[0].start_time",
        ),
    ],
)
def test_undecodable_nodes_name_the_field(node: pb.Node, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        definition_from_pb(pb.Flow(entry_node_id="x", nodes=[node]))
    assert [v.field for v in raised.value.violations] == [field]
