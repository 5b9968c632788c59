"""`hibiki-dev run` (what `make run` starts) as a process: the demo tenant is provisioned through the APIs,
simulated callers fill the report within a minute and a half, Ctrl-C stops everything, and a restart on the
same data keeps the demo tenant as it is."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import grpc
import psutil
import pytest
from hibiki.guidance.v1 import guidance_service_pb2 as guidance_pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as guidance_grpc
from hibiki.reporting.v1 import report_service_pb2 as report_pb
from hibiki.reporting.v1 import report_service_pb2_grpc as report_grpc
from hibiki_devstack import demo
from hibiki_devstack.cli import UP_LINE, busy_ports
from hibiki_devstack.infra import free_port
from hibiki_devstack.sip_phone import SipPhone
from hibiki_runtime.phone import written_form

GRPC_GUIDANCE, GRPC_REPORTING, HTTP_REPORTING, SMPP, SIP = 50051, 50054, 9104, 2775, 5060


def free_port_offset() -> int:
    """An offset that moves every port of the run onto ports free right now (never the defaults)."""
    for _ in range(50):
        offset = random.randrange(2000, 6000)
        ports = [p + offset for p in (*range(50051, 50056), *range(9101, 9106), SMPP)]
        if not busy_ports(ports, udp=[SIP + offset]):
            return offset
    raise RuntimeError("no free port offset found")


@dataclass
class DevRun:
    process: asyncio.subprocess.Process
    data_dir: Path
    offset: int
    output: list[str]

    async def wait_for(self, text: str, within_seconds: float) -> None:
        """Read the output until a line contains `text`; fails with the output so far."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within_seconds
        while not any(text in line for line in self.output):
            remaining = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), max(remaining, 0.1))
            except TimeoutError:
                line = b""
            if not line:
                pytest.fail(f"no {text!r} within {within_seconds:.0f}s; output:\n" + "".join(self.output))
            self.output.append(line.decode())

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def provisioning_lines(self) -> list[str]:
        parts = ("✓ audio file ", "✓ guidance ", "✓ SMS box ", "✓ flow ", "✓ published ")
        return [line.strip() for line in self.output if line.strip().startswith(parts)]

    async def interrupt(self, within_seconds: float = 60) -> int:
        """Ctrl-C: SIGINT to hibiki-dev alone (its children are in their own process groups)."""
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGINT)
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), within_seconds)
        self.output.append(rest.decode())
        return await asyncio.wait_for(self.process.wait(), 10)


