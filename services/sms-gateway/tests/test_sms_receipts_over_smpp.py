"""Delivery receipts are acknowledged to the SMSC only once stored, and the SMSC keeps them until then."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import smpp34
from hibiki_sms_gateway.adapters.smpp_connector import SmppConnector
from hibiki_sms_gateway.adapters.smpp_receiver import SmppAccount, SmppReceiver, receipt_of_deliver_sm
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook

from .conftest import Gateway, build_gateway

RECEIPT_TEXT = (
    b"id:text-id sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 stat:DELIVRD err:000 text:"
)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def receiver_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "smpp-receiver")


def test_the_receipted_message_id_tlv_names_the_part_and_the_text_gives_the_state() -> None:
    assert receipt_of_deliver_sm(RECEIPT_TEXT, "tlv-id") == Receipt("tlv-id", "DELIVRD", "000")
    assert receipt_of_deliver_sm(RECEIPT_TEXT, None) == Receipt("text-id", "DELIVRD", "000")
    assert receipt_of_deliver_sm(RECEIPT_TEXT, "") == Receipt("text-id", "DELIVRD", "000")
    assert receipt_of_deliver_sm(b"id:x stat:ENROUTE", "tlv-id") is None  # not a final receipt


class StoreFails(Exception):
    pass


@pytest.mark.parametrize(
    ("request_id", "recipient", "stored_before_failing"),
    [
        ("flaky-store", "09010000101", False),  # the database refuses it: nothing stored, no acknowledgement
        ("lost-ack", "09010000102", True),  # stored, then the process dies before answering the SMSC
    ],
)
async def test_a_receipt_is_acknowledged_only_once_stored_and_is_stored_once(
    gateway: Gateway, request_id: str, recipient: str, stored_before_failing: bool
) -> None:
    deliveries: Counter[str] = Counter()

    def connector(receipts: ReceiptBook) -> SmppConnector:
        async def on_receipt(receipt: Receipt) -> None:
            deliveries[receipt.carrier_message_id] += 1
            if deliveries[receipt.carrier_message_id] > 2:
                await receipts.record(receipt)
                return
            if stored_before_failing:
                await receipts.record(receipt)
            raise StoreFails("no acknowledgement this time")

        return SmppConnector(
            SmppAccount(gateway.simulator.host, gateway.simulator.port, f"r-{request_id}"),  # id ≤ 15 chars
            source_addr="HIBIKI",
            on_receipt=on_receipt,
        )

    flaky, smpp = build_gateway(gateway.sessions, gateway.simulator, connector)
    await smpp.start()
    try:
        await flaky.dispatcher.handle([flaky.request(request_id, recipient)])
        accepted = await gateway.wait_for(request_id, "sms_accepted")
        (part_id,) = accepted.sms_accepted.carrier_message_ids
        await gateway.wait_for(request_id, "sms_delivered")
        await until(lambda: gateway.simulator.pending_receipts == 0)
    finally:
        await smpp.stop()

    assert deliveries == {part_id: 3}  # answered with an error twice, so the SMSC sent it three times
    kinds = [r.WhichOneof("body") for r in await gateway.results_for(request_id)]
    assert kinds == ["sms_accepted", "sms_delivered"]


async def test_a_receipt_due_while_no_receiver_is_bound_is_sent_once_one_binds(gateway: Gateway) -> None:
    simulator = gateway.simulator
    transmitter = smpp34.Client(simulator.host, simulator.port, "late-receiver", "", bind_type="TX")
    smsc = await transmitter.connect()
    try:
        submitted = await smsc.submit_sm("819010000103", "届きました".encode("utf-16-be"), data_coding=8)
    finally:
        await transmitter.stop()
    await asyncio.sleep(0.5)  # the receipt (0.1 s delay) has been due for a while: nobody could take it
    assert simulator.pending_receipts == 1

    received: list[Receipt] = []

    async def store(receipt: Receipt) -> None:
        received.append(receipt)

    threads_before = receiver_threads()
    receiver = SmppReceiver(SmppAccount(simulator.host, simulator.port, "late-receiver"), on_receipt=store)
    await receiver.start()
    try:
        await until(lambda: simulator.pending_receipts == 0)
    finally:
        await receiver.stop()

    assert received == [Receipt(submitted.message_id or "?", "DELIVRD", "000")]
    assert receiver_threads() == threads_before  # stopping left no thread behind
