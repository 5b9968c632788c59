"""The baresip phone driver against a minimal PJSIP (pjsua2) answerer that runs in this process.

The answerer answers every INVITE (but rejects calls to `busy` with 486), plays a 2.0 s 440 Hz tone to the
caller and records the DTMF digits and headers it receives, so that the phone's dialling, keys, hang-up and
recording are checked end to end without any Hibiki service.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pjsua2 as pj
import pytest
from hibiki_devstack.sip_phone import (
    ANONYMOUS_URI,
    SipPhone,
    SipPhoneError,
    audio_duration,
    read_wav,
    sounding,
    sounding_seconds,
    write_silence_wav,
    write_tone_wav,
    write_wav,
)

TONE_SECONDS = 2.0
CALLED = "+81312345678"


@dataclass
class AnsweredCall:
    """What the answerer saw of one call (written by its PJSIP thread, read by the test)."""

    invite: str  # the whole INVITE as received
    remote_uri: str  # the From of the call
    states: list[str] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)  # onDtmfDigit
    dtmf_methods: list[int] = field(default_factory=list)  # PJSUA_DTMF_METHOD_RFC2833 for RTP events
    dtmf_events: list[tuple[str, int, int]] = field(default_factory=list)  # onDtmfEvent: digit, flags, ms
    tone_ended_at: float | None = None  # onEof2 of the tone player (monotonic)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def header(self, name: str) -> str | None:
        head = self.invite.split("\r\n\r\n", 1)[0]
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


class _TonePlayer(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, record: AnsweredCall) -> None:
        super().__init__()
        self.record = record

    def onEof2(self) -> None:
        # Called on a PJMEDIA thread (even with mainThreadOnly): only note the time. The player must not be
        # destroyed here; with PJMEDIA_FILE_NO_LOOP it goes on giving silence until it is.
        self.record.tone_ended_at = time.monotonic()


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, answerer: Answerer, account: pj.Account, call_id: int, record: AnsweredCall) -> None:
        super().__init__(account, call_id)
        self.answerer = answerer
        self.record = record
        self.player: _TonePlayer | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.record.states.append(info.stateText)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.answerer.finished(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if self.player is None:
                self.player = _TonePlayer(self.record)
                self.player.createPlayer(str(self.answerer.audio), pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(self.getAudioMedia(index))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.record.digits.append(prm.digit)
        self.record.dtmf_methods.append(prm.method)

    def onDtmfEvent(self, prm: pj.OnDtmfEventParam) -> None:
        self.record.dtmf_events.append((prm.digit, prm.flags, prm.duration))


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, answerer: Answerer) -> None:
        super().__init__()
        self.answerer = answerer

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        record = AnsweredCall(invite=prm.rdata.wholeMsg, remote_uri="")
        call = _Call(self.answerer, self, prm.callId, record)
        record.remote_uri = call.getInfo().remoteUri
        self.answerer.started(call)
        answer = pj.CallOpParam()
        answer.statusCode = 486 if record.invite.startswith("INVITE sip:busy@") else 200
        call.answer(answer)


class Answerer:
    """A PJSIP user agent on its own thread: UDP on a free loopback port, null audio device, no worker
    threads (`threadCnt=0`, `mainThreadOnly`), polled with `libHandleEvents(10)`."""

    def __init__(self, audio: Path, log_file: Path) -> None:
        self.audio = audio
        self.log_file = log_file
        self.port = _free_udp_port()
        self.calls: list[AnsweredCall] = []
        self._live: list[_Call] = []  # a Call object collected before DISCONNECTED aborts the process
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pjsip-answerer", daemon=True)

    def uri(self, user: str = CALLED) -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(20) or self._error is not None:
            raise RuntimeError(f"the PJSIP answerer did not start: {self._error!r}")

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(30)

    def started(self, call: _Call) -> None:
        self._live.append(call)
        self.calls.append(call.record)

    def finished(self, call: _Call) -> None:
        # The call's port leaves the conference bridge by itself; the Call and its player are released by
        # the polling loop, not inside this callback.
        call.record.disconnected.set()

    def _run(self) -> None:
        endpoint = pj.Endpoint()
        try:
            endpoint.libCreate()
            config = pj.EpConfig()
            config.uaConfig.threadCnt = 0
            config.uaConfig.mainThreadOnly = True
            config.logConfig.level = 5
            config.logConfig.consoleLevel = 0
            config.logConfig.filename = str(self.log_file)
            config.medConfig.noVad = True  # send silence too, so the caller's recording keeps wall-clock time
            endpoint.libInit(config)
            transport = pj.TransportConfig()
            transport.port = self.port
            transport.boundAddress = "127.0.0.1"
            endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
            endpoint.libStart()
            endpoint.audDevManager().setNullDev()
            account_config = pj.AccountConfig()
            account_config.idUri = f"sip:answerer@127.0.0.1:{self.port}"
            # Without these the SDP offers the host's first non-loopback address for RTP.
            account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
            account_config.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
            account = _Account(self)
            account.create(account_config, True)
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stopping.is_set():
                endpoint.libHandleEvents(10)
                self._release_finished_calls()
            endpoint.hangupAllCalls()
            deadline = time.monotonic() + 2
            while self._live and time.monotonic() < deadline:
                endpoint.libHandleEvents(10)
                self._release_finished_calls()
        finally:
            # Every pjsua2 object goes before the library: a Call destroyed after libDestroy() aborts.
            self._live.clear()
            account.shutdown()
            del account
            endpoint.libDestroy()

    def _release_finished_calls(self) -> None:
        # Outside the callbacks: a Call (and its player) is released only once it is DISCONNECTED.
        self._live = [call for call in self._live if not call.record.disconnected.is_set()]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait(event: threading.Event, seconds: float, what: str) -> None:
    if not await asyncio.to_thread(event.wait, seconds):
        raise AssertionError(f"the answerer did not see {what} within {seconds:.0f}s")


async def _until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"the answerer did not see {what} within {seconds:.0f}s")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-phone")


@pytest.fixture(scope="module")
def answerer(work_dir: Path) -> Iterator[Answerer]:
    tone = write_tone_wav(work_dir / "tone.wav", TONE_SECONDS, 440.0)
    running = Answerer(tone, work_dir / "answerer.log")
    running.start()
    yield running
    running.stop()


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_call_hears_the_tone_and_sends_keys(answerer: Answerer, work_dir: Path) -> None:
    async with SipPhone(work_dir / "numbered", caller="+819012345678") as phone:
        await phone.dial(answerer.uri())
        await phone.established(timeout=15)
        call = answerer.calls[-1]
        assert "+819012345678" in call.remote_uri

        await asyncio.sleep(0.5)
        await phone.press("1#")
        await _until(lambda: len(call.digits) >= 2, 10, 'the keys "1" and "#"')
        assert call.digits == ["1", "#"], call.dtmf_events
        assert call.dtmf_methods == [pj.PJSUA_DTMF_METHOD_RFC2833] * 2  # RTP telephone-events, not SIP INFO
        await _until(lambda: call.tone_ended_at is not None, 10, "the end of the tone")
        await asyncio.sleep(0.5)

        await phone.hangup(timeout=10)
        await _wait(call.disconnected, 10, "DISCONNECTED")
        assert call.states[-1] == "DISCONNECTED"

        recording = phone.recording()
        heard = sounding(recording, threshold=0.02)
        total = sounding_seconds(recording, threshold=0.02)
        assert abs(total - TONE_SECONDS) <= 0.1 * TONE_SECONDS, (heard, audio_duration(recording))
        assert len(heard) == 1, heard


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_withheld_caller_is_anonymous(answerer: Answerer, work_dir: Path) -> None:
    async with SipPhone(work_dir / "withheld", caller=None) as phone:
        await phone.dial(answerer.uri())
        await phone.established(timeout=15)
        call = answerer.calls[-1]
        assert ANONYMOUS_URI in call.remote_uri
        assert "Anonymous" in call.remote_uri
        assert ANONYMOUS_URI in (call.header("From") or "")
        assert call.header("Privacy") is None  # baresip 1.0.0 cannot add one (see hibiki_devstack.sip_phone)
        await phone.hangup(timeout=10)
        await _wait(call.disconnected, 10, "DISCONNECTED")


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_rejected_and_unanswered_calls_fail_clearly(answerer: Answerer, work_dir: Path) -> None:
    async with SipPhone(work_dir / "failing") as phone:
        await phone.dial(answerer.uri("busy"))
        with pytest.raises(SipPhoneError, match="closed before it was answered: '486 Busy Here'"):
            await phone.established(timeout=10)

        await phone.dial(f"sip:{CALLED}@127.0.0.1:{_free_udp_port()}")  # nobody there
        with pytest.raises(SipPhoneError, match=r"waited 2\.0s for the call to be established"):
            await phone.established(timeout=2)
        with pytest.raises(SipPhoneError, match="no recording of the last call"):
            phone.recording()


async def test_missing_baresip_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SipPhoneError, match=r"scripts/install-sip-phone\.sh"):
        async with SipPhone(tmp_path / "phone"):
            pass


def test_sounding_finds_the_tones_between_silences(tmp_path: Path) -> None:
    tone = read_wav(write_tone_wav(tmp_path / "tone.wav", 0.5, 440.0))[1]
    quiet = read_wav(write_tone_wav(tmp_path / "quiet.wav", 0.3, 440.0, level=0.005))[1]
    silence = read_wav(write_silence_wav(tmp_path / "silence.wav", 1.0))[1]
    wav = write_wav(tmp_path / "mixed.wav", silence + tone + quiet + silence[:4000] + tone + silence)

    assert audio_duration(wav) == pytest.approx(3.8)
    assert sounding(wav, threshold=0.02) == [(1.0, 1.5), (2.3, 2.8)]
    assert sounding_seconds(wav, threshold=0.02) == pytest.approx(1.0)
    assert sounding(wav, threshold=0.001) == [(1.0, 1.8), (2.3, 2.8)]
