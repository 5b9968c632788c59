"""ServiceRuntime: the one bootstrap every Hibiki service uses (logs, DB, Kafka, gRPC, HTTP, shutdown)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hibiki_runtime.auth import Authenticator, authenticator_from_settings
from hibiki_runtime.consumer import BatchHandler, ConsumerEdge, ConsumerProgress, Translator
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.grpc_server import Registrar, create_server, tls_server_credentials
from hibiki_runtime.kafka import (
    PartitionAssignment,
    create_broker,
    ensure_topics,
    publish_records,
    record_consumer_lag,
    register_batch_consumer,
)
from hibiki_runtime.logging import configure_logging
from hibiki_runtime.metrics import RuntimeMetrics
from hibiki_runtime.outbox import OutboxRelay
from hibiki_runtime.settings import ServiceSettings

log = logging.getLogger("hibiki.service")

Hook = Callable[[], Coroutine[Any, Any, None]]
C = TypeVar("C")


async def repeat(
    name: str, interval_seconds: float, job: Callable[[], Awaitable[object]], *, first_now: bool = True
) -> None:
    """Run `job` now (or after one interval) and then every interval, forever; a failed run is logged and
    tried again at the next interval."""
    if not first_now:
        await asyncio.sleep(interval_seconds)
    while True:
        try:
            await job()
        except Exception:
            log.exception("%s failed; trying again in %.1f s", name, interval_seconds)
        await asyncio.sleep(interval_seconds)


class ServiceRuntime:
    """Wires the shared parts of a service; the service adds its gRPC servicers, consumers and tasks."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations_dir: Path | None = None,
        authenticator: Authenticator | None = None,
        version: str = "0.1.0",
    ) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = RuntimeMetrics(settings.service_name, self.registry)
        self.metrics.build_info.info({"version": version, "service": settings.service_name})
        self.engine = create_engine(settings.resolved_database_url)
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(settings.kafka_bootstrap_servers, f"hibiki-{settings.service_name}")
        self.relay = OutboxRelay(
            self.engine,
            partial(publish_records, self.broker),
            self.metrics,
            batch_size=settings.outbox_batch,
            idle_seconds=settings.outbox_idle_seconds,
        )
        self.http = web.Application()
        self.http.router.add_get("/metrics", self._metrics_endpoint)
        self.http.router.add_get("/healthz", self._health_endpoint)
        self.grpc_port = 0
        self.http_port = 0
        self._migrations_dir = migrations_dir
        self.authenticator = authenticator or authenticator_from_settings(settings)
        self._grpc_tls = self._grpc_credentials()  # configuration errors surface before anything starts
        self._registrars: list[tuple[str, Registrar]] = []
        self._startup_hooks: list[Hook] = []
        self._shutdown_hooks: list[Hook] = []
        self._stopping_hooks: list[Hook] = []
        self._drain_hooks: list[Hook] = []
        self._task_factories: list[tuple[str, Hook]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None
        self._http_runner: web.AppRunner | None = None
        self._serving = False
        self.progress = ConsumerProgress()
        # The partitions this process consumes (see PartitionAssignment.share), updated at each rebalance.
        self.assignment = PartitionAssignment()
        self._stalled: dict[tuple[str, int], float] = {}
        self._health_names: list[str] = []

    # -- what a service adds -------------------------------------------------------------------------
    def add_grpc_service(self, full_name: str, register: Registrar) -> None:
        """Serve a gRPC service; its `full_name` (e.g. "hibiki.routing.v1.RoutingService") shows in health."""
        self._registrars.append((full_name, register))

    def consume(
        self,
        translators: Mapping[str, Translator[C]],
        handler: BatchHandler[C],
        *,
        max_records: int | None = None,
    ) -> None:
        """Consume the translators' topics in batches with the service's consumer group.

        Each record becomes its topic translator's command at the edge (or a dead letter); the handler gets
        Inbound items (see hibiki_runtime.consumer). Pass all the topics a handler needs in one call: each
        call is one group member, and each join costs seconds on some brokers.
        """
        register_batch_consumer(
            self.broker,
            edge=ConsumerEdge(translators),
            group=self.settings.consumer_group,
            handler=handler,
            metrics=self.metrics,
            progress=self.progress,
            assignment=self.assignment,
            max_records=max_records or self.settings.kafka_max_batch,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            dlq_max_bytes=self.settings.kafka_dlq_max_bytes,
        )

    def add_task(self, name: str, factory: Hook) -> None:
        """Run a background loop while the service runs; it is cancelled at shutdown."""
        self._task_factories.append((name, factory))

    def every(
        self,
        name: str,
        interval_seconds: float,
        job: Callable[[], Awaitable[object]],
        *,
        first_now: bool = True,
    ) -> None:
        """Run `job` now (or after one interval) and then every interval while the service runs (`repeat`)."""
        self.add_task(name, partial(repeat, name, interval_seconds, job, first_now=first_now))

    def on_startup(self, hook: Hook) -> None:
        """Run after migrations, before consuming and serving."""
        self._startup_hooks.append(hook)

    def on_stopping(self, hook: Hook) -> None:
        """Run first when the service stops, while the consumers still run: let work in progress that
        needs more records finish (e.g. calls that still get actions), after taking no new work."""
        self._stopping_hooks.append(hook)

    def on_drain(self, hook: Hook) -> None:
        """Run once the consumers stopped, before the outbox is relayed for the last time: finish work that
        consumed batches left running (its outbox rows are still published)."""
        self._drain_hooks.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run after consumers and servers stopped, before connections close."""
        self._shutdown_hooks.append(hook)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate, connect and start serving; the service is SERVING when this returns."""
        settings = self.settings
        if self._migrations_dir is not None and settings.run_migrations:
            await upgrade_to_head(self.engine, self._migrations_dir)
        if settings.kafka_create_topics:
            created = await ensure_topics(
                settings.kafka_bootstrap_servers, ALL_TOPICS, settings.kafka_topic_partitions
            )
            if created:
                log.info("created topics %s", ", ".join(created))
        for hook in self._startup_hooks:
            await hook()
        await self.broker.start()
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        self._tasks.append(asyncio.create_task(self._watch_consumer_lag(), name="consumer-lag"))
        self._tasks.append(asyncio.create_task(self._watch_consumer_progress(), name="consumer-progress"))
        for name, factory in self._task_factories:
            self._tasks.append(asyncio.create_task(factory(), name=name))

        server, self.grpc_port, health = create_server(
            f"{settings.grpc_host}:{settings.grpc_port}",
            registrars=self._registrars,
            authenticator=self.authenticator,
            metrics=self.metrics,
            credentials=self._grpc_tls,
        )
        self._server, self._health = server, health
        await server.start()
        runner = web.AppRunner(self.http, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        self._http_runner = runner
        self.http_port = runner.addresses[0][1] if runner.addresses else settings.http_port
        self._health_names = ["", *(name for name, _ in self._registrars)]
        self._serving = True
        await self._publish_health()
        log.info(
            "%s serving: gRPC on %d, HTTP on %d, database %s",
            settings.service_name,
            self.grpc_port,
            self.http_port,
            self.engine.url.render_as_string(hide_password=True),
        )

    async def stop(self) -> None:
        """Graceful shutdown: stop taking work, finish in-flight work, commit, relay, close."""
        if not self._serving:
            return
        self._serving = False
        log.info("%s shutting down", self.settings.service_name)
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.settings.grpc_shutdown_grace_seconds)
        for hook in self._stopping_hooks:
            try:
                await hook()
            except Exception:
                log.exception("finishing work at shutdown failed; continuing the shutdown")
        for subscriber in self.broker.subscribers:
            await subscriber.stop()  # waits for in-flight batches; they ack after their DB commit
        for hook in self._drain_hooks:
            try:
                await hook()
            except Exception:
                log.exception("draining at shutdown failed; continuing the shutdown")
        self.relay.stop()
        for task in self._tasks:
            if task.get_name() != "outbox-relay":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.relay.drain()
        except Exception:
            log.warning("outbox not drained at shutdown; the next start relays the rest", exc_info=True)
        await self.broker.stop()
        for hook in self._shutdown_hooks:
            await hook()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        await self.engine.dispose()
        log.info("%s stopped", self.settings.service_name)

    async def serve(self) -> None:
        """Start, run until SIGTERM/SIGINT, then stop gracefully."""
        configure_logging(self.settings.service_name, self.settings.log_level, self.settings.log_json)
        stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop_requested.set)
        await self.start()
        await stop_requested.wait()
        await self.stop()

    def run(self) -> None:
        """Entry point of a service process."""
        asyncio.run(self.serve())

    def _grpc_credentials(self) -> grpc.ServerCredentials | None:
        settings = self.settings
        if settings.grpc_tls_cert_file is None and settings.grpc_tls_key_file is None:
            if settings.grpc_tls_client_ca_file is not None:
                raise ValueError(
                    "HIBIKI_GRPC_TLS_CLIENT_CA_FILE needs HIBIKI_GRPC_TLS_CERT_FILE and _KEY_FILE"
                )
            return None
        if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
            raise ValueError("gRPC TLS needs both HIBIKI_GRPC_TLS_CERT_FILE and HIBIKI_GRPC_TLS_KEY_FILE")
        return tls_server_credentials(
            settings.grpc_tls_cert_file, settings.grpc_tls_key_file, settings.grpc_tls_client_ca_file
        )

    async def _watch_consumer_lag(self) -> None:
        while True:
            await asyncio.sleep(self.settings.consumer_lag_interval_seconds)
            try:
                self.progress.saw_lag(await record_consumer_lag(self.broker, self.metrics))
            except Exception:
                log.warning("could not read consumer lag", exc_info=True)

    @property
    def healthy(self) -> bool:
        """Serving, and no consumer partition stalled (what gRPC health and /healthz say)."""
        return self._serving and not self._stalled

    async def _watch_consumer_progress(self) -> None:
        """Turn NOT_SERVING while a partition is stalled, so that the liveness probe restarts the pod."""
        limit = self.settings.consumer_stall_seconds
        while True:
            await asyncio.sleep(max(0.2, min(5.0, limit / 6)))
            stalled = self.progress.stalled(limit)
            self.metrics.set_consumer_stalled(stalled)
            changed = stalled.keys() != self._stalled.keys()
            self._stalled = stalled
            if not changed:
                continue
            if stalled:
                log.error(
                    "consumer stalled: %s without a commit for over %.0fs; reporting NOT_SERVING",
                    ", ".join(f"{topic}[{partition}]" for topic, partition in sorted(stalled)),
                    limit,
                )
            else:
                log.info("consumer moving again; reporting SERVING")
            await self._publish_health()

    async def _publish_health(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for full_name in self._health_names:
            await self._health.set(full_name, status)

    # -- HTTP ----------------------------------------------------------------------------------------
    async def _metrics_endpoint(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health_endpoint(self, _request: web.Request) -> web.Response:
        if self.healthy:
            return web.json_response({"status": "SERVING"})
        stalled = [f"{topic}[{partition}]" for topic, partition in sorted(self._stalled)]
        return web.json_response({"status": "NOT_SERVING", "stalled_partitions": stalled}, status=503)
