"""kill -9 of sms-gateway in the middle of a burst: nothing sent twice, at most one SMPP window uncertain, and
the report's truth restored by the receipts, within a minute of the restart.

A message is marked SUBMITTING just before its parts go on the wire, so at the kill only the messages of
the window in flight can be unknown; those still QUEUED are sent by the restarted process; receipts of
messages whose submit response the crash lost are matched to them by handset and time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres
from hibiki_devstack.stack import Stack
from hibiki_runtime.events import SMS_REQUESTS, SMS_RESULTS, new_envelope
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.conftest import TENANT, start_service, start_smsc
from tests.integration.kafka_io import produce, read_until

BURST = 1000
WINDOW = 10
OPERATOR = (("authorization", "Bearer token-a-operator"),)


def recipient(n: int) -> str:
    return f"+8190300{n:05d}"


def request(n: int) -> sms_requests_pb2.SmsRequest:
    body = sms_requests_pb2.SmsRequested(call_id=f"crash-call-{n}", box_number="700", recipient=recipient(n))
    message = sms_requests_pb2.SmsRequest(request_id=f"crash-{n}", sms_requested=body)
    message.envelope.CopyFrom(new_envelope(TENANT, body, event_id=f"crash-{n}:requested"))
    return message


async def accepted_count(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(
                await connection.scalar(
                    text("SELECT count(*) FROM sms_messages WHERE state IN ('accepted', 'delivered')")
                )
                or 0
            )
    finally:
        await engine.dispose()


@pytest.mark.timeout(600)
async def test_kill_9_during_a_burst_sends_nothing_twice_and_leaves_at_most_a_window_uncertain(
    kafka: Broker, postgres: Postgres, stack: Stack, work_dir: Path
) -> None:
    rules: list[dict[str, object]] = [
        {"prefix": "+8190300", "carrier": "docomo", "behaviour": "deliver", "delay": 1.0}
    ]
    smsc = start_smsc(stack, work_dir, "smsc-simulator-crash", rules, record=True)
    assert smsc.record is not None
    gateway = start_service(
        stack,
        postgres,
        "sms-gateway",
        "hibiki_sms_gateway",
        HIBIKI_SMPP_PORT=str(smsc.port),
        HIBIKI_SMS_CARRIER_TABLE_FILE=str(smsc.scenario),
        HIBIKI_SMPP_WINDOW=str(WINDOW),
        HIBIKI_SMS_COOLDOWN_SECONDS="0",
        HIBIKI_SMS_DEFAULT_RATE_PER_SECOND="400",
        HIBIKI_SMS_HEARTBEAT_SECONDS="1",
        HIBIKI_SMS_INSTANCE_TIMEOUT_SECONDS="4",
        HIBIKI_SMS_RECONCILE_SECONDS="8",
        HIBIKI_SMS_SWEEP_INTERVAL_SECONDS="0.5",
    )
    database = gateway.env["HIBIKI_DATABASE_URL"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        create = box_pb.CreateSmsBoxRequest(
            box_number="700", box_name="クラッシュ", message_text="本文", url=""
        )
        await box_grpc.SmsBoxServiceStub(channel).CreateSmsBox(create, metadata=OPERATOR)

    await produce(kafka.bootstrap_servers, SMS_REQUESTS, [(f"crash-{n}", request(n)) for n in range(BURST)])
    deadline = time.monotonic() + 120
    while await accepted_count(database) < BURST // 3:
        assert time.monotonic() < deadline, "the burst never got going"
        await asyncio.sleep(0.05)
    (running,) = [s for s in stack.services if s.spec is gateway and s.process.poll() is None]
    running.process.kill()
    running.process.wait(10)

    stack.wait_healthy([stack.start(gateway)], timeout=90)
    restarted = time.monotonic()

    def final(records: list) -> dict[str, str]:  # type: ignore[type-arg]
        """The last word on each request: delivered, undelivered, rejected, or failed (with reason)."""
        outcome: dict[str, str] = {}
        for record in records:
            result = sms_results_pb2.SmsResult.FromString(record.value)
            kind = result.WhichOneof("body") or ""
            if not result.request_id.startswith("crash-") or kind in ("sms_accepted", "sms_link_clicked"):
                continue
            if outcome.get(result.request_id) in ("sms_delivered", "sms_undelivered"):
                continue  # a receipt outranks an earlier uncertain failure
            outcome[result.request_id] = (
                f"sms_failed:{result.sms_failed.reason}" if kind == "sms_failed" else kind
            )
        return outcome

    records = await read_until(
        kafka.bootstrap_servers, SMS_RESULTS, lambda rs: len(final(rs)) >= BURST, within_seconds=60
    )
    converged_in = time.monotonic() - restarted
    outcomes = final(records)
    assert len(outcomes) == BURST, f"{BURST - len(outcomes)} requests without a result 60 s after restart"

    received = Counter(
        json.loads(line)["destination"] for line in smsc.record.read_text(encoding="utf-8").splitlines()
    )
    assert [number for number, times in received.items() if times > 1] == []  # nothing sent twice
    uncertain = [rid for rid, outcome in outcomes.items() if outcome.startswith("sms_failed")]
    assert len(uncertain) <= WINDOW, uncertain
    # Every message the handsets got is reported delivered: the truth, not "uncertain".
    for n in range(BURST):
        if recipient(n) in received:
            assert outcomes[f"crash-{n}"] == "sms_delivered", (n, outcomes[f"crash-{n}"])
    assert converged_in < 60
