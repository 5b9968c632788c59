"""media-gateway: calls answered per second, calls carried at once with audio intact, key → next prompt.

Calls come from the bench's SIP caller (`hibiki_bench.sip.caller`, PJSIP in processes of its own) over
loopback UDP to a real media-gateway process, which records each call (CallStarted in PostgreSQL through its
outbox), asks routing over the broker, fetches the prompts from guidance-tts and plays them over RTP. The
baseline is a bare PJSIP answerer (`hibiki_bench.sip.answerer`): the same library and settings, no service.

Packet timing comes from a tap on the loopback interface with kernel timestamps (`hibiki_bench.sip.tap`),
so it is the sender's timing, not the moment the caller's process got round to reading. Two limits of the
pjsua2 wheel shape the loads (see bench/README.md): one process holds at most 4 calls (PJSUA_MAX_CALLS),
and PJSIP reuses a closed socket's slot only 500 ms later (64 slots, two sockets per call), so a process
that starts more than ~60 calls a second runs out and aborts; the burst is offered below that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psutil
from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.guidance.v1 import guidance_service_pb2 as guidance_pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as guidance_grpc
from hibiki.routing.v1 import routing_service_pb2 as routing_pb
from hibiki.routing.v1 import routing_service_pb2_grpc as routing_grpc
from hibiki_devstack.infra import free_port
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS

from hibiki_bench.environment import OPERATOR, PLATFORM_TOKEN, TENANT
from hibiki_bench.kafka_load import TopicWatcher
from hibiki_bench.media_stats import (
    FRAME_SECONDS,
    AudioCheck,
    Digits,
    KeyToPrompt,
    audio_check,
    largest_intact,
    lead_in_frames,
    pair_keys,
    spacing,
    wav_samples,
)
from hibiki_bench.sip.endpoint import MAX_CALLS  # calls one process holds (gateway and answerer too)
from hibiki_bench.stats import percentile

HOLD_NUMBER = "+81355550201"  # a menu with a long prompt: callers listen
MENU_NUMBER = "+81355550202"  # two menus with the same short prompt; "1" on each leads to the other
AUDIO_LIMIT_MS = 5.0  # p99 of |packet spacing − 20 ms| for audio to count as intact
LONG_TEXT = (
    "お電話ありがとうございます。こちらはヒビキ予約センターです。"
    "ただいまの時間は、ご予約の確認と変更、営業時間のご案内、店舗の場所のご案内を承っております。"
    "ご予約の確認は、お手元に予約番号をご用意のうえ、このままお待ちください。"
    "営業時間は、平日は午前九時から午後八時まで、土曜日と日曜日は午前十時から午後六時までです。"
    "祝日は休業とさせていただいております。お電話が混み合っている場合は、しばらくお待ちいただくことがございます。"
)
MENU_TEXT = "番号を押してください。"
RTP_RANGE = 200  # ports of one process's RTP block (100 calls' worth: ports of ended calls are reused)
CALLER_SECONDS_MARGIN = 30.0


class CallerFailed(RuntimeError):
    """A SIP caller or the bare answerer did not run as asked; the message has its log's last lines."""


# -- ports -------------------------------------------------------------------------------------------------
@dataclass
class PortPlan:
    """RTP blocks that do not overlap, each starting at an even free port (RTP even, RTCP odd)."""

    taken: list[tuple[int, int]] = field(default_factory=list)

    def rtp_block(self, size: int = RTP_RANGE) -> int:
        for _ in range(100):
            first = free_port() & ~1
            last = first + size - 1
            if last <= 65000 and all(last < lo or first > hi for lo, hi in self.taken):
                self.taken.append((first, last))
                return first
        raise RuntimeError("no free block of RTP ports")


@dataclass(frozen=True)
class Far:
    """The far end the caller dials: a SIP port and the RTP block its packets come from."""

    sip_port: int
    rtp_port: int
    rtp_range: int = RTP_RANGE

    def uri(self, number: str) -> str:
        return f"sip:{number}@127.0.0.1:{self.sip_port}"

    @property
    def tap(self) -> list[int]:
        return [self.rtp_port, self.rtp_port + self.rtp_range - 1]


# -- provisioning ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompts:
    long_file: Path  # the long prompt as the gateway plays it (μ-law WAV), for the bare answerer
    long_seconds: float
    menu_lead_in: float  # seconds before the first audible frame of the short prompt


