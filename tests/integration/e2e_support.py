"""The whole system for the end-to-end tests: processes on a private broker, the public gRPC provisioning,
simulated load, and the figures the ground truth and the SMSC record say the report must show.

The E2E module runs its own broker and tokens (tenant `tenant-e2e`), so processes left running by other test
modules on the session broker can neither answer these calls nor count them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import phonenumbers
from google.protobuf.message import DecodeError, Message
from hibiki.guidance.v1 import guidance_service_pb2 as guidance_pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as guidance_grpc
from hibiki.reporting.v1 import report_service_pb2 as report_pb
from hibiki.reporting.v1 import report_service_pb2_grpc as report_grpc
from hibiki.routing.v1 import routing_service_pb2 as routing_pb
from hibiki.routing.v1 import routing_service_pb2_grpc as routing_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_results_pb2
from hibiki.sms.v1.sms_requests_pb2 import SmsRequest
from hibiki_devstack.infra import Postgres, free_port, wait_for_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_reporting.domain.calendar import report_date
from hibiki_runtime.events import SMS_REQUESTS, SMS_RESULTS
from hibiki_sms_gateway.smsc_simulator.scenario import Behaviour as SmscBehaviour
from hibiki_sms_gateway.smsc_simulator.scenario import Scenario as SmscScenario
from hibiki_telephony_sim.ground_truth import read_ground_truth

from tests.integration.conftest import start_service
from tests.integration.kafka_io import produce, read_until

E2E_TENANT = "tenant-e2e"
TOKENS = {
    "e2e-operator": {"tenant_id": E2E_TENANT, "role": "operator"},
    "e2e-viewer": {"tenant_id": E2E_TENANT, "role": "viewer"},
    "e2e-platform": {"tenant_id": E2E_TENANT, "role": "platform"},
}
OPERATOR = (("authorization", "Bearer e2e-operator"),)
VIEWER = (("authorization", "Bearer e2e-viewer"),)

SMS_NUMBER = "+81356780001"  # menu: 1 → SMS box, 2 → operator
OPERATOR_NUMBER = "+81356780002"  # the same menu; its callers want the operator
UNKNOWN_NUMBER = "+81356789999"  # no flow
OPERATOR_DESTINATION = "+81356780900"
UNSUPPORTED_CALLER = "+817099900001"  # a mobile number of a carrier that cannot receive (格安SIM without SMS)
MENU_TEXT = "お電話ありがとうございます。URLをSMSで受け取る方は1を、オペレーターは2を押してください。"
SMS_SENT_TEXT = "SMSをお送りしました。ご利用ありがとうございました。"
BOX_NUMBER = "501"
BOX_TEXT = "ご予約はこちらのページからお手続きください。"
BOX_URL = "https://example.jp/e2e/reserve"
DELIVERED_CALLER = "+819011110001"  # the seed's caller whose 到達 the caller trace shows
SMSC_RULES = {
    "rules": [
        # Simulated callers are +8190 and eight random digits: the carrier accepts (送信完了), then the
        # handset reports delivery (到達). Receipts also flow through the kill -9 tests: the SMSC keeps each
        # one until sms-gateway has stored it, so none is lost to a crash.
        {"prefix": "+8190", "carrier": "docomo", "behaviour": "deliver", "delay": 0.2},
        {"prefix": "+817099", "carrier": "none"},
    ]
}
UNCERTAIN_REASONS = frozenset({"outcome_uncertain", "uncertain_after_crash"})
T = TypeVar("T")
M = TypeVar("M", bound=Message)


# ---- processes --------------------------------------------------------------------------------------


@dataclass
class System:
    """The running parts of the E2E system and where to reach them."""

    stack: Stack
    postgres: Postgres
    smsc_port: int
    smsc_scenario: Path
    smsc_record: Path
    specs: dict[str, ServiceSpec] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.specs[name].grpc_port}"

    def smsc_received(self) -> list[dict[str, Any]]:
        if not self.smsc_record.exists():
            return []
        return [json.loads(line) for line in self.smsc_record.read_text(encoding="utf-8").splitlines()]

    def kill_9(self, spec: ServiceSpec) -> None:
        """SIGKILL the process of `spec`: no drain, no commit, no goodbye to the consumer group."""
        alive = [s for s in self.stack.services if s.spec is spec and s.process.poll() is None]
        assert len(alive) == 1, [
            (s.spec.name, s.process.pid, s.process.returncode) for s in self.stack.services
        ]
        running = alive[0]
        running.process.kill()
        running.process.wait(10)

    async def restart(self, spec: ServiceSpec) -> None:
        """Start `spec` (again) on its database; returns once it serves gRPC, the event loop running."""
        running = self.stack.start(spec)
        await asyncio.to_thread(self.stack.wait_healthy, [running], 90)

    async def add_replica(self, name: str) -> ServiceSpec:
        """Another process of service `name`: same database, same consumer group, its own ports."""
        spec = replace(self.specs[name], grpc_port=free_port(), http_port=free_port())
        await self.restart(spec)
        return spec


def start_system(stack: Stack, postgres: Postgres, work: Path) -> System:
    """The SMSC simulator and the four services, each service on its own PostgreSQL database."""
    system = System(stack, postgres, free_port(), work / "e2e-smsc.json", work / "e2e-smsc-received.jsonl")
    system.smsc_scenario.write_text(json.dumps(SMSC_RULES))
    smsc_args = ["--port", str(system.smsc_port), "--scenario", str(system.smsc_scenario)]
    smsc = stack.start(
        ServiceSpec(
            "smsc-simulator",
            "hibiki_sms_gateway.smsc_simulator",
            args=[*smsc_args, "--record", str(system.smsc_record)],
        )
    )
    wait_for_port(system.smsc_port, 30, smsc.process)
    tts = start_service(stack, postgres, "guidance-tts", "hibiki_guidance_tts", HIBIKI_SYNTHESIS_WORKERS="1")
    system.specs["guidance-tts"] = tts
    system.specs["sms-gateway"] = start_service(
        stack,
        postgres,
        "sms-gateway",
        "hibiki_sms_gateway",
        HIBIKI_SMPP_PORT=str(system.smsc_port),
        HIBIKI_SMS_CARRIER_TABLE_FILE=str(system.smsc_scenario),
        HIBIKI_SMS_BACKOFF_INITIAL_SECONDS="0.05",
        # A submit cut off by kill -9 is reported within the test's patience; every other submit here
        # settles in milliseconds, far below it (a replica's sweep never sees another's submit in flight).
        HIBIKI_SMS_UNCERTAIN_AFTER_SECONDS="8",
        HIBIKI_SMS_SWEEP_INTERVAL_SECONDS="0.5",
    )
    # Validating and publishing check that the flow's guidances and SMS boxes exist, as in production.
    system.specs["routing"] = start_service(
        stack,
        postgres,
        "routing",
        "hibiki_routing",
        HIBIKI_GUIDANCE_ADDRESS=f"127.0.0.1:{tts.grpc_port}",
        HIBIKI_GUIDANCE_TOKENS=json.dumps({E2E_TENANT: "e2e-platform"}),
        HIBIKI_SMS_ADDRESS=system.address("sms-gateway"),
        HIBIKI_SMS_TOKENS=json.dumps({E2E_TENANT: "e2e-platform"}),
    )
    system.specs["reporting"] = start_service(stack, postgres, "reporting", "hibiki_reporting")
    return system


# ---- provisioning through the public APIs -----------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    menu_guidance_id: str
    sms_sent_guidance_id: str
    invalid_input_guidance_id: str
    input_timeout_guidance_id: str
    flow_ids: tuple[str, ...]


async def _system_guidance(
    guidance: guidance_grpc.GuidanceServiceAsyncStub, kind: guidance_pb.GuidanceType.ValueType
) -> guidance_pb.OriginalGuidance:
    listed = await guidance.ListOriginalGuidances(
        guidance_pb.ListOriginalGuidancesRequest(type=kind), metadata=OPERATOR
    )
    (system,) = [g for g in listed.original_guidances if g.system]
    return system


async def _guidance_from_text(
    guidance: guidance_grpc.GuidanceServiceAsyncStub,
    kind: guidance_pb.GuidanceType.ValueType,
    name: str,
    text: str,
) -> str:
    audio = await guidance.CreateAudioFile(
        guidance_pb.CreateAudioFileRequest(name=name, text=text), metadata=OPERATOR
    )
    created = await guidance.CreateOriginalGuidance(
        guidance_pb.CreateOriginalGuidanceRequest(
            type=kind, name=name, speech_synthesis=True, audio_file_id=audio.audio_file.id
        ),
        metadata=OPERATOR,
    )
    return str(created.original_guidance.id)


def menu_flow(dialed_number: str, guidances: Provisioned) -> routing_pb.Flow:
    """1 → SMS box then a thank-you, 2 → operator; the seed's miss/timeout guidances; 3 misses → hang up."""
    menu = routing_pb.MenuNode(
        prompt_guidance_id=guidances.menu_guidance_id,
        digit_targets={"1": "sms", "2": "operator"},
        invalid_input_guidance=routing_pb.GuidanceChoice(
            kind=routing_pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE,
            guidance_id=guidances.invalid_input_guidance_id,
        ),
        input_timeout_guidance=routing_pb.GuidanceChoice(
            kind=routing_pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE,
            guidance_id=guidances.input_timeout_guidance_id,
        ),
    )
    menu.first_digit_timeout.FromTimedelta(timedelta(seconds=5))
    sms = routing_pb.SendSmsNode(
        box_number=BOX_NUMBER, announcement_guidance_id=guidances.sms_sent_guidance_id
    )
    return routing_pb.Flow(
        name=f"E2E {dialed_number}",
        dialed_number=dialed_number,
        entry_node_id="menu",
        nodes=[
            routing_pb.Node(id="menu", name="メインメニュー", menu=menu),
            routing_pb.Node(id="sms", name="SMS送信", send_sms=sms),
            routing_pb.Node(
                id="operator",
                name="オペレーター",
                transfer=routing_pb.TransferNode(destination=OPERATOR_DESTINATION),
            ),
        ],
    )


