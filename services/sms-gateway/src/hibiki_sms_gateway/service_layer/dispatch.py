"""sms.requests → admission → submit → sms.results, with the message state persisted before and after submit.

Admission is set-based: one transaction per consumed batch checks the request_ids, claims the events, loads
the boxes, screens the recipients and stores each request as REJECTED (with its SmsRejected in the outbox) or
QUEUED (owned by this process), in the same few statements whatever the batch size. Then every request of
the batch is sent concurrently: each is marked SUBMITTING just before its parts go on the wire (marks share
group commits), with at most `in_flight` (the SMPP window) marked and not yet on the wire, so a crash leaves
at most that many that never reached the carrier — the queued ones are sent by whoever takes them over
(service_layer/recovery.py), those on the wire are settled by their receipts. Outcomes
(ACCEPTED, FAILED or UNCERTAIN with their result) are recorded together: one transaction for those that
finish within a short window of each other; an outcome that cannot be recorded is kept and retried.
A redelivered event is claimed already, and a request_id seen before is never admitted again, so no request
is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from hibiki_runtime.consumer import Inbound, Rejection
from hibiki_runtime.db import AutocommitConnection, engine_of
from hibiki_runtime.outbox import enqueue_all
from hibiki_runtime.unit_of_work import ConsumerUnitOfWork
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.box_repository import BoxRepository
from hibiki_sms_gateway.adapters.message_repository import (
    MessageRepository,
    StateChange,
    TenantRecipient,
    mark_submitting,
)
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.receipt_repository import PartId, ReceiptRepository, SubmittedParts
from hibiki_sms_gateway.adapters.short_link_repository import ShortLinkRepository
from hibiki_sms_gateway.domain.carrier import Carrier, CarrierResolver, parse_carrier
from hibiki_sms_gateway.domain.commands import SendSms
from hibiki_sms_gateway.domain.concatenation import ucs2_parts
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.domain.lifecycle import MessageState, advance
from hibiki_sms_gateway.domain.recipient import Recipient, Refusal, RejectReason, classify_recipient
from hibiki_sms_gateway.domain.short_links import ShortLink
from hibiki_sms_gateway.domain.sms_box import SmsBox
from hibiki_sms_gateway.domain.sms_message import SmsMessage, Snapshot
from hibiki_sms_gateway.domain.submission import PermanentSubmitError, UncertainSubmitError
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.sender import PartNotSent, PartSender
from hibiki_sms_gateway.service_layer.short_links import ShortLinkPolicy

log = logging.getLogger("hibiki.sms.dispatch")
CONSUMER = "sms-gateway.dispatch"


@dataclass(frozen=True)
class AdmissionPolicy:
    allow_m2m: bool = False
    cooldown: CooldownPolicy = field(default_factory=CooldownPolicy)


_Request = Inbound[SendSms]


@dataclass(frozen=True)
class _Screening:
    """What admission needs to know about a batch's boxes and recipients, loaded once per batch."""

    boxes: dict[tuple[str, str], SmsBox]
    recipients: dict[str, Recipient | Refusal]  # by request_id
    opted_out: set[TenantRecipient]
    # Sends within the cooldown window, by recipient; requests admitted earlier in the batch are added.
    sends: dict[TenantRecipient, list[datetime]]


@dataclass(frozen=True)
class _Decision:
    request: _Request
    message: SmsMessage
    carrier: Carrier | None
    refusal: Refusal | None
    link: ShortLink | None


@dataclass(frozen=True)
class _Admitted:
    message: SmsMessage
    carrier: Carrier
    cause: str


@dataclass(frozen=True)
class Admission:
    """What admitting a batch decided: rejections for the DLQ, and the messages to send."""

    rejections: list[Rejection]
    admitted: list[_Admitted]


