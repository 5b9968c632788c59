"""routing: sustained decisions per second with call state persisted, and decision latency at a fixed load."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

import grpc
from aiokafka import ConsumerRecord
from hibiki.call.v1 import call_actions_pb2
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS

from hibiki_bench.environment import OPERATOR
from hibiki_bench.events import call_started, digits_collected
from hibiki_bench.kafka_load import TopicWatcher, producer, send_all
from hibiki_bench.latency import LatencyProfile, measure_latency

DIALED = "+81355550101"
CALLER = "+819011112222"
# Answers offered before the latency is recorded, so that first-use costs are not counted as steady state.
WARMUP_SECONDS = 0.5


def bench_flow() -> pb.Flow:
    """Two menus: "1" on the first leads to the second, so every call can make a second decision."""
    return pb.Flow(
        name="ベンチマーク",
        dialed_number=DIALED,
        entry_node_id="menu",
        nodes=[
            pb.Node(
                id="menu",
                name="メニュー",
                menu=pb.MenuNode(
                    prompt_guidance_id="g-menu", digit_targets={"1": "menu2"}, fallback_node_id="bye"
                ),
            ),
            pb.Node(
                id="menu2",
                name="サブメニュー",
                menu=pb.MenuNode(
                    prompt_guidance_id="g-menu2", digit_targets={"1": "bye"}, fallback_node_id="bye"
                ),
            ),
            pb.Node(id="bye", hangup=pb.HangupNode(announcement_guidance_id="g-bye")),
        ],
    )


async def publish_flow(grpc_port: int) -> None:
    """Create and publish the benchmark flow over the real gRPC API."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        api = pb_grpc.RoutingServiceStub(channel)
        created = await api.CreateFlow(pb.CreateFlowRequest(flow=bench_flow()), metadata=OPERATOR)
        await api.PublishFlow(
            pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision),
            metadata=OPERATOR,
        )


def _action_of(run_id: str, record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
    # The key is the call id: skip other runs' actions without decoding them.
    if not record.key or not record.key.startswith(run_id.encode()) or record.value is None:
        return None
    action = call_actions_pb2.CallAction.FromString(record.value)
    return (action.call_id, action.step)


@dataclass(frozen=True)
class LatencyProbe:
    offered_per_second: float
    latency: LatencyProfile
    # The raw pass-through at the same rate, measured right after: the broker's own latency then.
    floor: LatencyProfile


# Measures the raw pass-through latency at a rate for a number of records.
Floor = Callable[[float, int], Awaitable[LatencyProfile]]


@dataclass(frozen=True)
class RoutingMeasurements:
    decisions_per_second: float
    # At half the sustained rate (capped), then at an eighth of it: near saturation and at an everyday load.
    probes: list[LatencyProbe]


async def measure(
    bootstrap: str, calls: int, latency_seconds: float, latency_rate_cap: float, run_id: str, floor: Floor
) -> RoutingMeasurements:
    """Start `calls` calls at once (one decision each, state written), then answer first menus at half the
    sustained rate and at an eighth of it, timing each second decision."""

    def match(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        return _action_of(run_id, record)

    async with producer(bootstrap) as client, TopicWatcher(bootstrap, CALL_ACTIONS, match) as watcher:

        async def start_calls(prefix: str, count: int) -> tuple[list[str], float]:
            call_ids = [f"{run_id}{prefix}{i}" for i in range(count)]
            began = time.perf_counter()
            await send_all(client, CALL_EVENTS, (call_started(c, DIALED, CALLER) for c in call_ids))
            last = await watcher.wait_for({(c, 1) for c in call_ids}, within=180)
            return call_ids, count / (last - began)

        async def probe(call_ids: list[str], offered: float) -> LatencyProbe:
            warmup = min(len(call_ids) // 10, int(offered * WARMUP_SECONDS))
            count = min(len(call_ids) - warmup, max(1, int(offered * latency_seconds)))

            async def answer_menu(index: int) -> Hashable:
                key, value, headers = digits_collected(call_ids[index], 1, "1")
                await client.send(CALL_EVENTS, value, key=key, headers=list(headers))
                return (call_ids[index], 2)

            latency = await measure_latency(answer_menu, watcher, offered, count, warmup=warmup)
            return LatencyProbe(offered, latency, await floor(offered, count))

        call_ids, sustained = await start_calls("s", calls)
        busy = await probe(call_ids, min(sustained / 2, latency_rate_cap))
        light_rate = min(sustained / 8, latency_rate_cap)
        light_calls, _ = await start_calls("l", int(light_rate * (latency_seconds + WARMUP_SECONDS)) + 1)
        light = await probe(light_calls, light_rate)
    return RoutingMeasurements(sustained, [busy, light])
