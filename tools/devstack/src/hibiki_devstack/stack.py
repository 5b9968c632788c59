"""Starts Hibiki's service processes, waits for gRPC health, and stops them all in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hibiki_devstack.processes import child_command, child_process_kwargs, health_status


@dataclass(frozen=True)
class ServiceSpec:
    """A process of the system; `grpc_port` is polled for health when set.

    It runs `python -m <module> <args>`, or `command` when one is given (a console script such as the
    telephony simulator's, which has no `__main__` module); `module` still names it for `stop_module`.
    """

    name: str
    module: str
    grpc_port: int | None = None
    http_port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    args: Sequence[str] = ()
    command: Sequence[str] = ()


def default_services(port_offset: int = 0) -> list[ServiceSpec]:
    """The services on their documented default ports (gRPC 50051–50055, HTTP 9101–9105)."""
    names = [
        ("guidance-tts", "hibiki_guidance_tts"),
        ("routing", "hibiki_routing"),
        ("sms-gateway", "hibiki_sms_gateway"),
        ("reporting", "hibiki_reporting"),
        ("media-gateway", "hibiki_media_gateway"),
    ]
    return [
        ServiceSpec(name, module, grpc_port=50051 + i + port_offset, http_port=9101 + i + port_offset)
        for i, (name, module) in enumerate(names)
    ]


class ServiceFailed(RuntimeError):
    """A service did not come up, or died; the message says which and shows its last log lines."""


@dataclass
class RunningService:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    """The running processes; stop() terminates them in reverse start order."""

    def __init__(
        self, log_dir: Path, base_env: Mapping[str, str], say: Callable[[str], None] = print
    ) -> None:
        self.log_dir = log_dir
        self.base_env = dict(base_env)
        self.services: list[RunningService] = []
        self._say = say
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: ServiceSpec) -> RunningService:
        env = {**os.environ, **self.base_env, **spec.env, "HIBIKI_SERVICE_NAME": spec.name}
        if spec.grpc_port is not None:
            env["HIBIKI_GRPC_PORT"] = str(spec.grpc_port)
        if spec.http_port is not None:
            env["HIBIKI_HTTP_PORT"] = str(spec.http_port)
        log_path = self.log_dir / f"{spec.name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                child_command(list(spec.command) or [sys.executable, "-m", spec.module, *spec.args]),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                **child_process_kwargs(),
            )
        running = RunningService(spec, process, log_path)
        self.services.append(running)
        return running

    def wait_healthy(self, running: Sequence[RunningService], timeout: float = 60.0) -> None:
        """Wait until every service answers gRPC health SERVING; ServiceFailed otherwise."""
        started = time.monotonic()
        pending = [s for s in running if s.spec.grpc_port is not None]
        while pending:
            for service in list(pending):
                if service.process.poll() is not None:
                    raise ServiceFailed(
                        f"{service.spec.name} exited with code {service.process.returncode} while starting; "
                        f"last lines of {service.log_path}:\n{service.log_tail()}"
                    )
                assert service.spec.grpc_port is not None
                if health_status(service.spec.grpc_port, timeout=0.5) == "SERVING":
                    pending.remove(service)
                    self._say(
                        f"  ✓ {service.spec.name:<13} gRPC :{service.spec.grpc_port}  "
                        f"HTTP :{service.spec.http_port}  ({time.monotonic() - started:.1f}s)"
                    )
            if time.monotonic() - started > timeout:
                names = ", ".join(s.spec.name for s in pending)
                tails = "\n".join(f"--- {s.spec.name}:\n{s.log_tail()}" for s in pending)
                raise ServiceFailed(f"not SERVING after {timeout:.0f}s: {names}\n{tails}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        """ServiceFailed when a running service has died."""
        for service in self.services:
            if service.process.poll() is not None:
                raise ServiceFailed(
                    f"{service.spec.name} exited with code {service.process.returncode}; "
                    f"last lines of {service.log_path}:\n{service.log_tail()}"
                )

    def stop_module(self, module: str, timeout: float = 30.0) -> None:
        """Gracefully stop the running processes of one service module (they leave the consumer group)."""
        for service in self.services:
            if service.spec.module == module and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
                try:
                    service.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every service (they drain and commit), SIGKILL what is left after `timeout`."""
        for service in reversed(self.services):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in reversed(self.services):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                service.process.wait(remaining)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        self.services.clear()
