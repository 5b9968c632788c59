"""Consumes call.events: each batch claims, decides, saves call state, queues outputs in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from hibiki.call.v1 import call_events_pb2
from hibiki_runtime.kafka import Delivery, Rejection, event_log_context
from hibiki_runtime.outbox import claim_event, enqueue_all, processed_events
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.adapters.blocklist_repository import BlocklistRepository
from hibiki_routing.adapters.call_messages import call_event, occurred_at, outgoing
from hibiki_routing.adapters.call_state_repository import CallStateRepository
from hibiki_routing.adapters.flow_repository import FlowRepository
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.calls import Caller, CallState, Decision
from hibiki_routing.domain.engine import decide, not_in_service, start_call
from hibiki_routing.domain.flows import FlowDefinition
from hibiki_routing.domain.validation import E164

CONSUMER = "routing.call-events"
MAX_ID_LENGTH = 100
MAX_CACHED_DEFINITIONS = 1000
log = logging.getLogger("hibiki.routing.calls")

# Calls to numbers without a flow have no definition; they are ended, so the engine never reads it.
_NO_FLOW = FlowDefinition(entry_node_id="")


class Rejected(Exception):
    """An event routing will never process; it goes to call.events.dlq with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
            calls, flows = CallStateRepository(session), FlowRepository(session)
            blocklist = BlocklistRepository(session)
            for delivery in deliveries:
                event = delivery.event
                if not await claim_event(session, CONSUMER, event.event_id):
                    continue
                message = event.message
                assert isinstance(message, call_events_pb2.CallEvent)
                try:
                    with event_log_context(delivery):
                        decision = await self._decide(message, event.tenant_id, calls, flows, blocklist)
                except Rejected as rejected:
                    # Un-claim, so that a redelivery (e.g. after a failed DLQ publish) is rejected again.
                    await session.execute(
                        delete(processed_events).where(
                            processed_events.c.consumer == CONSUMER,
                            processed_events.c.event_id == event.event_id,
                        )
                    )
                    rejections.append(Rejection(delivery, rejected.reason, rejected.detail))
                    continue
                calls.put(decision.state)
                await enqueue_all(session, outgoing(decision.state, decision.steps, event.envelope))
                decided.append((decision, occurred_at(event.envelope)))
            await calls.flush()
        queued_at = datetime.now(UTC)
        for decision, at in decided:
            self._metrics.record(decision, at, queued_at)
        self._notify_outbox()
        return rejections

    async def _decide(
        self,
        message: call_events_pb2.CallEvent,
        tenant_id: str,
        calls: CallStateRepository,
        flows: FlowRepository,
        blocklist: BlocklistRepository,
    ) -> Decision:
        call_id = message.call_id
        if not call_id or len(call_id) > MAX_ID_LENGTH or len(tenant_id) > MAX_ID_LENGTH:
            raise Rejected("invalid_call_id", f"call_id and tenant must be 1 to {MAX_ID_LENGTH} characters")
        at = occurred_at(message.envelope) or datetime.now(UTC)
        state = await calls.get(call_id)
        if state is not None and state.tenant_id != tenant_id:
            raise Rejected("cross_tenant", f"call {call_id} belongs to another tenant")
        if message.WhichOneof("body") == "call_started":
            if state is not None:
                raise Rejected("call_already_started", f"call {call_id} started with another event")
            return await self._start(message, tenant_id, at, flows, blocklist)
        if state is None:
            raise Rejected("unknown_call", f"no call {call_id} was started")
        domain_event = call_event(message, at)
        if domain_event is None:
            raise Rejected("unknown_schema", f"routing does not handle {message.WhichOneof('body')}")
        return decide(state, await self._definition(flows, state), domain_event)

    async def _start(
        self,
        message: call_events_pb2.CallEvent,
        tenant_id: str,
        at: datetime,
        flows: FlowRepository,
        blocklist: BlocklistRepository,
    ) -> Decision:
        started = message.call_started
        if not E164.match(started.dialed_number):
            raise Rejected("invalid_dialed_number", "dialed_number must be E.164")
        # A caller number that is withheld or not E.164 cannot receive an SMS; the call still gets its menu.
        caller = (
            started.caller_number if E164.match(started.caller_number) and not started.caller_withheld else ""
        )
        live = await flows.live_flow_for(started.dialed_number)
        if live is not None and live.tenant_id != tenant_id:
            raise Rejected("cross_tenant", "the dialed number belongs to another tenant")
        state = CallState(
            message.call_id,
            tenant_id,
            live.flow_id if live else "",
            live.version if live else 0,
            started.dialed_number,
            caller,
        )
        if live is None:
            return not_in_service(state, self._not_in_service_text)
        withheld = started.caller_withheld or not started.caller_number
        blocklisted = bool(caller) and await blocklist.contains(tenant_id, caller)
        return start_call(state, await self._definition(flows, state), at, Caller(withheld, blocklisted))

    async def _definition(self, flows: FlowRepository, state: CallState) -> FlowDefinition:
        if not state.flow_id:
            return _NO_FLOW
        key = (state.flow_id, state.flow_version)
        if key not in self._definitions:
            if len(self._definitions) >= MAX_CACHED_DEFINITIONS:
                self._definitions.clear()
            definition = await flows.definition(*key)
            if definition is None:
                raise RuntimeError(f"published version {key} is missing")  # redelivered until repaired
            self._definitions[key] = definition
        return self._definitions[key]
