"""The consumers and queries on a real (SQLite) database, fed with the recorded protobuf sequence."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2 as actions_pb2
from hibiki.call.v1 import call_events_pb2
from hibiki.sms.v1 import sms_results_pb2
from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar
from hibiki_reporting.domain.csv_export import CsvEncoding
from hibiki_reporting.domain.figures import DailyFigures
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_reporting.domain.observations import Observation
from hibiki_reporting.domain.trace import TraceVerdict
from hibiki_reporting.domain.validation import DayRange
from hibiki_reporting.entrypoints.main import MIGRATIONS, TRANSLATORS
from hibiki_reporting.service_layer.export import csv_chunks
from hibiki_reporting.service_layer.ingest import Ingestor, consumer_name
from hibiki_reporting.service_layer.queries import ReportQueries
from hibiki_reporting.service_layer.retention import RetentionJob
from hibiki_runtime.consumer import ConsumerEdge, Inbound
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import CALL_EVENTS, SMS_REQUESTS, SMS_RESULTS
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting.tests.reporting_events import (
    CALLER,
    EXPECTED,
    EXPECTED_FUNNEL,
    OTHER_CALLER,
    SHOP,
    SNAPSHOT,
    SUPPORT,
    Recorder,
    recorded_sequence,
)

TENANT = "tenant-a"
DAY1 = datetime(2026, 11, 9, 10, 0, tzinfo=TOKYO)
NOW = datetime(2026, 11, 12, 12, 0, tzinfo=TOKYO)  # final through 11-09 (Wednesday's publication)
offsets = itertools.count()


TOPICS = list(TRANSLATORS)
EDGE = ConsumerEdge(TRANSLATORS)


def deliveries(records: Sequence[tuple[str, str, Message]]) -> list[Inbound[Observation]]:
    """The records as reporting's consumer edge hands them to the handler."""
    return [EDGE.inbound(topic, message, key=key, position=next(offsets)) for topic, key, message in records]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


def ingestor(sessions: async_sessionmaker[AsyncSession], now: datetime = NOW) -> Ingestor:
    metrics = ReportingMetrics(CollectorRegistry(), lambda: 0.0)
    return Ingestor(sessions, metrics, retention_days=90, now=lambda: now)


def queries(sessions: async_sessionmaker[AsyncSession]) -> ReportQueries:
    return ReportQueries(sessions, FinalizationSchedule(BusinessCalendar()), now=lambda: NOW)


async def feed(target: Ingestor, records: Sequence[tuple[str, str, Message]], batch: int = 7) -> list:
    """Each topic in batches, topics interleaved with results and ends first: the order a broker may give."""
    by_topic = {topic: deliveries([r for r in records if r[0] == topic]) for topic in TOPICS}
    rejections = []
    order = [SMS_RESULTS, CALL_EVENTS, SMS_REQUESTS, "call.actions"]
    while any(by_topic.values()):
        for topic in order:
            chunk, by_topic[topic] = by_topic[topic][:batch], by_topic[topic][batch:]
            if chunk:
                rejections += await target.ingest(topic, chunk)
    return rejections


def expected_rows() -> list[DailyFigures]:
    rows = []
    for (offset, dialed), figures in sorted(EXPECTED.items()):
        calls, abandoned, requested, accepted, delivered, undelivered, rejected, failed = figures
        day = DAY1.date() + timedelta(days=offset)
        rows.append(
            DailyFigures(
                day, dialed, calls, abandoned, requested, accepted, delivered, undelivered, rejected, failed,
                final=day <= date(2026, 11, 9),
            )
        )  # fmt: skip
    return rows


async def test_recorded_sequence_with_duplicates_and_reordering_gives_exact_figures(sessions) -> None:
    records = recorded_sequence(TENANT, DAY1)
    target = ingestor(sessions)

    assert await feed(target, list(reversed(records))) == []
    assert await feed(target, records[::3]) == []  # redelivered part of the stream

    report = queries(sessions)
    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))
    assert await report.daily_report(TENANT, days) == expected_rows()
    assert await report.daily_report("tenant-b", days) == []
    funnel = {
        row.route_id: (row.reached, row.invalid_inputs, row.timeouts, row.abandoned)
        for row in await report.route_funnel(TENANT, days)
    }
    assert funnel == EXPECTED_FUNNEL


