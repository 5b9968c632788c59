"""sms.requests → admission → submit → sms.results, with the message state persisted before and after submit.

One transaction per batch claims the events and stores each request as REJECTED (with its SmsRejected in the
outbox) or SUBMITTING. Only then are parts submitted; a second transaction per message records ACCEPTED,
FAILED or UNCERTAIN with its result. A redelivered event is claimed already, and a request_id seen before is
never admitted again, so no request is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hibiki.sms.v1 import sms_requests_pb2
from hibiki_runtime.events import DecodedEvent
from hibiki_runtime.kafka import Delivery, Rejection
from hibiki_runtime.outbox import claim_event, enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.box_repository import BoxRepository
from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.short_link_repository import ShortLinkRepository
from hibiki_sms_gateway.domain.carrier import Carrier, CarrierResolver
from hibiki_sms_gateway.domain.concatenation import ucs2_parts
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.domain.lifecycle import MessageState, advance
from hibiki_sms_gateway.domain.recipient import Refusal, RejectReason, classify_recipient
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


@dataclass(frozen=True)
class _Admitted:
    message: SmsMessage
    carrier: Carrier
    cause: str


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

    async def handle(self, deliveries: Sequence[Delivery]) -> Sequence[Rejection]:
        """Consumer entry point for a batch of sms.requests."""
        rejections: list[Rejection] = []
        admitted: list[_Admitted] = []
        async with self._sessions.begin() as session:
            for delivery in deliveries:
                request = delivery.event.message
                if not isinstance(request, sms_requests_pb2.SmsRequest) or not request.request_id:
                    rejections.append(
                        Rejection(delivery, "missing_request_id", "SmsRequest.request_id is empty")
                    )
                    continue
                # Checked before the claim, so that a redelivery (e.g. after a failed DLQ publish) is
                # rejected again instead of skipped; another tenant's request_id is never treated as a repeat.
                known = await MessageRepository(session).get(request.request_id)
                if known is not None and known.tenant_id != delivery.event.tenant_id:
                    rejections.append(
                        Rejection(
                            delivery,
                            "cross_tenant",
                            f"request {request.request_id} belongs to another tenant",
                        )
                    )
                    continue
                if not await claim_event(session, CONSUMER, delivery.event.event_id):
                    continue
                entry = await self._admit(session, delivery.event, request)
                if entry is not None:
                    admitted.append(entry)
        self._notify()
        outcomes = await asyncio.gather(*(self._send(entry) for entry in admitted), return_exceptions=True)
        for entry, outcome in zip(admitted, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # Left SUBMITTING: the recovery sweep reports it as uncertain instead of resending it.
                log.error("request %s could not be finished", entry.message.request_id, exc_info=outcome)
        return rejections

    async def _admit(
        self, session: AsyncSession, event: DecodedEvent, request: sms_requests_pb2.SmsRequest
    ) -> _Admitted | None:
        """Store the request as SUBMITTING (to be sent) or REJECTED (with its result); None if not to send."""
        body = request.sms_requested
        now = self._clock()
        messages = MessageRepository(session)
        box = await BoxRepository(session).get(event.tenant_id, body.box_number)
        recipient, carrier, refusal = await self._screen(
            messages, event.tenant_id, body, box is not None, now
        )
        first_state = MessageState.REJECTED if refusal else MessageState.SUBMITTING
        # Made before the message row, stored after it: the text as sent already holds the link.
        link = None
        if box is not None and box.url and refusal is None and self._short_links is not None:
            link = self._short_links.new_link(request.request_id, event.tenant_id, box.url, now)
        message = SmsMessage(
            request_id=request.request_id,
            tenant_id=event.tenant_id,
            recipient=recipient,
            state=advance(MessageState.REQUESTED, first_state),
            reason=refusal.reason.value if refusal else "",
            carrier=carrier.value if carrier else "",
            attempts=0,
            snapshot=Snapshot.of(box, link.short_url if link else "") if box else Snapshot(body.box_number),
            created_at=now,
            updated_at=now,
        )
        if not await messages.add(message):
            log.info(
                "request %s was handled before (event %s); not sent again", message.request_id, event.event_id
            )
            return None
        if refusal is not None:
            rejected = results.rejected(message, refusal.reason, refusal.detail, event.event_id, now)
            await enqueue_all(session, [rejected])
            self._metrics.results.labels("rejected", refusal.reason.value).inc()
            return None
        if link is not None:
            await ShortLinkRepository(session).add(link)
        assert carrier is not None  # _screen returns a carrier whenever it refuses nothing
        return _Admitted(message, carrier, event.event_id)

    async def _screen(
        self,
        messages: MessageRepository,
        tenant_id: str,
        body: sms_requests_pb2.SmsRequested,
        box_exists: bool,
        now: datetime,
    ) -> tuple[str, Carrier | None, Refusal | None]:
        """(recipient, carrier, refusal): the checks in order, cheapest first; the first refusal wins."""
        classified = classify_recipient(body.recipient, allow_m2m=self._policy.allow_m2m)
        if isinstance(classified, Refusal):
            return body.recipient[:32], None, classified
        recipient = classified.e164
        if not box_exists:
            return recipient, None, Refusal(RejectReason.UNKNOWN_BOX, f"no SMS box {body.box_number!r}")
        if await messages.is_opted_out(tenant_id, recipient):
            return (
                recipient,
                None,
                Refusal(RejectReason.OPTED_OUT, "the recipient opted out of this tenant's SMS"),
            )
        carrier = await self._resolver.resolve(recipient)
        if carrier is None:
            detail = "only docomo, au (KDDI), SoftBank and Rakuten Mobile networks receive SMS"
            return recipient, None, Refusal(RejectReason.UNSUPPORTED_CARRIER, detail)
        cooldown = self._policy.cooldown
        previous = await messages.sends_since(tenant_id, recipient, now - cooldown.window)
        if (why := cooldown.refusal(previous, now)) is not None:
            return recipient, carrier, Refusal(RejectReason.RECIPIENT_RATE_LIMITED, why)
        return recipient, carrier, None

    async def _send(self, entry: _Admitted) -> None:
        """Submit every part, then record ACCEPTED, FAILED or UNCERTAIN with its result."""
        message = entry.message
        reference = zlib.crc32(message.request_id.encode()) & 0xFF
        ids: list[str] = []
        attempts = 0
        try:
            async with asyncio.timeout(self._send_budget):
                for part in ucs2_parts(message.snapshot.rendered_text, reference):
                    sent = await self._sender.send(entry.carrier, message.recipient, part)
                    ids.append(sent.message_id)
                    attempts += sent.attempts
        except TimeoutError:
            budget = UncertainSubmitError("send_budget", f"parts still pending after {self._send_budget}s")
            await self._give_up(entry, PartNotSent(budget, 1), ids, attempts)
            return
        except PartNotSent as failure:
            await self._give_up(entry, failure, ids, attempts)
            return
        now = self._clock()
        async with self._sessions.begin() as session:
            messages = MessageRepository(session)
            await messages.add_parts(message.request_id, ids)
            target = advance(MessageState.SUBMITTING, MessageState.ACCEPTED)
            if await messages.move(
                message.request_id,
                MessageState.SUBMITTING,
                target,
                now=now,
                reason="accepted",
                attempts=attempts,
            ):
                await enqueue_all(session, [results.accepted(message, ids, entry.cause, now)])
                self._metrics.results.labels("accepted", "accepted").inc()
        self._notify()
        # A receipt may have arrived before the acceptance was committed.
        await self._receipts.apply(ids)

    async def _give_up(self, entry: _Admitted, failure: PartNotSent, ids: list[str], attempts: int) -> None:
        """FAILED when the carrier refused or retries ran out; UNCERTAIN when the SMSC may have the part."""
        message, error = entry.message, failure.cause
        attempts += failure.attempts
        if isinstance(error, UncertainSubmitError):
            state, reason = MessageState.UNCERTAIN, "outcome_uncertain"
            self._metrics.uncertain.labels(error.code).inc()
        elif isinstance(error, PermanentSubmitError):
            state, reason = MessageState.FAILED, "carrier_permanent_error"
        else:
            state, reason = MessageState.FAILED, "retries_exhausted"
        detail = f"{error.code}: {error.detail}"
        if ids:
            detail += f" (after {len(ids)} of {message.snapshot.segments} parts were accepted)"
        now = self._clock()
        async with self._sessions.begin() as session:
            messages = MessageRepository(session)
            if ids:
                await messages.add_parts(message.request_id, ids)
            target = advance(MessageState.SUBMITTING, state)
            if await messages.move(
                message.request_id, MessageState.SUBMITTING, target, now=now, reason=reason, attempts=attempts
            ):
                await enqueue_all(
                    session, [results.failed(message, reason, detail, attempts, entry.cause, now)]
                )
                self._metrics.results.labels("failed", reason).inc()
        self._notify()
        log.warning("request %s failed: %s (%s)", message.request_id, reason, detail)
