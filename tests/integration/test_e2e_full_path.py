"""The full path, end to end: the telephony simulator calls, routing decides, sms-gateway sends over SMPP to
the SMSC simulator, reporting counts — four service processes on a real broker and real PostgreSQL,
provisioned through the public gRPC APIs only. Then the same under kill -9, a consumer-group rebalance,
poison records, and a hundred hostile records after which a good call is still answered and counted.

Every test compares the whole report with the ground truth of every call made so far in the module (the
telephony simulator's log and the SMSC simulator's record), so the tests run in file order.

Proven to catch, by breaking a copy on purpose: sms-gateway sending twice (its claims and its
known-request check disabled: the SMSC received a recipient's SMS twice) and a consumer losing events
(sms-gateway's consumer silently skipping one record in 40: a promised SMS never reached the SMSC).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.common.v1 import envelope_pb2
from hibiki.reporting.v1 import report_service_pb2 as report_pb
from hibiki.reporting.v1 import report_service_pb2_grpc as report_grpc
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_bench.hostile import every_body, measured_classes, one_hostile_field_each
from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker
from hibiki_devstack.processes import health_status
from hibiki_devstack.stack import RunningService, ServiceSpec, Stack
from hibiki_reporting.domain.calendar import TOKYO
from hibiki_runtime.events import (
    ALL_TOPICS,
    CALL_ACTIONS,
    CALL_EVENTS,
    SMS_REQUESTS,
    SMS_RESULTS,
    dlq_topic,
    new_envelope,
)
from hibiki_runtime.kafka import ensure_topics
from hibiki_sms_gateway.smsc_simulator.scenario import Scenario as SmscScenario
from hibiki_telephony_sim.ground_truth import read_ground_truth

from tests.integration.e2e_support import (
    BOX_TEXT,
    BOX_URL,
    DELIVERED_CALLER,
    E2E_TENANT,
    OPERATOR_DESTINATION,
    OPERATOR_NUMBER,
    SMS_NUMBER,
    SMSC_RULES,
    TOKENS,
    UNSUPPORTED_CALLER,
    VIEWER,
    Provisioned,
    System,
    audio_bytes,
    call_outcomes,
    caller_scenario,
    daily_report,
    eventually,
    expected_daily_figures,
    expected_menu_funnel,
    expected_outcome,
    expected_sms_status,
    guidance_text,
    in_background,
    provision,
    replay,
    report_days,
    settled_sms_traffic,
    simulate_calls,
    start_system,
)
from tests.integration.kafka_io import produce, read_until

SEED_TEXTS = {
    "invalid": "入力が間違っています。案内をお聞きいただきもう一度入力してください。",
    "timeout": "入力が確認できません。案内をお聞きいただきもう一度入力してください。",
}
ENDED = {"hangup:completed", "hangup:fallback", "hangup:not_in_service", "transferred", "abandoned"}


@pytest.fixture(scope="module")
async def broker(work_dir: Path) -> AsyncIterator[Broker]:
    with kafka_broker(free_port(), work_dir / "e2e-broker.log") as running:
        await ensure_topics(running.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield running


@pytest.fixture(scope="module")
def system(work_dir: Path, broker: Broker, stack: Stack, postgres: Postgres) -> Iterator[System]:
    tokens = work_dir / "e2e-tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    own = Stack(
        work_dir / "e2e-logs",
        {
            **stack.base_env,
            "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "HIBIKI_AUTH_TOKENS_FILE": str(tokens),
        },
        say=lambda _line: None,
    )
    try:
        yield start_system(own, postgres, work_dir)
    finally:
        own.stop()


@pytest.fixture(scope="module")
async def provisioned(system: System) -> Provisioned:
    return await provision(system)


@pytest.fixture(scope="module")
def truth_dir(work_dir: Path) -> Path:
    path = work_dir / "e2e-ground-truth"
    path.mkdir()
    return path


@pytest.fixture
async def reports(system: System) -> AsyncIterator[report_grpc.ReportServiceAsyncStub]:
    async with grpc.aio.insecure_channel(system.address("reporting")) as channel:
        yield report_grpc.ReportServiceStub(channel)


def all_calls(truth_dir: Path) -> list[dict[str, Any]]:
    return [line for path in sorted(truth_dir.glob("*.jsonl")) for line in read_ground_truth(path)]


async def call_actions_of(bootstrap: str, call_ids: set[str]) -> dict[str, list[call_actions_pb2.CallAction]]:
    records = await read_until(bootstrap, CALL_ACTIONS, lambda _: False, within_seconds=2)
    actions: dict[str, list[call_actions_pb2.CallAction]] = {}
    for record in records:
        action = call_actions_pb2.CallAction.FromString(record.value)
        if action.call_id in call_ids:
            actions.setdefault(action.call_id, []).append(action)
    return actions


async def assert_system_matches_ground_truth(
    broker: Broker, system: System, reports: report_grpc.ReportServiceAsyncStub, truth_dir: Path
) -> None:
    """Every call ended as its caller experienced; each SMS sent once; the report equals the ground truth."""
    calls = all_calls(truth_dir)
    stuck = [(c["call_id"], c["outcome"]) for c in calls if c["outcome"] not in ENDED]
    assert not stuck, f"calls that did not end normally: {stuck}"
    promised = [c for c in calls if c["sms_promised"]]
    recipients = Counter(c["caller_number"] for c in promised)
    assert max(recipients.values()) == 1, "a caller number repeated: the SMS counts would be ambiguous"

    traffic = await settled_sms_traffic(broker.bootstrap_servers, len(promised), within_seconds=90)
    # routing asked once per promised SMS (redeliveries reuse the id) and for nothing else
    assert {call: len(ids) for call, ids in traffic.request_ids_by_call.items()} == {
        c["call_id"]: 1 for c in promised
    }
    uncertain = traffic.uncertain_recipients()
    received = Counter(m["destination"] for m in system.smsc_received())
    rules = SmscScenario.model_validate(SMSC_RULES)
    for recipient in recipients:
        status = expected_sms_status(recipient, rules)
        if status.startswith("rejected:"):
            assert received[recipient] == 0, recipient
        elif recipient in uncertain:  # the documented policy: reported, never resent
            assert received[recipient] <= 1, recipient
        else:
            assert received[recipient] == 1, (recipient, received[recipient], traffic.results_for(recipient))
    assert set(received) <= set(recipients), "the SMSC received an SMS nobody was promised"

    days = report_days(calls)
    expected = expected_daily_figures(
        calls, lambda recipient: expected_sms_status(recipient, rules, recipient in uncertain)
    )
    got = await eventually(lambda: daily_report(reports, days), expected, within_seconds=90)
    assert got == expected
    outcomes = {c["call_id"]: expected_outcome(c) for c in calls}
    assert await eventually(lambda: call_outcomes(reports, days), outcomes, within_seconds=20) == outcomes
    menu_calls = [c for c in calls if c["dialed_number"] == SMS_NUMBER]
    funnel = await reports.GetRouteFunnel(
        report_pb.GetRouteFunnelRequest(range=days, dialed_number=SMS_NUMBER), metadata=VIEWER
    )
    assert {(r.route_id, r.reached, r.invalid_inputs, r.timeouts, r.abandoned) for r in funnel.rows} == {
        ("menu", *expected_menu_funnel(menu_calls))
    }


# ---- 1. the seed's scenarios ------------------------------------------------------------------------

SEED_SCHEDULE = ("right", "wrong_then_right", "timeout_then_right", "wrong", "timeout", "hangup", "unknown")


async def test_seed_scenarios_end_to_end(
    broker: Broker,
    system: System,
    provisioned: Provisioned,
    truth_dir: Path,
    reports: report_grpc.ReportServiceAsyncStub,
) -> None:
    assert await guidance_text(system, provisioned.invalid_input_guidance_id) == SEED_TEXTS["invalid"]
    assert await guidance_text(system, provisioned.input_timeout_guidance_id) == SEED_TEXTS["timeout"]
    bootstrap = broker.bootstrap_servers
    runs = await asyncio.gather(
        simulate_calls(
            bootstrap, system, truth_dir / "seed.jsonl", "e2e-seed", caller_scenario([SMS_NUMBER]),
            calls=len(SEED_SCHEDULE), rate=20, schedule=SEED_SCHEDULE,
        ),
        simulate_calls(
            bootstrap, system, truth_dir / "operator.jsonl", "e2e-operator",
            caller_scenario([OPERATOR_NUMBER]), calls=1, rate=1, schedule=["right"],
        ),
        simulate_calls(
            bootstrap, system, truth_dir / "unsupported.jsonl", "e2e-unsupported",
            caller_scenario([SMS_NUMBER], callers=[UNSUPPORTED_CALLER]), calls=1, rate=1, schedule=["right"],
        ),
        simulate_calls(
            bootstrap, system, truth_dir / "delivered.jsonl", "e2e-delivered",
            caller_scenario([SMS_NUMBER], callers=[DELIVERED_CALLER]), calls=1, rate=1, schedule=["right"],
        ),
    )  # fmt: skip
    lines = {line["behaviour"] + ":" + line["run_id"]: line for _, run in runs for line in run}
    for summary, _ in runs:
        assert summary["errors"] == 0 and summary["audio_errors"] == 0
    seed = {b: lines[f"{b}:e2e-seed"] for b in SEED_SCHEDULE}
    actions = await call_actions_of(bootstrap, {line["call_id"] for line in seed.values()})
    # The published version plays the content pinned when it was published: `<guidance id>@<revision>`.
    menu = f"{provisioned.menu_guidance_id}@1"

    def prompts(behaviour: str) -> list[tuple[int, list[str]]]:
        return [
            (a.play_and_collect.reason, [p.guidance_id for p in a.play_and_collect.prompts])
            for a in sorted(actions[seed[behaviour]["call_id"]], key=lambda a: a.step)
            if a.HasField("play_and_collect")
        ]

    # correct input → the SMS box's text and URL reach the caller's handset once
    right = seed["right"]
    assert (right["outcome"], right["sms_promised"]) == ("hangup:completed", True)
    assert [m["text"] for m in system.smsc_received() if m["destination"] == right["caller_number"]] == [
        f"{BOX_TEXT}\n{BOX_URL}"
    ]
    assert right["audio_bytes"] > 0  # the menu and the thank-you were fetched from guidance-tts
    # invalid → the seed's miss guidance + the original prompt, then the right digit
    assert prompts("wrong_then_right")[1] == (
        call_actions_pb2.PROMPT_REASON_INVALID_INPUT,
        [f"{provisioned.invalid_input_guidance_id}@1", menu],
    )
    assert seed["wrong_then_right"]["sms_promised"]
    # timeout → the seed's timeout guidance + the original prompt
    assert prompts("timeout_then_right")[1] == (
        call_actions_pb2.PROMPT_REASON_TIMEOUT,
        [f"{provisioned.input_timeout_guidance_id}@1", menu],
    )
    assert seed["timeout_then_right"]["sms_promised"]
    # three failures → fallback
    for behaviour in ("wrong", "timeout"):
        assert len(prompts(behaviour)) == 3
        assert (seed[behaviour]["outcome"], seed[behaviour]["sms_promised"]) == ("hangup:fallback", False)
    # 2 → the operator
    operator = lines["right:e2e-operator"]
    assert (operator["outcome"], operator["transferred_to"]) == ("transferred", OPERATOR_DESTINATION)
    # hang-up during guidance → abandoned at the menu
    assert seed["hangup"]["outcome"] == "abandoned"
    assert seed["unknown"]["outcome"] == "hangup:not_in_service"

    await assert_system_matches_ground_truth(broker, system, reports, truth_dir)
    days = report_days(all_calls(truth_dir))
    abandoned = await reports.ListCalls(
        report_pb.ListCallsRequest(range=days, outcome=report_pb.CALL_OUTCOME_ABANDONED), metadata=VIEWER
    )
    assert [(c.call_id, c.abandoned_route_id, c.abandoned_stage) for c in abandoned.calls] == [
        (seed["hangup"]["call_id"], "menu", "prompt")
    ]
    # unsupported carrier → rejected with its reason, and the caller trace says so
    trace = await reports.TraceCaller(
        report_pb.TraceCallerRequest(caller_number=UNSUPPORTED_CALLER, range=days), metadata=VIEWER
    )
    assert trace.verdict == report_pb.TRACE_VERDICT_SMS_REJECTED
    ((sms,),) = [t.sms for t in trace.calls]
    assert sms.status == report_pb.SMS_STATUS_REJECTED
    assert "unsupported_carrier" in sms.reason.lower() or "非対応" in sms.reason
    assert "非対応キャリア" in trace.summary
    # a handset that reports delivery: 到達 in the caller trace, with the text and URL as sent
    assert [m["text"] for m in system.smsc_received() if m["destination"] == DELIVERED_CALLER] == [
        f"{BOX_TEXT}\n{BOX_URL}"
    ]
    delivered = await reports.TraceCaller(
        report_pb.TraceCallerRequest(caller_number=DELIVERED_CALLER, range=days), metadata=VIEWER
    )
    assert delivered.verdict == report_pb.TRACE_VERDICT_SMS_DELIVERED
    ((sent,),) = [t.sms for t in delivered.calls]
    assert (sent.snapshot.message_text, sent.snapshot.url) == (BOX_TEXT, BOX_URL)


# ---- 2. kill -9 under load --------------------------------------------------------------------------


async def test_kill_9_each_service_in_turn_under_load(
    broker: Broker,
    system: System,
    provisioned: Provisioned,
    truth_dir: Path,
    reports: report_grpc.ReportServiceAsyncStub,
) -> None:
    specs = system.specs
    menu_audio = await audio_bytes(system, provisioned.menu_guidance_id)
    assert menu_audio > 0
    work = simulate_calls(
        broker.bootstrap_servers, system, truth_dir / "faults.jsonl", "e2e-faults", caller_scenario(),
        calls=40, rate=1,
    )  # fmt: skip
    latest: dict[int | None, RunningService] = {}  # by gRPC port: the process each spec runs now

    async def kill_and_restart(spec: ServiceSpec) -> None:
        # A kill every few seconds, without waiting for the previous victim to rejoin its group: recoveries
        # overlap, as they would in a bad hour, and the module stays fast.
        await asyncio.sleep(4)
        system.kill_9(spec)
        latest[spec.grpc_port] = system.stack.start(spec)

    async with in_background(work) as load:
        for name in ("routing", "sms-gateway", "reporting", "guidance-tts"):
            await kill_and_restart(specs[name])
        # sms-gateway as a two-replica group on one database: each replica dies in turn
        replica = replace(specs["sms-gateway"], grpc_port=free_port(), http_port=free_port())
        latest[replica.grpc_port] = system.stack.start(replica)
        await kill_and_restart(specs["sms-gateway"])
        await kill_and_restart(replica)
        assert not load.done(), "the load ended before the last kill: raise the call count"
        await asyncio.to_thread(system.stack.wait_healthy, list(latest.values()), 120)
        summary, lines = await load

    assert summary["calls"] == 40 and summary["errors"] == 0
    assert "gave_up" not in summary["outcomes"]
    # Redelivery at its worst: every call event and SMS request of the run arrives a second time.
    assert await replay(broker.bootstrap_servers, CALL_EVENTS, "e2e-faults") > 40
    assert await replay(broker.bootstrap_servers, SMS_REQUESTS, "e2e-faults") > 0
    # while guidance-tts was down, prompts played their nominal length; afterwards it serves the same audio
    unavailable = {error.split(": ")[1].split()[0] for line in lines for error in line["audio_errors"]}
    assert unavailable <= {"UNAVAILABLE"}
    assert await audio_bytes(system, provisioned.menu_guidance_id) == menu_audio
    assert sum(line["sms_promised"] for line in lines) >= 10
    await assert_system_matches_ground_truth(broker, system, reports, truth_dir)
    # Receipts arrived while sms-gateway processes were being killed: every SMS the carrier accepted ends
    # delivered (到達), none stays merely accepted.
    figures = await daily_report(reports, report_days(all_calls(truth_dir)))
    accepted_delivered = [(row[3], row[4]) for row in figures.values()]
    assert all(accepted == delivered for accepted, delivered in accepted_delivered), figures
    assert sum(delivered for _, delivered in accepted_delivered) > 0


# ---- 3. a rebalance ---------------------------------------------------------------------------------


async def test_a_second_routing_instance_joining_mid_load_loses_and_duplicates_nothing(
    broker: Broker,
    system: System,
    provisioned: Provisioned,
    truth_dir: Path,
    reports: report_grpc.ReportServiceAsyncStub,
) -> None:
    work = simulate_calls(
        broker.bootstrap_servers, system, truth_dir / "rebalance.jsonl", "e2e-rebalance", caller_scenario(),
        calls=24, rate=1,
    )  # fmt: skip
    async with in_background(work) as load:
        await asyncio.sleep(5)
        await system.add_replica("routing")
        assert not load.done()
        summary, lines = await load
    assert summary["errors"] == 0 and "gave_up" not in summary["outcomes"]
    for line in lines:
        # an action id always carries the same action: the two instances never decided one step twice
        kinds: dict[str, set[str]] = {}
        for action in line["actions"]:
            kinds.setdefault(action["action_id"], set()).add(action["kind"])
        assert all(len(k) == 1 for k in kinds.values()), line["actions"]
    await assert_system_matches_ground_truth(broker, system, reports, truth_dir)


# ---- 4. poison records ------------------------------------------------------------------------------


def _without_tenant(message: Any, body_field: str) -> bytes:
    body = getattr(message, body_field)
    message.envelope.CopyFrom(
        envelope_pb2.Envelope(event_id="e2e-poison", schema=body.DESCRIPTOR.full_name, schema_version=1)
    )
    return bytes(message.SerializeToString())


POISON = {
    CALL_EVENTS: _without_tenant(
        call_events_pb2.CallEvent(call_id="e2e-poison", call_started=call_events_pb2.CallStarted()),
        "call_started",
    ),
    CALL_ACTIONS: _without_tenant(
        call_actions_pb2.CallAction(call_id="e2e-poison", hangup=call_actions_pb2.Hangup()), "hangup"
    ),
    SMS_REQUESTS: _without_tenant(
        sms_requests_pb2.SmsRequest(request_id="e2e-poison", sms_requested=sms_requests_pb2.SmsRequested()),
        "sms_requested",
    ),
    SMS_RESULTS: _without_tenant(
        sms_results_pb2.SmsResult(request_id="e2e-poison", sms_rejected=sms_results_pb2.SmsRejected()),
        "sms_rejected",
    ),
}
CONSUMERS = {
    CALL_EVENTS: {"hibiki-routing", "hibiki-reporting"},
    CALL_ACTIONS: {"hibiki-reporting"},
    SMS_REQUESTS: {"hibiki-sms-gateway", "hibiki-reporting"},
    SMS_RESULTS: {"hibiki-reporting"},
}
TRUNCATED = b"\x0a\x05abc"  # field 1, five bytes announced, three present


async def test_poison_on_every_input_topic_lands_in_its_dlq_while_calls_keep_flowing(
    broker: Broker,
    system: System,
    provisioned: Provisioned,
    truth_dir: Path,
    reports: report_grpc.ReportServiceAsyncStub,
) -> None:
    work = simulate_calls(
        broker.bootstrap_servers, system, truth_dir / "poison.jsonl", "e2e-poison", caller_scenario(),
        calls=12, rate=2,
    )  # fmt: skip
    async with in_background(work) as load:
        await asyncio.sleep(1)
        for topic, missing_tenant in POISON.items():
            await produce(
                broker.bootstrap_servers,
                topic,
                [("e2e-poison-malformed", TRUNCATED), ("e2e-poison-no-tenant", missing_tenant)],
            )
        summary, _ = await load
    assert summary["errors"] == 0 and "gave_up" not in summary["outcomes"]

    for topic, groups in CONSUMERS.items():
        wanted = {(group, reason) for group in groups for reason in ("malformed", "missing_tenant")}

        def found(records: list[Any]) -> set[tuple[str, str]]:
            return {
                (dict(r.headers)["dlq-consumer-group"].decode(), dict(r.headers)["dlq-reason"].decode())
                for r in records
                if (r.key or b"").startswith(b"e2e-poison-")
            }

        def complete(records: list[Any], wanted: set[tuple[str, str]] = wanted) -> bool:
            return found(records) >= wanted

        records = await read_until(broker.bootstrap_servers, dlq_topic(topic), complete, 60)
        assert found(records) == wanted, topic
        assert {r.value for r in records if r.key == b"e2e-poison-malformed"} == {TRUNCATED}
    await assert_system_matches_ground_truth(broker, system, reports, truth_dir)


# ---- 5. hostile records ------------------------------------------------------------------------------

HOSTILE_TENANT = "hostile"
MIB = 1024 * 1024


def hostile_mix(per_topic: int) -> dict[str, list[tuple[str, bytes]]]:
    """Per input topic: each record class that once stopped a consumer, then one-field variants of valid
    events of every body (the consumer fuzz tests' generator), then garbage, `per_topic` in all."""
    rng = random.Random(18)
    mix = measured_classes(HOSTILE_TENANT)
    for topic, records in mix.items():
        variants = [
            (f"hostile-{topic}-{n}", variant.SerializeToString())
            for n, base in enumerate(every_body(topic, f"hostile-{uuid.uuid4().hex[:8]}"))
            for _, variant in one_hostile_field_each(base)
        ]
        records += rng.sample(variants, per_topic - len(records) - 1)
        records.append((f"hostile-{topic}-garbage", rng.randbytes(64)))
    return mix


async def test_after_hostile_records_on_every_topic_a_good_call_is_answered_and_counted_within_10s(
    broker: Broker, system: System, provisioned: Provisioned, reports: report_grpc.ReportServiceAsyncStub
) -> None:
    mix = hostile_mix(per_topic=25)
    assert sum(len(records) for records in mix.values()) == 100
    # A record of about 1 MiB: its dead-letter copy would exceed the broker's limit.
    huge = call_events_pb2.CallStarted(dialed_number="+81312345678", caller_number="9" * (MIB - 200))
    huge_event = call_events_pb2.CallEvent(call_id="hostile-huge", call_started=huge)
    huge_event.envelope.CopyFrom(new_envelope(HOSTILE_TENANT, huge, event_id="hostile-huge"))
    mix[CALL_EVENTS].append(("hostile-huge", huge_event.SerializeToString()))
    for topic, records in mix.items():
        await produce(broker.bootstrap_servers, topic, records, max_request_size=2 * MIB)

    caller = f"+8190{random.randrange(10**8):08d}"
    call_id = f"after-hostile-{uuid.uuid4().hex[:8]}"
    body = call_events_pb2.CallStarted(dialed_number=SMS_NUMBER, caller_number=caller)
    good = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
    good.envelope.CopyFrom(new_envelope(E2E_TENANT, body, event_id=f"{call_id}:started"))
    produced = time.monotonic()
    await produce(broker.bootstrap_servers, CALL_EVENTS, [(call_id, good)])

    answered = await read_until(
        broker.bootstrap_servers,
        CALL_ACTIONS,
        lambda records: any(r.key == call_id.encode() for r in records),
        within_seconds=10,
    )
    assert any(r.key == call_id.encode() for r in answered), "routing did not answer within 10 s"
    today = datetime.now(TOKYO).date().isoformat()

    async def counted() -> int:
        reply = await reports.ListCalls(
            report_pb.ListCallsRequest(
                range=report_pb.DateRange(start_date=today, end_date=today), caller_number=caller
            ),
            metadata=VIEWER,
        )
        return len(reply.calls)

    remaining = 10 - (time.monotonic() - produced)
    assert await eventually(counted, 1, within_seconds=max(remaining, 0), interval=0.2) == 1, (
        "reporting did not count the call within 10 s"
    )
    for name, spec in system.specs.items():
        assert health_status(spec.grpc_port or 0) == "SERVING", name

    # Each consumer dead-lettered the huge record with a copy the broker took: truncated, and saying so.
    def huge_copies(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == b"hostile-huge"]

    copies = huge_copies(
        await read_until(
            broker.bootstrap_servers,
            dlq_topic(CALL_EVENTS),
            lambda records: len(huge_copies(records)) >= 2,
            within_seconds=30,
        )
    )
    assert {dict(c.headers)["dlq-consumer-group"] for c in copies} == {b"hibiki-routing", b"hibiki-reporting"}
    for copy in copies:
        headers = dict(copy.headers)
        assert headers["dlq-reason"] == b"invalid_field" and headers["dlq-truncated"] == b"true"
        assert int(headers["dlq-original-size"]) == len(huge_event.SerializeToString())
        assert len(copy.value) < MIB and huge_event.SerializeToString().startswith(copy.value)
