"""A consumer that cannot move turns its service NOT_SERVING (so the liveness probe restarts the pod).

The runtime of a real service process is used in-process here, on the real broker, with a handler that
fails every batch the way an unreachable database does (an infrastructure failure: the batch is retried,
never dead-lettered). Within the configured time, gRPC health and /healthz say NOT_SERVING and a metric
names the partition; once batches go through again, the service is SERVING again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hibiki.call.v1 import call_events_pb2
from hibiki_devstack.infra import Broker, free_port, kafka_broker
from hibiki_runtime.consumer import Inbound, Rejection
from hibiki_runtime.events import ALL_TOPICS, CALL_EVENTS, DecodedEvent, new_envelope
from hibiki_runtime.kafka import ensure_topics
from hibiki_runtime.outbox import reliability_metadata
from hibiki_runtime.service import ServiceRuntime
from hibiki_runtime.settings import ServiceSettings

from tests.integration.kafka_io import produce

STALL_SECONDS = 3.0


class FlakyDatabase:
    """A handler whose database is unreachable until `recover()`."""

    def __init__(self) -> None:
        self.reachable = False
        self.attempts = 0
        self.handled: list[str] = []

    def recover(self) -> None:
        self.reachable = True

    async def __call__(self, items: Sequence[Inbound[str]]) -> Sequence[Rejection]:
        self.attempts += 1
        if not self.reachable:
            raise ConnectionRefusedError("database unreachable")
        self.handled += [item.command for item in items]
        return []


def call_id_of(event: DecodedEvent) -> str:
    return str(event.message.call_id)  # type: ignore[attr-defined]


async def grpc_health(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as reply:
        return reply.status, await reply.text()


@pytest.fixture(scope="module")
async def kafka(work_dir: Path) -> AsyncIterator[Broker]:
    """A broker of its own: records other modules left on the shared one would stall partitions too."""
    with kafka_broker(free_port(), work_dir / "stall-broker.log") as broker:
        await ensure_topics(broker.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield broker


async def test_a_consumer_failing_every_batch_turns_not_serving_then_serving_again(
    kafka: Broker, tmp_path: Path
) -> None:
    settings = ServiceSettings(
        service_name="stall-probe",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_create_topics=False,
        kafka_consumer_group=f"stall-probe-{uuid.uuid4().hex[:8]}",
        consumer_stall_seconds=STALL_SECONDS,
        consumer_lag_interval_seconds=1.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}",
        grpc_host="127.0.0.1",
        grpc_port=0,
        http_host="127.0.0.1",
        http_port=0,
        run_migrations=False,
    )
    runtime = ServiceRuntime(settings)
    database = FlakyDatabase()
    runtime.consume({CALL_EVENTS: call_id_of}, database)
    async with runtime.engine.begin() as connection:  # the outbox relay's table (no migrations here)
        await connection.run_sync(reliability_metadata.create_all)
    await runtime.start()
    try:
        assert await grpc_health(runtime.grpc_port) == "SERVING"
        call_id = f"stall-{uuid.uuid4().hex}"
        body = call_events_pb2.CallStarted(dialed_number="+81312345678")
        event = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
        event.envelope.CopyFrom(new_envelope("tenant-a", body, event_id=f"{call_id}:started"))
        await produce(kafka.bootstrap_servers, CALL_EVENTS, [(call_id, event)])

        deadline = time.monotonic() + 60  # the group join alone takes seconds on the local broker
        while database.attempts == 0:
            assert time.monotonic() < deadline, "the record never reached the handler"
            await asyncio.sleep(0.1)
        first_failure = time.monotonic()
        while await grpc_health(runtime.grpc_port) == "SERVING":
            assert time.monotonic() - first_failure < STALL_SECONDS + 5, "still SERVING"
            await asyncio.sleep(0.2)
        assert time.monotonic() - first_failure >= STALL_SECONDS - 0.5, "NOT_SERVING before the limit"

        status, body_text = await http_get(runtime.http_port, "/healthz")
        assert status == 503 and "call.events[" in body_text
        _, metrics = await http_get(runtime.http_port, "/metrics")
        stalled = [
            line
            for line in metrics.splitlines()
            if line.startswith('hibiki_stall_probe_consumer_stalled_seconds{partition="')
        ]
        assert len(stalled) == 1 and 'topic="call.events"' in stalled[0], stalled
        assert database.handled == []  # retried, never dead-lettered: the database was the problem

        database.recover()
        deadline = time.monotonic() + 40  # the retry pause grows up to 30 s
        while await grpc_health(runtime.grpc_port) != "SERVING":
            assert time.monotonic() < deadline, "did not come back after recovery"
            await asyncio.sleep(0.2)
        assert call_id in database.handled
        assert (await http_get(runtime.http_port, "/healthz"))[0] == 200
    finally:
        await runtime.stop()
