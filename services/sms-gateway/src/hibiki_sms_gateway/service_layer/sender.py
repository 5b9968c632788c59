"""Hands one part to a carrier's connector: per-carrier token bucket, circuit breaker, retries with backoff.

Only temporary errors are retried (throttled, SMSC busy, not bound, breaker open); a permanent error or an
uncertain one (the SMSC may have the part) ends the attempt at once, so a part is never sent twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiolimiter import AsyncLimiter
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from hibiki_sms_gateway.adapters.metrics import BREAKER_STATES, SmsMetrics
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.concatenation import Part
from hibiki_sms_gateway.domain.submission import (
    OnWire,
    PermanentSubmitError,
    SubmitError,
    TemporarySubmitError,
    Throttled,
)


class Connector(Protocol):
    # Parts and receipts are keyed by it: carrier message ids are unique per SMSC account only.
    name: str

    async def submit(self, destination_e164: str, part: Part, on_wire: OnWire = None) -> str: ...


@dataclass(frozen=True)
class SendPolicy:
    default_rate_per_second: float = 50.0
    rate_per_second: Mapping[Carrier, float] | None = None
    attempts: int = 8
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    breaker_threshold: int = 5
    breaker_ttl: float = 30.0


@dataclass(frozen=True)
class SentPart:
    message_id: str
    attempts: int
    connector: str


class PartNotSent(Exception):
    """Sending a part was given up: `cause` is the last error, after `attempts` tries."""

    def __init__(self, cause: SubmitError, attempts: int) -> None:
        super().__init__(f"{cause} (after {attempts} attempts)")
        self.cause = cause
        self.attempts = attempts


class BreakerOpen(TemporarySubmitError):
    """The connector's circuit breaker is open: the SMSC failed repeatedly, wait before trying again."""


class PartSender:
    def __init__(
        self, connectors: Mapping[Carrier, tuple[str, Connector]], metrics: SmsMetrics, policy: SendPolicy
    ) -> None:
        self._connectors = connectors
        self._metrics = metrics
        self._policy = policy
        self._buckets: dict[Carrier, AsyncLimiter] = {}
        self.share(1.0)
        # Throttling and permanent refusals say nothing about the connector's health.
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=policy.breaker_threshold,
            default_ttl=policy.breaker_ttl,
            exclude=[PermanentSubmitError, Throttled],
        )
        self._breakers.add_listener(self._on_breaker_event)

    def share(self, fraction: float) -> None:
        """Send at `fraction` of every carrier's configured rate: the configured rate is the deployment's,
        and this replica takes its part (by the sms.requests partitions it owns), anew at each rebalance."""
        rates = self._policy.rate_per_second or {}
        self._buckets = {
            carrier: _bucket(rates.get(carrier, self._policy.default_rate_per_second) * fraction)
            for carrier in Carrier
        }

    async def send(
        self, carrier: Carrier, destination_e164: str, part: Part, on_wire: OnWire = None
    ) -> SentPart:
        """Submit `part`, retrying temporary errors; PartNotSent with the last error when giving up."""
        connector = self._connectors[carrier][1].name
        try:  # the common case, without the retry machinery's cost
            return SentPart(await self._submit_once(carrier, destination_e164, part, on_wire), 1, connector)
        except TemporarySubmitError as error:
            if self._policy.attempts <= 1:
                raise PartNotSent(error, 1) from error
            self._metrics.retries.labels(carrier.value, error.code).inc()
        except SubmitError as error:
            raise PartNotSent(error, 1) from error
        await asyncio.sleep(self._policy.initial_backoff * (1 + random.random()))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._policy.attempts - 1),
            wait=wait_exponential_jitter(
                multiplier=self._policy.initial_backoff * 2,
                max=self._policy.max_backoff,
                jitter=self._policy.initial_backoff,
            ),
            retry=retry_if_exception_type(TemporarySubmitError),
            before_sleep=lambda state: self._count_retry(carrier, state),
            reraise=True,
        )
        try:
            message_id: str = await retrying(self._submit_once, carrier, destination_e164, part, on_wire)
        except SubmitError as error:
            raise PartNotSent(error, 1 + retrying.statistics.get("attempt_number", 1)) from error
        return SentPart(message_id, 1 + retrying.statistics.get("attempt_number", 1), connector)

    async def _submit_once(
        self, carrier: Carrier, destination_e164: str, part: Part, on_wire: OnWire = None
    ) -> str:
        name, connector = self._connectors[carrier]
        metrics = self._metrics
        async with self._buckets[carrier]:
            started = time.perf_counter()
            try:
                async with await self._breakers.get_breaker(name):
                    message_id = await connector.submit(destination_e164, part, on_wire)
            except OpenedState as error:
                metrics.submits.labels(carrier.value, "breaker_open").inc()
                raise BreakerOpen("breaker_open", str(error)) from error
            except SubmitError as error:
                metrics.submits.labels(carrier.value, error.code).inc()
                if isinstance(error, Throttled):
                    metrics.throttles.labels(carrier.value).inc()
                raise
        metrics.submit_latency.labels(carrier.value).observe(time.perf_counter() - started)
        metrics.submits.labels(carrier.value, "accepted").inc()
        metrics.segments.labels(carrier.value).inc()
        return message_id

    def _count_retry(self, carrier: Carrier, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        code = error.code if isinstance(error, SubmitError) else "unknown"
        self._metrics.retries.labels(carrier.value, code).inc()

    def _on_breaker_event(self, name: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            self._metrics.breaker_state.labels(name).set(BREAKER_STATES.get(event.state, 0))


def _bucket(per_second: float) -> AsyncLimiter:
    """A token bucket of `per_second` parts a second (bursts up to one second's worth, at least one part)."""
    if per_second >= 1:
        return AsyncLimiter(per_second, 1.0)
    return AsyncLimiter(1, 1 / per_second)
