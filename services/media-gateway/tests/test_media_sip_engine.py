"""The SIP engine against another PJSIP process as the caller: answer, keys by RFC 4733 and by SIP INFO,
μ-law prompts played one after the other to the end, hang-up."""

from __future__ import annotations

import math
import queue
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hibiki_devstack.infra import free_port
from hibiki_media_gateway.adapters.sip_engine import (
    Closed,
    Confirmed,
    Incoming,
    Key,
    PlaybackEnded,
    SipConfig,
    SipEngine,
    SipEvent,
    TransferDone,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CALLER = r"""
import sys, time, pjsua2 as pj
target, info_key, rfc_key = sys.argv[1], sys.argv[2], sys.argv[3]
ep = pj.Endpoint(); ep.libCreate()
cfg = pj.EpConfig(); cfg.uaConfig.threadCnt = 0; cfg.uaConfig.mainThreadOnly = True
cfg.logConfig.level = 4; cfg.logConfig.consoleLevel = 4; cfg.medConfig.noVad = True
ep.libInit(cfg)
tc = pj.TransportConfig(); tc.port = 0; tc.boundAddress = "127.0.0.1"
ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc); ep.libStart(); ep.audDevManager().setNullDev()
acc_cfg = pj.AccountConfig(); acc_cfg.idUri = "sip:+819012340000@127.0.0.1"
rtp = acc_cfg.mediaConfig.transportConfig
rtp.port, rtp.portRange = int(sys.argv[4]), 10
acc_cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
acc_cfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
acc = pj.Account(); acc.create(acc_cfg)
state = {"confirmed": False, "gone": False}
class Call(pj.Call):
    def onCallState(self, prm):
        info = self.getInfo()
        state["confirmed"] |= info.state == pj.PJSIP_INV_STATE_CONFIRMED
        state["gone"] |= info.state == pj.PJSIP_INV_STATE_DISCONNECTED
call = Call(acc)
call.makeCall(target, pj.CallOpParam(True))
deadline = time.time() + 20
while not state["confirmed"] and time.time() < deadline:
    ep.libHandleEvents(10)
if not state["confirmed"]:
    sys.exit("not answered")
for _ in range(50): ep.libHandleEvents(10)
by_info = pj.CallSendDtmfParam(); by_info.method = pj.PJSUA_DTMF_METHOD_SIP_INFO; by_info.digits = info_key
call.sendDtmf(by_info)
for _ in range(50): ep.libHandleEvents(10)
call.dialDtmf(rfc_key)  # RFC 4733
while not state["gone"] and time.time() < deadline:
    ep.libHandleEvents(10)
del call
ep.libDestroy()
print("hung up" if state["gone"] else "still up")
"""


PHONE = r"""
import sys, time, pjsua2 as pj
# "call <uri> <rtp port>" (hangs up 4 s after it is answered) or "answer <port file> <rtp port>"
mode, arg, rtp_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ep = pj.Endpoint(); ep.libCreate()
cfg = pj.EpConfig(); cfg.uaConfig.threadCnt = 0; cfg.uaConfig.mainThreadOnly = True
cfg.logConfig.level = 1; cfg.logConfig.consoleLevel = 1; cfg.medConfig.noVad = True
ep.libInit(cfg)
tc = pj.TransportConfig(); tc.port = 0; tc.boundAddress = "127.0.0.1"
tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc); ep.libStart(); ep.audDevManager().setNullDev()
calls, seen = [], set()
class Call(pj.Call):
    def onCallState(self, prm):
        seen.add(self.getInfo().state)
class Account(pj.Account):
    def onIncomingCall(self, prm):
        call = Call(self, prm.callId); calls.append(call)
        op = pj.CallOpParam(); op.statusCode = 200; call.answer(op)
acc_cfg = pj.AccountConfig(); acc_cfg.idUri = "sip:phone@127.0.0.1"
rtp = acc_cfg.mediaConfig.transportConfig
rtp.port, rtp.portRange = rtp_port, 10
acc_cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
acc_cfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
acc = Account(); acc.create(acc_cfg)
if mode == "answer":
    open(arg, "w").write(str(ep.transportGetInfo(tid).localName.split(":")[1]))
else:
    call = Call(acc); calls.append(call); call.makeCall(arg, pj.CallOpParam(True))
deadline, hang_at = time.time() + 30, None
confirmed = pj.PJSIP_INV_STATE_CONFIRMED
while time.time() < deadline and not (confirmed in seen and not any(c.isActive() for c in calls)):
    ep.libHandleEvents(10)
    if mode == "call" and confirmed in seen and hang_at is None:
        hang_at = time.time() + 4
    if hang_at and time.time() > hang_at:
        calls[0].hangup(pj.CallOpParam(True)); hang_at = float("inf")
ended = confirmed in seen and not any(c.isActive() for c in calls)
calls.clear()
ep.libDestroy()
print("call ended" if ended else "call still up")
"""

# Short calls, SIP only. "reuse": holds two calls, then hangs up the first and dials a third in the same
# turn: the gateway sees the BYE and the new INVITE in one poll, and the new call takes the slot the closed
# one just left. "burst N": N calls, at most 4 at once and 40 started a second, each hung up once answered.
SHORT_CALLS = r"""
import collections, sys, time, pjsua2 as pj
ep = pj.Endpoint(); ep.libCreate()
cfg = pj.EpConfig(); cfg.uaConfig.threadCnt = 0; cfg.uaConfig.mainThreadOnly = True
cfg.logConfig.level = 1; cfg.logConfig.consoleLevel = 1
ep.libInit(cfg)
tc = pj.TransportConfig(); tc.port = 0; tc.boundAddress = "127.0.0.1"
ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc); ep.libStart(); ep.audDevManager().setNullDev()
acc_cfg = pj.AccountConfig(); acc_cfg.idUri = "sip:+819012340000@127.0.0.1"
acc_cfg.mediaConfig.useLoopMedTp = True  # no RTP sockets
acc = pj.Account(); acc.create(acc_cfg)
CONFIRMED, DISCONNECTED = pj.PJSIP_INV_STATE_CONFIRMED, pj.PJSIP_INV_STATE_DISCONNECTED
class Call(pj.Call):
    state, status, hung_up = 0, 0, False
    def onCallState(self, prm):
        info = self.getInfo(); self.state, self.status = info.state, info.lastStatusCode
def dial():
    call = Call(acc); call.makeCall(sys.argv[1], pj.CallOpParam(True)); calls.append(call); return call
def poll_until(done, seconds=10):
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        ep.libHandleEvents(5)
        for call in calls:
            if sys.argv[2] == "burst" and call.state == CONFIRMED and not call.hung_up:
                call.hung_up = True; call.hangup(pj.CallOpParam(True))
        if sys.argv[2] == "burst" and len(calls) < total and len(calls) < (time.time() - began) * 40:
            if sum(c.state != DISCONNECTED for c in calls) < 4:
                try:
                    dial()
                except pj.Error:
                    pass  # a slot is still being released: next turn
calls = []
if sys.argv[2] == "reuse":
    dial(); dial()
    poll_until(lambda: all(c.state in (CONFIRMED, DISCONNECTED) for c in calls))
    calls[0].hangup(pj.CallOpParam(True))
    third = dial()
    poll_until(lambda: third.state in (CONFIRMED, DISCONNECTED))
    print("third call:", third.status, flush=True)
    del third
else:
    total, began = int(sys.argv[3]), time.time()
    poll_until(lambda: len(calls) == total and all(c.state == DISCONNECTED for c in calls), 60)
    print("answered:", collections.Counter(c.status for c in calls).most_common(), flush=True)
for call in calls:
    if call.isActive():
        call.hangup(pj.CallOpParam(True))
poll_until(lambda: all(c.state == DISCONNECTED for c in calls))
del call
calls.clear()
ep.libDestroy()
"""


def mulaw_tone(path: Path, seconds: float) -> Path:
    """An 8 kHz G.711 μ-law WAV of a 440 Hz tone (guidance-tts's telephony format)."""
    samples = [int(12000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(int(8000 * seconds))]
    data = bytes(_ulaw(sample) for sample in samples)
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"fact" + struct.pack("<II", 4, len(data)) + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def _ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def next_event(events: queue.Queue[SipEvent], kind: type, within: float = 10.0) -> SipEvent:
    deadline = time.monotonic() + within
    seen = []
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(event, kind):
            return event
        seen.append(event)
    raise AssertionError(f"no {kind.__name__} within {within}s; saw {seen}")


def started_engine(events: queue.Queue[SipEvent], **config: Any) -> tuple[SipEngine, int]:
    """A started engine on UDP only, with free SIP and RTP ports; returns it and its SIP port."""
    port = free_port()
    engine = SipEngine(
        SipConfig(port=port, tcp=False, rtp_port=free_port(), rtp_port_range=20, **config), events.put
    )
    engine.start()
    return engine, port


def test_the_engine_answers_hears_keys_both_ways_plays_to_the_end_and_hangs_up(tmp_path: Path) -> None:
    events: queue.Queue[SipEvent] = queue.Queue()
    engine, port = started_engine(events, max_calls=4)
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    caller = subprocess.Popen(
        [sys.executable, str(script), f"sip:+81312345678@127.0.0.1:{port}", "5", "#", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        invite = next_event(events, Incoming)
        assert isinstance(invite, Incoming)
        assert "+81312345678" in invite.request_uri and "+819012340000" in invite.from_
        engine.answer(invite.line)
        next_event(events, Confirmed)

        assert next_event(events, Key) == Key(invite.line, "5")  # SIP INFO
        assert next_event(events, Key) == Key(invite.line, "#")  # RFC 4733

        started = time.monotonic()
        engine.play(
            invite.line, 1, [mulaw_tone(tmp_path / "a.wav", 0.6), mulaw_tone(tmp_path / "b.wav", 0.6)]
        )
        assert next_event(events, PlaybackEnded) == PlaybackEnded(invite.line, 1)
        assert 1.0 <= time.monotonic() - started <= 2.5  # both prompts, one after the other

        engine.hang_up(invite.line)
        closed = next_event(events, Closed)
        assert isinstance(closed, Closed) and closed.line == invite.line
        output = caller.communicate(timeout=20)[0].decode()
        assert "hung up" in output, output
    finally:
        caller.kill()
        engine.stop()


def test_a_port_in_use_stops_the_start_with_a_clear_error() -> None:
    # In a process of its own: after a failed start PJSIP cannot be started again in the same process (the
    # service exits instead).
    check = (
        "import socket\n"
        "from hibiki_media_gateway.adapters.sip_engine import SipConfig, SipEngine\n"
        "held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); held.bind(('127.0.0.1', 0))\n"
        "engine = SipEngine(SipConfig(port=held.getsockname()[1], tcp=False), lambda _event: None)\n"
        "try:\n"
        "    engine.start()\n"
        "except RuntimeError as error:\n"
        "    print('refused:', error)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert "refused: PJSIP could not start" in done.stdout, done.stdout + done.stderr
    assert "Address already in use" in done.stdout, done.stdout


def test_a_bridged_transfer_keeps_both_sides_connected_until_one_hangs_up(tmp_path: Path) -> None:
    events: queue.Queue[SipEvent] = queue.Queue()
    engine, port = started_engine(events, transfer_mode="bridge")
    script, port_file = tmp_path / "phone.py", tmp_path / "operator.port"
    script.write_text(PHONE)
    operator = subprocess.Popen(
        [sys.executable, str(script), "answer", str(port_file), str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    caller = None
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline, "the operator phone did not start"
            time.sleep(0.1)
        caller = subprocess.Popen(
            [
                sys.executable,
                str(script),
                "call",
                f"sip:+81312345678@127.0.0.1:{port}",
                str(free_port() + 20),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        invite = next_event(events, Incoming)
        assert isinstance(invite, Incoming)
        engine.answer(invite.line)
        next_event(events, Confirmed)
        engine.transfer(invite.line, f"sip:+81312340000@127.0.0.1:{port_file.read_text()}")
        done = next_event(events, TransferDone)
        assert isinstance(done, TransferDone) and done.succeeded, done
        engine.hang_up(invite.line)  # what the call's session asks once transferred: the bridge stays
        time.sleep(1.0)
        assert events.empty() or not any(isinstance(e, Closed) for e in list(events.queue))

        closed = next_event(events, Closed, within=15)  # the caller hangs up 4 s after it was answered
        assert isinstance(closed, Closed) and closed.line == invite.line
        try:
            said = operator.communicate(timeout=20)[0].decode()
        except subprocess.TimeoutExpired:
            operator.kill()
            said = "(still running) " + operator.communicate()[0].decode()
        assert "call ended" in said, said  # the operator's side ended too
    finally:
        for process in (operator, caller):
            if process is not None:
                process.kill()
        engine.stop()


def short_calls(
    tmp_path: Path, engine: SipEngine, port: int, events: queue.Queue[SipEvent], *args: str
) -> str:
    """Run the SHORT_CALLS caller against the engine, answering every call; its output, once every line the
    engine opened was reported closed."""
    script = tmp_path / "short_calls.py"
    script.write_text(SHORT_CALLS)
    caller = subprocess.Popen(
        [sys.executable, str(script), f"sip:+81312345678@127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        lines: set[int] = set()
        deadline = time.monotonic() + 90
        while caller.poll() is None or not events.empty():
            assert time.monotonic() < deadline, "the caller did not finish"
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(event, Incoming):
                lines.add(event.line)
                engine.answer(event.line)
            elif isinstance(event, Closed):
                lines.discard(event.line)
        assert not lines, f"lines never reported closed: {lines}"
        return caller.communicate(timeout=10)[0].decode()
    finally:
        caller.kill()
        engine.stop()


def test_a_call_that_takes_the_slot_of_one_just_closed_is_answered_and_reported_closed(
    tmp_path: Path,
) -> None:
    # pjsua2's ~Call hangs up whatever call holds its id: a closed call's object dropped after a new INVITE
    # took its slot used to refuse that call with 603 and detach it (never Closed: the call stayed "active").
    events: queue.Queue[SipEvent] = queue.Queue()
    engine, port = started_engine(events, max_calls=2)
    output = short_calls(tmp_path, engine, port, events, "reuse")
    assert "third call: 200" in output, output


def test_calls_hung_up_before_any_prompt_do_not_fill_the_bridge(tmp_path: Path) -> None:
    # With the null sound device closed when idle, the bridge kept the ports of such calls: after ~250 of
    # them every call was refused with 488.
    events: queue.Queue[SipEvent] = queue.Queue()
    engine, port = started_engine(events, max_calls=4)
    output = short_calls(tmp_path, engine, port, events, "burst", "300")
    assert "answered: [(200, 300)]" in output, output