async def test_the_funnel_of_all_numbers_keeps_flows_that_share_a_route_id_apart(sessions) -> None:
    shop, support = (
        Recorder(TENANT, flow_id="flow-shop"),
        Recorder(TENANT, prefix="s-", flow_id="flow-support"),
    )
    for recorder, dialed, name, calls in (
        (shop, SHOP, "予約メニュー", 2),
        (support, SUPPORT, "サポート窓口", 1),
    ):
        for n in range(calls):
            call = f"call-{n}"
            recorder.started(call, DAY1, dialed)
            menu = actions_pb2.PlayAndCollect(route_id="menu", route_name=name, reason=1)
            recorder.action(call, 1, DAY1 + timedelta(seconds=1), "play_and_collect", menu)
            recorder.ended(call, DAY1 + timedelta(seconds=9), call_events_pb2.END_REASON_CALLER_HANGUP, 1)
    await feed(ingestor(sessions), shop.records + support.records)

    rows = await queries(sessions).route_funnel(TENANT, DayRange(DAY1.date(), DAY1.date()))

    assert {(r.flow_id, r.route_id, r.route_name, r.dialed_number, r.reached, r.abandoned) for r in rows} == {
        ("flow-shop", "menu", "予約メニュー", SHOP, 2, 2),
        ("flow-support", "menu", "サポート窓口", SUPPORT, 1, 1),
    }


async def test_trace_answers_the_checklist(sessions) -> None:
    await feed(ingestor(sessions), recorded_sequence(TENANT, DAY1))
    report = queries(sessions)
    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))

    trace = await report.trace_caller(TENANT, CALLER, days)
    assert trace.answer.verdict is TraceVerdict.SMS_REJECTED
    assert [item.call.call_id for item in trace.calls] == [
        "call-a",
        "call-b",
        "call-h",
        "call-j",
        "call-k",
        "call-f",
    ]
    call_a = trace.calls[0]
    assert [s.status.value for s in call_a.sms] == ["delivered"]
    assert call_a.sms[0].snapshot is not None and call_a.sms[0].snapshot.url == "https://example.jp/r"
    assert [step.digits for step in call_a.call.path] == ["1"]

    first_day = DayRange(DAY1.date(), DAY1.date())
    assert (await report.trace_caller(TENANT, CALLER, first_day)).answer.verdict is TraceVerdict.SMS_PENDING
    other = await report.trace_caller(TENANT, OTHER_CALLER, days)
    assert other.answer.verdict is TraceVerdict.NO_SMS_REQUESTED
    nobody = await report.trace_caller(TENANT, "+819099999999", days)
    assert nobody.answer.verdict is TraceVerdict.NO_CALL_FOUND
    assert (await report.trace_caller("tenant-b", CALLER, days)).answer.verdict is TraceVerdict.NO_CALL_FOUND


async def test_event_of_another_tenant_for_a_known_call_is_rejected(sessions) -> None:
    target = ingestor(sessions)
    await feed(target, recorded_sequence(TENANT, DAY1))
    intruder = Recorder("tenant-b")
    intruder.ended("call-b", DAY1, call_events_pb2.END_REASON_CALLER_HANGUP, 1)
    intruder.sms_result("req-k", DAY1, "sms_delivered", sms_results_pb2.SmsDelivered(reason="DELIVRD"))

    call_rejections = await target.ingest(CALL_EVENTS, deliveries(intruder.records[:1]))
    sms_rejections = await target.ingest(SMS_RESULTS, deliveries(intruder.records[1:]))

    assert [(r.reason, r.detail) for r in call_rejections + sms_rejections] == [
        ("cross_tenant", "call call-b belongs to another tenant"),
        ("cross_tenant", "sms req-k belongs to another tenant"),
    ]
    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))
    assert await queries(sessions).daily_report(TENANT, days) == expected_rows()


