"""The sms.requests consumer overlaps the sends of one batch with the admission of the next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hibiki_runtime.consumer import Inbound
from hibiki_sms_gateway.domain.commands import SendSms
from hibiki_sms_gateway.service_layer.dispatch import Admission, PipelinedDispatch


class GatedDispatcher:
    """Admits at once; each batch's sends finish only when the test opens that batch's gate."""

    def __init__(self) -> None:
        self.admitted: list[int] = []
        self.sent: list[int] = []
        self.gates: dict[int, asyncio.Event] = {}

    async def admit(self, deliveries: Sequence[Inbound[SendSms]]) -> Admission:
        batch = len(self.admitted)
        self.admitted.append(batch)
        self.gates[batch] = asyncio.Event()
        return Admission([], [batch])  # type: ignore[list-item]  # the batch number stands for its messages

    async def send(self, admission: Admission) -> None:
        (batch,) = admission.admitted
        await self.gates[batch].wait()  # type: ignore[index]
        self.sent.append(batch)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_is_acknowledged_once_admitted_while_its_sends_go_on() -> None:
    dispatcher = GatedDispatcher()
    consumer = PipelinedDispatch(dispatcher, depth=2)  # type: ignore[arg-type]

    assert await asyncio.wait_for(consumer([]), 1) == []
    assert await asyncio.wait_for(consumer([]), 1) == []
    assert dispatcher.admitted == [0, 1] and dispatcher.sent == []

    third = asyncio.create_task(consumer([]))
    await settle()
    assert dispatcher.admitted == [0, 1], "a third batch was admitted while two were still sending"
    dispatcher.gates[0].set()
    await asyncio.wait_for(third, 1)
    assert dispatcher.admitted == [0, 1, 2] and dispatcher.sent == [0]


async def test_drain_waits_for_every_admitted_batch() -> None:
    dispatcher = GatedDispatcher()
    consumer = PipelinedDispatch(dispatcher, depth=2)  # type: ignore[arg-type]
    await consumer([])
    await consumer([])

    draining = asyncio.create_task(consumer.drain())
    await settle()
    assert not draining.done()
    dispatcher.gates[1].set()
    dispatcher.gates[0].set()
    await asyncio.wait_for(draining, 1)
    assert sorted(dispatcher.sent) == [0, 1]
