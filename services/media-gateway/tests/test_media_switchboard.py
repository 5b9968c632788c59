"""The switchboard between SIP lines, routing's actions and the outbox: a fake SIP side, a real database,
guidance-tts played by a local HTTP server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_devstack.infra import free_port
from hibiki_media_gateway.adapters.audio_store import AudioStore
from hibiki_media_gateway.adapters.metrics import MediaMetrics
from hibiki_media_gateway.adapters.sip_engine import Closed, Incoming, Key, PlaybackEnded
from hibiki_media_gateway.adapters.tables import media_calls, media_instances
from hibiki_media_gateway.domain.commands import CallCommand
from hibiki_media_gateway.entrypoints.call_actions_consumer import EDGE
from hibiki_media_gateway.entrypoints.main import MIGRATIONS
from hibiki_media_gateway.service_layer import switchboard
from hibiki_media_gateway.service_layer.event_log import EventLog
from hibiki_media_gateway.service_layer.lost_calls import LostCalls
from hibiki_media_gateway.service_layer.switchboard import Switchboard
from hibiki_runtime.consumer import Inbound
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import CALL_ACTIONS, new_envelope
from hibiki_runtime.instances import Instance
from hibiki_runtime.outbox import outbox
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

TENANT = "tenant-a"
NUMBER = "+81312345678"
WAV = b"RIFF....WAVEfmt "  # the switchboard never reads it: the SIP side plays files


@dataclass
class FakeLines:
    """What the switchboard asked of SIP, in order."""

    done: list[tuple[object, ...]] = field(default_factory=list)

    def answer(self, line: int) -> None:
        self.done.append(("answer", line))

    def reject(self, line: int, status: int) -> None:
        self.done.append(("reject", line, status))

    def play(self, line: int, playback: int, files: Sequence[Path]) -> None:
        self.done.append(("play", line, playback, [f.read_bytes() for f in files]))

    def stop_playback(self, line: int) -> None:
        self.done.append(("stop", line))

    def transfer(self, line: int, destination: str) -> None:
        self.done.append(("transfer", line, destination))

    def hang_up(self, line: int) -> None:
        self.done.append(("hang_up", line))


@dataclass
class Board:
    board: Switchboard
    lines: FakeLines
    sessions: async_sessionmaker[AsyncSession]
    audio: AudioStore
    registry: CollectorRegistry
    offsets: itertools.count[int]

    async def events(self) -> list[call_events_pb2.CallEvent]:
        async with self.sessions() as session:
            rows = (await session.execute(select(outbox.c.value).order_by(outbox.c.id))).scalars()
            return [call_events_pb2.CallEvent.FromString(value) for value in rows]

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0.01)

    def action(self, call_id: str, step: int, body: str, **fields: object) -> Inbound[CallCommand]:
        message = call_actions_pb2.CallAction(call_id=call_id, action_id=f"{call_id}:{step}", step=step)
        getattr(message, body).CopyFrom(getattr(call_actions_pb2, _BODIES[body])(**fields))
        message.envelope.CopyFrom(new_envelope(TENANT, getattr(message, body), event_id=f"{call_id}:a{step}"))
        return EDGE.inbound(CALL_ACTIONS, message, key=call_id, position=next(self.offsets))


_BODIES = {"play_and_collect": "PlayAndCollect", "play": "Play", "hangup": "Hangup", "transfer": "Transfer"}


def invite(line: int, to: str = NUMBER, caller: str = "+819012345678") -> Incoming:
    return Incoming(
        line,
        f"sip:{to}@127.0.0.1:5060",
        f"<sip:{to}@127.0.0.1>",
        f"<sip:{caller}@10.0.0.9>",
        "",
        "",
        "x",
        "10.0.0.9:5060",
    )


async def guidance(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != "Bearer platform-token":
        raise web.HTTPUnauthorized()
    if request.match_info["id"] == "missing":
        raise web.HTTPNotFound(text="no such guidance")
    return web.Response(body=request.match_info["id"].encode(), headers={"ETag": '"e"'})


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    app = web.Application()
    app.router.add_get("/audio/{id}.wav", guidance)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'media.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    registry = CollectorRegistry()
    metrics = MediaMetrics(registry)
    audio = AudioStore(f"http://127.0.0.1:{port}", {TENANT: "platform-token"}, tmp_path / "audio")
    await audio.start()
    lines = FakeLines()
    switchboard = Switchboard(
        lines,
        audio,
        EventLog(sessions, lambda: None, metrics),
        metrics,
        tenants_by_number={NUMBER: TENANT},
        instance_id="this-process",
        idle_timeout=10.0,
        max_calls=2,
    )
    switchboard.accepting = True
    yield Board(switchboard, lines, sessions, audio, registry, itertools.count())
    await audio.stop()
    await engine.dispose()
    await runner.cleanup()


async def answered_call(board: Board, line: int = 1) -> str:
    board.board.on_sip(invite(line))
    await board.settle()
    assert ("answer", line) in board.lines.done
    started = [e for e in await board.events() if e.WhichOneof("body") == "call_started"]
    return started[-1].call_id


async def test_a_call_is_recorded_before_it_is_answered_and_its_prompts_play(board: Board) -> None:
    call_id = await answered_call(board)
    (started,) = await board.events()
    assert started.call_started.dialed_number == NUMBER
    assert started.call_started.caller_number == "+819012345678"
    assert started.envelope.event_id == f"{call_id}:1:started"
    async with board.sessions() as session:
        assert (await session.execute(select(media_calls.c.call_id))).scalars().all() == [call_id]

    prompts = [
        call_actions_pb2.Prompt(guidance_id="g-menu"),
        call_actions_pb2.Prompt(guidance_id="system:pause"),
    ]
    collect = board.action(call_id, 2, "play_and_collect", prompts=prompts, max_digits=1)
    await board.board.handle_actions([collect])
    await board.settle()
    assert ("play", 1, 1, [b"g-menu", b"system:pause"]) in board.lines.done

    board.board.on_sip(Key(1, "3"))  # barge-in
    await board.settle()
    assert ("stop", 1) in board.lines.done
    digits = (await board.events())[-1]
    assert digits.digits_collected.digits == "3" and digits.digits_collected.action_id == f"{call_id}:2"
    assert digits.envelope.causation_id == f"{call_id}:a2"


async def test_the_caller_hanging_up_ends_the_call_and_removes_its_row(board: Board) -> None:
    call_id = await answered_call(board)
    collect = board.action(call_id, 2, "play_and_collect", prompts=[call_actions_pb2.Prompt(guidance_id="g")])
    await board.board.handle_actions([collect])
    await board.settle()
    board.board.on_sip(Closed(1, 200, "Normal call clearing"))
    await board.settle()
    ended = (await board.events())[-1]
    assert ended.call_ended.reason == call_events_pb2.END_REASON_CALLER_HANGUP
    assert ended.call_ended.during_action_id == f"{call_id}:2"
    async with board.sessions() as session:
        assert (await session.execute(select(media_calls))).all() == []
    assert board.board.active == 0


async def test_unknown_numbers_busy_lines_and_a_draining_process_refuse_calls(board: Board) -> None:
    board.board.on_sip(invite(7, to="+81399999999"))
    assert ("reject", 7, 404) in board.lines.done
    await answered_call(board, 1)
    await answered_call(board, 2)
    board.board.on_sip(invite(3))  # max_calls = 2
    assert ("reject", 3, 486) in board.lines.done
    board.board.accepting = False
    board.board.on_sip(invite(4))
    assert ("reject", 4, 503) in board.lines.done


async def test_a_prompt_without_audio_is_skipped_and_one_with_none_left_counts_as_played(
    board: Board,
) -> None:
    call_id = await answered_call(board)
    play = board.action(call_id, 2, "play", prompts=[call_actions_pb2.Prompt(guidance_id="missing")])
    await board.board.handle_actions([play])
    await board.settle()
    finished = (await board.events())[-1]
    assert finished.prompt_finished.action_id == f"{call_id}:2"
    assert board.registry.get_sample_value("hibiki_media_gateway_prompts_without_audio_total") == 1


async def test_a_playback_that_ended_reports_the_play_and_routing_silence_hangs_up(board: Board) -> None:
    board.board.idle_timeout = 0.8
    call_id = await answered_call(board)
    play = board.action(call_id, 2, "play", prompts=[call_actions_pb2.Prompt(guidance_id="g")])
    await board.board.handle_actions([play])
    await board.settle()
    board.board.on_sip(PlaybackEnded(1, 1))
    await board.settle()
    assert (await board.events())[-1].prompt_finished.action_id == f"{call_id}:2"
    await asyncio.sleep(1.0)  # routing said nothing for the idle timeout
    ended = (await board.events())[-1]
    assert ended.call_ended.reason == call_events_pb2.END_REASON_NETWORK_ERROR
    assert ("hang_up", 1) in board.lines.done


async def test_a_transfer_goes_to_the_trunk_that_called(board: Board) -> None:
    call_id = await answered_call(board)
    transfer = board.action(call_id, 2, "transfer", destination="+81311112222")
    await board.board.handle_actions([transfer])
    await board.settle()
    assert ("transfer", 1, "sip:+81311112222@10.0.0.9") in board.lines.done


async def test_actions_of_other_calls_or_tenants_are_not_this_process_s(board: Board) -> None:
    call_id = await answered_call(board)
    before = list(board.lines.done)
    other = board.action("someone-else", 2, "play", prompts=[call_actions_pb2.Prompt(guidance_id="g")])
    await board.board.handle_actions([other])
    await board.settle()
    assert board.lines.done == before
    timeout = Duration(seconds=4)
    collect = board.action(call_id, 2, "play_and_collect", max_digits=1, first_digit_timeout=timeout)
    assert collect.command.action.first_digit_timeout == 4.0  # type: ignore[union-attr]


async def test_drain_cuts_off_calls_still_up_as_platform_failures(board: Board) -> None:
    call_id = await answered_call(board)
    await board.board.drain(grace=0.1)
    ended = (await board.events())[-1]
    assert ended.call_id == call_id
    assert ended.call_ended.reason == call_events_pb2.END_REASON_PLATFORM_FAILURE
    assert ("hang_up", 1) in board.lines.done


async def test_calls_of_a_process_that_died_are_reported_lost_once(board: Board) -> None:
    async with board.sessions.begin() as session:
        await session.execute(
            insert(media_calls),
            [
                {
                    "call_id": "lost-1",
                    "instance_id": "dead",
                    "tenant_id": TENANT,
                    "dialed_number": NUMBER,
                    "started_at": _now(),
                },
                {
                    "call_id": "mine",
                    "instance_id": "this-process",
                    "tenant_id": TENANT,
                    "dialed_number": NUMBER,
                    "started_at": _now(),
                },
            ],
        )
    instance = Instance(board.sessions, media_instances, instance_id="this-process")
    await instance.register()
    lost = LostCalls(
        board.sessions,
        instance,
        MediaMetrics(CollectorRegistry()),
        lambda: None,
        instance_timeout=timedelta(seconds=15),
    )

    assert await lost.sweep() == 1
    assert await lost.sweep() == 0
    (ended,) = await board.events()
    assert ended.call_id == "lost-1" and ended.envelope.event_id == "lost-1:lost:ended"
    assert ended.call_ended.reason == call_events_pb2.END_REASON_PLATFORM_FAILURE


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


class _Unreachable:
    """A database that does not answer."""

    def begin(self) -> object:
        raise ConnectionError("database unreachable")


async def test_a_call_that_cannot_be_recorded_is_refused_instead_of_ringing_forever(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(switchboard, "ANSWER_WITHIN_SECONDS", 0.2)
    stuck = EventLog(_Unreachable(), lambda: None, MediaMetrics(CollectorRegistry()))  # type: ignore[arg-type]
    board.board._events = stuck
    board.board.on_sip(invite(1))
    await asyncio.sleep(0.5)
    assert ("reject", 1, 503) in board.lines.done and ("answer", 1) not in board.lines.done
    assert board.board.active == 0
    assert len(stuck._waiting) == 2  # its start and its end, written once the database is back
    assert stuck._writing is not None
    stuck._writing.cancel()
