"""The bench's SIP caller: `python -m hibiki_bench.sip.caller JOB.json RESULT.json`.

One PJSIP endpoint placing calls as a trunk would (up to 4 at once: the pjsua2 wheel is built with PJSIP's
default PJSUA_MAX_CALLS of 4, whatever `maxCalls` asks for): G.711 μ-law, RFC 4733 keys, the caller's
number in From (each call its own, so that the gateway's CallStarted tells calls apart). A job is one of:

- `burst`: `total` calls, at most `concurrency` at once and started at most `per_second` a second (evenly
  paced), each hung up as soon as it is answered; when each INVITE went out and its 200 OK came back. No RTP
  sockets (a loop media transport): only the far end's SIP and socket handling is measured.
- `hold`: `calls` calls at once; once every call hears sound, `listen_seconds` of listening. Packet timing
  from the tap (kernel timestamps of what the far end sent), the share of the time each call heard sound,
  and this process's own media clock as a control (when its ticks came).
- `dtmf`: `calls` calls (started a little apart), each pressing `key` `presses` times: once a prompt has been
  heard and the line has been quiet for `quiet_seconds`, a key. From the tap: when each key went out and
  when sound started arriving again.

The result is written as JSON before the library is shut down, so a crash while closing loses nothing.
Times are `time.time()` seconds (the wall clock the tap, Kafka and the services share) unless named
otherwise.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from hibiki_bench.media_stats import audible_ulaw, key_presses, onsets
from hibiki_bench.sip.endpoint import Endpoint, Line
from hibiki_bench.sip.tap import Rtp, RtpTap, TapUnavailable

PCMU = 0
PJ_ETOOMANY = 70010
# getTxLevel of a call's audio (what the call transmits into the bridge: what the caller hears) above this
# is sound; PJSIP reports levels 0–255 and the silence of a prompt as 0.
LEVEL_THRESHOLD = 2


def caller_number(base: int, index: int) -> str:
    """A distinct mobile number per call: +8190 and eight digits."""
    return f"+8190{base + index:08d}"


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, caller: Caller, index: int, number: str) -> None:
        super().__init__(caller.account)
        self.caller = caller
        self.index = index
        self.number = number
        self.invited = 0.0
        self.answered: float | None = None
        self.ended = False
        self.hung_up = False
        self.status = 0
        self.audio: pj.AudioMedia | None = None
        self.rtp_port = 0  # this call's local RTP port, once its media is up

    def onCallState(self, param: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered is None:
            self.answered = time.time()
            self.status = 200
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True
            self.audio = None  # its bridge port is gone
            if self.answered is None:
                self.status = info.lastStatusCode

    def onCallMediaState(self, param: pj.OnCallMediaStateParam) -> None:
        try:
            audio = self.getAudioMedia(-1)
        except pj.Error:
            return
        if self.audio is None:
            self.audio = audio
            audio.startTransmit(self.caller.clock)
            with contextlib.suppress(pj.Error, ValueError, IndexError):
                self.rtp_port = int(self.getMedTransportInfo(0).localRtpName.rsplit(":", 1)[1])

    def level(self) -> int:
        return int(self.audio.getTxLevel()) if self.audio is not None else 0

    def hang_up(self) -> None:
        if self.hung_up or self.ended:
            return
        self.hung_up = True
        try:
            self.hangup(pj.CallOpParam(True))
        except pj.Error:
            self.ended = True


class _Clock(pj.AudioMediaPort):  # type: ignore[misc]
    """Receives the calls' audio from the bridge: called once per tick of this process's media clock."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.ticks: list[float] = []
        audio = pj.MediaFormatAudio()
        audio.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
        self.createPort("bench-clock", audio)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if self.recording:
            self.ticks.append(time.monotonic())


