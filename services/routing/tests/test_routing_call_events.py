"""The call.events handler over a real (SQLite) database: state, outbox, idempotency, versions, rejections."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import HangupNode, Node
from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.service_layer.call_housekeeping import keep_house
from hibiki_routing.service_layer.flows import FlowService
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing.tests.routing_db import bodies, call_event, deliveries, queued
from services.routing.tests.routing_flows import CALLER, DIALED, sample_flow

TENANT = "tenant-a"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> RoutingMetrics:
    return RoutingMetrics(registry)


@pytest.fixture
def handler(sessions: async_sessionmaker[AsyncSession], metrics: RoutingMetrics) -> CallEventsHandler:
    return CallEventsHandler(sessions, lambda: None, metrics)


async def published_flow(sessions: async_sessionmaker[AsyncSession]) -> tuple[FlowService, Flow]:
    service = FlowService(sessions)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    return service, await service.publish(TENANT, flow.id, flow.revision, "test")


def started(call_id: str, tenant: str = TENANT, dialed: str = DIALED) -> call_events_pb2.CallEvent:
    body = call_events_pb2.CallStarted(dialed_number=dialed, caller_number=CALLER)
    return call_event(tenant, call_id, f"{call_id}:started", call_started=body)


def digits(call_id: str, step: int, keys: str, event_id: str = "") -> call_events_pb2.CallEvent:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:{step}", digits=keys)
    return call_event(TENANT, call_id, event_id or f"{call_id}:digits:{step}", digits_collected=body)


async def test_sms_target_emits_exactly_one_sms_request_under_redelivery(
    sessions: async_sessionmaker[AsyncSession], handler: CallEventsHandler, registry: CollectorRegistry
) -> None:
    await published_flow(sessions)
    pressed = digits("c1", 1, "1")

    await handler(deliveries(started("c1"), pressed, pressed))
    await handler(deliveries(started("c1"), pressed))  # the whole batch again, as after a crash

    actions, requests = await queued(sessions)
    assert bodies(actions) == ["play_and_collect", "hangup"]
    assert [a.action_id for a in actions] == ["c1:1", "c1:3"]
    (request,) = requests
    assert request.request_id == "c1:2" and request.envelope.event_id == "c1:2"
    assert request.sms_requested.recipient == CALLER
    assert request.sms_requested.box_number == "100"
    assert request.sms_requested.dialed_number == DIALED
    assert request.sms_requested.route_id == "sms"
    assert registry.get_sample_value("hibiki_routing_sms_requests_total") == 1


async def test_actions_carry_route_reason_attempts_flow_and_version(
    sessions: async_sessionmaker[AsyncSession], handler: CallEventsHandler, registry: CollectorRegistry
) -> None:
    _, flow = await published_flow(sessions)

    await handler(deliveries(started("c2"), digits("c2", 1, "7")))

    actions, _ = await queued(sessions)
    reprompt = actions[1]
    assert (reprompt.flow_id, reprompt.flow_version, reprompt.step) == (flow.id, 1, 2)
    collect = reprompt.play_and_collect
    assert (collect.route_id, collect.route_name) == ("menu", "メインメニュー")
    assert collect.reason == call_actions_pb2.PROMPT_REASON_INVALID_INPUT
    assert (collect.invalid_attempts, collect.timeout_attempts) == (1, 0)
    assert [(p.guidance_id, p.text) for p in collect.prompts] == [
        ("system:invalid_input", "入力が間違っています。案内をお聞きいただきもう一度入力してください。"),
        ("g-menu", ""),
    ]
    assert reprompt.envelope.causation_id == "c2:digits:1"
    labels = {"kind": "invalid", "outcome": "reprompt"}
    assert registry.get_sample_value("hibiki_routing_input_errors_total", labels) == 1


async def test_publishing_a_new_version_mid_call_does_not_change_that_call(
    sessions: async_sessionmaker[AsyncSession], handler: CallEventsHandler
) -> None:
    service, flow = await published_flow(sessions)
    await handler(deliveries(started("old")))
    # Version 2: key 1 now hangs up instead of sending an SMS.
    definition = flow.definition
    nodes = (*(n for n in definition.nodes if n.id != "sms"), Node("sms", HangupNode("g-changed")))
    changed = replace(flow, definition=replace(definition, nodes=nodes))
    updated = await service.update(TENANT, changed, ["nodes"], flow.revision)
    await service.publish(TENANT, flow.id, updated.revision, "test")

    await handler(deliveries(digits("old", 1, "1"), started("new"), digits("new", 1, "1")))

    actions, requests = await queued(sessions)
    old = [a for a in actions if a.call_id == "old"]
    new = [a for a in actions if a.call_id == "new"]
    assert [a.flow_version for a in old] == [1, 1]
    assert [r.sms_requested.call_id for r in requests] == ["old"]
    assert [a.flow_version for a in new] == [2, 2]
    assert [p.guidance_id for p in new[-1].hangup.prompts] == ["g-changed"]


async def test_unknown_number_is_not_in_service_and_its_call_end_is_accepted(
    sessions: async_sessionmaker[AsyncSession], handler: CallEventsHandler, registry: CollectorRegistry
) -> None:
    ended = call_event(TENANT, "c3", "c3:ended", call_ended=call_events_pb2.CallEnded())

    rejections = await handler(deliveries(started("c3", dialed="+81399990000"), ended))

    assert rejections == []
    actions, _ = await queued(sessions)
    assert [(a.action_id, a.hangup.reason) for a in actions] == [("c3:1", "not_in_service")]
    assert registry.get_sample_value("hibiki_routing_decisions_total", {"outcome": "not_in_service"}) == 1


async def test_rejections_name_their_reason_and_are_rejected_again_on_redelivery(
    sessions: async_sessionmaker[AsyncSession], handler: CallEventsHandler
) -> None:
    await published_flow(sessions)
    batch = deliveries(digits("never-started", 1, "1"), started("c4", tenant="tenant-b"))

    first = await handler(batch)
    again = await handler(batch)

    expected = [("unknown_call", 0), ("cross_tenant", 1)]
    assert [(r.reason, r.item.position) for r in first] == expected
    assert [(r.reason, r.item.position) for r in again] == expected
    assert await queued(sessions) == ([], [])


async def test_housekeeping_counts_live_calls_and_forgets_idle_ones(
    sessions: async_sessionmaker[AsyncSession],
    handler: CallEventsHandler,
    metrics: RoutingMetrics,
    registry: CollectorRegistry,
) -> None:
    await published_flow(sessions)
    ended = call_event(TENANT, "h1", "h1:ended", call_ended=call_events_pb2.CallEnded())
    await handler(deliveries(started("h1"), started("h2"), ended))
    windows = {"active_window": timedelta(hours=1), "retention": timedelta(days=7)}

    assert await keep_house(sessions, metrics, datetime.now(UTC), **windows) == 0
    assert registry.get_sample_value("hibiki_routing_calls_in_progress") == 1
    assert await keep_house(sessions, metrics, datetime.now(UTC) + timedelta(days=8), **windows) == 2
    assert registry.get_sample_value("hibiki_routing_calls_in_progress") == 0
    assert await handler(deliveries(digits("h2", 1, "1"))) != []  # forgotten: now an unknown call
