"""Real infrastructure for integration tests: the Kafka-protocol broker, PostgreSQL, service processes."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker, postgres_server, wait_for_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.kafka import ensure_topics

TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"
TOKENS = {
    "token-a-operator": {"tenant_id": TENANT, "role": "operator"},
    "token-a-viewer": {"tenant_id": TENANT, "role": "viewer"},
    "token-b-operator": {"tenant_id": OTHER_TENANT, "role": "operator"},
    "token-platform": {"tenant_id": TENANT, "role": "platform"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integration")


@pytest.fixture(scope="session")
async def kafka(work_dir: Path) -> AsyncIterator[Broker]:
    with kafka_broker(free_port(), work_dir / "broker.log") as broker:
        await ensure_topics(broker.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # Not under pytest's 0700 temp root: the server runs as its own system user when tests run as root.
    data_dir = Path(tempfile.mkdtemp(prefix="hibiki-pg-"))
    data_dir.chmod(0o755)
    try:
        with postgres_server(data_dir / "data") as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(work_dir: Path, kafka: Broker) -> Iterator[Stack]:
    tokens_file = work_dir / "tokens.json"
    tokens_file.write_text(json.dumps(TOKENS))
    running = Stack(
        work_dir / "logs",
        {
            "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "HIBIKI_AUTH_TOKENS_FILE": str(tokens_file),
            "HIBIKI_DATA_DIR": str(work_dir / "data"),
            "HIBIKI_KAFKA_CREATE_TOPICS": "false",
            "HIBIKI_GRPC_HOST": "127.0.0.1",
            "HIBIKI_HTTP_HOST": "127.0.0.1",
        },
        say=lambda _line: None,
    )
    yield running
    running.stop()


def start_service(stack: Stack, postgres: Postgres, name: str, module: str, **env: str) -> ServiceSpec:
    """Start a service process on free ports with its own PostgreSQL database; returns once SERVING.

    Earlier processes of the same module are stopped first: each has its own database, and two in one
    consumer group would split (and answer twice) the events of the next test module.
    """
    stack.stop_module(module)
    database = f"{name.replace('-', '_')}_{free_port()}"
    postgres.create_database(database)
    spec = ServiceSpec(
        name,
        module,
        grpc_port=free_port(),
        http_port=free_port(),
        env={"HIBIKI_DATABASE_URL": postgres.url(database), **env},
    )
    stack.wait_healthy([stack.start(spec)], timeout=90)
    return spec


@dataclass(frozen=True)
class SmscProcess:
    port: int
    scenario: Path  # also the service's carrier table (HIBIKI_SMS_CARRIER_TABLE_FILE)
    record: Path | None  # every message the simulator took, one JSON line each


def start_smsc(
    stack: Stack, work_dir: Path, name: str, rules: list[dict[str, object]], *, record: bool = False
) -> SmscProcess:
    """Start an SMSC simulator process with these scenario rules; returns once it listens."""
    scenario = work_dir / f"{name}-scenario.json"
    scenario.write_text(json.dumps({"rules": rules}))
    smsc = SmscProcess(free_port(), scenario, work_dir / f"{name}-received.jsonl" if record else None)
    args = ["--port", str(smsc.port), "--scenario", str(scenario)]
    if smsc.record is not None:
        args += ["--record", str(smsc.record)]
    running = stack.start(ServiceSpec(name, "hibiki_sms_gateway.smsc_simulator", args=args))
    wait_for_port(smsc.port, 30, running.process)
    return smsc