class Caller:
    def __init__(self, line: Line, target: str, number_base: int, *, loop_media: bool = False) -> None:
        self.endpoint = Endpoint(line)
        self.account = pj.Account()
        self.account.create(self.endpoint.account_config(loop_media=loop_media))
        self.clock = _Clock()
        self.clock.startTransmit(self.endpoint.null_sink())
        self.target = target
        self.number_base = number_base
        self.calls: list[_Call] = []

    # -- placing and ending calls ------------------------------------------------------------------------
    def dial(self, index: int) -> _Call | None:
        """Call the target as caller number `index`; None when PJSIP has no free call slot right now."""
        number = caller_number(self.number_base, index)
        call = _Call(self, index, number)
        param = pj.CallOpParam(True)
        param.txOption.localUri = f"<sip:{number}@127.0.0.1:{self.endpoint.line.sip_port}>"
        call.invited = time.time()
        try:
            call.makeCall(self.target, param)
        except pj.Error as error:
            if error.status == PJ_ETOOMANY:
                return None
            call.ended, call.status = True, error.status or -1
        self.calls.append(call)
        return call

    def run_until(
        self, done: Callable[[], bool], seconds: float, step: Callable[[], None] | None = None
    ) -> bool:
        """Poll until `done()` or `seconds` pass; `step` runs after every poll. True when done."""
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                return False
            self.endpoint.poll(1)
            if step is not None:
                step()
        return True

    def hang_up_all(self, seconds: float = 5.0) -> None:
        for call in self.calls:
            call.hang_up()
        self.run_until(lambda: all(call.ended for call in self.calls), seconds)

    def close(self) -> None:
        self.hang_up_all()
        self.calls.clear()
        self.clock.recording = False
        del self.clock
        self.account.shutdown()
        self.endpoint.close()

    # -- jobs ------------------------------------------------------------------------------------------
    def burst(self, total: int, concurrency: int, per_second: float, seconds: float) -> dict[str, Any]:
        """`total` calls, at most `concurrency` in progress, INVITEs at least 1/`per_second` apart: a far end
        that falls behind is not offered a catch-up burst (PJSIP aborts a process that opens sockets faster
        than it may reuse them, ~60 calls a second)."""
        next_index = 0
        live: list[_Call] = []
        finished: list[_Call] = []
        next_at = time.monotonic()

        def step() -> None:
            nonlocal next_index, next_at
            for call in list(live):
                if call.answered is not None:
                    call.hang_up()
                if call.ended:
                    live.remove(call)
                    finished.append(call)
            now = time.monotonic()
            if next_index < total and len(live) < concurrency and now >= next_at:
                placed = self.dial(next_index)
                if placed is None:
                    return  # a slot is still being released: next turn
                next_index += 1
                next_at = now + 1 / per_second
                live.append(placed)

        step()
        self.run_until(lambda: next_index >= total and not live, seconds, step)
        finished += live
        return {"calls": [[c.invited, c.answered, c.status] for c in sorted(finished, key=lambda c: c.index)]}

    def hold(
        self, count: int, listen_seconds: float, sound_within: float, tap: RtpTap | None
    ) -> dict[str, Any]:
        calls = [call for call in (self.dial(index) for index in range(count)) if call is not None]
        self.run_until(lambda: all(c.audio is not None or c.ended for c in calls), 30.0)
        self.run_until(lambda: all(c.level() > LEVEL_THRESHOLD or c.ended for c in calls), sound_within)
        heard = [0] * count
        polls = 0
        self.clock.ticks.clear()
        self.clock.recording = True
        began, began_monotonic = time.time(), time.monotonic()
        next_poll = began_monotonic

        def listen() -> None:
            nonlocal polls, next_poll
            if time.monotonic() < next_poll:
                return
            next_poll += 0.02
            polls += 1
            for call in calls:
                if call.level() > LEVEL_THRESHOLD:
                    heard[call.index] += 1

        self.run_until(
            lambda: time.monotonic() - began_monotonic >= listen_seconds, listen_seconds + 1, listen
        )
        ended = time.time()
        self.clock.recording = False
        result: dict[str, Any] = {
            "window": [began, ended],
            "calls": [
                {"answered": call.answered is not None, "audible": heard[call.index] / max(polls, 1)}
                for call in calls
            ],
            "clock_ticks": [t - began_monotonic for t in self.clock.ticks],
        }
        if tap is not None:
            first, last = tap.first_port, tap.last_port
            streams: dict[str, list[tuple[float, int]]] = {}
            for packet in tap.packets():
                if first <= packet.src_port <= last and packet.payload_type == PCMU:
                    at = packet.at_ns / 1e9
                    if began <= at <= ended:
                        key = f"{packet.src_port}>{packet.dst_port}"
                        streams.setdefault(key, []).append((at, packet.seq))
            result["streams"] = streams
        return result

    def dtmf(
        self, count: int, presses: int, key: str, quiet_seconds: float, stagger: float, seconds: float
    ) -> dict[str, Any]:
        pressed = [0] * count
        last_sound: dict[int, float] = {}  # monotonic
        last_press: dict[int, float] = {}  # monotonic
        waiting_sound: dict[int, bool] = {i: True for i in range(count)}
        started = time.monotonic()
        placed: list[_Call] = []

        def step() -> None:
            now = time.monotonic()
            while len(placed) < count and now - started >= len(placed) * stagger:
                call = self.dial(len(placed))
                if call is None:
                    break
                placed.append(call)
            for call in placed:
                if call.ended or call.audio is None:
                    continue
                index = call.index
                if call.level() > LEVEL_THRESHOLD:
                    waiting_sound[index] = False
                    last_sound[index] = now
                    continue
                if pressed[index] >= presses:
                    if not waiting_sound[index]:
                        call.hang_up()
                    continue
                if waiting_sound[index]:
                    if index in last_press and now - last_press[index] > 10:
                        call.hang_up()  # nothing came: give up on this call
                    continue
                if now - last_sound.get(index, now) >= quiet_seconds:
                    try:
                        call.dialDtmf(key)
                    except pj.Error:
                        call.hang_up()
                        continue
                    pressed[index] += 1
                    last_press[index] = now
                    waiting_sound[index] = True

        self.run_until(
            lambda: len(placed) == count and all(c.ended or c.hung_up for c in placed), seconds, step
        )
        return {"calls": [{"number": call.number, "rtp_port": call.rtp_port} for call in placed]}


