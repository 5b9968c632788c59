"""After a sending process stops: its queued messages are sent by another, its submitting ones are settled
by their receipts (matched by handset and time when the part was never stored) or reported uncertain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import smpp34
from hibiki.sms.v1 import sms_results_pb2 as pb
from hibiki_sms_gateway.adapters.message_repository import MessageRepository, mark_submitting
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.domain.sms_message import SmsMessage, Snapshot
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.recovery import Recovery
from prometheus_client import CollectorRegistry

from .conftest import TENANT, Gateway

TEXT = "ご予約ありがとうございます。"


def message(request_id: str, recipient: str, state: MessageState, at: datetime) -> SmsMessage:
    snapshot = Snapshot("100", "予約案内", 1, TEXT, "", TEXT, 1)
    return SmsMessage(request_id, TENANT, recipient, state, "", "docomo", 0, snapshot, at, at)


async def store(gateway: Gateway, owner: str, *messages: SmsMessage) -> None:
    async with gateway.sessions.begin() as session:
        await MessageRepository(session).add_all(list(messages), owner=owner)


async def test_queued_messages_of_a_stopped_process_are_sent_once_by_another(gateway: Gateway) -> None:
    now = datetime.now(UTC)
    await store(
        gateway,
        "stopped-process",
        message("orphan-1", "+819010000401", MessageState.QUEUED, now),
        message("orphan-2", "+819010000402", MessageState.QUEUED, now),
    )

    taken = await gateway.sweeper.take_over_queued(own_stalled_after=timedelta(seconds=15))
    assert sorted(m.request_id for m in taken) == ["orphan-1", "orphan-2"]
    assert await gateway.sweeper.take_over_queued(own_stalled_after=timedelta(seconds=15)) == []
    await gateway.dispatcher.resume(taken)

    for request_id in ("orphan-1", "orphan-2"):
        await gateway.wait_for(request_id, "sms_delivered")
    assert gateway.simulator.submits["+819010000401"] == 1
    assert gateway.metric("hibiki_sms_gateway_messages_taken_over_total") == 2


async def test_a_live_process_keeps_its_queued_messages(gateway: Gateway) -> None:
    await store(
        gateway, "test-process", message("mine", "+819010000403", MessageState.QUEUED, datetime.now(UTC))
    )
    assert await gateway.sweeper.take_over_queued(own_stalled_after=timedelta(seconds=15)) == []


async def test_a_message_taken_over_meanwhile_is_not_sent_by_its_old_owner(gateway: Gateway) -> None:
    now = datetime.now(UTC)
    await store(gateway, "another-process", message("theirs", "+819010000404", MessageState.QUEUED, now))
    async with gateway.sessions() as session:
        queued = await MessageRepository(session).get("theirs")
    assert queued is not None
    await gateway.dispatcher.resume([queued])  # this process thinks it is its own: it is not
    assert await gateway.results_for("theirs") == []
    assert "+819010000404" not in gateway.simulator.submits


async def test_a_submitting_message_whose_part_was_never_stored_is_settled_by_its_receipt(
    gateway: Gateway,
) -> None:
    recipient = "+819010000405"
    # The stopped process marked it SUBMITTING and its submit_sm reached the SMSC; the crash lost the
    # response (no part stored). The SMSC's receipt reaches the live process's receiving session.
    await store(
        gateway,
        "crashed-process",
        message("lost-resp", recipient, MessageState.SUBMITTING, datetime.now(UTC)),
    )
    transmitter = smpp34.Client(gateway.simulator.host, gateway.simulator.port, "hibiki", "", bind_type="TX")
    smsc = await transmitter.connect()
    try:
        await smsc.submit_sm(recipient.lstrip("+"), TEXT.encode("utf-16-be"), data_coding=8)
    finally:
        await transmitter.stop()
    await asyncio.sleep(0.6)  # the receipt (0.1 s) is stored, waiting for a part that will never come
    assert await gateway.results_for("lost-resp") == []

    book = ReceiptBook(
        gateway.sessions, SmsMetrics(CollectorRegistry()), lambda: None, reconcile_after=timedelta(0)
    )
    assert await book.reconcile() == 1

    kinds = [r.WhichOneof("body") for r in await gateway.results_for("lost-resp")]
    assert kinds == ["sms_accepted", "sms_delivered"]  # the carrier had it all along
    delivered = await gateway.wait_for("lost-resp", "sms_delivered")
    assert delivered.sms_delivered.carrier == pb.CARRIER_DOCOMO
    assert await book.reconcile() == 0


async def test_an_orphan_no_receipt_claims_is_reported_uncertain_after_the_grace(gateway: Gateway) -> None:
    a_while_ago = datetime.now(UTC) - timedelta(minutes=5)
    await store(
        gateway,
        "crashed-process",
        message("never-sent", "+819010000406", MessageState.SUBMITTING, a_while_ago),
    )
    fresh = datetime.now(UTC)
    await store(
        gateway, "crashed-process", message("just-now", "+819010000407", MessageState.SUBMITTING, fresh)
    )

    assert await gateway.sweeper.sweep() == 1  # the fresh one still waits for its receipt

    (failed,) = await gateway.results_for("never-sent")
    assert failed.sms_failed.reason == "uncertain_after_crash"
    assert await gateway.results_for("just-now") == []


def recovery_started_a_minute_ago(gateway: Gateway) -> Recovery:
    """A process up long enough for the grace to count from the mark alone."""
    starts = iter([datetime.now(UTC) - timedelta(minutes=1)])
    return Recovery(
        gateway.sessions,
        SmsMetrics(CollectorRegistry()),
        lambda: None,
        "live-process",
        instance_timeout=timedelta(seconds=15),
        reconcile_grace=timedelta(seconds=20),
        stuck_after=timedelta(minutes=3),
        clock=lambda: next(starts, None) or datetime.now(UTC),
    )


async def mark_submitting_at(gateway: Gateway, owner: str, request_id: str, at: datetime) -> None:
    async with gateway.sessions.begin() as session:
        marked = await mark_submitting(session, request_ids=[request_id], owner=owner, now=at)
    assert marked == {request_id}


async def test_a_receipt_stored_before_the_message_was_reported_uncertain_still_settles_it(
    gateway: Gateway,
) -> None:
    recipient, sent_at = "+819010000408", datetime.now(UTC) - timedelta(seconds=40)
    await store(gateway, "crashed-process", message("late-truth", recipient, MessageState.QUEUED, sent_at))
    await mark_submitting_at(gateway, "crashed-process", "late-truth", sent_at)
    jst = sent_at.astimezone(timezone(timedelta(hours=9)))
    receipt = Receipt(
        "id-the-crash-lost", "DELIVRD", "000", recipient.lstrip("+"), jst.strftime("%y%m%d%H%M")
    )
    await gateway.receipts.record("smpp:elsewhere", [receipt])

    await recovery_started_a_minute_ago(gateway).sweep()  # no receipt matched it yet
    book = ReceiptBook(
        gateway.sessions, SmsMetrics(CollectorRegistry()), lambda: None, reconcile_after=timedelta(0)
    )
    await book.reconcile()  # by the time it was sent, not when it was reported

    kinds = [r.WhichOneof("body") for r in await gateway.results_for("late-truth")]
    assert kinds == ["sms_failed", "sms_delivered"]


async def test_a_process_that_just_started_waits_the_grace_before_reporting_orphans_uncertain(
    gateway: Gateway,
) -> None:
    marked_at = datetime.now(UTC) - timedelta(seconds=40)  # older than the grace, not stuck
    await store(
        gateway, "crashed-process", message("wait-for-it", "+819010000409", MessageState.QUEUED, marked_at)
    )
    await mark_submitting_at(gateway, "crashed-process", "wait-for-it", marked_at)
    now = [datetime.now(UTC)]
    just_started = Recovery(
        gateway.sessions,
        SmsMetrics(CollectorRegistry()),
        lambda: None,
        "restarted-process",
        instance_timeout=timedelta(seconds=15),
        reconcile_grace=timedelta(seconds=20),
        stuck_after=timedelta(minutes=3),
        clock=lambda: now[0],
    )

    await just_started.sweep()
    assert await gateway.results_for("wait-for-it") == []  # the SMSC's kept receipts are only now coming in
    now[0] += timedelta(seconds=21)
    await just_started.sweep()
    (failed,) = await gateway.results_for("wait-for-it")
    assert failed.sms_failed.reason == "uncertain_after_crash"
