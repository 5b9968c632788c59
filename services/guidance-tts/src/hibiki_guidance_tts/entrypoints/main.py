"""Process entry point of the guidance-tts service."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from hibiki.guidance.v1 import guidance_service_pb2, guidance_service_pb2_grpc
from hibiki_runtime.service import ServiceRuntime

from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.adapters.synthesizer import ProcessPoolSynthesizer
from hibiki_guidance_tts.entrypoints.grpc_api import GuidanceServicer
from hibiki_guidance_tts.entrypoints.http_api import add_audio_route
from hibiki_guidance_tts.service_layer.audio_library import AudioLibrary
from hibiki_guidance_tts.service_layer.guidance_catalog import GuidanceCatalog
from hibiki_guidance_tts.service_layer.unit_of_work import UnitOfWork
from hibiki_guidance_tts.settings import GuidanceTtsSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def build_runtime(settings: GuidanceTtsSettings | None = None) -> ServiceRuntime:
    """Wire the guidance-tts service onto the shared runtime."""
    settings = settings or GuidanceTtsSettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    metrics = GuidanceMetrics(runtime.registry, runtime.metrics.prefix)
    synthesizer = ProcessPoolSynthesizer(
        metrics,
        workers=settings.synthesis_workers,
        max_waiting=settings.synthesis_queue,
        speed=settings.voice_speed,
        half_tone=settings.voice_half_tone,
    )
    unit_of_work = partial(UnitOfWork, runtime.sessions)
    library = AudioLibrary(
        unit_of_work, synthesizer, metrics, wav_cache_bytes=settings.wav_cache_mb * 1024 * 1024
    )
    catalog = GuidanceCatalog(unit_of_work, library)
    servicer = GuidanceServicer(library, catalog, metrics)
    runtime.add_grpc_service(
        guidance_service_pb2.DESCRIPTOR.services_by_name["GuidanceService"].full_name,
        partial(guidance_service_pb2_grpc.add_GuidanceServiceServicer_to_server, servicer),
    )
    add_audio_route(runtime.http, catalog, runtime.authenticator, metrics)
    runtime.on_startup(synthesizer.start)
    runtime.on_shutdown(synthesizer.stop)
    return runtime


def main() -> None:
    build_runtime().run()
