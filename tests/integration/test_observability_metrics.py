"""Every metric the Prometheus rules and Grafana dashboards use is exposed by a running service.

Starts routing as a real process (broker, PostgreSQL) and scrapes its /metrics. Names of the other
services are checked through routing when they are runtime metrics (hibiki_<service>_grpc_requests_total
is registered by the same hibiki_runtime code as hibiki_routing_grpc_requests_total); a service's own
domain metrics need that service in SCRAPED below.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import aiohttp
import pytest
from hibiki_devstack.infra import Postgres
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry, generate_latest

from tests.integration.conftest import start_service
from tests.observability.metric_refs import (
    exposed_names,
    prefix_of,
    raw_names,
    referenced_names,
    service_of,
)

# Services this module starts and scrapes: name -> module.
SCRAPED = {"routing": "hibiki_routing"}
VIA = "routing"  # the scraped service that stands in for the others' runtime metrics


def stop_instances(stack: Stack, module: str) -> None:
    """SIGTERM running processes of a module (another test module's routing shares the consumer group)."""
    for service in stack.services:
        if service.spec.module == module and service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
            service.process.wait(30)


@pytest.fixture(scope="module")
def scraped(postgres: Postgres, stack: Stack) -> Iterator[dict[str, ServiceSpec]]:
    for module in SCRAPED.values():
        stop_instances(stack, module)
    yield {name: start_service(stack, postgres, name, module) for name, module in SCRAPED.items()}
    for module in SCRAPED.values():
        stop_instances(stack, module)


async def scrape(spec: ServiceSpec) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{spec.http_port}/metrics") as reply,
    ):
        assert reply.status == 200
        return await reply.text()


def runtime_names(service: str) -> set[str]:
    registry = CollectorRegistry()
    RuntimeMetrics(service, registry)
    return exposed_names(generate_latest(registry).decode())


async def test_every_metric_used_by_rules_and_dashboards_is_exposed(scraped: dict[str, ServiceSpec]) -> None:
    exposed = {name: exposed_names(await scrape(spec)) for name, spec in scraped.items()}
    runtime_via = runtime_names(VIA)
    used = raw_names(referenced_names())
    assert used, "the rules and dashboards reference no metric"

    missing: list[str] = []
    unchecked: list[str] = []
    for name in sorted(used):
        service = service_of(name)
        assert service is not None, f"{name}: not named hibiki_<service>_…"
        if service in exposed:
            if name not in exposed[service]:
                missing.append(name)
            continue
        stand_in = prefix_of(VIA) + name.removeprefix(prefix_of(service))
        if stand_in not in runtime_via:
            unchecked.append(name)
        elif stand_in not in exposed[VIA]:
            missing.append(f"{name} (as {stand_in})")
    assert missing == [], "used by rules or dashboards but not exposed by the running service"
    assert unchecked == [], f"domain metrics of services not started here: add them to SCRAPED ({SCRAPED})"


async def test_scraped_service_reports_its_name_and_version(scraped: dict[str, ServiceSpec]) -> None:
    for name, spec in scraped.items():
        text = await scrape(spec)
        info = [line for line in text.splitlines() if line.startswith(f"{prefix_of(name)}build_info{{")]
        assert len(info) == 1, info
        assert f'service="{name}"' in info[0]
        assert 'version="' in info[0]
