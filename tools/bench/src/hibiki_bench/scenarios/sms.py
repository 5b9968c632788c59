"""sms-gateway: requests per second through to submit_sm, a bare SMPP submit loop on the same simulator,
and the rate a per-carrier throttle lets through."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiokafka import ConsumerRecord
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_results_pb2
from hibiki_runtime.events import SMS_REQUESTS, SMS_RESULTS
from hibiki_sms_gateway.adapters.smpp_connector import SmppConnector
from hibiki_sms_gateway.adapters.smpp_receiver import SmppAccount
from hibiki_sms_gateway.domain.concatenation import ucs2_parts
from hibiki_sms_gateway.domain.receipts import Receipt

from hibiki_bench.environment import OPERATOR
from hibiki_bench.events import sms_requested
from hibiki_bench.kafka_load import TopicWatcher, producer, send_all
from hibiki_bench.stats import steady_rate

BOX = "900"
TEXT = "お電話ありがとうございました。"
URL = "https://example.jp/r"
FAST_PREFIX, THROTTLED_PREFIX, RECEIPT_PREFIX = "+8190", "+8180", "+8170"
THROTTLED_CARRIER = "softbank"
# Accept without receipts where the submit path is measured; a receipt for every message where receipts are.
SCENARIO = {
    "rules": [
        {"prefix": FAST_PREFIX, "carrier": "docomo", "behaviour": "accept"},
        {"prefix": THROTTLED_PREFIX, "carrier": THROTTLED_CARRIER, "behaviour": "accept"},
        {"prefix": RECEIPT_PREFIX, "carrier": "docomo", "behaviour": "deliver", "delay": 0.0},
    ]
}


def write_scenario(path: Path) -> Path:
    """The simulator scenario, also given to the service as its carrier table so both agree."""
    path.write_text(json.dumps(SCENARIO))
    return path


def recipient(prefix: str, index: int) -> str:
    """A distinct 11-digit mobile per request (090-1…), so the per-recipient cooldown never applies."""
    return f"{prefix}{10_000_000 + index:08d}"


async def create_box(grpc_port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        boxes = box_grpc.SmsBoxServiceStub(channel)
        request = box_pb.CreateSmsBoxRequest(box_number=BOX, box_name="ベンチ", message_text=TEXT, url=URL)
        await boxes.CreateSmsBox(request, metadata=OPERATOR)


def _result_of(run_id: str, record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
    if not record.key or not record.key.startswith(run_id.encode()) or record.value is None:
        return None
    result = sms_results_pb2.SmsResult.FromString(record.value)
    # Only the first result of a request counts (an accepted message may later get a receipt).
    return (
        result.request_id
        if result.WhichOneof("body") in {"sms_accepted", "sms_rejected", "sms_failed"}
        else None
    )


def _accepted_times(watcher: TopicWatcher) -> list[float]:
    """When each message was accepted (occurred_at, seconds); RuntimeError when any was not accepted."""
    results = [sms_results_pb2.SmsResult.FromString(r.value or b"") for r in watcher.records.values()]
    refused = [r for r in results if r.WhichOneof("body") != "sms_accepted"]
    if refused:
        raise RuntimeError(f"{len(refused)} requests were not accepted, e.g. {refused[0]}")
    return [r.envelope.occurred_at.ToDatetime().timestamp() for r in results]


async def gateway_rate(bootstrap: str, messages: int, run_id: str) -> float:
    """Requests per second from sms.requests to SmsAccepted (every part taken by the SMSC)."""
    request_ids = [f"{run_id}{i}" for i in range(messages)]

    def match(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        return _result_of(run_id, record)

    async with producer(bootstrap) as client, TopicWatcher(bootstrap, SMS_RESULTS, match) as watcher:
        began = time.perf_counter()
        records = (sms_requested(r, BOX, recipient(FAST_PREFIX, i)) for i, r in enumerate(request_ids))
        await send_all(client, SMS_REQUESTS, records)
        last = await watcher.wait_for(set(request_ids), within=240)
        _accepted_times(watcher)
    return messages / (last - began)


async def throttled_rate(bootstrap: str, per_second: int, seconds: float, run_id: str) -> float:
    """The steady rate of acceptances for a carrier throttled to `per_second` (after the bucket's burst)."""
    # The bucket starts full: one second's worth passes at once, then `seconds` of steady flow.
    messages = int(per_second * (seconds + 1))
    request_ids = [f"{run_id}{i}" for i in range(messages)]

    def match(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        return _result_of(run_id, record)

    async with producer(bootstrap) as client, TopicWatcher(bootstrap, SMS_RESULTS, match) as watcher:
        records = (sms_requested(r, BOX, recipient(THROTTLED_PREFIX, i)) for i, r in enumerate(request_ids))
        await send_all(client, SMS_REQUESTS, records)
        await watcher.wait_for(set(request_ids), within=seconds * 3 + 60)
        accepted = _accepted_times(watcher)
    return steady_rate(accepted, skip_seconds=1.0)


@dataclass(frozen=True)
class ReceiptRates:
    accepted: float  # requests per second, sms.requests → SmsAccepted
    delivered: float  # requests per second, sms.requests → SmsDelivered (the receipt stored and applied)


async def delivered_rate(bootstrap: str, messages: int, run_id: str) -> ReceiptRates:
    """Requests per second to SmsAccepted and to SmsDelivered when the SMSC sends a receipt for each."""
    ids = [f"{run_id}{i}" for i in range(messages)]
    request_ids: set[Hashable] = set(ids)

    def accepted(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        return _result_kind(run_id, record, "sms_accepted")

    def delivered(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        return _result_kind(run_id, record, "sms_delivered")

    async with (
        producer(bootstrap) as client,
        TopicWatcher(bootstrap, SMS_RESULTS, accepted) as accepts,
        TopicWatcher(bootstrap, SMS_RESULTS, delivered) as receipts,
    ):
        began = time.perf_counter()
        records = (sms_requested(r, BOX, recipient(RECEIPT_PREFIX, i)) for i, r in enumerate(ids))
        await send_all(client, SMS_REQUESTS, records)
        last_accepted = await accepts.wait_for(request_ids, within=240)
        last_delivered = await receipts.wait_for(request_ids, within=240)
    return ReceiptRates(messages / (last_accepted - began), messages / (last_delivered - began))


def _result_kind(run_id: str, record: ConsumerRecord[bytes, bytes], kind: str) -> Hashable | None:
    if not record.key or not record.key.startswith(run_id.encode()) or record.value is None:
        return None
    result = sms_results_pb2.SmsResult.FromString(record.value)
    return result.request_id if result.WhichOneof("body") == kind else None


async def bare_smpp_rate(smsc_port: int, messages: int, window: int) -> float:
    """Submits per second of the service's own SMPP connector alone (same window, same simulator)."""

    async def ignore(_receipts: Sequence[Receipt]) -> None:
        return None

    connector = SmppConnector(
        SmppAccount("127.0.0.1", smsc_port, "bench", "bench"),
        source_addr="Hibiki",
        on_receipts=ignore,
        window=window,
    )
    await connector.start()
    try:
        (part,) = ucs2_parts(f"{TEXT}\n{URL}", reference=0)
        await connector.submit(recipient(FAST_PREFIX, 9_999_999), part)  # waits for the bind
        began = time.perf_counter()
        await asyncio.gather(*(connector.submit(recipient(FAST_PREFIX, i), part) for i in range(messages)))
        return messages / (time.perf_counter() - began)
    finally:
        await connector.stop()


@dataclass(frozen=True)
class CrashOutcome:
    duplicates: int  # handsets that got the same message twice
    uncertain: int  # requests whose fate stayed unknown (reported uncertain_after_crash, no receipt)
    unfinished: int  # requests without a final result when the patience ran out
    converged_seconds: float  # from the restart until every request had its final result


_FINAL = ("sms_delivered", "sms_undelivered", "sms_rejected", "sms_failed")


async def crash_burst(
    bootstrap: str,
    messages: int,
    run_id: str,
    kill: Callable[[], None],
    restart: Callable[[], Awaitable[None]],
    received: Callable[[], Sequence[str]],
    patience: float = 120,
) -> CrashOutcome:
    """A burst of requests (a receipt for each); kill -9 once a third were accepted, restart, and wait until
    every request has a final result. `received` lists the destinations of every message the SMSC took."""
    ids = [f"{run_id}{i}" for i in range(messages)]
    destinations = {recipient(RECEIPT_PREFIX, 500_000 + i) for i in range(messages)}
    finals: dict[str, str] = {}
    all_final = asyncio.Event()

    def accepted(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        return _result_kind(run_id, record, "sms_accepted")

    def final(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        if not record.key or not record.key.startswith(run_id.encode()) or record.value is None:
            return None
        result = sms_results_pb2.SmsResult.FromString(record.value)
        kind = result.WhichOneof("body") or ""
        if kind in _FINAL and finals.get(result.request_id) not in ("sms_delivered", "sms_undelivered"):
            finals[result.request_id] = kind  # a receipt outranks an earlier "uncertain" failure
            if len(finals) == messages:
                all_final.set()
        return None

    async with (
        producer(bootstrap) as client,
        TopicWatcher(bootstrap, SMS_RESULTS, accepted) as accepts,
        TopicWatcher(bootstrap, SMS_RESULTS, final),
    ):
        records = (sms_requested(r, BOX, recipient(RECEIPT_PREFIX, 500_000 + i)) for i, r in enumerate(ids))
        await send_all(client, SMS_REQUESTS, records)
        await accepts.wait_for(messages // 3, within=240)
        kill()
        await restart()
        restarted = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_final.wait(), patience)
        converged = time.perf_counter() - restarted
    sent = Counter(d for d in received() if d in destinations)
    return CrashOutcome(
        duplicates=sum(1 for times in sent.values() if times > 1),
        uncertain=sum(1 for kind in finals.values() if kind == "sms_failed"),
        unfinished=messages - len(finals),
        converged_seconds=converged,
    )