async def start_dev_run(data_dir: Path, *args: str) -> DevRun:
    offset = free_port_offset()
    script = Path(sys.executable).with_name("hibiki-dev")
    process = await asyncio.create_subprocess_exec(
        str(script), "run", "--data-dir", str(data_dir), "--port-offset", str(offset),
        "--broker-port", str(free_port()), *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    return DevRun(process, data_dir, offset, [])


def dev_token(data_dir: Path, role: str) -> str:
    tokens = json.loads((data_dir / "dev-tokens.json").read_text())
    return next(token for token, entry in tokens.items() if entry["role"] == role)


async def delete_menu_guidance(run: DevRun) -> grpc.StatusCode:
    """Try to delete the demo menu's guidance, as an operator; the status code of the attempt."""
    metadata = (("authorization", f"Bearer {dev_token(run.data_dir, 'operator')}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{GRPC_GUIDANCE + run.offset}") as channel:
        api = guidance_grpc.GuidanceServiceStub(channel)
        listed = await api.ListOriginalGuidances(
            guidance_pb.ListOriginalGuidancesRequest(name_contains=demo.MENU.guidance_name), metadata=metadata
        )
        (menu,) = listed.original_guidances
        try:
            await api.DeleteOriginalGuidance(
                guidance_pb.DeleteOriginalGuidanceRequest(id=menu.id), metadata=metadata
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def call_the_printed_address(run: DevRun, work: Path, caller: str) -> int:
    """Dial the SIP URI `make run` printed, press 1 during the menu, hear the thanks; the call's outcome."""
    printed = next(line for line in run.output if "call it: sip:" in line)
    uri = printed.split("call it: ", 1)[1].split()[0]
    assert uri == f"sip:{demo.DIALED_NUMBER}@127.0.0.1:{SIP + run.offset}", printed
    async with SipPhone(work / "softphone", caller) as phone:
        await phone.dial(uri)
        await phone.established(timeout=20)
        await asyncio.sleep(1.5)
        await phone.press("1")  # barge-in: the key stops the menu
        await phone.closed(timeout=30)  # the flow thanks the caller and hangs up
    metadata = (("authorization", f"Bearer {dev_token(run.data_dir, 'viewer')}"),)
    request = report_pb.ListCallsRequest(range=tokyo_days(), caller_number=caller)
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(f"127.0.0.1:{GRPC_REPORTING + run.offset}") as channel:
        reports = report_grpc.ReportServiceStub(channel)
        while True:
            calls = (await reports.ListCalls(request, metadata=metadata, timeout=10)).calls
            if (
                calls and calls[0].outcome != report_pb.CALL_OUTCOME_IN_PROGRESS
            ) or time.monotonic() > deadline:
                assert len(calls) == 1, calls
                return int(calls[0].outcome)
            await asyncio.sleep(0.5)


def tokyo_days() -> report_pb.DateRange:
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    # a run that crosses midnight in Tokyo counts on two days
    return report_pb.DateRange(start_date=str(today - timedelta(days=1)), end_date=str(today))


async def demo_number_totals(run: DevRun) -> dict[str, int]:
    metadata = (("authorization", f"Bearer {dev_token(run.data_dir, 'viewer')}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{GRPC_REPORTING + run.offset}") as channel:
        reply = await report_grpc.ReportServiceStub(channel).GetDailyReport(
            report_pb.GetDailyReportRequest(range=tokyo_days(), dialed_number=demo.DIALED_NUMBER),
            metadata=metadata,
            timeout=10,
        )
    fields = ("calls", "abandoned_calls", "sms_requested", "sms_accepted", "sms_delivered", "sms_undelivered")
    totals = {name: sum(getattr(row, name) for row in reply.rows) for name in fields}
    totals["sms_rejected"] = sum(r.count for row in reply.rows for r in row.sms_rejected)
    return totals


async def test_make_run_provisions_the_demo_tenant_fills_the_report_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    run = await start_dev_run(data_dir, "--traffic-rate", "2", "--timeout", "120")
    children: list[psutil.Process] = []
    try:
        await run.wait_for(UP_LINE, within_seconds=120)
        await run.wait_for("  logs: ", within_seconds=5)  # the last line of the start-up guide
        children = run.children()
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for part in ("tansu", "smsc_simulator", "hibiki_guidance_tts", "hibiki_routing", "hibiki_sms_gateway",
                     "hibiki_reporting", "hibiki_media_gateway", "hibiki-telephony-sim"):  # fmt: skip
            assert part in names, part
        # A softphone calls the SIP address printed at start-up, presses 1 and gets the SMS.
        assert (
            await call_the_printed_address(run, tmp_path, "+819077700001") == report_pb.CALL_OUTCOME_SMS_SENT
        )
        lines = run.provisioning_lines()
        kinds = ["audio", "guidance", "audio", "guidance", "SMS", "flow", "published"]
        assert [line.split()[1] for line in lines] == kinds, lines
        assert not any("kept" in line for line in lines) and lines[-1].endswith("version 1 is live"), lines
        # routing recorded the published flow's guidances in guidance-tts: the menu cannot be deleted in use
        assert await delete_menu_guidance(run) == grpc.StatusCode.FAILED_PRECONDITION

        deadline = time.monotonic() + 90
        totals: dict[str, int] = {}
        while time.monotonic() < deadline:
            totals = await demo_number_totals(run)
            if totals["calls"] and totals["sms_accepted"] and totals["sms_delivered"]:
                break
            await asyncio.sleep(2)
        assert totals["calls"] >= 1 and totals["sms_requested"] >= 1, totals
        assert totals["sms_accepted"] >= 1 and totals["sms_delivered"] >= 1, totals

        # the CSV command printed at start-up works with the printed token
        today = tokyo_days().end_date
        url = f"http://127.0.0.1:{HTTP_REPORTING + run.offset}/reports/daily.csv?from={today}&to={today}"
        operator = (
            next(line for line in run.output if "HIBIKI_TOKEN=" in line).split("HIBIKI_TOKEN=", 1)[1].strip()
        )
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": f"Bearer {operator}"}) as response,
        ):
            assert response.status == 200
            assert written_form(demo.DIALED_NUMBER) in (await response.read()).decode("utf-8-sig")
    finally:
        exit_code = await run.interrupt()
    assert exit_code == 0, "".join(run.output)
    assert run.output[-1].rstrip().endswith("stopped.")
    left = [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert not left, [child.cmdline() for child in left]

    # Restarted on the same data: the demo tenant is kept as it is, nothing is created or published again.
    again = await start_dev_run(data_dir, "--no-traffic", "--timeout", "120")
    try:
        await again.wait_for(UP_LINE, within_seconds=120)
        await again.wait_for("  logs: ", within_seconds=5)
        lines = again.provisioning_lines()
        assert [line.split()[1] for line in lines] == ["guidance", "guidance", "SMS", "flow", "published"], (
            lines
        )
        assert all(line.endswith("kept") for line in lines[:-1]) and lines[-1].endswith("version 1 is live")
        assert "no simulated traffic" in "".join(again.output)
        assert not [line for line in again.output if line.lstrip().startswith("!")], again.output
    finally:
        assert await again.interrupt() == 0, "".join(again.output)
