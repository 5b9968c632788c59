"""The consumer edge: records become typed commands, and one bad record costs one record.

A service gives one translator per topic (its `entrypoints/<topic>_consumer.py`): a function from a
decoded, contract-checked record to the service's own command. The runtime runs it before any handler;
a record it refuses (`InvalidEvent`), or one it fails on, becomes a dead letter with a reason. Handlers
receive `Inbound` items — envelope facts and the command, no protobuf, no Kafka record — and return the
items they reject. When a handler raises for anything but an unreachable broker or database, the batch is
split in halves until the records it fails on are alone; each goes to the DLQ as `handler_error:<Type>`
and the rest are handled. Only infrastructure failures make the runtime retry the whole batch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy import exc as sa_exc

from hibiki_runtime.events import DecodedEvent, InvalidEvent, decode_event, dlq_topic
from hibiki_runtime.logging import log_context, trace_id_of
from hibiki_runtime.outbox import OutboundRecord

log = logging.getLogger("hibiki.consumer")

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


@dataclass(frozen=True)
class Inbound(Generic[C_co]):
    """One accepted record as a service layer sees it: who sent it, when, and what it asks for."""

    topic: str
    position: int  # index within the consumed batch (how a rejection finds its record again)
    key: str
    event_id: str
    tenant_id: str
    occurred_at: datetime
    traceparent: str
    payload: bytes  # the record value as received, for services that keep it
    command: C_co


@dataclass(frozen=True)
class Rejection:
    """An item a handler refuses for good (e.g. cross-tenant); its record goes to the DLQ with the reason."""

    item: Inbound[Any]
    reason: str
    detail: str


Translator = Callable[[DecodedEvent], C]
BatchHandler = Callable[[Sequence[Inbound[C]]], Awaitable[Sequence[Rejection]]]


class Record(Protocol):
    """What the edge reads of a consumed Kafka record (aiokafka's ConsumerRecord has these)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    reason: str
    detail: str


def event_log_context(item: Inbound[Any]) -> AbstractContextManager[None]:
    """Log fields of one consumed event (its key is the call or request id); use around its handling."""
    return log_context(
        event_id=item.event_id,
        tenant_id=item.tenant_id,
        trace_id=trace_id_of(item.traceparent),
        key=item.key,
    )


class ConsumerEdge(Generic[C]):
    """Turns records of the topics it has translators for into Inbound commands, or dead letters."""

    def __init__(self, translators: Mapping[str, Translator[C]]) -> None:
        self.translators = dict(translators)

    @property
    def topics(self) -> list[str]:
        return list(self.translators)

    def accept(self, position: int, record: Record) -> Inbound[C] | DeadLetter:
        """The record's command, or why it can never be handled. Never raises."""
        try:
            event = decode_event(record.topic, record.value)
            command = self.translators[record.topic](event)
        except InvalidEvent as invalid:
            return DeadLetter(record, invalid.reason, invalid.detail)
        except Exception as error:  # a translator bug must cost this record only
            log.exception(
                "record %s[%d]@%d could not be translated", record.topic, record.partition, record.offset
            )
            return DeadLetter(record, handler_error(error), str(error))
        envelope = event.envelope
        return Inbound(
            topic=record.topic,
            position=position,
            key=(record.key or b"").decode("utf-8", "replace"),
            event_id=envelope.event_id,
            tenant_id=envelope.tenant_id,
            occurred_at=envelope.occurred_at.ToDatetime(tzinfo=UTC),
            traceparent=envelope.traceparent,
            payload=record.value or b"",
            command=command,
        )

    def inbound(self, topic: str, message: Message, *, key: str = "", position: int = 0) -> Inbound[C]:
        """The Inbound item of one message as a consumer would get it (tests, tools); raises when refused."""
        accepted = self.accept(position, _Local(topic, key.encode(), message.SerializeToString()))
        if isinstance(accepted, DeadLetter):
            raise InvalidEvent(accepted.reason, accepted.detail)
        return accepted


@dataclass(frozen=True)
class _Local:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    headers: Sequence[tuple[str, bytes]] = ()


def handler_error(error: BaseException) -> str:
    """The DLQ reason of a record its handler failed on."""
    return f"handler_error:{type(error).__name__}"


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error here
        pending += [current.__cause__, current.__context__, orig if isinstance(orig, BaseException) else None]


# SQLSTATE classes that are about the values of a record: data exceptions such as a string too long or a NUL
# character (22), integrity constraints (23), program limits such as an index row too large (54). Every
# other class is about the database or the deployment — connection (08), serialization failures and
# deadlocks (40), a missing table or column after a release without its migration (42), resources (53),
# shutdown (57) — and would fail every record alike.
_DATA_SQLSTATES = {"22", "23", "54"}
_UNREACHABLE = (sa_exc.TimeoutError, sa_exc.DisconnectionError, OSError, TimeoutError)


def _connection_error_of(error: BaseException, *modules: str) -> bool:
    """A driver's own error type about its connection (every aiokafka error is about the broker)."""
    kind = type(error)
    if kind.__module__.startswith("aiokafka.errors"):
        return True
    return kind.__module__.startswith(modules) and "Connection" in kind.__name__


def is_infrastructure_failure(error: BaseException) -> bool:
    """True when `error` says the broker or the database cannot be used right now: retry the whole batch.

    Anything else (a value PostgreSQL refuses, a bug reached by one record) is about the records, and the
    batch is split to find them.
    """
    for cause in _causes(error):
        if isinstance(cause, sa_exc.DBAPIError):
            if cause.connection_invalidated:
                return True
            state = getattr(cause.orig, "sqlstate", None) or getattr(cause.orig, "pgcode", None)
            if isinstance(state, str) and state:
                return state[:2] not in _DATA_SQLSTATES
            # No SQLSTATE (SQLite): refused values are integrity or data errors; the rest (a locked or
            # missing database, a missing table) is not about the record.
            return not isinstance(cause, sa_exc.IntegrityError | sa_exc.DataError)
        if isinstance(cause, _UNREACHABLE) or _connection_error_of(cause, "aiokafka.errors", "asyncpg"):
            return True
    return False


@dataclass
class BatchOutcome:
    """What became of a consumed batch: its dead letters (invalid, rejected, failed) and handler calls."""

    dead: list[DeadLetter] = field(default_factory=list)
    handled: int = 0
    handler_calls: int = 0


async def process_batch(
    records: Sequence[Record], edge: ConsumerEdge[C], handler: BatchHandler[C]
) -> BatchOutcome:
    """Translate a batch, hand it to `handler`, and isolate the records it fails on.

    Raises only for infrastructure failures (the caller retries the whole batch).
    """
    outcome = BatchOutcome()
    items: list[Inbound[C]] = []
    for position, record in enumerate(records):
        accepted = edge.accept(position, record)
        if isinstance(accepted, DeadLetter):
            outcome.dead.append(accepted)
        else:
            items.append(accepted)
    if items:
        await _handle_isolating(items, handler, records, outcome)
    return outcome


async def _handle_isolating(
    items: Sequence[Inbound[C]],
    handler: BatchHandler[C],
    records: Sequence[Record],
    outcome: BatchOutcome,
) -> None:
    outcome.handler_calls += 1
    try:
        rejections = await handler(items)
    except Exception as error:
        if is_infrastructure_failure(error):
            raise
        if len(items) == 1:
            item = items[0]
            with event_log_context(item):
                log.error(
                    "record %s[%d]@%d failed in its handler; sent to the DLQ",
                    item.topic,
                    records[item.position].partition,
                    records[item.position].offset,
                    exc_info=error,
                )
            outcome.dead.append(DeadLetter(records[item.position], handler_error(error), str(error)))
            return
        # Halves in order, so that the events of one key keep their order around the failing record.
        middle = len(items) // 2
        await _handle_isolating(items[:middle], handler, records, outcome)
        await _handle_isolating(items[middle:], handler, records, outcome)
        return
    outcome.handled += len(items)
    outcome.dead += [DeadLetter(records[r.item.position], r.reason, r.detail) for r in rejections]


# Headers of a dead letter that never come from the original record.
DLQ_REASON = "dlq-reason"
DLQ_DETAIL = "dlq-detail"
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_CONSUMER_GROUP = "dlq-consumer-group"
DLQ_ORIGINAL_SIZE = "dlq-original-size"
DLQ_ORIGINAL_SHA256 = "dlq-original-sha256"
DLQ_TRUNCATED = "dlq-truncated"
DLQ_REPLAYED_FROM = "dlq-replayed-from"
_MAX_HEADER_VALUE = 1000
_MAX_ORIGINAL_HEADERS = 8 * 1024
_MAX_KEY = 1024


def dead_letter_record(dead: DeadLetter, group: str, max_bytes: int) -> OutboundRecord:
    """The DLQ copy of a record: the original key, value and headers plus why, from where, and its digest.

    A copy that would exceed `max_bytes` (the broker's record limit) carries only the start of the value
    (and of the key and original headers) with `dlq-truncated: true`; size and SHA-256 name the original.
    """
    record = dead.record
    value = record.value or b""
    key = record.key
    original: dict[str, str] = {}
    budget = _MAX_ORIGINAL_HEADERS
    for name, raw in record.headers or ():
        if name.startswith("dlq-"):
            continue  # a replayed record's earlier dead-letter headers are replaced, not kept twice
        text = raw.decode("utf-8", "replace")[:_MAX_HEADER_VALUE]
        name = name[:200]
        budget -= len(name) + len(text)
        if budget < 0:
            break
        original[name] = text
    headers = {
        **original,
        DLQ_REASON: dead.reason[:200],
        DLQ_DETAIL: dead.detail[:_MAX_HEADER_VALUE],
        DLQ_SOURCE_TOPIC: record.topic,
        DLQ_SOURCE_PARTITION: str(record.partition),
        DLQ_SOURCE_OFFSET: str(record.offset),
        DLQ_CONSUMER_GROUP: group,
        DLQ_ORIGINAL_SIZE: str(len(value)),
        DLQ_ORIGINAL_SHA256: hashlib.sha256(value).hexdigest(),
    }
    header_bytes = sum(len(k.encode()) + len(v.encode()) + 8 for k, v in headers.items())
    # Record framing (offsets, lengths, timestamps) stays well under this margin.
    room = max_bytes - header_bytes - len(key or b"") - 512
    if room < len(value):
        headers[DLQ_TRUNCATED] = "true"
        if key is not None and len(key) > _MAX_KEY:
            key = key[:_MAX_KEY]
        room = max(0, max_bytes - header_bytes - len(key or b"") - 600)
        value = value[:room]
    return OutboundRecord(dlq_topic(record.topic), key, value, headers)


Partition = tuple[str, int]


class ConsumerProgress:
    """Per partition: since when records wait uncommitted, so that a consumer that stopped moving shows.

    A partition is stalled when records fetched from it have not been committed for `stall_after`
    seconds (the handler keeps failing, or hangs), or when it has had lag without a commit that long
    (records that never reach the handler).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting_since: dict[Partition, float] = {}
        self._behind_since: dict[Partition, float] = {}

    def received(self, partitions: Iterable[Partition]) -> None:
        now = self._clock()
        for partition in partitions:
            self._waiting_since.setdefault(partition, now)

    def committed(self, partitions: Iterable[Partition]) -> None:
        for partition in partitions:
            self._waiting_since.pop(partition, None)
            self._behind_since.pop(partition, None)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions handed to another member: their waiting is not this process's any more."""
        for partition in partitions:
            self._waiting_since.pop(partition, None)
            self._behind_since.pop(partition, None)

    def saw_lag(self, lags: Mapping[Partition, int]) -> None:
        """Lag per assigned partition; partitions no longer assigned here are forgotten."""
        now = self._clock()
        for partition, lag in lags.items():
            if lag > 0:
                self._behind_since.setdefault(partition, now)
            else:
                self._behind_since.pop(partition, None)
        for gone in set(self._behind_since) - lags.keys():
            del self._behind_since[gone]

    def stalled(self, stall_after: float) -> dict[Partition, float]:
        """Stalled partitions and for how many seconds they have not moved."""
        now = self._clock()
        since: dict[Partition, float] = {}
        for waits in (self._waiting_since, self._behind_since):
            for partition, start in waits.items():
                since[partition] = min(since.get(partition, start), start)
        return {p: now - start for p, start in since.items() if now - start >= stall_after}
