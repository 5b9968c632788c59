"""SQL repository of SMS messages: their state machine, parts, delivery receipts and the opt-out list."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hibiki_runtime.db import among, as_utc, dialect_insert
from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_sms_gateway.adapters.sql import insert_ignoring_duplicates
from hibiki_sms_gateway.adapters.tables import sms_message_parts, sms_messages, sms_opt_outs, sms_receipts
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.receipts import Receipt
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


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: SmsMessage) -> bool:
        """Insert the first state of a request; False when the request_id was seen before."""
        return message.request_id in await self.add_all([message])

    async def add_all(self, messages: Sequence[SmsMessage]) -> set[str]:
        """Insert the first states of requests (multi-row); returns the request_ids that were new."""
        if not messages:
            return set()
        statement = (
            dialect_insert(self._session, sms_messages)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(sms_messages.c.request_id)
        )
        inserted = await self._session.scalars(statement, [_row(message) for message in messages])
        return set(inserted.all())

    async def get(self, request_id: str) -> SmsMessage | None:
        row = (
            await self._session.execute(select(sms_messages).where(sms_messages.c.request_id == request_id))
        ).first()
        return _message(row) if row else None

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
        if not request_ids:
            return set()
        rows = await self._session.scalars(
            select(sms_messages.c.request_id)
            .where(
                among(self._session, sms_messages.c.request_id, request_ids),
                sms_messages.c.state == state.value,
            )
            .order_by(sms_messages.c.request_id)
            .with_for_update()
        )
        return set(rows.all())

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

    async def add_parts(self, request_id: str, carrier_message_ids: Sequence[str]) -> None:
        await self.add_parts_of({request_id: carrier_message_ids})

    async def add_parts_of(self, parts: Mapping[str, Sequence[str]]) -> None:
        """Store the carrier message ids of several requests' parts (request_id → ids in part order)."""
        rows = [
            {"carrier_message_id": message_id, "request_id": request_id, "part_number": number}
            for request_id, carrier_message_ids in parts.items()
            for number, message_id in enumerate(carrier_message_ids, start=1)
        ]
        if rows:
            await self._session.execute(insert(sms_message_parts), rows)

    async def part_ids(self, request_id: str) -> list[str]:
        rows = await self._session.execute(
            select(sms_message_parts.c.carrier_message_id)
            .where(sms_message_parts.c.request_id == request_id)
            .order_by(sms_message_parts.c.part_number)
        )
        return list(rows.scalars())

    async def request_of_part(self, carrier_message_id: str) -> str | None:
        return await self._session.scalar(
            select(sms_message_parts.c.request_id).where(
                sms_message_parts.c.carrier_message_id == carrier_message_id
            )
        )

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

    async def stuck_in(
        self, state: MessageState, updated_before: datetime, limit: int = 100
    ) -> list[SmsMessage]:
        rows = await self._session.execute(
            select(sms_messages)
            .where(sms_messages.c.state == state.value, sms_messages.c.updated_at < updated_before)
            .order_by(sms_messages.c.updated_at)
            .limit(limit)
        )
        return [_message(row) for row in rows]

    # -- receipts ------------------------------------------------------------------------------------
    async def add_receipt(self, receipt: Receipt, now: datetime) -> None:
        await self._session.execute(
            insert_ignoring_duplicates(
                self._session,
                sms_receipts,
                ["carrier_message_id"],
                carrier_message_id=receipt.carrier_message_id,
                state=receipt.state,
                error_code=receipt.error_code,
                received_at=now,
                applied=0,
            )
        )

    async def receipts_for(self, carrier_message_ids: Sequence[str]) -> dict[str, tuple[Receipt, datetime]]:
        rows = await self._session.execute(
            select(sms_receipts).where(
                among(self._session, sms_receipts.c.carrier_message_id, carrier_message_ids)
            )
        )
        return {
            row.carrier_message_id: (
                Receipt(row.carrier_message_id, row.state, row.error_code),
                as_utc(row.received_at),
            )
            for row in rows
        }

    async def unapplied_receipts_among(self, carrier_message_ids: Collection[str]) -> list[str]:
        """Those of `carrier_message_ids` whose receipt is stored but not yet applied to its message."""
        if not carrier_message_ids:
            return []
        rows = await self._session.scalars(
            select(sms_receipts.c.carrier_message_id).where(
                among(self._session, sms_receipts.c.carrier_message_id, carrier_message_ids),
                sms_receipts.c.applied == 0,
            )
        )
        return list(rows.all())

    async def mark_receipts_applied(self, carrier_message_ids: Sequence[str]) -> None:
        await self._session.execute(
            update(sms_receipts)
            .where(among(self._session, sms_receipts.c.carrier_message_id, carrier_message_ids))
            .values(applied=1)
        )

    async def unapplied_receipt_ids(self, received_after: datetime, limit: int = 500) -> list[str]:
        rows = await self._session.execute(
            select(sms_receipts.c.carrier_message_id)
            .where(sms_receipts.c.applied == 0, sms_receipts.c.received_at >= received_after)
            .limit(limit)
        )
        return list(rows.scalars())

    async def remove_opt_out(self, tenant_id: str, recipient: str) -> bool:
        result = await self._session.execute(
            delete(sms_opt_outs).where(
                sms_opt_outs.c.tenant_id == tenant_id, sms_opt_outs.c.recipient == recipient
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)
