"""SQL repository of SMS messages: their state machine, parts, delivery receipts and the opt-out list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hibiki_runtime.db import as_utc
from sqlalchemy import Row, delete, func, insert, select, update
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


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: SmsMessage) -> bool:
        """Insert the first state of a request; False when the request_id was seen before."""
        snapshot = message.snapshot
        result = await self._session.execute(
            insert_ignoring_duplicates(
                self._session,
                sms_messages,
                ["request_id"],
                request_id=message.request_id,
                tenant_id=message.tenant_id,
                recipient=message.recipient,
                state=message.state.value,
                reason=message.reason,
                carrier=message.carrier,
                attempts=message.attempts,
                box_number=snapshot.box_number,
                box_name=snapshot.box_name,
                box_revision=snapshot.box_revision,
                message_text=snapshot.message_text,
                url=snapshot.url,
                rendered_text=snapshot.rendered_text,
                segments=snapshot.segments,
                created_at=message.created_at,
                updated_at=message.updated_at,
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def get(self, request_id: str) -> SmsMessage | None:
        row = (
            await self._session.execute(select(sms_messages).where(sms_messages.c.request_id == request_id))
        ).first()
        return _message(row) if row else None

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
        await self._session.execute(
            insert(sms_message_parts),
            [
                {"carrier_message_id": message_id, "request_id": request_id, "part_number": number}
                for number, message_id in enumerate(carrier_message_ids, start=1)
            ],
        )

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

    async def sends_since(self, tenant_id: str, recipient: str, since: datetime) -> list[datetime]:
        """When this recipient was sent to (or is being sent to) since `since`."""
        rows = await self._session.execute(
            select(sms_messages.c.created_at).where(
                sms_messages.c.tenant_id == tenant_id,
                sms_messages.c.recipient == recipient,
                sms_messages.c.created_at >= since,
                sms_messages.c.state != MessageState.REJECTED.value,
            )
        )
        return [as_utc(value) for value in rows.scalars()]

    async def is_opted_out(self, tenant_id: str, recipient: str) -> bool:
        found = await self._session.scalar(
            select(func.count())
            .select_from(sms_opt_outs)
            .where(sms_opt_outs.c.tenant_id == tenant_id, sms_opt_outs.c.recipient == recipient)
        )
        return bool(found)

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
            select(sms_receipts).where(sms_receipts.c.carrier_message_id.in_(carrier_message_ids))
        )
        return {
            row.carrier_message_id: (
                Receipt(row.carrier_message_id, row.state, row.error_code),
                as_utc(row.received_at),
            )
            for row in rows
        }

    async def mark_receipts_applied(self, carrier_message_ids: Sequence[str]) -> None:
        await self._session.execute(
            update(sms_receipts)
            .where(sms_receipts.c.carrier_message_id.in_(carrier_message_ids))
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
