"""Consumes call.events: each batch claims, decides, saves call state, queues outputs in one transaction.

The database work is per batch, not per event: one claim, one read of each kind (call states, live flows,
blocklist entries, flow versions not cached yet) and one write of each kind, whatever the batch size. The
events are then decided in order on the states in memory, so a call's CallStarted and its next event may share
a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime

from hibiki_runtime.consumer import Inbound, Rejection
from hibiki_runtime.unit_of_work import ConsumerUnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.adapters.blocklist_repository import BlocklistRepository
from hibiki_routing.adapters.call_messages import outgoing
from hibiki_routing.adapters.call_state_repository import CallStateRepository
from hibiki_routing.adapters.flow_repository import FlowRepository, LiveFlow
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.calls import Caller, CallState, Decision
from hibiki_routing.domain.commands import ContinueCall, RoutingCommand, StartCall
from hibiki_routing.domain.engine import decide, not_in_service, start_call
from hibiki_routing.domain.flows import FlowDefinition
from hibiki_routing.domain.pinning import pin_steps

CONSUMER = "routing.call-events"
MAX_CACHED_DEFINITIONS = 1000

# Calls to numbers without a flow have no definition; they are ended, so the engine never reads it.
_NO_FLOW = FlowDefinition(entry_node_id="")

Item = Inbound[RoutingCommand]


class Rejected(Exception):
    """An event routing will never process; it goes to call.events.dlq with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Lookups:
    """What the batch's StartCall commands read, loaded before the first decision."""

    live_flows: Mapping[str, LiveFlow]  # by dialed number
    blocked_callers: Set[tuple[str, str]]  # (tenant, caller number)


def _starts(batch: Sequence[Item]) -> list[tuple[str, StartCall]]:
    return [(item.tenant_id, item.command) for item in batch if isinstance(item.command, StartCall)]


class CallEventsHandler:
    """Batch handler of call.events commands (see hibiki_runtime.consumer)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notify_outbox: Callable[[], None],
        metrics: RoutingMetrics,
    ) -> None:
        self._sessions = sessions
        self._notify_outbox = notify_outbox
        self._metrics = metrics
        # Published versions never change, so parsed definitions can be kept.
        self._definitions: dict[tuple[str, int], FlowDefinition] = {}
        # The guidance content each version pinned (guidance id → content revision), read with its definition.
        self._pins: dict[tuple[str, int], Mapping[str, int]] = {}

    async def __call__(self, items: Sequence[Item]) -> Sequence[Rejection]:
        decided: list[tuple[Decision, datetime]] = []
        async with ConsumerUnitOfWork(self._sessions, CONSUMER, self._notify_outbox) as work:
            batch = await work.claim(items)
            calls = CallStateRepository(work.session)
            lookups = await self._load(work.session, calls, batch)
            for item in batch:
                try:
                    decision = self._decide(item, calls, lookups)
                except Rejected as rejected:
                    work.reject(item, rejected.reason, rejected.detail)
                    continue
                calls.put(decision.state)
                pins = self._pins.get((decision.state.flow_id, decision.state.flow_version))
                steps = pin_steps(decision.steps, pins)
                work.send(outgoing(decision.state, steps, item.event_id, item.traceparent))
                decided.append((decision, item.occurred_at))
            await calls.flush()
        queued_at = datetime.now(UTC)
        for decision, at in decided:
            self._metrics.record(decision, at, queued_at)
        return work.rejections

    async def _load(
        self, session: AsyncSession, calls: CallStateRepository, batch: Sequence[Item]
    ) -> _Lookups:
        """Read everything the batch's decisions need, one query per kind."""
        flows = FlowRepository(session)
        states = await calls.load(item.command.call_id for item in batch)
        starts = _starts(batch)
        live = await flows.live_flows_for({start.dialed_number for _, start in starts})
        await self._cache_definitions(
            flows,
            {(s.flow_id, s.flow_version) for s in states if s.flow_id}
            | {(f.flow_id, f.version) for f in live.values()},
        )
        # Only a flow that rejects blocklisted callers reads the blocklist (see CallerRejection).
        screened = {
            (tenant_id, start.sms_reachable_caller)
            for tenant_id, start in starts
            if start.sms_reachable_caller
            and self._rejects_blocklisted(live.get(start.dialed_number), tenant_id)
        }
        return _Lookups(live, await BlocklistRepository(session).blocked_among(screened))

    def _decide(self, item: Item, calls: CallStateRepository, lookups: _Lookups) -> Decision:
        command, tenant_id = item.command, item.tenant_id
        call_id = command.call_id
        state = calls.get(call_id)
        if state is not None and state.tenant_id != tenant_id:
            raise Rejected("cross_tenant", f"call {call_id} belongs to another tenant")
        if isinstance(command, StartCall):
            if state is not None:
                raise Rejected("call_already_started", f"call {call_id} started with another event")
            return self._start(command, tenant_id, lookups)
        if state is None:
            raise Rejected("unknown_call", f"no call {call_id} was started")
        assert isinstance(command, ContinueCall)
        return decide(state, self._definition(state), command.event)

    def _start(self, start: StartCall, tenant_id: str, lookups: _Lookups) -> Decision:
        live = lookups.live_flows.get(start.dialed_number)
        if live is not None and live.tenant_id != tenant_id:
            raise Rejected("cross_tenant", "the dialed number belongs to another tenant")
        state = CallState(
            start.call_id,
            tenant_id,
            live.flow_id if live else "",
            live.version if live else 0,
            start.dialed_number,
            start.sms_reachable_caller,
        )
        if live is None:
            return not_in_service(state)
        blocklisted = (tenant_id, start.sms_reachable_caller) in lookups.blocked_callers
        return start_call(state, self._definition(state), start.at, Caller(start.withheld, blocklisted))

    async def _cache_definitions(self, flows: FlowRepository, versions: Set[tuple[str, int]]) -> None:
        missing = versions - self._definitions.keys()
        if len(self._definitions) + len(missing) > MAX_CACHED_DEFINITIONS:
            self._definitions.clear()
            self._pins.clear()
            missing = set(versions)
        if missing:
            self._definitions.update(await flows.definitions(missing))
            self._pins.update(await flows.content_revisions(missing))

    def _rejects_blocklisted(self, live: LiveFlow | None, tenant_id: str) -> bool:
        if live is None or live.tenant_id != tenant_id:
            return False
        definition = self._definitions.get((live.flow_id, live.version))
        return definition is not None and definition.caller_rejection.reject_blocklisted

    def _definition(self, state: CallState) -> FlowDefinition:
        if not state.flow_id:
            return _NO_FLOW
        definition = self._definitions.get((state.flow_id, state.flow_version))
        if definition is None:
            # The event goes to the DLQ (handler_error), to be replayed once the version is repaired.
            raise RuntimeError(f"published version {(state.flow_id, state.flow_version)} is missing")
        return definition