def _dtmf_tap(packets: list[Rtp], first: int, last: int) -> dict[str, Any]:
    """Per caller RTP port: when each key started on the wire, and when sound started arriving."""
    events: dict[int, list[tuple[float, int]]] = {}
    audio: dict[int, list[tuple[float, bool]]] = {}
    for packet in packets:
        at = packet.at_ns / 1e9
        if first <= packet.dst_port <= last and packet.payload_type != PCMU and len(packet.payload) == 4:
            events.setdefault(packet.src_port, []).append((at, packet.timestamp))
        elif first <= packet.src_port <= last and packet.payload_type == PCMU:
            audio.setdefault(packet.dst_port, []).append((at, audible_ulaw(packet.payload)))
    return {
        "keys": {str(port): key_presses(e) for port, e in events.items()},
        "onsets": {str(port): onsets(a) for port, a in audio.items()},
    }


def main(argv: list[str] | None = None) -> None:
    job_file, result_file = (argv or sys.argv[1:])[:2]
    job = json.loads(Path(job_file).read_text())
    result: dict[str, Any] = {"mode": job["mode"]}
    tap: RtpTap | None = None
    if job.get("tap"):
        tap = RtpTap(job["tap"][0], job["tap"][1])
        try:
            tap.start()
        except TapUnavailable as error:
            result["tap_error"] = str(error)
            tap = None
    caller: Caller | None = None
    try:
        line = Line(job["sip_port"], job["rtp_port"], job["rtp_range"], "caller")
        caller = Caller(line, job["target"], job.get("number_base", 0), loop_media=job["mode"] == "burst")
        if job["mode"] == "burst":
            result.update(caller.burst(job["total"], job["concurrency"], job["per_second"], job["seconds"]))
        elif job["mode"] == "hold":
            result.update(caller.hold(job["calls"], job["listen_seconds"], job["sound_within"], tap))
        elif job["mode"] == "dtmf":
            result.update(
                caller.dtmf(job["calls"], job["presses"], job["key"], job["quiet_seconds"], job["stagger"],
                            job["seconds"])
            )  # fmt: skip
            if tap is not None:
                result["tap"] = _dtmf_tap(tap.packets(), tap.first_port, tap.last_port)
        else:
            raise ValueError(f"unknown mode {job['mode']!r}")
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    finally:
        if tap is not None:
            tap.stop()
        Path(result_file).write_text(json.dumps(result))
        if caller is not None:
            caller.close()


if __name__ == "__main__":
    main()
