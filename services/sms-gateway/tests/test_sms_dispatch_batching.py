"""Set-based dispatch: a batch costs the same statements whatever its size and keeps the per-request rules."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki.sms.v1 import sms_results_pb2 as pb
from hibiki_runtime.consumer import Inbound
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import SMS_REQUESTS, new_envelope
from hibiki_runtime.outbox import outbox, processed_events
from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.receipt_repository import ReceiptRepository
from hibiki_sms_gateway.adapters.tables import sms_messages, sms_short_links
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.commands import SendSms
from hibiki_sms_gateway.domain.concatenation import Part
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from hibiki_sms_gateway.entrypoints.sms_requests_consumer import EDGE
from hibiki_sms_gateway.service_layer.boxes import BoxService
from hibiki_sms_gateway.service_layer.dispatch import AdmissionPolicy, Dispatcher
from hibiki_sms_gateway.service_layer.opt_outs import OptOutService
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.sender import SentPart
from hibiki_sms_gateway.service_layer.short_links import ShortLinkPolicy
from prometheus_client import CollectorRegistry
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

TENANT, OTHER_TENANT = "tenant-a", "tenant-b"
NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@dataclass
class RecordingSender:
    """Accepts every part at once, except parts to `held` recipients, which wait for `release`."""

    sessions: async_sessionmaker[AsyncSession]
    held: set[str] = field(default_factory=set)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    check_state: bool = False
    sent: list[str] = field(default_factory=list)
    # The stored state of each message when its first part left (only with check_state).
    state_at_send: dict[str, str] = field(default_factory=dict)

    async def send(
        self, carrier: Carrier, destination_e164: str, part: Part, on_wire: Callable[[], None] | None = None
    ) -> SentPart:
        if on_wire is not None:
            on_wire()
        if self.check_state:
            async with self.sessions() as session:
                rows = await session.execute(
                    select(sms_messages.c.request_id, sms_messages.c.state).where(
                        sms_messages.c.recipient == destination_e164
                    )
                )
                for request_id, state in rows:
                    self.state_at_send.setdefault(request_id, state)
        if destination_e164 in self.held:
            self.holding.set()
            await self.release.wait()
        self.sent.append(destination_e164)
        return SentPart(f"carrier-{next(_CARRIER_IDS)}", 1, "smpp:test")


_CARRIER_IDS = itertools.count(1)


@dataclass
class Batching:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    sender: RecordingSender
    dispatcher: Dispatcher
    opt_outs: OptOutService
    offsets: itertools.count[int] = field(default_factory=itertools.count)

    def request(
        self, request_id: str, recipient: str, box: str = "100", *, tenant: str = TENANT, event_id: str = ""
    ) -> Inbound[SendSms]:
        body = sms_requests_pb2.SmsRequested(call_id="call-1", box_number=box, recipient=recipient)
        message = sms_requests_pb2.SmsRequest(request_id=request_id, sms_requested=body)
        message.envelope.CopyFrom(new_envelope(tenant, body, event_id=event_id or f"{request_id}:requested"))
        return EDGE.inbound(SMS_REQUESTS, message, key=request_id, position=next(self.offsets))

    async def results(self) -> dict[str, list[sms_results_pb2.SmsResult]]:
        async with self.sessions() as session:
            rows = (await session.execute(select(outbox.c.value).order_by(outbox.c.id))).scalars()
            found: dict[str, list[sms_results_pb2.SmsResult]] = {}
            for value in rows:
                result = sms_results_pb2.SmsResult.FromString(value)
                found.setdefault(result.request_id, []).append(result)
            return found

    async def kinds(self, request_id: str) -> list[str]:
        return [str(r.WhichOneof("body")) for r in (await self.results()).get(request_id, [])]

    @contextmanager
    def statements(self) -> Iterator[list[str]]:
        """The SQL statements sent to the database inside the block (an executemany counts once)."""
        seen: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            seen.append(statement)

        event.listen(self.engine.sync_engine, "before_cursor_execute", count)
        try:
            yield seen
        finally:
            event.remove(self.engine.sync_engine, "before_cursor_execute", count)


def build(
    engine: AsyncEngine, *, cooldown: CooldownPolicy | None = None, outcome_window: float = 5.0
) -> Batching:
    sessions = session_factory(engine)
    metrics = SmsMetrics(CollectorRegistry())
    sender = RecordingSender(sessions)
    dispatcher = Dispatcher(
        sessions,
        StaticCarrierTable({"+8190": "docomo", "+8180": "none"}),
        sender,  # type: ignore[arg-type]
        ReceiptBook(sessions, metrics, lambda: None),
        metrics,
        lambda: None,
        AdmissionPolicy(cooldown=cooldown or CooldownPolicy(min_interval=timedelta(seconds=60))),
        clock=lambda: NOW,
        short_links=ShortLinkPolicy("https://s.example.jp"),
        outcome_window_seconds=outcome_window,
    )
    _built.append(dispatcher)
    return Batching(engine, sessions, sender, dispatcher, OptOutService(sessions, clock=lambda: NOW))


_built: list[Dispatcher] = []  # closed with their database (each holds a connection for its marks)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    boxes = BoxService(session_factory(engine), clock=lambda: NOW)
    await boxes.create(
        TENANT, "op", "100", "予約案内", "ご予約ありがとうございます。", "https://example.jp/r"
    )
    await boxes.create(OTHER_TENANT, "op", "100", "案内", "お電話ありがとうございました。", "")
    yield engine
    while _built:
        await _built.pop().close()
    await engine.dispose()


@pytest.fixture
async def batching(engine: AsyncEngine) -> Batching:
    return build(engine)


def mobile(n: int) -> str:
    return f"+8190{10_000_000 + n:08d}"


def mixed_batch(batching: Batching, size: int, tag: str, first_recipient: int) -> list[Inbound[SendSms]]:
    """`size` requests to send, plus one of each refusal that needs the database, and a repeat."""
    sends = [batching.request(f"{tag}-{n}", mobile(first_recipient + n)) for n in range(size)]
    return [
        *sends,
        batching.request(f"{tag}-optout", "+819099999999"),
        batching.request(f"{tag}-nobox", mobile(first_recipient), box="404"),
        batching.request(f"{tag}-again", mobile(first_recipient)),  # same recipient as the first: cooldown
        sends[1],  # the same event twice in one batch
    ]


async def test_the_statements_of_a_batch_do_not_grow_with_its_size(engine: AsyncEngine) -> None:
    counts = {}
    for size in (3, 40):
        batching = build(engine)
        await batching.opt_outs.add(TENANT, "+819099999999")
        batch = mixed_batch(batching, size, f"size{size}", first_recipient=1000 * size)
        with batching.statements() as statements:
            await batching.dispatcher.handle(batch)
        counts[size] = len(statements)
        outcomes = {
            kind: await batching.kinds(f"size{size}-{kind}")
            for kind in ("0", "2", "optout", "nobox", "again")
        }
        assert outcomes == {
            "0": ["sms_accepted"],
            "2": ["sms_accepted"],
            "optout": ["sms_rejected"],
            "nobox": ["sms_rejected"],
            "again": ["sms_rejected"],
        }
        assert len(batching.sender.sent) == size

    # 8 to admit (known requests, claims, boxes, opt-outs, cooldowns, messages, links, outbox), 4 to record
    # outcomes (lock, parts, states, outbox); and the SUBMITTING marks, in group commits of up to one window
    # (10) of messages each.
    assert counts[3] == 12 + 1
    assert 12 + 4 <= counts[40] <= 12 + 8


async def test_a_redelivered_batch_costs_two_statements_and_sends_nothing(batching: Batching) -> None:
    batch = [batching.request(f"redo-{n}", mobile(100 + n)) for n in range(5)]
    await batching.dispatcher.handle(batch)

    with batching.statements() as statements:
        assert await batching.dispatcher.handle(batch) == []

    assert len(statements) == 2  # known requests, claims
    assert len(batching.sender.sent) == 5


async def test_requests_to_one_recipient_in_one_batch_obey_the_cooldown_in_order(engine: AsyncEngine) -> None:
    batching = build(engine, cooldown=CooldownPolicy(min_interval=timedelta(0), max_sends=2))
    recipient = mobile(200)
    await batching.dispatcher.handle([batching.request(f"burst-{n}", recipient) for n in range(3)])

    assert [await batching.kinds(f"burst-{n}") for n in range(3)] == [
        ["sms_accepted"],
        ["sms_accepted"],
        ["sms_rejected"],
    ]
    (third,) = (await batching.results())["burst-2"]
    assert third.sms_rejected.reason == pb.REJECT_REASON_RECIPIENT_RATE_LIMITED
    assert batching.sender.sent == [recipient, recipient]


async def test_a_refused_request_does_not_count_toward_the_cooldown_of_the_next(batching: Batching) -> None:
    recipient = mobile(210)
    await batching.dispatcher.handle(
        [batching.request("refused-first", recipient, box="404"), batching.request("sent-second", recipient)]
    )

    assert await batching.kinds("refused-first") == ["sms_rejected"]
    assert await batching.kinds("sent-second") == ["sms_accepted"]


async def test_a_request_id_repeated_in_a_batch_under_another_event_is_sent_once(batching: Batching) -> None:
    first = batching.request("twice", mobile(220))
    retry = batching.request("twice", mobile(220), event_id="twice:retry")

    assert await batching.dispatcher.handle([first, retry]) == []

    assert await batching.kinds("twice") == ["sms_accepted"]
    assert batching.sender.sent == [mobile(220)]


async def test_another_tenants_request_id_in_the_same_batch_is_rejected_and_stays_unclaimed(
    batching: Batching,
) -> None:
    ours = batching.request("shared-id", mobile(230))
    theirs = batching.request("shared-id", mobile(231), tenant=OTHER_TENANT, event_id="shared-id:other")

    rejections = await batching.dispatcher.handle([ours, theirs])

    assert [(r.item, r.reason) for r in rejections] == [(theirs, "cross_tenant")]
    assert batching.sender.sent == [mobile(230)]
    async with batching.sessions() as session:
        claims = await session.scalars(
            select(processed_events.c.event_id).where(processed_events.c.event_id.like("shared-id%"))
        )
        assert list(claims) == ["shared-id:requested"]
    # redelivered, it is rejected again rather than skipped as handled
    assert [r.reason for r in await batching.dispatcher.handle([theirs])] == ["cross_tenant"]


async def test_only_sent_messages_get_a_short_link(batching: Batching) -> None:
    await batching.opt_outs.add(TENANT, "+819099999998")
    await batching.dispatcher.handle(
        [batching.request("linked", mobile(240)), batching.request("opted-out", "+819099999998")]
    )

    async with batching.sessions() as session:
        linked = (await session.execute(select(sms_short_links.c.request_id))).scalars().all()
    assert linked == ["linked"]
    (accepted,) = (await batching.results())["linked"]
    assert "\nhttps://s.example.jp/s/" in accepted.sms_accepted.snapshot.rendered_text


async def test_every_message_is_submitting_in_the_database_before_its_first_part_leaves(
    batching: Batching,
) -> None:
    batching.sender.check_state = True
    await batching.dispatcher.handle([batching.request(f"order-{n}", mobile(250 + n)) for n in range(4)])

    assert batching.sender.state_at_send == {f"order-{n}": "submitting" for n in range(4)}
    assert [await batching.kinds(f"order-{n}") for n in range(4)] == [["sms_accepted"]] * 4


async def test_finished_sends_are_recorded_while_slower_ones_are_still_out(engine: AsyncEngine) -> None:
    batching = build(engine, outcome_window=0.01)
    batching.sender.held.add(mobile(261))
    handling = asyncio.create_task(
        batching.dispatcher.handle(
            [batching.request("fast", mobile(260)), batching.request("slow", mobile(261))]
        )
    )

    for _ in range(200):
        if await batching.kinds("fast"):
            break
        await asyncio.sleep(0.01)
    assert await batching.kinds("fast") == ["sms_accepted"]
    assert await batching.kinds("slow") == []
    assert not handling.done()

    batching.sender.release.set()
    await handling
    assert await batching.kinds("slow") == ["sms_accepted"]


async def test_a_message_the_recovery_sweep_settled_meanwhile_keeps_the_sweeps_result(
    batching: Batching,
) -> None:
    recipient = mobile(270)
    batching.sender.held.add(recipient)
    handling = asyncio.create_task(batching.dispatcher.handle([batching.request("swept", recipient)]))
    await batching.sender.holding.wait()  # admitted: SUBMITTING in the database
    async with batching.sessions.begin() as session:
        assert await MessageRepository(session).move(
            "swept", MessageState.SUBMITTING, MessageState.UNCERTAIN, now=NOW, reason="uncertain_after_crash"
        )

    batching.sender.release.set()
    await handling

    assert await batching.kinds("swept") == []  # the sweep's own SmsFailed is not this test's concern
    async with batching.sessions() as session:
        message = await MessageRepository(session).get("swept")
        assert message is not None and message.reason == "uncertain_after_crash"
        assert len((await ReceiptRepository(session).parts_of(["swept"]))["swept"]) == 1
