"""guidance-tts: real-time factor of synthesis through the service, and latency of fetching stored audio."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import grpc
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as pb_grpc

from hibiki_bench.environment import OPERATOR, TOKEN
from hibiki_bench.stats import percentile

# Guidance-like sentences of a few seconds each; a number makes every text new (no reuse of stored audio).
TEXT = (
    "お電話ありがとうございます。ご予約の確認は1を、変更は2を、"
    "その他のお問い合わせは3を押してください。受付番号{n}番。"
)


@dataclass(frozen=True)
class TtsMeasurements:
    service_rtf: float
    engine_rtf: float
    fetch_p50_ms: float
    fetch_p99_ms: float
    healthz_p99_ms: float


def _engine_rtf(texts: list[str]) -> float:
    """Real-time factor of the bare engine in this process (the floor under the service's)."""
    import pyopenjtalk

    pyopenjtalk.tts("準備")  # loads the dictionary outside the timing
    spent = spoken = 0.0
    for text in texts:
        began = time.perf_counter()
        samples, rate = pyopenjtalk.tts(text)
        spent += time.perf_counter() - began
        spoken += len(samples) / rate
    return spent / spoken


async def _fetch_p(session: aiohttp.ClientSession, url: str, count: int) -> tuple[float, float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        async with session.get(url) as response:
            response.raise_for_status()
            await response.read()
        latencies.append((time.perf_counter() - began) * 1000)
    return percentile(latencies, 0.5), percentile(latencies, 0.99)


async def measure(grpc_port: int, http_port: int, texts: int, fetches: int, run_id: str) -> TtsMeasurements:
    """Synthesize new texts over gRPC (RTF = call time / audio length), then fetch one WAV repeatedly."""
    sentences = [TEXT.format(n=n) for n in range(texts)]
    spent = spoken = 0.0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        api = pb_grpc.GuidanceServiceStub(channel)
        audio_id = ""
        for index, text in enumerate(sentences):
            began = time.perf_counter()
            reply = await api.CreateAudioFile(
                pb.CreateAudioFileRequest(name=f"{run_id}{index}", text=text), metadata=OPERATOR
            )
            spent += time.perf_counter() - began
            spoken += reply.audio_file.duration.ToTimedelta().total_seconds()
            audio_id = reply.audio_file.id
    engine_rtf = await asyncio.to_thread(_engine_rtf, sentences)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"http://127.0.0.1:{http_port}"
    async with aiohttp.ClientSession(headers=headers) as session:
        await _fetch_p(session, f"{base}/audio/{audio_id}.wav?format=mulaw", 5)  # warm up
        fetch_p50, fetch_p99 = await _fetch_p(session, f"{base}/audio/{audio_id}.wav?format=mulaw", fetches)
        _, healthz_p99 = await _fetch_p(session, f"{base}/healthz", fetches)
    return TtsMeasurements(spent / spoken, engine_rtf, fetch_p50, fetch_p99, healthz_p99)
