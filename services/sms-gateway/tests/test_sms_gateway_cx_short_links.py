"""Tracked short links: sent in place of the box URL, counted toward the length, redirected and clicked."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_runtime.consumer import Inbound
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.events import SMS_REQUESTS, new_envelope
from hibiki_runtime.outbox import outbox
from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.commands import SendSms
from hibiki_sms_gateway.domain.concatenation import Part
from hibiki_sms_gateway.domain.message_text import ucs2_units
from hibiki_sms_gateway.domain.short_links import (
    TOKEN_LENGTH,
    is_link_preview,
    new_token,
    sample_short_link,
    short_link_url,
)
from hibiki_sms_gateway.entrypoints.http_short_links import short_link_routes
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from hibiki_sms_gateway.entrypoints.sms_requests_consumer import EDGE
from hibiki_sms_gateway.service_layer.boxes import BoxService
from hibiki_sms_gateway.service_layer.dispatch import Dispatcher
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.sender import SentPart
from hibiki_sms_gateway.service_layer.short_links import ShortLinkPolicy, ShortLinkService
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

TENANT = "tenant-a"
BASE = "https://s.example.jp"
BOX_URL = "https://example.jp/reservations/campaign/2026/winter?utm_source=sms&utm_medium=ivr"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@pytest.mark.parametrize(
    ("method", "agent", "preview"),
    [
        ("GET", PHONE, False),
        ("GET", "Mozilla/5.0 (Linux; Android 14) Chrome/120.0 Mobile Safari/537.36 Line/14.0.0", False),
        ("HEAD", PHONE, True),
        ("GET", "facebookexternalhit/1.1;line-poker/1.0", True),
        ("GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("GET", "WhatsApp/2.23.20.0", True),
        ("GET", "Twitterbot/1.0", True),
        ("GET", "", True),
    ],
)
def test_heads_previews_and_fetchers_are_not_people(method: str, agent: str, preview: bool) -> None:
    assert is_link_preview(method, agent) is preview


def test_every_short_link_has_the_length_of_the_sample_used_for_counting() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and {len(t) for t in tokens} == {TOKEN_LENGTH}
    assert {len(short_link_url(BASE, t)) for t in tokens} == {len(sample_short_link(BASE))}


class FakeSender:
    """Accepts every part at once (the SMPP path has its own tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Part]] = []

    async def send(
        self, carrier: Carrier, destination_e164: str, part: Part, on_wire: Callable[[], None] | None = None
    ) -> SentPart:
        if on_wire is not None:
            on_wire()
        self.sent.append((destination_e164, part))
        return SentPart(f"carrier-{len(self.sent)}", 1, "smpp:test")


@dataclass
class Tracked:
    sessions: async_sessionmaker[AsyncSession]
    boxes: BoxService
    dispatcher: Dispatcher
    sender: FakeSender
    links: ShortLinkService
    registry: CollectorRegistry
    now: list[datetime]

    async def results(self, kind: str) -> list[sms_results_pb2.SmsResult]:
        async with self.sessions() as session:
            rows = (await session.execute(select(outbox.c.value).order_by(outbox.c.id))).scalars()
            found = [sms_results_pb2.SmsResult.FromString(value) for value in rows]
        return [r for r in found if r.WhichOneof("body") == kind]


@pytest.fixture
async def tracked(tmp_path: Path) -> AsyncIterator[Tracked]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    registry = CollectorRegistry()
    metrics = SmsMetrics(registry)
    now = [datetime(2026, 11, 24, 1, 0, tzinfo=UTC)]
    sender = FakeSender()
    dispatcher = Dispatcher(
        sessions,
        StaticCarrierTable({"+8190": "docomo"}),
        sender,  # type: ignore[arg-type]
        ReceiptBook(sessions, metrics, lambda: None),
        metrics,
        lambda: None,
        clock=lambda: now[0],
        short_links=ShortLinkPolicy(BASE, timedelta(days=90)),
    )
    boxes = BoxService(sessions, short_link_base=BASE)
    links = ShortLinkService(sessions, metrics, lambda: None, clock=lambda: now[0])
    yield Tracked(sessions, boxes, dispatcher, sender, links, registry, now)
    await dispatcher.close()
    await engine.dispose()


