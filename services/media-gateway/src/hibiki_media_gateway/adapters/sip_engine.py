"""SIP and RTP through PJSIP (pjsua2): answers INVITEs, plays WAV files, hears DTMF, transfers, hangs up.

PJSIP runs in one thread of its own that owns every pjsua2 object: it polls the library
(`libHandleEvents`, which releases the GIL while it waits) and carries out the commands the service queues
(answer, play, stop, transfer, hang up). What happens on the lines — a new INVITE, the call confirmed, a key,
the end of a playback, the result of a transfer, the call closed — is handed to `deliver` as `SipEvent`s,
from that thread (the service moves them onto its event loop). Media flows through PJSIP's conference
bridge at 8 kHz; the null sound device clocks it. No SIP or RTP is written here: only PJSIP's API is used.

pjsua2 rules kept here: a Call object is referenced until its DISCONNECTED state (a collected live call
aborts the process), and released *in* that state's callback, the way pjsua2 documents it: once the
callback returns PJSIP frees the call's slot, and the next INVITE — possibly in the same poll — takes it;
pjsua2's `~Call` hangs up and detaches whatever call then holds its id, so a Call object dropped later
would refuse a new call with 603 or cut it off unseen. No player is destroyed inside one of its own
callbacks (players are retired and dropped on the next turn of the loop); a player's end-of-file callback
comes from the media clock's thread and is queued like a command; calls are released before the library is
destroyed.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pjsua2 as pj

log = logging.getLogger("hibiki.media.sip")

# Calls one PJSIP process holds: the pjsua2-python wheel is built with PJSIP's default PJSUA_MAX_CALLS, and
# PJSIP lowers a larger `maxCalls` to it without a word (measured: a fifth INVITE gets 486 from PJSIP itself).
PJSUA_MAX_CALLS = 4
_POLL_MS = 5  # how long one poll may wait for SIP/RTP activity: a queued command waits at most this long


@dataclass(frozen=True)
class SipConfig:
    host: str = "127.0.0.1"  # address SIP listens on
    port: int = 5060
    udp: bool = True
    tcp: bool = True
    # Address in SDP and Contact; defaults to `host` (set it behind NAT or a load balancer).
    public_address: str = ""
    rtp_port: int = 40000  # first RTP port; each call takes two (RTP and RTCP)
    rtp_port_range: int = 2000  # how many ports from rtp_port may be used
    max_calls: int = PJSUA_MAX_CALLS
    user_agent: str = "hibiki-media-gateway"
    # "refer": a blind transfer by REFER (the caller's side calls the destination; the gateway leaves).
    # "bridge": the gateway calls the destination itself and bridges the two calls (for trunks that refuse
    # REFER); the gateway stays in the media path until either side hangs up.
    transfer_mode: str = "refer"
    pjsip_log_level: int = 1  # 0 none … 5 everything (sent to the "hibiki.media.pjsip" logger)


# -- what happens on the lines ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Incoming:
    """A new INVITE waiting for answer() or reject()."""

    line: int
    request_uri: str
    to: str
    from_: str
    asserted: str  # P-Asserted-Identity, "" when absent
    privacy: str  # Privacy header value, "" when absent
    sip_call_id: str
    source: str  # address the INVITE came from


@dataclass(frozen=True)
class Confirmed:
    line: int


@dataclass(frozen=True)
class Key:
    line: int
    key: str


@dataclass(frozen=True)
class PlaybackEnded:
    line: int
    playback: int


@dataclass(frozen=True)
class TransferDone:
    line: int
    succeeded: bool
    status: int


@dataclass(frozen=True)
class Closed:
    line: int
    status: int
    reason: str


SipEvent = Incoming | Confirmed | Key | PlaybackEnded | TransferDone | Closed


class SipEngine:
    """One PJSIP endpoint; every method may be called from any thread (commands are queued)."""

    def __init__(self, config: SipConfig, deliver: Callable[[SipEvent], None]) -> None:
        self.config = config
        self._deliver = deliver
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        # Only touched in the PJSIP thread:
        self._endpoint: pj.Endpoint | None = None
        self._account: _Account | None = None
        self._lines: dict[int, _Line] = {}
        self._retired: list[_Player] = []
        self._ending: set[_Call] = set()  # bridged calls hung up with their caller, until they are closed
        self._numbers = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Start PJSIP and listen; raises when it cannot (e.g. the SIP port is taken)."""
        self._thread = threading.Thread(target=self._run, name="pjsip", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("PJSIP did not start in time")
        if self._failure is not None:
            failure = self._failure
            detail = failure.info() if isinstance(failure, pj.Error) else str(failure)
            config = self.config
            raise RuntimeError(
                f"PJSIP could not start on {config.host} port {config.port}: {detail}"
            ) from failure

    def stop(self, timeout: float = 10.0) -> None:
        """Hang up every call and shut PJSIP down."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- commands ----------------------------------------------------------------------------------------
    def answer(self, line: int) -> None:
        self._queue(lambda: self._answer(line, 200))

    def ring(self, line: int) -> None:
        self._queue(lambda: self._answer(line, 180))

    def reject(self, line: int, status: int) -> None:
        self._queue(lambda: self._hang_up(line, status))

    def play(self, line: int, playback: int, files: Sequence[Path]) -> None:
        """Play the files one after the other to the caller; PlaybackEnded(playback) at the end."""
        paths = [str(path) for path in files]
        self._queue(lambda: self._play(line, playback, paths))

    def stop_playback(self, line: int) -> None:
        self._queue(lambda: self._stop_playback(line))

    def transfer(self, line: int, destination: str) -> None:
        """Transfer (by REFER, or a bridged second call: `SipConfig.transfer_mode`); TransferDone when it is
        known whether the destination took the call."""
        self._queue(lambda: self._transfer(line, destination))

    def hang_up(self, line: int) -> None:
        self._queue(lambda: self._hang_up(line, 200))

    def _queue(self, command: Callable[[], None]) -> None:
        self._commands.put(command)

    # -- the PJSIP thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._open()
        except BaseException as error:  # reported by start()
            self._failure = error
            self._ready.set()
            self._close()
            return
        self._ready.set()
        endpoint = self._endpoint
        assert endpoint is not None
        while not self._stopping.is_set():
            self._run_commands()
            endpoint.libHandleEvents(_POLL_MS)
            self._retired.clear()
        for line in list(self._lines):
            self._hang_up(line, 503, bridged_too=True)
        for _ in range(40):  # let the BYEs go out
            endpoint.libHandleEvents(10)
        self._close()

    def _open(self) -> None:
        config = self.config
        endpoint = pj.Endpoint()
        endpoint.libCreate()
        self._endpoint = endpoint
        settings = pj.EpConfig()
        settings.uaConfig.threadCnt = 0  # this thread polls
        settings.uaConfig.mainThreadOnly = True  # callbacks run in this thread too
        settings.uaConfig.maxCalls = config.max_calls
        settings.uaConfig.userAgent = config.user_agent
        settings.logConfig.level = config.pjsip_log_level
        settings.logConfig.consoleLevel = config.pjsip_log_level
        # pjsua2 deletes its log writer in libDestroy: the writer is handed over (disowned), never deleted
        # by Python as well.
        settings.logConfig.writer = _LogWriter().__disown__()
        settings.logConfig.decor = 0
        media = settings.medConfig
        media.clockRate = 8000  # guidance audio is 8 kHz: no resampling
        media.sndClockRate = 8000
        media.channelCount = 1
        media.ecTailLen = 0  # an IVR plays, it does not converse: no echo canceller
        media.noVad = True
        media.maxMediaPorts = max(254, config.max_calls * 3)
        # The null sound device is the bridge's clock, and the bridge releases the ports of ended calls on its
        # clock's ticks: closed when idle (PJSIP's default, after 1 s with nothing connected), it would keep
        # every call that ended meanwhile — calls hung up before any prompt played — until the port table is
        # full and every new call is refused with 488. Kept running (it costs one tick every 20 ms).
        media.sndAutoCloseTime = -1
        endpoint.libInit(settings)
        for enabled, kind in ((config.udp, pj.PJSIP_TRANSPORT_UDP), (config.tcp, pj.PJSIP_TRANSPORT_TCP)):
            if enabled:
                transport = pj.TransportConfig()
                transport.port = config.port
                transport.boundAddress = config.host
                if config.public_address:
                    transport.publicAddress = config.public_address
                endpoint.transportCreate(kind, transport)
        endpoint.libStart()
        endpoint.audDevManager().setNullDev()
        account = pj.AccountConfig()
        account.idUri = f"sip:ivr@{config.public_address or config.host}:{config.port}"
        rtp = account.mediaConfig.transportConfig
        rtp.port = config.rtp_port
        rtp.portRange = config.rtp_port_range
        rtp.boundAddress = config.host
        rtp.publicAddress = config.public_address or config.host
        self._account = _Account(self)
        self._account.create(account)
        log.info(
            "SIP listening on %s port %d (%s), RTP from port %d (%d ports)",
            config.host,
            config.port,
            "+".join(n for n, on in (("udp", config.udp), ("tcp", config.tcp)) if on),
            config.rtp_port,
            config.rtp_port_range,
        )

    def _close(self) -> None:
        while True:  # queued commands may hold calls and players: drop them while the library lives
            try:
                self._commands.get_nowait()
            except queue.Empty:
                break
        self._lines.clear()
        self._ending.clear()
        self._retired.clear()
        gc.collect()  # a Call destroyed after libDestroy aborts the process
        account, self._account = self._account, None
        if account is not None:
            with contextlib.suppress(Exception):
                account.shutdown()
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            with contextlib.suppress(Exception):
                endpoint.libDestroy()

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except pj.Error as error:
                log.warning("PJSIP refused a command: %s", error.info())
            except Exception:
                log.exception("a SIP command failed")

    # -- carrying out commands (PJSIP thread) -------------------------------------------------------------
    def _answer(self, line: int, status: int) -> None:
        found = self._lines.get(line)
        if found is None:
            return
        param = pj.CallOpParam()
        param.statusCode = status
        found.call.answer(param)

    def _hang_up(self, line: int, status: int, *, bridged_too: bool = False) -> None:
        found = self._lines.get(line)
        if found is None or (found.leg is not None and found.leg_up and not bridged_too):
            return  # a bridged call belongs to its two parties now: it ends when one of them hangs up
        self._stop_playback(line)
        param = pj.CallOpParam()
        param.statusCode = status
        try:
            found.call.hangup(param)
        except pj.Error as error:
            log.debug("hang-up of line %d: %s", line, error.info())

    def _play(self, line: int, playback: int, paths: list[str]) -> None:
        """Play the files one after the other (one player each: PJSIP's playlist takes PCM only, the
        prompts may be G.711 μ-law); the next starts from the end-of-file callback of the one before."""
        found = self._lines.get(line)
        if found is None:
            return
        self._stop_playback(line)
        found.queued = list(paths)
        self._play_next(line, playback)

    def _play_next(self, line: int, playback: int) -> None:
        found = self._lines.get(line)
        if found is None:
            return
        while found.queued:
            path = found.queued.pop(0)
            player = _Player(self, line, playback)
            try:
                player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
            except pj.Error as error:
                log.warning("cannot play %s on line %d: %s", path, line, error.info())
                continue
            found.player = player
            if found.audio is not None:
                player.startTransmit(found.audio)
            # else: the media is not up yet; onCallMediaState connects the player
            return
        self._deliver(PlaybackEnded(line, playback))

    def _stop_playback(self, line: int) -> None:
        found = self._lines.get(line)
        if found is None:
            return
        found.queued = []
        if found.player is None:
            return
        player, found.player = found.player, None
        if found.audio is not None:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(found.audio)
        self._retired.append(player)

    def _transfer(self, line: int, destination: str) -> None:
        found = self._lines.get(line)
        if found is None:
            return
        self._stop_playback(line)
        try:
            if self.config.transfer_mode == "bridge":
                assert self._account is not None
                leg = _Call(self, self._account)
                leg.line, leg.is_leg = line, True
                found.leg = leg
                leg.makeCall(destination, pj.CallOpParam(True))
            else:
                found.call.xfer(destination, pj.CallOpParam(True))
        except pj.Error as error:
            log.warning("transfer of line %d to %s refused: %s", line, destination, error.info())
            found.leg = None
            self._deliver(TransferDone(line, False, error.status))

    # -- callbacks (PJSIP thread) ------------------------------------------------------------------------
    def _incoming(self, account: _Account, param: pj.OnIncomingCallParam) -> None:
        call = _Call(self, account, param.callId)
        line = next(self._numbers)
        call.line = line
        self._lines[line] = _Line(call)
        message = param.rdata.wholeMsg
        info = call.getInfo()
        self._deliver(
            Incoming(
                line,
                request_uri=_request_uri(message),
                to=info.localUri,
                from_=info.remoteUri,
                asserted=_header(message, "P-Asserted-Identity"),
                privacy=_header(message, "Privacy"),
                sip_call_id=info.callIdString,
                source=param.rdata.srcAddress,
            )
        )

    def _call_state(self, call: _Call) -> None:
        info = call.getInfo()
        if call.is_leg:
            self._leg_state(call, info)
            return
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._deliver(Confirmed(call.line))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Forgotten here: the call object is released as this callback returns (see the module's notes).
            found = self._lines.pop(call.line, None)
            if found is not None:
                if found.player is not None:
                    self._retired.append(found.player)
                if found.leg is not None:  # the caller left a bridged call: end the other side
                    self._ending.add(found.leg)
                    try:
                        found.leg.hangup(pj.CallOpParam(True))
                    except pj.Error as error:
                        log.warning(
                            "the bridged call of line %d did not hang up: %s", call.line, error.info()
                        )
            self._deliver(Closed(call.line, info.lastStatusCode, info.lastReason))

    def _leg_state(self, leg: _Call, info: pj.CallInfo) -> None:
        """The second call of a bridged transfer: bridge once it is answered, report how it went."""
        found = self._lines.get(leg.line)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            if found is not None and found.leg is leg:
                found.leg_up = True
                self._connect_bridge(found)
                self._deliver(TransferDone(leg.line, True, info.lastStatusCode))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._ending.discard(leg)  # released as this callback returns
            if found is None or found.leg is not leg:
                return
            found.leg = None
            if found.leg_up:  # the destination hung up: end the caller's side
                found.leg_up = False
                self._hang_up(leg.line, 200)
            else:
                self._deliver(TransferDone(leg.line, False, info.lastStatusCode))

    def _connect_bridge(self, found: _Line) -> None:
        if found.leg is None or found.audio is None or found.leg_audio is None:
            return  # the other side's media is not up yet: its media callback comes back here
        found.audio.startTransmit(found.leg_audio)
        found.leg_audio.startTransmit(found.audio)

    def _media_state(self, call: _Call) -> None:
        found = self._lines.get(call.line)
        if found is None:
            return
        try:
            audio = call.getAudioMedia(-1)
        except pj.Error:
            return  # no active audio (yet)
        if call.is_leg:
            found.leg_audio = audio
            if found.leg_up:
                self._connect_bridge(found)
            return
        found.audio = audio
        if found.player is not None:
            found.player.startTransmit(audio)

    def _key(self, call: _Call, key: str) -> None:
        if not call.is_leg and call.line in self._lines:
            self._deliver(Key(call.line, key))

    def _transfer_status(self, call: _Call, param: pj.OnCallTransferStatusParam) -> None:
        if param.finalNotify or param.statusCode >= 300:
            param.cont = False
            self._deliver(TransferDone(call.line, 200 <= param.statusCode < 300, param.statusCode))

    def _playback_ended(self, player: _Player) -> None:
        found = self._lines.get(player.line)
        if found is None or found.player is not player:
            return  # stopped meanwhile
        found.player = None
        if found.audio is not None:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(found.audio)
        self._retired.append(player)
        self._play_next(player.line, player.playback)


@dataclass
class _Line:
    call: _Call
    audio: pj.AudioMedia | None = None
    player: _Player | None = None
    queued: list[str] = field(default_factory=list)  # files still to play after the player's
    leg: _Call | None = None  # the second call of a bridged transfer
    leg_up: bool = False  # … answered, and bridged
    leg_audio: pj.AudioMedia | None = None


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, engine: SipEngine) -> None:
        super().__init__()
        self._engine = engine

    def onIncomingCall(self, param: pj.OnIncomingCallParam) -> None:
        self._engine._incoming(self, param)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, engine: SipEngine, account: _Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self._engine = engine
        self.line = 0
        self.is_leg = False  # the gateway's own call to a transfer destination

    def onCallState(self, param: pj.OnCallStateParam) -> None:
        self._engine._call_state(self)

    def onCallMediaState(self, param: pj.OnCallMediaStateParam) -> None:
        self._engine._media_state(self)

    def onDtmfDigit(self, param: pj.OnDtmfDigitParam) -> None:
        self._engine._key(self, param.digit)

    def onCallTransferStatus(self, param: pj.OnCallTransferStatusParam) -> None:
        self._engine._transfer_status(self, param)


class _Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, engine: SipEngine, line: int, playback: int) -> None:
        super().__init__()
        self._engine = engine
        self.line = line
        self.playback = playback

    def onEof2(self) -> None:
        self._engine._playback_ended(self)


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    _log = logging.getLogger("hibiki.media.pjsip")

    def write(self, entry: pj.LogEntry) -> None:
        level = logging.WARNING if entry.level <= 2 else logging.DEBUG
        self._log.log(level, "%s", entry.msg.rstrip())


def _request_uri(message: str) -> str:
    """The Request-URI of a request's start line ("INVITE sip:… SIP/2.0")."""
    first = message.split("\r\n", 1)[0].split("\n", 1)[0]
    parts = first.split(" ")
    return parts[1] if len(parts) == 3 else ""


def _header(message: str, name: str) -> str:
    """The value of the first header `name` (case-insensitive) of a SIP message, "" when absent."""
    head = message.split("\r\n\r\n", 1)[0]
    wanted = name.lower()
    for line in head.splitlines()[1:]:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == wanted:
            return value.strip()
    return ""
