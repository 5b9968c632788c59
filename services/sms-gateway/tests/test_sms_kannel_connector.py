"""The HTTP aggregator connector against a fake Kannel over HTTP; receipts come via the receipt route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
from aiohttp import ClientSession, web
from hibiki.sms.v1 import sms_results_pb2 as pb
from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.adapters.kannel_connector import KannelConnector
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.concatenation import read_part
from hibiki_sms_gateway.entrypoints.http_receipts import RECEIPT_PATH, receipt_routes
from hibiki_sms_gateway.service_layer.dispatch import Dispatcher
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.sender import PartSender, SendPolicy
from prometheus_client import CollectorRegistry

from .conftest import Gateway, free_port

TOKEN = "receipt-secret"
TEXT_200 = ("本日はお電話ありがとうございました。予約の変更はこちらのページから承ります。" * 5)[:200]


@dataclass
class FakeKannel:
    """Answers sendsms like Kannel and calls dlr-url back: type 1 (delivered), or 2 for numbers ending 9."""

    port: int
    requests: list[dict[str, bytes]] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)  # scripted (status, body) before accepting

    async def sendsms(self, request: web.Request) -> web.Response:
        fields = {
            k: v.encode("latin-1") for k, v in parse_qsl(request.rel_url.raw_query_string, encoding="latin-1")
        }
        self.requests.append(fields)
        if self.answers:
            status, body = self.answers.pop(0)
            return web.Response(status=status, text=body)
        report = "2" if fields["to"].endswith(b"9") else "1"
        callback = fields["dlr-url"].decode().replace("%d", report)
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(_get(callback)))
        return web.Response(status=202, text="0: Accepted for delivery")


async def _get(url: str) -> None:
    async with ClientSession() as http, http.get(url) as reply:
        assert reply.status == 200


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@dataclass
class KannelSetup:
    kannel: FakeKannel
    dispatcher: Dispatcher
    receipt_url: str


@pytest.fixture(scope="module")
async def kannel_setup(gateway: Gateway) -> AsyncIterator[KannelSetup]:
    kannel = FakeKannel(free_port())
    kannel_app = web.Application()
    kannel_app.router.add_get("/cgi-bin/sendsms", kannel.sendsms)
    metrics = SmsMetrics(CollectorRegistry())
    receipts = ReceiptBook(gateway.sessions, metrics, lambda: None)
    receipt_app = web.Application()
    receipt_app.add_routes(receipt_routes(receipts, TOKEN))
    receipt_port = free_port()
    receipt_url = f"http://127.0.0.1:{receipt_port}{RECEIPT_PATH}"
    connector = KannelConnector(
        sendsms_url=f"http://127.0.0.1:{kannel.port}/cgi-bin/sendsms",
        username="hibiki",
        password="pw",
        source_addr="HIBIKI",
        receipt_url=f"{receipt_url}?token={TOKEN}",
    )
    runners = [await _serve(kannel_app, kannel.port), await _serve(receipt_app, receipt_port)]
    await connector.start()
    policy = SendPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.05)
    sender = PartSender({c: ("kannel", connector) for c in Carrier}, metrics, policy)
    resolver = StaticCarrierTable({"+8190": "docomo"})
    dispatcher = Dispatcher(gateway.sessions, resolver, sender, receipts, metrics, lambda: None)
    applier = asyncio.create_task(receipts.apply_arrived_forever())
    yield KannelSetup(kannel, dispatcher, receipt_url)
    applier.cancel()
    await asyncio.gather(applier, return_exceptions=True)
    await dispatcher.close()
    await connector.stop()
    await receipts.close()
    for runner in runners:
        await runner.cleanup()


async def test_a_long_message_goes_to_the_aggregator_as_numbered_ucs2_parts_and_is_delivered(
    gateway: Gateway, kannel_setup: KannelSetup
) -> None:
    await gateway.boxes.create("tenant-a", "op", "700", "長文", TEXT_200, "")
    await kannel_setup.dispatcher.handle([gateway.request("kannel-1", "09070000001", "700")])

    delivered = await gateway.wait_for("kannel-1", "sms_delivered")
    sent = [r for r in kannel_setup.kannel.requests if r["to"] == b"+819070000001"]
    assert {(r["coding"], r["charset"]) for r in sent} == {(b"2", b"UTF-16BE")}
    parts = [read_part(r["udh"] + r["text"], 0x40) for r in sent]
    assert [(p.number, p.total) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    assert "".join(p.text for p in parts) == TEXT_200
    assert delivered.sms_delivered.carrier == pb.CARRIER_DOCOMO
    assert len(delivered.sms_delivered.carrier_message_ids) == 3


async def test_an_undelivered_report_becomes_sms_undelivered(
    gateway: Gateway, kannel_setup: KannelSetup
) -> None:
    await kannel_setup.dispatcher.handle([gateway.request("kannel-2", "09070000009")])

    result = await gateway.wait_for("kannel-2", "sms_undelivered")
    assert result.sms_undelivered.reason == "UNDELIV"


async def test_aggregator_overload_is_retried_and_a_refusal_is_final(
    gateway: Gateway, kannel_setup: KannelSetup
) -> None:
    kannel_setup.kannel.answers[:] = [(429, "slow down"), (503, "queue full")]
    await kannel_setup.dispatcher.handle([gateway.request("kannel-3", "09070000003")])
    await gateway.wait_for("kannel-3", "sms_delivered")

    kannel_setup.kannel.answers[:] = [(400, "Unknown number")]
    await kannel_setup.dispatcher.handle([gateway.request("kannel-4", "09070000004")])
    failed = await gateway.wait_for("kannel-4", "sms_failed")
    assert failed.sms_failed.reason == "carrier_permanent_error"
    assert "Unknown number" in failed.sms_failed.detail


async def test_the_receipt_route_refuses_a_wrong_token(kannel_setup: KannelSetup) -> None:
    async with (
        ClientSession() as http,
        http.get(f"{kannel_setup.receipt_url}?token=guess&id=x&type=1") as reply,
    ):
        assert reply.status == 403
