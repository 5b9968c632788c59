"""hibiki-soak (`make soak`): thousands of hostile records at every consumer, then proof that good calls pass.

Starts the broker, an embedded PostgreSQL, the SMSC simulator, routing, sms-gateway and reporting as
processes, produces N generated hostile records on each input topic (the record classes that once stopped
a consumer, one-field variants of valid events of every body, garbage; see hibiki_bench.hostile), waits
until every consumer group committed past them, then places a good call on every partition of call.events
and checks that routing answers it and reporting counts it. Prints, per topic and consumer, how many
records went to the DLQ with which reason; exits 1 when a good call is not handled, a service is not
SERVING at the end, or a consumer fell behind for good.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from aiokafka import AIOKafkaConsumer, TopicPartition
from hibiki.call.v1 import call_events_pb2
from hibiki.reporting.v1 import report_service_pb2 as report_pb
from hibiki.reporting.v1 import report_service_pb2_grpc as report_grpc
from hibiki_devstack.processes import health_status
from hibiki_runtime.events import (
    ALL_TOPICS,
    CALL_ACTIONS,
    CALL_EVENTS,
    SMS_REQUESTS,
    SMS_RESULTS,
    dlq_topic,
    new_envelope,
    record_headers,
)
from hibiki_runtime.kafka import ensure_topics

from hibiki_bench.environment import OPERATOR, TENANT, environment
from hibiki_bench.hostile import hostile_stream
from hibiki_bench.kafka_load import producer
from hibiki_bench.scenarios import sms

TOPICS = (CALL_EVENTS, CALL_ACTIONS, SMS_REQUESTS, SMS_RESULTS)
GROUPS = {
    CALL_EVENTS: ("hibiki-routing", "hibiki-reporting"),
    CALL_ACTIONS: ("hibiki-reporting",),
    SMS_REQUESTS: ("hibiki-sms-gateway", "hibiki-reporting"),
    SMS_RESULTS: ("hibiki-reporting",),
}
HOSTILE_TENANT = "soak-hostile"
PARTITIONS = 3


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hibiki-soak", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000, help="hostile records per input topic")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--patience", type=float, default=600, help="seconds to wait for the consumers")
    parser.add_argument("--out", type=Path, default=Path("bench/soak.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `hibiki-soak`."""
    args = parse_args(argv)
    report = asyncio.run(_soak(args.records, args.seed, args.patience))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(_table(report))
    print(f"\nwrote {args.out}")
    if report["problems"]:
        print("\nPROBLEMS:\n  " + "\n  ".join(report["problems"]), file=sys.stderr)
        sys.exit(1)


async def _soak(records: int, seed: int, patience: float) -> dict[str, Any]:
    with environment(None) as env:
        bootstrap = env.broker.bootstrap_servers
        await ensure_topics(bootstrap, ALL_TOPICS, partitions=PARTITIONS)
        scenario = sms.write_scenario(env.work_dir / "smsc-scenario.json")
        smsc_port = env.start_smsc_simulator(scenario)
        specs = {
            "routing": env.service("routing", "hibiki_routing"),
            "sms-gateway": env.service(
                "sms-gateway",
                "hibiki_sms_gateway",
                HIBIKI_SMPP_PORT=str(smsc_port),
                HIBIKI_SMS_CARRIER_TABLE_FILE=str(scenario),
            ),
            "reporting": env.service("reporting", "hibiki_reporting"),
        }
        _say(f"starting {', '.join(specs)} (logs: {env.work_dir}/logs)")
        env.start(list(specs.values()))

        ends = await _produce_hostile(bootstrap, records, seed)
        started = time.monotonic()
        behind = await _wait_committed(bootstrap, ends, patience)
        consumed_in = time.monotonic() - started
        _say(f"consumers committed past every hostile record in {consumed_in:.1f}s")

        good = await _good_calls(bootstrap, specs["reporting"].grpc_port or 0)
        dead = await _dead_letters(bootstrap)
        health = {name: health_status(spec.grpc_port or 0) for name, spec in specs.items()}

    problems = [f"{group} did not commit past {topic}" for group, topic in behind]
    problems += [
        f"{name} is {status} after the soak" for name, status in health.items() if status != "SERVING"
    ]
    problems += [f"good call {call}: {what}" for call, what in good["failures"].items()]
    return {
        "records_per_topic": records,
        "seed": seed,
        "consumed_seconds": round(consumed_in, 1),
        "dead_letters": dead,
        "handler_errors": {key: count for key, count in _flatten(dead).items() if ":handler_error" in key},
        "good_calls": good["answered"],
        "good_call_seconds": good["seconds"],
        "health": health,
        "problems": problems,
    }


async def _produce_hostile(bootstrap: str, records: int, seed: int) -> dict[TopicPartition, int]:
    """Produce the hostile records; returns the offset after the last one on each partition."""
    rng = random.Random(seed)
    ends: dict[TopicPartition, int] = {}
    async with producer(bootstrap) as client:
        for topic in TOPICS:
            stream = hostile_stream(topic, rng, HOSTILE_TENANT)
            futures = []
            for _ in range(records):
                key, value = next(stream)
                futures.append(await client.send(topic, value, key=key.encode()))
            for metadata in await asyncio.gather(*futures):
                partition = TopicPartition(metadata.topic, metadata.partition)
                ends[partition] = max(ends.get(partition, 0), metadata.offset + 1)
            _say(f"produced {records:,} hostile records on {topic}")
    return ends


