"""A real phone calls Hibiki: baresip dials media-gateway over SIP and hears the guidance over RTP.

The whole system runs on a private broker (routing, guidance-tts, sms-gateway with the SMSC simulator,
reporting, media-gateway). baresip is an independent SIP phone driven over its control socket: it dials,
presses keys (RFC 4733), hangs up, and records what it hears; the recording is compared with the audio
guidance-tts synthesized for the flow's prompts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import grpc
import pytest
from hibiki.call.v1 import call_events_pb2
from hibiki.reporting.v1 import report_service_pb2 as report_pb
from hibiki.reporting.v1 import report_service_pb2_grpc as report_grpc
from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker
from hibiki_devstack.sip_phone import SipPhone, sounding
from hibiki_devstack.stack import Stack
from hibiki_runtime.events import ALL_TOPICS, CALL_EVENTS
from hibiki_runtime.kafka import ensure_topics

from tests.integration.conftest import start_service
from tests.integration.e2e_support import (
    E2E_TENANT,
    SMS_NUMBER,
    TOKENS,
    VIEWER,
    Provisioned,
    System,
    provision,
    start_system,
)
from tests.integration.kafka_io import read_until

pytestmark = pytest.mark.timeout(600)
TOLERANCE = 0.10  # what the phone heard may differ this much from the synthesized prompt


@pytest.fixture(scope="module")
async def broker(work_dir: Path) -> AsyncIterator[Broker]:
    with kafka_broker(free_port(), work_dir / "sip-broker.log") as running:
        await ensure_topics(running.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield running


@pytest.fixture(scope="module")
async def operator_phone(work_dir: Path) -> AsyncIterator[SipPhone]:
    """The operator a transfer reaches: a second phone that answers by itself."""
    async with SipPhone(work_dir / "operator-phone", "+81356780900", answer_mode="auto") as phone:
        yield phone


@pytest.fixture(scope="module")
def system(
    work_dir: Path, broker: Broker, stack: Stack, postgres: Postgres, operator_phone: SipPhone
) -> Iterator[System]:
    tokens = work_dir / "sip-tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    own = Stack(
        work_dir / "sip-logs",
        {
            **stack.base_env,
            "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "HIBIKI_AUTH_TOKENS_FILE": str(tokens),
        },
        say=lambda _line: None,
    )
    try:
        system = start_system(own, postgres, work_dir)
        tts = system.specs["guidance-tts"]
        tenants = {E2E_TENANT: {"numbers": [SMS_NUMBER], "guidance_token": "e2e-platform"}}
        system.specs["media-gateway"] = start_service(
            own,
            postgres,
            "media-gateway",
            "hibiki_media_gateway",
            HIBIKI_SIP_PORT=str(free_port()),
            HIBIKI_RTP_PORT=str(free_port()),
            HIBIKI_RTP_PORT_RANGE="100",
            HIBIKI_GUIDANCE_URL=f"http://127.0.0.1:{tts.http_port}",
            HIBIKI_MEDIA_TENANTS=json.dumps(tenants),
            HIBIKI_MEDIA_TRANSFER_DOMAIN=f"127.0.0.1:{operator_phone.sip_port}",
        )
        yield system
    finally:
        own.stop()


@pytest.fixture(scope="module")
async def provisioned(system: System) -> Provisioned:
    return await provision(system)


@pytest.fixture(scope="module")
async def prompt_spans(system: System, provisioned: Provisioned, work_dir: Path) -> dict[str, float]:
    """Seconds from the first to the last sound of each prompt the tests hear, as synthesized."""
    tts = system.specs["guidance-tts"]
    spans = {}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer e2e-platform"}) as http:
        for name, audio_id in (
            ("menu", provisioned.menu_guidance_id),
            ("sms_sent", provisioned.sms_sent_guidance_id),
            ("invalid_input", provisioned.invalid_input_guidance_id),
            ("input_timeout", provisioned.input_timeout_guidance_id),
        ):
            url = f"http://127.0.0.1:{tts.http_port}/audio/{audio_id}.wav?format=pcm16"
            async with http.get(url) as response:
                assert response.status == 200, await response.text()
                path = work_dir / f"prompt-{name}.wav"
                path.write_bytes(await response.read())
            spans[name] = span(sounding(path))
    return spans


def sip_uri(system: System, number: str) -> str:
    gateway = system.specs["media-gateway"]
    return f"sip:{number}@127.0.0.1:{gateway.env['HIBIKI_SIP_PORT']}"


def span(stretches: list[tuple[float, float]]) -> float:
    return stretches[-1][1] - stretches[0][0] if stretches else 0.0


def heard_between(stretches: list[tuple[float, float]], start: float, end: float) -> float:
    """The span of what sounded between two moments of the call (seconds since it was established)."""
    return span([s for s in stretches if start <= s[0] < end])


def close_to(heard: float, expected: float) -> bool:
    return abs(heard - expected) <= TOLERANCE * expected


async def calls_of(system: System, caller: str, *, within: float = 20.0) -> list[report_pb.CallRecord]:
    """The caller's calls in the report, once every one of them has ended."""
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    request = report_pb.ListCallsRequest(caller_number=caller)
    request.range.start_date = request.range.end_date = today.isoformat()
    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(system.address("reporting")) as channel:
        reports = report_grpc.ReportServiceStub(channel)
        while True:
            calls = list((await reports.ListCalls(request, metadata=VIEWER)).calls)
            done = [c for c in calls if c.outcome != report_pb.CALL_OUTCOME_IN_PROGRESS]
            if (calls and len(done) == len(calls)) or time.monotonic() > deadline:
                return calls
            await asyncio.sleep(0.5)


