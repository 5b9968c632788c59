"""Consumes call.events: one transaction per batch claims each event, decides, and queues the actions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_runtime.events import CALL_ACTIONS, new_envelope
from hibiki_runtime.kafka import Delivery, Rejection
from hibiki_runtime.outbox import claim_event, enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.domain.calls import Action, HangUp, answer_unknown_number

CONSUMER = "routing.call-events"


def to_call_action(
    tenant_id: str, call_id: str, step: int, action: Action, cause: str
) -> call_actions_pb2.CallAction:
    """The call.actions message for a decided action; its ids derive from call id and step."""
    action_id = f"{call_id}:{step}"
    message = call_actions_pb2.CallAction(call_id=call_id, action_id=action_id, step=step)
    if isinstance(action, HangUp):
        message.hangup.reason = action.reason
        message.hangup.prompts.extend(
            call_actions_pb2.Prompt(text=p.text, guidance_id=p.guidance_id) for p in action.prompts
        )
        body = message.hangup
    message.envelope.CopyFrom(new_envelope(tenant_id, body, event_id=action_id, causation_id=cause))
    return message


class CallEventsHandler:
    """Batch handler for call.events (see hibiki_runtime.kafka.register_batch_consumer)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notify_outbox: Callable[[], None],
        not_in_service_text: str,
    ) -> None:
        self._sessions = sessions
        self._notify_outbox = notify_outbox
        self._not_in_service_text = not_in_service_text

    async def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[Rejection]:
        async with self._sessions() as session, session.begin():
            for delivery in deliveries:
                event = delivery.event
                if not await claim_event(session, CONSUMER, event.event_id):
                    continue
                message = event.message
                assert isinstance(message, call_events_pb2.CallEvent)
                if message.WhichOneof("body") == "call_started":
                    actions = answer_unknown_number(self._not_in_service_text)
                    await enqueue_all(
                        session,
                        [
                            (
                                CALL_ACTIONS,
                                message.call_id,
                                to_call_action(
                                    event.tenant_id, message.call_id, step, action, event.event_id
                                ),
                            )
                            for step, action in enumerate(actions, start=1)
                        ],
                    )
        self._notify_outbox()
        return ()
