"""Demo tenant provisioning against in-memory fakes of the three configuration APIs (no services needed)."""

from __future__ import annotations

import itertools
import json
import re
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from google.rpc import error_details_pb2, status_pb2
from grpc.aio import Metadata
from hibiki.guidance.v1 import guidance_service_pb2 as guidance_pb
from hibiki.routing.v1 import routing_service_pb2 as routing_pb
from hibiki.sms.v1 import sms_box_service_pb2 as sms_pb
from hibiki_devstack import demo
from hibiki_devstack.cli import busy_ports, what_to_look_at
from hibiki_devstack.provision import DemoApis, DemoProvisioner, ProvisioningFailed
from hibiki_devstack.simulators import dev_smsc_scenario
from hibiki_devstack.stack import ServiceSpec, Stack, default_services
from hibiki_telephony_sim.scenario import draw_callers, parse_scenario

TOKEN = "operator-token"


def rpc_error(
    code: grpc.StatusCode, details: str, violations: dict[str, str] | None = None
) -> grpc.aio.AioRpcError:
    trailing = Metadata()
    if violations:
        packed = AnyProto()
        packed.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations.items()
                ]
            )
        )
        status = status_pb2.Status(code=code.value[0], message=details, details=[packed])
        trailing = Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, Metadata(), trailing, details)


