"""Per-call state in SQL: loaded when an event of the call arrives, written in the batch's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from hibiki_runtime.db import among
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_routing.adapters.tables import call_states
from hibiki_routing.domain.calls import CallState, CapturePhase


def _state(row: Any) -> CallState:
    return CallState(
        call_id=row.call_id,
        tenant_id=row.tenant_id,
        flow_id=row.flow_id,
        flow_version=row.flow_version,
        dialed_number=row.dialed_number,
        caller_number=row.caller_number,
        node_id=row.node_id,
        awaiting_step=row.awaiting_step,
        step=row.step,
        invalid_attempts=dict(row.invalid_attempts),
        timeout_attempts=dict(row.timeout_attempts),
        ended=row.ended,
        capture_phase=CapturePhase(row.capture_phase) if row.capture_phase else None,
        captured_number=row.captured_number,
    )


def _columns(state: CallState) -> dict[str, Any]:
    return {
        "tenant_id": state.tenant_id,
        "flow_id": state.flow_id,
        "flow_version": state.flow_version,
        "dialed_number": state.dialed_number,
        "caller_number": state.caller_number,
        "node_id": state.node_id,
        "awaiting_step": state.awaiting_step,
        "step": state.step,
        "invalid_attempts": dict(state.invalid_attempts),
        "timeout_attempts": dict(state.timeout_attempts),
        "ended": state.ended,
        "capture_phase": state.capture_phase.value if state.capture_phase else "",
        "captured_number": state.captured_number,
        "updated_at": datetime.now(UTC),
    }


# One statement for all changed states of a batch (executemany); the WHERE parameter is named apart from the
# SET columns.
_UPDATE_BY_CALL_ID = (
    update(call_states)
    .where(call_states.c.call_id == bindparam("target_call_id"))
    .values({column.name: bindparam(column.name) for column in call_states.c if column.name != "call_id"})
)


class CallStateRepository:
    """Reads the states of a batch's calls in one query and writes the changed ones back together."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._loaded: dict[str, CallState | None] = {}
        self._new: set[str] = set()
        self._changed: dict[str, CallState] = {}

    async def load(self, call_ids: Iterable[str]) -> list[CallState]:
        """Read the states of `call_ids` not read yet, in one query; returns those found."""
        wanted = [call_id for call_id in dict.fromkeys(call_ids) if call_id not in self._loaded]
        if not wanted:
            return []
        rows = (
            await self._session.execute(
                select(call_states).where(among(self._session, call_states.c.call_id, wanted))
            )
        ).all()
        found = [_state(row) for row in rows]
        self._loaded.update(dict.fromkeys(wanted))
        self._loaded.update((state.call_id, state) for state in found)
        return found

    def get(self, call_id: str) -> CallState | None:
        """The call's state as last loaded or put; None for a call that has none (it was not started)."""
        if call_id not in self._loaded:
            raise LookupError(f"call {call_id} was not loaded")
        return self._loaded[call_id]

    def put(self, state: CallState) -> None:
        if self._loaded.get(state.call_id) is None:
            self._new.add(state.call_id)
        self._loaded[state.call_id] = state
        self._changed[state.call_id] = state

    async def flush(self) -> None:
        """Write every state put since the last flush: one INSERT for new calls, one UPDATE for the others."""
        new = [{"call_id": i, **_columns(s)} for i, s in self._changed.items() if i in self._new]
        changed = [
            {"target_call_id": i, **_columns(s)} for i, s in self._changed.items() if i not in self._new
        ]
        # executemany, not a multi-row VALUES: 500 new states took 13-20 ms against PostgreSQL this way and
        # 110-200 ms as one VALUES of 7,000 parameters (compiled anew for every batch size, then bound).
        if new:
            await self._session.execute(call_states.insert(), new)
        if changed:
            await self._session.execute(_UPDATE_BY_CALL_ID, changed)
        self._new.clear()
        self._changed.clear()


async def count_in_progress(session: AsyncSession, active_since: datetime) -> int:
    """Calls not ended that had an event since `active_since` (older ones lost their CallEnded)."""
    count = await session.scalar(
        select(func.count())
        .select_from(call_states)
        .where(call_states.c.ended.is_(False), call_states.c.updated_at >= active_since)
    )
    return int(count or 0)


async def purge_idle(session: AsyncSession, idle_since: datetime) -> int:
    """Forget calls without an event since `idle_since`: their state holds caller numbers."""
    result = await session.execute(delete(call_states).where(call_states.c.updated_at < idle_since))
    return int(getattr(result, "rowcount", 0) or 0)
