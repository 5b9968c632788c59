"""Speech synthesis off the event loop: a process pool behind a bounded admission queue."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import version

from hibiki_runtime.errors import InvalidArgument, ResourceExhausted

from hibiki_guidance_tts.adapters import speech
from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.domain.model import (
    SynthesizedAudio,
    VoiceSettings,
    audio_cache_key,
    silence_cache_key,
)

ENGINE = f"pyopenjtalk-plus/{version('pyopenjtalk-plus')}"


class ProcessPoolSynthesizer:
    """Runs Open JTalk in `workers` processes; at most `max_waiting` more requests wait for one.

    Beyond that a request fails at once with RESOURCE_EXHAUSTED, so a burst cannot pile up unbounded work
    and editors get a clear "try again" instead of a deadline exceeded.
    """

    def __init__(
        self,
        metrics: GuidanceMetrics,
        *,
        workers: int,
        max_waiting: int,
        speed: float = 1.0,
        half_tone: float = 0.0,
    ) -> None:
        self.voice = VoiceSettings(engine=ENGINE, speed=speed, half_tone=half_tone)
        self._metrics = metrics
        self._workers = workers
        self._capacity = workers + max_waiting
        self._admitted = 0
        self._slots = asyncio.Semaphore(workers)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: forking a process that runs gRPC's threads is unsafe.
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))

    async def start(self) -> None:
        """Start every worker and load the dictionary, so the first request is not slow."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, speech.warm_up) for _ in range(self._workers))
        )

    async def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def synthesize(self, text: str, *, trim_silence: bool = False) -> SynthesizedAudio:
        if self._admitted >= self._capacity:
            self._metrics.rejected.inc()
            raise ResourceExhausted(
                f"speech synthesis is busy ({self._admitted} requests in progress); retry shortly"
            )
        self._admitted += 1
        self._metrics.queue_depth.set(self._admitted)
        try:
            async with self._slots:
                started = time.perf_counter()
                pool = self._pool
                rendered = await asyncio.get_running_loop().run_in_executor(
                    pool, speech.render, text, self.voice.speed, self.voice.half_tone, trim_silence
                )
                self._metrics.synthesis_seconds.observe(time.perf_counter() - started)
        except speech.NothingToSay as error:
            raise InvalidArgument.field("text", "contains nothing that can be spoken") from error
        except BrokenProcessPool as error:  # a worker died (e.g. killed for memory): start fresh workers
            if pool is self._pool:  # the first of the failed requests replaces it
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            raise ResourceExhausted("the speech engine restarted; retry shortly") from error
        finally:
            self._admitted -= 1
            self._metrics.queue_depth.set(self._admitted)
        return _audio(audio_cache_key(text, self.voice, trim_silence=trim_silence), rendered)

    def silence(self, duration_ms: int) -> SynthesizedAudio:
        """Silent audio needs no engine: it is encoded right here."""
        return _audio(silence_cache_key(duration_ms), speech.silence(duration_ms))


def _audio(cache_key: str, rendered: speech.Rendered) -> SynthesizedAudio:
    return SynthesizedAudio(
        cache_key=cache_key,
        mulaw_wav=rendered.mulaw_wav,
        pcm16_wav=rendered.pcm16_wav,
        pcm16_sample_rate=speech.PCM16_RATE,
        duration_ms=rendered.duration_ms,
        content_hash=rendered.content_hash,
    )
