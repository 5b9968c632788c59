"""Where each service listens, which token to send, and one gRPC call with its errors made readable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import grpc
import typer

from hibiki_cli.errors import report_rpc_error
from hibiki_cli.output import Format, chosen

# Items per page when a command lists everything.
PAGE_SIZE = 100
Request = TypeVar("Request")
Response = TypeVar("Response")


class Service(StrEnum):
    GUIDANCE = "guidance-tts"
    ROUTING = "routing"
    SMS = "sms-gateway"
    REPORTING = "reporting"


@dataclass(frozen=True)
class Settings:
    """What the root options (or HIBIKI_* variables) configured for this invocation."""

    endpoints: dict[Service, str]
    token: str
    timeout_seconds: float
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards services that serve gRPC over TLS; a client certificate for mutual TLS."""

    ca_file: Path | None = None  # None: the system's trusted roots
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


class Api:
    """One channel to one service; every call carries the bearer token and a deadline."""

    def __init__(self, service: Service, endpoint: str, channel: grpc.Channel, settings: Settings) -> None:
        self.service = service
        self.endpoint = endpoint
        self.channel = channel
        self._metadata = (("authorization", f"Bearer {settings.token}"),) if settings.token else ()
        self._timeout = settings.timeout_seconds

    def unary(self, method: grpc.UnaryUnaryMultiCallable[Request, Response], request: Request) -> Response:
        """Call an RPC; a failure is printed with its status and field violations and ends the command."""
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise typer.Exit(report_rpc_error(self.service, self.endpoint, error)) from None

    def find(
        self, method: grpc.UnaryUnaryMultiCallable[Request, Response], request: Request
    ) -> Response | None:
        """Like `unary`, but None when the service knows no such thing (NOT_FOUND, or an id it cannot be)."""
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            assert isinstance(error, grpc.Call), "grpc raises RpcErrors that are also Calls"
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise typer.Exit(report_rpc_error(self.service, self.endpoint, error)) from None

    def every_page(
        self, method: grpc.UnaryUnaryMultiCallable[Request, Response], request: Request, items: str
    ) -> list[Any]:
        """Every item of a paged List/Search RPC; `items` names the repeated field of its response."""
        found: list[Any] = []
        setattr(request, "page_size", PAGE_SIZE)  # noqa: B010  (requests are distinct generated classes)
        while True:
            reply = self.unary(method, request)
            found.extend(getattr(reply, items))
            token = getattr(reply, "next_page_token")  # noqa: B009
            if not token:
                return found
            setattr(request, "page_token", token)  # noqa: B010

    def stream(
        self, method: grpc.UnaryStreamMultiCallable[Request, Response], request: Request
    ) -> Iterator[Response]:
        """Iterate a server-streaming RPC with the same error handling as `unary`."""
        try:
            yield from method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise typer.Exit(report_rpc_error(self.service, self.endpoint, error)) from None


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings), "the root callback stores the settings"
    return settings


@contextmanager
def connect(ctx: typer.Context, service: Service) -> Iterator[Api]:
    """An Api for `service` at its configured endpoint, closed when the block ends."""
    output = ctx.params.get("output")
    if isinstance(output, Format):  # `--json -o yaml` is wrong usage: say so before any call is made
        chosen(output, bool(ctx.params.get("json_output")))
    settings = settings_of(ctx)
    endpoint = settings.endpoints[service]
    channel = (
        grpc.secure_channel(endpoint, settings.tls.credentials())
        if settings.tls is not None
        else grpc.insecure_channel(endpoint)
    )
    with channel:
        yield Api(service, endpoint, channel, settings)
