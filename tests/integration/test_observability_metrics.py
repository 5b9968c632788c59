"""Every metric the Prometheus rules and Grafana dashboards use is exposed by the running services.

Starts the services as real processes (broker, PostgreSQL, sms-gateway against the SMSC simulator),
drives a little traffic through them (a call through a published flow, SMS delivered and undelivered, a
synthesis preview), scrapes their /metrics and checks names, the labels the rules depend on, and the naming
conventions.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import grpc
import pytest
from hibiki.guidance.v1 import guidance_service_pb2, guidance_service_pb2_grpc
from hibiki.routing.v1 import routing_service_pb2 as routing_pb
from hibiki.routing.v1 import routing_service_pb2_grpc as routing_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as box_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as box_grpc
from hibiki.sms.v1 import sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port, wait_for_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import CALL_EVENTS, SMS_REQUESTS, SMS_RESULTS
from hibiki_runtime.logging import mask_phone_numbers

from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until
from tests.integration.test_routing import menu_flow, pressed, started
from tests.integration.test_sms_gateway import Smsc, sms_request
from tests.observability.metric_refs import (
    SERVICES,
    exposed_names,
    label_requirements,
    prefix_of,
    raw_names,
    referenced_names,
    service_of,
)

MODULES = {
    "guidance-tts": "hibiki_guidance_tts",
    "routing": "hibiki_routing",
    "sms-gateway": "hibiki_sms_gateway",
    "reporting": "hibiki_reporting",
}
MEDIA_MODULE = "hibiki_media_gateway"
OPERATOR = (("authorization", "Bearer token-a-operator"),)
SCENARIO = {
    "rules": [
        {"prefix": "+81902100", "carrier": "docomo", "behaviour": "deliver", "delay": 0.1},
        {"prefix": "+81902101", "carrier": "au", "behaviour": "undeliver", "delay": 0.1, "error_code": "006"},
    ]
}
# Families that must have samples after the traffic below, so that the label check is not vacuous.
SAMPLED = {
    "hibiki_routing_decisions_total",
    "hibiki_routing_input_errors_total",
    "hibiki_routing_fallbacks_total",
    "hibiki_routing_consumer_messages_total",
    "hibiki_routing_consumer_lag_messages",
    "hibiki_sms_gateway_submits_total",
    "hibiki_sms_gateway_segments_total",
    "hibiki_sms_gateway_submit_duration_seconds_bucket",
    "hibiki_sms_gateway_receipt_delay_seconds_count",
    "hibiki_sms_gateway_results_total",
    "hibiki_guidance_tts_audio_cache_lookups_total",
    "hibiki_guidance_tts_audio_served_bytes_total",
    "hibiki_reporting_consumer_messages_total",
}
# Label names that would carry personal data or an unbounded id.
FORBIDDEN_LABEL = re.compile(
    r"(^|_)(id|ids|phone|number|msisdn|recipient|destination|caller|callee|text|url)($|_)", re.IGNORECASE
)
NON_BASE_UNITS = re.compile(
    r"_(milliseconds|microseconds|nanoseconds|ms|us|minutes|hours|days|kilobytes|megabytes|kb|mb|percent)(_|$)"
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@pytest.fixture(scope="module")
def smsc(work_dir: Path, stack: Stack) -> Iterator[Smsc]:
    simulator = Smsc(free_port(), work_dir / "obs-sms-scenario.json", work_dir / "obs-smsc-received.jsonl")
    simulator.scenario.write_text(json.dumps(SCENARIO))
    args = ["--port", str(simulator.port), "--scenario", str(simulator.scenario)]
    args += ["--record", str(simulator.record)]
    running = stack.start(ServiceSpec("smsc-simulator", "hibiki_sms_gateway.smsc_simulator", args=args))
    wait_for_port(simulator.port, 30, running.process)
    yield simulator
    stack.stop_module("hibiki_sms_gateway.smsc_simulator")


@pytest.fixture(scope="module")
def services(postgres: Postgres, stack: Stack, smsc: Smsc) -> Iterator[dict[str, ServiceSpec]]:
    lag = {"HIBIKI_CONSUMER_LAG_INTERVAL_SECONDS": "1"}
    extra = {
        "guidance-tts": {"HIBIKI_SYNTHESIS_WORKERS": "1"},
        "sms-gateway": {
            "HIBIKI_SMPP_PORT": str(smsc.port),
            "HIBIKI_SMS_CARRIER_TABLE_FILE": str(smsc.scenario),
        },
    }
    # One after the other: children die with the thread that started them (PR_SET_PDEATHSIG), so they
    # cannot be started from a thread pool.
    started_specs = {
        name: start_service(stack, postgres, name, module, **lag, **extra.get(name, {}))
        for name, module in MODULES.items()
    }
    # media-gateway answers SIP (no call is made here: its metrics are exposed from the start).
    started_specs["media-gateway"] = start_service(
        stack,
        postgres,
        "media-gateway",
        MEDIA_MODULE,
        **lag,
        HIBIKI_SIP_PORT=str(free_port()),
        HIBIKI_RTP_PORT=str(free_port()),
        HIBIKI_RTP_PORT_RANGE="100",
        HIBIKI_GUIDANCE_URL=f"http://127.0.0.1:{started_specs['guidance-tts'].http_port}",
        HIBIKI_MEDIA_TENANTS=json.dumps(
            {TENANT: {"numbers": ["+81312345678"], "guidance_token": "token-platform"}}
        ),
    )
    yield started_specs
    # Stopping waits for each graceful shutdown: in parallel.
    modules = [*MODULES.values(), MEDIA_MODULE]
    with ThreadPoolExecutor(len(modules)) as pool:
        list(pool.map(stack.stop_module, modules))


async def scrape(spec: ServiceSpec) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{spec.http_port}/metrics") as reply,
    ):
        assert reply.status == 200
        return await reply.text()


def sampled_labels(exposition: str) -> dict[str, list[dict[str, str]]]:
    """Sample name → the label sets of its samples."""
    found: dict[str, list[dict[str, str]]] = {}
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s", line)
        assert match, line
        labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        found.setdefault(match.group(1), []).append(labels)
    return found


async def drive_traffic(kafka: Broker, services: dict[str, ServiceSpec]) -> None:
    """A call that keys invalid digits into a fallback, two SMS (delivered, undelivered), one preview."""
    run = uuid.uuid4().hex[:8]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{services['routing'].grpc_port}") as channel:
        flows = routing_grpc.RoutingServiceStub(channel)
        created = await flows.CreateFlow(routing_pb.CreateFlowRequest(flow=menu_flow()), metadata=OPERATOR)
        await flows.PublishFlow(
            routing_pb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision),
            metadata=OPERATOR,
        )
    call = f"obs-{run}"
    await produce(
        kafka.bootstrap_servers,
        CALL_EVENTS,
        [started(call), pressed(call, 1, "7"), pressed(call, 2, "8"), pressed(call, 3, "9")],
    )

    async with grpc.aio.insecure_channel(f"127.0.0.1:{services['sms-gateway'].grpc_port}") as channel:
        boxes = box_grpc.SmsBoxServiceStub(channel)
        box = box_pb.CreateSmsBoxRequest(box_number="901", box_name="監視", message_text="ご来店予約", url="")
        await boxes.CreateSmsBox(box, metadata=OPERATOR)
    requests = [sms_request(f"obs-{run}-ok", "901", "+819021000001")]
    requests.append(sms_request(f"obs-{run}-ng", "901", "+819021010001"))
    await produce(kafka.bootstrap_servers, SMS_REQUESTS, [(r.request_id, r) for r in requests])

    async with grpc.aio.insecure_channel(f"127.0.0.1:{services['guidance-tts'].grpc_port}") as channel:
        guidance = guidance_service_pb2_grpc.GuidanceServiceStub(channel)
        await guidance.Preview(
            guidance_service_pb2.PreviewRequest(text="監視の確認です。"), metadata=OPERATOR
        )

    def settled(records: list) -> bool:  # type: ignore[type-arg]
        bodies = {
            (result.request_id, result.WhichOneof("body"))
            for result in (sms_results_pb2.SmsResult.FromString(r.value) for r in records)
        }
        return {
            (requests[0].request_id, "sms_delivered"),
            (requests[1].request_id, "sms_undelivered"),
        } <= bodies

    await read_until(kafka.bootstrap_servers, SMS_RESULTS, settled, within_seconds=60)


@pytest.fixture(scope="module")
async def scraped(kafka: Broker, services: dict[str, ServiceSpec]) -> AsyncIterator[dict[str, str]]:
    """Each service's /metrics once the traffic shows in every family of SAMPLED."""
    await drive_traffic(kafka, services)
    deadline = time.monotonic() + 30
    while True:
        texts = {name: await scrape(spec) for name, spec in services.items()}
        sampled = set().union(*(sampled_labels(text) for text in texts.values()))
        if sampled >= SAMPLED or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert SAMPLED - sampled == set(), "no samples after the traffic"
    yield texts


