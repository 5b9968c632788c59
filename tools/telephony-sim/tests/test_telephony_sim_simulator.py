"""The simulator end to end over an in-memory stand-in for routing (no broker)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_runtime.events import CALL_EVENTS, decode_event, new_envelope
from hibiki_telephony_sim.audio import AudioSource
from hibiki_telephony_sim.ground_truth import GroundTruthWriter, read_ground_truth
from hibiki_telephony_sim.scenario import parse_scenario
from hibiki_telephony_sim.simulator import SimConfig, Simulator

TENANT = "tenant-sim"
MENU_NUMBER = "+81312345678"
SCENARIO = parse_scenario(
    {
        "numbers": {MENU_NUMBER: {"right": "1", "wrong": "9"}},
        "unknown_numbers": ["+81399990000"],
        "behaviours": {"to_operator": {"plan": ["right"]}},
    }
)


class FakeRouting:
    """Plays routing's role in memory: a one-menu IVR (1 → SMS then hang up, 3 failures → fallback).

    Every action is delivered twice, as Kafka may redeliver it.
    """

    def __init__(self, tenant: str = TENANT, silent: bool = False) -> None:
        self.tenant = tenant
        self.silent = silent
        self.simulator: Simulator | None = None
        self.events: dict[str, list[call_events_pb2.CallEvent]] = defaultdict(list)
        self.steps: dict[str, int] = defaultdict(int)
        self.failures: dict[str, int] = defaultdict(int)
        self.in_progress = 0
        self.max_in_progress = 0

    async def send(self, call_id: str, message: call_events_pb2.CallEvent) -> None:
        decode_event(CALL_EVENTS, message.SerializeToString())  # a valid record, or this raises
        assert message.call_id == call_id
        self.events[call_id].append(message)
        which = message.WhichOneof("body")
        if which == "call_started":
            self.in_progress += 1
            self.max_in_progress = max(self.max_in_progress, self.in_progress)
        elif which == "call_ended":
            self.in_progress -= 1
        if self.silent:
            return
        action = self.decide(message)
        if action is not None:
            assert self.simulator is not None
            self.simulator.on_action(action)
            self.simulator.on_action(action)

    def _action(self, call_id: str, **body: Any) -> call_actions_pb2.CallAction:
        self.steps[call_id] += 1
        step = self.steps[call_id]
        action = call_actions_pb2.CallAction(
            call_id=call_id, action_id=f"{call_id}:{step}", step=step, **body
        )
        which = action.WhichOneof("body") or ""
        action.envelope.CopyFrom(new_envelope(self.tenant, getattr(action, which), event_id=action.action_id))
        return action

    def _prompt(
        self, call_id: str, reason: call_actions_pb2.PromptReason.ValueType
    ) -> call_actions_pb2.CallAction:
        pac = call_actions_pb2.PlayAndCollect(
            prompts=[call_actions_pb2.Prompt(guidance_id="g-menu")],
            max_digits=1,
            route_id="menu",
            route_name="main menu",
            reason=reason,
            invalid_attempts=self.failures[call_id],
        )
        pac.first_digit_timeout.FromTimedelta(timedelta(seconds=5))
        return self._action(call_id, play_and_collect=pac)

    def _failure(
        self, call_id: str, reason: call_actions_pb2.PromptReason.ValueType
    ) -> call_actions_pb2.CallAction:
        self.failures[call_id] += 1
        if self.failures[call_id] >= 3:
            return self._action(call_id, hangup=call_actions_pb2.Hangup(reason="fallback"))
        return self._prompt(call_id, reason)

    def decide(self, message: call_events_pb2.CallEvent) -> call_actions_pb2.CallAction | None:
        call_id, which = message.call_id, message.WhichOneof("body")
        if which == "call_started":
            if message.call_started.dialed_number != MENU_NUMBER:
                return self._action(call_id, hangup=call_actions_pb2.Hangup(reason="not_in_service"))
            return self._prompt(call_id, call_actions_pb2.PROMPT_REASON_INITIAL)
        if which == "digits_collected":
            if message.digits_collected.digits == "1":
                return self._action(call_id, play=call_actions_pb2.Play(route_id="sms"))
            return self._failure(call_id, call_actions_pb2.PROMPT_REASON_INVALID_INPUT)
        if which == "input_timed_out":
            return self._failure(call_id, call_actions_pb2.PROMPT_REASON_TIMEOUT)
        if which == "prompt_finished":
            return self._action(call_id, hangup=call_actions_pb2.Hangup(reason="completed"))
        return None


def kinds(events: list[call_events_pb2.CallEvent]) -> list[str]:
    return [e.WhichOneof("body") or "" for e in events]


async def run_sim(routing: FakeRouting, config: SimConfig, ground_truth: Path | None = None) -> Simulator:
    writer = GroundTruthWriter(ground_truth) if ground_truth else None
    simulator = Simulator(config, SCENARIO, routing, AudioSource(1.0), writer)
    routing.simulator = simulator
    await simulator.run()
    if writer:
        writer.close()
    return simulator


async def test_every_behaviour_produces_its_events_and_ground_truth(tmp_path: Path) -> None:
    routing = FakeRouting()
    schedule = ("right", "wrong_then_right", "timeout_then_right", "hangup", "unknown", "wrong", "timeout")
    config = SimConfig(
        TENANT, "run", calls=len(schedule), rate=200, concurrency=7, speed=100, schedule=schedule
    )
    path = tmp_path / "gt.jsonl"
    simulator = await run_sim(routing, config, path)

    lines = {line["call_id"]: line for line in read_ground_truth(path)}
    assert len(lines) == 7
    ids = [f"run-{i:06d}" for i in range(7)]
    right, wrong_right, timeout_right, hangup, unknown, wrong, timeout = ids
    ok = ["call_started", "digits_collected", "prompt_finished", "call_ended"]
    assert kinds(routing.events[right]) == ok
    assert kinds(routing.events[wrong_right]) == [ok[0], "digits_collected", *ok[1:]]
    assert kinds(routing.events[timeout_right]) == [ok[0], "input_timed_out", *ok[1:]]
    assert kinds(routing.events[hangup]) == ["call_started", "call_ended"]
    assert kinds(routing.events[unknown]) == ["call_started", "call_ended"]
    assert kinds(routing.events[wrong]) == ["call_started", *["digits_collected"] * 3, "call_ended"]
    assert kinds(routing.events[timeout]) == ["call_started", *["input_timed_out"] * 3, "call_ended"]

    ended = {call_id: routing.events[call_id][-1].call_ended for call_id in ids}
    assert ended[hangup].reason == call_events_pb2.END_REASON_CALLER_HANGUP
    assert ended[hangup].during_action_id == f"{hangup}:1"
    assert ended[unknown].reason == call_events_pb2.END_REASON_SYSTEM_HANGUP
    assert ended[right].during_action_id == f"{right}:3"
    digits = [e.digits_collected.digits for e in routing.events[wrong_right][1:3]]
    assert digits == ["9", "1"]
    # deterministic event ids, answering each redelivered action once
    assert [e.envelope.event_id for e in routing.events[right]] == [
        f"{right}:1:started",
        f"{right}:2:digits",
        f"{right}:3:prompt_finished",
        f"{right}:4:ended",
    ]
    assert routing.events[right][1].envelope.causation_id == f"{right}:1"

    outcomes = {call_id: (line["outcome"], line["sms_promised"]) for call_id, line in lines.items()}
    assert outcomes == {
        right: ("hangup:completed", True),
        wrong_right: ("hangup:completed", True),
        timeout_right: ("hangup:completed", True),
        hangup: ("abandoned", False),
        unknown: ("hangup:not_in_service", False),
        wrong: ("hangup:fallback", False),
        timeout: ("hangup:fallback", False),
    }
    line = lines[wrong_right]
    assert line["plan"] == ["wrong", "right"] and line["answers"] == ["wrong", "right"]
    assert line["dialed_number"] == MENU_NUMBER and line["caller_number"].startswith("+8190")
    assert [a["action_id"] for a in line["actions"]] == [
        f"{wrong_right}:{s}" for s in (1, 1, 2, 2, 3, 3, 4, 4)
    ]
    assert [a.get("duplicate", False) for a in line["actions"]] == [False, True] * 4
    assert line["duplicate_actions"] == 4
    assert [e["kind"] for e in line["events"]] == ["started", "digits", "digits", "prompt_finished", "ended"]
    assert line["end_reason"] == "system_hangup" and line["hangup_reason"] == "completed"
    assert lines[hangup]["abandoned"] and lines[hangup]["end_reason"] == "caller_hangup"
    assert lines[unknown]["unknown_number"] and lines[unknown]["dialed_number"] == "+81399990000"

    summary = simulator.summary
    assert summary.calls == 7 and summary.sms_promised == 3
    assert summary.outcomes == {
        "hangup:completed": 3,
        "abandoned": 1,
        "hangup:not_in_service": 1,
        "hangup:fallback": 2,
    }
    assert summary.events_sent == sum(len(v) for v in routing.events.values())
    assert summary.duplicate_actions == summary.actions_received // 2
    assert routing.in_progress == 0


async def test_time_compression_scales_prompts_and_timers() -> None:
    routing = FakeRouting()
    # one timeout, then right; the Play and the Hangup of the fake routing have no prompts
    config = SimConfig(TENANT, "slow", calls=1, rate=1, speed=10, schedule=("timeout_then_right",))
    began = time.monotonic()
    await run_sim(routing, config)
    elapsed = time.monotonic() - began
    assert 0.75 <= elapsed < 1.5  # (1 s prompt + 5 s timer + 1 s prompt + 0.8 s thinking) / 10 = 0.78 s


async def test_rate_and_concurrency_are_respected_and_silent_calls_give_up() -> None:
    routing = FakeRouting(silent=True)
    config = SimConfig(TENANT, "quiet", calls=6, rate=100, concurrency=2, speed=100, answer_timeout=0.1)
    began = time.monotonic()
    simulator = await run_sim(routing, config)
    assert routing.max_in_progress == 2
    assert time.monotonic() - began >= 0.3  # three waves of two calls, each waiting 0.1 s
    assert simulator.summary.outcomes == {"gave_up": 6}
    for call_id, events in routing.events.items():
        assert kinds(events) == ["call_started", "call_ended"], call_id
        assert events[-1].call_ended.reason == call_events_pb2.END_REASON_CALLER_HANGUP


async def test_a_duration_run_stops_by_itself_and_stop_hangs_up_calls_in_progress() -> None:
    routing = FakeRouting(silent=True)
    config = SimConfig(TENANT, "dur", duration=0.3, rate=10, concurrency=50, answer_timeout=60)
    simulator = Simulator(config, SCENARIO, routing, AudioSource(1.0))
    routing.simulator = simulator
    task = asyncio.create_task(simulator.run())
    await asyncio.sleep(0.5)
    assert not task.done()  # the callers are still waiting for an answer
    simulator.stop()
    summary = await asyncio.wait_for(task, 5)
    assert summary.calls == 3  # started at 0, 0.1 and 0.2 s
    assert summary.outcomes == {"gave_up": 3}


async def test_actions_of_other_calls_or_tenants_are_ignored() -> None:
    routing = FakeRouting(tenant="someone-else")
    config = SimConfig(TENANT, "x", calls=1, rate=10, speed=100, answer_timeout=0.1, schedule=("right",))
    simulator = await run_sim(routing, config)
    assert simulator.summary.outcomes == {"gave_up": 1}
    assert simulator.summary.ignored_actions == 2
    assert simulator.summary.actions_received == 0


@pytest.mark.parametrize("bad", [{"calls": None}, {"calls": 1, "rate": 0}, {"calls": 1, "speed": -1}])
def test_bad_run_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Simulator(SimConfig(TENANT, "x", **bad), SCENARIO, FakeRouting())


async def test_each_finished_call_is_handed_to_the_hook() -> None:
    routing = FakeRouting()
    logged: list[str] = []
    config = SimConfig(TENANT, "hook", calls=3, rate=100, speed=100, schedule=("right", "unknown", "hangup"))
    simulator = Simulator(
        config, SCENARIO, routing, AudioSource(1.0), on_call_logged=lambda r: logged.append(r.outcome)
    )
    routing.simulator = simulator
    await simulator.run()
    assert sorted(logged) == ["abandoned", "hangup:completed", "hangup:not_in_service"]
