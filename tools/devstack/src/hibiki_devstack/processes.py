"""Child processes that never outlive their parent, and gRPC health waiting."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: the kernel sends SIGTERM to the child when the parent dies, even by SIGKILL.
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # Ctrl-C reaches the supervisor only; it stops children in order


def child_process_kwargs() -> dict[str, Any]:
    """Popen arguments for a child that is stopped by its parent and dies with it."""
    return {"preexec_fn": _die_with_parent}


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
