"""`hibiki dlq`: dead letters of the four topics — list them, show one decoded, replay them to their topic.

Reads the broker directly (aiokafka, `assign()` and no consumer group: nothing is ever committed, no
service's offsets move). Each read starts at the beginning of the partitions it needs and ends when a poll
stays empty for `--idle-ms`: the local broker's end offsets cannot be trusted, so they are not used.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from hibiki_runtime.consumer import (
    DLQ_CONSUMER_GROUP,
    DLQ_DETAIL,
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_SIZE,
    DLQ_REASON,
    DLQ_REPLAYED_FROM,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_TRUNCATED,
)
from hibiki_runtime.events import DLQ_SUFFIX, TOPIC_MESSAGES, InvalidEvent, decode_event, dlq_topic
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hibiki_cli.connection import settings_of
from hibiki_cli.errors import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNREACHABLE, stderr
from hibiki_cli.output import TOKYO, print_document, progress_console, stdout
from hibiki_cli.output import Format as OutputFormat

T = TypeVar("T")
EXIT_USAGE = 2
CLIENT_ID = "hibiki-cli-dlq"
DLQ_HEADER_PREFIX = "dlq-"
DETAIL_WIDTH = 60

app = typer.Typer(
    help="Dead letters (DLQ) of call.events, call.actions, sms.requests and sms.results: records a service "
    "could not handle, kept in <topic>.dlq with why (dlq-reason) and where from. List them, show one "
    "decoded, replay them to their topic once the cause is fixed (consumers deduplicate on the event id, "
    "so replaying twice is safe). Reads the Kafka broker directly; never commits offsets.\n\n"
    "Exit codes: 0 done; 2 wrong usage (unknown topic, no selector, several records without --yes); "
    "3 some dead letters were refused (truncated); 4 nothing matched; 6 broker unreachable or too slow.",
    no_args_is_help=True,
)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    TSV = "tsv"


TopicArgument = Annotated[
    str,
    typer.Argument(
        help="call.events, call.actions, sms.requests or sms.results; the .dlq name is accepted too.",
        show_default=False,
    ),
]
IdleOption = Annotated[
    int,
    typer.Option(
        "--idle-ms",
        min=50,
        help="Stop reading when the broker has sent nothing for this long (end offsets are not trusted).",
    ),
]
FormatOption = Annotated[
    Format,
    typer.Option("--output", "-o", help="table for people; json, yaml or tsv for scripts (all headers)."),
]


@dataclass(frozen=True)
class Broker:
    """Where the dead letters are, and how long one broker request may take."""

    bootstrap_servers: str
    timeout_seconds: float

    @property
    def request_timeout_ms(self) -> int:
        return max(1000, int(self.timeout_seconds * 1000))


@app.callback()
def configure(
    ctx: typer.Context,
    bootstrap_servers: Annotated[
        str,
        typer.Option(
            envvar="HIBIKI_KAFKA_BOOTSTRAP_SERVERS", help="host:port[,host:port…] of the Kafka broker."
        ),
    ] = "127.0.0.1:9092",
) -> None:
    # aiokafka logs connection failures itself; the command reports them once, with a hint.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    ctx.obj = Broker(bootstrap_servers, settings_of(ctx).timeout_seconds)


def _broker(ctx: typer.Context) -> Broker:
    broker = ctx.find_object(Broker)
    assert isinstance(broker, Broker), "the dlq callback stores the broker"
    return broker


# ---------------------------------------------------------------------------------------------------------
# Dead letters as read from the broker, and what the commands make of them (no I/O: unit-tested).


def topics_of(name: str) -> tuple[str, str]:
    """(source topic, dead-letter topic) of `call.events` or `call.events.dlq`; anything else is wrong."""
    source = name.removesuffix(DLQ_SUFFIX)
    if source not in TOPIC_MESSAGES:
        known = ", ".join(TOPIC_MESSAGES)
        raise typer.BadParameter(f"unknown topic {name!r}; one of {known} (or its .dlq)", param_hint="TOPIC")
    return source, dlq_topic(source)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class DeadLetter:
    """One record of a `<topic>.dlq` topic: the original key and value, headers decoded as UTF-8."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, record: Any) -> DeadLetter:
        """From an aiokafka ConsumerRecord."""
        headers = {name: (raw or b"").decode("utf-8", "replace") for name, raw in record.headers or ()}
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            headers,
        )

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get(DLQ_REASON, "")

    @property
    def detail(self) -> str:
        return self.headers.get(DLQ_DETAIL, "")

    @property
    def truncated(self) -> bool:
        return self.headers.get(DLQ_TRUNCATED, "").strip().lower() == "true"

    @property
    def source_topic(self) -> str:
        """Where the record came from: its dlq-source-topic header, else this topic without `.dlq`."""
        return self.headers.get(DLQ_SOURCE_TOPIC) or self.topic.removesuffix(DLQ_SUFFIX)

    @property
    def source(self) -> str:
        partition = self.headers.get(DLQ_SOURCE_PARTITION, "?")
        offset = self.headers.get(DLQ_SOURCE_OFFSET, "?")
        return f"{self.source_topic}[{partition}]@{offset}"

    @property
    def stored_size(self) -> int:
        return len(self.value or b"")

    @property
    def original_size(self) -> int:
        """Size of the original value (dlq-original-size); what is stored when the header is missing."""
        size = _int(self.headers.get(DLQ_ORIGINAL_SIZE))
        return self.stored_size if size is None else size

    @property
    def original_sha256(self) -> str:
        return self.headers.get(DLQ_ORIGINAL_SHA256, "")

    @property
    def original_headers(self) -> dict[str, str]:
        """The headers the record had on its own topic (everything but `dlq-*`)."""
        return {k: v for k, v in self.headers.items() if not k.startswith(DLQ_HEADER_PREFIX)}

    @property
    def time(self) -> datetime | None:
        if self.timestamp_ms is None or self.timestamp_ms < 0:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, TOKYO)


