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

from hibiki.call.v1 import call_events_pb2
from hibiki_runtime.kafka import Delivery, Rejection
from hibiki_runtime.outbox import claim_events, enqueue_all, first_claimed, release_claims
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.adapters.blocklist_repository import BlocklistRepository
from hibiki_routing.adapters.call_messages import call_event, occurred_at, outgoing
from hibiki_routing.adapters.call_state_repository import CallStateRepository
from hibiki_routing.adapters.flow_repository import FlowRepository, LiveFlow
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.calls import Caller, CallState, Decision
from hibiki_routing.domain.engine import decide, not_in_service, start_call
from hibiki_routing.domain.flows import FlowDefinition
from hibiki_routing.domain.validation import E164

CONSUMER = "routing.call-events"
MAX_ID_LENGTH = 100
MAX_CACHED_DEFINITIONS = 1000

# Calls to numbers without a flow have no definition; they are ended, so the engine never reads it.
_NO_FLOW = FlowDefinition(entry_node_id="")


class Rejected(Exception):
    """An event routing will never process; it goes to call.events.dlq with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Inbound:
    delivery: Delivery
    message: call_events_pb2.CallEvent

    @property
    def tenant_id(self) -> str:
        return self.delivery.event.tenant_id

    @property
    def started(self) -> call_events_pb2.CallStarted | None:
        return self.message.call_started if self.message.WhichOneof("body") == "call_started" else None


@dataclass(frozen=True)
class _Lookups:
    """What the batch's CallStarted events read, loaded before the first decision."""

    live_flows: Mapping[str, LiveFlow]  # by dialed number
    blocked_callers: Set[tuple[str, str]]  # (tenant, caller number)


def _valid_ids(call_id: str, tenant_id: str) -> bool:
    return 0 < len(call_id) <= MAX_ID_LENGTH and len(tenant_id) <= MAX_ID_LENGTH


def _sms_reachable_caller(started: call_events_pb2.CallStarted) -> str:
    """The caller's number; "" when withheld or not E.164: it cannot receive an SMS (the call still gets
    its menu)."""
    number = started.caller_number
    return number if E164.match(number) and not started.caller_withheld else ""


def _inbound(delivery: Delivery) -> _Inbound:
    message = delivery.event.message
    assert isinstance(message, call_events_pb2.CallEvent)
    return _Inbound(delivery, message)


