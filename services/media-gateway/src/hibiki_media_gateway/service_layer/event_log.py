"""call.events into the outbox, in group commits, in the order the calls produced them.

Every call's events are written in the order they happened (the outbox relay publishes in that order);
everything written while a commit runs goes into the next one, so a busy replica costs a transaction per
group, not per event. A call's row in `media_calls` is added with its CallStarted and removed with its
CallEnded in the same transaction. A failed commit (database away) is retried, in order, until it succeeds:
nothing a caller did is dropped; `write` returns once its entry is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message
from hibiki_runtime import contract
from hibiki_runtime.outbox import ContractViolation, enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_media_gateway.adapters.live_calls import LiveCallRepository, LiveCallRow
from hibiki_media_gateway.adapters.metrics import MediaMetrics

log = logging.getLogger("hibiki.media.events")
_RETRY_FIRST, _RETRY_MAX = 0.2, 5.0


@dataclass
class _Entry:
    records: Sequence[tuple[str, str, Message]]
    started: LiveCallRow | None
    ended: str | None  # call id whose row goes
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class EventLog:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], notify: Callable[[], None], metrics: MediaMetrics
    ) -> None:
        self._sessions = sessions
        self._notify = notify
        self._metrics = metrics
        self._waiting: list[_Entry] = []
        self._writing: asyncio.Task[None] | None = None

    async def write(
        self,
        records: Sequence[tuple[str, str, Message]],
        *,
        started: LiveCallRow | None = None,
        ended: str | None = None,
    ) -> None:
        """Queue records (and a call's row to add or remove); returns once they are committed."""
        entry = _Entry(records, started, ended)
        self._waiting.append(entry)
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name="media-event-log")
        await asyncio.shield(entry.done)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (at shutdown)."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write_all(self) -> None:
        try:
            await asyncio.sleep(0)  # what the calls write in this turn of the loop shares the commit
            pause = _RETRY_FIRST
            while self._waiting:
                group = list(self._waiting)  # entries queued during the commit wait for the next one
                try:
                    await self._commit(group)
                except ContractViolation:
                    self._drop_broken(group)  # a programming error: never block the other calls for it
                    continue
                except Exception:
                    self._metrics.event_write_failures.inc()
                    log.exception("%d call events could not be written; retrying in %.1fs", len(group), pause)
                    await asyncio.sleep(pause)
                    pause = min(_RETRY_MAX, pause * 2)
                    continue
                pause = _RETRY_FIRST
                del self._waiting[: len(group)]
                self._notify()
                for entry in group:
                    if not entry.done.done():
                        entry.done.set_result(None)
        finally:
            self._writing = None
            if self._waiting:  # queued while this task was ending
                self._writing = asyncio.create_task(self._write_all(), name="media-event-log")

    def _drop_broken(self, group: list[_Entry]) -> None:
        for entry in group:
            broken = [v for _, _, message in entry.records for v in contract.violations(message)]
            if broken:
                log.error("call events dropped, they break the contract: %s", broken)
                self._metrics.event_write_failures.inc()
                self._waiting.remove(entry)
                entry.done.set_exception(ContractViolation(str(broken)))
                entry.done.exception()  # retrieved here; the writer's caller logs it

    async def _commit(self, group: list[_Entry]) -> None:
        async with self._sessions.begin() as session:
            calls = LiveCallRepository(session)
            await calls.add_all([entry.started for entry in group if entry.started is not None])
            await enqueue_all(session, [record for entry in group for record in entry.records])
            await calls.remove_all([entry.ended for entry in group if entry.ended is not None])