class Calls:
    """Counts each RPC and checks that every call carries the operator's bearer token and a deadline."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def record(self, name: str, options: dict[str, Any]) -> None:
        assert dict(options["metadata"])["authorization"] == f"Bearer {TOKEN}"
        assert options["timeout"] > 0
        self.count[name] += 1


class FakeGuidance:
    def __init__(self, calls: Calls, page_size: int = 1) -> None:
        self.calls = calls
        self.page_size = page_size
        self.audio_files: list[guidance_pb.AudioFile] = []
        self.guidances: list[guidance_pb.OriginalGuidance] = []
        self.ids = itertools.count(1)

    def _page(self, items: list[Any], token: str) -> tuple[list[Any], str]:
        start = int(token or 0)
        end = start + self.page_size
        return items[start:end], str(end) if end < len(items) else ""

    async def ListAudioFiles(self, request: Any, **options: Any) -> Any:
        self.calls.record("ListAudioFiles", options)
        matching = [a for a in self.audio_files if request.name_contains in a.name]
        items, token = self._page(matching, request.page_token)
        return guidance_pb.ListAudioFilesResponse(audio_files=items, next_page_token=token)

    async def CreateAudioFile(self, request: Any, **options: Any) -> Any:
        self.calls.record("CreateAudioFile", options)
        audio = guidance_pb.AudioFile(
            id=f"a{next(self.ids)}", name=request.name, text=request.text, revision=1
        )
        audio.duration.FromSeconds(3)
        self.audio_files.append(audio)
        return guidance_pb.CreateAudioFileResponse(audio_file=audio)

    async def ListOriginalGuidances(self, request: Any, **options: Any) -> Any:
        self.calls.record("ListOriginalGuidances", options)
        matching = [g for g in self.guidances if request.name_contains in g.name and g.type == request.type]
        items, token = self._page(matching, request.page_token)
        return guidance_pb.ListOriginalGuidancesResponse(original_guidances=items, next_page_token=token)

    async def CreateOriginalGuidance(self, request: Any, **options: Any) -> Any:
        self.calls.record("CreateOriginalGuidance", options)
        assert any(a.id == request.audio_file_id for a in self.audio_files)
        guidance = guidance_pb.OriginalGuidance(
            id=f"g{next(self.ids)}",
            type=request.type,
            name=request.name,
            speech_synthesis=request.speech_synthesis,
            audio_file_id=request.audio_file_id,
        )
        self.guidances.append(guidance)
        return guidance_pb.CreateOriginalGuidanceResponse(original_guidance=guidance)


class FakeSms:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.boxes: dict[str, sms_pb.SmsBox] = {}
        self.refuse: grpc.aio.AioRpcError | None = None

    async def GetSmsBox(self, request: Any, **options: Any) -> Any:
        self.calls.record("GetSmsBox", options)
        if request.box_number not in self.boxes:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, f"SMS box {request.box_number} does not exist")
        return sms_pb.GetSmsBoxResponse(sms_box=self.boxes[request.box_number])

    async def CreateSmsBox(self, request: Any, **options: Any) -> Any:
        self.calls.record("CreateSmsBox", options)
        if self.refuse is not None:
            raise self.refuse
        box = sms_pb.SmsBox(
            box_number=request.box_number,
            box_name=request.box_name,
            message_text=request.message_text,
            url=request.url,
            revision=1,
        )
        self.boxes[box.box_number] = box
        return sms_pb.CreateSmsBoxResponse(sms_box=box)


class FakeRouting:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.flows: dict[str, routing_pb.Flow] = {}
        self.versions: dict[str, list[routing_pb.Flow]] = {}

    async def SearchFlows(self, request: Any, **options: Any) -> Any:
        self.calls.record("SearchFlows", options)
        found = [f for f in self.flows.values() if f.dialed_number == request.dialed_number]
        return routing_pb.SearchFlowsResponse(flows=found)

    async def CreateFlow(self, request: Any, **options: Any) -> Any:
        self.calls.record("CreateFlow", options)
        flow = routing_pb.Flow()
        flow.CopyFrom(request.flow)
        flow.id, flow.revision = f"flow-{len(self.flows) + 1}", 1
        self.flows[flow.id] = flow
        return routing_pb.CreateFlowResponse(flow=flow)

    async def PublishFlow(self, request: Any, **options: Any) -> Any:
        self.calls.record("PublishFlow", options)
        flow = self.flows[request.id]
        assert request.expected_revision == flow.revision
        flow.published_version += 1
        self.versions.setdefault(flow.id, []).append(flow)
        return routing_pb.PublishFlowResponse(flow=flow, version=flow.published_version)


class FakeTenant:
    def __init__(self, page_size: int = 1) -> None:
        self.calls = Calls()
        self.guidance = FakeGuidance(self.calls, page_size)
        self.sms = FakeSms(self.calls)
        self.routing = FakeRouting(self.calls)
        self.lines: list[str] = []

    async def provision(self) -> Any:
        apis = DemoApis(self.guidance, self.routing, self.sms)  # type: ignore[arg-type]
        return await DemoProvisioner(apis, TOKEN, self.lines.append).provision()


CREATES = ("CreateAudioFile", "CreateOriginalGuidance", "CreateSmsBox", "CreateFlow", "PublishFlow")


async def test_first_provisioning_creates_the_demo_tenant_and_publishes_its_flow() -> None:
    tenant = FakeTenant()
    provisioned = await tenant.provision()

    assert {name: tenant.calls.count[name] for name in CREATES} == {
        "CreateAudioFile": 2,
        "CreateOriginalGuidance": 2,
        "CreateSmsBox": 1,
        "CreateFlow": 1,
        "PublishFlow": 1,
    }
    texts = {a.name: a.text for a in tenant.guidance.audio_files}
    assert texts == {demo.MENU.file_name: demo.MENU.text, demo.SMS_SENT.file_name: demo.SMS_SENT.text}
    kinds = {g.name: g.type for g in tenant.guidance.guidances}
    assert kinds == {
        demo.MENU.guidance_name: guidance_pb.GUIDANCE_TYPE_PB_ROUTING,
        demo.SMS_SENT.guidance_name: guidance_pb.GUIDANCE_TYPE_ANNOUNCEMENT,
    }
    assert all(g.speech_synthesis for g in tenant.guidance.guidances)

    (live,) = tenant.routing.versions[provisioned.flow_id]
    assert provisioned.live_version == 1 and live.dialed_number == demo.DIALED_NUMBER
    nodes = {node.id: node for node in live.nodes}
    menu = nodes[live.entry_node_id].menu
    assert menu.prompt_guidance_id == provisioned.menu_guidance_id
    assert nodes[menu.digit_targets["1"]].send_sms.box_number == demo.SMS_BOX.number
    assert (
        nodes[menu.digit_targets["1"]].send_sms.announcement_guidance_id == provisioned.sms_sent_guidance_id
    )
    assert nodes[menu.digit_targets["2"]].transfer.destination == demo.OPERATOR_NUMBER
    system_default = routing_pb.GUIDANCE_CHOICE_KIND_SYSTEM_DEFAULT
    assert (menu.invalid_input_guidance.kind, menu.input_timeout_guidance.kind) == (
        system_default,
        system_default,
    )
    box = tenant.sms.boxes[demo.SMS_BOX.number]
    assert (box.box_name, box.url) == (demo.SMS_BOX.name, demo.SMS_BOX.url)
    assert any("synthesized (3.0 s of speech)" in line for line in tenant.lines)


async def test_provisioning_again_creates_nothing_and_keeps_what_exists() -> None:
    tenant = FakeTenant()
    first = await tenant.provision()
    # An operator edits the demo box between runs; a restart must not undo it.
    tenant.sms.boxes[demo.SMS_BOX.number].message_text = "変更済み"
    before = Counter({name: tenant.calls.count[name] for name in CREATES})
    tenant.lines.clear()

    second = await tenant.provision()

    assert second == first
    assert Counter({name: tenant.calls.count[name] for name in CREATES}) == before
    assert tenant.sms.boxes[demo.SMS_BOX.number].message_text == "変更済み"
    assert len(tenant.routing.versions[first.flow_id]) == 1
    assert all(" kept" in line or "is live" in line for line in tenant.lines), tenant.lines


async def test_a_flow_left_unpublished_is_published_without_a_second_flow() -> None:
    tenant = FakeTenant()
    await tenant.provision()
    (flow,) = tenant.routing.flows.values()
    flow.published_version = 0  # as if the last run stopped between CreateFlow and PublishFlow
    tenant.routing.versions.clear()

    provisioned = await tenant.provision()

    assert len(tenant.routing.flows) == 1 and tenant.calls.count["CreateFlow"] == 1
    assert provisioned.live_version == 1 and len(tenant.routing.versions[flow.id]) == 1


async def test_an_audio_file_left_without_its_guidance_is_reused() -> None:
    tenant = FakeTenant(page_size=50)
    await tenant.provision()
    tenant.guidance.guidances.clear()  # as if the last run stopped after synthesizing

    await tenant.provision()

    assert tenant.calls.count["CreateAudioFile"] == 2 and tenant.calls.count["CreateOriginalGuidance"] == 4


async def test_a_refusal_names_the_step_and_the_field() -> None:
    tenant = FakeTenant()
    tenant.sms.refuse = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, "invalid SMS box", {"url": "must be an http(s) URL"}
    )

    with pytest.raises(ProvisioningFailed) as failure:
        await tenant.provision()

    assert str(failure.value) == (
        f"create SMS box {demo.SMS_BOX.number}: "
        "INVALID_ARGUMENT: invalid SMS box; url: must be an http(s) URL"
    )
    assert tenant.calls.count["CreateFlow"] == 0  # nothing after the failed step


async def test_an_unreachable_service_is_a_provisioning_failure() -> None:
    tenant = FakeTenant()

    async def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect")

    tenant.guidance.ListOriginalGuidances = unavailable  # type: ignore[method-assign]
    with pytest.raises(ProvisioningFailed, match="list original guidances: UNAVAILABLE: failed to connect"):
        await tenant.provision()


def test_simulated_callers_reach_all_four_networks_of_the_smsc_scenario() -> None:
    """The demo's callers are on docomo, au (KDDI), SoftBank and Rakuten by the SMSC simulator's dev scenario,
    which is also the service's carrier table in `make run`; some are on no supported network."""
    rules = json.loads(dev_smsc_scenario().read_text(encoding="utf-8"))["rules"]

    def carrier(number: str) -> str | None:
        matching = [rule for rule in rules if number.startswith(rule["prefix"])]
        return max(matching, key=lambda rule: len(rule["prefix"]))["carrier"] if matching else None

    carriers = {carrier(number) for number in demo.caller_numbers(seed=0)}
    assert carriers == {"docomo", "kddi", "softbank", "rakuten", "none", None}