async def test_a_caller_hears_the_menu_and_key_1_sends_the_sms(
    system: System, prompt_spans: dict[str, float], work_dir: Path
) -> None:
    caller = "+819055500001"
    async with SipPhone(work_dir / "phone-sms", caller) as phone:
        await phone.dial(sip_uri(system, SMS_NUMBER))
        await phone.established(timeout=15)
        answered = time.monotonic()
        await asyncio.sleep(prompt_spans["menu"] + 1.5)
        pressed = time.monotonic() - answered
        await phone.press("1")
        await phone.closed(timeout=prompt_spans["sms_sent"] + 15)  # the flow hangs up after its thanks
        heard = sounding(phone.recording())

    menu = heard_between(heard, 0, pressed)
    thanks = heard_between(heard, pressed, 1e9)
    assert close_to(menu, prompt_spans["menu"]), (menu, prompt_spans["menu"], heard)
    assert close_to(thanks, prompt_spans["sms_sent"]), (thanks, prompt_spans["sms_sent"], heard)
    deadline = time.monotonic() + 20
    while not [m for m in system.smsc_received() if m["destination"] == caller]:
        assert time.monotonic() < deadline, f"no SMS for {caller} at the SMSC: {system.smsc_received()[-3:]}"
        await asyncio.sleep(0.3)
    (call,) = await calls_of(system, caller)
    assert call.outcome == report_pb.CALL_OUTCOME_SMS_SENT


async def test_a_wrong_key_plays_the_invalid_input_guidance_then_the_menu_again(
    system: System, prompt_spans: dict[str, float], work_dir: Path
) -> None:
    async with SipPhone(work_dir / "phone-wrong", "+819055500002") as phone:
        await phone.dial(sip_uri(system, SMS_NUMBER))
        await phone.established(timeout=15)
        answered = time.monotonic()
        await asyncio.sleep(prompt_spans["menu"] + 1.0)
        pressed = time.monotonic() - answered
        await phone.press("9")
        expected = prompt_spans["invalid_input"] + prompt_spans["menu"]
        await asyncio.sleep(expected + 1.5)
        await phone.hangup()
        heard = sounding(phone.recording())

    again = heard_between(heard, pressed, 1e9)
    # The invalid-input guidance, a short gap, then the whole menu: the span covers both.
    assert close_to(again, expected), (again, expected, heard)


