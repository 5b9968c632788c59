"""Delivery receipts: stored in groups (one statement per group), then matched to parts, messages settled.

A receipt is committed before the connector acknowledges it to the SMSC; that is all the SMSC waits for.
The arrival loop then matches what was stored to the parts it names and settles every message whose parts
have all reported (DELIVERED or UNDELIVERED, with its result in the outbox) — a fixed number of statements
per batch, whatever its size. A receipt that arrives before its part was stored (the submit_sm_resp is still
being recorded) is tried again as soon as parts were stored, and a while later (its part may be another
replica's), then by the periodic apply_pending; receipts whose part was lost to a crash are matched by
recipient and time (reconcile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hibiki_runtime.db import AutocommitConnection, engine_of
from hibiki_runtime.instances import InstanceRepository
from hibiki_runtime.outbox import enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.message_repository import MessageRepository, StateChange
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.receipt_repository import (
    MATCH_WINDOW,
    PartId,
    ReceiptRepository,
    StoredReceipt,
    SubmittedParts,
    add_receipts,
)
from hibiki_sms_gateway.adapters.tables import sms_instances
from hibiki_sms_gateway.domain.lifecycle import MessageState, advance
from hibiki_sms_gateway.domain.receipts import Receipt, outcome_of
from hibiki_sms_gateway.domain.reconciliation import Uncertain, reconcile

log = logging.getLogger("hibiki.sms.receipts")
_BATCH = 1000
# Receipts stored within this long of each other are matched together: a fixed number of statements per
# pass, so fewer per receipt under load (a delivery result waits that much longer).
_GATHER_SECONDS = 0.05
# A receipt that named no stored part is tried again every _RETRY_EVERY seconds, and whenever this process
# stored parts, for _RETRY_FOR; the periodic apply_pending takes it over after that.
_RETRY_EVERY = 0.25
_RETRY_FOR = timedelta(seconds=10)
# A receipt that matched no part and no uncertain message for this long belongs to none of ours.
_GIVE_UP_AFTER = timedelta(days=1)
# Messages a receipt can settle: accepted ones, and those whose submit response a crash lost.
_SETTLEABLE = (MessageState.ACCEPTED, MessageState.SUBMITTING, MessageState.UNCERTAIN)


@dataclass(frozen=True)
class _Unmatched:
    generation: int  # parts stored (ReceiptBook._parts_stored) when it was last looked at
    first_seen: float  # monotonic seconds
    tried: float


class ReceiptBook:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SmsMetrics,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        instance_timeout: timedelta = timedelta(seconds=15),
        reconcile_after: timedelta = timedelta(seconds=5),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._notify = notify
        self._clock = clock
        self._instance_timeout = instance_timeout
        self._reconcile_after = reconcile_after
        self._arrived = asyncio.Event()
        # Receipts are stored on one autocommit connection: one round trip per group on the ack path.
        self._inserts = AutocommitConnection(engine_of(sessions))
        # Ids of the receipts this process stored that the arrival loop has not looked at yet.
        self._stored: list[int] = []
        # Receipts that named no stored part yet (their submit_sm_resp is still being recorded, here or by
        # another replica): tried again while they are young (see _Unmatched); apply_pending takes the rest.
        self._unmatched: dict[int, _Unmatched] = {}
        # Counts the groups of parts this process stored: an unmatched receipt is tried again once parts
        # were stored after it was looked at.
        self._parts_stored = 0

    async def record(self, connector: str, receipts: Sequence[Receipt]) -> None:
        """Store a group of receipts of `connector` in one commit (one statement); returns once committed:
        only then may the connector acknowledge them. A receipt sent again (its acknowledgement was lost) is
        stored once. Matching and settling follow off this path (apply_arrived_forever), so that the SMSC's
        window moves at the speed of one insert."""
        if not receipts:
            return
        received_at = self._clock()
        stored = await self._inserts.run(
            lambda connection: add_receipts(connection, connector, receipts, received_at)
        )
        self._metrics.receipts_stored.inc(len(receipts))
        if stored:
            self._stored.extend(stored)
            self._arrived.set()

    def parts_stored(self) -> None:
        """Parts were just committed: receipts that arrived before them can be matched now."""
        self._parts_stored += 1
        if self._unmatched:
            self._arrived.set()

    async def close(self) -> None:
        await self._inserts.close()

    async def apply_arrived_forever(self) -> None:
        """Match receipts as they are stored, in batches of whatever arrived meanwhile (a background task)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), _RETRY_EVERY if self._unmatched else None)
            await asyncio.sleep(_GATHER_SECONDS)  # what arrives meanwhile shares the statements
            self._arrived.clear()
            try:
                await self._apply_arrived()
            except Exception:
                log.exception("stored receipts could not be applied; retrying")
                self._arrived.set()
                await asyncio.sleep(1.0)

    async def _apply_arrived(self) -> None:
        """Match the receipts stored since the last pass, and the young unmatched ones that may find their
        part now (parts were stored since, here, or a while passed: another replica may have)."""
        generation, now = self._parts_stored, time.monotonic()
        retry = []
        for receipt_id, unmatched in list(self._unmatched.items()):
            if now - unmatched.first_seen > _RETRY_FOR.total_seconds():
                del self._unmatched[receipt_id]  # apply_pending (the maintenance loop) takes it from here
            elif unmatched.generation < generation or now - unmatched.tried >= _RETRY_EVERY:
                retry.append(receipt_id)
        fresh, self._stored = self._stored, []
        ids = fresh + retry
        try:
            for first in range(0, len(ids), _BATCH):
                await self._apply(ids[first : first + _BATCH], generation, now)
        except BaseException:
            self._stored[:0] = fresh
            raise

    async def _apply(self, ids: Sequence[int], generation: int, now: float) -> None:
        async with self._sessions.begin() as session:
            pending = await ReceiptRepository(session).pending(
                received_after=self._clock() - MATCH_WINDOW, ids=ids, limit=len(ids)
            )
            matched, settled = await self._match(session, pending)
        for receipt_id in ids:
            self._unmatched.pop(receipt_id, None)
        for stored in pending:
            if stored.id not in matched:
                first_seen = self._unmatched.get(stored.id, _Unmatched(0, now, now)).first_seen
                self._unmatched[stored.id] = _Unmatched(generation, first_seen, now)
        if settled:
            self._notify()

    async def apply_pending(self) -> None:
        """Match the newest receipts still waiting for their part (run periodically, for those the arrival
        loop stopped trying); receipts that matched nothing for a day are given up."""
        now = self._clock()
        async with self._sessions.begin() as session:
            receipts = ReceiptRepository(session)
            await receipts.give_up(now - _GIVE_UP_AFTER)
            pending = await receipts.pending(received_after=now - MATCH_WINDOW, limit=_BATCH)
            _, settled = await self._match(session, pending)
        if settled:
            self._notify()

    async def reconcile(self) -> int:
        """Match receipts whose part was never stored to the uncertain message they report on; returns how
        many messages that settled."""
        now = self._clock()
        async with self._sessions.begin() as session:
            receipts = ReceiptRepository(session)
            waiting = [
                stored
                for stored in await receipts.pending(
                    received_after=now - MATCH_WINDOW, received_before=now - self._reconcile_after
                )
                if stored.receipt.recipient
            ]
            if not waiting:
                return 0
            live = await InstanceRepository(session, sms_instances).live(now - self._instance_timeout)
            candidates = await MessageRepository(session).unsettled_without_owner(live, now - MATCH_WINDOW)
            known = await receipts.parts_of([m.request_id for m, _ in candidates])
            uncertain = [
                Uncertain(
                    m.request_id,
                    m.recipient,
                    submitted_at,
                    m.snapshot.segments,
                    len(known.get(m.request_id, [])),
                )
                for m, submitted_at in candidates
            ]
            matched = reconcile([(s.id, s.receipt, s.received_at) for s in waiting], uncertain, MATCH_WINDOW)
            if not matched:
                return 0
            by_id = {s.id: s for s in waiting}
            new_parts: dict[str, list[PartId]] = {}
            for receipt_id, request_id in matched.items():
                stored = by_id[receipt_id]
                new_parts.setdefault(request_id, []).append(
                    PartId(stored.connector, stored.receipt.carrier_message_id)
                )
            since = {m.request_id: submitted_at for m, submitted_at in candidates}
            for request_id, parts in new_parts.items():  # a few at most: the messages a crash left unknown
                first = len(known.get(request_id, [])) + 1
                await receipts.add_parts(
                    [SubmittedParts(request_id, parts, since[request_id])], first_number=first
                )
            self._metrics.receipts_reconciled.inc(len(matched))
            _, settled = await self._match(session, [by_id[receipt_id] for receipt_id in matched])
        if settled:
            self._notify()
        return settled

    async def _match(self, session: AsyncSession, pending: Sequence[StoredReceipt]) -> tuple[set[int], int]:
        """Match receipts to the parts they name and settle what that completes; returns the receipts that
        matched and how many messages settled."""
        if not pending:
            return set(), 0
        receipts = ReceiptRepository(session)
        named = await receipts.parts_named(pending)
        await receipts.match({receipt_id: part.id for receipt_id, part in named.items()})
        return set(named), await self._settle(session, {part.request_id for part in named.values()})

    async def _settle(self, session: AsyncSession, request_ids: Collection[str]) -> int:
        """Settle every message whose parts have all reported; returns how many were settled."""
        if not request_ids:
            return 0
        messages = MessageRepository(session)
        receipts = ReceiptRepository(session)
        states = await messages.lock_in_states(request_ids, _SETTLEABLE)
        found = await messages.get_many(states)
        parts = await receipts.parts_of(states)
        reported = await receipts.receipts_of_parts([p.id for ps in parts.values() for p in ps])
        now = self._clock()
        changes: list[StateChange] = []
        outgoing: list[results.Outgoing] = []
        for request_id, state in states.items():
            message, message_parts = found[request_id], parts.get(request_id, [])
            if len(message_parts) < max(1, message.snapshot.segments):
                continue  # a part reconciled by its receipt is waiting for the others
            outcome = outcome_of(
                [reported[p.id].receipt if p.id in reported else None for p in message_parts]
            )
            if outcome is None:
                continue
            target = advance(state, MessageState.DELIVERED if outcome.delivered else MessageState.UNDELIVERED)
            changes.append(StateChange(request_id, state, target, outcome.state, message.attempts, now))
            ids = [p.carrier_message_id for p in message_parts]
            if state is MessageState.SUBMITTING:  # the carrier had it all along: say so first
                outgoing.append(results.accepted(message, ids, request_id, now))
            if outcome.delivered:
                outgoing.append(results.delivered(message, ids, outcome.state, now))
            else:
                outgoing.append(results.undelivered(message, ids, outcome.state, outcome.error_code, now))
            self._metrics.results.labels(target.value, outcome.state).inc()
            self._metrics.receipt_latency.labels(message.carrier or "unknown", outcome.state).observe(
                max(0.0, (now - message.updated_at).total_seconds())
            )
        await messages.change_states(changes)
        await enqueue_all(session, outgoing)
        return len(changes)
