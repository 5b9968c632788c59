"""The process pool behind a bounded queue: never blocks the loop, refuses clearly when full."""

import asyncio
import os
import signal
import time

import pytest
from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.adapters.synthesizer import ProcessPoolSynthesizer
from hibiki_runtime.errors import InvalidArgument, ResourceExhausted
from prometheus_client import CollectorRegistry

LONG_TEXT = "案内をお聞きいただきもう一度入力してください。" * 6


def sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


@pytest.fixture(scope="module")
async def synthesizer() -> tuple[ProcessPoolSynthesizer, CollectorRegistry]:  # type: ignore[misc]
    registry = CollectorRegistry()
    pool = ProcessPoolSynthesizer(GuidanceMetrics(registry), workers=1, max_waiting=1)
    await pool.start()
    yield pool, registry
    await pool.stop()


async def test_full_queue_is_refused_with_resource_exhausted(synthesizer) -> None:
    pool, registry = synthesizer
    running = asyncio.create_task(pool.synthesize(LONG_TEXT))
    waiting = asyncio.create_task(pool.synthesize(LONG_TEXT + "。"))
    await asyncio.sleep(0)
    assert sample(registry, "hibiki_guidance_tts_synthesis_queue_depth") == 2
    with pytest.raises(ResourceExhausted, match="busy"):
        await pool.synthesize("もう一つ")
    assert sample(registry, "hibiki_guidance_tts_synthesis_rejected_total") == 1
    await asyncio.gather(running, waiting)
    assert sample(registry, "hibiki_guidance_tts_synthesis_queue_depth") == 0
    assert (await pool.synthesize("もう一つ")).duration_ms > 0


async def test_event_loop_keeps_running_while_synthesizing(synthesizer) -> None:
    pool, _ = synthesizer
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    await pool.synthesize(LONG_TEXT + "です")
    elapsed = time.perf_counter() - started
    ticking.cancel()
    assert elapsed > 0.1
    assert ticks >= elapsed / 0.01 * 0.5  # the loop was free for at least half of the time


async def test_synthesis_time_is_measured_and_unspeakable_text_is_a_field_error(synthesizer) -> None:
    pool, registry = synthesizer
    before = sample(registry, "hibiki_guidance_tts_synthesis_duration_seconds_count")
    audio = await pool.synthesize("こんにちは")
    assert audio.cache_key and audio.content_hash and audio.mulaw_wav.startswith(b"RIFF")
    assert sample(registry, "hibiki_guidance_tts_synthesis_duration_seconds_count") == before + 1
    with pytest.raises(InvalidArgument) as error:
        await pool.synthesize("※")
    assert error.value.violations[0].field == "text"


async def test_a_killed_worker_fails_one_request_and_the_pool_recovers(synthesizer) -> None:
    pool, _ = synthesizer
    running = asyncio.create_task(pool.synthesize(LONG_TEXT + "ね"))
    await asyncio.sleep(0.2)
    for worker in list(pool._pool._processes.values()):  # type: ignore[union-attr]  # fault injection
        os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(ResourceExhausted, match="restarted"):
        await running
    assert (await pool.synthesize("復旧しました")).duration_ms > 0
