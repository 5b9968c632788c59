"""Caller experience end to end: dry-run, caller rejection and tracked short links (broker, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.reporting.v1 import report_service_pb2 as report_pb
from hibiki.reporting.v1 import report_service_pb2_grpc as report_grpc
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port, wait_for_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_reporting.domain.calendar import report_date
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, SMS_REQUESTS, SMS_RESULTS, new_envelope

from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until

DIALED = "+81355550077"
CALLER = "+819011112222"
BLOCKED = "+819099998888"
OPERATOR = (("authorization", "Bearer token-a-operator"),)
VIEWER = (("authorization", "Bearer token-a-viewer"),)
INVALID_TEXT = "入力が間違っています。案内をお聞きいただきもう一度入力してください。"
TIMEOUT_TEXT = "入力が確認できません。案内をお聞きいただきもう一度入力してください。"


def seed_flow() -> pb.Flow:
    """The seed's menu: 1 = SMS box 300; mistakes re-prompt with the seed's default guidances.

    Withheld and blocklisted callers hear an announcement and are hung up; callers whose number cannot
    receive SMS key in a mobile number.
    """
    return pb.Flow(
        name="資料請求窓口",
        dialed_number=DIALED,
        entry_node_id="menu",
        caller_rejection=pb.CallerRejection(
            reject_withheld=True, reject_blocklisted=True, announcement_guidance_id="g-rejected"
        ),
        nodes=[
            pb.Node(
                id="menu",
                name="メインメニュー",
                menu=pb.MenuNode(
                    prompt_guidance_id="g-menu", digit_targets={"1": "sms"}, fallback_node_id="sorry"
                ),
            ),
            pb.Node(
                id="sms",
                send_sms=pb.SendSmsNode(
                    box_number="300",
                    announcement_guidance_id="g-sent",
                    mobile_number_capture=pb.MobileNumberCapture(prompt_guidance_id="g-keyin"),
                ),
            ),
            pb.Node(id="sorry", hangup=pb.HangupNode(announcement_guidance_id="g-sorry")),
        ],
    )


@pytest.fixture(scope="module")
def services(postgres: Postgres, stack: Stack) -> Iterator[tuple[ServiceSpec, ServiceSpec]]:
    routing = start_service(stack, postgres, "routing", "hibiki_routing")
    reporting = start_service(stack, postgres, "reporting", "hibiki_reporting")
    yield routing, reporting
    stack.stop_module("hibiki_routing")
    stack.stop_module("hibiki_reporting")


@pytest.fixture(scope="module")
async def routing_api(services: tuple[ServiceSpec, ServiceSpec]) -> AsyncIterator[pb_grpc.RoutingServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{services[0].grpc_port}") as channel:
        yield pb_grpc.RoutingServiceStub(channel)


@pytest.fixture(scope="module")
async def report_api(
    services: tuple[ServiceSpec, ServiceSpec],
) -> AsyncIterator[report_grpc.ReportServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{services[1].grpc_port}") as channel:
        yield report_grpc.ReportServiceStub(channel)


@pytest.fixture(scope="module")
async def live_flow(routing_api: pb_grpc.RoutingServiceStub) -> pb.Flow:
    created = await routing_api.CreateFlow(pb.CreateFlowRequest(flow=seed_flow()), metadata=OPERATOR)
    published = await routing_api.PublishFlow(
        pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision), metadata=OPERATOR
    )
    return published.flow


def prompts(step: pb.DryRunStep) -> list[str]:
    body = step.action.WhichOneof("body")
    return [p.text or p.guidance_id for p in getattr(step.action, body).prompts]


async def test_dry_run_of_wrong_digit_timeout_right_digit_returns_the_seed_reprompts(
    routing_api: pb_grpc.RoutingServiceStub, live_flow: pb.Flow
) -> None:
    request = pb.DryRunFlowRequest(
        id=live_flow.id,
        version=1,
        inputs=[
            pb.ScriptedInput(digits="7"),
            pb.ScriptedInput(timeout=Empty()),
            pb.ScriptedInput(digits="1"),
        ],
        caller_number=CALLER,
    )
    run = await routing_api.DryRunFlow(request, metadata=VIEWER)

    assert [(s.step, s.answered, s.WhichOneof("output")) for s in run.steps] == [
        (1, "", "action"),
        (2, "7", "action"),
        (3, "timeout", "action"),
        (4, "1", "sms_request"),
        (5, "1", "action"),
    ]
    assert [prompts(s) for s in run.steps[:3]] == [
        ["g-menu"],
        [INVALID_TEXT, "g-menu"],
        [TIMEOUT_TEXT, "g-menu"],
    ]
    defaults = [s.action.play_and_collect.prompts[0].guidance_id for s in run.steps[1:3]]
    assert defaults == ["system:invalid_input", "system:input_timeout"]  # audio in guidance-tts
    reasons = [s.action.play_and_collect.reason for s in run.steps[:3]]
    assert reasons == [
        call_actions_pb2.PROMPT_REASON_INITIAL,
        call_actions_pb2.PROMPT_REASON_INVALID_INPUT,
        call_actions_pb2.PROMPT_REASON_TIMEOUT,
    ]
    sms = run.steps[3].sms_request.sms_requested
    assert (sms.box_number, sms.recipient, sms.dialed_number) == ("300", CALLER, DIALED)
    assert (run.steps[4].action.hangup.reason, prompts(run.steps[4])) == ("completed", ["g-sent"])
    assert run.call_ended and run.inputs_used == 3 and not run.steps[0].action.HasField("envelope")

    withheld = await routing_api.DryRunFlow(
        pb.DryRunFlowRequest(id=live_flow.id, caller_withheld=True), metadata=VIEWER
    )
    assert [(s.action.hangup.reason, prompts(s)) for s in withheld.steps] == [
        ("rejected_withheld", ["g-rejected"])
    ]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await routing_api.DryRunFlow(
            pb.DryRunFlowRequest(id=live_flow.id, inputs=[pb.ScriptedInput(digits="1x")]), metadata=VIEWER
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "inputs[0].digits" in str(
        bad.value.details()
    )


def call_event(call_id: str, tag: str, **body: Message) -> tuple[str, call_events_pb2.CallEvent]:
    ((name, value),) = body.items()
    event = call_events_pb2.CallEvent(call_id=call_id, **{name: value})
    event.envelope.CopyFrom(
        new_envelope(TENANT, value, event_id=f"{call_id}:{tag}", occurred_at=datetime.now(UTC))
    )
    return call_id, event


def started(call_id: str, caller: str, withheld: bool = False) -> tuple[str, call_events_pb2.CallEvent]:
    body = call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=caller, caller_withheld=withheld)
    return call_event(call_id, "started", call_started=body)


def ended(call_id: str) -> tuple[str, call_events_pb2.CallEvent]:
    body = call_events_pb2.CallEnded(during_action_id=f"{call_id}:1")
    return call_event(call_id, "ended", call_ended=body)


async def test_withheld_and_blocklisted_callers_are_rejected_and_reported_as_rejected(
    kafka: Broker,
    routing_api: pb_grpc.RoutingServiceStub,
    report_api: report_grpc.ReportServiceStub,
    live_flow: pb.Flow,
) -> None:
    await routing_api.AddBlockedNumber(
        pb.AddBlockedNumberRequest(blocked_number=pb.BlockedNumber(number=BLOCKED, note="迷惑電話")),
        metadata=OPERATOR,
    )
    bootstrap = kafka.bootstrap_servers
    # The callers hang up during the announcement, before routing's hang-up completes.
    await produce(
        bootstrap,
        CALL_EVENTS,
        [
            started("cx-withheld", "", withheld=True),
            ended("cx-withheld"),
            started("cx-blocked", BLOCKED),
            ended("cx-blocked"),
            started("cx-abandoned", CALLER),
            ended("cx-abandoned"),
        ],
    )
    calls = ("cx-withheld", "cx-blocked", "cx-abandoned")
    records = await read_until(
        bootstrap,
        CALL_ACTIONS,
        lambda rs: {call_actions_pb2.CallAction.FromString(r.value).call_id for r in rs} >= set(calls),
    )
    actions = {
        a.call_id: a
        for a in (call_actions_pb2.CallAction.FromString(r.value) for r in records)
        if a.call_id in calls
    }
    assert actions["cx-withheld"].hangup.reason == "rejected_withheld"
    assert [p.guidance_id for p in actions["cx-withheld"].hangup.prompts] == ["g-rejected"]
    assert actions["cx-blocked"].hangup.reason == "rejected_blocklist"
    assert actions["cx-abandoned"].WhichOneof("body") == "play_and_collect"

    today = report_date(datetime.now(UTC)).isoformat()
    request = report_pb.GetDailyReportRequest(
        range=report_pb.DateRange(start_date=today, end_date=today), dialed_number=DIALED
    )
    deadline = time.monotonic() + 30
    while True:
        rows = (await report_api.GetDailyReport(request, metadata=VIEWER)).rows
        counted = [(r.calls, r.rejected_calls, r.abandoned_calls) for r in rows]
        if counted == [(3, 2, 1)] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert counted == [(3, 2, 1)]
    assert rows[0].abandonment_rate == 1.0  # one abandoned of the one call that reached the guidance
    listed = await report_api.ListCalls(
        report_pb.ListCallsRequest(
            range=request.range, dialed_number=DIALED, outcome=report_pb.CALL_OUTCOME_REJECTED
        ),
        metadata=VIEWER,
    )
    assert sorted(c.call_id for c in listed.calls) == ["cx-blocked", "cx-withheld"]
    trace = await report_api.TraceCaller(
        report_pb.TraceCallerRequest(caller_number=BLOCKED, range=request.range), metadata=VIEWER
    )
    assert trace.verdict == report_pb.TRACE_VERDICT_CALL_REJECTED


LINK_RECIPIENT = "+819021000001"
BOX_URL = "https://example.jp/campaign/winter-2026?from=ivr"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@pytest.fixture(scope="module")
def sms_gateway(work_dir: Path, postgres: Postgres, stack: Stack) -> Iterator[ServiceSpec]:
    scenario = work_dir / "cx-sms-scenario.json"
    scenario.write_text(json.dumps({"rules": [{"prefix": "+8190210", "carrier": "docomo", "delay": 0.1}]}))
    port = free_port()
    simulator = stack.start(
        ServiceSpec(
            "cx-smsc",
            "hibiki_sms_gateway.smsc_simulator",
            args=["--port", str(port), "--scenario", str(scenario)],
        )
    )
    wait_for_port(port, 30, simulator.process)
    # The public base of the links (a proxy in production); the test opens the same path on the HTTP port.
    gateway = start_service(
        stack,
        postgres,
        "sms-gateway",
        "hibiki_sms_gateway",
        HIBIKI_SMPP_PORT=str(port),
        HIBIKI_SMS_CARRIER_TABLE_FILE=str(scenario),
        HIBIKI_SMS_SHORT_LINK_BASE_URL="https://s.example.jp",
    )
    yield gateway
    stack.stop_module("hibiki_sms_gateway")
    stack.stop_module("hibiki_sms_gateway.smsc_simulator")


def pressed(call_id: str, step: int, digits: str) -> tuple[str, call_events_pb2.CallEvent]:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:{step}", digits=digits)
    return call_event(call_id, f"digits:{step}", digits_collected=body)


def results_of(records: list, request_id: str, kind: str) -> list[sms_results_pb2.SmsResult]:
    found = (sms_results_pb2.SmsResult.FromString(r.value) for r in records)
    return [r for r in found if r.request_id == request_id and r.WhichOneof("body") == kind]


async def test_a_short_link_redirects_counts_real_opens_and_reaches_the_report_and_trace(
    kafka: Broker,
    sms_gateway: ServiceSpec,
    report_api: report_grpc.ReportServiceStub,
    live_flow: pb.Flow,
) -> None:
    """One record joins call → route path → SMS → delivery receipt → first click."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sms_gateway.grpc_port}") as channel:
        boxes = box_grpc.SmsBoxServiceStub(channel)
        preview = await boxes.PreviewMessage(
            box_pb.PreviewMessageRequest(message_text="冬のご案内", url=BOX_URL), metadata=VIEWER
        )
        assert preview.rendered_text == "冬のご案内\nhttps://s.example.jp/s/XXXXXXXXXXX"
        assert preview.characters == 6 + len("https://s.example.jp/s/XXXXXXXXXXX")
        create = box_pb.CreateSmsBoxRequest(
            box_number="300", box_name="冬のご案内", message_text="冬のご案内", url=BOX_URL
        )
        await boxes.CreateSmsBox(create, metadata=OPERATOR)
    bootstrap = kafka.bootstrap_servers
    call_id = "cx-link"
    request_id = f"{call_id}:2"  # routing's step after the menu
    await produce(bootstrap, CALL_EVENTS, [started(call_id, LINK_RECIPIENT), pressed(call_id, 1, "1")])
    records = await read_until(
        bootstrap, SMS_RESULTS, lambda rs: bool(results_of(rs, request_id, "sms_accepted"))
    )
    (accepted,) = results_of(records, request_id, "sms_accepted")
    short_link = accepted.sms_accepted.snapshot.rendered_text.splitlines()[-1]
    assert short_link.startswith("https://s.example.jp/s/") and accepted.sms_accepted.snapshot.url == BOX_URL

    url = f"http://127.0.0.1:{sms_gateway.http_port}" + short_link.removeprefix("https://s.example.jp")
    async with aiohttp.ClientSession() as http:
        for method, agent in [
            ("HEAD", PHONE),
            ("GET", "facebookexternalhit/1.1;line-poker/1.0"),
            ("GET", PHONE),
        ]:
            async with http.request(
                method, url, headers={"User-Agent": agent}, allow_redirects=False
            ) as reply:
                assert (reply.status, reply.headers["Location"]) == (302, BOX_URL)
        async with http.get(url + "zz", headers={"User-Agent": PHONE}) as missing:
            assert missing.status == 404 and "ページが見つかりません" in await missing.text()

    records = await read_until(
        bootstrap, SMS_RESULTS, lambda rs: bool(results_of(rs, request_id, "sms_link_clicked"))
    )
    clicks = results_of(records, request_id, "sms_link_clicked")
    # The preview fetch and the HEAD request were not counted.
    assert [c.sms_link_clicked.click_number for c in clicks] == [1]
    clicked_at = clicks[0].envelope.occurred_at.ToDatetime(tzinfo=UTC)

    today = report_date(datetime.now(UTC)).isoformat()
    days = report_pb.DateRange(start_date=today, end_date=today)
    clicks_request = report_pb.GetLinkClickReportRequest(range=days, dialed_number=DIALED)
    trace_request = report_pb.TraceCallerRequest(caller_number=LINK_RECIPIENT, range=days)
    deadline = time.monotonic() + 30
    while True:
        report = await report_api.GetLinkClickReport(clicks_request, metadata=VIEWER)
        rows = [
            (r.box_number, r.sms_accepted, r.sms_clicked, r.clicks, r.click_through_rate) for r in report.rows
        ]
        trace = await report_api.TraceCaller(trace_request, metadata=VIEWER)
        traced_sms = [(s.request_id, s.status, s.clicks) for call in trace.calls for s in call.sms]
        expected_sms = [(request_id, report_pb.SMS_STATUS_DELIVERED, 1)]
        settled = rows == [("300", 1, 1, 1, 1.0)] and traced_sms == expected_sms
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert rows == [("300", 1, 1, 1, 1.0)]
    assert traced_sms == expected_sms
    (traced,) = trace.calls
    assert [(step.route_id, step.digits) for step in traced.call.path] == [("menu", "1")]
    assert traced.sms[0].first_click_time.ToDatetime(tzinfo=UTC) == clicked_at
    assert "リンクが開かれています" in trace.summary


