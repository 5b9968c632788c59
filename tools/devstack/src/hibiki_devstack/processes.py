"""Child processes that never outlive their parent, and gRPC health waiting."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def child_command(argv: Sequence[str]) -> list[str]:
    """The command that runs `argv` as a child that dies with this process (see hibiki_devstack.child)."""
    return [sys.executable, "-m", "hibiki_devstack.child", str(os.getpid()), *argv]


def child_process_kwargs() -> dict[str, Any]:
    """Popen arguments for a child of its own session: Ctrl-C reaches only the supervisor, which stops
    children in order."""
    return {"start_new_session": True}


def health_status(port: int, service: str = "", timeout: float = 1.0) -> str:
    """The gRPC health status name of a server on 127.0.0.1:port ("UNREACHABLE" when it does not answer)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