async def _guidance(api: guidance_grpc.GuidanceServiceAsyncStub, name: str, text: str) -> str:
    audio = await api.CreateAudioFile(
        guidance_pb.CreateAudioFileRequest(name=name, text=text), metadata=OPERATOR
    )
    created = await api.CreateOriginalGuidance(
        guidance_pb.CreateOriginalGuidanceRequest(
            type=guidance_pb.GUIDANCE_TYPE_PB_ROUTING,
            name=name,
            speech_synthesis=True,
            audio_file_id=audio.audio_file.id,
        ),
        metadata=OPERATOR,
    )
    return str(created.original_guidance.id)


def _menu(node_id: str, name: str, prompt_id: str, on_one: str) -> routing_pb.Node:
    """A menu whose "1" leads to `on_one`; any other input ends the call."""
    menu = routing_pb.MenuNode(
        prompt_guidance_id=prompt_id, digit_targets={"1": on_one}, fallback_node_id="bye"
    )
    return routing_pb.Node(id=node_id, name=name, menu=menu)


def _flows(long_id: str, menu_id: str) -> list[routing_pb.Flow]:
    bye = routing_pb.Node(
        id="bye", name="終了", hangup=routing_pb.HangupNode(announcement_guidance_id=menu_id)
    )
    hold = routing_pb.Flow(
        name="ベンチ長いガイダンス",
        dialed_number=HOLD_NUMBER,
        entry_node_id="long",
        nodes=[_menu("long", "長いガイダンス", long_id, "bye"), bye],
    )
    menus = routing_pb.Flow(
        name="ベンチメニュー",
        dialed_number=MENU_NUMBER,
        entry_node_id="a",
        nodes=[_menu("a", "メニューa", menu_id, "b"), _menu("b", "メニューb", menu_id, "a"), bye],
    )
    return [hold, menus]