async def test_csv_stream_has_exact_figures(sessions) -> None:
    await feed(ingestor(sessions), recorded_sequence(TENANT, DAY1))
    days = DayRange(DAY1.date() - timedelta(days=30), DAY1.date() + timedelta(days=1))

    chunks = [c async for c in csv_chunks(queries(sessions), TENANT, days, "", CsvEncoding.CP932)]

    lines = b"".join(chunks).decode("cp932").splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("2026-11-09,03-1234-5678,6,1,16.7,0,4,2,1,1,0,")
    # … SMS送信失敗数, 状態, 通話切断(システム障害)数, 途中放棄数(携帯番号入力中), 確定後の変更
    assert lines[1].endswith(",1,確定,0,0,")
    assert lines[3].startswith("2026-11-10,03-1234-5678,1,0,0.0,0,1,0,0,0,1,")
    assert lines[3].endswith(",0,速報,0,0,")


async def test_retention_keeps_day_89_and_deletes_day_91(sessions) -> None:
    today = datetime(2026, 11, 25, 9, 0, tzinfo=TOKYO)
    old = Recorder(TENANT)
    kept_and_gone = [("call-89", 89), ("call-90", 90), *((f"call-91-{n}", 91) for n in range(3))]
    for call_id, age in kept_and_gone:
        old.sms_call(call_id, f"req-{call_id}", today - timedelta(days=age), SHOP)
    await feed(ingestor(sessions, now=today - timedelta(days=5)), old.records)
    registry = CollectorRegistry()
    metrics = ReportingMetrics(registry, lambda: 0.0)
    job = RetentionJob(
        sessions,
        metrics,
        days=90,
        batch_size=2,
        consumers=[consumer_name(t) for t in TOPICS],
        now=lambda: today,
    )

    deleted = await job.run_once()

    report = ReportQueries(sessions, FinalizationSchedule(BusinessCalendar()), now=lambda: today)
    days = DayRange(today.date() - timedelta(days=100), today.date())
    calls = await report.list_calls(TENANT, days, dialed="", caller="", outcome=None, offset=0, limit=10)
    assert sorted(call.call_id for call in calls) == ["call-89", "call-90"]
    assert [row.day for row in await report.daily_report(TENANT, days)] == [
        today.date() - timedelta(days=90),
        today.date() - timedelta(days=89),
    ]
    deleted_rows = {
        table: registry.get_sample_value("hibiki_reporting_retention_deleted_rows_total", {"table": table})
        for table in ("call_records", "route_funnel", "call_facts", "sms_records", "sms_facts")
    }
    # Three calls of day 91 in batches of 2, each with 6 call facts, one funnel entry, one SMS.
    assert deleted_rows == {
        "call_records": 3.0, "route_funnel": 3.0, "call_facts": 18.0, "sms_records": 3.0, "sms_facts": 3.0
    }  # fmt: skip
    assert deleted == sum(deleted_rows.values())


async def test_events_older_than_retention_are_ignored(sessions) -> None:
    today = datetime(2026, 11, 25, 9, 0, tzinfo=TOKYO)
    stale = Recorder(TENANT)
    stale.sms_call("call-old", "req-old", today - timedelta(days=95), SHOP)
    await feed(ingestor(sessions, now=today), stale.records)
    days = DayRange(today.date() - timedelta(days=100), today.date())
    assert await queries(sessions).daily_report(TENANT, days) == []


async def test_statements_per_batch_do_not_grow_with_the_batch(engine, sessions) -> None:
    target = ingestor(sessions)

    async def statements_for(calls: int, prefix: str) -> int:
        recorder = Recorder(TENANT, prefix)
        for n in range(calls):
            recorder.sms_call(f"call-{n}", f"req-{n}", DAY1 + timedelta(minutes=n), SHOP)
            accepted = sms_results_pb2.SmsAccepted(carrier=1, snapshot=SNAPSHOT, reason="accepted")
            recorder.sms_result(f"req-{n}", DAY1 + timedelta(minutes=n, seconds=30), "sms_accepted", accepted)
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany) -> None:
            statements.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            assert await target(deliveries(recorder.records)) == []
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        return len(statements)

    few, many = await statements_for(5, "few-"), await statements_for(100, "many-")

    assert few == many
    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))
    assert sum(row.calls for row in await queries(sessions).daily_report(TENANT, days)) == 105
