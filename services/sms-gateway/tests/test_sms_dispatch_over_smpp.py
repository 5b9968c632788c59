"""Dispatch over TCP against the SMSC simulator: parts, receipts, throttling, redelivery, rejections."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from hibiki.sms.v1 import sms_results_pb2 as pb
from hibiki_runtime.events import InvalidEvent
from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.adapters.receipt_repository import PartId, ReceiptRepository, SubmittedParts
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.domain.sms_message import SmsMessage, Snapshot
from hibiki_sms_gateway.service_layer import receipts as receipts_module

from .conftest import TENANT, Gateway

JAPANESE_200 = ("お問い合わせありがとうございます。ご予約の詳細は下記のページでご確認いただけます。" * 4)[
    :200
]


async def test_a_200_character_japanese_message_goes_out_as_numbered_ucs2_parts_and_reassembles(
    gateway: Gateway,
) -> None:
    await gateway.boxes.create(TENANT, "op", "200", "長文", JAPANESE_200, "")
    await gateway.dispatcher.handle([gateway.request("long-1", "09010000001", "200")])

    accepted = await gateway.wait_for("long-1", "sms_accepted")
    (received,) = [m for m in gateway.simulator.messages if m.destination == "+819010000001"]
    assert received.text == JAPANESE_200
    assert sorted(received.part_numbers) == [1, 2, 3]
    assert accepted.sms_accepted.carrier == pb.CARRIER_DOCOMO
    assert list(accepted.sms_accepted.carrier_message_ids) == received.message_ids
    assert accepted.sms_accepted.snapshot.segments == 3
    assert accepted.sms_accepted.snapshot.message_text == JAPANESE_200
    assert accepted.envelope.event_id == "long-1:accepted"

    delivered = await gateway.wait_for("long-1", "sms_delivered")
    assert delivered.sms_delivered.reason == "DELIVRD"
    assert delivered.envelope.event_id == "long-1:delivered"


@pytest.mark.parametrize(
    ("recipient", "state", "error_code", "carrier"),
    [
        ("09010010001", "UNDELIV", "006", pb.CARRIER_KDDI),
        ("09010020001", "EXPIRED", "000", pb.CARRIER_SOFTBANK),
    ],
)
async def test_negative_receipts_become_sms_undelivered_with_the_receipt_state(
    gateway: Gateway, recipient: str, state: str, error_code: str, carrier: int
) -> None:
    request_id = f"undeliv-{state}"
    await gateway.dispatcher.handle([gateway.request(request_id, recipient)])

    result = await gateway.wait_for(request_id, "sms_undelivered")
    assert (result.sms_undelivered.reason, result.sms_undelivered.error_code) == (state, error_code)
    assert result.sms_undelivered.carrier == carrier
    assert result.sms_undelivered.snapshot.url == "https://example.jp/r"
    assert [r.WhichOneof("body") for r in await gateway.results_for(request_id)] == [
        "sms_accepted",
        "sms_undelivered",
    ]


async def test_throttling_slows_sending_but_every_message_goes_out_exactly_once(gateway: Gateway) -> None:
    recipients = [f"0901003{n:04d}" for n in range(5)]
    deliveries = [gateway.request(f"throttled-{n}", r) for n, r in enumerate(recipients)]

    await gateway.dispatcher.handle(deliveries)

    for n in range(5):
        await gateway.wait_for(f"throttled-{n}", "sms_accepted")
    for recipient in recipients:
        e164 = "+81" + recipient[1:]
        assert gateway.simulator.submits[e164] == 3  # two ESME_RTHROTTLED answers, then accepted
        assert len([m for m in gateway.simulator.messages if m.destination == e164]) == 1
    assert gateway.metric("hibiki_sms_gateway_throttled_total", carrier="rakuten") == 10
    assert (
        gateway.metric("hibiki_sms_gateway_submit_retries_total", carrier="rakuten", code="throttled") == 10
    )


async def test_a_redelivered_request_is_not_sent_twice(gateway: Gateway) -> None:
    delivery = gateway.request("dup-1", "09010000002")
    await gateway.dispatcher.handle([delivery])
    await gateway.dispatcher.handle([delivery])  # the same record again (redelivery)
    # the same request_id under another event id (a producer retry) is not sent either
    await gateway.dispatcher.handle([gateway.request("dup-1", "09010000002", event_id="dup-1:retry")])

    await gateway.wait_for("dup-1", "sms_delivered")
    assert gateway.simulator.submits["+819010000002"] == 1
    kinds = [r.WhichOneof("body") for r in await gateway.results_for("dup-1")]
    assert kinds == ["sms_accepted", "sms_delivered"]


async def test_every_rejection_reason_is_produced_and_nothing_reaches_the_smsc(gateway: Gateway) -> None:
    await gateway.opt_outs.add(TENANT, "09010000099")
    submits_before = sum(gateway.simulator.submits.values())
    await gateway.dispatcher.handle([gateway.request("cool-first", "09010000050")])
    cases = {
        "rej-invalid": ("0901", "100", pb.REJECT_REASON_INVALID_NUMBER),
        "rej-foreign": ("+14155552671", "100", pb.REJECT_REASON_FOREIGN_NUMBER),
        "rej-landline": ("0312345678", "100", pb.REJECT_REASON_LANDLINE_NUMBER),
        "rej-ip": ("05012345678", "100", pb.REJECT_REASON_IP_PHONE_NUMBER),
        "rej-tollfree": ("0120123456", "100", pb.REJECT_REASON_TOLL_FREE_NUMBER),
        "rej-m2m": ("02012345678", "100", pb.REJECT_REASON_M2M_NUMBER),
        "rej-withheld": ("anonymous", "100", pb.REJECT_REASON_WITHHELD_NUMBER),
        "rej-carrier": ("09010070001", "100", pb.REJECT_REASON_UNSUPPORTED_CARRIER),
        "rej-box": ("09010000051", "404", pb.REJECT_REASON_UNKNOWN_BOX),
        "rej-optout": ("+819010000099", "100", pb.REJECT_REASON_OPTED_OUT),
        "rej-cooldown": ("090-1000-0050", "100", pb.REJECT_REASON_RECIPIENT_RATE_LIMITED),
    }

    await gateway.dispatcher.handle(
        [gateway.request(rid, number, box) for rid, (number, box, _) in cases.items()]
    )

    for request_id, (_, box, reason) in cases.items():
        (result,) = await gateway.results_for(request_id)
        assert result.WhichOneof("body") == "sms_rejected", request_id
        assert result.sms_rejected.reason == reason, request_id
        assert result.sms_rejected.detail
        assert result.sms_rejected.snapshot.box_number == box
        assert result.envelope.event_id == f"{request_id}:rejected"
    assert sum(gateway.simulator.submits.values()) == submits_before + 1  # only cool-first


async def test_a_permanent_smsc_error_fails_at_once_without_retry(gateway: Gateway) -> None:
    await gateway.dispatcher.handle([gateway.request("perm-1", "09010040001")])

    result = await gateway.wait_for("perm-1", "sms_failed")
    assert result.sms_failed.reason == "carrier_permanent_error"
    assert result.sms_failed.attempts == 1
    assert gateway.simulator.submits["+819010040001"] == 1


async def test_a_stalled_or_dropped_submit_is_reported_uncertain_and_never_resent(gateway: Gateway) -> None:
    await gateway.dispatcher.handle(
        [gateway.request("stall-1", "09010050001"), gateway.request("drop-1", "09010060001")]
    )

    for request_id, number in (("stall-1", "+819010050001"), ("drop-1", "+819010060001")):
        result = await gateway.wait_for(request_id, "sms_failed")
        assert result.sms_failed.reason == "outcome_uncertain"
        assert gateway.simulator.submits[number] == 1
    # the connector binds again after the drop and keeps sending
    await gateway.dispatcher.handle([gateway.request("after-drop", "09010000003")])
    await gateway.wait_for("after-drop", "sms_delivered")


async def test_a_message_left_submitting_by_a_crash_is_reported_uncertain_after_crash(
    gateway: Gateway,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    stuck = SmsMessage(
        "crashed-1",
        TENANT,
        "+819010000004",
        MessageState.SUBMITTING,
        "",
        "docomo",
        1,
        Snapshot("100", "予約案内", 1, "本文", "", "本文", 1),
        long_ago,
        long_ago,
    )
    async with gateway.sessions.begin() as session:
        await MessageRepository(session).add(stuck)

    assert await gateway.sweeper.sweep() == 1
    assert await gateway.sweeper.sweep() == 0

    (result,) = await gateway.results_for("crashed-1")
    assert result.sms_failed.reason == "uncertain_after_crash"
    assert result.sms_failed.carrier == pb.CARRIER_DOCOMO
    assert gateway.metric("hibiki_sms_gateway_uncertain_submissions_total", cause="crash") == 1
    assert "+819010000004" not in gateway.simulator.submits


async def test_the_token_bucket_spreads_submits_over_time(gateway: Gateway) -> None:
    from .conftest import build_gateway

    limited, connector = build_gateway(
        gateway.sessions,
        gateway.simulator,
        lambda receipts: _connector_like(gateway, receipts),
        rate=10.0,
    )
    await connector.start()
    try:
        started = time.monotonic()
        await limited.dispatcher.handle([limited.request(f"rate-{n}", f"0901008{n:04d}") for n in range(25)])
        elapsed = time.monotonic() - started
    finally:
        await connector.stop()
        await limited.close()
    assert len([r for r in await gateway.results() if r.request_id.startswith("rate-")]) == 25
    assert elapsed >= 1.2  # 25 parts at 10/s after a burst of 10


def _connector_like(gateway: Gateway, receipts):  # type: ignore[no-untyped-def]
    from hibiki_sms_gateway.adapters.smpp_connector import SmppConnector
    from hibiki_sms_gateway.adapters.smpp_receiver import SmppAccount

    account = SmppAccount(gateway.simulator.host, gateway.simulator.port, "hibiki-limited")
    return SmppConnector(
        account, source_addr="HIBIKI", on_receipts=partial(receipts.record, account.connector)
    )


async def store_accepted(gateway: Gateway, request_id: str, recipient: str, part: PartId) -> None:
    now = datetime.now(UTC)
    accepted = SmsMessage(
        request_id, TENANT, recipient, MessageState.ACCEPTED, "accepted", "kddi", 1,
        Snapshot("100", "予約案内", 1, "本文", "", "本文", 1), now, now,
    )  # fmt: skip
    async with gateway.sessions.begin() as session:
        await MessageRepository(session).add(accepted)
        await ReceiptRepository(session).add_parts([SubmittedParts(request_id, [part], now)])


async def test_a_receipt_that_arrives_before_its_part_is_stored_is_applied_once_it_is(
    gateway: Gateway,
) -> None:
    await gateway.receipts.record("smpp:early", [Receipt("early-part", "DELIVRD", "000")])
    await asyncio.sleep(0.1)  # the arrival loop looked: no part yet
    assert await gateway.results_for("early-1") == []

    await store_accepted(gateway, "early-1", "+819010000005", PartId("smpp:early", "early-part"))
    gateway.receipts.parts_stored()

    result = await gateway.wait_for("early-1", "sms_delivered", within=0.2)  # at once, not on a timer
    assert result.sms_delivered.carrier_message_ids == ["early-part"]
    assert result.sms_delivered.carrier == pb.CARRIER_KDDI


async def test_a_receipt_whose_part_another_replica_stores_later_is_applied(gateway: Gateway) -> None:
    await gateway.receipts.record("smpp:early", [Receipt("elsewhere-part", "UNDELIV", "001")])
    await asyncio.sleep(0.1)
    # Another process stores the part: nothing tells this one.
    await store_accepted(gateway, "early-2", "+819010000008", PartId("smpp:early", "elsewhere-part"))

    result = await gateway.wait_for("early-2", "sms_undelivered", within=2.0)
    assert result.sms_undelivered.carrier_message_ids == ["elsewhere-part"]


async def test_a_receipt_no_part_claimed_for_long_is_left_to_the_periodic_pass(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipts_module, "_RETRY_FOR", timedelta(0))  # the arrival loop stops trying at once
    await gateway.receipts.record("smpp:early", [Receipt("late-part", "DELIVRD", "000")])
    await asyncio.sleep(0.1)
    await store_accepted(gateway, "early-3", "+819010000009", PartId("smpp:early", "late-part"))
    await asyncio.sleep(0.5)
    assert await gateway.results_for("early-3") == []

    await gateway.receipts.apply_pending()

    result = await gateway.wait_for("early-3", "sms_delivered", within=0.2)
    assert result.sms_delivered.carrier_message_ids == ["late-part"]


async def test_a_request_without_request_id_goes_to_the_dead_letter_topic(gateway: Gateway) -> None:
    with pytest.raises(InvalidEvent) as refused:
        gateway.request("", "09010000006")

    assert refused.value.reason == "invalid_field" and "request_id" in refused.value.detail