def request(request_id: str, recipient: str = "+819012345678", box: str = "100") -> Inbound[SendSms]:
    body = sms_requests_pb2.SmsRequested(call_id="call-1", box_number=box, recipient=recipient)
    message = sms_requests_pb2.SmsRequest(request_id=request_id, sms_requested=body)
    message.envelope.CopyFrom(new_envelope(TENANT, body, event_id=f"{request_id}:requested"))
    return EDGE.inbound(SMS_REQUESTS, message, key=request_id, position=next(_offsets))


_offsets = itertools.count()


def test_preview_counts_the_short_link_not_the_box_url(tracked: Tracked) -> None:
    shown = tracked.boxes.preview("ご予約はこちら", BOX_URL)
    assert shown.rendered_text == "ご予約はこちら\n" + sample_short_link(BASE)
    assert shown.characters == ucs2_units("ご予約はこちら\n") + len(sample_short_link(BASE))
    assert BoxService(tracked.sessions).preview("ご予約はこちら", BOX_URL).characters == 8 + len(BOX_URL)


async def test_saving_a_box_checks_the_length_with_the_short_link(tracked: Tracked) -> None:
    room = 660 - 1 - len(sample_short_link(BASE))
    await tracked.boxes.create(TENANT, "op", "fits", "案内", "あ" * room, BOX_URL)
    with pytest.raises(InvalidArgument) as too_long:
        await tracked.boxes.create(TENANT, "op", "too-long", "案内", "あ" * (room + 1), "https://x.jp")
    assert [v.field for v in too_long.value.violations] == ["message_text"]


async def open_link(
    client: TestClient, path: str, agent: str = PHONE, method: str = "GET"
) -> tuple[int, str]:
    reply = await client.request(method, path, headers={"User-Agent": agent}, allow_redirects=False)
    return reply.status, reply.headers.get("Location", "") if reply.status == 302 else await reply.text()


async def test_the_sms_carries_a_short_link_that_redirects_and_counts_each_persons_open(
    tracked: Tracked,
) -> None:
    await tracked.boxes.create(TENANT, "op", "100", "予約案内", "ご予約はこちら", BOX_URL)
    await tracked.dispatcher.handle([request("req-1")])
    ((_, part),) = tracked.sender.sent
    (accepted,) = await tracked.results("sms_accepted")
    snapshot = accepted.sms_accepted.snapshot
    short = snapshot.rendered_text.removeprefix("ご予約はこちら\n")
    assert short.startswith(BASE + "/s/") and len(short) == len(sample_short_link(BASE))
    assert snapshot.url == BOX_URL and BOX_URL not in snapshot.rendered_text
    assert short.encode("utf-16-be") in part.short_message  # what the handset gets

    app = web.Application()
    app.add_routes(short_link_routes(tracked.links))
    path = short.removeprefix(BASE)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert await open_link(client, path) == (302, BOX_URL)
        assert await open_link(client, path, method="HEAD") == (302, BOX_URL)
        assert await open_link(client, path, agent="facebookexternalhit/1.1") == (302, BOX_URL)
        assert await open_link(client, path) == (302, BOX_URL)
        status, page = await open_link(client, "/s/NoSuchToken")
        assert status == 404 and "ページが見つかりません" in page
        tracked.now[0] += timedelta(days=91)
        status, page = await open_link(client, path)
        assert status == 404 and "有効期限" in page

    clicks = await tracked.results("sms_link_clicked")
    assert [(c.envelope.event_id, c.sms_link_clicked.click_number) for c in clicks] == [
        ("req-1:clicked:1", 1),
        ("req-1:clicked:2", 2),
    ]
    assert clicks[0].sms_link_clicked.url == BOX_URL and clicks[0].sms_link_clicked.short_link == short
    assert clicks[0].envelope.tenant_id == TENANT
    sample = tracked.registry.get_sample_value
    assert sample("hibiki_sms_gateway_short_link_opens_total", {"kind": "click"}) == 2
    assert sample("hibiki_sms_gateway_short_link_opens_total", {"kind": "preview"}) == 2
    assert sample("hibiki_sms_gateway_short_link_opens_total", {"kind": "unknown"}) == 2


async def test_a_rejected_request_gets_no_short_link(tracked: Tracked) -> None:
    await tracked.boxes.create(TENANT, "op", "100", "予約案内", "ご予約はこちら", BOX_URL)
    await tracked.dispatcher.handle([request("req-2", recipient="+81312345678")])
    (rejected,) = await tracked.results("sms_rejected")
    assert rejected.sms_rejected.snapshot.rendered_text == "ご予約はこちら\n" + BOX_URL
    assert tracked.sender.sent == []
