"""The consumer edge: translation, isolating failing records, infrastructure retries, dead-letter copies."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import sqlalchemy.exc
from hibiki.call.v1 import call_events_pb2
from hibiki_runtime.consumer import (
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_SIZE,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_TRUNCATED,
    ConsumerEdge,
    ConsumerProgress,
    DeadLetter,
    Inbound,
    Rejection,
    dead_letter_record,
    is_infrastructure_failure,
    process_batch,
)
from hibiki_runtime.events import CALL_EVENTS, DecodedEvent, InvalidEvent, new_envelope


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


def started(call_id: str) -> bytes:
    body = call_events_pb2.CallStarted(dialed_number="+81312345678", caller_number="+819012345678")
    message = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
    message.envelope.CopyFrom(new_envelope("tenant-a", body, event_id=f"{call_id}:started"))
    return message.SerializeToString()


def records(*values: bytes) -> list[FakeRecord]:
    return [FakeRecord(CALL_EVENTS, 0, offset, b"k", value) for offset, value in enumerate(values)]


def call_id_of(event: DecodedEvent) -> str:
    call_id: str = event.message.call_id  # type: ignore[attr-defined]
    if call_id == "refused":
        raise InvalidEvent("not_for_us", "refused by the translator")
    if call_id == "translator-bug":
        raise KeyError("bug")
    return call_id


EDGE = ConsumerEdge({CALL_EVENTS: call_id_of})


class Handler:
    """Fails (like a database refusing a value) whenever its batch holds a call id in `poison`."""

    def __init__(self, *poison: str, error: Exception | None = None) -> None:
        self.poison = set(poison)
        self.error = error or ValueError("value too long for type character varying(32)")
        self.calls: list[list[str]] = []
        self.handled: list[str] = []

    async def __call__(self, items: Sequence[Inbound[str]]) -> Sequence[Rejection]:
        batch = [item.command for item in items]
        self.calls.append(batch)
        if self.poison & set(batch):
            raise self.error
        self.handled += batch
        return [Rejection(item, "cross_tenant", "not yours") for item in items if item.command == "foreign"]


async def test_commands_reach_the_handler_with_their_envelope_facts() -> None:
    handler = Handler()
    outcome = await process_batch(records(started("c1")), EDGE, handler)
    assert outcome.dead == [] and handler.handled == ["c1"]
    seen: list[Inbound[str]] = []

    async def keep(items: Sequence[Inbound[str]]) -> Sequence[Rejection]:
        seen.extend(items)
        return []

    await process_batch(records(started("c1")), EDGE, keep)
    (item,) = seen
    assert (item.topic, item.key, item.event_id, item.tenant_id) == (
        CALL_EVENTS,
        "k",
        "c1:started",
        "tenant-a",
    )


async def test_one_bad_record_costs_one_record_and_the_rest_keep_their_order() -> None:
    handler = Handler("c5")
    batch = records(*(started(f"c{n}") for n in range(8)))

    outcome = await process_batch(batch, EDGE, handler)

    assert [(d.record.offset, d.reason) for d in outcome.dead] == [(5, "handler_error:ValueError")]
    assert "character varying" in outcome.dead[0].detail
    assert handler.handled == ["c0", "c1", "c2", "c3", "c4", "c6", "c7"]
    # Bisection: a handful of calls for 8 records, not one per record.
    assert len(handler.calls) <= 2 * 3 + 1


async def test_several_bad_records_are_each_isolated() -> None:
    handler = Handler("c0", "c7", "c3")
    outcome = await process_batch(records(*(started(f"c{n}") for n in range(8))), EDGE, handler)
    assert sorted(d.record.offset for d in outcome.dead) == [0, 3, 7]
    assert sorted(handler.handled) == ["c1", "c2", "c4", "c5", "c6"]


async def test_refused_records_and_translator_bugs_never_reach_the_handler() -> None:
    handler = Handler()
    batch = records(b"\xff garbage", started("refused"), started("translator-bug"), started("c1"))

    outcome = await process_batch(batch, EDGE, handler)

    assert [(d.record.offset, d.reason) for d in outcome.dead] == [
        (0, "malformed"),
        (1, "not_for_us"),
        (2, "handler_error:KeyError"),
    ]
    assert handler.handled == ["c1"]


async def test_rejections_come_back_as_dead_letters_of_their_records() -> None:
    outcome = await process_batch(records(started("c1"), started("foreign")), EDGE, Handler())
    assert [(d.record.offset, d.reason) for d in outcome.dead] == [(1, "cross_tenant")]


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.OperationalError("SELECT 1", {}, OSError("connection refused")),
        ConnectionRefusedError("broker down"),
        TimeoutError(),
    ],
)
async def test_infrastructure_failures_retry_the_whole_batch(error: Exception) -> None:
    handler = Handler("c1", error=error)
    with pytest.raises(type(error)):
        await process_batch(records(started("c0"), started("c1")), EDGE, handler)
    assert handler.calls == [["c0", "c1"]]  # not split: every record would fail the same way


class SqlState(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "infrastructure"),
    [
        ("22001", False),  # value too long
        ("22021", False),  # NUL character
        ("23505", False),  # unique violation
        ("54000", False),  # index row too large
        ("08006", True),  # connection failure
        ("40P01", True),  # deadlock
        ("42703", True),  # undefined column: a release ran before its migration
        ("57P01", True),  # admin shutdown
    ],
)
def test_database_errors_are_told_apart_by_their_sqlstate(sqlstate: str, infrastructure: bool) -> None:
    error = sqlalchemy.exc.DBAPIError("INSERT ...", {}, SqlState(sqlstate))
    assert is_infrastructure_failure(error) is infrastructure


def test_a_wrapped_cause_is_found() -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as cause:
            raise RuntimeError("could not store") from cause
    except RuntimeError as error:
        assert is_infrastructure_failure(error)
    assert not is_infrastructure_failure(RuntimeError("a bug"))


def dead(value: bytes, headers: Sequence[tuple[str, bytes]] = (), key: bytes = b"call-1") -> DeadLetter:
    return DeadLetter(FakeRecord(CALL_EVENTS, 2, 41, key, value, headers), "malformed", "x" * 5000)


def test_a_dead_letter_names_its_source_and_digest() -> None:
    copy = dead_letter_record(dead(b"abc", [("schema", b"hibiki.call.v1.CallStarted")]), "group", 1_000_000)
    assert copy.topic == "call.events.dlq" and copy.key == b"call-1" and copy.value == b"abc"
    assert copy.headers[DLQ_REASON] == "malformed" and copy.headers[DLQ_SOURCE_OFFSET] == "41"
    assert copy.headers["schema"] == "hibiki.call.v1.CallStarted"
    assert copy.headers[DLQ_ORIGINAL_SHA256] == hashlib.sha256(b"abc").hexdigest()
    assert len(copy.headers["dlq-detail"]) == 1000
    assert DLQ_TRUNCATED not in copy.headers


def test_a_copy_over_the_broker_limit_is_truncated_but_says_what_it_was() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    headers = [(f"h{n}", b"v" * 900) for n in range(40)]
    copy = dead_letter_record(dead(value, headers, key=b"k" * 100_000), "group", 1_000_000)

    size = len(copy.value) + len(copy.key or b"") + sum(len(k) + len(v) for k, v in copy.headers.items())
    assert size < 1_000_000
    assert copy.headers[DLQ_TRUNCATED] == "true"
    assert copy.headers[DLQ_ORIGINAL_SIZE] == str(len(value))
    assert copy.headers[DLQ_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest()
    assert value.startswith(copy.value) and len(copy.value) > 900_000


def test_a_replayed_records_old_dead_letter_headers_are_replaced() -> None:
    copy = dead_letter_record(dead(b"x", [(DLQ_REASON, b"cross_tenant")]), "group", 1_000_000)
    assert copy.headers[DLQ_REASON] == "malformed"


def test_a_partition_is_stalled_once_its_records_wait_past_the_limit() -> None:
    now = [100.0]
    progress = ConsumerProgress(clock=lambda: now[0])
    progress.received([("call.events", 0), ("call.events", 1)])
    now[0] = 150.0
    progress.committed([("call.events", 1)])
    progress.received([("call.events", 1)])
    assert progress.stalled(60) == {}
    now[0] = 161.0
    assert progress.stalled(60) == {("call.events", 0): 61.0}
    progress.committed([("call.events", 0)])
    assert progress.stalled(60) == {}


def test_lag_without_commits_also_stalls_a_partition() -> None:
    now = [0.0]
    progress = ConsumerProgress(clock=lambda: now[0])
    progress.saw_lag({("sms.requests", 0): 5, ("sms.requests", 1): 0})
    now[0] = 30.0
    progress.saw_lag({("sms.requests", 0): 9, ("sms.requests", 1): 0})
    now[0] = 61.0
    assert progress.stalled(60) == {("sms.requests", 0): 61.0}
    progress.saw_lag({})  # rebalanced away
    assert progress.stalled(60) == {}
