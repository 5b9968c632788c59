"""sms-gateway as a process: SmsBoxService over gRPC, and sms.requests → SMSC simulator (SMPP over TCP) →
sms.results through the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port, wait_for_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import SMS_REQUESTS, SMS_RESULTS, new_envelope
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until

LONG_TEXT = ("お電話ありがとうございました。ご予約の確認と変更は下記のページからお手続きいただけます。" * 4)[
    :170
]
LONG_URL = "https://example.jp/reserve?c=0123456789"
SCENARIO = {
    "rules": [
        {"prefix": "+81902000", "carrier": "docomo", "behaviour": "deliver", "delay": 0.2},
        {"prefix": "+81902001", "carrier": "au", "behaviour": "undeliver", "delay": 0.2, "error_code": "006"},
        {"prefix": "+81902002", "carrier": "none"},
        {"prefix": "+81902003", "carrier": "docomo", "behaviour": "stall"},
        {"prefix": "+81902004", "carrier": "docomo", "behaviour": "deliver", "delay": 3.0},
    ]
}
OPERATOR = (("authorization", "Bearer token-a-operator"),)
VIEWER = (("authorization", "Bearer token-a-viewer"),)
OTHER_TENANT = (("authorization", "Bearer token-b-operator"),)


@dataclass(frozen=True)
class Smsc:
    port: int
    scenario: Path
    record: Path

    def received(self) -> list[dict[str, object]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def smsc(work_dir: Path, stack: Stack) -> Iterator[Smsc]:
    simulator = Smsc(free_port(), work_dir / "sms-scenario.json", work_dir / "smsc-received.jsonl")
    simulator.scenario.write_text(json.dumps(SCENARIO))
    args = [
        "--port",
        str(simulator.port),
        "--scenario",
        str(simulator.scenario),
        "--record",
        str(simulator.record),
    ]
    running = stack.start(ServiceSpec("smsc-simulator", "hibiki_sms_gateway.smsc_simulator", args=args))
    wait_for_port(simulator.port, 30, running.process)
    yield simulator


@pytest.fixture(scope="module")
def sms_gateway(postgres: Postgres, stack: Stack, smsc: Smsc) -> ServiceSpec:
    return start_service(
        stack,
        postgres,
        "sms-gateway",
        "hibiki_sms_gateway",
        HIBIKI_SMPP_PORT=str(smsc.port),
        HIBIKI_SMS_CARRIER_TABLE_FILE=str(smsc.scenario),
        HIBIKI_SMS_BACKOFF_INITIAL_SECONDS="0.05",
        # A stalled submit times out (outcome_uncertain) well before the crash sweep would call it
        # uncertain_after_crash; both short enough for the stop and crash tests below.
        HIBIKI_SMPP_SUBMIT_TIMEOUT_SECONDS="2",
        HIBIKI_SMS_UNCERTAIN_AFTER_SECONDS="6",
        HIBIKI_SMS_SWEEP_INTERVAL_SECONDS="0.5",
    )


@pytest.fixture
async def boxes(sms_gateway: ServiceSpec) -> Iterator[box_grpc.SmsBoxServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sms_gateway.grpc_port}") as channel:
        yield box_grpc.SmsBoxServiceStub(channel)  # type: ignore[misc]


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found: dict[str, str] = {}
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


async def test_box_number_and_name_cannot_change_and_the_box_is_left_unchanged(
    boxes: box_grpc.SmsBoxServiceAsyncStub,
) -> None:
    create = box_pb.CreateSmsBoxRequest(
        box_number="301", box_name="予約", message_text="本文", url="https://ex.jp/a"
    )
    assert (await boxes.CreateSmsBox(create, metadata=OPERATOR)).sms_box.revision == 1

    attempts = {
        "box_number": box_pb.SmsBox(box_number="301", message_text="新しい本文"),
        "box_name": box_pb.SmsBox(box_number="301", box_name="別名", message_text="新しい本文"),
    }
    for field, changed in attempts.items():
        request = box_pb.UpdateSmsBoxRequest(
            sms_box=changed, update_mask=FieldMask(paths=["message_text", field]), expected_revision=1
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await boxes.UpdateSmsBox(request, metadata=OPERATOR)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cannot be changed" in field_violations(error.value)[field]

    unchanged = (await boxes.GetSmsBox(box_pb.GetSmsBoxRequest(box_number="301"), metadata=VIEWER)).sms_box
    assert (unchanged.box_name, unchanged.message_text, unchanged.revision) == ("予約", "本文", 1)
    history = await boxes.ListSmsBoxRevisions(
        box_pb.ListSmsBoxRevisionsRequest(box_number="301"), metadata=VIEWER
    )
    assert [r.revision for r in history.revisions] == [1]


async def test_text_and_url_edits_are_kept_as_revisions_with_optimistic_concurrency(
    boxes: box_grpc.SmsBoxServiceAsyncStub,
) -> None:
    create = box_pb.CreateSmsBoxRequest(
        box_number="302", box_name="案内", message_text="旧", url="https://ex.jp/1"
    )
    await boxes.CreateSmsBox(create, metadata=OPERATOR)
    edit = box_pb.UpdateSmsBoxRequest(
        sms_box=box_pb.SmsBox(box_number="302", message_text="新", url="https://ex.jp/2"),
        update_mask=FieldMask(paths=["message_text", "url"]),
        expected_revision=1,
    )
    updated = (await boxes.UpdateSmsBox(edit, metadata=OPERATOR)).sms_box
    assert (updated.message_text, updated.url, updated.revision) == ("新", "https://ex.jp/2", 2)

    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await boxes.UpdateSmsBox(edit, metadata=OPERATOR)  # still says revision 1
    assert stale.value.code() == grpc.StatusCode.ABORTED

    history = await boxes.ListSmsBoxRevisions(
        box_pb.ListSmsBoxRevisionsRequest(box_number="302"), metadata=VIEWER
    )
    latest = history.revisions[0]
    assert (latest.revision, latest.message_text_before, latest.message_text_after) == (2, "旧", "新")
    assert (latest.url_before, latest.url_after, latest.actor) == (
        "https://ex.jp/1",
        "https://ex.jp/2",
        "operator@tenant-a",
    )

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await boxes.UpdateSmsBox(edit, metadata=VIEWER)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await boxes.GetSmsBox(box_pb.GetSmsBoxRequest(box_number="302"), metadata=OTHER_TENANT)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_preview_counts_ucs2_characters_and_segments(boxes: box_grpc.SmsBoxServiceAsyncStub) -> None:
    preview = await boxes.PreviewMessage(
        box_pb.PreviewMessageRequest(message_text="あ" * 70 + "😀", url=""), metadata=VIEWER
    )
    assert (preview.encoding, preview.characters, preview.segments) == ("UCS-2", 72, 2)
    assert (preview.max_characters, preview.characters_left, preview.characters_over) == (660, 588, 0)
    over = await boxes.PreviewMessage(box_pb.PreviewMessageRequest(message_text="あ" * 700), metadata=VIEWER)
    assert (over.characters, over.characters_left, over.characters_over) == (700, 0, 40)


async def test_search_pages_through_the_tenants_boxes_only(boxes: box_grpc.SmsBoxServiceAsyncStub) -> None:
    for number in ("401", "402", "403"):
        create = box_pb.CreateSmsBoxRequest(
            box_number=number, box_name=f"検索{number}", message_text="本文", url=""
        )
        await boxes.CreateSmsBox(create, metadata=OPERATOR)
    first = await boxes.SearchSmsBoxes(
        box_pb.SearchSmsBoxesRequest(query="検索", page_size=2), metadata=VIEWER
    )
    second = await boxes.SearchSmsBoxes(
        box_pb.SearchSmsBoxesRequest(query="検索", page_size=2, page_token=first.next_page_token),
        metadata=VIEWER,
    )
    assert [b.box_number for b in first.sms_boxes] + [b.box_number for b in second.sms_boxes] == [
        "401",
        "402",
        "403",
    ]
    assert second.next_page_token == ""
    other = await boxes.SearchSmsBoxes(box_pb.SearchSmsBoxesRequest(query="検索"), metadata=OTHER_TENANT)
    assert list(other.sms_boxes) == []


async def test_opt_outs_are_normalized_and_can_be_removed(boxes: box_grpc.SmsBoxServiceAsyncStub) -> None:
    added = await boxes.AddOptOut(box_pb.AddOptOutRequest(recipient="090-2999-0001"), metadata=OPERATOR)
    assert added.recipient == "+819029990001"
    removed = await boxes.RemoveOptOut(
        box_pb.RemoveOptOutRequest(recipient="+819029990001"), metadata=OPERATOR
    )
    assert removed.removed
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await boxes.AddOptOut(box_pb.AddOptOutRequest(recipient="03-1234-5678"), metadata=OPERATOR)
    assert "recipient" in field_violations(error.value)


def sms_request(request_id: str, box_number: str, recipient: str) -> sms_requests_pb2.SmsRequest:
    body = sms_requests_pb2.SmsRequested(call_id=request_id, box_number=box_number, recipient=recipient)
    request = sms_requests_pb2.SmsRequest(request_id=request_id, sms_requested=body)
    request.envelope.CopyFrom(new_envelope(TENANT, body, event_id=f"{request_id}:requested"))
    return request


def results_of(records: list, request_id: str) -> list[sms_results_pb2.SmsResult]:  # type: ignore[type-arg]
    decoded = [sms_results_pb2.SmsResult.FromString(r.value) for r in records]
    return [r for r in decoded if r.request_id == request_id]


async def test_requests_flow_through_smpp_to_results_exactly_once(
    kafka: Broker, boxes: box_grpc.SmsBoxServiceAsyncStub, smsc: Smsc
) -> None:
    create = box_pb.CreateSmsBoxRequest(
        box_number="310", box_name="長文", message_text=LONG_TEXT, url=LONG_URL
    )
    await boxes.CreateSmsBox(create, metadata=OPERATOR)
    delivered, undelivered, unsupported = (
        sms_request("it-long", "310", "+819020000001"),
        sms_request("it-undeliv", "310", "09020010001"),
        sms_request("it-carrier", "310", "09020020001"),
    )
    await produce(
        kafka.bootstrap_servers,
        SMS_REQUESTS,
        [
            (r.request_id, r) for r in (delivered, undelivered, unsupported, delivered)
        ],  # the last one is a redelivery
    )

    def settled(records: list) -> bool:  # type: ignore[type-arg]
        kinds = {
            (r.request_id, r.WhichOneof("body"))
            for r in (sms_results_pb2.SmsResult.FromString(rec.value) for rec in records)
        }
        return {
            ("it-long", "sms_delivered"),
            ("it-undeliv", "sms_undelivered"),
            ("it-carrier", "sms_rejected"),
        } <= kinds

    records = await read_until(kafka.bootstrap_servers, SMS_RESULTS, settled, within_seconds=60)

    long_results = results_of(records, "it-long")
    assert [r.WhichOneof("body") for r in long_results] == ["sms_accepted", "sms_delivered"]
    accepted = long_results[0].sms_accepted
    assert accepted.snapshot.rendered_text == f"{LONG_TEXT}\n{LONG_URL}"
    assert accepted.snapshot.segments == 4
    assert [r.envelope.event_id for r in long_results] == ["it-long:accepted", "it-long:delivered"]
    (sent,) = [m for m in smsc.received() if m["destination"] == "+819020000001"]
    assert sent["text"] == f"{LONG_TEXT}\n{LONG_URL}"
    assert sorted(sent["part_numbers"]) == [1, 2, 3, 4]  # type: ignore[arg-type]
    assert sent["message_ids"] == list(accepted.carrier_message_ids)

    (undelivered_result,) = [r for r in results_of(records, "it-undeliv") if r.HasField("sms_undelivered")]
    assert (undelivered_result.sms_undelivered.reason, undelivered_result.sms_undelivered.error_code) == (
        "UNDELIV",
        "006",
    )
    (rejected,) = results_of(records, "it-carrier")
    assert rejected.sms_rejected.reason == sms_results_pb2.REJECT_REASON_UNSUPPORTED_CARRIER
    assert not [m for m in smsc.received() if m["destination"] == "+819020020001"]


async def message_state(database_url: str, request_id: str, expected: str, within: float) -> str:
    """The persisted state of a request in the service's own database, once it is `expected` (or the last
    one seen when time runs out)."""
    engine = create_async_engine(database_url)
    deadline = time.monotonic() + within
    try:
        while True:
            async with engine.connect() as connection:
                state = await connection.scalar(
                    text("SELECT state FROM sms_messages WHERE request_id = :id"), {"id": request_id}
                )
            if state == expected or time.monotonic() > deadline:
                return str(state or "")
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def test_sigterm_finishes_the_sends_of_admitted_batches_before_exiting(
    kafka: Broker, stack: Stack, sms_gateway: ServiceSpec, boxes: box_grpc.SmsBoxServiceAsyncStub
) -> None:
    """The consumer commits a batch once admitted and sends it in the background: a graceful stop must wait
    for those sends and record their outcomes, not leave them to the crash sweep after a restart."""
    database = sms_gateway.env["HIBIKI_DATABASE_URL"]
    create = box_pb.CreateSmsBoxRequest(box_number="330", box_name="終了", message_text="本文", url="")
    await boxes.CreateSmsBox(create, metadata=OPERATOR)
    await produce(
        kafka.bootstrap_servers, SMS_REQUESTS, [("it-stop", sms_request("it-stop", "330", "09020030002"))]
    )
    # The simulator never answers this number: the send is in flight when SIGTERM arrives.
    assert await message_state(database, "it-stop", "submitting", within=30) == "submitting"
    (running,) = [s for s in stack.services if s.spec is sms_gateway and s.process.poll() is None]
    running.process.terminate()
    assert await asyncio.to_thread(running.process.wait, 60) == 0

    # Recorded by the stopping process itself: the submit timed out, so its fate is uncertain (not resent).
    assert await message_state(database, "it-stop", "uncertain", within=0) == "uncertain"
    records = await read_until(
        kafka.bootstrap_servers,
        SMS_RESULTS,
        lambda rs: any(r.HasField("sms_failed") for r in results_of(rs, "it-stop")),
        within_seconds=10,
    )
    (failed,) = results_of(records, "it-stop")
    assert failed.sms_failed.reason == "outcome_uncertain"
    stack.wait_healthy([stack.start(sms_gateway)], timeout=90)


async def test_kill_9_leaves_a_cut_off_submit_uncertain_and_loses_no_receipt(
    kafka: Broker, stack: Stack, sms_gateway: ServiceSpec, boxes: box_grpc.SmsBoxServiceAsyncStub
) -> None:
    """Runs last in this module: it kills the service and starts it again on the same database."""
    database = sms_gateway.env["HIBIKI_DATABASE_URL"]
    create = box_pb.CreateSmsBoxRequest(box_number="320", box_name="停止", message_text="本文", url="")
    await boxes.CreateSmsBox(create, metadata=OPERATOR)
    # Its receipt is due 3 s after acceptance, while the process is dead: the SMSC must keep it.
    await produce(
        kafka.bootstrap_servers,
        SMS_REQUESTS,
        [("it-receipt", sms_request("it-receipt", "320", "09020040001"))],
    )
    assert await message_state(database, "it-receipt", "accepted", within=30) == "accepted"
    await produce(
        kafka.bootstrap_servers, SMS_REQUESTS, [("it-crash", sms_request("it-crash", "320", "09020030001"))]
    )
    # The simulator never answers this number: the message waits in SUBMITTING when the process dies.
    assert await message_state(database, "it-crash", "submitting", within=30) == "submitting"
    assert await message_state(database, "it-receipt", "accepted", within=0) == "accepted"  # not yet
    (running,) = [s for s in stack.services if s.spec is sms_gateway and s.process.poll() is None]
    running.process.kill()
    running.process.wait(10)
    await asyncio.sleep(3.5)  # the receipt falls due with no receiving session bound

    stack.wait_healthy([stack.start(sms_gateway)], timeout=90)

    def reported(records: list) -> bool:  # type: ignore[type-arg]
        return any(r.HasField("sms_failed") for r in results_of(records, "it-crash")) and any(
            r.HasField("sms_delivered") for r in results_of(records, "it-receipt")
        )

    records = await read_until(kafka.bootstrap_servers, SMS_RESULTS, reported, within_seconds=40)
    receipt_results = [r.WhichOneof("body") for r in results_of(records, "it-receipt")]
    assert receipt_results == ["sms_accepted", "sms_delivered"]
    (failed,) = results_of(records, "it-crash")  # nothing else: it was not sent again after the restart
    assert failed.sms_failed.reason == "uncertain_after_crash"
    assert failed.sms_failed.snapshot.box_number == "320"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{sms_gateway.http_port}/metrics") as reply,
    ):
        assert 'hibiki_sms_gateway_uncertain_submissions_total{cause="crash"} 1.0' in await reply.text()
