"""Kafka adapter: CallEvents out to `call.events` (keyed by call id), CallActions in from `call.actions`.

Actions are read by one consumer without a group, assigned to every partition (no group join: the local
broker holds each join ~5 s, and a simulator has no offsets worth committing). By default it starts at the end
offsets resolved *before the first call starts*, so no action of ours can precede them. On the local broker
`ListOffsets(latest)` under-reports (about the base offset of the last batch): that only makes us re-read a
few old records, which are dropped because their call ids are not ours. `from_beginning=True` reads the
whole topic instead (same filtering). The topic names can be changed (e.g. private topics for a test that
plays routing's role itself); the records keep the `call.events` / `call.actions` contracts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, InvalidEvent, decode_event, record_headers

log = logging.getLogger("hibiki_telephony_sim.kafka")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the call.actions reader stopped: %r; callers will give up", task.exception())


class KafkaTransport:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        from_beginning: bool = False,
        client_id: str = "hibiki-telephony-sim",
        metadata_timeout: float = 15.0,
        events_topic: str = CALL_EVENTS,
        actions_topic: str = CALL_ACTIONS,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self.events_topic = events_topic
        self.actions_topic = actions_topic
        self._from_beginning = from_beginning
        self._metadata_timeout = metadata_timeout
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, linger_ms=5, acks="all"
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
        )
        self._task: asyncio.Task[None] | None = None
        self.invalid_actions = 0

    async def start(
        self, wants: Callable[[str], bool], deliver: Callable[[call_actions_pb2.CallAction], None]
    ) -> None:
        """Connect, position the action reader, and start handing our calls' actions to `deliver`."""
        await self._producer.start()
        await self._consumer.start()
        topic = self.actions_topic
        partitions = self._consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + self._metadata_timeout
        while not partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} not found on {self._bootstrap}")
            await asyncio.sleep(0.2)
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        if self._from_beginning:
            await self._consumer.seek_to_beginning(*assigned)
        else:
            await self._consumer.seek_to_end(*assigned)
        for partition in assigned:  # resolve the offsets now, before any call can cause an action
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._consume(wants, deliver), name="call-actions-reader")
        self._task.add_done_callback(_log_failure)

    async def _consume(
        self, wants: Callable[[str], bool], deliver: Callable[[call_actions_pb2.CallAction], None]
    ) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    key = record.key.decode(errors="replace") if record.key else ""
                    if not wants(key):
                        continue
                    try:
                        event = decode_event(CALL_ACTIONS, record.value)
                    except InvalidEvent as error:
                        self.invalid_actions += 1
                        log.warning("ignoring an invalid call action: %s", error)
                        continue
                    assert isinstance(event.message, call_actions_pb2.CallAction)
                    deliver(event.message)

    async def send(self, call_id: str, message: call_events_pb2.CallEvent) -> None:
        delivery = await self._producer.send(
            self.events_topic,
            message.SerializeToString(),
            key=call_id.encode(),
            headers=record_headers(message),
        )
        await delivery

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._producer.stop()
        await self._consumer.stop()
