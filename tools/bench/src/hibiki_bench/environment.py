"""The system under test: the real broker, an embedded PostgreSQL, and services as separate processes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker, postgres_server, wait_for_port
from hibiki_devstack.stack import RunningService, ServiceSpec, Stack

from hibiki_bench.memory import PeakRssSampler
from hibiki_bench.profiling import profiled

TENANT = "bench"
TOKEN = "bench-operator"
OPERATOR = (("authorization", f"Bearer {TOKEN}"),)
# What services of the platform use towards each other (media-gateway and routing towards guidance-tts).
PLATFORM_TOKEN = "bench-platform"


@dataclass
class Environment:
    """Where a run's services live; `start` launches services and waits for them, measuring their memory."""

    broker: Broker
    postgres: Postgres
    stack: Stack
    work_dir: Path
    memory: PeakRssSampler
    profile_dir: Path | None

    def service(self, name: str, module: str, **env: str) -> ServiceSpec:
        """A service on free ports with its own new PostgreSQL database."""
        database = f"{name.replace('-', '_')}_{free_port()}"
        self.postgres.create_database(database)
        return ServiceSpec(
            name,
            module,
            grpc_port=free_port(),
            http_port=free_port(),
            env={"HIBIKI_DATABASE_URL": self.postgres.url(database), **env},
        )

    def start(self, specs: Sequence[ServiceSpec]) -> list[RunningService]:
        """Start services together (under cProfile when profiling) and wait until all are SERVING."""
        running = [self.stack.start(self._maybe_profiled(spec)) for spec in specs]
        self.stack.wait_healthy(running, timeout=120)
        for service in running:
            self.memory.watch(service.spec.name, service.process.pid)
        return running

    def start_smsc_simulator(self, scenario: Path, record: Path | None = None) -> int:
        """Start the SMSC simulator (a real SMPP server) with `scenario`; returns its port once it listens.

        With `record`, every message it takes is written there (one JSON line each).
        """
        port = free_port()
        args = ["--port", str(port), "--scenario", str(scenario)]
        if record is not None:
            args += ["--record", str(record)]
        running = self.stack.start(
            ServiceSpec("smsc-simulator", "hibiki_sms_gateway.smsc_simulator", args=args)
        )
        wait_for_port(port, 30, running.process)
        return port

    def kill(self, name: str) -> None:
        """kill -9 a service: no drain, no commit, no goodbye."""
        for service in self.stack.services:
            if service.spec.name == name and service.process.poll() is None:
                service.process.kill()
                service.process.wait()

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """Stop a service gracefully: it commits its offsets, and writes its profile when profiled."""
        self.memory.sample()
        for service in self.stack.services:
            if service.spec.name == name and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
                try:
                    service.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()

    def _maybe_profiled(self, spec: ServiceSpec) -> ServiceSpec:
        if self.profile_dir is None:
            return spec
        return profiled(spec, self.profile_dir / f"{spec.name}.prof")


@contextmanager
def environment(profile_dir: Path | None) -> Iterator[Environment]:
    """Broker, PostgreSQL and an empty stack in a temporary directory that is removed afterwards."""
    # Not 0700: embedded PostgreSQL runs as its own system user when the bench runs as root.
    work_dir = Path(tempfile.mkdtemp(prefix="hibiki-bench-"))
    work_dir.chmod(0o755)
    tokens = work_dir / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                TOKEN: {"tenant_id": TENANT, "role": "operator"},
                PLATFORM_TOKEN: {"tenant_id": TENANT, "role": "platform"},
            }
        )
    )
    with ExitStack() as resources:
        resources.callback(shutil.rmtree, work_dir, True)
        broker = resources.enter_context(kafka_broker(free_port(), work_dir / "broker.log"))
        postgres = resources.enter_context(postgres_server(work_dir / "pg"))
        stack = Stack(work_dir / "logs", _base_env(broker, tokens, work_dir), say=lambda _line: None)
        resources.callback(stack.stop)
        memory = resources.enter_context(PeakRssSampler())
        yield Environment(broker, postgres, stack, work_dir, memory, profile_dir)


# Bytecode of the services, kept between runs outside the source tree: where PYTHONDONTWRITEBYTECODE is
# set, every start would otherwise compile each imported module again (about 25 s per service on 2 cores).
PYCACHE = Path(tempfile.gettempdir()) / "hibiki-bench-pycache"


def _base_env(broker: Broker, tokens: Path, work_dir: Path) -> Mapping[str, str]:
    return {
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "HIBIKI_AUTH_TOKENS_FILE": str(tokens),
        "HIBIKI_DATA_DIR": str(work_dir / "data"),
        "HIBIKI_KAFKA_CREATE_TOPICS": "false",
        "HIBIKI_GRPC_HOST": "127.0.0.1",
        "HIBIKI_HTTP_HOST": "127.0.0.1",
    }