async def provision(system: System) -> Provisioned:
    """Guidances from text, the SMS box and a published flow per dialed number, all over gRPC."""
    async with (
        grpc.aio.insecure_channel(system.address("guidance-tts")) as tts_channel,
        grpc.aio.insecure_channel(system.address("routing")) as routing_channel,
        grpc.aio.insecure_channel(system.address("sms-gateway")) as sms_channel,
    ):
        guidance = guidance_grpc.GuidanceServiceStub(tts_channel)
        routing = routing_grpc.RoutingServiceStub(routing_channel)
        boxes = box_grpc.SmsBoxServiceStub(sms_channel)
        invalid = await _system_guidance(guidance, guidance_pb.GUIDANCE_TYPE_INVALID_INPUT)
        timeout = await _system_guidance(guidance, guidance_pb.GUIDANCE_TYPE_INPUT_TIMEOUT)
        guidances = Provisioned(
            menu_guidance_id=await _guidance_from_text(
                guidance, guidance_pb.GUIDANCE_TYPE_PB_ROUTING, "E2Eメニュー", MENU_TEXT
            ),
            sms_sent_guidance_id=await _guidance_from_text(
                guidance, guidance_pb.GUIDANCE_TYPE_ANNOUNCEMENT, "E2E送信済み", SMS_SENT_TEXT
            ),
            invalid_input_guidance_id=invalid.id,
            input_timeout_guidance_id=timeout.id,
            flow_ids=(),
        )
        await boxes.CreateSmsBox(
            box_pb.CreateSmsBoxRequest(
                box_number=BOX_NUMBER, box_name="E2E予約", message_text=BOX_TEXT, url=BOX_URL
            ),
            metadata=OPERATOR,
        )
        flow_ids = []
        for dialed in (SMS_NUMBER, OPERATOR_NUMBER):
            created = await routing.CreateFlow(
                routing_pb.CreateFlowRequest(flow=menu_flow(dialed, guidances)), metadata=OPERATOR
            )
            validated = await routing.ValidateFlow(
                routing_pb.ValidateFlowRequest(id=created.flow.id), metadata=OPERATOR
            )
            assert validated.valid, validated.problems
            await routing.PublishFlow(
                routing_pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision),
                metadata=OPERATOR,
            )
            flow_ids.append(created.flow.id)
    return replace(guidances, flow_ids=tuple(flow_ids))