class CallEventsHandler:
    """Batch handler for call.events (see hibiki_runtime.kafka.register_batch_consumer)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notify_outbox: Callable[[], None],
        not_in_service_text: str,
        metrics: RoutingMetrics,
    ) -> None:
        self._sessions = sessions
        self._notify_outbox = notify_outbox
        self._not_in_service_text = not_in_service_text
        self._metrics = metrics
        # Published versions never change, so parsed definitions can be kept.
        self._definitions: dict[tuple[str, int], FlowDefinition] = {}

    async def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[Rejection]:
        rejections: list[Rejection] = []
        decided: list[tuple[Decision, datetime | None]] = []
        async with self._sessions() as session, session.begin():
            claimed = await claim_events(session, CONSUMER, [d.event.event_id for d in deliveries])
            batch = [_inbound(d) for d in first_claimed(deliveries, claimed, lambda d: d.event.event_id)]
            calls = CallStateRepository(session)
            lookups = await self._load(session, calls, batch)
            messages = []
            for inbound in batch:
                try:
                    decision = self._decide(inbound, calls, lookups)
                except Rejected as rejected:
                    rejections.append(Rejection(inbound.delivery, rejected.reason, rejected.detail))
                    continue
                calls.put(decision.state)
                envelope = inbound.delivery.event.envelope
                messages += outgoing(decision.state, decision.steps, envelope)
                decided.append((decision, occurred_at(envelope)))
            # Un-claim, so that a redelivery (e.g. after a failed DLQ publish) is rejected again.
            await release_claims(session, CONSUMER, [r.delivery.event.event_id for r in rejections])
            await enqueue_all(session, messages)
            await calls.flush()
        queued_at = datetime.now(UTC)
        for decision, at in decided:
            self._metrics.record(decision, at, queued_at)
        self._notify_outbox()
        return rejections

    async def _load(
        self, session: AsyncSession, calls: CallStateRepository, batch: Sequence[_Inbound]
    ) -> _Lookups:
        """Read everything the batch's decisions need, one query per kind."""
        flows = FlowRepository(session)
        states = await calls.load(
            i.message.call_id for i in batch if _valid_ids(i.message.call_id, i.tenant_id)
        )
        starts = [(i.tenant_id, started) for i in batch if (started := i.started) is not None]
        live = await flows.live_flows_for({s.dialed_number for _, s in starts if E164.match(s.dialed_number)})
        await self._cache_definitions(
            flows,
            {(s.flow_id, s.flow_version) for s in states if s.flow_id}
            | {(f.flow_id, f.version) for f in live.values()},
        )
        # Only a flow that rejects blocklisted callers reads the blocklist (see CallerRejection).
        screened = {
            (tenant_id, caller)
            for tenant_id, started in starts
            if (caller := _sms_reachable_caller(started))
            and self._rejects_blocklisted(live.get(started.dialed_number), tenant_id)
        }
        return _Lookups(live, await BlocklistRepository(session).blocked_among(screened))

    def _decide(self, inbound: _Inbound, calls: CallStateRepository, lookups: _Lookups) -> Decision:
        message, tenant_id = inbound.message, inbound.tenant_id
        call_id = message.call_id
        if not _valid_ids(call_id, tenant_id):
            raise Rejected("invalid_call_id", f"call_id and tenant must be 1 to {MAX_ID_LENGTH} characters")
        at = occurred_at(message.envelope) or datetime.now(UTC)
        state = calls.get(call_id)
        if state is not None and state.tenant_id != tenant_id:
            raise Rejected("cross_tenant", f"call {call_id} belongs to another tenant")
        started = inbound.started
        if started is not None:
            if state is not None:
                raise Rejected("call_already_started", f"call {call_id} started with another event")
            return self._start(call_id, started, tenant_id, at, lookups)
        if state is None:
            raise Rejected("unknown_call", f"no call {call_id} was started")
        domain_event = call_event(message, at)
        if domain_event is None:
            raise Rejected("unknown_schema", f"routing does not handle {message.WhichOneof('body')}")
        return decide(state, self._definition(state), domain_event)

    def _start(
        self,
        call_id: str,
        started: call_events_pb2.CallStarted,
        tenant_id: str,
        at: datetime,
        lookups: _Lookups,
    ) -> Decision:
        if not E164.match(started.dialed_number):
            raise Rejected("invalid_dialed_number", "dialed_number must be E.164")
        caller = _sms_reachable_caller(started)
        live = lookups.live_flows.get(started.dialed_number)
        if live is not None and live.tenant_id != tenant_id:
            raise Rejected("cross_tenant", "the dialed number belongs to another tenant")
        state = CallState(
            call_id,
            tenant_id,
            live.flow_id if live else "",
            live.version if live else 0,
            started.dialed_number,
            caller,
        )
        if live is None:
            return not_in_service(state, self._not_in_service_text)
        withheld = started.caller_withheld or not started.caller_number
        blocklisted = (tenant_id, caller) in lookups.blocked_callers
        return start_call(state, self._definition(state), at, Caller(withheld, blocklisted))

    async def _cache_definitions(self, flows: FlowRepository, versions: Set[tuple[str, int]]) -> None:
        missing = versions - self._definitions.keys()
        if len(self._definitions) + len(missing) > MAX_CACHED_DEFINITIONS:
            self._definitions.clear()
            missing = set(versions)
        if missing:
            self._definitions.update(await flows.definitions(missing))

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
            # The whole batch is redelivered until the version is repaired.
            raise RuntimeError(f"published version {(state.flow_id, state.flow_version)} is missing")
        return definition