async def test_every_metric_used_by_rules_and_dashboards_is_exposed(scraped: dict[str, str]) -> None:
    exposed = {name: exposed_names(text) for name, text in scraped.items()}
    used = raw_names(referenced_names())
    assert {service_of(name) for name in used} == set(SERVICES)
    missing = []
    for name in sorted(used):
        service = service_of(name)
        assert service is not None, f"{name}: not named hibiki_<service>_…"
        if name not in exposed[service]:
            missing.append(name)
    assert missing == [], "used by rules or dashboards but not exposed by the running service"


async def test_labels_the_rules_depend_on_are_on_the_samples(scraped: dict[str, str]) -> None:
    samples: dict[str, list[dict[str, str]]] = {}
    for text in scraped.values():
        samples.update(sampled_labels(text))
    verified = 0
    for metrics, labels, expr in label_requirements():
        seen = [set(label_set) for m in metrics for label_set in samples.get(m, [])]
        if not seen:
            continue  # no sample yet (e.g. no breaker opened): test_observability_metric_labels covers it
        known = set().union(*seen)
        assert labels <= known, f"{sorted(labels - known)} not on the samples of {sorted(metrics)}: {expr}"
        verified += 1
    assert verified, "no label requirement could be checked"


async def test_metric_names_and_labels_follow_the_conventions(scraped: dict[str, str]) -> None:
    """hibiki_<service>_<what>_<unit>, base units, _total counters, no personal data or ids as labels."""
    for service, text in scraped.items():
        prefix = prefix_of(service)
        types = {
            parts[2]: parts[3]
            for parts in (line.split() for line in text.splitlines() if line.startswith("# TYPE "))
        }
        families = {name: kind for name, kind in types.items() if not name.endswith("_created")}
        assert families, service
        for family, kind in families.items():
            assert family.startswith(prefix), f"{service}: {family} lacks the {prefix} prefix"
            assert not NON_BASE_UNITS.search(family), f"{family}: use base units (seconds, bytes, ratios)"
            if kind == "counter":
                assert family.endswith("_total"), family
            else:
                assert not family.endswith("_total"), f"{family} is a {kind}, only counters end in _total"
            if kind == "histogram":
                assert family.endswith(("_seconds", "_bytes")), f"{family}: a histogram names its unit"
        for name, label_sets in sampled_labels(text).items():
            for labels in label_sets:
                for label, value in labels.items():
                    assert not FORBIDDEN_LABEL.search(label), f"{name}: label {label!r}"
                    assert mask_phone_numbers(value) == value, f"{name}{{{label}}}: a phone number"
                    assert not UUID.search(value), f"{name}{{{label}}}: an id"


async def test_every_service_reports_its_name_and_version(scraped: dict[str, str]) -> None:
    for name, text in scraped.items():
        info = [line for line in text.splitlines() if line.startswith(f"{prefix_of(name)}build_info{{")]
        assert len(info) == 1, info
        assert f'service="{name}"' in info[0]
        assert 'version="' in info[0]
