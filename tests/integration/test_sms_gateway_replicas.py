"""One throttle for the deployment: two sms-gateway replicas under a carrier limit of 50 parts a second send
50 a second together, not 100 — each takes the share of the sms.requests partitions it owns."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import grpc
import pytest
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import SMS_REQUESTS, SMS_RESULTS, new_envelope
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.conftest import TENANT, start_service, start_smsc
from tests.integration.kafka_io import produce, read_until

RATE = 50.0
REQUESTS = 600
OPERATOR = (("authorization", "Bearer token-a-operator"),)
_LAG = re.compile(r'hibiki_sms_gateway_consumer_lag_messages\{partition="(\d+)",topic="sms\.requests"\}')


def request(n: int) -> sms_requests_pb2.SmsRequest:
    body = sms_requests_pb2.SmsRequested(
        call_id=f"rate-call-{n}", box_number="710", recipient=f"+8190400{n:05d}"
    )
    message = sms_requests_pb2.SmsRequest(request_id=f"rate-{n}", sms_requested=body)
    message.envelope.CopyFrom(new_envelope(TENANT, body, event_id=f"rate-{n}:requested"))
    return message


async def owned_partitions(spec: ServiceSpec) -> set[int]:
    """The sms.requests partitions a replica consumes (its lag series: only assigned partitions have one)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{spec.http_port}/metrics") as reply,
    ):
        return {int(number) for number in _LAG.findall(await reply.text())}


@pytest.mark.timeout(300)
async def test_two_replicas_under_a_carrier_limit_send_at_that_limit_together(
    kafka: Broker, postgres: Postgres, stack: Stack, work_dir: Path
) -> None:
    rules: list[dict[str, object]] = [{"prefix": "+8190400", "carrier": "docomo", "behaviour": "accept"}]
    smsc = start_smsc(stack, work_dir, "smsc-simulator-rate", rules)
    first = start_service(
        stack,
        postgres,
        "sms-gateway",
        "hibiki_sms_gateway",
        HIBIKI_SMPP_PORT=str(smsc.port),
        HIBIKI_SMS_CARRIER_TABLE_FILE=str(smsc.scenario),
        HIBIKI_SMS_RATE_PER_SECOND=json.dumps({"docomo": RATE}),
        HIBIKI_SMS_COOLDOWN_SECONDS="0",
        HIBIKI_CONSUMER_LAG_INTERVAL_SECONDS="0.5",
    )
    second = replace(first, grpc_port=free_port(), http_port=free_port())
    stack.wait_healthy([stack.start(second)], timeout=90)
    deadline = time.monotonic() + 60
    while True:  # both joined the group and split the partitions between them
        mine, theirs = await owned_partitions(first), await owned_partitions(second)
        if mine and theirs and not mine & theirs and len(mine | theirs) == 3:
            break
        assert time.monotonic() < deadline, (mine, theirs)
        await asyncio.sleep(0.5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
        create = box_pb.CreateSmsBoxRequest(box_number="710", box_name="流量", message_text="本文", url="")
        await box_grpc.SmsBoxServiceStub(channel).CreateSmsBox(create, metadata=OPERATOR)

    await produce(kafka.bootstrap_servers, SMS_REQUESTS, [(f"rate-{n}", request(n)) for n in range(REQUESTS)])

    def accepted_times(records: list) -> list[float]:  # type: ignore[type-arg]
        times = []
        for record in records:
            result = sms_results_pb2.SmsResult.FromString(record.value)
            if result.request_id.startswith("rate-") and result.HasField("sms_accepted"):
                times.append(result.envelope.occurred_at.ToDatetime().timestamp())
        return sorted(times)

    records = await read_until(
        kafka.bootstrap_servers,
        SMS_RESULTS,
        lambda rs: len(accepted_times(rs)) >= REQUESTS,
        within_seconds=REQUESTS / RATE * 3,
    )
    times = accepted_times(records)
    assert len(times) == REQUESTS
    # The steady middle of the burst (the first second's token buckets start full).
    low, high = int(REQUESTS * 0.2), int(REQUESTS * 0.8)
    rate = (high - low) / (times[high] - times[low])
    assert RATE * 0.95 <= rate <= RATE * 1.05, f"{rate:.1f} parts/s together"

    engine = create_async_engine(first.env["HIBIKI_DATABASE_URL"])
    try:
        async with engine.connect() as connection:
            senders = await connection.scalar(
                text("SELECT count(DISTINCT owner) FROM sms_messages WHERE request_id LIKE 'rate-%'")
            )
    finally:
        await engine.dispose()
    assert senders == 2  # both replicas sent their share