async def provision(tts_grpc: int, tts_http: int, routing_port: int, work_dir: Path) -> Prompts:
    """The two guidances (synthesized by guidance-tts), the two flows (published through routing)."""
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{tts_grpc}") as tts_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{routing_port}") as routing_channel,
    ):
        guidance = guidance_grpc.GuidanceServiceStub(tts_channel)
        long_id = await _guidance(guidance, "ベンチ長文", LONG_TEXT)
        menu_id = await _guidance(guidance, "ベンチメニュー", MENU_TEXT)
        routing = routing_grpc.RoutingServiceStub(routing_channel)
        for flow in _flows(long_id, menu_id):
            created = await routing.CreateFlow(routing_pb.CreateFlowRequest(flow=flow), metadata=OPERATOR)
            await routing.PublishFlow(
                routing_pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision),
                metadata=OPERATOR,
            )
    headers = {"Authorization": f"Bearer {PLATFORM_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        files = {}
        for name, audio_id in (("long", long_id), ("menu", menu_id)):
            url = f"http://127.0.0.1:{tts_http}/audio/{audio_id}.wav?format=mulaw"
            async with http.get(url) as response:
                response.raise_for_status()
                files[name] = await response.read()
    long_file = work_dir / "prompt-long.wav"
    long_file.write_bytes(files["long"])
    return Prompts(
        long_file=long_file,
        long_seconds=len(wav_samples(files["long"])) / 8000,
        menu_lead_in=lead_in_frames(wav_samples(files["menu"])) * FRAME_SECONDS,
    )


# -- caller and answerer processes ---------------------------------------------------------------------
def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def run_callers(jobs: Sequence[dict[str, Any]], work_dir: Path, seconds: float) -> list[dict[str, Any]]:
    """Run one caller process per job at once; their results, or CallerFailed (a process that does not
    finish within `seconds` + a margin is killed)."""
    stamp = f"{time.monotonic_ns()}"
    processes = []
    for index, job in enumerate(jobs):
        job_file = work_dir / f"caller-{stamp}-{index}.json"
        job_file.write_text(json.dumps({**job, "seconds": seconds}))
        out, log = job_file.with_suffix(".out"), work_dir / f"caller-{stamp}-{index}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hibiki_bench.sip.caller", str(job_file), str(out),
                stdout=output, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        processes.append((process, out, log))
    try:
        await asyncio.wait_for(
            asyncio.gather(*(process.wait() for process, _, _ in processes)), seconds + CALLER_SECONDS_MARGIN
        )
    except TimeoutError:
        raise CallerFailed(
            f"a SIP caller did not finish within {seconds + CALLER_SECONDS_MARGIN:.0f}s; last lines:\n"
            + "\n".join(_tail(log) for _, _, log in processes)
        ) from None
    finally:
        for process, _, _ in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    results = []
    for process, out, log in processes:
        if not out.exists():
            raise CallerFailed(
                f"the SIP caller exited with {process.returncode} without a result:\n{_tail(log)}"
            )
        result = json.loads(out.read_text())
        if "error" in result:
            raise CallerFailed(f"the SIP caller failed: {result['error']}\n{_tail(log)}")
        results.append(result)
    return results


@contextlib.asynccontextmanager
async def bare_answerer(ports: PortPlan, work_dir: Path, play: Path | None = None) -> AsyncIterator[Far]:
    """The baseline: a bare PJSIP answerer process on free ports, stopped (SIGTERM, then kill) afterwards."""
    far = Far(free_port(), ports.rtp_block())
    ready = work_dir / f"answerer-{far.sip_port}.ready"
    log = work_dir / f"answerer-{far.sip_port}.log"
    args = [
        "--sip-port", str(far.sip_port), "--rtp-port", str(far.rtp_port), "--rtp-range", str(far.rtp_range),
        "--ready", str(ready), *(["--play", str(play)] if play else []),
    ]  # fmt: skip
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hibiki_bench.sip.answerer", *args,
            stdout=output, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            if process.returncode is not None or time.monotonic() > deadline:
                raise CallerFailed(f"the bare SIP answerer did not start:\n{_tail(log)}")
            await asyncio.sleep(0.05)
        yield far
        if process.returncode is not None:
            raise CallerFailed(f"the bare SIP answerer exited with {process.returncode}:\n{_tail(log)}")
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _caller_jobs(
    ports: PortPlan, far: Far, number: str, calls: int, mode: str, number_base: int, **job: Any
) -> list[dict[str, Any]]:
    """Jobs for as many caller processes as `calls` needs (4 each); the first one runs the packet tap."""
    jobs = []
    for index in range(math.ceil(calls / MAX_CALLS)):
        count = min(MAX_CALLS, calls - index * MAX_CALLS)
        jobs.append(
            {
                "mode": mode,
                "sip_port": free_port(),
                "rtp_port": ports.rtp_block(),
                "rtp_range": RTP_RANGE,
                "target": far.uri(number),
                "number_base": number_base + index * MAX_CALLS,
                "tap": far.tap if index == 0 else None,
                "calls": count,
                **job,
            }
        )
    return jobs


# -- CPU of processes over a window of wall-clock time ------------------------------------------------
class CpuSampler:
    """Samples the CPU time of processes every 0.2 s in a thread, to read the cores used over a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.time()
            for name, process in self._processes.items():
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    children = sum(c.cpu_times().user + c.cpu_times().system for c in process.children(True))
                    self.samples[name].append((now, times.user + times.system + children))

    def cores(self, name: str, began: float, ended: float) -> float | None:
        inside = [(t, cpu) for t, cpu in self.samples.get(name, []) if began <= t <= ended]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- measurements --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Burst:
    answered_per_second: float
    answer_p50_ms: float
    answer_p99_ms: float
    not_answered: Counter[int]  # SIP status → calls


def _burst_of(result: dict[str, Any]) -> Burst:
    calls = result["calls"]
    answered = [(invited, answered) for invited, answered, _ in calls if answered is not None]
    if len(answered) < 2:
        raise CallerFailed(f"only {len(answered)} of {len(calls)} calls were answered: {calls[:5]}")
    setup = [(a - i) * 1000 for i, a in answered]
    span = max(a for _, a in answered) - min(i for i, _, _ in calls)
    refused = Counter(status for _, answered_at, status in calls if answered_at is None)
    return Burst(len(answered) / span, percentile(setup, 0.5), percentile(setup, 0.99), refused)


async def burst(far: Far, ports: PortPlan, work_dir: Path, total: int, per_second: float) -> Burst:
    """`total` calls to the long-prompt number, 4 at once at most, started at `per_second` at most, each
    hung up once answered."""
    (job,) = _caller_jobs(ports, far, HOLD_NUMBER, 1, "burst", 0)
    job.update(total=total, concurrency=MAX_CALLS, per_second=per_second, tap=None)
    (result,) = await run_callers([job], work_dir, total / per_second * 3 + 20)
    return _burst_of(result)


@dataclass(frozen=True)
class Hold:
    calls: int
    answered: int
    check: AudioCheck | None  # None when no call got a stream
    caller_clock_p99_ms: float  # the caller's own media clock: its tick spacing (control)
    least_audible: float  # the smallest share of 20 ms level polls in which a call heard sound
    window: tuple[float, float]


async def hold(far: Far, ports: PortPlan, work_dir: Path, calls: int, listen_seconds: float) -> Hold:
    """`calls` calls at once to the long prompt; `listen_seconds` of listening once all hear it."""
    jobs = _caller_jobs(ports, far, HOLD_NUMBER, calls, "hold", 1000, listen_seconds=listen_seconds,
                        sound_within=10.0)  # fmt: skip
    results = await run_callers(jobs, work_dir, listen_seconds + 45)
    per_call = [call for result in results for call in result["calls"]]
    answered = [call for call in per_call if call["answered"]]
    if "streams" not in results[0]:
        raise CallerFailed(f"audio timing needs the packet tap: {results[0].get('tap_error', 'no tap')}")
    streams = results[0]["streams"]
    check = audio_check(calls, streams) if streams else None
    ticks = results[0]["clock_ticks"]
    clock = spacing((t, index) for index, t in enumerate(ticks)).deviations_ms
    return Hold(
        calls=calls,
        answered=len(answered),
        check=check,
        caller_clock_p99_ms=percentile(clock, 0.99) if clock else float("nan"),
        least_audible=min((call["audible"] for call in answered), default=0.0),
        window=(results[0]["window"][0], results[0]["window"][1]),
    )


@dataclass(frozen=True)
class KeyTimes:
    pairs: list[KeyToPrompt]
    presses: int
    unpaired: int


def _event_key(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
    try:
        event = call_events_pb2.CallEvent.FromString(record.value or b"")
    except DecodeError:
        return None
    if event.envelope.tenant_id != TENANT or event.WhichOneof("body") not in {
        "call_started",
        "digits_collected",
    }:
        return None
    return event.envelope.event_id


def _action_key(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
    try:
        action = call_actions_pb2.CallAction.FromString(record.value or b"")
    except DecodeError:
        return None
    return action.envelope.event_id if action.envelope.tenant_id == TENANT else None


async def key_to_prompt(
    far: Far, ports: PortPlan, work_dir: Path, bootstrap: str, presses: int, prompts: Prompts
) -> KeyTimes:
    """4 calls to the menus, each pressing "1" `presses` times once the menu has played; the times of each
    key, of its DigitsCollected and of routing's next action on the broker, and of the next prompt."""
    (job,) = _caller_jobs(ports, far, MENU_NUMBER, MAX_CALLS, "dtmf", 2000, presses=presses, key="1",
                          quiet_seconds=0.5, stagger=0.4)  # fmt: skip
    async with (
        TopicWatcher(bootstrap, CALL_EVENTS, _event_key) as events,
        TopicWatcher(bootstrap, CALL_ACTIONS, _action_key) as actions,
    ):
        (result,) = await run_callers([job], work_dir, presses * 6.0 + 30)
        await asyncio.sleep(1.0)  # the last actions reach the watchers
    if "tap" not in result:
        raise CallerFailed(f"key → prompt needs the packet tap: {result.get('tap_error', 'no tap')}")
    started: dict[str, str] = {}  # caller number → call id
    digits: dict[str, list[Digits]] = {}
    for record in events.records.values():
        event = call_events_pb2.CallEvent.FromString(record.value or b"")
        if event.WhichOneof("body") == "call_started":
            started[event.call_started.caller_number] = event.call_id
        else:
            occurred = event.envelope.occurred_at.ToNanoseconds() / 1e9
            digits.setdefault(event.call_id, []).append(
                Digits(event.envelope.event_id, occurred, record.timestamp / 1000)
            )
    caused: dict[str, float] = {}
    for record in actions.records.values():
        action = call_actions_pb2.CallAction.FromString(record.value or b"")
        caused.setdefault(action.envelope.causation_id, record.timestamp / 1000)
    pairs: list[KeyToPrompt] = []
    pressed = unpaired = 0
    for call in result["calls"]:
        port = str(call["rtp_port"])
        keys = result["tap"]["keys"].get(port, [])
        pressed += len(keys)
        call_id = started.get(call["number"])
        if call_id is None:
            unpaired += len(keys)
            continue
        found, missing = pair_keys(
            keys, result["tap"]["onsets"].get(port, []), digits.get(call_id, []), caused, prompts.menu_lead_in
        )
        pairs += found
        unpaired += missing
    return KeyTimes(pairs, pressed, unpaired)


async def wait_for_idle_lines(http_port: int, within: float = 30.0) -> None:
    """Until media-gateway reports no call in progress (ended calls are released before the next step)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{http_port}/metrics") as response:
                    text = await response.text()
            except aiohttp.ClientConnectionError as error:
                raise RuntimeError(f"media-gateway stopped answering (see its log): {error}") from None
            active = [
                line for line in text.splitlines() if line.startswith("hibiki_media_gateway_calls_active ")
            ]
            if active and float(active[0].split()[1]) == 0:
                await asyncio.sleep(0.5)  # PJSIP frees the line shortly after the switchboard forgets it
                return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"media-gateway still has calls in progress after {within:.0f}s")


def gateway_env(far: Far, tts_http: int) -> dict[str, str]:
    tenants = {TENANT: {"numbers": [HOLD_NUMBER, MENU_NUMBER], "guidance_token": PLATFORM_TOKEN}}
    return {
        "HIBIKI_SIP_PORT": str(far.sip_port),
        "HIBIKI_RTP_PORT": str(far.rtp_port),
        "HIBIKI_RTP_PORT_RANGE": str(far.rtp_range),
        "HIBIKI_GUIDANCE_URL": f"http://127.0.0.1:{tts_http}",
        "HIBIKI_MEDIA_TENANTS": json.dumps(tenants),
        "HIBIKI_MEDIA_INSTANCE_NAME": f"bench-{os.getpid()}",
    }


# -- the phase -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaMeasurements:
    burst: Burst
    bare_burst: Burst
    holds: dict[int, Hold]
    bare_holds: dict[int, Hold]
    gateway_cores: dict[int, float | None]  # CPU of media-gateway while N calls listened
    keys: KeyTimes


@dataclass(frozen=True)
class MediaPlan:
    burst_calls: int
    burst_per_second: float
    hold_steps: tuple[int, ...]
    listen_seconds: float
    presses: int


async def _warm_up(far: Far, ports: PortPlan, work_dir: Path, within: float = 90.0) -> None:
    """One call at a time until a call hears its prompt: the gateway's call.actions consumer has joined and
    the long prompt is in its cache."""
    deadline = time.monotonic() + within
    while True:
        heard = await hold(far, ports, work_dir, 1, 0.5)
        if heard.answered and heard.least_audible > 0:
            return
        if time.monotonic() > deadline:
            raise CallerFailed(f"no call to media-gateway heard its prompt within {within:.0f}s")
        await asyncio.sleep(1.0)


async def measure(
    far: Far,
    gateway_pid: int,
    gateway_http: int,
    bootstrap: str,
    prompts: Prompts,
    work_dir: Path,
    plan: MediaPlan,
    say: Any,
) -> MediaMeasurements:
    ports = PortPlan([(far.rtp_port, far.rtp_port + far.rtp_range - 1)])
    await _warm_up(far, ports, work_dir)
    await wait_for_idle_lines(gateway_http)
    say(
        f"media-gateway: burst of {plan.burst_calls} calls offered at {plan.burst_per_second:.0f}/s, "
        "then the bare answerer"
    )
    gateway_burst = await burst(far, ports, work_dir, plan.burst_calls, plan.burst_per_second)
    await wait_for_idle_lines(gateway_http)
    async with bare_answerer(ports, work_dir) as bare:
        bare_burst = await burst(bare, ports, work_dir, plan.burst_calls, plan.burst_per_second)
    holds: dict[int, Hold] = {}
    bare_holds: dict[int, Hold] = {}
    cores: dict[int, float | None] = {}
    steps = ", ".join(map(str, plan.hold_steps))
    say(
        f"media-gateway: {steps} calls at once listening to a prompt ({prompts.long_seconds:.0f}s) for "
        f"{plan.listen_seconds:.0f}s each, each step then on the bare answerer"
    )
    # Step by step, the gateway and then the bare answerer: both see about the same load from the rest of
    # the machine.
    async with bare_answerer(ports, work_dir, play=prompts.long_file) as bare:
        with CpuSampler({"media-gateway": gateway_pid}) as cpu:
            for calls in plan.hold_steps:
                holds[calls] = await hold(far, ports, work_dir, calls, plan.listen_seconds)
                cores[calls] = cpu.cores("media-gateway", *holds[calls].window)
                await wait_for_idle_lines(gateway_http)
                bare_holds[calls] = await hold(bare, ports, work_dir, calls, plan.listen_seconds)
                await asyncio.sleep(1.0)  # the bare answerer's lines are free again
    say(f"media-gateway: {MAX_CALLS} calls pressing 1 in the menu {plan.presses} times each")
    keys = await key_to_prompt(far, ports, work_dir, bootstrap, plan.presses, prompts)
    return MediaMeasurements(gateway_burst, bare_burst, holds, bare_holds, cores, keys)


def intact(holds: dict[int, Hold]) -> int:
    """The largest step whose calls were all answered with audio intact (see media_stats.largest_intact)."""
    return largest_intact({calls: h.check for calls, h in holds.items()}, AUDIO_LIMIT_MS)