async def guidance_text(system: System, guidance_id: str) -> str:
    """The text a guidance of the tenant speaks."""
    async with grpc.aio.insecure_channel(system.address("guidance-tts")) as channel:
        guidance = guidance_grpc.GuidanceServiceStub(channel)
        found = await guidance.GetOriginalGuidance(
            guidance_pb.GetOriginalGuidanceRequest(id=guidance_id), metadata=OPERATOR
        )
        audio = await guidance.GetAudioFile(
            guidance_pb.GetAudioFileRequest(id=found.original_guidance.audio_file_id), metadata=OPERATOR
        )
        return str(audio.audio_file.text)


async def audio_bytes(system: System, guidance_id: str) -> int:
    """Size of a guidance's telephony audio as guidance-tts streams it to a media server."""
    platform = (("authorization", "Bearer e2e-platform"),)
    request = guidance_pb.StreamAudioRequest(
        guidance_id=guidance_id, format=guidance_pb.AUDIO_FORMAT_WAV_MULAW_8K
    )
    async with grpc.aio.insecure_channel(system.address("guidance-tts")) as channel:
        stream = guidance_grpc.GuidanceServiceStub(channel).StreamAudio(request, metadata=platform)
        return sum([len(chunk.data) async for chunk in stream])


# ---- simulated calls --------------------------------------------------------------------------------


