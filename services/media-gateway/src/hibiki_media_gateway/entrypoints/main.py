"""media-gateway process: SIP calls in, call.events out, call.actions carried out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from hibiki_runtime.events import CALL_ACTIONS
from hibiki_runtime.instances import Instance
from hibiki_runtime.kafka import start_group_at_end
from hibiki_runtime.service import ServiceRuntime

from hibiki_media_gateway.adapters.audio_store import AudioStore
from hibiki_media_gateway.adapters.metrics import MediaMetrics
from hibiki_media_gateway.adapters.sip_engine import SipConfig, SipEngine, SipEvent
from hibiki_media_gateway.adapters.tables import media_instances
from hibiki_media_gateway.entrypoints import call_actions_consumer
from hibiki_media_gateway.service_layer.event_log import EventLog
from hibiki_media_gateway.service_layer.lost_calls import LostCalls
from hibiki_media_gateway.service_layer.switchboard import Switchboard
from hibiki_media_gateway.settings import MediaGatewaySettings

log = logging.getLogger("hibiki.media")
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
LOST_CALLS_INTERVAL_SECONDS = 5.0


def sip_config(settings: MediaGatewaySettings) -> SipConfig:
    return SipConfig(
        host=settings.sip_host,
        port=settings.sip_port,
        udp=settings.sip_udp,
        tcp=settings.sip_tcp,
        public_address=settings.sip_public_address,
        rtp_port=settings.rtp_port,
        rtp_port_range=settings.rtp_port_range,
        max_calls=settings.media_max_calls,
        pjsip_log_level=settings.pjsip_log_level,
        transfer_mode=settings.media_transfer_mode,
    )


def build_runtime(settings: MediaGatewaySettings | None = None) -> ServiceRuntime:
    """Wire media-gateway onto the shared runtime."""
    settings = settings or MediaGatewaySettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    metrics = MediaMetrics(runtime.registry, runtime.metrics.prefix)
    instance = Instance(runtime.sessions, media_instances)
    audio = AudioStore(
        settings.guidance_url,
        settings.guidance_tokens,
        settings.data_dir / "media-audio" / settings.media_instance_name,
        audio_format=settings.media_audio_format,
        fresh_seconds=settings.media_audio_fresh_seconds,
        max_bytes=settings.media_audio_cache_mb * 1024 * 1024,
    )
    events = EventLog(runtime.sessions, runtime.relay.notify, metrics)
    to_loop = _ToLoop()
    engine = SipEngine(sip_config(settings), to_loop)
    board = Switchboard(
        engine,
        audio,
        events,
        metrics,
        tenants_by_number=settings.tenants_by_number,
        instance_id=instance.instance_id,
        idle_timeout=settings.media_idle_timeout_seconds,
        max_calls=settings.media_max_calls,
        transfer_domain=settings.media_transfer_domain,
    )
    to_loop.target = board.on_sip
    instance_timeout = timedelta(seconds=settings.media_instance_timeout_seconds)
    lost = LostCalls(
        runtime.sessions, instance, metrics, runtime.relay.notify, instance_timeout=instance_timeout
    )

    async def open_lines() -> None:
        to_loop.loop = asyncio.get_running_loop()
        if not settings.media_tenants:
            log.warning("no tenants configured (HIBIKI_MEDIA_TENANTS): every call is refused with 404")
        # Actions written from now on reach this process, whenever its consumer has joined.
        await start_group_at_end(settings.kafka_bootstrap_servers, settings.consumer_group, [CALL_ACTIONS])
        await audio.start()
        await asyncio.to_thread(engine.start)
        board.accepting = True

    async def close_lines() -> None:
        await asyncio.to_thread(engine.stop)
        await audio.stop()

    runtime.on_startup(instance.register)
    runtime.on_startup(open_lines)
    runtime.every("media-heartbeat", settings.media_heartbeat_seconds, instance.heartbeat, first_now=False)
    runtime.every("media-lost-calls", LOST_CALLS_INTERVAL_SECONDS, lost.sweep)
    runtime.consume(call_actions_consumer.TRANSLATORS, board.handle_actions)
    runtime.on_stopping(lambda: board.drain(settings.media_drain_seconds))
    runtime.on_shutdown(close_lines)
    runtime.on_shutdown(instance.leave)  # after the calls ended: nothing of this process is left to report
    return runtime


class _ToLoop:
    """Hands the SIP engine's events (from PJSIP's thread) to the switchboard on the event loop."""

    loop: asyncio.AbstractEventLoop | None = None
    target: Callable[[SipEvent], None] | None = None

    def __call__(self, event: SipEvent) -> None:
        if self.loop is not None and self.target is not None:
            self.loop.call_soon_threadsafe(self.target, event)


def main() -> None:
    build_runtime().run()
