"""HTTP GET of guidance audio for browsers: /audio/{id}.wav, with the same bearer tokens as gRPC."""

from __future__ import annotations

from aiohttp import web
from hibiki_runtime.auth import Authenticator, Role
from hibiki_runtime.errors import (
    FailedPrecondition,
    HibikiError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from hibiki_runtime.http import http_principal

from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.domain.model import AudioFormat
from hibiki_guidance_tts.service_layer.guidance_catalog import GuidanceCatalog

_FORMATS = {"mulaw": AudioFormat.MULAW_8K, "pcm16": AudioFormat.PCM16}
_STATUS: dict[type[HibikiError], type[web.HTTPError]] = {
    NotFound: web.HTTPNotFound,
    InvalidArgument: web.HTTPBadRequest,
    FailedPrecondition: web.HTTPConflict,
    # A system prompt's first fetch synthesizes it: a full queue asks the player to come back.
    ResourceExhausted: web.HTTPServiceUnavailable,
}


def add_audio_route(
    app: web.Application, catalog: GuidanceCatalog, authenticator: Authenticator, metrics: GuidanceMetrics
) -> None:
    """GET /audio/{id}.wav[?format=mulaw|pcm16]: the WAV of an audio file, a guidance or a system prompt."""

    async def get_audio(request: web.Request) -> web.Response:
        principal = http_principal(request, authenticator, Role.OPERATOR, Role.PLATFORM)
        fmt = _FORMATS.get(request.query.get("format", "mulaw"))
        if fmt is None:
            raise web.HTTPBadRequest(text="format must be mulaw or pcm16")
        item_id = request.match_info["id"]
        if not item_id.isprintable():  # NUL or control characters: no id holds them (nor can PostgreSQL)
            raise web.HTTPBadRequest(text="id must be an audio file, guidance or system prompt id")
        try:
            await catalog.provision_tenant(principal.tenant_id)
            wav = await catalog.wav_by_id(principal.tenant_id, fmt, item_id)
        except HibikiError as error:
            status = _STATUS.get(type(error), web.HTTPInternalServerError)
            headers = {"Retry-After": "1"} if isinstance(error, ResourceExhausted) else None
            raise status(text=error.message, headers=headers) from error
        metrics.bytes_served.labels("http", fmt.value).inc(len(wav.data))
        return web.Response(
            body=wav.data,
            content_type="audio/wav",
            headers={"ETag": f'"{wav.cache_key}-{fmt.value}"', "Cache-Control": "private, max-age=300"},
        )

    app.router.add_get("/audio/{id}.wav", get_audio)