def caller_scenario(
    numbers: Iterable[str] = (SMS_NUMBER, OPERATOR_NUMBER), callers: Sequence[str] = ()
) -> dict[str, Any]:
    """The telephony simulator's scenario: which digit each number's callers want, as JSON."""
    keys = {
        SMS_NUMBER: {"right": "1", "wrong": "9", "sms": True},
        OPERATOR_NUMBER: {"right": "2", "wrong": "9", "sms": False},
    }
    raw: dict[str, Any] = {
        "numbers": {number: keys[number] for number in numbers},
        "unknown_numbers": [UNKNOWN_NUMBER],
    }
    if callers:
        raw["caller_numbers"] = list(callers)
    return raw


async def simulate_calls(
    bootstrap: str,
    system: System,
    ground_truth: Path,
    run_id: str,
    scenario: Mapping[str, Any],
    *,
    calls: int,
    rate: float,
    schedule: Sequence[str] = (),
    speed: float = 20,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run `hibiki-telephony-sim` as a process over the real broker; its summary and ground-truth lines.

    A process of its own, as a media-server adapter would be: it fetches every prompt's audio from
    guidance-tts (no cache, so fetches also run while guidance-tts is down and back), and its gRPC traffic
    stays out of this process, which forks the services it restarts. Callers wait up to two minutes for an
    action: kill -9 and a consumer-group rejoin stall a partition for tens of seconds, and a caller who gave
    up would change the figures under test.
    """
    scenario_file = ground_truth.with_suffix(".scenario.json")
    scenario_file.write_text(json.dumps(scenario))
    summary_file = ground_truth.with_suffix(".summary.json")
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("hibiki-telephony-sim")),
        "--bootstrap", bootstrap, "--tenant", E2E_TENANT, "--scenario", str(scenario_file),
        "--calls", str(calls), "--rate", str(rate), "--concurrency", str(calls), "--speed", str(speed),
        "--seed", "8", "--run-id", run_id, "--answer-timeout", "120",
        "--guidance-endpoint", system.address("guidance-tts"), "--no-audio-cache",
        "--ground-truth", str(ground_truth), "--summary-json", str(summary_file),
        *(["--schedule", ",".join(schedule)] if schedule else []),
        env={**os.environ, "HIBIKI_SIM_TOKEN": "e2e-platform"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await process.communicate()
    except asyncio.CancelledError:
        process.send_signal(signal.SIGINT)  # callers in progress hang up, the ground truth is written
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    return json.loads(summary_file.read_text()), read_ground_truth(ground_truth)


async def replay(bootstrap: str, topic: str, run_id: str) -> int:
    """Produce every record of a simulator run on `topic` once more, as a redelivery after a crash would.

    Returns how many records were replayed. Keys and values are unchanged, so consumers see the same event
    ids again and must absorb them.
    """
    records = await read_until(bootstrap, topic, lambda _: False, within_seconds=2)
    mine = [r for r in records if (r.key or b"").startswith(run_id.encode())]
    await produce(bootstrap, topic, [(r.key.decode(), r.value) for r in mine])
    return len(mine)


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """Run `work` while the block runs; cancelled if the block fails before awaiting it."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---- what the report must say -----------------------------------------------------------------------

CALL_OUTCOMES = {
    "abandoned": report_pb.CALL_OUTCOME_ABANDONED,
    "transferred": report_pb.CALL_OUTCOME_TRANSFERRED,
    "hangup:not_in_service": report_pb.CALL_OUTCOME_NOT_IN_SERVICE,
    "hangup:fallback": report_pb.CALL_OUTCOME_COMPLETED,
}


def expected_outcome(line: Mapping[str, Any]) -> report_pb.CallOutcome.ValueType:
    """The report's outcome of a simulated call, from what its caller experienced."""
    if line["sms_promised"]:
        return report_pb.CALL_OUTCOME_SMS_SENT
    return CALL_OUTCOMES[line["outcome"]]


def expected_sms_status(recipient: str, rules: SmscScenario, uncertain: bool = False) -> str:
    """The status the report must give an SMS, by the SMSC's behaviour for the recipient's number range."""
    if uncertain:
        return "failed"
    # The simulator draws +8190 and eight random digits; 090-0xxx-xxxx is not an allocated mobile number.
    if not phonenumbers.is_valid_number(phonenumbers.parse(recipient)):
        return "rejected:invalid_number"
    rule = rules.rule_for(recipient)
    if rule.carrier == "none":
        return "rejected:unsupported_carrier"
    if rule.behaviour == SmscBehaviour.DELIVER:
        return "delivered"
    if rule.behaviour in (SmscBehaviour.UNDELIVER, SmscBehaviour.EXPIRE):
        return "undelivered"
    return "accepted"


Figures = tuple[int, int, int, int, int, int, dict[str, int], int]


def expected_daily_figures(
    lines: Iterable[Mapping[str, Any]], sms_status: Callable[[str], str]
) -> dict[tuple[str, str], Figures]:
    """(day, dialed number) → calls, abandoned, SMS requested, accepted, delivered, undelivered, rejected,
    failed."""
    rows: dict[tuple[str, str], list[Any]] = {}
    for line in lines:
        day = report_date(datetime.fromisoformat(line["started_at"])).isoformat()
        row = rows.setdefault((day, line["dialed_number"]), [0, 0, 0, 0, 0, 0, Counter(), 0])
        row[0] += 1
        row[1] += int(line["outcome"] == "abandoned")
        if not line["sms_promised"]:
            continue
        row[2] += 1
        status = sms_status(line["caller_number"])
        row[3] += int(status in ("accepted", "delivered", "undelivered"))
        row[4] += int(status == "delivered")
        row[5] += int(status == "undelivered")
        if status.startswith("rejected:"):
            row[6][status.removeprefix("rejected:")] += 1
        row[7] += int(status == "failed")
    return {key: (*value[:6], dict(value[6]), value[7]) for key, value in rows.items()}


def report_figures(row: report_pb.DailyReportRow) -> Figures:
    rejected = {
        sms_results_pb2.RejectReason.Name(r.reason).removeprefix("REJECT_REASON_").lower(): int(r.count)
        for r in row.sms_rejected
    }
    return (
        row.calls, row.abandoned_calls, row.sms_requested, row.sms_accepted, row.sms_delivered,
        row.sms_undelivered, rejected, row.sms_failed,
    )  # fmt: skip


def expected_menu_funnel(lines: Iterable[Mapping[str, Any]]) -> tuple[int, int, int, int]:
    """The menu route's reached, invalid inputs, timeouts and abandoned, from the callers' answers."""
    menu_calls = [line for line in lines if not line["unknown_number"]]
    answers = Counter(answer for line in menu_calls for answer in line["answers"])
    abandoned = sum(1 for line in menu_calls if line["outcome"] == "abandoned")
    return len(menu_calls), answers["wrong"], answers["timeout"], abandoned


def report_days(lines: Iterable[Mapping[str, Any]]) -> report_pb.DateRange:
    days = sorted(report_date(datetime.fromisoformat(line["started_at"])) for line in lines)
    return report_pb.DateRange(start_date=days[0].isoformat(), end_date=days[-1].isoformat())


async def daily_report(
    reports: report_grpc.ReportServiceAsyncStub, days: report_pb.DateRange
) -> dict[tuple[str, str], Figures]:
    reply = await reports.GetDailyReport(report_pb.GetDailyReportRequest(range=days), metadata=VIEWER)
    return {(row.date, row.dialed_number): report_figures(row) for row in reply.rows}


async def call_outcomes(
    reports: report_grpc.ReportServiceAsyncStub, days: report_pb.DateRange
) -> dict[str, report_pb.CallOutcome.ValueType]:
    """Every call of the range by id, with the outcome the report gives it."""
    outcomes: dict[str, report_pb.CallOutcome.ValueType] = {}
    token = ""
    while True:
        page = await reports.ListCalls(
            report_pb.ListCallsRequest(range=days, page_size=100, page_token=token), metadata=VIEWER
        )
        outcomes.update({call.call_id: call.outcome for call in page.calls})
        token = page.next_page_token
        if not token:
            return outcomes


async def eventually(
    probe: Callable[[], Awaitable[T]], expected: T, within_seconds: float, interval: float = 0.5
) -> T | None:
    """Poll `probe` until it returns `expected` or time runs out; returns the last answer."""
    deadline = time.monotonic() + within_seconds
    got: T | None = None
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):  # a service restarting answers UNAVAILABLE
            got = await probe()
            if got == expected:
                return got
        if time.monotonic() > deadline:
            return got
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class SmsTraffic:
    """What crossed sms.requests and sms.results for the tenant."""

    request_ids_by_call: dict[str, set[str]]
    recipient_of_request: dict[str, str]
    settled: set[str]  # request ids with a result: the gateway sent, refused or gave up on them
    uncertain_failures: set[str]  # request ids reported SmsFailed with an uncertain-submission reason
    results: dict[str, list[str]]  # request id → "kind reason" of each result record, for messages

    def results_for(self, recipient: str) -> list[str]:
        return [
            result
            for request_id, to in self.recipient_of_request.items()
            if to == recipient
            for result in self.results.get(request_id, [])
        ]

    def uncertain_recipients(self) -> set[str]:
        known = self.recipient_of_request
        return {known[r] for r in self.uncertain_failures if r in known}


