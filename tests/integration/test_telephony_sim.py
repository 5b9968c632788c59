"""The telephony simulator over the real broker: against the routing service, and against a scripted IVR.

The scripted IVR plays routing's role on private topics (same contracts, `<run>.call.events` /
`<run>.call.actions`), so a routing or reporting process left running in the session can neither answer its
calls nor count them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_devstack.infra import Broker, Postgres
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, decode_event, new_envelope, record_headers
from hibiki_runtime.kafka import ensure_topics
from hibiki_telephony_sim.audio import AudioSource
from hibiki_telephony_sim.ground_truth import GroundTruthWriter, read_ground_truth
from hibiki_telephony_sim.kafka_transport import KafkaTransport
from hibiki_telephony_sim.scenario import parse_scenario
from hibiki_telephony_sim.simulator import SimConfig, Simulator

from tests.integration.conftest import start_service
from tests.integration.kafka_io import read_until

SIM_TENANT = "tenant-telsim"  # its own tenant, so these calls never show up in another test's figures
SMS_NUMBER = "+81312345678"  # menu: 1 → "we will send you an SMS" → hang up
OPERATOR_NUMBER = "+81312340000"  # menu: 2 → transfer to the operator
UNKNOWN_NUMBER = "+81399997777"
OPERATOR = "+81300001111"


def events_of(records: list[Any], prefix: str) -> dict[str, list[call_events_pb2.CallEvent]]:
    calls: dict[str, list[call_events_pb2.CallEvent]] = defaultdict(list)
    for record in records:
        if not (record.key or b"").decode(errors="replace").startswith(prefix):
            continue  # other modules' records share the topic, malformed ones included
        event = call_events_pb2.CallEvent.FromString(record.value)
        if event.call_id.startswith(prefix):
            calls[event.call_id].append(event)
    return calls


def kinds(events: list[call_events_pb2.CallEvent]) -> list[str]:
    return [e.WhichOneof("body") or "" for e in events]


# ---- (a) against the routing service ---------------------------------------------------------------


@pytest.fixture(scope="module")
def routing(postgres: Postgres, stack: Stack) -> ServiceSpec:
    return start_service(stack, postgres, "routing", "hibiki_routing")


async def run_console_script(
    kafka: Broker, work: Path, run_id: str, *extra: str
) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Run `hibiki-telephony-sim` as a process: its stdout, JSON summary and ground-truth lines."""
    scenario = work / "scenario.json"
    # routing has no flow for any number yet, so even the "known" number is not in service
    scenario.write_text(
        json.dumps(
            {"numbers": {SMS_NUMBER: {"right": "1", "wrong": "9"}}, "unknown_numbers": [UNKNOWN_NUMBER]}
        )
    )
    ground_truth, summary = work / f"{run_id}.jsonl", work / f"{run_id}.summary.json"
    script = Path(sys.executable).with_name("hibiki-telephony-sim")
    process = await asyncio.create_subprocess_exec(
        str(script),
        "--bootstrap", kafka.bootstrap_servers, "--tenant", SIM_TENANT, "--scenario", str(scenario),
        "--calls", "4", "--rate", "20", "--concurrency", "4", "--speed", "20",
        "--schedule", "right,unknown", "--run-id", run_id, "--answer-timeout", "30",
        "--ground-truth", str(ground_truth), "--summary-json", str(summary), *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode(), json.loads(summary.read_text()), read_ground_truth(ground_truth)


async def test_console_script_against_routing_hears_not_in_service(
    kafka: Broker, routing: ServiceSpec, tmp_path: Path
) -> None:
    # The second run starts at the end of a call.actions that holds the first run's actions; the third
    # reads call.actions from the beginning. Each must answer only its own calls, each action once.
    run_ids = [f"telsim-routing-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    for run_id, extra in zip(run_ids, [(), (), ("--from-beginning",)], strict=True):
        stdout, summary, lines = await run_console_script(kafka, tmp_path, run_id, *extra)
        assert "hangup:not_in_service" in stdout and "4 calls" in stdout
        assert summary["outcomes"] == {"hangup:not_in_service": 4}
        assert summary["actions_received"] == 4
        assert sorted(line["call_id"] for line in lines) == [f"{run_id}-{i:06d}" for i in range(4)]
        for line in lines:
            assert line["tenant_id"] == SIM_TENANT
            assert line["outcome"] == "hangup:not_in_service" and line["end_reason"] == "system_hangup"
            assert not line["sms_promised"] and not line["abandoned"]
            (action,) = line["actions"]
            assert (action["kind"], action["reason"], action["action_id"]) == (
                "hangup",
                "not_in_service",
                f"{line['call_id']}:1",
            )
            assert [e["kind"] for e in line["events"]] == ["started", "ended"]
        assert {line["dialed_number"] for line in lines} == {SMS_NUMBER, UNKNOWN_NUMBER}

    records = await read_until(
        kafka.bootstrap_servers,
        CALL_EVENTS,
        lambda rs: sum(len(v) for v in events_of(rs, "telsim-routing-").values()) >= 24,
        within_seconds=20,
    )
    calls = events_of(records, "telsim-routing-")
    assert sorted(calls) == sorted(f"{run_id}-{i:06d}" for run_id in run_ids for i in range(4))
    for call_id, events in calls.items():
        assert kinds(events) == ["call_started", "call_ended"]
        assert [e.envelope.event_id for e in events] == [f"{call_id}:1:started", f"{call_id}:2:ended"]
        assert events[1].call_ended.reason == call_events_pb2.END_REASON_SYSTEM_HANGUP
        assert events[1].call_ended.during_action_id == f"{call_id}:1"
        assert events[1].envelope.causation_id == f"{call_id}:1"
        assert all(e.envelope.tenant_id == SIM_TENANT for e in events)


# ---- (b) against a scripted IVR on private topics --------------------------------------------------


class ScriptedIvr:
    """Routing's role, scripted: one menu per known number; 3 invalid or timed-out inputs → fallback.

    Sends every action twice (Kafka redelivers), and keeps every event it read.
    """

    def __init__(self, bootstrap: str, events_topic: str, actions_topic: str) -> None:
        self.bootstrap = bootstrap
        self.events_topic = events_topic
        self.actions_topic = actions_topic
        self.steps: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.seen: list[call_events_pb2.CallEvent] = []
        self.dialed: dict[str, str] = {}

    def _action(self, call_id: str, **body: Any) -> call_actions_pb2.CallAction:
        self.steps[call_id] += 1
        step = self.steps[call_id]
        action = call_actions_pb2.CallAction(
            call_id=call_id, action_id=f"{call_id}:{step}", step=step, **body
        )
        inner = getattr(action, action.WhichOneof("body") or "")
        action.envelope.CopyFrom(new_envelope(SIM_TENANT, inner, event_id=action.action_id))
        return action

    def _menu(
        self, call_id: str, reason: call_actions_pb2.PromptReason.ValueType
    ) -> call_actions_pb2.CallAction:
        menu = call_actions_pb2.PlayAndCollect(
            prompts=[call_actions_pb2.Prompt(guidance_id="g-menu", text="SMSは1を押してください")],
            max_digits=1,
            route_id="menu",
            route_name="main menu",
            reason=reason,
        )
        menu.first_digit_timeout.FromTimedelta(timedelta(seconds=5))
        menu.inter_digit_timeout.FromTimedelta(timedelta(seconds=3))
        return self._action(call_id, play_and_collect=menu)

    def _failed(
        self, call_id: str, reason: call_actions_pb2.PromptReason.ValueType
    ) -> call_actions_pb2.CallAction:
        self.failures[call_id] += 1
        if self.failures[call_id] >= 3:
            return self._action(call_id, hangup=call_actions_pb2.Hangup(reason="fallback", route_id="menu"))
        return self._menu(call_id, reason)

    def decide(self, event: call_events_pb2.CallEvent) -> call_actions_pb2.CallAction | None:
        call_id, which = event.call_id, event.WhichOneof("body")
        if which == "call_started":
            self.dialed[call_id] = event.call_started.dialed_number
            if event.call_started.dialed_number not in (SMS_NUMBER, OPERATOR_NUMBER):
                return self._action(call_id, hangup=call_actions_pb2.Hangup(reason="not_in_service"))
            return self._menu(call_id, call_actions_pb2.PROMPT_REASON_INITIAL)
        if which == "digits_collected":
            digits = event.digits_collected.digits
            if self.dialed[call_id] == SMS_NUMBER and digits == "1":
                announcement = call_actions_pb2.Prompt(text="SMSをお送りします")
                return self._action(
                    call_id, play=call_actions_pb2.Play(prompts=[announcement], route_id="sms")
                )
            if self.dialed[call_id] == OPERATOR_NUMBER and digits == "2":
                return self._action(call_id, transfer=call_actions_pb2.Transfer(destination=OPERATOR))
            return self._failed(call_id, call_actions_pb2.PROMPT_REASON_INVALID_INPUT)
        if which == "input_timed_out":
            return self._failed(call_id, call_actions_pb2.PROMPT_REASON_TIMEOUT)
        if which == "prompt_finished":
            return self._action(call_id, hangup=call_actions_pb2.Hangup(reason="completed", route_id="sms"))
        return None

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=2)
        await consumer.start()
        await producer.start()
        try:
            partitions = consumer.partitions_for_topic(self.events_topic) or set()
            while not partitions:
                await asyncio.sleep(0.2)
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.events_topic) or set()
            assigned = [TopicPartition(self.events_topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                sends = []
                for records in batches.values():
                    for record in records:
                        event = decode_event(CALL_EVENTS, record.value).message
                        assert isinstance(event, call_events_pb2.CallEvent)
                        self.seen.append(event)
                        action = self.decide(event)
                        if action is None:
                            continue
                        for _ in range(2):  # a redelivery
                            sends.append(
                                await producer.send(
                                    self.actions_topic,
                                    action.SerializeToString(),
                                    key=action.call_id.encode(),
                                    headers=record_headers(action),
                                )
                            )
                await asyncio.gather(*sends)
        finally:
            await producer.stop()
            await consumer.stop()


EXPECTED = {
    # behaviour: (call.events kinds on the SMS number, outcome, sms promised)
    "right": (
        ["call_started", "digits_collected", "prompt_finished", "call_ended"],
        "hangup:completed",
        True,
    ),
    "wrong_then_right": (
        ["call_started", "digits_collected", "digits_collected", "prompt_finished", "call_ended"],
        "hangup:completed",
        True,
    ),
    "timeout_then_right": (
        ["call_started", "input_timed_out", "digits_collected", "prompt_finished", "call_ended"],
        "hangup:completed",
        True,
    ),
    "hangup": (["call_started", "call_ended"], "abandoned", False),
    "wrong": (["call_started", *["digits_collected"] * 3, "call_ended"], "hangup:fallback", False),
    "timeout": (["call_started", *["input_timed_out"] * 3, "call_ended"], "hangup:fallback", False),
    "unknown": (["call_started", "call_ended"], "hangup:not_in_service", False),
}


async def test_caller_behaviours_against_a_scripted_ivr(kafka: Broker, tmp_path: Path) -> None:
    run_id = f"telsim-{uuid.uuid4().hex[:6]}"
    events_topic, actions_topic = f"{run_id}.{CALL_EVENTS}", f"{run_id}.{CALL_ACTIONS}"
    await ensure_topics(kafka.bootstrap_servers, [events_topic, actions_topic], partitions=3)
    scenario = parse_scenario(
        {
            "numbers": {
                SMS_NUMBER: {"right": "1", "wrong": "9"},
                OPERATOR_NUMBER: {"right": "2", "wrong": "9", "sms": False},
            },
            "unknown_numbers": [UNKNOWN_NUMBER],
        }
    )
    schedule = tuple(EXPECTED) * 2
    config = SimConfig(
        SIM_TENANT,
        run_id,
        calls=len(schedule),
        rate=50,
        concurrency=len(schedule),
        speed=20,  # a 2 s prompt plays in 0.1 s, the 5 s timeout expires in 0.25 s
        seed=3,
        schedule=schedule,
        answer_timeout=20,
    )
    ivr = ScriptedIvr(kafka.bootstrap_servers, events_topic, actions_topic)
    ivr_task = asyncio.create_task(ivr.run())
    transport = KafkaTransport(
        kafka.bootstrap_servers, events_topic=events_topic, actions_topic=actions_topic
    )
    writer = GroundTruthWriter(tmp_path / "ground-truth.jsonl")
    simulator = Simulator(config, scenario, transport, AudioSource(2.0), writer)
    try:
        await transport.start(simulator.wants, simulator.on_action)
        summary = await asyncio.wait_for(simulator.run(), 45)
    finally:
        await transport.stop()
        writer.close()
        ivr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ivr_task

    lines = {line["call_id"]: line for line in read_ground_truth(tmp_path / "ground-truth.jsonl")}
    assert len(lines) == len(schedule) == summary.calls
    assert summary.errors == 0 and "gave_up" not in summary.outcomes
    records = await read_until(
        kafka.bootstrap_servers,
        events_topic,
        lambda rs: sum(kinds(v).count("call_ended") for v in events_of(rs, run_id).values()) >= len(schedule),
        within_seconds=20,
    )
    calls = events_of(records, run_id)
    transfers = 0
    for index, behaviour in enumerate(schedule):
        call_id = f"{run_id}-{index:06d}"
        line, events = lines[call_id], calls[call_id]
        expected_kinds, outcome, sms = EXPECTED[behaviour]
        assert line["behaviour"] == behaviour
        if line["dialed_number"] == OPERATOR_NUMBER and outcome == "hangup:completed":
            # the operator menu transfers on the right digit instead of promising an SMS
            transfers += 1
            expected_kinds = [*expected_kinds[:-2], "call_transferred", "call_ended"]
            outcome, sms = "transferred", False
            assert line["transferred_to"] == OPERATOR
        assert kinds(events) == expected_kinds, (behaviour, line)
        assert (line["outcome"], line["sms_promised"]) == (outcome, sms), behaviour
        # what was sent is what the broker holds, with the ids the ground truth names
        assert [e.envelope.event_id for e in events] == [e["event_id"] for e in line["events"]]
        assert len({e.envelope.event_id for e in events}) == len(events)
        # every action was delivered twice and answered once
        answered = [
            getattr(e, e.WhichOneof("body") or "").action_id
            for e in events
            if e.WhichOneof("body") not in ("call_started", "call_ended")
        ]
        assert len(answered) == len(set(answered))
        distinct = {action["action_id"] for action in line["actions"]}
        assert line["duplicate_actions"] >= 1
        assert len(line["actions"]) - line["duplicate_actions"] == len(distinct)
        ended = events[-1].call_ended
        if behaviour == "hangup":
            assert ended.reason == call_events_pb2.END_REASON_CALLER_HANGUP
            assert ended.during_action_id == f"{call_id}:1"  # during the first menu's guidance
            assert line["abandoned"] and line["end_reason"] == "caller_hangup"
        elif outcome == "transferred":
            assert ended.reason == call_events_pb2.END_REASON_TRANSFERRED
        else:
            assert ended.reason == call_events_pb2.END_REASON_SYSTEM_HANGUP
        if behaviour == "wrong_then_right":
            digits = [e.digits_collected.digits for e in events if e.WhichOneof("body") == "digits_collected"]
            assert digits == ["9", "1" if line["dialed_number"] == SMS_NUMBER else "2"]
        if behaviour.startswith("timeout"):
            timed_out = next(e for e in events if e.WhichOneof("body") == "input_timed_out")
            assert timed_out.input_timed_out.kind == call_events_pb2.TIMEOUT_KIND_FIRST_DIGIT
            assert timed_out.input_timed_out.action_id == f"{call_id}:1"
    assert transfers >= 1, "seed 3 should send at least one right-keying caller to the operator number"
    # nothing was sent twice: the IVR never read an event id twice
    seen_ids = [event.envelope.event_id for event in ivr.seen]
    assert seen_ids and len(seen_ids) == len(set(seen_ids))
