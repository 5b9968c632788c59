"""Requests with NUL characters or unusable timestamps are refused at the gRPC edge, fields named."""

from datetime import UTC, datetime

from google.protobuf.field_mask_pb2 import FieldMask
from hibiki.routing.v1 import routing_service_pb2 as fpb
from hibiki.sms.v1 import sms_box_service_pb2 as spb
from hibiki_runtime.grpc_server import request_violations


def fields(message: object) -> list[str]:
    return [violation.field for violation in request_violations(message)]  # type: ignore[arg-type]


def test_clean_requests_have_no_violations() -> None:
    assert fields(spb.CreateSmsBoxRequest(box_number="1", box_name="予約", message_text="ご案内")) == []


def test_nul_characters_are_found_in_plain_nested_repeated_and_map_fields() -> None:
    flow = fpb.Flow(
        name="a\x00",
        nodes=[
            fpb.Node(id="ok"),
            fpb.Node(
                id="menu",
                menu=fpb.MenuNode(prompt_guidance_id="g\x00", digit_targets={"1": "x\x00", "2\x00": "y"}),
            ),
        ],
    )
    request = fpb.UpdateFlowRequest(flow=flow, update_mask=FieldMask(paths=["name", "no\x00de"]))
    assert sorted(fields(request)) == sorted(
        [
            "flow.name",
            "flow.nodes[1].menu.prompt_guidance_id",
            "flow.nodes[1].menu.digit_targets['1']",
            "flow.nodes[1].menu.digit_targets",
            "update_mask.paths[1]",
        ]
    )


def test_invalid_and_far_away_timestamps_are_found() -> None:
    request = fpb.DryRunFlowRequest(id="f")
    assert fields(request) == []
    request.call_time.FromDatetime(datetime(2026, 11, 25, tzinfo=UTC))
    assert fields(request) == []
    for seconds, nanos in [(0, -1), (-62135324340, 0), (2**40, 0), (253402300800, 0)]:
        request.call_time.seconds, request.call_time.nanos = seconds, nanos
        assert fields(request) == ["call_time"], (seconds, nanos)
