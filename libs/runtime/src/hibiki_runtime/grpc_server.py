"""asyncio gRPC server bootstrap: health, reflection, authentication, logging, metrics, error mapping."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from hibiki_runtime import contract
from hibiki_runtime.auth import Authenticator, reset_current_principal, set_current_principal
from hibiki_runtime.errors import FieldViolation, HibikiError, InvalidArgument
from hibiki_runtime.events import timestamp_problem
from hibiki_runtime.logging import log_context, trace_id_of
from hibiki_runtime.metrics import RuntimeMetrics

log = logging.getLogger("hibiki.grpc")

# Health and reflection stay open so that probes and tools work without credentials.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/")

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
MethodHandler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]]"
Handler = Callable[[Any, Context], Awaitable[Any]]
StreamHandler = Callable[[Any, Context], AsyncIterator[Any]]


def grpc_status_for(error: HibikiError) -> grpc.Status:
    """The rich gRPC status of a domain error (field violations travel as google.rpc.BadRequest)."""
    code = getattr(code_pb2, error.code)
    status = status_pb2.Status(code=code, message=error.message)
    if isinstance(error, InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
        status.details.append(detail)
    grpc_status: grpc.Status = rpc_status.to_status(status)
    return grpc_status


_SAME: Any = object()


def _wrap(
    handler: MethodHandler,
    unary: Callable[[Handler], Handler],
    stream: Callable[[StreamHandler], StreamHandler],
    request_deserializer: Any = _SAME,
) -> MethodHandler:
    """The handler with its behaviour wrapped; `request_deserializer=None` hands the wrapper raw bytes."""
    deserializer = handler.request_deserializer if request_deserializer is _SAME else request_deserializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),  # type: ignore[arg-type]  # aio servers hold coroutine functions
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream),  # type: ignore[arg-type]
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler  # client streaming is not used by Hibiki's APIs


def _trace_id(context: Context) -> str:
    """The caller's W3C trace id, or a fresh one, so that every log line of a call can be found together."""
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            return trace_id_of(value) or uuid.uuid4().hex
    return uuid.uuid4().hex


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors to statuses in one place, and logs and measures every call."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        metrics = self._metrics

        async def finish(context: Context, started: float, error: BaseException | None) -> None:
            status: grpc.Status | None = None
            if error is None:
                code = "OK"
            elif isinstance(error, HibikiError):
                status = grpc_status_for(error)
                code = status.code.name
                log.info("rpc %s failed: %s %s", method, code, error.message)
            elif isinstance(error, grpc.aio.AbortError):
                aborted = context.code()
                code = aborted.name if isinstance(aborted, grpc.StatusCode) else "UNKNOWN"
            elif isinstance(error, asyncio.CancelledError):
                code = "CANCELLED"
            else:
                code = "INTERNAL"
                log.error("rpc %s crashed", method, exc_info=error)
            metrics.grpc_requests.labels(method, code).inc()
            metrics.grpc_latency.labels(method).observe(time.perf_counter() - started)
            if status is not None:
                await context.abort(status.code, status.details, status.trailing_metadata)
            if code == "INTERNAL":
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")  # details stay in the logs

        def unary(behavior: Handler) -> Handler:
            async def wrapper(request: Any, context: Context) -> Any:
                started = time.perf_counter()
                with log_context(rpc=method, trace_id=_trace_id(context)):
                    try:
                        response = await behavior(request, context)
                    except BaseException as error:  # re-raised below, or replaced by the mapped status
                        await finish(context, started, error)
                        raise
                    await finish(context, started, None)
                    return response

            return wrapper

        def stream(behavior: StreamHandler) -> StreamHandler:
            async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
                started = time.perf_counter()
                with log_context(rpc=method, trace_id=_trace_id(context)):
                    try:
                        async for item in behavior(request, context):
                            yield item
                    except BaseException as error:  # re-raised below, or replaced by the mapped status
                        await finish(context, started, error)
                        raise
                    await finish(context, started, None)

            return wrapper

        return _wrap(handler, unary, stream)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call except health and reflection and makes the principal current."""

    def __init__(self, authenticator: Authenticator, open_prefixes: Iterable[str] = OPEN_SERVICES) -> None:
        self._authenticator = authenticator
        self._open = tuple(open_prefixes)

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._open):
            return handler
        authenticate = self._authenticator.authenticate

        def principal_for(context: Context) -> Any:
            metadata = {
                key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
            }
            return authenticate(metadata)

        def unary(behavior: Handler) -> Handler:
            async def wrapper(request: Any, context: Context) -> Any:
                token = set_current_principal(principal_for(context))
                try:
                    return await behavior(request, context)
                finally:
                    reset_current_principal(token)

            return wrapper

        def stream(behavior: StreamHandler) -> StreamHandler:
            async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
                token = set_current_principal(principal_for(context))
                try:
                    async for item in behavior(request, context):
                        yield item
                finally:
                    reset_current_principal(token)

            return wrapper

        return _wrap(handler, unary, stream)


def request_violations(message: Message, path: str = "") -> list[FieldViolation]:
    """What no Hibiki request may hold, field by field (nested ones included).

    Strings with U+0000 (PostgreSQL cannot store it in text) and timestamps that are invalid or outside
    1970–2199.
    """
    if message.DESCRIPTOR.full_name == Timestamp.DESCRIPTOR.full_name:
        problem = timestamp_problem(message)  # type: ignore[arg-type]
        return [FieldViolation(path.removesuffix("."), problem)] if problem else []
    violations = []
    for field, value in message.ListFields():
        for at, item in _field_items(field, value, path + field.name):
            if isinstance(item, Message):
                violations += request_violations(item, f"{at}.")
            elif isinstance(item, str) and "\x00" in item:
                violations.append(FieldViolation(at, "must not contain NUL characters"))
    return violations


def _field_items(field: FieldDescriptor, value: Any, name: str) -> list[tuple[str, Any]]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return [(f"{name}[{key!r}]", item) for key, item in value.items()] + [(name, key) for key in value]
    if field.is_repeated:
        return [(f"{name}[{index}]", item) for index, item in enumerate(value)]
    return [(name, value)]


class RequestCheckInterceptor(grpc.aio.ServerInterceptor):
    """Refuses requests that break their contract's field rules (protovalidate) or hold what no request may
    (request_violations) with INVALID_ARGUMENT naming the fields."""

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_SERVICES):
            return handler

        deserialize = handler.request_deserializer

        def decoded(request: Any) -> Any:
            # The request arrives as bytes (see the handler returned below), so that a body protobuf cannot
            # parse (e.g. a string field that is not UTF-8) is the caller's INVALID_ARGUMENT, not UNKNOWN.
            if deserialize is None or not isinstance(request, bytes):
                return request
            try:
                return deserialize(request)
            except DecodeError as error:
                raise InvalidArgument.field("(request)", f"cannot be parsed: {error}") from error

        def check(request: Any) -> None:
            if not isinstance(request, Message):
                return
            # The contract's declared limits first (the same rules the Kafka edge enforces), then what no
            # request may hold whatever its contract says.
            if violations := contract.violations(request) or request_violations(request):
                raise InvalidArgument(*violations)

        def unary(behavior: Handler) -> Handler:
            async def wrapper(request: Any, context: Context) -> Any:
                request = decoded(request)
                check(request)
                return await behavior(request, context)

            return wrapper

        def stream(behavior: StreamHandler) -> StreamHandler:
            async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
                request = decoded(request)
                check(request)
                async for item in behavior(request, context):
                    yield item

            return wrapper

        return _wrap(handler, unary, stream, request_deserializer=None)


Registrar = Callable[[grpc.aio.Server], None]


def tls_server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> grpc.ServerCredentials:
    """TLS for the gRPC port; with a client CA, only clients with a certificate it signed connect (mTLS)."""
    return grpc.ssl_server_credentials(
        [(key_file.read_bytes(), cert_file.read_bytes())],
        root_certificates=client_ca_file.read_bytes() if client_ca_file is not None else None,
        require_client_auth=client_ca_file is not None,
    )


def create_server(
    address: str,
    *,
    registrars: Iterable[tuple[str, Registrar]],
    authenticator: Authenticator,
    metrics: RuntimeMetrics,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """An unstarted server with the given services, health and reflection; port 0 picks a free port.

    Plaintext unless `credentials` (see tls_server_credentials) are given.
    """
    server = grpc.aio.server(
        interceptors=[
            ObservabilityInterceptor(metrics),
            AuthInterceptor(authenticator),
            RequestCheckInterceptor(),
        ],
        options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)],
    )
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    for full_name, register in registrars:
        register(server)
        names.append(full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(names, server)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    return server, port, health_servicer
