"""Routing end to end: a flow edited over gRPC, then calls driven through the real broker and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc
from hibiki.sms.v1 import sms_requests_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, SMS_REQUESTS, dlq_topic, new_envelope

from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until

DIALED = "+81355550001"
CALLER = "+819011112222"


def auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


OPERATOR, VIEWER, OTHER_TENANT = auth("token-a-operator"), auth("token-a-viewer"), auth("token-b-operator")


def menu_flow() -> pb.Flow:
    """Menu: 1 = SMS box 200 then goodbye; anything else three times → fallback hang-up."""
    return pb.Flow(
        name="お問い合わせ窓口",
        dialed_number=DIALED,
        entry_node_id="menu",
        nodes=[
            pb.Node(
                id="menu",
                name="メインメニュー",
                menu=pb.MenuNode(
                    prompt_guidance_id="g-menu", digit_targets={"1": "sms"}, fallback_node_id="fallback"
                ),
            ),
            pb.Node(id="sms", send_sms=pb.SendSmsNode(box_number="200", announcement_guidance_id="g-sent")),
            pb.Node(id="fallback", hangup=pb.HangupNode(announcement_guidance_id="g-sorry")),
        ],
    )


def call_event(call_id: str, event_id: str, **body: Message) -> call_events_pb2.CallEvent:
    ((name, value),) = body.items()
    event = call_events_pb2.CallEvent(call_id=call_id, **{name: value})
    event.envelope.CopyFrom(new_envelope(TENANT, value, event_id=event_id, occurred_at=datetime.now(UTC)))
    return event


def started(call_id: str) -> tuple[str, call_events_pb2.CallEvent]:
    body = call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=CALLER)
    return call_id, call_event(call_id, f"{call_id}:started", call_started=body)


def pressed(call_id: str, step: int, digits: str) -> tuple[str, call_events_pb2.CallEvent]:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:{step}", digits=digits)
    return call_id, call_event(call_id, f"{call_id}:digits:{step}", digits_collected=body)


def timed_out(call_id: str, step: int) -> tuple[str, call_events_pb2.CallEvent]:
    body = call_events_pb2.InputTimedOut(
        action_id=f"{call_id}:{step}", kind=call_events_pb2.TIMEOUT_KIND_FIRST_DIGIT
    )
    return call_id, call_event(call_id, f"{call_id}:timeout:{step}", input_timed_out=body)


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    details = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    request = error_details_pb2.BadRequest()
    status.details[0].Unpack(request)
    return [v.field for v in request.field_violations]


@pytest.fixture(scope="module")
def routing(postgres: Postgres, stack: Stack) -> Iterator[ServiceSpec]:
    # The same name, hence consumer group, as other modules' routing: this one resumes at their offsets.
    yield start_service(stack, postgres, "routing", "hibiki_routing")
    stack.stop_module("hibiki_routing")


@pytest.fixture(scope="module")
async def api(routing: ServiceSpec) -> AsyncIterator[pb_grpc.RoutingServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{routing.grpc_port}") as channel:
        yield pb_grpc.RoutingServiceStub(channel)


@pytest.fixture(scope="module")
async def live_flow(api: pb_grpc.RoutingServiceStub) -> pb.Flow:
    created = await api.CreateFlow(pb.CreateFlowRequest(flow=menu_flow()), metadata=OPERATOR)
    published = await api.PublishFlow(
        pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision), metadata=OPERATOR
    )
    assert published.version == 1
    return published.flow


async def test_flow_editing_is_tenant_scoped_role_checked_and_versioned(
    api: pb_grpc.RoutingServiceStub, live_flow: pb.Flow
) -> None:
    read = await api.GetFlow(pb.GetFlowRequest(id=live_flow.id), metadata=VIEWER)
    assert read.flow.published_version == 1 and read.flow.nodes[0].menu.max_invalid_attempts == 3

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await api.UpdateFlow(pb.UpdateFlowRequest(flow=read.flow), metadata=VIEWER)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await api.GetFlow(pb.GetFlowRequest(id=live_flow.id), metadata=OTHER_TENANT)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    renamed = pb.Flow(id=live_flow.id, name="名前変更")
    mask = FieldMask(paths=["name"])
    updated = await api.UpdateFlow(
        pb.UpdateFlowRequest(flow=renamed, update_mask=mask, expected_revision=read.flow.revision),
        metadata=OPERATOR,
    )
    assert (updated.flow.name, updated.flow.dialed_number) == ("名前変更", DIALED)
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await api.UpdateFlow(
            pb.UpdateFlowRequest(flow=renamed, update_mask=mask, expected_revision=read.flow.revision),
            metadata=OPERATOR,
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED

    bad = menu_flow()
    bad.dialed_number = "03-5555-0002 ext. 9"  # not a phone number
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await api.CreateFlow(pb.CreateFlowRequest(flow=bad), metadata=OPERATOR)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(invalid.value) == ["flow.dialed_number"]

    found = await api.SearchFlows(pb.SearchFlowsRequest(guidance_id="g-sorry"), metadata=VIEWER)
    assert [f.id for f in found.flows] == [live_flow.id]
    versions = await api.ListFlowVersions(pb.ListFlowVersionsRequest(id=live_flow.id), metadata=VIEWER)
    assert [(v.version, v.live) for v in versions.versions] == [(1, True)]


def of_call(records: list, call_id: str) -> list[call_actions_pb2.CallAction]:
    actions = [call_actions_pb2.CallAction.FromString(r.value) for r in records]
    return [a for a in actions if a.call_id == call_id]


def summary(action: call_actions_pb2.CallAction) -> str:
    body = action.WhichOneof("body")
    if body == "play_and_collect":
        collect = action.play_and_collect
        reason = call_actions_pb2.PromptReason.Name(collect.reason).removeprefix("PROMPT_REASON_")
        return f"{action.step} collect {reason} i{collect.invalid_attempts} t{collect.timeout_attempts}"
    if body == "hangup":
        prompts = ",".join(p.guidance_id for p in action.hangup.prompts)
        return f"{action.step} hangup {action.hangup.reason} [{prompts}]"
    return f"{action.step} {body}"


def sms_requests(records: list) -> list[sms_requests_pb2.SmsRequest]:
    return [sms_requests_pb2.SmsRequest.FromString(r.value) for r in records]


async def test_calls_through_the_broker_produce_actions_and_one_sms_request_each(
    kafka: Broker, routing: ServiceSpec, live_flow: pb.Flow
) -> None:
    bootstrap = kafka.bootstrap_servers
    await produce(
        bootstrap,
        CALL_EVENTS,
        [
            started("rt-ok"),
            pressed("rt-ok", 1, "1"),
            started("rt-bad"),
            pressed("rt-bad", 1, "7"),
            pressed("rt-bad", 2, "8"),
            pressed("rt-bad", 3, "9"),
            started("rt-late"),
            timed_out("rt-late", 1),
            pressed("rt-late", 2, "1"),
        ],
    )
    # Redelivered digits, and a marker on the same partition that is handled after them.
    await produce(bootstrap, CALL_EVENTS, [pressed("rt-ok", 1, "1"), pressed("rt-late", 2, "1")])
    await produce(bootstrap, CALL_EVENTS, [("rt-ok", started("rt-marker-ok")[1])])
    await produce(bootstrap, CALL_EVENTS, [("rt-late", started("rt-marker-late")[1])])

    calls = ("rt-ok", "rt-bad", "rt-late", "rt-marker-ok", "rt-marker-late")
    records = await read_until(
        bootstrap,
        CALL_ACTIONS,
        lambda rs: all(of_call(rs, call_id) for call_id in calls[3:]) and len(of_call(rs, "rt-bad")) >= 4,
    )
    assert [summary(a) for a in of_call(records, "rt-ok")] == [
        "1 collect INITIAL i0 t0",
        "3 hangup completed [g-sent]",
    ]
    assert [summary(a) for a in of_call(records, "rt-bad")] == [
        "1 collect INITIAL i0 t0",
        "2 collect INVALID_INPUT i1 t0",
        "3 collect INVALID_INPUT i2 t0",
        "4 hangup completed [g-sorry]",
    ]
    # The action entering the fallback says so (reporting counts the third wrong key from it); no other does.
    fallbacks = [a.fallback for a in of_call(records, "rt-bad")]
    assert fallbacks == [0, 0, 0, call_actions_pb2.FALLBACK_CAUSE_INVALID_INPUT]
    assert [summary(a) for a in of_call(records, "rt-late")] == [
        "1 collect INITIAL i0 t0",
        "2 collect TIMEOUT i0 t1",
        "4 hangup completed [g-sent]",
    ]
    first = of_call(records, "rt-ok")[0]
    assert (first.flow_id, first.flow_version, first.action_id) == (live_flow.id, 1, "rt-ok:1")
    assert first.play_and_collect.route_id == "menu" and first.play_and_collect.route_name == "メインメニュー"

    requests = sms_requests(await read_until(bootstrap, SMS_REQUESTS, lambda rs: len(sms_requests(rs)) >= 2))
    ours = sorted((r.request_id, r.sms_requested.box_number, r.sms_requested.recipient) for r in requests)
    assert [r for r in ours if r[0].startswith("rt-")] == [
        ("rt-late:3", "200", CALLER),
        ("rt-ok:2", "200", CALLER),
    ]

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{routing.http_port}/metrics") as reply,
    ):
        metrics = await reply.text()
    assert 'hibiki_routing_fallbacks_total{cause="invalid"} 1.0' in metrics
    assert 'hibiki_routing_input_errors_total{kind="timeout",outcome="reprompt"} 1.0' in metrics
    assert "hibiki_routing_decision_latency_seconds_count" in metrics


async def test_event_of_an_unknown_call_goes_to_the_dlq_with_a_reason(
    kafka: Broker, routing: ServiceSpec
) -> None:
    await produce(kafka.bootstrap_servers, CALL_EVENTS, [pressed("rt-ghost", 1, "1")])

    dead = await read_until(
        kafka.bootstrap_servers,
        dlq_topic(CALL_EVENTS),
        lambda rs: any(r.key == b"rt-ghost" for r in rs),
    )
    (ghost,) = [r for r in dead if r.key == b"rt-ghost"]
    assert dict(ghost.headers)["dlq-reason"] == b"unknown_call"


async def test_a_killed_and_restarted_instance_continues_calls_where_they_were(
    kafka: Broker, stack: Stack, routing: ServiceSpec, live_flow: pb.Flow
) -> None:
    bootstrap = kafka.bootstrap_servers
    await produce(bootstrap, CALL_EVENTS, [started("rt-restart")])
    await read_until(bootstrap, CALL_ACTIONS, lambda rs: bool(of_call(rs, "rt-restart")))

    (running,) = [s for s in stack.services if s.spec == routing and s.process.poll() is None]
    running.process.kill()
    running.process.wait()
    # Same database and consumer group, new process: the call's state must come from the database.
    restarted = replace(routing, grpc_port=free_port(), http_port=free_port())
    stack.wait_healthy([stack.start(restarted)], timeout=90)
    await produce(bootstrap, CALL_EVENTS, [pressed("rt-restart", 1, "7"), pressed("rt-restart", 2, "1")])

    records = await read_until(bootstrap, CALL_ACTIONS, lambda rs: len(of_call(rs, "rt-restart")) >= 3)
    assert [summary(a) for a in of_call(records, "rt-restart")] == [
        "1 collect INITIAL i0 t0",
        "2 collect INVALID_INPUT i1 t0",
        "4 hangup completed [g-sent]",
    ]
