"""The batch write methods of ReportRepository on a real (SQLite) database."""

from __future__ import annotations

from hibiki.call.v1 import call_events_pb2
from hibiki.sms.v1 import sms_results_pb2
from hibiki_reporting.adapters.repository import NewFact, ReportRepository, Sighting
from hibiki_reporting.adapters.tables import call_records, route_funnel
from hibiki_reporting.domain.calls import CallOutcome, materialize_call
from hibiki_reporting.domain.facts import CallEnded, CallStarted, SmsRequested, SmsResultReported
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.tests.reporting_events import SHOP, SNAPSHOT, Recorder
from services.reporting.tests.reporting_recorded import CALLS, DAY1, at
from services.reporting.tests.test_reporting_ingest import deliveries


async def test_lock_creates_new_records_for_their_first_tenant_and_keeps_existing_owners(sessions) -> None:
    async with sessions() as session, session.begin():
        repository = ReportRepository(session)
        first = await repository.lock_calls(
            [Sighting("call-b", "tenant-b", DAY1), Sighting("call-a", "tenant-a", DAY1)]
        )
        sms = await repository.lock_sms([Sighting("req-a", "tenant-a", DAY1)])
    async with sessions() as session, session.begin():
        again = await ReportRepository(session).lock_calls(
            [Sighting("call-a", "tenant-b", DAY1), Sighting("call-c", "tenant-b", DAY1)]
        )

    assert (first.owners, first.created) == (
        {"call-a": "tenant-a", "call-b": "tenant-b"},
        {"call-a", "call-b"},
    )
    assert (sms.owners, sms.created) == ({"req-a": "tenant-a"}, {"req-a"})
    assert (again.owners, again.created) == ({"call-a": "tenant-a", "call-c": "tenant-b"}, {"call-c"})


async def test_facts_are_stored_once_and_read_back_per_record(sessions) -> None:
    recorder = Recorder("tenant-a")
    recorder.started("call-a", DAY1, SHOP)
    recorder.ended("call-a", at(DAY1, 30), call_events_pb2.END_REASON_CALLER_HANGUP, 1)
    recorder.started("call-b", DAY1, SHOP)
    recorder.sms_requested("req-a", "call-a", at(DAY1, 10), SHOP)
    accepted = sms_results_pb2.SmsAccepted(carrier=1, snapshot=SNAPSHOT, reason="accepted")
    recorder.sms_result("req-a", at(DAY1, 11), "sms_accepted", accepted)
    calls, sms = deliveries(recorder.records[:3]), deliveries(recorder.records[3:])
    call_facts = [NewFact(item.command.touches[0].key, item) for item in calls]
    sms_facts = [NewFact("req-a", item) for item in sms]

    async with sessions() as session, session.begin():
        repository = ReportRepository(session)
        await repository.add_call_facts(call_facts)
        await repository.add_call_facts(call_facts[:1])  # a fact stored twice is kept once
        await repository.add_sms_facts(sms_facts)
    async with sessions() as session, session.begin():
        repository = ReportRepository(session)
        stored_calls = await repository.call_facts_of(["call-a", "call-b", "call-unknown"])
        stored_sms = await repository.sms_facts_of(["req-a"])

    assert {key: {type(f) for f in facts} for key, facts in stored_calls.items()} == {
        "call-a": {CallStarted, CallEnded},
        "call-b": {CallStarted},
    }
    assert sum(len(facts) for facts in stored_calls.values()) == 3
    assert [type(f) for f in sorted(stored_sms["req-a"], key=lambda f: f.at)] == [
        SmsRequested,
        SmsResultReported,
    ]


async def test_save_calls_updates_the_records_and_replaces_their_funnel_rows(sessions) -> None:
    abandoned = materialize_call("call-b", CALLS["call-b"])  # main menu, abandoned after a mistake
    started = materialize_call("call-b", CALLS["call-b"][:1])
    other = materialize_call("call-c", CALLS["call-c"])  # main → sub → transfer
    async with sessions() as session, session.begin():
        repository = ReportRepository(session)
        await repository.lock_calls(
            [Sighting("call-b", "tenant-a", DAY1), Sighting("call-c", "tenant-a", DAY1)]
        )
        await repository.save_calls([("tenant-a", abandoned), ("tenant-a", other)])
        funnel_before = await _funnel(session)
        await repository.save_calls([("tenant-a", started)])
        funnel_after = await _funnel(session)
        outcomes = dict((await session.execute(select(call_records.c.call_id, call_records.c.outcome))).all())

    assert funnel_before == [("call-b", "main", True), ("call-c", "main", False), ("call-c", "sub", False)]
    assert funnel_after == [("call-c", "main", False), ("call-c", "sub", False)]
    assert outcomes == {"call-b": CallOutcome.IN_PROGRESS.value, "call-c": other.outcome.value}


async def _funnel(session: AsyncSession) -> list[tuple[str, str, bool]]:
    rows = await session.execute(
        select(route_funnel.c.call_id, route_funnel.c.route_id, route_funnel.c.abandoned).order_by(
            route_funnel.c.call_id, route_funnel.c.route_id
        )
    )
    return [tuple(row) for row in rows]
