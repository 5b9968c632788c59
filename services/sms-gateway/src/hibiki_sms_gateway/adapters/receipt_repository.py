"""SQL of message parts and delivery receipts, set-based: a fixed number of statements per group of receipts.

A carrier message id names a part only together with its connector (SMSC account) and the time it was
given: SMSCs number from 1 again after a restart and wrap around. A receipt is matched to the latest part
of its connector with that id submitted before it arrived (within MATCH_WINDOW); parts stored before
connectors were named have connector "" and match any.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hibiki_runtime.db import among, as_utc, dialect_insert
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hibiki_sms_gateway.adapters.tables import sms_message_parts, sms_receipts
from hibiki_sms_gateway.domain.receipts import Receipt

# How long a carrier message id names one part: receipts come within days; ids are reused after longer.
MATCH_WINDOW = timedelta(days=3)
# Clocks of the SMSC and of this service differ a little: a receipt may look older than its part.
CLOCK_SKEW = timedelta(minutes=5)
LEGACY_CONNECTOR = ""


@dataclass(frozen=True)
class PartId:
    """A part as a carrier names it: the connector it went through and the id the SMSC gave it."""

    connector: str
    carrier_message_id: str


@dataclass(frozen=True)
class SubmittedParts:
    """The parts of one request as the carrier took them, at `at`."""

    request_id: str
    parts: Sequence[PartId]
    at: datetime


@dataclass(frozen=True)
class StoredPart:
    id: int
    request_id: str
    part_number: int
    connector: str
    carrier_message_id: str
    submitted_at: datetime


@dataclass(frozen=True)
class StoredReceipt:
    id: int
    connector: str
    receipt: Receipt
    received_at: datetime
    part_id: int | None


def receipt_key(receipt: Receipt, received_at: datetime) -> str:
    """What tells two receipts of one id apart: the submit date, else the day the receipt came."""
    return receipt.submit_date or received_at.strftime("d%Y%m%d")


def _receipt(row: Any) -> StoredReceipt:
    receipt = Receipt(row.carrier_message_id, row.state, row.error_code, row.recipient, row.submit_date)
    return StoredReceipt(row.id, row.connector, receipt, as_utc(row.received_at), row.part_id)


def _part(row: Any) -> StoredPart:
    return StoredPart(
        row.id,
        row.request_id,
        row.part_number,
        row.connector,
        row.carrier_message_id,
        as_utc(row.submitted_at),
    )


async def add_receipts(
    bind: AsyncSession | AsyncConnection, connector: str, receipts: Sequence[Receipt], received_at: datetime
) -> list[int]:
    """Store receipts in one statement; returns the ids of those stored now (one sent again because its
    answer was lost is kept once, and not returned again)."""
    rows = [
        {
            "connector": connector,
            "carrier_message_id": receipt.carrier_message_id,
            "receipt_key": receipt_key(receipt, received_at),
            "state": receipt.state,
            "error_code": receipt.error_code,
            "recipient": receipt.recipient,
            "submit_date": receipt.submit_date,
            "received_at": received_at,
            "applied": 0,
            "part_id": None,
        }
        for receipt in receipts
    ]
    if not rows:
        return []
    statement = (
        dialect_insert(bind, sms_receipts)
        .on_conflict_do_nothing(index_elements=["connector", "carrier_message_id", "receipt_key"])
        .returning(sms_receipts.c.id)
    )
    return list((await bind.execute(statement, rows)).scalars().all())


class ReceiptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # -- parts ---------------------------------------------------------------------------------------
    async def add_parts(self, parts: Sequence[SubmittedParts], first_number: int = 1) -> None:
        """Store the parts of several requests (in order, numbered from `first_number`) in one statement."""
        rows = [
            {
                "connector": part.connector,
                "carrier_message_id": part.carrier_message_id,
                "request_id": submitted.request_id,
                "part_number": number,
                "submitted_at": submitted.at,
            }
            for submitted in parts
            for number, part in enumerate(submitted.parts, start=first_number)
        ]
        if rows:
            await self._session.execute(insert(sms_message_parts), rows)

    async def parts_of(self, request_ids: Collection[str]) -> dict[str, list[StoredPart]]:
        """The stored parts of each request, in part order."""
        if not request_ids:
            return {}
        rows = await self._session.execute(
            select(sms_message_parts)
            .where(among(self._session, sms_message_parts.c.request_id, request_ids))
            .order_by(sms_message_parts.c.request_id, sms_message_parts.c.part_number)
        )
        parts: dict[str, list[StoredPart]] = {}
        for row in rows:
            parts.setdefault(row.request_id, []).append(_part(row))
        return parts

    async def parts_named(self, receipts: Sequence[StoredReceipt]) -> dict[int, StoredPart]:
        """The part each receipt names (by receipt id): same connector (or a legacy part) and id, the latest
        one submitted before the receipt arrived, within MATCH_WINDOW."""
        if not receipts:
            return {}
        earliest = min(r.received_at for r in receipts) - MATCH_WINDOW
        rows = await self._session.execute(
            select(sms_message_parts).where(
                among(
                    self._session,
                    sms_message_parts.c.carrier_message_id,
                    {r.receipt.carrier_message_id for r in receipts},
                ),
                sms_message_parts.c.submitted_at >= earliest,
            )
        )
        candidates: dict[str, list[StoredPart]] = {}
        for row in rows:
            candidates.setdefault(row.carrier_message_id, []).append(_part(row))
        named: dict[int, StoredPart] = {}
        for stored in receipts:
            fitting = [
                part
                for part in candidates.get(stored.receipt.carrier_message_id, [])
                if part.connector in (stored.connector, LEGACY_CONNECTOR)
                and stored.received_at - MATCH_WINDOW <= part.submitted_at <= stored.received_at + CLOCK_SKEW
            ]
            if fitting:
                named[stored.id] = max(fitting, key=lambda part: part.submitted_at)
        return named

    # -- receipts ------------------------------------------------------------------------------------
    async def add_receipts(
        self, connector: str, receipts: Sequence[Receipt], received_at: datetime
    ) -> list[int]:
        """Store receipts; one sent again (its answer was lost) is kept once. The ids stored now."""
        return await add_receipts(self._session, connector, receipts, received_at)

    async def pending(
        self,
        *,
        received_after: datetime,
        carrier_message_ids: Collection[str] | None = None,
        received_before: datetime | None = None,
        ids: Collection[int] | None = None,
        limit: int = 1000,
    ) -> list[StoredReceipt]:
        """Receipts not yet matched to a part, optionally only those of some carrier message ids or receipt
        ids (oldest first); without either, the newest first (new receipts matter most)."""
        conditions = [sms_receipts.c.applied == 0, sms_receipts.c.received_at >= received_after]
        order: Any = sms_receipts.c.id.desc()
        if carrier_message_ids is not None:
            if not carrier_message_ids:
                return []
            conditions.append(among(self._session, sms_receipts.c.carrier_message_id, carrier_message_ids))
            order = sms_receipts.c.id
        if ids is not None:
            if not ids:
                return []
            conditions.append(among(self._session, sms_receipts.c.id, ids))
            order = sms_receipts.c.id
        if received_before is not None:
            conditions.append(sms_receipts.c.received_at < received_before)
        rows = await self._session.execute(
            select(sms_receipts).where(*conditions).order_by(order).limit(limit)
        )
        return [_receipt(row) for row in rows]

    async def give_up(self, received_before: datetime) -> int:
        """Stop matching receipts older than `received_before` that matched nothing; returns how many."""
        result = await self._session.execute(
            update(sms_receipts)
            .where(sms_receipts.c.applied == 0, sms_receipts.c.received_at < received_before)
            .values(applied=2)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def match(self, matches: Mapping[int, int]) -> None:
        """Record which part each receipt (by id) reports on."""
        if matches:
            await self._session.execute(
                update(sms_receipts)
                .where(sms_receipts.c.id == bindparam("receipt_id"))
                .values(part_id=bindparam("matched_part"), applied=1),
                [{"receipt_id": receipt, "matched_part": part} for receipt, part in matches.items()],
            )

    async def receipts_of_parts(self, part_ids: Collection[int]) -> dict[int, StoredReceipt]:
        """The receipt matched to each part (the earliest when a part was reported twice)."""
        if not part_ids:
            return {}
        rows = await self._session.execute(
            select(sms_receipts)
            .where(among(self._session, sms_receipts.c.part_id, part_ids))
            .order_by(sms_receipts.c.received_at.desc())
        )
        return {row.part_id: _receipt(row) for row in rows}  # the earliest wins (written last)
