"""`hibiki dlq` against the real broker and routing: a dead letter is listed, shown, replayed and handled.

Digits of a call that routing has not seen started are dead-lettered as `unknown_call`; once the call has
started, replaying that dead letter makes routing answer the digits. Truncated dead letters are refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc
from hibiki_cli.main import app
from hibiki_devstack.infra import Broker, Postgres
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, dlq_topic, new_envelope, record_headers
from typer.testing import CliRunner, Result

from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until

DIALED = "+81355559100"
CALLER = "+819055556666"
OPERATOR = (("authorization", "Bearer token-a-operator"),)
RUN = uuid.uuid4().hex[:8]  # earlier runs and modules leave their own dead letters on the shared broker


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


def actions_of(records: list, call_id: str) -> list[call_actions_pb2.CallAction]:
    actions = [call_actions_pb2.CallAction.FromString(r.value) for r in records]
    return [a for a in actions if a.call_id == call_id]


async def hibiki(kafka: Broker, *args: str) -> Result:
    """`hibiki dlq ARGS…` in-process (in a thread: the command runs its own event loop)."""
    env = {"HIBIKI_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "COLUMNS": "240"}
    return await asyncio.to_thread(CliRunner().invoke, app, ["dlq", *args], env=env)


@pytest.fixture(scope="module")
def routing(postgres: Postgres, stack: Stack) -> Iterator[ServiceSpec]:
    yield start_service(stack, postgres, "routing", "hibiki_routing")
    stack.stop_module("hibiki_routing")


@pytest.fixture(scope="module")
async def live_flow(routing: ServiceSpec) -> AsyncIterator[pb.Flow]:
    """Menu: 1 = goodbye; anything else is an invalid input (re-prompt), three of them hang up."""
    flow = pb.Flow(
        name="DLQ 再送テスト",
        dialed_number=DIALED,
        entry_node_id="menu",
        nodes=[
            pb.Node(
                id="menu",
                name="メインメニュー",
                menu=pb.MenuNode(
                    prompt_guidance_id="g-menu", digit_targets={"1": "bye"}, fallback_node_id="bye"
                ),
            ),
            pb.Node(id="bye", hangup=pb.HangupNode(announcement_guidance_id="g-bye")),
        ],
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{routing.grpc_port}") as channel:
        api = pb_grpc.RoutingServiceStub(channel)
        created = await api.CreateFlow(pb.CreateFlowRequest(flow=flow), metadata=OPERATOR)
        published = await api.PublishFlow(
            pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision),
            metadata=OPERATOR,
        )
        yield published.flow


async def test_a_replayed_dead_letter_is_handled_by_routing(kafka: Broker, live_flow: pb.Flow) -> None:
    bootstrap = kafka.bootstrap_servers
    call_id = f"dlq-early-{RUN}"

    # The digits arrive before the call started: routing cannot place them.
    await produce(bootstrap, CALL_EVENTS, [pressed(call_id, 1, "7")])
    dead = await read_until(
        bootstrap, dlq_topic(CALL_EVENTS), lambda rs: any(r.key == call_id.encode() for r in rs)
    )
    (record,) = [r for r in dead if r.key == call_id.encode()]
    assert dict(record.headers)["dlq-reason"] == b"unknown_call"

    await produce(bootstrap, CALL_EVENTS, [started(call_id)])
    actions = await read_until(bootstrap, CALL_ACTIONS, lambda rs: bool(actions_of(rs, call_id)))
    (first,) = actions_of(actions, call_id)
    assert (first.step, first.WhichOneof("body")) == (1, "play_and_collect")

    listed = await hibiki(kafka, "list", "call.events", "--reason", "unknown_call", "-o", "json")
    assert listed.exit_code == 0, listed.output
    (mine,) = [d for d in json.loads(listed.stdout) if d["key"] == call_id]
    assert (mine["partition"], mine["offset"]) == (record.partition, record.offset)
    assert mine["reason"] == "unknown_call" and mine["source"]["topic"] == CALL_EVENTS
    assert mine["headers"]["event-id"] == f"{call_id}:digits:1" and mine["truncated"] is False
    assert "by reason: unknown_call" in listed.stderr
    partition, offset = str(mine["partition"]), str(mine["offset"])

    table = await hibiki(kafka, "list", "call.events.dlq", "--reason", "unknown_call", "--limit", "0")
    assert table.exit_code == 0, table.output
    assert (
        call_id in table.stdout
        and "in call.events.dlq with reason unknown_call*; by reason: unknown_call"
        in (" ".join(table.stdout.split()))
    )

    shown = await hibiki(kafka, "show", "call.events", partition, offset)
    assert shown.exit_code == 0, shown.output
    for expected in (
        f"call.events.dlq[{partition}]@{offset}",
        "reason: unknown_call",
        f"key: {call_id}",
        "dlq-consumer-group",
        "passes the contract checks",
        '"digits_collected"',
        '"digits": "7"',
        f'"call_id": "{call_id}"',
    ):
        assert expected in shown.stdout, expected

    replayed = await hibiki(kafka, "replay", "call.events", "--partition", partition, "--offset", offset)
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed call.events.dlq[{partition}]@{offset} → call.events" in replayed.stdout
    assert "replayed 1 of 1 dead letters" in replayed.stdout

    # Routing now answers the digits: "7" is no menu choice, so the next step re-prompts.
    actions = await read_until(bootstrap, CALL_ACTIONS, lambda rs: len(actions_of(rs, call_id)) >= 2)
    answer = actions_of(actions, call_id)[1]
    assert answer.step == 2 and answer.WhichOneof("body") == "play_and_collect"
    assert answer.play_and_collect.reason == call_actions_pb2.PROMPT_REASON_INVALID_INPUT
    assert answer.envelope.causation_id == f"{call_id}:digits:1"

    events = await read_until(
        bootstrap,
        CALL_EVENTS,
        lambda rs: any(r.key == call_id.encode() and "dlq-replayed-from" in dict(r.headers) for r in rs),
    )
    (again,) = [r for r in events if r.key == call_id.encode() and "dlq-replayed-from" in dict(r.headers)]
    headers = dict(again.headers)
    assert headers["dlq-replayed-from"] == f"call.events.dlq[{partition}]@{offset}".encode()
    assert headers["event-id"] == f"{call_id}:digits:1".encode()
    assert not any(name.startswith("dlq-") and name != "dlq-replayed-from" for name in headers)
    assert again.value == record.value


async def test_truncated_dead_letters_are_refused_and_several_need_yes(kafka: Broker) -> None:
    bootstrap = kafka.bootstrap_servers
    call_id = f"dlq-cut-{RUN}"
    whole = pressed(call_id, 1, "1")[1].SerializeToString()
    digest = hashlib.sha256(whole).hexdigest()
    marker = f"test_marker:{RUN}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        cut = await producer.send_and_wait(
            dlq_topic(CALL_EVENTS),
            whole[:12],
            key=call_id.encode(),
            headers=[
                *record_headers(pressed(call_id, 1, "1")[1]),
                ("dlq-reason", b"handler_error:DataError"),
                ("dlq-detail", b"value too long"),
                ("dlq-source-topic", CALL_EVENTS.encode()),
                ("dlq-source-partition", b"0"),
                ("dlq-source-offset", b"12345"),
                ("dlq-original-size", str(len(whole)).encode()),
                ("dlq-original-sha256", digest.encode()),
                ("dlq-truncated", b"true"),
            ],
        )
        for n in range(2):
            await producer.send_and_wait(
                dlq_topic(CALL_EVENTS),
                b"\xff not a CallEvent",
                key=f"dlq-marker-{RUN}-{n}".encode(),
                headers=[("dlq-reason", marker.encode()), ("dlq-source-topic", CALL_EVENTS.encode())],
            )
    finally:
        await producer.stop()
    partition, offset = str(cut.partition), str(cut.offset)

    shown = await hibiki(kafka, "show", "call.events.dlq", partition, offset)
    assert shown.exit_code == 0, shown.output
    assert f"TRUNCATED: only the first 12 of {len(whole)} bytes" in shown.stdout
    assert digest in shown.stdout and "body does not decode" in shown.stdout

    refused = await hibiki(kafka, "replay", "call.events", "--partition", partition, "--offset", offset)
    assert refused.exit_code == 3, refused.output
    assert f"refused call.events.dlq[{partition}]@{offset}: truncated" in " ".join(refused.stderr.split())
    assert "replayed 0 of 1 dead letters from call.events.dlq; refused 1 truncated" in refused.stdout

    several = await hibiki(kafka, "replay", "call.events", "--reason", marker)
    assert several.exit_code == 2 and "would replay 2 dead letters" in several.stderr
    dry = await hibiki(kafka, "replay", "call.events", "--reason", marker, "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.count("would replay call.events.dlq") == 2

    nothing = await hibiki(kafka, "replay", "call.events", "--reason", f"no_such_reason_{RUN}")
    assert nothing.exit_code == 4
    missing = await hibiki(kafka, "show", "call.events", partition, str(cut.offset + 10_000))
    assert missing.exit_code == 4