def key_text(key: bytes | None) -> str:
    """The key as text when it is UTF-8 (call and request ids are), else as hex."""
    if key is None:
        return ""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + key.hex()
    return text if text.isprintable() else "0x" + key.hex()


def shorten(text: str, width: int = DETAIL_WIDTH) -> str:
    """One line of at most `width` characters, with … where it was cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def local_time(letter: DeadLetter) -> str:
    at = letter.time
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""


def newest_last(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """By the time they were dead-lettered, then by partition and offset."""
    return sorted(letters, key=lambda d: (d.timestamp_ms or 0, d.partition, d.offset))


def with_reason(letters: Iterable[DeadLetter], prefix: str | None) -> list[DeadLetter]:
    """Dead letters whose reason starts with `prefix` (`handler_error` matches `handler_error:DataError`)."""
    return [d for d in letters if prefix is None or d.reason.startswith(prefix)]


def reason_counts(letters: Iterable[DeadLetter]) -> list[tuple[str, int]]:
    """How many dead letters per reason, most frequent first (ties by name)."""
    counts = Counter(d.reason or "(none)" for d in letters)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def summary_line(topic: str, matched: Sequence[DeadLetter], shown: int, reason: str | None) -> str:
    noun = "dead letter" if len(matched) == 1 else "dead letters"
    scope = f" with reason {reason}*" if reason else ""
    showing = f" (showing the newest {shown})" if shown < len(matched) else ""
    counts = ", ".join(f"{name} {count}" for name, count in reason_counts(matched))
    return f"{len(matched)} {noun} in {topic}{scope}{showing}" + (f"; by reason: {counts}" if counts else "")


LIST_COLUMNS = ["partition", "offset", "time (JST)", "key", "reason", "source", "size", "truncated", "detail"]


def list_row(letter: DeadLetter) -> tuple[str, ...]:
    size = f"{letter.stored_size}/{letter.original_size}" if letter.truncated else str(letter.original_size)
    return (
        str(letter.partition),
        str(letter.offset),
        local_time(letter),
        key_text(letter.key),
        letter.reason,
        letter.source,
        size,
        "yes" if letter.truncated else "",
        shorten(letter.detail),
    )


def as_json(letter: DeadLetter) -> dict[str, Any]:
    """One dead letter for scripts: where it is, why, where from, and every header."""
    at = letter.time
    return {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "time": at.isoformat() if at else None,
        "key": key_text(letter.key),
        "reason": letter.reason,
        "detail": letter.detail,
        "source": {
            "topic": letter.source_topic,
            "partition": _int(letter.headers.get(DLQ_SOURCE_PARTITION)),
            "offset": _int(letter.headers.get(DLQ_SOURCE_OFFSET)),
        },
        "consumer_group": letter.headers.get(DLQ_CONSUMER_GROUP, ""),
        "size": letter.stored_size,
        "original_size": letter.original_size,
        "original_sha256": letter.original_sha256,
        "truncated": letter.truncated,
        "headers": dict(letter.headers),
    }


def _rich_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table whose cells are shown as they are (header values may contain [brackets])."""
    view = Table(title=escape(title), title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold")  # wrap, never cut: keys and ids stay whole
    for row in rows:
        view.add_row(*(escape(cell) for cell in row))
    return view


# --- show ---------------------------------------------------------------------------------------------------


def message_json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class Body:
    """What a dead letter's value is: the checked event, or why not and what it parses as without checks."""

    schema: str
    decoded: Message | None = None
    invalid_reason: str = ""
    invalid_detail: str = ""
    parsed: Message | None = None
    parse_error: str = ""


def describe_body(source_topic: str, value: bytes | None) -> Body:
    message_type = TOPIC_MESSAGES.get(source_topic)
    schema = message_type.DESCRIPTOR.full_name if message_type else "?"
    try:
        return Body(schema, decoded=decode_event(source_topic, value).message)
    except InvalidEvent as invalid:
        body = Body(schema, invalid_reason=invalid.reason, invalid_detail=invalid.detail)
    if message_type is None:
        return body
    if not value:
        return Body(schema, invalid_reason=body.invalid_reason, invalid_detail=body.invalid_detail)
    parsed = message_type()
    try:
        parsed.ParseFromString(value)
    except DecodeError as error:
        return Body(
            schema,
            invalid_reason=body.invalid_reason,
            invalid_detail=body.invalid_detail,
            parse_error=str(error),
        )
    return Body(schema, invalid_reason=body.invalid_reason, invalid_detail=body.invalid_detail, parsed=parsed)


def _message_dict(message: Message | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def show_json(letter: DeadLetter) -> dict[str, Any]:
    body = describe_body(letter.source_topic, letter.value)
    return {
        **as_json(letter),
        "value_base64": binascii.b2a_base64(letter.value or b"", newline=False).decode(),
        "schema": body.schema,
        "decoded": _message_dict(body.decoded),
        "invalid": (
            {"reason": body.invalid_reason, "detail": body.invalid_detail} if body.decoded is None else None
        ),
        "parsed_without_checks": _message_dict(body.parsed),
        "parse_error": body.parse_error or None,
    }


def about_lines(letter: DeadLetter) -> list[str]:
    """Where the dead letter is, why it is there, where it came from, its key and size."""
    group = letter.headers.get(DLQ_CONSUMER_GROUP)
    lines = [
        f"{letter.position}  dead-lettered {local_time(letter) or '(no time)'} JST",
        f"reason: {letter.reason or '(none)'}" + (f" — {letter.detail}" if letter.detail else ""),
        f"source: {letter.source}" + (f" (consumer group {group})" if group else ""),
        f"key: {key_text(letter.key) or '(none)'}",
        f"value: {letter.stored_size} bytes",
    ]
    if DLQ_REPLAYED_FROM in letter.headers:
        lines.append(f"replayed from: {letter.headers[DLQ_REPLAYED_FROM]}")
    return lines


def body_lines(letter: DeadLetter) -> list[str]:
    """The body as far as it decodes: the checked event, else why not and what it parses as without checks."""
    lines: list[str] = []
    if letter.truncated:
        lines.append(
            f"TRUNCATED: only the first {letter.stored_size} of {letter.original_size} bytes were kept "
            f"to fit the broker; original sha256 {letter.original_sha256 or '?'}. It cannot be replayed."
        )
    body = describe_body(letter.source_topic, letter.value)
    if body.decoded is not None:
        lines += [f"body ({body.schema}, passes the contract checks):", message_json(body.decoded)]
        return lines
    lines.append(f"body does not decode: {body.invalid_reason}: {body.invalid_detail}")
    if body.parsed is not None:
        lines += [f"parsed as {body.schema} without checks:", message_json(body.parsed)]
    elif letter.value:
        if body.invalid_reason != "malformed":  # else the line above already says why it does not parse
            problem = f": {body.parse_error}" if body.parse_error else ""
            lines.append(f"it does not parse as {body.schema} either{problem}")
        preview = letter.value[:64]
        lines.append(f"first {len(preview)} bytes: {preview.hex(' ')}")
    return lines


# --- replay -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """The record that goes back to its topic: original key, value and headers, plus where it came from."""

    letter: DeadLetter
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Refusal:
    letter: DeadLetter
    cause: str  # short: "truncated", "unknown source topic"
    explanation: str


def replay_of(letter: DeadLetter) -> Replay | Refusal:
    """What replaying `letter` publishes, or why it must not be replayed."""
    if letter.truncated:
        return Refusal(
            letter,
            "truncated",
            f"the value was truncated to fit the broker ({letter.stored_size} of {letter.original_size} "
            f"bytes kept, original sha256 {letter.original_sha256 or '?'}); the original must be "
            "re-sent by its producer",
        )
    topic = letter.source_topic
    if topic not in TOPIC_MESSAGES:
        return Refusal(letter, "unknown source topic", f"{DLQ_SOURCE_TOPIC} {topic!r} is not a Hibiki topic")
    headers = [(name, value.encode("utf-8")) for name, value in letter.original_headers.items()]
    headers.append((DLQ_REPLAYED_FROM, letter.position.encode("utf-8")))
    return Replay(letter, topic, letter.key, letter.value or b"", headers)


def plan_replay(letters: Iterable[DeadLetter]) -> tuple[list[Replay], list[Refusal]]:
    """Replays in dead-letter order (partition, offset: the order of each key) and the refused letters."""
    replays: list[Replay] = []
    refusals: list[Refusal] = []
    for letter in sorted(letters, key=lambda d: (d.partition, d.offset)):
        planned = replay_of(letter)
        if isinstance(planned, Replay):
            replays.append(planned)
        else:
            refusals.append(planned)
    return replays, refusals


@dataclass(frozen=True)
class Selection:
    """Which dead letters `replay` takes: exact positions, a reason prefix, or all of them."""

    positions: tuple[tuple[int, int], ...] = ()
    reason: str | None = None
    everything: bool = False

    @classmethod
    def of(
        cls, partitions: Sequence[int], offsets: Sequence[int], reason: str | None, everything: bool
    ) -> Selection:
        """Exactly one kind of selector; raises typer.BadParameter (exit 2) otherwise."""
        if len(partitions) != len(offsets):
            raise typer.BadParameter(
                "give --partition and --offset in pairs (one --offset per --partition)", param_hint="--offset"
            )
        kinds = sum((bool(partitions), reason is not None, everything))
        if kinds != 1:
            raise typer.BadParameter(
                "choose the dead letters with exactly one of: --partition P --offset O (repeatable), "
                "--reason R, --all",
                param_hint="--partition/--reason/--all",
            )
        return cls(tuple(zip(partitions, offsets, strict=True)), reason, everything)

    def window(self) -> dict[int, tuple[int, int]] | None:
        """Partition → (first, last) offset to read for exact positions; None: every partition, all of it."""
        if not self.positions:
            return None
        window: dict[int, tuple[int, int]] = {}
        for partition, offset in self.positions:
            first, last = window.get(partition, (offset, offset))
            window[partition] = (min(first, offset), max(last, offset))
        return window

    def pick(self, letters: Iterable[DeadLetter]) -> tuple[list[DeadLetter], list[tuple[int, int]]]:
        """The chosen dead letters, and the requested positions that were not found."""
        if self.positions:
            wanted = set(self.positions)
            chosen = [d for d in letters if (d.partition, d.offset) in wanted]
            found = {(d.partition, d.offset) for d in chosen}
            return chosen, [p for p in self.positions if p not in found]
        return with_reason(letters, self.reason), []


def _replay_line(replay: Replay) -> str:
    key = key_text(replay.key) or "(no key)"
    return f"{replay.letter.position} → {replay.topic}  key {key}  ({replay.letter.reason or 'no reason'})"


# ---------------------------------------------------------------------------------------------------------
# The broker.


def _unreachable(error: BaseException) -> bool:
    if isinstance(error, OSError | TimeoutError | KafkaTimeoutError):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


def _broker_failure(broker: Broker, error: BaseException) -> typer.Exit:
    """Print what went wrong with the broker on stderr; the Exit to raise."""
    text = str(error) or type(error).__name__
    stderr.print(f"[bold red]error[/]: {escape(type(error).__name__)} from the Kafka broker "
                 f"({escape(broker.bootstrap_servers)}): {escape(text)}")  # fmt: skip
    if _unreachable(error):
        stderr.print(
            f"  hint: is the broker running at {escape(broker.bootstrap_servers)}? "
            "set --bootstrap-servers (on `hibiki dlq`) or HIBIKI_KAFKA_BOOTSTRAP_SERVERS"
        )
        return typer.Exit(EXIT_UNREACHABLE)
    return typer.Exit(EXIT_FAILED)


def _run(broker: Broker, work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except (KafkaError, OSError, TimeoutError) as error:
        raise _broker_failure(broker, error) from None


async def _started(broker: Broker, client: Any) -> None:
    try:
        async with asyncio.timeout(broker.timeout_seconds):
            await client.start()
    except BaseException:
        await client.stop()
        raise


Window = Mapping[int, tuple[int, int]]


async def read_dead_letters(
    broker: Broker,
    topic: str,
    *,
    idle_ms: int,
    window: Window | None = None,
    progress: Callable[[int], None] = lambda _count: None,
) -> list[DeadLetter]:
    """Dead letters of `topic`: every partition from its beginning, or only the offsets of `window`.

    Stops when a poll has been empty for `idle_ms` (or every windowed partition is past its last offset).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        client_id=CLIENT_ID,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=broker.request_timeout_ms,
        fetch_max_wait_ms=max(10, min(500, idle_ms // 2)),
    )
    await _started(broker, consumer)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            # Started without topics, the client may know none yet: ask for all of them once.
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            stderr.print(
                f"{escape(topic)} does not exist on the broker (nothing was dead-lettered there yet)"
            )
            return []
        wanted = sorted(partitions) if window is None else sorted(set(window) & set(partitions))
        if not wanted:
            return []
        assigned = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(assigned)
        if window is None:
            await consumer.seek_to_beginning(*assigned)
        else:
            for tp in assigned:
                consumer.seek(tp, window[tp.partition][0])
        return await _read(consumer, assigned, idle_ms, window, progress)
    finally:
        await consumer.stop()


async def _read(
    consumer: Any,
    assigned: list[TopicPartition],
    idle_ms: int,
    window: Window | None,
    progress: Callable[[int], None],
) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    active = list(assigned)
    while active:
        batches = await consumer.getmany(*active, timeout_ms=idle_ms, max_records=1000)
        if not any(batches.values()):
            break
        for tp, batch in batches.items():
            last = window[tp.partition][1] if window is not None else None
            for record in batch:
                if last is not None and record.offset > last:
                    if tp in active:
                        active.remove(tp)
                    break
                letters.append(DeadLetter.of(record))
            if last is not None and batch and batch[-1].offset >= last and tp in active:
                active.remove(tp)
        progress(len(letters))
    return letters


async def publish(broker: Broker, replays: Sequence[Replay]) -> list[tuple[int, int] | BaseException]:
    """Send the replays in order and wait for the broker's acks: (partition, offset) or the error, each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        client_id=CLIENT_ID,
        acks="all",
        request_timeout_ms=broker.request_timeout_ms,
    )
    await _started(broker, producer)
    try:
        pending: list[asyncio.Future[Any] | BaseException] = []
        for replay in replays:
            try:
                pending.append(
                    await producer.send(replay.topic, replay.value, key=replay.key, headers=replay.headers)
                )
            except (KafkaError, OSError, TimeoutError) as error:
                pending.append(error)
        futures = [p for p in pending if not isinstance(p, BaseException)]
        acked = iter(await asyncio.gather(*futures, return_exceptions=True))
        results: list[tuple[int, int] | BaseException] = []
        for item in pending:
            outcome = item if isinstance(item, BaseException) else next(acked)
            results.append(
                outcome if isinstance(outcome, BaseException) else (outcome.partition, outcome.offset)
            )
        return results
    finally:
        await producer.stop()


@contextmanager
def reading_progress(topic: str) -> Iterator[Callable[[int], None]]:
    """Records read so far, on stderr, only when stderr is a terminal."""
    try:
        interactive = sys.stderr.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        yield lambda _count: None
        return
    with Progress(
        SpinnerColumn(), TextColumn("reading {task.description}: {task.completed} records"),
        TimeElapsedColumn(), console=progress_console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(topic, total=None)
        yield lambda count: bar.update(task, completed=count)


def read_all(broker: Broker, topic: str, idle_ms: int, window: Window | None = None) -> list[DeadLetter]:
    with reading_progress(topic) as progress:
        return _run(
            broker, read_dead_letters(broker, topic, idle_ms=idle_ms, window=window, progress=progress)
        )


def publish_all(broker: Broker, replays: Sequence[Replay]) -> list[tuple[int, int] | BaseException]:
    return _run(broker, publish(broker, replays))


# ---------------------------------------------------------------------------------------------------------
# Commands.


@app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    topic: TopicArgument,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Only reasons starting with this, e.g. handler_error or unknown_call.", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Show the newest N (newest last); 0 shows all.")] = 50,
    output: FormatOption = Format.TABLE,
    idle_ms: IdleOption = 1000,
) -> None:
    """List dead letters: where they are, why, where from, size, truncated; a count per reason at the end."""
    _, dead_topic = topics_of(topic)
    broker = _broker(ctx)
    matched = newest_last(with_reason(read_all(broker, dead_topic, idle_ms), reason))
    shown = matched[-limit:] if limit else matched
    summary = summary_line(dead_topic, matched, len(shown), reason)
    if output is not Format.TABLE:
        print_document([as_json(letter) for letter in shown], OutputFormat(output.value))
        stderr.print(escape(summary))
        return
    stdout.print(_rich_table(f"dead letters in {dead_topic}", LIST_COLUMNS, [list_row(d) for d in shown]))
    stdout.print(escape(summary))


