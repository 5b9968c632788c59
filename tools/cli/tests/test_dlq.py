"""`hibiki dlq` without a broker: choosing, formatting and planning the replay of in-memory dead letters."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
import yaml
from aiokafka.structs import ConsumerRecord
from hibiki.call.v1 import call_events_pb2
from hibiki_cli import dlq
from hibiki_cli.dlq import DeadLetter, Refusal, Replay, Selection
from hibiki_cli.main import app
from hibiki_runtime.events import new_envelope, record_headers
from typer.testing import CliRunner

runner = CliRunner()
TOPIC = "call.events.dlq"
AT = datetime(2026, 4, 1, 1, 2, 3, tzinfo=UTC)  # 10:02:03 in Tokyo


def digits_event(call_id: str, tenant_id: str = "tenant-a") -> call_events_pb2.CallEvent:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:1", digits="7")
    event = call_events_pb2.CallEvent(call_id=call_id, digits_collected=body)
    event.envelope.CopyFrom(new_envelope(tenant_id, body, event_id=f"{call_id}:digits:1", occurred_at=AT))
    return event


def letter(
    offset: int,
    *,
    partition: int = 0,
    reason: str = "unknown_call",
    call_id: str = "c-1",
    value: bytes | None = None,
    minutes: int = 0,
    **extra: str,
) -> DeadLetter:
    """A dead letter as routing writes one: the original headers, then the dlq-* ones."""
    event = digits_event(call_id)
    body = event.SerializeToString() if value is None else value
    headers = {name: raw.decode() for name, raw in record_headers(event)}
    headers |= {
        "dlq-reason": reason,
        "dlq-detail": f"no call {call_id} was started",
        "dlq-source-topic": "call.events",
        "dlq-source-partition": "2",
        "dlq-source-offset": str(100 + offset),
        "dlq-consumer-group": "routing",
        "dlq-original-size": str(len(body)),
        "dlq-original-sha256": hashlib.sha256(body).hexdigest(),
        **extra,
    }
    stamp = int(AT.timestamp() * 1000) + minutes * 60_000
    return DeadLetter(TOPIC, partition, offset, stamp, call_id.encode(), body, headers)


def test_a_topic_is_named_by_its_source_or_its_dlq() -> None:
    assert dlq.topics_of("call.events") == ("call.events", "call.events.dlq")
    assert dlq.topics_of("sms.results.dlq") == ("sms.results", "sms.results.dlq")
    with pytest.raises(typer.BadParameter, match="unknown topic 'calls'"):
        dlq.topics_of("calls")
    with pytest.raises(typer.BadParameter):
        dlq.topics_of("call.events.dlq.dlq")


def test_a_consumer_record_becomes_a_dead_letter_with_text_headers() -> None:
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        topic=TOPIC, partition=1, offset=7, timestamp=1_700_000_000_000, timestamp_type=0,
        key=b"c-9", value=b"\x0a\x00", checksum=None, serialized_key_size=3, serialized_value_size=2,
        headers=[("dlq-reason", b"malformed"), ("dlq-truncated", b"true"), ("odd", b"\xff")],
    )  # fmt: skip
    dead = DeadLetter.of(record)
    assert (dead.position, dead.reason, dead.truncated) == ("call.events.dlq[1]@7", "malformed", True)
    assert dead.headers["odd"] == "\ufffd"
    assert dead.source_topic == "call.events"  # no dlq-source-topic: the topic without .dlq
    assert dead.source == "call.events[?]@?"


def test_reason_is_a_prefix_and_the_newest_come_last() -> None:
    letters = [
        letter(5, minutes=3, reason="handler_error:DataError"),
        letter(1, partition=1, minutes=1),
        letter(2, minutes=2, reason="handler_error:IntegrityError"),
        letter(9, minutes=0, reason="malformed"),
    ]
    ordered = dlq.newest_last(letters)
    assert [(d.partition, d.offset) for d in ordered] == [(0, 9), (1, 1), (0, 2), (0, 5)]
    chosen = dlq.with_reason(ordered, "handler_error")
    assert [d.offset for d in chosen] == [2, 5]
    assert dlq.with_reason(ordered, None) == ordered
    assert dlq.reason_counts(ordered) == [
        ("handler_error:DataError", 1),
        ("handler_error:IntegrityError", 1),
        ("malformed", 1),
        ("unknown_call", 1),
    ]
    assert dlq.summary_line(TOPIC, chosen, 1, "handler_error") == (
        "2 dead letters in call.events.dlq with reason handler_error* (showing the newest 1); "
        "by reason: handler_error:DataError 1, handler_error:IntegrityError 1"
    )
    assert dlq.summary_line(TOPIC, [], 0, None) == "0 dead letters in call.events.dlq"


def test_a_row_shows_where_why_where_from_and_a_short_detail() -> None:
    plain = letter(3, call_id="c-3")
    assert dlq.list_row(plain) == (
        "0", "3", "2026-04-01 10:02:03", "c-3", "unknown_call", "call.events[2]@103",
        str(plain.stored_size), "", "no call c-3 was started",
    )  # fmt: skip
    cut = letter(4, value=b"\x0a" * 10, **{"dlq-truncated": "true", "dlq-original-size": "2000000"})
    row = dlq.list_row(cut)
    assert (row[6], row[7]) == ("10/2000000", "yes")
    assert dlq.shorten("x" * 100, 20) == "x" * 19 + "…"
    assert dlq.shorten("two\nlines  here") == "two lines here"
    assert dlq.key_text(b"\xff\x00") == "0xff00" and dlq.key_text(None) == ""


def test_json_has_every_header_and_the_source_as_numbers() -> None:
    document = dlq.as_json(letter(3, call_id="c-3"))
    assert document["source"] == {"topic": "call.events", "partition": 2, "offset": 103}
    assert document["time"] == "2026-04-01T10:02:03+09:00"
    assert (document["key"], document["reason"], document["truncated"]) == ("c-3", "unknown_call", False)
    assert document["headers"]["event-id"] == "c-3:digits:1"
    assert document["headers"]["dlq-consumer-group"] == "routing"
    json.dumps(document)


def test_replay_sends_the_original_key_value_and_headers_to_the_source_topic() -> None:
    dead = letter(3, call_id="c-3", **{"dlq-replayed-from": "call.events.dlq[0]@1"})
    planned = dlq.replay_of(dead)
    assert isinstance(planned, Replay)
    assert (planned.topic, planned.key, planned.value) == ("call.events", b"c-3", dead.value)
    names = [name for name, _ in planned.headers]
    assert names == ["content-type", "schema", "event-id", "tenant-id", "dlq-replayed-from"]
    assert dict(planned.headers)["dlq-replayed-from"] == b"call.events.dlq[0]@3"
    assert dict(planned.headers)["event-id"] == b"c-3:digits:1"

    header_less = DeadLetter("sms.results.dlq", 0, 1, None, None, b"x", {})
    fallback = dlq.replay_of(header_less)
    assert isinstance(fallback, Replay) and fallback.topic == "sms.results"


def test_truncated_and_foreign_dead_letters_are_refused() -> None:
    cut = letter(4, value=b"\x0a", **{"dlq-truncated": "true", "dlq-original-size": "2000000"})
    refused = dlq.replay_of(cut)
    assert isinstance(refused, Refusal) and refused.cause == "truncated"
    assert "2000000" in refused.explanation and cut.original_sha256 in refused.explanation
    foreign = dlq.replay_of(letter(5, **{"dlq-source-topic": "elsewhere"}))
    assert isinstance(foreign, Refusal) and foreign.cause == "unknown source topic"

    replays, refusals = dlq.plan_replay([letter(9, partition=1), cut, letter(2), letter(7)])
    assert [(r.letter.partition, r.letter.offset) for r in replays] == [(0, 2), (0, 7), (1, 9)]
    assert [r.letter.offset for r in refusals] == [4]


def test_a_selection_is_exactly_one_kind() -> None:
    for partitions, offsets, reason, everything in [
        ([], [], None, False),
        ([0], [1], "malformed", False),
        ([], [], "malformed", True),
    ]:
        with pytest.raises(typer.BadParameter, match="exactly one of"):
            Selection.of(partitions, offsets, reason, everything)
    with pytest.raises(typer.BadParameter, match="pairs"):
        Selection.of([0, 1], [5], None, False)

    exact = Selection.of([0, 1, 0], [5, 2, 9], None, False)
    assert exact.window() == {0: (5, 9), 1: (2, 2)}
    chosen, missing = exact.pick([letter(5), letter(6), letter(9), letter(3, partition=1)])
    assert [(d.partition, d.offset) for d in chosen] == [(0, 5), (0, 9)]
    assert missing == [(1, 2)]
    by_reason = Selection.of([], [], "handler", False)
    assert by_reason.window() is None
    assert by_reason.pick([letter(1), letter(2, reason="handler_error:X")])[0][0].offset == 2
    assert len(Selection.of([], [], None, True).pick([letter(1), letter(2)])[0]) == 2


def test_the_body_decodes_or_says_why_not() -> None:
    body = dlq.describe_body("call.events", digits_event("c-1").SerializeToString())
    assert body.decoded is not None and body.schema == "hibiki.call.v1.CallEvent"
    text = "\n".join(dlq.body_lines(letter(1)))
    assert '"digits_collected"' in text and '"call_id": "c-1"' in text and "passes the contract" in text

    no_tenant = digits_event("c-2", tenant_id="")
    invalid = dlq.describe_body("call.events", no_tenant.SerializeToString())
    assert (invalid.decoded, invalid.invalid_reason) == (None, "missing_tenant")
    assert invalid.parsed is not None
    text = "\n".join(dlq.body_lines(letter(2, value=no_tenant.SerializeToString())))
    assert "does not decode: missing_tenant" in text and "without checks" in text and '"c-2"' in text

    garbage = b"\xff\xfe not a protobuf"
    broken = dlq.describe_body("call.events", garbage)
    assert broken.invalid_reason == "malformed" and broken.parsed is None and broken.parse_error
    text = "\n".join(dlq.body_lines(letter(3, value=garbage)))
    assert "does not decode: malformed: not a hibiki.call.v1.CallEvent" in text and "ff fe 20 6e" in text


def test_a_truncated_body_names_the_original_size_and_digest() -> None:
    whole = digits_event("c-4").SerializeToString()
    cut = letter(
        4,
        value=whole[:10],
        **{
            "dlq-truncated": "true",
            "dlq-original-size": str(len(whole)),
            "dlq-original-sha256": hashlib.sha256(whole).hexdigest(),
        },
    )
    text = "\n".join(dlq.body_lines(cut))
    assert f"TRUNCATED: only the first 10 of {len(whole)} bytes" in text
    assert hashlib.sha256(whole).hexdigest() in text
    shown = dlq.show_json(cut)
    assert shown["truncated"] is True and shown["decoded"] is None and shown["invalid"]["reason"]


# --- the commands, with the broker replaced by in-memory dead letters ---------------------------------------


class FakeBroker:
    def __init__(self, letters: Sequence[DeadLetter]) -> None:
        self.letters = list(letters)
        self.reads: list[tuple[str, Any]] = []
        self.published: list[Replay] = []

    def read_all(self, broker: dlq.Broker, topic: str, idle_ms: int, window: Any = None) -> list[DeadLetter]:
        self.reads.append((topic, window))
        return [d for d in self.letters if d.topic == topic]

    def publish_all(self, broker: dlq.Broker, replays: Sequence[Replay]) -> list[tuple[int, int]]:
        self.published += replays
        return [(2, 500 + i) for i, _ in enumerate(replays)]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBroker]:
    broker = FakeBroker(
        [
            letter(1, call_id="c-1", minutes=1),
            letter(2, call_id="c-2", reason="handler_error:DataError", minutes=2),
            letter(3, call_id="c-3", minutes=3),
            letter(
                4,
                call_id="c-4",
                value=b"\x0a",
                minutes=4,
                **{"dlq-truncated": "true", "dlq-original-size": "99"},
            ),
        ]
    )
    monkeypatch.setattr(dlq, "read_all", broker.read_all)
    monkeypatch.setattr(dlq, "publish_all", broker.publish_all)
    yield broker


def hibiki(*args: str) -> Any:
    return runner.invoke(app, ["dlq", *args], env={"COLUMNS": "250"})


def test_list_shows_a_table_and_a_count_per_reason(fake: FakeBroker) -> None:
    result = hibiki("list", "call.events", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "c-3" in result.stdout and "c-1" not in result.stdout and "1/99" in result.stdout
    assert result.stdout.index("c-3") < result.stdout.index("1/99")  # newest last
    assert "4 dead letters in call.events.dlq (showing the newest 2); by reason: unknown_call 3, " in (
        " ".join(result.stdout.split())
    )
    assert fake.reads == [("call.events.dlq", None)]


def test_list_json_is_one_object_per_record(fake: FakeBroker) -> None:
    result = hibiki("list", "call.events.dlq", "--reason", "handler_error", "-o", "json")
    assert result.exit_code == 0, result.output
    (only,) = json.loads(result.stdout)
    assert (only["offset"], only["reason"], only["headers"]["tenant-id"]) == (
        2, "handler_error:DataError", "tenant-a",
    )  # fmt: skip
    assert "by reason: handler_error:DataError 1" in result.stderr


def test_show_prints_headers_key_and_decoded_body(fake: FakeBroker) -> None:
    result = hibiki("show", "call.events", "0", "3")
    assert result.exit_code == 0, result.output
    assert fake.reads == [("call.events.dlq", {0: (3, 3)})]
    for expected in (
        "call.events.dlq[0]@3",
        "unknown_call",
        "dlq-original-sha256",
        "key: c-3",
        '"digits": "7"',
    ):
        assert expected in result.stdout
    missing = hibiki("show", "call.events", "0", "42")
    assert missing.exit_code == 4 and "no dead letter at call.events.dlq[0]@42" in missing.stderr


def test_replay_of_one_position_publishes_it(fake: FakeBroker) -> None:
    result = hibiki("replay", "call.events", "--partition", "0", "--offset", "3")
    assert result.exit_code == 0, result.output
    ((replayed),) = fake.published
    assert replayed.letter.offset == 3 and replayed.topic == "call.events"
    assert "replayed call.events.dlq[0]@3 → call.events key c-3 (unknown_call) → now call.events[2]@500" in (
        " ".join(result.stdout.split())
    )
    assert "replayed 1 of 1 dead letters from call.events.dlq" in result.stdout


def test_replay_of_several_needs_yes_unless_dry_run(fake: FakeBroker) -> None:
    refused = hibiki("replay", "call.events", "--reason", "unknown_call")
    assert refused.exit_code == 2 and "would replay 2 dead letters" in refused.stderr
    assert fake.published == []

    dry = hibiki("replay", "call.events", "--all", "--dry-run")
    assert dry.exit_code == 3  # the truncated one would be refused
    assert dry.stdout.count("would replay call.events.dlq") == 3
    assert "refused call.events.dlq[0]@4: truncated" in " ".join(dry.stderr.split())
    assert fake.published == []

    done = hibiki("replay", "call.events", "--all", "--yes")
    assert done.exit_code == 3
    assert [r.letter.offset for r in fake.published] == [1, 2, 3]
    assert "replayed 3 of 4 dead letters from call.events.dlq; refused 1 truncated" in done.stdout


def test_replay_refuses_a_truncated_dead_letter(fake: FakeBroker) -> None:
    result = hibiki("replay", "call.events", "--partition", "0", "--offset", "4")
    assert result.exit_code == 3
    assert "truncated" in result.stderr and fake.published == []
    assert "replayed 0 of 1 dead letters from call.events.dlq; refused 1 truncated" in result.stdout


def test_replay_without_a_match_exits_with_4(fake: FakeBroker) -> None:
    nothing = hibiki("replay", "sms.results", "--all")
    assert nothing.exit_code == 4 and "nothing to replay" in nothing.stderr
    missing = hibiki(
        "replay", "call.events", "--partition", "0", "--offset", "3", "--partition", "1", "--offset", "3"
    )
    assert missing.exit_code == 4 and "call.events.dlq[1]@3" in missing.stderr and fake.published == []


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "call.events"],
        ["replay", "call.events", "--partition", "0"],
        ["replay", "call.events", "--all", "--reason", "x"],
        ["replay", "calls", "--all"],
        ["list", "calls"],
        ["show", "calls", "0", "1"],
    ],
)
def test_usage_errors_exit_with_2_before_reading(fake: FakeBroker, args: list[str]) -> None:
    result = hibiki(*args)
    assert result.exit_code == 2, result.output
    assert fake.reads == []


def test_an_unreachable_broker_exits_with_6_and_names_the_variable() -> None:
    result = runner.invoke(
        app,
        ["dlq", "list", "call.events"],
        env={"HIBIKI_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "HIBIKI_TIMEOUT": "5"},
    )
    assert result.exit_code == 6, result.output
    assert "HIBIKI_KAFKA_BOOTSTRAP_SERVERS" in result.stderr and "127.0.0.1:1" in result.stderr


def test_list_and_show_also_print_yaml_and_tsv(fake: FakeBroker) -> None:
    listed = hibiki("list", "call.events.dlq", "--reason", "handler_error", "-o", "yaml")
    assert listed.exit_code == 0, listed.output
    (only,) = yaml.safe_load(listed.stdout)
    assert (only["offset"], only["reason"]) == (2, "handler_error:DataError")
    rows = hibiki("list", "call.events", "-o", "tsv").stdout.splitlines()
    assert rows[0].split("\t")[:2] == ["topic", "partition"] or "offset" in rows[0].split("\t")
    assert len(rows) == 1 + 4
    shown = hibiki("show", "call.events", "0", "3", "-o", "yaml")
    assert shown.exit_code == 0 and yaml.safe_load(shown.stdout)["offset"] == 3


def test_a_narrow_terminal_wraps_the_listing_instead_of_cutting_it(fake: FakeBroker) -> None:
    result = runner.invoke(app, ["dlq", "list", "call.events"], env={"COLUMNS": "60"})
    assert result.exit_code == 0 and "…" not in result.stdout