@dataclass(frozen=True)
class _Outcome:
    """How submitting a message ended: ACCEPTED, FAILED or UNCERTAIN, at `at`."""

    entry: _Admitted
    state: MessageState
    reason: str
    detail: str
    parts: list[PartId]
    attempts: int
    at: datetime


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        resolver: CarrierResolver,
        sender: PartSender,
        receipts: ReceiptBook,
        metrics: SmsMetrics,
        notify: Callable[[], None],
        policy: AdmissionPolicy = AdmissionPolicy(),
        send_budget_seconds: float = 120.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        short_links: ShortLinkPolicy | None = None,
        outcome_window_seconds: float = 0.05,
        *,
        owner: str = "local",
        in_flight: int = 10,
    ) -> None:
        self._sessions = sessions
        self._resolver = resolver
        self._sender = sender
        self._receipts = receipts
        self._metrics = metrics
        self._notify = notify
        self._policy = policy
        self._send_budget = send_budget_seconds
        self._clock = clock
        self._short_links = short_links
        # How long a finished send waits for others to share its transaction (delays its result that long).
        self._outcome_window = outcome_window_seconds
        # The process that sends what it admits (see service_layer/recovery.py).
        self.owner = owner
        # Messages marked SUBMITTING and not yet on the wire: what a crash can leave uncertain (see _send).
        self._ahead = asyncio.Semaphore(in_flight)
        self._submitting = _SubmittingMarks(engine_of(sessions), owner, clock)
        # Request ids this process is sending now (recovery leaves them alone).
        self.sending: set[str] = set()
        # Outcomes whose recording failed: retried (retry_unrecorded), never dropped silently.
        self._unrecorded: list[_Outcome] = []

    async def handle(self, requests: Sequence[_Request]) -> Sequence[Rejection]:
        """One batch of sms.requests from admission until every outcome is recorded."""
        admission = await self.admit(requests)
        await self.send(admission)
        return admission.rejections

    async def admit(self, requests: Sequence[_Request]) -> Admission:
        """Claim and screen a batch in one transaction: its rejections, and the messages now QUEUED."""
        async with ConsumerUnitOfWork(self._sessions, CONSUMER, self._notify) as work:
            messages = MessageRepository(work.session)
            fresh = await self._claim_new(work, messages, requests)
            admitted = await self._admit(work, messages, fresh)
        return Admission(work.rejections, admitted)

    async def send(self, admission: Admission) -> None:
        """Send every message of an admitted batch and record the outcomes."""
        await self._send_all(admission.admitted)

    # -- admission -----------------------------------------------------------------------------------
    async def _claim_new(
        self, work: ConsumerUnitOfWork, messages: MessageRepository, requests: Sequence[_Request]
    ) -> list[_Request]:
        """The requests to admit: claimed now, first of their event id and request_id, of the right tenant."""
        # Checked before the claim, so that a redelivery (e.g. after a failed DLQ publish) is rejected again
        # instead of skipped; another tenant's request_id is never treated as a repeat.
        owners = await messages.owners({r.command.request_id for r in requests})
        claimed = await work.claim(
            [r for r in requests if owners.get(r.command.request_id, r.tenant_id) == r.tenant_id]
        )
        new = {id(r) for r in claimed}
        fresh: list[_Request] = []
        for r in requests:
            request_id = r.command.request_id
            owner = owners.get(request_id)
            if owner is not None and owner != r.tenant_id:
                # Also when it was claimed with the batch before an earlier request of it took this
                # request_id: the claim is released with the rejection.
                work.reject(r, "cross_tenant", f"request {request_id} belongs to another tenant")
                continue
            if id(r) not in new:
                continue  # handled in an earlier batch, or earlier in this one
            if owner is not None:
                log.info("request %s was handled before (event %s); not sent again", request_id, r.event_id)
                continue
            owners[request_id] = r.tenant_id  # later requests of the batch see it as known
            fresh.append(r)
        return fresh

    async def _admit(
        self, work: ConsumerUnitOfWork, messages: MessageRepository, fresh: Sequence[_Request]
    ) -> list[_Admitted]:
        """Store each request as QUEUED (returned, to be sent) or REJECTED (with its result)."""
        if not fresh:
            return []
        now = self._clock()
        screening = await self._load_screening(work.session, messages, fresh, now)
        # Carrier lookups overlap; one number's are coalesced, so a recipient's requests decide in order.
        decisions = await asyncio.gather(*(self._decide(request, screening, now) for request in fresh))
        stored = await messages.add_all([decision.message for decision in decisions], owner=self.owner)
        admitted: list[_Admitted] = []
        rejected: list[results.Outgoing] = []
        links: list[ShortLink] = []
        for decision in decisions:
            message = decision.message
            if message.request_id not in stored:
                log.info(
                    "request %s was handled before (event %s); not sent again",
                    message.request_id,
                    decision.request.event_id,
                )
            elif decision.refusal is not None:
                refusal = decision.refusal
                rejected.append(
                    results.rejected(message, refusal.reason, refusal.detail, decision.request.event_id, now)
                )
                self._metrics.results.labels("rejected", refusal.reason.value).inc()
            else:
                assert decision.carrier is not None  # _decide returns a carrier whenever it refuses nothing
                if decision.link is not None:
                    links.append(decision.link)
                admitted.append(_Admitted(message, decision.carrier, decision.request.event_id))
        await ShortLinkRepository(work.session).add_all(links)
        work.send(rejected)
        return admitted

    async def _load_screening(
        self, session: AsyncSession, messages: MessageRepository, fresh: Sequence[_Request], now: datetime
    ) -> _Screening:
        """The batch's boxes, classified recipients, opt-outs and recent sends: one query of each."""
        boxes = await BoxRepository(session).get_many({(r.tenant_id, r.command.box_number) for r in fresh})
        recipients = {
            r.command.request_id: classify_recipient(r.command.recipient, allow_m2m=self._policy.allow_m2m)
            for r in fresh
        }
        reachable: set[TenantRecipient] = set()
        for r in fresh:
            classified = recipients[r.command.request_id]
            if isinstance(classified, Recipient) and (r.tenant_id, r.command.box_number) in boxes:
                reachable.add((r.tenant_id, classified.e164))
        return _Screening(
            boxes,
            recipients,
            await messages.opted_out(reachable),
            await messages.sends_since(reachable, now - self._policy.cooldown.window),
        )

    async def _decide(self, request: _Request, screening: _Screening, now: datetime) -> _Decision:
        """The message to store for a request, and why it is refused (None when it is to be sent)."""
        body = request.command
        box = screening.boxes.get((request.tenant_id, body.box_number))
        recipient, carrier, refusal = await self._screen(request, box, screening, now)
        if refusal is None:
            # Counts for later requests of the batch, as if they were handled one after another.
            screening.sends.setdefault((request.tenant_id, recipient), []).append(now)
        # Made before the message row, stored after it: the text as sent already holds the link.
        link = None
        if box is not None and box.url and refusal is None and self._short_links is not None:
            link = self._short_links.new_link(request.command.request_id, request.tenant_id, box.url, now)
        message = SmsMessage(
            request_id=request.command.request_id,
            tenant_id=request.tenant_id,
            recipient=recipient,
            state=advance(MessageState.REQUESTED, MessageState.REJECTED if refusal else MessageState.QUEUED),
            reason=refusal.reason.value if refusal else "",
            carrier=carrier.value if carrier else "",
            attempts=0,
            snapshot=Snapshot.of(box, link.short_url if link else "") if box else Snapshot(body.box_number),
            created_at=now,
            updated_at=now,
        )
        return _Decision(request, message, carrier, refusal, link)

    async def _screen(
        self, request: _Request, box: SmsBox | None, screening: _Screening, now: datetime
    ) -> tuple[str, Carrier | None, Refusal | None]:
        """(recipient, carrier, refusal): the checks in order, cheapest first; the first refusal wins."""
        body = request.command
        classified = screening.recipients[request.command.request_id]
        if isinstance(classified, Refusal):
            return body.recipient[:32], None, classified
        recipient = classified.e164
        if box is None:
            return recipient, None, Refusal(RejectReason.UNKNOWN_BOX, f"no SMS box {body.box_number!r}")
        if (request.tenant_id, recipient) in screening.opted_out:
            return (
                recipient,
                None,
                Refusal(RejectReason.OPTED_OUT, "the recipient opted out of this tenant's SMS"),
            )
        carrier = await self._resolver.resolve(recipient)
        if carrier is None:
            detail = "only docomo, au (KDDI), SoftBank and Rakuten Mobile networks receive SMS"
            return recipient, None, Refusal(RejectReason.UNSUPPORTED_CARRIER, detail)
        previous = screening.sends.get((request.tenant_id, recipient), [])
        if (why := self._policy.cooldown.refusal(previous, now)) is not None:
            return recipient, carrier, Refusal(RejectReason.RECIPIENT_RATE_LIMITED, why)
        return recipient, carrier, None

    # -- sending -------------------------------------------------------------------------------------
    async def resume(self, messages: Sequence[SmsMessage]) -> None:
        """Send queued messages this process took over (recovery): admitted before, never on the wire."""
        admitted = []
        for message in messages:
            carrier = parse_carrier(message.carrier)
            if carrier is not None:
                admitted.append(_Admitted(message, carrier, message.request_id))
        await self._send_all(admitted)

    async def close(self) -> None:
        """Release the connection the SUBMITTING marks use (at shutdown)."""
        await self._submitting.close()

    async def retry_unrecorded(self) -> None:
        """Record again the outcomes whose recording failed (run periodically)."""
        outcomes, self._unrecorded = self._unrecorded, []
        await self._record(outcomes)

    async def _send_all(self, admitted: Sequence[_Admitted]) -> None:
        """Send every admitted message; record outcomes in one transaction per window of finished sends."""
        self.sending.update(entry.message.request_id for entry in admitted)
        finished = _Finished()
        tasks = []
        for entry in admitted:
            task = asyncio.create_task(self._send(entry))
            task.add_done_callback(partial(finished.add, entry))
            tasks.append(task)
        remaining = len(tasks)
        try:
            while remaining:
                await finished.at_least(1)
                with contextlib.suppress(TimeoutError):  # let others finish and share the commit
                    await asyncio.wait_for(finished.at_least(remaining), self._outcome_window)
                group = finished.take()
                remaining -= len(group)
                outcomes: list[_Outcome] = []
                for entry, task in group:
                    if task.cancelled():
                        continue
                    if (error := task.exception()) is not None:
                        # QUEUED: recovery sends it again; SUBMITTING: its receipt or the sweep settles it.
                        log.error(
                            "request %s could not be finished", entry.message.request_id, exc_info=error
                        )
                    elif (outcome := task.result()) is not None:
                        outcomes.append(outcome)
                await self._record(outcomes)
        finally:
            for task in tasks:
                task.cancel()
            self.sending.difference_update(entry.message.request_id for entry in admitted)

    async def _send(self, entry: _Admitted) -> _Outcome | None:
        """Mark the message SUBMITTING just before its parts go out, then submit every part; ACCEPTED once all
        were taken, else FAILED or UNCERTAIN. None when another process took the message over.

        At most `in_flight` messages are marked and not yet on the wire (waiting for the carrier's bucket or
        for a place in the SMPP window): what a crash can leave uncertain. A place frees when the message's
        first part goes on the wire, so the window stays full while the next messages are marked.
        """
        await self._ahead.acquire()
        released = False

        def on_wire() -> None:
            nonlocal released
            if not released:
                released = True
                self._ahead.release()

        try:
            if not await self._submitting.mark(entry.message.request_id):
                log.warning("request %s is no longer this process's to send", entry.message.request_id)
                return None
            return await self._submit_parts(entry, on_wire)
        finally:
            on_wire()

    async def _submit_parts(self, entry: _Admitted, on_wire: Callable[[], None]) -> _Outcome:
        message = entry.message
        reference = zlib.crc32(message.request_id.encode()) & 0xFF
        parts: list[PartId] = []
        attempts = 0
        try:
            async with asyncio.timeout(self._send_budget):
                for part in ucs2_parts(message.snapshot.rendered_text, reference):
                    sent = await self._sender.send(entry.carrier, message.recipient, part, on_wire)
                    parts.append(PartId(sent.connector, sent.message_id))
                    attempts += sent.attempts
        except TimeoutError:
            budget = UncertainSubmitError("send_budget", f"parts still pending after {self._send_budget}s")
            return self._given_up(entry, PartNotSent(budget, 1), parts, attempts)
        except PartNotSent as failure:
            return self._given_up(entry, failure, parts, attempts)
        return _Outcome(entry, MessageState.ACCEPTED, "accepted", "", parts, attempts, self._clock())

    def _given_up(
        self, entry: _Admitted, failure: PartNotSent, parts: list[PartId], attempts: int
    ) -> _Outcome:
        """FAILED when the carrier refused or retries ran out; UNCERTAIN when the SMSC may have the part."""
        error = failure.cause
        if isinstance(error, UncertainSubmitError):
            state, reason = MessageState.UNCERTAIN, "outcome_uncertain"
            self._metrics.uncertain.labels(error.code).inc()
        elif isinstance(error, PermanentSubmitError):
            state, reason = MessageState.FAILED, "carrier_permanent_error"
        else:
            state, reason = MessageState.FAILED, "retries_exhausted"
        detail = f"{error.code}: {error.detail}"
        if parts:
            detail += f" (after {len(parts)} of {entry.message.snapshot.segments} parts were accepted)"
        return _Outcome(entry, state, reason, detail, parts, attempts + failure.attempts, self._clock())

    async def _record(self, outcomes: Sequence[_Outcome]) -> None:
        """Record finished sends together; a failure keeps them for retry_unrecorded (and counts them)."""
        if not outcomes:
            return
        try:
            settled = await self._store_outcomes(outcomes)
        except Exception:
            log.exception("outcomes of %d requests could not be recorded; retrying", len(outcomes))
            self._metrics.outcomes_unrecorded.inc(len(outcomes))
            self._unrecorded.extend(outcomes)
            return
        self._notify()
        for outcome in settled:
            accepted = outcome.state == MessageState.ACCEPTED
            self._metrics.results.labels("accepted" if accepted else "failed", outcome.reason).inc()
            if not accepted:
                request_id = outcome.entry.message.request_id
                log.warning("request %s failed: %s (%s)", request_id, outcome.reason, outcome.detail)
        # Receipts that beat the commit of their part are stored already: they can be matched now.
        self._receipts.parts_stored()

    async def _store_outcomes(self, outcomes: Sequence[_Outcome]) -> list[_Outcome]:
        """Store parts, new states and results in one transaction; returns the outcomes that were stored."""
        async with self._sessions.begin() as session:
            messages = MessageRepository(session)
            # Locked, so that the recovery sweep cannot settle one of them meanwhile; one it settled already
            # keeps the result it got.
            submitting = await messages.lock_in_state(
                [o.entry.message.request_id for o in outcomes], MessageState.SUBMITTING
            )
            settled = [o for o in outcomes if o.entry.message.request_id in submitting]
            # Parts of every outcome, settled meanwhile or not: a receipt can still tell the truth.
            await ReceiptRepository(session).add_parts(
                [SubmittedParts(o.entry.message.request_id, o.parts, o.at) for o in outcomes if o.parts]
            )
            await messages.change_states([_state_change(o) for o in settled])
            await enqueue_all(session, [_result(o) for o in settled])
        return settled


