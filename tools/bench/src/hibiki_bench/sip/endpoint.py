"""A PJSIP endpoint for the bench's SIP processes (pjsua2, one per process), set up as a telephone line.

UDP on loopback; G.711 μ-law only (what a trunk offers; RFC 4733 telephone-events come with it) at 8 kHz with
20 ms packets; the null sound device clocks the conference bridge. With `threadCnt = 0` and
`mainThreadOnly`, SIP callbacks run in the thread that calls `poll`; media callbacks (a port's frames, a
player's end) come from the media clock's thread; RTP is received in PJSIP's media worker thread.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass

import pjsua2 as pj

# Calls one process can hold: the pjsua2-python wheel is built with PJSIP's default PJSUA_MAX_CALLS (4), and
# PJSIP lowers any larger `maxCalls` to it without a word.
MAX_CALLS = 4


class SipUnavailable(RuntimeError):
    """PJSIP could not start (the port is taken, the library refused its settings)."""


@dataclass(frozen=True)
class Line:
    sip_port: int
    rtp_port: int  # first RTP port; each call takes two (RTP, RTCP)
    rtp_range: int
    name: str = "bench"


class Endpoint:
    """Library, UDP transport and the settings of a local account; `close()` releases them."""

    def __init__(self, line: Line, log_level: int = 1) -> None:
        self.line = line
        self.library = pj.Endpoint()
        self.library.libCreate()
        try:
            settings = pj.EpConfig()
            settings.uaConfig.threadCnt = 0
            settings.uaConfig.mainThreadOnly = True
            settings.uaConfig.maxCalls = MAX_CALLS
            settings.uaConfig.userAgent = f"hibiki-bench-{line.name}"
            settings.logConfig.level = log_level
            settings.logConfig.consoleLevel = log_level
            media = settings.medConfig
            media.clockRate = 8000
            media.sndClockRate = 8000
            media.channelCount = 1
            media.ecTailLen = 0
            media.noVad = True
            media.maxMediaPorts = 254
            # Keep the null device (the bridge's clock) running while nothing is connected: with the default
            # (closed after 1 s idle) the bridge stops, ports of ended calls are not released, and after ~250
            # calls without audio every new call is refused with 488.
            media.sndAutoCloseTime = -1
            self.library.libInit(settings)
            for codec in self.library.codecEnum2():
                self.library.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else 0)
            transport = pj.TransportConfig()
            transport.port = line.sip_port
            transport.boundAddress = "127.0.0.1"
            self.library.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
            self.library.libStart()
            self.library.audDevManager().setNullDev()
        except pj.Error as error:
            self.close()
            raise SipUnavailable(
                f"PJSIP could not start on UDP port {line.sip_port}: {error.info()}"
            ) from error

    def account_config(self, *, loop_media: bool = False) -> pj.AccountConfig:
        """A local account; with `loop_media` calls get no RTP sockets (SIP only: a burst of short calls would
        otherwise exhaust PJSIP's socket table, whose entries are reused only 500 ms after a close)."""
        config = pj.AccountConfig()
        config.mediaConfig.useLoopMedTp = loop_media
        config.idUri = f"sip:{self.line.name}@127.0.0.1:{self.line.sip_port}"
        rtp = config.mediaConfig.transportConfig
        rtp.port = self.line.rtp_port
        rtp.portRange = self.line.rtp_range
        rtp.boundAddress = "127.0.0.1"
        rtp.publicAddress = "127.0.0.1"
        return config

    def poll(self, milliseconds: int) -> None:
        """Handle SIP and timer events for up to `milliseconds` (SIP callbacks run here)."""
        self.library.libHandleEvents(milliseconds)

    def null_sink(self) -> pj.AudioMedia:
        """The null sound device's playback port: audio sent there is pulled through the bridge (so that
        jitter buffers are read and levels computed) and dropped."""
        return self.library.audDevManager().getPlaybackDevMedia()

    def close(self) -> None:
        """Destroy the library; every call object must be gone by now (one collected later aborts)."""
        gc.collect()
        with contextlib.suppress(Exception):
            self.library.libDestroy()