@app.command()
def show(
    ctx: typer.Context,
    topic: TopicArgument,
    partition: Annotated[
        int, typer.Argument(min=0, help="Partition of the dead-letter topic.", show_default=False)
    ],
    offset: Annotated[int, typer.Argument(min=0, help="Offset in that partition.", show_default=False)],
    output: FormatOption = Format.TABLE,
    idle_ms: IdleOption = 1000,
) -> None:
    """One dead letter: every header, the key, and the body decoded (or why it does not decode)."""
    _, dead_topic = topics_of(topic)
    broker = _broker(ctx)
    letters = read_all(broker, dead_topic, idle_ms, {partition: (offset, offset)})
    letter = next((d for d in letters if d.offset == offset), None)
    if letter is None:
        stderr.print(f"[bold red]error[/]: no dead letter at {escape(dead_topic)}[{partition}]@{offset}")
        raise typer.Exit(EXIT_NOT_FOUND)
    if output is not Format.TABLE:
        print_document(show_json(letter), OutputFormat(output.value))
        return
    first, *rest = about_lines(letter)
    stdout.print(escape(first), style="bold")
    for line in rest:
        stdout.print(escape(line))
    stdout.print(_rich_table("headers", ["name", "value"], sorted(letter.headers.items())))
    for line in body_lines(letter):
        print(line)  # as is: JSON is copied from here


