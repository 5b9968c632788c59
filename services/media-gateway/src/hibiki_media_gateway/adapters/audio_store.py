"""Prompt audio from guidance-tts, kept in a local cache so that a prompt plays without a round trip.

`GET {guidance_url}/audio/{id}.wav?format=…` with the tenant's platform token answers the WAV of a
guidance, a system prompt (`system:…`) or an audio file. Files are written under the cache directory by
content (the ETag guidance-tts gives), so a changed guidance gets a new file while calls already playing the
old one keep it. An entry younger than `fresh_seconds` is used as it is; an older one is fetched again, and
if guidance-tts does not answer the old file is played rather than silence. Fetches of one prompt share one
request. The cache keeps at most `max_bytes` of files (least recently used go first).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp

log = logging.getLogger("hibiki.media.audio")
_UNLINK_AFTER = 600.0  # seconds: longer than any prompt plays


class AudioUnavailable(Exception):
    """No audio for a prompt: unknown id, no token for the tenant, or guidance-tts unreachable and no copy."""


@dataclass
class _Entry:
    path: Path
    etag: str
    size: int
    fetched: float  # monotonic seconds


class AudioStore:
    def __init__(
        self,
        base_url: str,
        tokens: Mapping[str, str],
        cache_dir: Path,
        *,
        audio_format: str = "mulaw",
        fresh_seconds: float = 300.0,
        max_bytes: int = 256 * 1024 * 1024,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = dict(tokens)
        self._dir = cache_dir
        self._format = audio_format
        self._fresh = fresh_seconds
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._fetching: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        self._bytes = 0
        self._http: aiohttp.ClientSession | None = None
        self.fetches = 0  # requests sent to guidance-tts (tests and metrics read it)

    async def start(self) -> None:
        """Open the HTTP client; files a previous run left in the cache directory are removed."""
        if self._dir.exists():
            await asyncio.to_thread(shutil.rmtree, self._dir, True)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def knows(self, tenant_id: str) -> bool:
        return tenant_id in self._tokens

    async def file(self, tenant_id: str, audio_id: str) -> Path:
        """A local WAV of the prompt `audio_id` of `tenant_id`; AudioUnavailable when there is none."""
        if not audio_id:
            raise AudioUnavailable("the prompt names no audio")
        key = (tenant_id, audio_id)
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.fetched < self._fresh:
            self._entries.move_to_end(key)
            return entry.path
        pending = self._fetching.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._fetching[key] = pending
            try:
                pending.set_result(await self._fetch(tenant_id, audio_id))
            except Exception as error:
                pending.set_exception(error)
                pending.exception()  # retrieved: only the waiters below re-raise it
            finally:
                del self._fetching[key]
        try:
            return (await asyncio.shield(pending)).path
        except AudioUnavailable:
            if entry is not None and entry.path.exists():
                log.warning("guidance-tts did not answer for %s; playing the copy fetched before", audio_id)
                return entry.path
            raise

    async def _fetch(self, tenant_id: str, audio_id: str) -> _Entry:
        token = self._tokens.get(tenant_id)
        if token is None:
            raise AudioUnavailable(f"no guidance-tts token for tenant {tenant_id!r} (HIBIKI_MEDIA_TENANTS)")
        if self._http is None:
            raise AudioUnavailable("the audio store is not started")
        url = f"{self._base_url}/audio/{quote(audio_id, safe=':')}.wav"
        self.fetches += 1
        try:
            async with self._http.get(
                url, params={"format": self._format}, headers={"Authorization": f"Bearer {token}"}
            ) as response:
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise AudioUnavailable(
                        f"guidance-tts answered {response.status} for {audio_id}: {detail}"
                    )
                data = await response.read()
                etag = response.headers.get("ETag", "").strip('"')
        except (aiohttp.ClientError, TimeoutError) as error:
            raise AudioUnavailable(f"guidance-tts unreachable for {audio_id}: {error}") from error
        digest = hashlib.sha256(data).hexdigest()
        path = self._dir / tenant_id_path(tenant_id) / f"{digest}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            await asyncio.to_thread(partial.write_bytes, data)
            partial.replace(path)  # a player never opens a half-written file
        entry = _Entry(path, etag or digest, len(data), time.monotonic())
        self._remember((tenant_id, audio_id), entry)
        return entry

    def _remember(self, key: tuple[str, str], entry: _Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
            if all(kept.path != evicted.path for kept in self._entries.values()):
                # A call may still be playing it: the file goes once any prompt is long over.
                asyncio.get_running_loop().call_later(_UNLINK_AFTER, evicted.path.unlink, True)


def tenant_id_path(tenant_id: str) -> str:
    """A directory name for a tenant id (any printable id is safe on disk)."""
    return hashlib.sha256(tenant_id.encode()).hexdigest()[:16]