def test_simulated_callers_are_valid_numbers_and_the_scenario_is_the_simulators() -> None:
    numbers = demo.caller_numbers(seed=1)
    assert numbers == demo.caller_numbers(seed=1) and len(numbers) == demo.CALLER_POOL_SIZE
    mobile = re.compile(r"^\+81[789]0[1-9]\d{7}$")
    landline = re.compile(r"^\+813[1-9]\d{7}$")
    assert all(mobile.match(n) or landline.match(n) for n in numbers)
    # every range of the mix is represented: refusing handsets, expiry, an unsupported carrier, landlines
    for prefix in ("+8190100", "+8190200", "+8190600", "+8180", "+8170"):
        assert any(n.startswith(prefix) for n in numbers), prefix
    assert any(landline.match(n) for n in numbers)

    scenario = parse_scenario(demo.traffic_scenario())
    assert set(scenario.numbers) == {demo.DIALED_NUMBER}
    assert scenario.numbers[demo.DIALED_NUMBER].keys.right == demo.SMS_DIGIT
    callers = list(itertools.islice(draw_callers(scenario, run_id="r", seed=0), 200))
    assert {c.behaviour.name for c in callers} >= {"right", "wrong_then_right", "hangup", "unknown"}


def test_the_start_up_guide_shows_the_token_and_the_reporting_endpoints() -> None:
    specs = {spec.name: spec for spec in default_services(100)}
    lines = "\n".join(
        what_to_look_at(
            specs,
            {"operator": "tok-1"},
            Path("/data"),
            "2026-11-26",
            "simulated callers: 0.5 calls/s",
            sip_port=5160,
        )
    )
    assert "sip:+81312345678@127.0.0.1:5160" in lines
    assert "HIBIKI_TOKEN=tok-1" in lines and "HIBIKI_REPORTING_ENDPOINT=127.0.0.1:50154" in lines
    assert "http://127.0.0.1:9204/reports/daily.csv?from=2026-11-26&to=2026-11-26" in lines
    # The gRPC examples are `hibiki` commands (grpcurl is not something the project installs).
    assert "hibiki report daily --from 2026-11-26 --to 2026-11-26 --dialed-number +81312345678" in lines
    assert 'hibiki report trace-caller "$CALLER"' in lines and "/data/ground-truth.jsonl" in lines
    assert "grpcurl" not in lines and "jq " not in lines  # neither is installed by the project
    assert "http://127.0.0.1:9201/metrics" in lines