def _decoded(records: Iterable[Any], message_type: type[M]) -> Iterator[M]:
    for record in records:
        with contextlib.suppress(DecodeError):  # poison records share the topics
            yield message_type.FromString(record.value or b"")


async def sms_traffic(bootstrap: str) -> SmsTraffic:
    """Both SMS topics of the private broker, read from the beginning."""
    requests = await read_until(bootstrap, SMS_REQUESTS, lambda _: False, within_seconds=1)
    results = await read_until(bootstrap, SMS_RESULTS, lambda _: False, within_seconds=1)
    by_call: dict[str, set[str]] = {}
    recipients: dict[str, str] = {}
    for request in _decoded(requests, SmsRequest):
        if request.envelope.tenant_id == E2E_TENANT and request.HasField("sms_requested"):
            by_call.setdefault(request.sms_requested.call_id, set()).add(request.request_id)
            recipients[request.request_id] = request.sms_requested.recipient
    settled, uncertain = set(), set()
    described: dict[str, list[str]] = {}
    for result in _decoded(results, sms_results_pb2.SmsResult):
        kind = result.WhichOneof("body") or ""
        body = getattr(result, kind) if kind else None
        reason = getattr(body, "reason", "")
        described.setdefault(result.request_id, []).append(f"{kind} {reason}".strip())
        settled.add(result.request_id)
        if result.sms_failed.reason in UNCERTAIN_REASONS:
            uncertain.add(result.request_id)
    return SmsTraffic(by_call, recipients, settled, uncertain, described)


async def settled_sms_traffic(bootstrap: str, requests: int, within_seconds: float) -> SmsTraffic:
    """The SMS traffic once `requests` requests exist and each has a result (or time ran out); receipts may
    still be on their way."""
    deadline = time.monotonic() + within_seconds
    while True:
        traffic = await sms_traffic(bootstrap)
        asked = set(traffic.recipient_of_request)
        if (len(asked) >= requests and asked <= traffic.settled) or time.monotonic() > deadline:
            return traffic
        await asyncio.sleep(0.5)
