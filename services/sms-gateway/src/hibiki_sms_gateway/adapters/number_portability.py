"""Number-portability (MNP) lookup over HTTP: the network that serves a number now, whatever its prefix.

`GET <url template with {e164} URL-quoted>` (with `Authorization: Bearer <token>` when a token is set)
answers JSON `{"carrier": "<name>"}`: docomo, au / kddi, softbank or rakuten; any other name, like a 404,
means that no supported network serves the number (None: the request is rejected as an unsupported carrier).

Answers are cached in a bounded LRU with expiry ("no supported network" for a shorter time), and concurrent
lookups of one number share one request. When the lookup times out, cannot connect, or answers 5xx, 429,
another error or something unreadable, the static table answers instead (`fallback`), with a warning at most
once per `warn_every` seconds: admission never fails because of the lookup. Failed lookups are not cached, so
the next request for the number asks again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from yarl import URL

from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.carrier import Carrier, CarrierResolver, parse_carrier

log = logging.getLogger("hibiki.sms.carrier")
PLACEHOLDER = "{e164}"


@dataclass(frozen=True)
class _Entry:
    carrier: Carrier | None
    expires_at: float


class TtlCache:
    """At most `size` answers, least recently used evicted first; an expired answer is a miss."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the cache size must be at least 1")
        self._size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, carrier: Carrier | None, expires_at: float) -> None:
        self._entries[key] = _Entry(carrier, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class LookupFailed(Exception):
    """The lookup gave no answer; `cause` is a metric label (timeout, connection, http_5xx, …)."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


class NumberPortabilityLookup:
    """CarrierResolver asking a number-portability service, the static table answering when it cannot."""

    def __init__(
        self,
        url_template: str,
        *,
        fallback: CarrierResolver,
        metrics: SmsMetrics,
        token: str = "",
        timeout: float = 1.0,
        cache_ttl: float = 86400.0,
        unsupported_ttl: float = 3600.0,
        cache_size: int = 100_000,
        warn_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if PLACEHOLDER not in url_template:
            raise ValueError(f"HIBIKI_SMS_MNP_URL must contain {PLACEHOLDER} (the number, URL-quoted)")
        if not url_template.startswith(("http://", "https://")):
            raise ValueError("HIBIKI_SMS_MNP_URL must be an http(s) URL")
        self._url_template = url_template
        self._fallback = fallback
        self._metrics = metrics
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._unsupported_ttl = min(unsupported_ttl, cache_ttl)
        self._cache = TtlCache(cache_size)
        self._warn_every = warn_every
        self._clock = clock
        self._pending: dict[str, asyncio.Task[tuple[Carrier | None, str]]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._last_warning: float | None = None
        self._failures_since_warning = 0

    @property
    def fallback(self) -> CarrierResolver:
        return self._fallback

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def stop(self) -> None:
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def resolve(self, e164: str) -> Carrier | None:
        cached = self._cache.get(e164, self._clock())
        if cached is not None:
            self._metrics.carrier_lookups.labels("cached").inc()
            return cached.carrier
        task = self._pending.get(e164)
        joined = task is not None
        if task is None:
            task = asyncio.create_task(self._lookup(e164))
            self._pending[e164] = task
            task.add_done_callback(lambda done: self._forget(e164, done))
        # Shielded: a caller that is cancelled does not cancel the lookup the others wait for.
        carrier, result = await asyncio.shield(task)
        self._metrics.carrier_lookups.labels("coalesced" if joined and result != "fallback" else result).inc()
        return carrier

    def _forget(self, e164: str, done: asyncio.Task[tuple[Carrier | None, str]]) -> None:
        if self._pending.get(e164) is done:
            del self._pending[e164]

    async def _lookup(self, e164: str) -> tuple[Carrier | None, str]:
        """(carrier, result): the service's answer, cached; or the static table's when there is none."""
        try:
            carrier, ttl = await self._ask(e164)
        except LookupFailed as failure:
            self._failed(failure)
            return await self._fallback.resolve(e164), "fallback"
        except Exception as error:  # never into admission: a bug here must not reject or stall SMS
            log.exception("number-portability lookup failed unexpectedly")
            self._failed(LookupFailed("error", type(error).__name__))
            return await self._fallback.resolve(e164), "fallback"
        self._cache.put(e164, carrier, self._clock() + ttl)
        return carrier, "answered" if carrier is not None else "unsupported"

    async def _ask(self, e164: str) -> tuple[Carrier | None, float]:
        """The service's answer and how long to keep it; LookupFailed when there is none."""
        if self._http is None:
            raise LookupFailed("not_started", "the lookup's HTTP session is not started")
        url = URL(self._url_template.replace(PLACEHOLDER, quote(e164, safe="")), encoded=True)
        started = time.perf_counter()
        try:
            async with self._http.get(url, headers=self._headers) as reply:
                status = reply.status
                body = await reply.read()
        except TimeoutError as error:
            raise LookupFailed("timeout", f"no answer within {self._timeout} s") from error
        except aiohttp.ClientConnectorError as error:
            raise LookupFailed("connection", str(error)) from error
        except aiohttp.ClientError as error:
            raise LookupFailed("connection", type(error).__name__) from error
        finally:
            self._metrics.carrier_lookup_latency.observe(time.perf_counter() - started)
        if status == 404:
            return None, self._unsupported_ttl
        if not 200 <= status < 300:
            cause = "http_429" if status == 429 else "http_5xx" if status >= 500 else "http_4xx"
            raise LookupFailed(cause, f"HTTP {status}")
        try:
            name = json.loads(body)["carrier"]
        except (ValueError, TypeError, KeyError) as error:
            raise LookupFailed("bad_answer", f"HTTP {status} without a JSON carrier") from error
        if not isinstance(name, str):
            raise LookupFailed("bad_answer", f"carrier is {type(name).__name__}, not a name")
        carrier = parse_carrier(name)
        return carrier, self._cache_ttl if carrier is not None else self._unsupported_ttl

    def _failed(self, failure: LookupFailed) -> None:
        """Count the failure; warn at most once per `warn_every` seconds (never with the number)."""
        self._metrics.carrier_lookup_errors.labels(failure.cause).inc()
        self._failures_since_warning += 1
        now = self._clock()
        if self._last_warning is not None and now - self._last_warning < self._warn_every:
            return
        log.warning(
            "number-portability lookup failed (%s: %s); carriers come from the static table meanwhile"
            " (%d failed lookups since the last warning)",
            failure.cause,
            failure.detail,
            self._failures_since_warning,
        )
        self._last_warning = now
        self._failures_since_warning = 0