def test_busy_ports_finds_a_port_in_use() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert busy_ports([port]) == [port]
    assert busy_ports([port]) == []


def test_busy_ports_ignores_connections_left_in_time_wait_by_a_stopped_run() -> None:
    # The server side closes first, as the SMSC simulator and the HTTP servers do at Ctrl-C: its end of the
    # connection stays in TIME_WAIT for a minute after the listener is gone.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            client.recv(1)  # the server's FIN
        assert busy_ports([port]) == [port]  # still listening
    assert busy_ports([port]) == []


def test_busy_ports_finds_a_udp_port_in_use_for_sip() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert busy_ports([], udp=[port]) == [port]
        assert busy_ports([port]) == []  # TCP alone does not see it


def test_a_spec_with_a_command_runs_that_command(tmp_path: Path) -> None:
    stack = Stack(tmp_path, {"GREETING": "hello"}, say=lambda _line: None)
    spec = ServiceSpec(
        "echo",
        "unused_module",
        env={"NAME": "demo"},
        command=[sys.executable, "-c", "import os; print(os.environ['GREETING'], os.environ['NAME'])"],
    )
    running = stack.start(spec)
    assert running.process.wait(30) == 0
    assert running.log_path.read_text().strip() == "hello demo"


def test_run_refuses_busy_ports_with_one_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        finished = subprocess.run(
            [str(Path(sys.executable).with_name("hibiki-dev")), "run", "--data-dir", str(tmp_path / "var"),
             "--broker-port", str(port), "--port-offset", "3217"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert finished.returncode == 1
    assert (
        f"✗ ports already in use on 127.0.0.1: {port}" in finished.stdout
        and "--port-offset N" in finished.stdout
    )
    assert finished.stdout.rstrip().endswith("stopped.") and "Traceback" not in finished.stderr
    assert not (tmp_path / "var").exists()


async def test_a_kept_flow_that_no_longer_plays_the_demo_guidances_is_reported_not_changed() -> None:
    tenant = FakeTenant()
    first = await tenant.provision()
    # guidance-tts's data was deleted, routing's was not: the guidances are created again with new ids
    tenant.guidance.guidances.clear()
    tenant.guidance.audio_files.clear()
    tenant.lines.clear()

    second = await tenant.provision()

    (warning,) = [line for line in tenant.lines if line.lstrip().startswith("!")]
    assert second.menu_guidance_id in warning and second.sms_sent_guidance_id in warning
    flow = tenant.routing.flows[first.flow_id]
    assert first.menu_guidance_id in {node.menu.prompt_guidance_id for node in flow.nodes}
    assert tenant.calls.count["PublishFlow"] == 1


async def test_an_intact_demo_tenant_gives_no_warning() -> None:
    tenant = FakeTenant()
    await tenant.provision()
    tenant.lines.clear()
    await tenant.provision()
    assert not [line for line in tenant.lines if line.lstrip().startswith("!")]
