"""A bare SIP answerer, the baseline under media-gateway: `python -m hibiki_bench.sip.answerer ...`.

The same PJSIP library and settings as the gateway's engine (null sound device, 8 kHz bridge, G.711), and
nothing else: every INVITE is answered 200 at once, in the incoming-call callback — no database, no
broker, no Python between the INVITE and the answer but pjsua2's. With `--play FILE` each call hears that
file (looped) from the moment its media is up, as a gateway caller hears a prompt. Runs until SIGTERM;
writes `--ready FILE` once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

import pjsua2 as pj

from hibiki_bench.sip.endpoint import Endpoint, Line


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, answerer: Answerer, call_id: int) -> None:
        super().__init__(answerer.account, call_id)
        self.answerer = answerer
        self.player: pj.AudioMediaPlayer | None = None

    def onCallState(self, param: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.answerer.forget(self)

    def onCallMediaState(self, param: pj.OnCallMediaStateParam) -> None:
        if self.answerer.play is None or self.player is not None:
            return
        try:
            audio = self.getAudioMedia(-1)
        except pj.Error:
            return
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(self.answerer.play), 0)  # 0: loop
        player.startTransmit(audio)
        self.player = player


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, answerer: Answerer) -> None:
        super().__init__()
        self.answerer = answerer

    def onIncomingCall(self, param: pj.OnIncomingCallParam) -> None:
        call = _Call(self.answerer, param.callId)
        self.answerer.calls.add(call)
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)


class Answerer:
    def __init__(self, line: Line, play: Path | None) -> None:
        self.endpoint = Endpoint(line)
        self.play = play
        self.calls: set[_Call] = set()
        self._retired: list[pj.AudioMediaPlayer] = []
        self.account = _Account(self)
        self.account.create(self.endpoint.account_config())

    def forget(self, call: _Call) -> None:
        """Release a closed call as its DISCONNECTED callback returns, before PJSIP gives its slot to the next
        INVITE (pjsua2's ~Call hangs up whatever call holds its id); its player is dropped after the poll."""
        self.calls.discard(call)
        if call.player is not None:
            self._retired.append(call.player)
            call.player = None

    def serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.endpoint.poll(5)
            self._retired.clear()

    def close(self) -> None:
        for call in list(self.calls):
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam(True))
        for _ in range(50):
            if not self.calls:
                break
            self.endpoint.poll(10)
        self.calls.clear()
        self._retired.clear()
        self.account.shutdown()
        self.endpoint.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hibiki_bench.sip.answerer", description=__doc__)
    parser.add_argument("--sip-port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--rtp-range", type=int, default=200)
    parser.add_argument("--play", type=Path)
    parser.add_argument("--ready", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    answerer = Answerer(Line(args.sip_port, args.rtp_port, args.rtp_range, "answerer"), args.play)
    args.ready.write_text("listening\n")
    try:
        answerer.serve(stop)
    finally:
        answerer.close()


if __name__ == "__main__":
    main()
