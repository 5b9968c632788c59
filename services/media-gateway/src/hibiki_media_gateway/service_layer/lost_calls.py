"""Calls of processes that stopped without ending them (kill -9, a lost node): reported ended.

One call lives in one process; when that process dies its callers are cut off and nothing will ever say so.
Each process heartbeats (hibiki_runtime.instances); every process looks, at start and then periodically, for
calls in `media_calls` whose process has not heartbeat for the instance timeout, and publishes their
CallEnded with reason PLATFORM_FAILURE (event id `<call_id>:lost:ended`, so two processes reporting the
same call publish the same event), in the same transaction that removes their rows. reporting counts them
as platform failures, not as callers who abandoned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hibiki.call.v1 import call_events_pb2 as pb
from hibiki_runtime.events import new_envelope, traceparent_for
from hibiki_runtime.instances import Instance
from hibiki_runtime.outbox import enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_media_gateway.adapters.call_events import outgoing
from hibiki_media_gateway.adapters.live_calls import LiveCallRepository, LiveCallRow
from hibiki_media_gateway.adapters.metrics import MediaMetrics

log = logging.getLogger("hibiki.media.lost")


def lost_call_ended(row: LiveCallRow, at: datetime) -> pb.CallEvent:
    body = pb.CallEnded(reason=pb.END_REASON_PLATFORM_FAILURE)
    message = pb.CallEvent(call_id=row.call_id, call_ended=body)
    message.envelope.CopyFrom(
        new_envelope(
            row.tenant_id,
            body,
            event_id=f"{row.call_id}:lost:ended",
            occurred_at=at,
            traceparent=traceparent_for(row.call_id),
        )
    )
    return message


class LostCalls:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        instance: Instance,
        metrics: MediaMetrics,
        notify: Callable[[], None],
        *,
        instance_timeout: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._instance = instance
        self._metrics = metrics
        self._notify = notify
        self._timeout = instance_timeout
        self._clock = clock

    async def sweep(self) -> int:
        """Report the calls of stopped processes; returns how many."""
        live = await self._instance.live(self._timeout) | {self._instance.instance_id}
        now = self._clock()
        async with self._sessions.begin() as session:
            calls = LiveCallRepository(session)
            lost = await calls.of_other_instances(live)
            await enqueue_all(session, [outgoing(lost_call_ended(row, now)) for row in lost])
            await calls.remove_all([row.call_id for row in lost])
        if lost:
            self._metrics.lost_calls.inc(len(lost))
            self._metrics.calls_ended.labels("platform_failure").inc(len(lost))
            self._notify()
            log.warning(
                "%d calls of stopped media-gateway processes reported ended (platform_failure)", len(lost)
            )
        return len(lost)
