"""Delivery receipts over TCP: stored in group commits, acknowledged to the SMSC only once stored (the SMSC
keeps them until then), and a receiving link that stops answering is bound again."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
import smpp34
import smpplib.consts
import smpplib.smpp
from hibiki_sms_gateway.adapters.smpp_connector import SmppConnector
from hibiki_sms_gateway.adapters.smpp_receiver import SmppAccount, SmppReceiver, receipt_of_deliver_sm
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook

from .conftest import Gateway, build_gateway, free_port

RECEIPT_TEXT = (
    b"id:text-id sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 stat:DELIVRD err:000 text:"
)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_a_receipt_names_its_part_state_handset_and_submit_date() -> None:
    expected = Receipt("tlv-id", "DELIVRD", "000", "819012345678", "2611251200")
    assert receipt_of_deliver_sm(RECEIPT_TEXT, "tlv-id", "819012345678") == expected
    assert receipt_of_deliver_sm(RECEIPT_TEXT, None).carrier_message_id == "text-id"  # type: ignore[union-attr]
    assert receipt_of_deliver_sm(RECEIPT_TEXT, "").carrier_message_id == "text-id"  # type: ignore[union-attr]
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
        account = SmppAccount(gateway.simulator.host, gateway.simulator.port, f"r-{request_id}")  # ≤ 15 chars

        async def on_receipts(group: Sequence[Receipt]) -> None:
            for receipt in group:
                deliveries[receipt.carrier_message_id] += 1
            if max(deliveries[r.carrier_message_id] for r in group) > 2:
                await receipts.record(account.connector, group)
                return
            if stored_before_failing:
                await receipts.record(account.connector, group)
            raise StoreFails("no acknowledgement this time")

        return SmppConnector(account, source_addr="HIBIKI", on_receipts=on_receipts)

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
        await flaky.close()

    assert deliveries == {part_id: 3}  # answered with an error twice, so the SMSC sent it three times
    kinds = [r.WhichOneof("body") for r in await gateway.results_for(request_id)]
    assert kinds == ["sms_accepted", "sms_delivered"]


async def submit_without_receiver(gateway: Gateway, system_id: str, recipients: Sequence[str]) -> list[str]:
    """Submit over a bare transmitter bind (no receiving session yet); returns the message ids."""
    simulator = gateway.simulator
    transmitter = smpp34.Client(simulator.host, simulator.port, system_id, "", bind_type="TX")
    smsc = await transmitter.connect()
    try:
        submitted = [
            await smsc.submit_sm(recipient, "届きました".encode("utf-16-be"), data_coding=8)
            for recipient in recipients
        ]
    finally:
        await transmitter.stop()
    return [s.message_id or "?" for s in submitted]


async def test_a_receipt_due_while_no_receiver_is_bound_is_sent_once_one_binds(gateway: Gateway) -> None:
    simulator = gateway.simulator
    (message_id,) = await submit_without_receiver(gateway, "late-receiver", ["819010000103"])
    await asyncio.sleep(0.5)  # the receipt (0.1 s delay) has been due for a while: nobody could take it
    assert simulator.pending_receipts == 1

    received: list[Receipt] = []

    async def store(group: Sequence[Receipt]) -> None:
        received.extend(group)

    receiver = SmppReceiver(SmppAccount(simulator.host, simulator.port, "late-receiver"), on_receipts=store)
    await receiver.start()
    try:
        await until(lambda: simulator.pending_receipts == 0)
    finally:
        await receiver.stop()

    assert [(r.carrier_message_id, r.state, r.recipient) for r in received] == [
        (message_id, "DELIVRD", "819010000103")
    ]


async def test_receipts_in_flight_share_a_commit_and_none_is_answered_before_it(gateway: Gateway) -> None:
    simulator = gateway.simulator
    ids = await submit_without_receiver(gateway, "grouped", [f"8190100002{n:02d}" for n in range(30)])
    await asyncio.sleep(0.4)
    assert simulator.pending_receipts == 30

    commits: list[int] = []
    release = asyncio.Event()

    async def store(group: Sequence[Receipt]) -> None:
        await release.wait()  # the commit is slow: receipts keep arriving meanwhile
        commits.append(len(group))

    receiver = SmppReceiver(SmppAccount(simulator.host, simulator.port, "grouped"), on_receipts=store)
    await receiver.start()
    try:
        await asyncio.sleep(0.5)
        assert simulator.pending_receipts == 30  # received, not stored: not one is acknowledged
        release.set()
        await until(lambda: simulator.pending_receipts == 0)
    finally:
        await receiver.stop()

    # Those that waited for the slow commit went into one commit together: groups, not one commit each.
    assert sum(commits) >= len(ids) and len(commits) < len(ids)
    assert max(commits) >= 5


class SilentSmsc:
    """An SMSC that binds whoever asks, answers enquire_link only while `answering`, and counts binds."""

    def __init__(self) -> None:
        self.port = free_port()
        self.binds = 0
        self.answering = True
        self.enquiries = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(16)
                (length,) = struct.unpack(">L", header[:4])
                pdu = smpplib.smpp.parse_pdu(header + await reader.readexactly(length - 16), client=self)
                if pdu.command == "bind_transceiver":
                    self.binds += 1
                    self._answer(writer, "bind_transceiver_resp", pdu.sequence, system_id="SILENT")
                elif pdu.command == "enquire_link":
                    self.enquiries += 1
                    if self.answering:
                        self._answer(writer, "enquire_link_resp", pdu.sequence)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _answer(self, writer: asyncio.StreamWriter, command: str, sequence: int, **fields: str) -> None:
        response = smpplib.smpp.make_pdu(command, client=self, status=smpplib.consts.SMPP_ESME_ROK, **fields)
        response.sequence = sequence
        writer.write(response.generate())

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


async def test_an_idle_link_is_probed_and_a_dead_one_bound_again() -> None:
    smsc = SilentSmsc()
    await smsc.start()

    async def store(_group: Sequence[Receipt]) -> None:
        return None

    receiver = SmppReceiver(
        SmppAccount("127.0.0.1", smsc.port, "probe"),
        on_receipts=store,
        enquire_interval=0.2,
        response_timeout=0.3,
    )
    await receiver.start()
    try:
        await until(lambda: smsc.enquiries >= 2)  # an idle link is probed, and answers keep it
        assert smsc.binds == 1
        smsc.answering = False  # the link goes dead without closing
        await until(lambda: smsc.binds == 2, within=5)
    finally:
        await receiver.stop()
        await smsc.stop()


async def test_the_receipts_of_a_burst_settle_their_messages_over_tcp(gateway: Gateway) -> None:
    requests = [gateway.request(f"burst-{n}", f"0901000{300 + n:04d}") for n in range(40)]
    await gateway.dispatcher.handle(requests)
    for n in range(40):
        await gateway.wait_for(f"burst-{n}", "sms_delivered")
    assert gateway.metric("hibiki_sms_gateway_receipts_stored_total") >= 40
