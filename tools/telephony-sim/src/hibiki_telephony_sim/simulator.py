"""Runs simulated calls at a rate and concurrency over a transport, and keeps the ground truth.

The transport is anything that can send a CallEvent keyed by call id; incoming CallActions are handed to
`Simulator.on_action` (by the Kafka adapter in production, directly by tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from hibiki.call.v1 import call_actions_pb2, call_events_pb2

from hibiki_telephony_sim.audio import AudioSource
from hibiki_telephony_sim.behaviour import (
    CallEnded,
    Caller,
    CallTransferred,
    DigitsCollected,
    Event,
    Hangup,
    InputTimedOut,
    Outcome,
    PlayAndCollect,
    Reply,
    Timing,
    Transfer,
)
from hibiki_telephony_sim.ground_truth import CallLog, GroundTruthWriter
from hibiki_telephony_sim.protocol import UnsupportedAction, action_from_proto, call_started, to_proto
from hibiki_telephony_sim.scenario import CallerSpec, Scenario, draw_callers

log = logging.getLogger("hibiki_telephony_sim")


class EventSink(Protocol):
    async def send(self, call_id: str, message: call_events_pb2.CallEvent) -> None: ...


@dataclass(frozen=True)
class SimConfig:
    tenant_id: str
    run_id: str
    calls: int | None = None  # stop after this many calls …
    duration: float | None = None  # … or after starting calls for this many seconds
    rate: float = 1.0  # calls started per second
    concurrency: int = 10  # calls in progress at most
    speed: float = 1.0  # time compression: simulated seconds per real second
    seed: int = 0
    schedule: tuple[str, ...] = ()  # behaviours in turn instead of drawing from the mix
    answer_timeout: float = 15.0  # real seconds without an action before the caller gives up
    timing: Timing = field(default_factory=Timing)


@dataclass
class Summary:
    run_id: str
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    sms_promised: int = 0
    events_sent: int = 0
    actions_received: int = 0
    duplicate_actions: int = 0
    late_actions: int = 0
    ignored_actions: int = 0
    audio_bytes: int = 0
    audio_errors: int = 0
    errors: int = 0
    elapsed_seconds: float = 0.0

    def lines(self) -> list[str]:
        rows = [
            f"telephony-sim run {self.run_id}: {self.calls} calls in {self.elapsed_seconds:.1f}s",
            *(f"  {outcome:<28} {count}" for outcome, count in sorted(self.outcomes.items())),
            f"  sms promised                 {self.sms_promised}",
            f"  events sent {self.events_sent}, actions received {self.actions_received} "
            f"(duplicates {self.duplicate_actions}, after hang-up {self.late_actions})",
        ]
        if self.audio_bytes or self.audio_errors:
            rows.append(f"  audio fetched {self.audio_bytes} bytes, fetch errors {self.audio_errors}")
        if self.errors:
            rows.append(f"  calls that failed in the simulator: {self.errors}")
        return rows

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "outcomes": dict(self.outcomes)}


def _now() -> datetime:
    return datetime.now(UTC)


def _event_fields(event: Event) -> dict[str, object]:
    if isinstance(event, DigitsCollected):
        return {"digits": event.digits, "terminated_by_key": event.terminated_by_key}
    if isinstance(event, InputTimedOut):
        return {"timeout": event.timeout}
    if isinstance(event, CallTransferred):
        return {"destination": event.destination}
    if isinstance(event, CallEnded):
        return {"reason": event.reason.value, "during_action_id": event.during_action_id}
    return {}


class _Stop:
    """Queued to a call to make its caller give up now (the simulator is stopping)."""


class Simulator:
    def __init__(
        self,
        config: SimConfig,
        scenario: Scenario,
        sink: EventSink,
        audio: AudioSource | None = None,
        ground_truth: GroundTruthWriter | None = None,
        on_call_logged: Callable[[CallLog], None] | None = None,
    ) -> None:
        if config.calls is None and config.duration is None:
            raise ValueError("give a number of calls or a duration")
        if config.rate <= 0 or config.concurrency <= 0 or config.speed <= 0:
            raise ValueError("rate, concurrency and speed must be positive")
        self.config = config
        self.scenario = scenario
        self._sink = sink
        self._audio = audio or AudioSource()
        self._ground_truth = ground_truth
        self._on_call_logged = on_call_logged
        self._active: dict[str, asyncio.Queue[call_actions_pb2.CallAction | _Stop]] = {}
        self._finished: set[str] = set()
        self._stopping = asyncio.Event()
        self.summary = Summary(config.run_id)

    # ---- incoming actions ----------------------------------------------------------------------------

    def on_action(self, message: call_actions_pb2.CallAction) -> None:
        """Hand a CallAction to its call; actions of other calls or tenants are ignored."""
        queue = self._active.get(message.call_id)
        if queue is None or message.envelope.tenant_id != self.config.tenant_id:
            if message.call_id in self._finished:
                self.summary.late_actions += 1
            else:
                self.summary.ignored_actions += 1
            return
        self.summary.actions_received += 1
        queue.put_nowait(message)

    def wants(self, call_id: str) -> bool:
        return call_id in self._active or call_id in self._finished

    def stop(self) -> None:
        """Start no more calls; callers in progress hang up at their next wait."""
        self._stopping.set()
        for queue in self._active.values():
            queue.put_nowait(_Stop())

    # ---- the run -------------------------------------------------------------------------------------

    def callers(self) -> Iterator[CallerSpec]:
        return draw_callers(
            self.scenario, run_id=self.config.run_id, seed=self.config.seed, schedule=self.config.schedule
        )

    async def run(self) -> Summary:
        config = self.config
        started = time.monotonic()
        slots = asyncio.Semaphore(config.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        for spec in self.callers():
            if config.calls is not None and spec.index >= config.calls:
                break
            due = started + spec.index / config.rate
            if config.duration is not None and spec.index / config.rate >= config.duration:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(due - time.monotonic(), 0))
            if self._stopping.is_set():
                break
            await slots.acquire()
            if self._stopping.is_set():
                slots.release()
                break
            task = asyncio.create_task(self._call(spec), name=spec.call_id)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        if tasks:
            await asyncio.gather(*tasks)
        self.summary.elapsed_seconds = time.monotonic() - started
        return self.summary

    # ---- one call ------------------------------------------------------------------------------------

    async def _call(self, spec: CallerSpec) -> None:
        config = self.config
        caller = Caller(spec, config.timing)
        record = CallLog(
            run_id=config.run_id,
            tenant_id=config.tenant_id,
            call_id=spec.call_id,
            dialed_number=spec.dialed_number,
            caller_number=spec.caller_number,
            caller_withheld=spec.withheld,
            behaviour=spec.behaviour.name,
            plan=[a.value for a in spec.behaviour.plan],
            unknown_number=spec.behaviour.unknown_number,
        )
        queue: asyncio.Queue[call_actions_pb2.CallAction | _Stop] = asyncio.Queue()
        self._active[spec.call_id] = queue
        if self._stopping.is_set():  # stopped between this call's creation and its start
            queue.put_nowait(_Stop())
        began = time.monotonic()
        sequence = 1
        try:
            occurred = _now()
            record.started_at = occurred.isoformat()
            message = call_started(
                config.tenant_id,
                spec.call_id,
                spec.dialed_number,
                spec.caller_number,
                spec.withheld,
                occurred,
            )
            await self._send(record, spec.call_id, message, "started", {})
            while not caller.ended:
                replies, cause = await self._next_replies(caller, queue, record)
                playing = time.monotonic()
                for reply in replies:
                    wait = reply.after / config.speed - (time.monotonic() - playing)
                    if wait > 0:
                        await asyncio.sleep(wait)
                    sequence += 1
                    event = to_proto(config.tenant_id, spec.call_id, sequence, reply.event, _now(), cause)
                    await self._send(
                        record, spec.call_id, event, reply.event.kind, _event_fields(reply.event)
                    )
        except asyncio.CancelledError:
            record.error = "cancelled"
            raise
        except Exception as error:
            log.exception("simulated call %s failed", spec.call_id)
            record.error = f"{type(error).__name__}: {error}"
            self.summary.errors += 1
        finally:
            del self._active[spec.call_id]
            self._finished.add(spec.call_id)
            self._drain(caller, queue, record)
            self._finish(caller, record, time.monotonic() - began)

    async def _next_replies(
        self,
        caller: Caller,
        queue: asyncio.Queue[call_actions_pb2.CallAction | _Stop],
        record: CallLog,
    ) -> tuple[list[Reply], str]:
        """Wait for the next action not seen before and the caller's replies to it (or give up)."""
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), self.config.answer_timeout)
            except TimeoutError:
                return caller.give_up(), ""
            if isinstance(message, _Stop):
                return caller.give_up(), ""
            entry: dict[str, object] = {
                "action_id": message.action_id,
                "step": message.step,
                "kind": message.WhichOneof("body") or "",
                "event_id": message.envelope.event_id,
                "received_at": _now().isoformat(),
            }
            record.actions.append(entry)
            try:
                action = action_from_proto(message)
            except UnsupportedAction as error:
                entry["error"] = str(error)
                continue
            if isinstance(action, PlayAndCollect | Hangup):
                entry.update(route_id=action.route_id, reason=action.reason)
            elif isinstance(action, Transfer):
                entry.update(route_id=action.route_id, destination=action.destination)
            if caller.has_seen(action.action_id) or caller.ended:
                entry["duplicate"] = caller.has_seen(action.action_id)
                caller.on_action(action, 0.0)
                continue
            played = await self._audio.play(action.prompts)
            record.audio_bytes += played.bytes
            record.audio_errors.extend(played.errors)
            self.summary.audio_bytes += played.bytes
            self.summary.audio_errors += len(played.errors)
            entry["prompt_seconds"] = round(played.seconds, 3)
            return caller.on_action(action, played.seconds), message.envelope.event_id

    def _drain(
        self,
        caller: Caller,
        queue: asyncio.Queue[call_actions_pb2.CallAction | _Stop],
        record: CallLog,
    ) -> None:
        """Log the actions that arrived while the call was ending (repeats, or too late to be played)."""
        while not queue.empty():
            message = queue.get_nowait()
            if isinstance(message, _Stop):
                continue
            duplicate = caller.has_seen(message.action_id)
            record.actions.append(
                {
                    "action_id": message.action_id,
                    "step": message.step,
                    "kind": message.WhichOneof("body") or "",
                    "event_id": message.envelope.event_id,
                    "received_at": _now().isoformat(),
                    "duplicate": duplicate,
                    "after_end": True,
                }
            )
            with contextlib.suppress(UnsupportedAction):
                caller.on_action(action_from_proto(message), 0.0)

    async def _send(
        self,
        record: CallLog,
        call_id: str,
        message: call_events_pb2.CallEvent,
        kind: str,
        fields: dict[str, object],
    ) -> None:
        await self._sink.send(call_id, message)
        self.summary.events_sent += 1
        record.events.append(
            {"event_id": message.envelope.event_id, "kind": kind, "sent_at": _now().isoformat(), **fields}
        )

    def _finish(self, caller: Caller, record: CallLog, seconds: float) -> None:
        record.ended_at = _now().isoformat()
        record.duration_seconds = round(seconds, 3)
        record.answers = list(caller.answers)
        record.outcome = caller.outcome_label if not record.error else "error"
        ended = [e for e in record.events if e["kind"] == "ended"]
        record.end_reason = str(ended[-1]["reason"]) if ended else ""
        record.hangup_reason = caller.hangup_reason
        record.transferred_to = caller.transferred_to
        record.abandoned = caller.outcome is Outcome.ABANDONED
        record.gave_up = caller.outcome is Outcome.GAVE_UP
        record.sms_promised = caller.sms_promised
        record.duplicate_actions = caller.duplicates
        self.summary.calls += 1
        self.summary.outcomes[record.outcome] += 1
        self.summary.sms_promised += int(caller.sms_promised)
        self.summary.duplicate_actions += caller.duplicates
        self.summary.late_actions += caller.late_actions
        if self._ground_truth is not None:
            self._ground_truth.write(record)
        if self._on_call_logged is not None:
            self._on_call_logged(record)
