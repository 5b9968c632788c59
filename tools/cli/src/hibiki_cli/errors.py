"""gRPC failures as messages an operator can act on, and the exit code each kind of failure ends with."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from hibiki_cli.connection import Service

# Exit codes, documented in `hibiki --help`.
EXIT_FAILED = 1  # a check said no (e.g. `routing validate` found problems) or the server failed
EXIT_REFUSED = 3  # the request was refused: invalid field, stale revision, precondition, duplicate
EXIT_NOT_FOUND = 4
EXIT_AUTH = 5  # missing/unknown token or a role that may not do this
EXIT_UNREACHABLE = 6  # service not reachable or too slow

_EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_REFUSED,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_REFUSED,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_REFUSED,
    grpc.StatusCode.ABORTED: EXIT_REFUSED,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_REFUSED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_REFUSED,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNREACHABLE,
}

_HINTS = {
    grpc.StatusCode.ABORTED: "someone saved a newer revision since you read it: show it again, then retry",
    grpc.StatusCode.UNAUTHENTICATED: "pass --token or set HIBIKI_TOKEN to a bearer token of your tenant",
    grpc.StatusCode.PERMISSION_DENIED: "this needs an operator token (viewer tokens can only read reports)",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the service did not answer in time; raise --timeout or retry",
}

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def field_violations(error: grpc.Call) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations carried in the rich status, if any, each once."""
    status = rpc_status.from_call(error)
    if status is None:
        return []
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return list(dict.fromkeys(violations))


def headline(message: str, violations: list[tuple[str, str]]) -> str:
    """The status message without the violations listed below it (services join them as "field: why; …"),
    so that each field error is printed once."""
    rest = message
    for field, description in violations:
        rest = rest.replace(f"{field}: {description}", ";")
    rest = re.sub(r"(\s*;\s*)+", "; ", rest).strip("; ")
    if rest or not violations:
        return rest
    return f"{len(violations)} invalid field{'s' if len(violations) != 1 else ''}:"


def report_rpc_error(service: Service, endpoint: str, error: grpc.RpcError) -> int:
    """Print what went wrong on stderr; returns the exit code."""
    assert isinstance(error, grpc.Call), "grpc raises RpcErrors that are also Calls"
    code = error.code()
    violations = field_violations(error)
    message = headline(error.details() or "", violations)
    stderr.print(f"[bold red]error[/]: {code.name} from {service.value} ({endpoint}): {escape(message)}")
    for field, description in violations:
        stderr.print(f"  • [bold]{escape(field)}[/]: {escape(description)}")
    hint = _HINTS.get(code)
    if code is grpc.StatusCode.UNAVAILABLE:
        variable = f"HIBIKI_{service.name}_ENDPOINT"
        hint = (
            f"is {service.value} running at {endpoint}? set --{service.name.lower()}-endpoint or {variable}"
        )
    if hint:
        stderr.print(f"  hint: {hint}")
    return _EXIT_CODES.get(code, EXIT_FAILED)