async def test_silence_plays_the_timeout_guidance_then_the_menu_again(
    system: System, prompt_spans: dict[str, float], work_dir: Path
) -> None:
    async with SipPhone(work_dir / "phone-silent", "+819055500003") as phone:
        await phone.dial(sip_uri(system, SMS_NUMBER))
        await phone.established(timeout=15)
        menu_end = prompt_spans["menu"]
        expected = prompt_spans["input_timeout"] + prompt_spans["menu"]
        await asyncio.sleep(menu_end + 5.0 + expected + 2.0)  # the flow's first-digit timeout is 5 s
        await phone.hangup()
        heard = sounding(phone.recording())

    first_menu = heard_between(heard, 0, menu_end + 2.5)
    after_timeout = heard_between(heard, menu_end + 2.5, 1e9)
    assert close_to(first_menu, prompt_spans["menu"]), (first_menu, heard)
    assert close_to(after_timeout, expected), (after_timeout, expected, heard)


async def test_hanging_up_during_the_menu_is_reported_abandoned_at_that_prompt(
    system: System, prompt_spans: dict[str, float], work_dir: Path
) -> None:
    caller = "+819055500004"
    async with SipPhone(work_dir / "phone-abandon", caller) as phone:
        await phone.dial(sip_uri(system, SMS_NUMBER))
        await phone.established(timeout=15)
        await asyncio.sleep(min(2.0, prompt_spans["menu"] / 2))
        await phone.hangup()

    (call,) = await calls_of(system, caller)
    assert call.outcome == report_pb.CALL_OUTCOME_ABANDONED
    assert call.abandoned_route_id == "menu" and call.abandoned_stage == "prompt"


async def test_key_2_transfers_the_caller_to_the_operator_by_refer(
    system: System, prompt_spans: dict[str, float], operator_phone: SipPhone, work_dir: Path
) -> None:
    caller = "+819055500005"
    async with SipPhone(work_dir / "phone-transfer", caller) as phone:
        await phone.dial(sip_uri(system, SMS_NUMBER))
        await phone.established(timeout=15)
        await asyncio.sleep(1.0)  # barge-in: the key stops the menu
        await phone.press("2")
        deadline = time.monotonic() + 20
        while not [e for e in operator_phone.events if e.type == "CALL_ESTABLISHED"]:
            assert time.monotonic() < deadline, f"the operator was never reached: {phone.events[-5:]}"
            await asyncio.sleep(0.2)
        await phone.hangup()

    (call,) = await calls_of(system, caller)
    assert call.outcome == report_pb.CALL_OUTCOME_TRANSFERRED
    (reached,) = [e for e in operator_phone.events if e.type == "CALL_ESTABLISHED"]
    assert caller in reached.peer_uri  # the caller's own phone called the operator (REFER)


async def test_a_withheld_caller_is_recorded_as_withheld_and_gets_no_sms(
    system: System, broker: Broker, prompt_spans: dict[str, float], work_dir: Path
) -> None:
    sent_before = len(system.smsc_received())
    async with SipPhone(work_dir / "phone-withheld", None) as phone:
        await phone.dial(sip_uri(system, SMS_NUMBER))
        await phone.established(timeout=15)
        await asyncio.sleep(1.0)
        await phone.press("1")
        await phone.closed(timeout=prompt_spans["sms_sent"] + 15)

    records = await read_until(broker.bootstrap_servers, CALL_EVENTS, lambda _: False, within_seconds=2)
    started = [
        event.call_started
        for event in (call_events_pb2.CallEvent.FromString(r.value) for r in records)
        if event.WhichOneof("body") == "call_started" and event.call_started.dialed_number == SMS_NUMBER
    ]
    withheld = [s for s in started if s.caller_withheld]  # records of several partitions: not in call order
    assert len(withheld) == 1 and withheld[0].caller_number == "", started
    await asyncio.sleep(2.0)
    assert len(system.smsc_received()) == sent_before  # a withheld number cannot receive an SMS