async def _wait_committed(
    bootstrap: str, ends: dict[TopicPartition, int], patience: float
) -> list[tuple[str, str]]:
    """Wait until each consumer group committed past `ends`; returns (group, topic) pairs that did not."""
    groups = sorted({group for names in GROUPS.values() for group in names})
    # One client per group, never subscribed: it only reads the group's committed offsets.
    readers = {group: AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group) for group in groups}
    for reader in readers.values():
        await reader.start()
    deadline = time.monotonic() + patience
    pending = {(group, topic) for topic, names in GROUPS.items() for group in names}
    try:
        while pending and time.monotonic() < deadline:
            for group, topic in sorted(pending):
                partitions = [(p, end) for p, end in ends.items() if p.topic == topic]
                offsets = [await readers[group].committed(p) for p, _ in partitions]
                if all(o is not None and o >= end for o, (_, end) in zip(offsets, partitions, strict=True)):
                    pending.discard((group, topic))
            await asyncio.sleep(1)
    finally:
        for reader in readers.values():
            await reader.stop()
    return sorted(pending)


async def _good_calls(bootstrap: str, reporting_port: int) -> dict[str, Any]:
    """A good call per partition of call.events: answered by routing, counted by reporting."""
    calls: dict[str, str] = {}
    async with producer(bootstrap) as client:
        for partition in range(PARTITIONS):
            call_id = f"soak-good-{uuid.uuid4().hex[:10]}"
            caller = f"+8190{random.randrange(10**8):08d}"
            body = call_events_pb2.CallStarted(dialed_number="+81312345678", caller_number=caller)
            event = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
            event.envelope.CopyFrom(new_envelope(TENANT, body, event_id=f"{call_id}:started"))
            await client.send_and_wait(
                CALL_EVENTS,
                event.SerializeToString(),
                key=call_id.encode(),
                partition=partition,
                headers=record_headers(event),
            )
            calls[call_id] = caller
    sent = time.monotonic()
    answered = await _answered(bootstrap, set(calls), within=30)
    failures = {call: "not answered by routing" for call in calls if call not in answered}
    counted: set[str] = set()
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    days = report_pb.DateRange(
        start_date=(today - timedelta(days=1)).isoformat(), end_date=(today + timedelta(days=1)).isoformat()
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{reporting_port}") as channel:
        reports = report_grpc.ReportServiceStub(channel)
        while len(counted) < len(calls) and time.monotonic() - sent < 30:
            for call_id, caller in calls.items():
                request = report_pb.ListCallsRequest(range=days, caller_number=caller, page_size=10)
                reply = await reports.ListCalls(request, metadata=OPERATOR)
                if any(call.call_id == call_id for call in reply.calls):
                    counted.add(call_id)
            await asyncio.sleep(0.2)
    failures |= {call: "not counted by reporting" for call in calls if call not in counted}
    return {
        "answered": len(calls) - len(failures),
        "seconds": round(time.monotonic() - sent, 1),
        "failures": failures,
    }


async def _answered(bootstrap: str, call_ids: set[str], within: float) -> set[str]:
    seen: set[str] = set()
    async for record in _records(bootstrap, CALL_ACTIONS, idle=within):
        key = (record.key or b"").decode()
        if key in call_ids:
            seen.add(key)
            if seen == call_ids:
                break
    return seen


async def _dead_letters(bootstrap: str) -> dict[str, dict[str, dict[str, int]]]:
    """Dead letters by source topic, consumer group and reason."""
    counts: dict[str, dict[str, Counter[str]]] = {}
    for topic in TOPICS:
        async for record in _records(bootstrap, dlq_topic(topic), idle=3):
            headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
            group = headers.get("dlq-consumer-group", "?")
            counts.setdefault(topic, {}).setdefault(group, Counter())[headers.get("dlq-reason", "?")] += 1
    return {
        topic: {group: dict(c.most_common()) for group, c in groups.items()}
        for topic, groups in counts.items()
    }


async def _records(bootstrap: str, topic: str, idle: float) -> Any:
    """Records of `topic` from the beginning until none arrives for `idle` seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                quiet_since = time.monotonic()
                for record in batch:
                    yield record
    finally:
        await consumer.stop()


def _flatten(dead: dict[str, dict[str, dict[str, int]]]) -> dict[str, int]:
    return {
        f"{topic}:{group}:{reason}": count
        for topic, groups in dead.items()
        for group, reasons in groups.items()
        for reason, count in reasons.items()
    }


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'topic':<14} {'consumer':<20} {'dead letters':>12}  reasons"]
    for topic, groups in report["dead_letters"].items():
        for group, reasons in groups.items():
            total = sum(reasons.values())
            summary = ", ".join(f"{reason} {count}" for reason, count in reasons.items())
            lines.append(f"{topic:<14} {group:<20} {total:>12}  {summary}")
    lines.append(
        f"\n{report['records_per_topic']:,} hostile records per topic consumed in"
        f" {report['consumed_seconds']}s;"
        f" good calls answered and counted: {report['good_calls']} of {PARTITIONS}"
        f" ({report['good_call_seconds']}s); health: {report['health']}"
    )
    if report["handler_errors"]:
        lines.append(f"records that failed in a handler (edge gaps): {report['handler_errors']}")
    return "\n".join(lines)
