"""The sms-gateway wired as in production, minus Kafka: SQLite, the real SMPP connector and the SMSC
simulator over TCP. Results are read from the transactional outbox the relay would publish."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_runtime.consumer import Inbound
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import SMS_REQUESTS, new_envelope
from hibiki_runtime.instances import InstanceRepository
from hibiki_runtime.outbox import outbox
from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.smpp_connector import SmppConnector
from hibiki_sms_gateway.adapters.smpp_receiver import SmppAccount
from hibiki_sms_gateway.adapters.tables import sms_instances
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.commands import SendSms
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from hibiki_sms_gateway.entrypoints.sms_requests_consumer import EDGE
from hibiki_sms_gateway.service_layer.boxes import BoxService
from hibiki_sms_gateway.service_layer.dispatch import AdmissionPolicy, Dispatcher
from hibiki_sms_gateway.service_layer.opt_outs import OptOutService
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.recovery import Recovery
from hibiki_sms_gateway.service_layer.sender import PartSender, SendPolicy
from hibiki_sms_gateway.smsc_simulator.scenario import Behaviour, Rule, Scenario
from hibiki_sms_gateway.smsc_simulator.simulator import SmscSimulator
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

TENANT = "tenant-a"
OWNER = "test-process"  # the sms-gateway process the tests play (registered as alive for a day)
SCENARIO = Scenario(
    rules=[
        Rule(prefix="+81901000", carrier="docomo", behaviour=Behaviour.DELIVER, delay=0.1),
        Rule(prefix="+81901001", carrier="au", behaviour=Behaviour.UNDELIVER, delay=0.1, error_code="006"),
        Rule(prefix="+81901002", carrier="softbank", behaviour=Behaviour.EXPIRE, delay=0.1),
        Rule(prefix="+81901003", carrier="rakuten", behaviour=Behaviour.THROTTLE, throttle=2, delay=0.1),
        Rule(prefix="+81901004", carrier="docomo", behaviour=Behaviour.REJECT),
        Rule(prefix="+81901005", carrier="docomo", behaviour=Behaviour.STALL),
        Rule(prefix="+81901006", carrier="docomo", behaviour=Behaviour.DROP),
        Rule(prefix="+81901007", carrier="none"),
        Rule(prefix="+81901008", carrier="docomo", behaviour=Behaviour.ACCEPT),
    ]
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gateway:
    sessions: async_sessionmaker[AsyncSession]
    simulator: SmscSimulator
    dispatcher: Dispatcher
    receipts: ReceiptBook
    sweeper: Recovery
    boxes: BoxService
    opt_outs: OptOutService
    registry: CollectorRegistry
    offsets: itertools.count[int]
    # The receipt-matching loop the service runs in the background.
    applier: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.applier is not None:
            self.applier.cancel()
            await asyncio.gather(self.applier, return_exceptions=True)
        await self.dispatcher.close()
        await self.receipts.close()

    def request(
        self, request_id: str, recipient: str, box_number: str = "100", *, event_id: str = ""
    ) -> Inbound[SendSms]:
        """A decoded sms.requests record as the consumer would hand it over."""
        body = sms_requests_pb2.SmsRequested(call_id="call-1", box_number=box_number, recipient=recipient)
        message = sms_requests_pb2.SmsRequest(request_id=request_id, sms_requested=body)
        message.envelope.CopyFrom(new_envelope(TENANT, body, event_id=event_id or f"{request_id}:requested"))
        return EDGE.inbound(SMS_REQUESTS, message, key=request_id, position=next(self.offsets))

    async def results(self) -> list[sms_results_pb2.SmsResult]:
        async with self.sessions() as session:
            rows = (await session.execute(select(outbox.c.value).order_by(outbox.c.id))).scalars()
            return [sms_results_pb2.SmsResult.FromString(value) for value in rows]

    async def results_for(self, request_id: str) -> list[sms_results_pb2.SmsResult]:
        return [r for r in await self.results() if r.request_id == request_id]

    async def wait_for(self, request_id: str, kind: str, within: float = 10.0) -> sms_results_pb2.SmsResult:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [r for r in await self.results_for(request_id) if r.WhichOneof("body") == kind]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        kinds = [r.WhichOneof("body") for r in await self.results_for(request_id)]
        raise AssertionError(f"no {kind} for {request_id} within {within}s; got {kinds}")

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def register_alive(sessions: async_sessionmaker[AsyncSession], owner: str = OWNER) -> None:
    """The process the tests play heartbeats for a day: recovery never takes its messages for orphans."""
    async with sessions.begin() as session:
        await InstanceRepository(session, sms_instances).register(
            owner, datetime.now(UTC) + timedelta(days=1)
        )


def build_gateway(
    sessions: async_sessionmaker[AsyncSession],
    simulator: SmscSimulator,
    connector_factory: Callable[[ReceiptBook], SmppConnector],
    *,
    rate: float = 200.0,
) -> tuple[Gateway, SmppConnector]:
    registry = CollectorRegistry()
    metrics = SmsMetrics(registry)
    receipts = ReceiptBook(sessions, metrics, lambda: None)
    connector = connector_factory(receipts)
    policy = SendPolicy(default_rate_per_second=rate, attempts=5, initial_backoff=0.05, max_backoff=0.3)
    sender = PartSender({carrier: ("smpp", connector) for carrier in Carrier}, metrics, policy)
    resolver = StaticCarrierTable({rule.prefix: rule.carrier for rule in simulator.scenario.rules})
    dispatcher = Dispatcher(
        sessions,
        resolver,
        sender,
        receipts,
        metrics,
        lambda: None,
        AdmissionPolicy(cooldown=CooldownPolicy(min_interval=timedelta(seconds=60))),
        send_budget_seconds=20,
        owner=OWNER,
    )
    sweeper = Recovery(
        sessions,
        metrics,
        lambda: None,
        OWNER,
        instance_timeout=timedelta(seconds=15),
        reconcile_grace=timedelta(seconds=60),
        stuck_after=timedelta(seconds=60),
    )
    gateway = Gateway(
        sessions,
        simulator,
        dispatcher,
        receipts,
        sweeper,
        BoxService(sessions),
        OptOutService(sessions),
        registry,
        itertools.count(),
        asyncio.create_task(receipts.apply_arrived_forever(), name="test-receipts"),
    )
    return gateway, connector


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    database: Path = tmp_path_factory.mktemp("sms") / "sms.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    simulator = SmscSimulator(SCENARIO, "127.0.0.1", free_port())
    await simulator.start()

    def connector(receipts: ReceiptBook) -> SmppConnector:
        account = SmppAccount(simulator.host, simulator.port, "hibiki", "secret")
        return SmppConnector(
            account,
            source_addr="HIBIKI",
            on_receipts=partial(receipts.record, account.connector),
            submit_timeout=1.0,
        )

    built, smpp = build_gateway(sessions, simulator, connector)
    await register_alive(sessions)
    await smpp.start()
    await built.boxes.create(
        TENANT, "op", "100", "予約案内", "ご予約ありがとうございます。", "https://example.jp/r"
    )
    yield built
    await smpp.stop()
    await built.close()
    await simulator.stop()
    await engine.dispose()