async def test_a_landline_caller_keys_a_mobile_number_corrects_it_confirms_and_one_sms_goes_to_it(
    kafka: Broker, live_flow: pb.Flow
) -> None:
    call_id, landline = "cx-landline", "+81612345678"
    script = [(1, "1"), (2, "09012345678"), (3, "2"), (4, "08011112222#"), (5, "1")]
    await produce(
        kafka.bootstrap_servers,
        CALL_EVENTS,
        [started(call_id, landline), *(pressed(call_id, step, digits) for step, digits in script)],
    )

    def requests_of_call(records: list) -> list[sms_requests_pb2.SmsRequest]:
        found = (sms_requests_pb2.SmsRequest.FromString(r.value) for r in records)
        return [r for r in found if r.sms_requested.call_id == call_id]

    def actions_of_call(records: list) -> list[call_actions_pb2.CallAction]:
        found = (call_actions_pb2.CallAction.FromString(r.value) for r in records)
        return [a for a in found if a.call_id == call_id]

    actions = actions_of_call(
        await read_until(kafka.bootstrap_servers, CALL_ACTIONS, lambda rs: len(actions_of_call(rs)) >= 6)
    )
    collects = [a.play_and_collect for a in actions if a.WhichOneof("body") == "play_and_collect"]
    readbacks = [
        "".join(p.text for p in c.prompts)
        for c in collects
        if c.prompts[-1].guidance_id == "system:readback_confirm"
    ]
    assert readbacks == [
        "090-1234-5678でよろしければ1を、訂正は2を押してください。",
        "080-1111-2222でよろしければ1を、訂正は2を押してください。",
    ]
    assert all(p.guidance_id for c in collects for p in c.prompts)  # audio the platform can fetch
    assert actions[-1].hangup.reason == "completed"
    requests = requests_of_call(
        await read_until(kafka.bootstrap_servers, SMS_REQUESTS, lambda rs: bool(requests_of_call(rs)))
    )
    assert [(r.sms_requested.recipient, r.sms_requested.recipient_captured) for r in requests] == [
        ("+818011112222", True)
    ]