@app.command()
def replay(
    ctx: typer.Context,
    topic: TopicArgument,
    partitions: Annotated[
        list[int] | None,
        typer.Option(
            "--partition",
            min=0,
            help="Partition of a dead letter (with --offset; repeatable).",
            show_default=False,
        ),
    ] = None,
    offsets: Annotated[
        list[int] | None,
        typer.Option(
            "--offset", min=0, help="Offset of that dead letter (one per --partition).", show_default=False
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Every dead letter whose reason starts with this.", show_default=False)
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every dead letter of the topic.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be replayed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Replay more than one dead letter.")] = False,
    idle_ms: IdleOption = 1000,
) -> None:
    """Re-publish dead letters to their source topic with the original key, value and headers.

    Adds the header dlq-replayed-from (<dlq topic>[<partition>]@<offset>); truncated dead letters are
    refused. Fix the cause first (e.g. publish the missing flow): a record that fails again goes back to
    the DLQ. Replaying twice is safe: consumers skip event ids they already handled.
    """
    _, dead_topic = topics_of(topic)
    selection = Selection.of(partitions or [], offsets or [], reason, everything)
    broker = _broker(ctx)
    chosen, missing = selection.pick(read_all(broker, dead_topic, idle_ms, selection.window()))
    if missing:
        where = ", ".join(f"{dead_topic}[{p}]@{o}" for p, o in missing)
        stderr.print(f"[bold red]error[/]: no dead letter at {escape(where)}; nothing was replayed")
        raise typer.Exit(EXIT_NOT_FOUND)
    if not chosen:
        scope = f"with reason {reason}*" if reason else "at all"
        stderr.print(f"no dead letter in {escape(dead_topic)} {escape(scope)}; nothing to replay")
        raise typer.Exit(EXIT_NOT_FOUND)
    replays, refusals = plan_replay(chosen)
    for refusal in refusals:
        stderr.print(
            f"[bold yellow]refused[/] {escape(refusal.letter.position)}: {escape(refusal.cause)}: "
            f"{escape(refusal.explanation)}"
        )
    if dry_run:
        for planned in replays:
            stdout.print(escape(f"would replay {_replay_line(planned)}"))
        stdout.print(escape(f"dry run: {len(replays)} would be replayed, {len(refusals)} refused"))
        raise typer.Exit(EXIT_REFUSED if refusals else 0)
    if len(replays) > 1 and not yes:
        stderr.print(
            f"[bold red]error[/]: this would replay {len(replays)} dead letters; check them with --dry-run, "
            "then pass --yes"
        )
        raise typer.Exit(EXIT_USAGE)
    results = publish_all(broker, replays) if replays else []
    failures: list[BaseException] = []
    for planned, result in zip(replays, results, strict=True):
        if isinstance(result, BaseException):
            failures.append(result)
            why = str(result) or type(result).__name__
            stderr.print(f"[bold red]failed[/] {escape(_replay_line(planned))}: {escape(why)}")
            continue
        partition, new_offset = result
        stdout.print(
            escape(f"replayed {_replay_line(planned)} → now {planned.topic}[{partition}]@{new_offset}")
        )
    done = len(replays) - len(failures)
    refused = Counter(r.cause for r in refusals)
    refused_text = ", ".join(f"{count} {cause}" for cause, count in refused.items())
    stdout.print(
        escape(
            f"replayed {done} of {len(chosen)} dead letters from {dead_topic}"
            + (f"; refused {refused_text}" if refusals else "")
            + (f"; {len(failures)} failed (safe to run again)" if failures else "")
        )
    )
    if failures:
        raise _broker_failure(broker, failures[0])
    if refusals:
        raise typer.Exit(EXIT_REFUSED)
