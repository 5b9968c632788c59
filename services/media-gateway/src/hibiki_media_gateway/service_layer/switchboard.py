"""The calls this process carries: SIP events and routing's actions in, call sessions' effects out.

An INVITE for a number of a known tenant gets a call id and a session; its CallStarted (and the call's row in
`media_calls`) is committed before the call is answered, so a call the caller hears is always on record.
After that every input — a key, the end of a playback, a timer, a hang-up, an action — goes through the
call's session, and its effects are carried out: prompts fetched from guidance-tts (cached) and played,
timers on the event loop, transfers and hang-ups on the SIP line, events into the outbox in order.
Everything runs on the event loop; the SIP engine's events arrive through `on_sip` (called on the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from hibiki_runtime.consumer import Inbound, Rejection

from hibiki_media_gateway.adapters.audio_store import AudioStore, AudioUnavailable
from hibiki_media_gateway.adapters.call_events import call_event, outgoing
from hibiki_media_gateway.adapters.live_calls import LiveCallRow
from hibiki_media_gateway.adapters.metrics import MediaMetrics
from hibiki_media_gateway.adapters.sip_engine import (
    Closed,
    Confirmed,
    Incoming,
    Key,
    PlaybackEnded,
    SipEvent,
    TransferDone,
)
from hibiki_media_gateway.domain import numbers
from hibiki_media_gateway.domain.commands import CallCommand
from hibiki_media_gateway.domain.session import (
    CallEnded,
    CallSession,
    Effect,
    HangUp,
    PlayPrompts,
    Prompt,
    Publish,
    StartTimer,
    StopPlayback,
    TransferTo,
)
from hibiki_media_gateway.service_layer.event_log import EventLog

log = logging.getLogger("hibiki.media.calls")

SIP_NOT_FOUND, SIP_BUSY_HERE, SIP_SERVICE_UNAVAILABLE = 404, 486, 503
# A caller waits this long at most, ringing, for the call to be on record before it is answered or refused.
ANSWER_WITHIN_SECONDS = 5.0


class Lines(Protocol):
    """What the switchboard asks of the SIP side (adapters/sip_engine.SipEngine)."""

    def answer(self, line: int) -> None: ...
    def reject(self, line: int, status: int) -> None: ...
    def play(self, line: int, playback: int, files: Sequence[Path]) -> None: ...
    def stop_playback(self, line: int) -> None: ...
    def transfer(self, line: int, destination: str) -> None: ...
    def hang_up(self, line: int) -> None: ...


@dataclass
class LiveCall:
    call_id: str
    tenant_id: str
    line: int
    session: CallSession
    source: str  # where the INVITE came from (the trunk): transfers go there
    timer: asyncio.TimerHandle | None = None
    causes: dict[str, str] = field(default_factory=dict)  # action id → its event id
    answered: bool = False


class Switchboard:
    def __init__(
        self,
        lines: Lines,
        audio: AudioStore,
        events: EventLog,
        metrics: MediaMetrics,
        *,
        tenants_by_number: Mapping[str, str],
        instance_id: str,
        idle_timeout: float,
        max_calls: int,
        transfer_domain: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lines = lines
        self._audio = audio
        self._events = events
        self._metrics = metrics
        self._tenants = dict(tenants_by_number)
        self._instance_id = instance_id
        self.idle_timeout = idle_timeout  # seconds a call waits for routing (tests shorten it)
        self._max_calls = max_calls
        self._transfer_domain = transfer_domain
        self._clock = clock
        self._calls: dict[str, LiveCall] = {}
        self._by_line: dict[int, LiveCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = False  # False before start and while draining: new calls get 503
        self._idle = asyncio.Event()  # set when the last call is gone

    @property
    def active(self) -> int:
        return len(self._calls)

    # -- SIP events ------------------------------------------------------------------------------------
    def on_sip(self, event: SipEvent) -> None:
        if isinstance(event, Incoming):
            self._incoming(event)
            return
        call = self._by_line.get(event.line)
        if call is None:
            return
        session = call.session
        if isinstance(event, Key):
            self._metrics.keys.inc()
            self._apply(call, session.key(event.key))
        elif isinstance(event, PlaybackEnded):
            self._apply(call, session.playback_ended(event.playback))
        elif isinstance(event, TransferDone):
            if not event.succeeded:
                log.warning("transfer of call %s failed (SIP %d)", call.call_id, event.status)
            self._apply(call, session.transfer_result(event.succeeded))
        elif isinstance(event, Closed):
            self._apply(call, session.line_closed())
            self._forget(call)
        elif isinstance(event, Confirmed):
            pass  # answered: the idle timer already runs

    def _incoming(self, invite: Incoming) -> None:
        dialed = numbers.dialed_number(invite.request_uri, invite.to)
        tenant_id = self._tenants.get(dialed or "")
        if not self.accepting:
            self._refuse(invite, SIP_SERVICE_UNAVAILABLE, "not_ready")
            return
        if dialed is None or tenant_id is None:
            log.info("INVITE for %s: no tenant answers that number", invite.request_uri)
            self._refuse(invite, SIP_NOT_FOUND, "unknown_number")
            return
        if len(self._calls) >= self._max_calls:
            self._refuse(invite, SIP_BUSY_HERE, "busy")
            return
        caller = numbers.caller(invite.from_, invite.asserted, invite.privacy)
        call = LiveCall(
            call_id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            line=invite.line,
            session=CallSession("", self.idle_timeout),
            source=invite.source,
        )
        call.session.call_id = call.call_id
        self._calls[call.call_id] = call
        self._by_line[call.line] = call
        self._metrics.calls_active.set(len(self._calls))
        effects = call.session.start(dialed, caller.number, caller.withheld)
        row = LiveCallRow(call.call_id, self._instance_id, tenant_id, dialed, self._clock())
        self._spawn(self._answer(call, effects, row))

    def _refuse(self, invite: Incoming, status: int, result: str) -> None:
        self._metrics.calls.labels(result).inc()
        self._lines.reject(invite.line, status)

    async def _answer(self, call: LiveCall, effects: list[Effect], row: LiveCallRow) -> None:
        """Commit CallStarted (and the call's row), then answer; a call that cannot be recorded in time is
        refused (its events still follow, so the record says it started and ended)."""
        recorded = asyncio.ensure_future(
            self._publish(call, [e for e in effects if isinstance(e, Publish)], started=row)
        )
        try:
            await asyncio.wait_for(asyncio.shield(recorded), ANSWER_WITHIN_SECONDS)
        except TimeoutError:
            log.error(
                "call %s could not be recorded within %ss (database?); refused",
                call.call_id,
                ANSWER_WITHIN_SECONDS,
            )
            self._metrics.calls.labels("failed").inc()
            self._spawn(_finish(recorded))
            self._apply(call, call.session.cut_off())  # refuses the INVITE; its CallEnded follows the start
            self._forget(call)
            return
        except Exception:
            log.exception("call %s could not be recorded; refused", call.call_id)
            self._metrics.calls.labels("failed").inc()
            self._lines.reject(call.line, SIP_SERVICE_UNAVAILABLE)
            self._forget(call)
            return
        if call.session.ended:  # the caller gave up while it was being recorded
            return
        call.answered = True
        self._metrics.calls.labels("answered").inc()
        self._lines.answer(call.line)
        self._carry_out(call, [e for e in effects if not isinstance(e, Publish)])

    # -- routing's actions ---------------------------------------------------------------------------------
    async def handle_actions(self, items: Sequence[Inbound[CallCommand]]) -> Sequence[Rejection]:
        """The call.actions consumer: each action goes to its call's session; other calls' are not ours."""
        for item in items:
            call = self._calls.get(item.command.call_id)
            if call is None or call.tenant_id != item.tenant_id:
                continue
            call.causes[item.command.action.action_id] = item.event_id
            self._apply(call, call.session.act(item.command.action))
        return []

    # -- shutting down -------------------------------------------------------------------------------------
    async def drain(self, grace: float) -> None:
        """Take no new calls; let those in progress finish for up to `grace` seconds, then cut them off."""
        self.accepting = False
        if self._calls:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for call in list(self._calls.values()):
            self._apply(call, call.session.cut_off())
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        await self._events.flush()

    # -- effects ---------------------------------------------------------------------------------------
    def _apply(self, call: LiveCall, effects: list[Effect]) -> None:
        published = [e for e in effects if isinstance(e, Publish)]
        if published:
            ended = any(isinstance(p.event, CallEnded) for p in published)
            self._spawn(self._publish(call, published, ended=ended))
        self._carry_out(call, [e for e in effects if not isinstance(e, Publish)])

    def _carry_out(self, call: LiveCall, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, PlayPrompts):
                self._spawn(self._play(call, effect.playback, effect.prompts))
            elif isinstance(effect, StopPlayback):
                self._lines.stop_playback(call.line)
            elif isinstance(effect, StartTimer):
                self._start_timer(call, effect)
            elif isinstance(effect, TransferTo):
                self._lines.transfer(call.line, self._transfer_uri(call, effect.destination))
            elif isinstance(effect, HangUp):
                if call.answered:
                    self._lines.hang_up(call.line)
                else:  # not answered yet (it is being recorded): refuse it
                    self._lines.reject(call.line, SIP_SERVICE_UNAVAILABLE)
        if call.session.ended and call.timer is not None:
            call.timer.cancel()
            call.timer = None

    async def _publish(
        self,
        call: LiveCall,
        published: Sequence[Publish],
        *,
        started: LiveCallRow | None = None,
        ended: bool = False,
    ) -> None:
        now = self._clock()
        records = [
            outgoing(
                call_event(
                    call.tenant_id,
                    call.call_id,
                    p.sequence,
                    p.event,
                    now,
                    call.causes.get(p.causation, ""),
                )
            )
            for p in published
        ]
        for p in published:
            self._metrics.call_events.labels(p.event.kind).inc()
            if isinstance(p.event, CallEnded):
                self._metrics.calls_ended.labels(p.event.reason.value).inc()
        await self._events.write(records, started=started, ended=call.call_id if ended else None)

    async def _play(self, call: LiveCall, playback: int, prompts: Sequence[Prompt]) -> None:
        started = time.perf_counter()
        found = await asyncio.gather(*(self._audio_file(call, prompt) for prompt in prompts))
        self._metrics.audio_fetch.observe(time.perf_counter() - started)
        files = [path for path in found if path is not None]
        if call.session.playback != playback or call.session.ended:
            return  # a key, another action or a hang-up came first
        if files:
            self._lines.play(call.line, playback, files)
        else:  # nothing to play: as if it had played
            self._apply(call, call.session.playback_ended(playback))

    async def _audio_file(self, call: LiveCall, prompt: Prompt) -> Path | None:
        try:
            return await self._audio.file(call.tenant_id, prompt.audio_id)
        except AudioUnavailable as error:
            self._metrics.prompts_missing.inc()
            log.warning("call %s: prompt %r skipped: %s", call.call_id, prompt.text[:40], error)
        except Exception:  # e.g. the cache directory is full: the call goes on without this prompt
            self._metrics.prompts_missing.inc()
            log.exception("call %s: prompt %r skipped", call.call_id, prompt.text[:40])
        return None

    def _start_timer(self, call: LiveCall, timer: StartTimer) -> None:
        if call.timer is not None:
            call.timer.cancel()
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(
            timer.seconds, lambda: self._apply(call, call.session.timer_fired(timer.timer))
        )

    def _transfer_uri(self, call: LiveCall, destination: str) -> str:
        """A SIP URI for a transfer destination: as given when it is one, else the number at the trunk."""
        if destination.startswith(("sip:", "sips:", "tel:")):
            return destination
        domain = self._transfer_domain or call.source.rsplit(":", 1)[0] or "127.0.0.1"
        return f"sip:{destination}@{domain}"

    def _forget(self, call: LiveCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        self._calls.pop(call.call_id, None)
        self._by_line.pop(call.line, None)
        self._metrics.calls_active.set(len(self._calls))
        if not self._calls:
            self._idle.set()

    def _spawn(self, work: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("call work failed", exc_info=error)


async def _finish(work: asyncio.Future[None]) -> None:
    """Wait for work that goes on after its caller stopped waiting (its errors are logged, not lost)."""
    await work