class _SubmittingMarks:
    """Marks messages SUBMITTING in group commits: every mark asked for while one runs goes into the next, so
    a window of messages costs a statement or two, not one each. The marks are on the critical path of every
    send, so they use a connection of their own in autocommit mode: one round trip per group."""

    def __init__(self, engine: AsyncEngine, owner: str, clock: Callable[[], datetime]) -> None:
        self._connection = AutocommitConnection(engine)
        self._owner = owner
        self._clock = clock
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._flushing: asyncio.Task[None] | None = None

    async def mark(self, request_id: str) -> bool:
        """True once the message is SUBMITTING for this owner; False when it is not this owner's any more."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="sms-mark-submitting")
        return await future

    async def close(self) -> None:
        await self._connection.close()

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the marks asked for in this turn of the loop share the first statement
            while self._waiting:
                group, self._waiting = self._waiting, {}
                try:
                    ids, now = list(group), self._clock()
                    marked = await self._connection.run(
                        partial(mark_submitting, request_ids=ids, owner=self._owner, now=now)
                    )
                except Exception as error:
                    for future in group.values():
                        if not future.done():
                            future.set_exception(error)
                    continue
                for request_id, future in group.items():
                    if not future.done():
                        future.set_result(request_id in marked)
        finally:
            self._flushing = None


class _Finished:
    """Sends that finished, in the order they did, for the recorder to take in groups."""

    def __init__(self) -> None:
        self._done: list[tuple[_Admitted, asyncio.Task[_Outcome | None]]] = []
        self._changed = asyncio.Event()

    def add(self, entry: _Admitted, task: asyncio.Task[_Outcome | None]) -> None:
        self._done.append((entry, task))
        self._changed.set()

    async def at_least(self, count: int) -> None:
        while len(self._done) < count:
            self._changed.clear()
            await self._changed.wait()

    def take(self) -> list[tuple[_Admitted, asyncio.Task[_Outcome | None]]]:
        taken, self._done = self._done, []
        return taken


def _state_change(outcome: _Outcome) -> StateChange:
    return StateChange(
        outcome.entry.message.request_id,
        MessageState.SUBMITTING,
        advance(MessageState.SUBMITTING, outcome.state),
        outcome.reason,
        outcome.attempts,
        outcome.at,
    )


def _result(outcome: _Outcome) -> results.Outgoing:
    entry = outcome.entry
    if outcome.state == MessageState.ACCEPTED:
        ids = [part.carrier_message_id for part in outcome.parts]
        return results.accepted(entry.message, ids, entry.cause, outcome.at)
    return results.failed(
        entry.message, outcome.reason, outcome.detail, outcome.attempts, entry.cause, outcome.at
    )


class PipelinedDispatch:
    """The sms.requests consumer: admits a batch, then sends it while the next batch is admitted.

    The consumer commits a batch's offsets once it is admitted: its messages are QUEUED in the database and
    its events claimed, so a crash during the sends has the same outcome as before the commit (recovery sends
    the queued ones; none is sent twice). At most `depth` batches are sending at once; `drain` waits for them
    at shutdown, after the consumer has stopped.
    """

    def __init__(self, dispatcher: Dispatcher, depth: int = 2) -> None:
        self._dispatcher = dispatcher
        self._depth = depth
        self._sending: list[asyncio.Task[None]] = []

    async def __call__(self, requests: Sequence[_Request]) -> Sequence[Rejection]:
        while len(self._sending) >= self._depth:
            await asyncio.wait(self._sending, return_when=asyncio.FIRST_COMPLETED)
            self._sending = [task for task in self._sending if not task.done()]
        admission = await self._dispatcher.admit(requests)
        task = asyncio.create_task(self._dispatcher.send(admission), name="sms-send-batch")
        task.add_done_callback(_log_failure)
        self._sending.append(task)
        return admission.rejections

    def resume(self, messages: Sequence[SmsMessage]) -> None:
        """Send messages recovery took over, beside the consumed batches (drain waits for them too)."""
        if messages:
            task = asyncio.create_task(self._dispatcher.resume(messages), name="sms-send-taken-over")
            task.add_done_callback(_log_failure)
            self._sending.append(task)

    async def drain(self) -> None:
        """Wait until every admitted batch is sent and its outcomes recorded."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        self._sending = []


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        # Queued messages are sent again by recovery; submitting ones settled by their receipts or the sweep.
        log.error("a batch of SMS could not be finished", exc_info=error)
