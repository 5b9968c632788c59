"""SQL repository of SMS messages: their state machine, recipients' recent sends and the opt-out list."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hibiki_runtime.db import among, as_utc, dialect_insert
from sqlalchemy import Row, and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hibiki_sms_gateway.adapters.sql import insert_ignoring_duplicates
from hibiki_sms_gateway.adapters.tables import sms_messages, sms_opt_outs
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.sms_message import SmsMessage, Snapshot


def _message(row: Row[Any]) -> SmsMessage:
    return SmsMessage(
        request_id=row.request_id,
        tenant_id=row.tenant_id,
        recipient=row.recipient,
        state=MessageState(row.state),
        reason=row.reason,
        carrier=row.carrier,
        attempts=row.attempts,
        snapshot=Snapshot(
            row.box_number,
            row.box_name,
            row.box_revision,
            row.message_text,
            row.url,
            row.rendered_text,
            row.segments,
        ),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _row(message: SmsMessage) -> dict[str, Any]:
    snapshot = message.snapshot
    return {
        "request_id": message.request_id,
        "tenant_id": message.tenant_id,
        "recipient": message.recipient,
        "state": message.state.value,
        "reason": message.reason,
        "carrier": message.carrier,
        "attempts": message.attempts,
        "box_number": snapshot.box_number,
        "box_name": snapshot.box_name,
        "box_revision": snapshot.box_revision,
        "message_text": snapshot.message_text,
        "url": snapshot.url,
        "rendered_text": snapshot.rendered_text,
        "segments": snapshot.segments,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }


# (tenant_id, recipient): cooldowns and opt-outs are per tenant.
TenantRecipient = tuple[str, str]


@dataclass(frozen=True)
class StateChange:
    """One message leaving `current` for `target`, with the reason and attempts to store."""

    request_id: str
    current: MessageState
    target: MessageState
    reason: str
    attempts: int
    at: datetime


async def mark_submitting(
    bind: AsyncSession | AsyncConnection, *, request_ids: Collection[str], owner: str, now: datetime
) -> set[str]:
    """QUEUED → SUBMITTING for those still queued and still `owner`'s; returns the ones marked.

    A message another process took over (this one was thought dead) is not marked, so not sent twice.
    One statement: on an autocommit connection, one round trip.
    """
    if not request_ids:
        return set()
    rows = await bind.scalars(
        update(sms_messages)
        .where(
            among(bind, sms_messages.c.request_id, request_ids),
            sms_messages.c.state == MessageState.QUEUED.value,
            sms_messages.c.owner == owner,
        )
        .values(state=MessageState.SUBMITTING.value, updated_at=now, submitted_at=now)
        .returning(sms_messages.c.request_id)
    )
    return set(rows.all())


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: SmsMessage) -> bool:
        """Insert the first state of a request; False when the request_id was seen before."""
        return message.request_id in await self.add_all([message])

    async def add_all(self, messages: Sequence[SmsMessage], owner: str | None = None) -> set[str]:
        """Insert the first states of requests (multi-row); returns the request_ids that were new.

        `owner` is the process that is to send the queued ones.
        """
        if not messages:
            return set()
        statement = (
            dialect_insert(self._session, sms_messages)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(sms_messages.c.request_id)
        )
        inserted = await self._session.scalars(
            statement, [{**_row(message), "owner": owner} for message in messages]
        )
        return set(inserted.all())

    async def take_over_queued(
        self,
        live: Collection[str],
        owner: str,
        now: datetime,
        *,
        own_stalled_before: datetime,
        limit: int = 500,
    ) -> list[SmsMessage]:
        """Queued messages whose owner stopped (or this owner's, unmoved since `own_stalled_before`): they
        become `owner`'s, to be sent by it. They never went on the wire, so sending them is no duplicate."""
        dead_owner = or_(sms_messages.c.owner.is_(None), ~sms_messages.c.owner.in_(list(live) or [""]))
        stalled_own = and_(sms_messages.c.owner == owner, sms_messages.c.updated_at < own_stalled_before)
        chosen = (
            select(sms_messages.c.request_id)
            .where(sms_messages.c.state == MessageState.QUEUED.value, or_(dead_owner, stalled_own))
            .order_by(sms_messages.c.created_at)
            .limit(limit)
        )
        rows = await self._session.execute(
            update(sms_messages)
            .where(sms_messages.c.request_id.in_(chosen), sms_messages.c.state == MessageState.QUEUED.value)
            .values(owner=owner, updated_at=now)
            .returning(*sms_messages.c)
        )
        return [_message(row) for row in rows]

    async def unsettled_without_owner(
        self, live: Collection[str], since: datetime
    ) -> list[tuple[SmsMessage, datetime]]:
        """Messages whose fate a receipt may still tell — submitting for a process that stopped, or
        uncertain; updated since `since` — with the time each was marked submitting."""
        dead_owner = or_(sms_messages.c.owner.is_(None), ~sms_messages.c.owner.in_(list(live) or [""]))
        rows = await self._session.execute(
            select(sms_messages).where(
                sms_messages.c.updated_at >= since,
                or_(
                    and_(sms_messages.c.state == MessageState.SUBMITTING.value, dead_owner),
                    sms_messages.c.state == MessageState.UNCERTAIN.value,
                ),
            )
        )
        found = []
        for row in rows:
            message = _message(row)
            found.append((message, as_utc(row.submitted_at) or message.updated_at))
        return found

    async def submitting_without_owner(
        self, live: Collection[str], *, orphaned_before: datetime, stuck_before: datetime, limit: int = 500
    ) -> list[SmsMessage]:
        """Submitting messages nobody will record an outcome for: their process stopped (and they stayed
        so since `orphaned_before`), or they have been submitting since `stuck_before` whoever owns them."""
        dead_owner = or_(sms_messages.c.owner.is_(None), ~sms_messages.c.owner.in_(list(live) or [""]))
        rows = await self._session.execute(
            select(sms_messages)
            .where(
                sms_messages.c.state == MessageState.SUBMITTING.value,
                or_(
                    and_(dead_owner, sms_messages.c.updated_at < orphaned_before),
                    sms_messages.c.updated_at < stuck_before,
                ),
            )
            .order_by(sms_messages.c.updated_at)
            .limit(limit)
        )
        return [_message(row) for row in rows]

    async def get(self, request_id: str) -> SmsMessage | None:
        return (await self.get_many([request_id])).get(request_id)

    async def get_many(self, request_ids: Collection[str]) -> dict[str, SmsMessage]:
        if not request_ids:
            return {}
        rows = await self._session.execute(
            select(sms_messages).where(among(self._session, sms_messages.c.request_id, request_ids))
        )
        return {row.request_id: _message(row) for row in rows}

    async def owners(self, request_ids: Collection[str]) -> dict[str, str]:
        """The tenant of each request_id seen before (those never seen are absent)."""
        if not request_ids:
            return {}
        rows = await self._session.execute(
            select(sms_messages.c.request_id, sms_messages.c.tenant_id).where(
                among(self._session, sms_messages.c.request_id, request_ids)
            )
        )
        return {row.request_id: row.tenant_id for row in rows}

    async def lock_in_state(self, request_ids: Collection[str], state: MessageState) -> set[str]:
        """The request_ids still in `state`, row-locked (PostgreSQL) until the transaction ends."""
        return set(await self.lock_in_states(request_ids, [state]))

    async def lock_in_states(
        self, request_ids: Collection[str], states: Collection[MessageState]
    ) -> dict[str, MessageState]:
        """The state of those of request_ids in one of `states`, row-locked until the transaction ends."""
        if not request_ids:
            return {}
        rows = await self._session.execute(
            select(sms_messages.c.request_id, sms_messages.c.state)
            .where(
                among(self._session, sms_messages.c.request_id, request_ids),
                among(self._session, sms_messages.c.state, [state.value for state in states]),
            )
            .order_by(sms_messages.c.request_id)
            .with_for_update()
        )
        return {row.request_id: MessageState(row.state) for row in rows}

    async def change_states(self, changes: Sequence[StateChange]) -> None:
        """Apply state changes with one executemany; a row no longer in its `current` state is left alone.

        Callers that must know which rows changed lock them first (lock_in_state) in the same transaction.
        """
        if not changes:
            return
        await self._session.execute(
            update(sms_messages)
            .where(
                sms_messages.c.request_id == bindparam("change_request_id"),
                sms_messages.c.state == bindparam("change_current"),
            )
            .values(
                state=bindparam("change_target"),
                reason=bindparam("change_reason"),
                attempts=bindparam("change_attempts"),
                updated_at=bindparam("change_at"),
            ),
            [
                {
                    "change_request_id": change.request_id,
                    "change_current": change.current.value,
                    "change_target": change.target.value,
                    "change_reason": change.reason,
                    "change_attempts": change.attempts,
                    "change_at": change.at,
                }
                for change in changes
            ],
        )

    async def move(
        self,
        request_id: str,
        current: MessageState,
        target: MessageState,
        *,
        now: datetime,
        reason: str = "",
        attempts: int | None = None,
    ) -> bool:
        """Change the state only if it is still `current` (guards against a concurrent sweeper or receipt)."""
        values: dict[str, Any] = {"state": target.value, "reason": reason, "updated_at": now}
        if attempts is not None:
            values["attempts"] = attempts
        result = await self._session.execute(
            update(sms_messages)
            .where(sms_messages.c.request_id == request_id, sms_messages.c.state == current.value)
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def sends_since(
        self, recipients: Collection[TenantRecipient], since: datetime
    ) -> dict[TenantRecipient, list[datetime]]:
        """When each recipient was sent to (or is being sent to) since `since`; recipients never sent to
        are absent."""
        if not recipients:
            return {}
        rows = await self._session.execute(
            select(sms_messages.c.tenant_id, sms_messages.c.recipient, sms_messages.c.created_at).where(
                *self._any_of(sms_messages.c.tenant_id, sms_messages.c.recipient, recipients),
                sms_messages.c.created_at >= since,
                sms_messages.c.state != MessageState.REJECTED.value,
            )
        )
        wanted = set(recipients)
        sends: dict[TenantRecipient, list[datetime]] = {}
        for row in rows:
            if (key := (row.tenant_id, row.recipient)) in wanted:
                sends.setdefault(key, []).append(as_utc(row.created_at))
        return sends

    async def opted_out(self, recipients: Collection[TenantRecipient]) -> set[TenantRecipient]:
        """Those of `recipients` who opted out of their tenant's SMS."""
        if not recipients:
            return set()
        rows = await self._session.execute(
            select(sms_opt_outs.c.tenant_id, sms_opt_outs.c.recipient).where(
                *self._any_of(sms_opt_outs.c.tenant_id, sms_opt_outs.c.recipient, recipients)
            )
        )
        wanted = set(recipients)
        return {key for row in rows if (key := (row.tenant_id, row.recipient)) in wanted}

    def _any_of(
        self, tenant_column: Any, recipient_column: Any, recipients: Collection[TenantRecipient]
    ) -> tuple[Any, Any]:
        """Conditions matching the rows of `recipients`; with several tenants in a batch they match some
        other tenant-recipient pairs too, so callers keep only the pairs they asked for."""
        return (
            among(self._session, tenant_column, {tenant for tenant, _ in recipients}),
            among(self._session, recipient_column, {recipient for _, recipient in recipients}),
        )

    async def opt_out(self, tenant_id: str, recipient: str, now: datetime) -> None:
        await self._session.execute(
            insert_ignoring_duplicates(
                self._session,
                sms_opt_outs,
                ["tenant_id", "recipient"],
                tenant_id=tenant_id,
                recipient=recipient,
                created_at=now,
            )
        )

    async def remove_opt_out(self, tenant_id: str, recipient: str) -> bool:
        result = await self._session.execute(
            delete(sms_opt_outs).where(
                sms_opt_outs.c.tenant_id == tenant_id, sms_opt_outs.c.recipient == recipient
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)
