"""A real, independent SIP phone for tests: one baresip process, driven over its ctrl_tcp interface.

    async with SipPhone(work_dir / "phone", caller="+819012345678") as phone:
        await phone.dial(f"sip:+81312345678@127.0.0.1:{sip_port}")
        await phone.established(timeout=10)
        await phone.press("1#")
        await phone.hangup()
        stretches = sounding(phone.recording(), threshold=0.02)

The phone speaks SIP over UDP on a free loopback port, offers G.711 (PCMU, PCMA) and RFC 4733
telephone-events, sends silence (a long generated WAV, because baresip ends a call when its file source runs
out) and records what it hears (baresip's sndfile module writes the decoded received audio of each call to
`dump-<time>-dec.wav` and what it sent to `dump-<time>-enc.wav`). Calls are placed one at a time.

baresip 1.0.0 (Debian `baresip-core`) cannot add headers to an INVITE, so a withheld caller is an anonymous
From (`"Anonymous" <sip:anonymous@anonymous.invalid>`) without a `Privacy: id` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from hibiki_devstack.infra import free_port
from hibiki_devstack.processes import child_command, child_process_kwargs

DEFAULT_CALLER = "+819012345678"
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
INSTALL_HINT = "run scripts/install-sip-phone.sh (installs Debian's baresip-core)"
SAMPLE_RATE = 8000
_MODULES = ("g711.so", "aufile.so", "sndfile.so", "account.so", "menu.so", "ctrl_tcp.so")
_MODULE_DIRS = (
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/lib/aarch64-linux-gnu/baresip/modules",
    "/usr/local/lib/baresip/modules",
)
_RTP_PORT_COUNT = 10  # RTP/RTCP pairs for up to five calls at once


class SipPhoneError(RuntimeError):
    """The phone could not be started, or a call did not go as awaited; the message says what it saw."""


@dataclass(frozen=True)
class PhoneEvent:
    """One event baresip reported over ctrl_tcp (`type` such as CALL_ESTABLISHED, CALL_CLOSED)."""

    type: str
    event_class: str  # "call", "register", "application", …
    param: str  # the reason of a CALL_CLOSED, the digit of a CALL_DTMF_START, …
    peer_uri: str
    call_id: str
    at: float  # seconds since the phone started
    raw: dict[str, Any] = field(repr=False, compare=False)

    def __str__(self) -> str:
        details = ", ".join(part for part in (self.param, self.peer_uri) if part)
        return f"{self.at:7.3f}s {self.type}" + (f" ({details})" if details else "")


class SipPhone:
    """One baresip process acting as one phone, as an async context manager.

    `caller` is the From user (a phone number); None withholds the caller (anonymous From).
    Everything lives under `work_dir`: `config/` (baresip's config dir), `recordings/`, `silence.wav` and
    `baresip.log` (verbose; its tail is part of every error).
    """

    def __init__(
        self,
        work_dir: Path,
        caller: str | None = DEFAULT_CALLER,
        *,
        display_name: str | None = None,
        silence_seconds: int = 600,
        startup_timeout: float = 15.0,
        answer_mode: str = "manual",
    ) -> None:
        self.work_dir = Path(work_dir)
        self.answer_mode = answer_mode  # "auto": answers calls to it (e.g. the target of a transfer)
        self.caller = caller
        self.display_name = (
            display_name if display_name is not None else ("Anonymous" if caller is None else "")
        )
        self.silence_seconds = silence_seconds
        self.startup_timeout = startup_timeout
        self.config_dir = self.work_dir / "config"
        self.recordings_dir = self.work_dir / "recordings"
        self.silence_file = self.work_dir / "silence.wav"
        self.log_file = self.work_dir / "baresip.log"
        self.sip_port = 0
        self.ctrl_port = 0
        self.rtp_ports = (0, 0)
        self.events: list[PhoneEvent] = []  # every event since start, in order
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._responses: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = itertools.count(1)
        self._command_lock = asyncio.Lock()
        self._connection_lost: str | None = None
        self._started_at = 0.0
        self._call_first_event = 0  # index in self.events where the current call's events begin
        self._dialled = False
        self._earlier_dumps: dict[str, int] = {}  # recording file → mtime at the last dial

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> SipPhone:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def aor(self) -> str:
        """The phone's address of record, the From URI of its calls."""
        return ANONYMOUS_URI if self.caller is None else f"sip:{self.caller}@127.0.0.1"

    async def start(self) -> None:
        """Write the config dir, start baresip and connect to its ctrl_tcp interface."""
        binary = shutil.which("baresip")
        if binary is None:
            raise SipPhoneError(f"baresip is not installed: {INSTALL_HINT}")
        module_dir = _module_dir()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(exist_ok=True)
        self.recordings_dir.mkdir(exist_ok=True)
        if not self.silence_file.exists():
            write_silence_wav(self.silence_file, self.silence_seconds)
        self.sip_port = _free_sip_port()
        self.ctrl_port = free_port()
        self.rtp_ports = _free_udp_range(_RTP_PORT_COUNT)
        (self.config_dir / "config").write_text(self._config_text(module_dir))
        (self.config_dir / "accounts").write_text(self._accounts_text())
        self._launch(binary)
        self._started_at = time.monotonic()
        try:
            await self._connect()
        except BaseException:
            await self.stop()
            raise

    def _launch(self, binary: str) -> None:
        # Started from the event loop's thread: the child's death signal follows the thread that forked it.
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                child_command([binary, "-f", str(self.config_dir), "-v"]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **child_process_kwargs(),
            )

    async def stop(self) -> None:
        """Hang up any call, close the control connection and stop baresip (terminate, then kill)."""
        if self._writer is not None and self._connection_lost is None and self._process_alive():
            with contextlib.suppress(SipPhoneError, OSError, TimeoutError):
                await asyncio.wait_for(self.command("hangup"), 3)
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
            self._read_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        process, self._process = self._process, None
        if process is None:
            return
        # baresip stops gracefully on a first SIGTERM, which waits for SIP transactions still under way (an
        # unanswered INVITE: up to 32 s); a second SIGTERM makes it exit at once.
        for signal_process, grace in (
            (process.terminate, 2.0),
            (process.terminate, 3.0),
            (process.kill, None),
        ):
            if process.poll() is not None:
                return
            signal_process()
            try:
                await asyncio.to_thread(process.wait, grace)
            except subprocess.TimeoutExpired:
                continue

    # -- calls ---------------------------------------------------------------------------------------------

    async def dial(self, uri: str) -> None:
        """Call `uri` (e.g. `sip:+81312345678@127.0.0.1:5060`); events and recordings start afresh."""
        self._call_first_event = len(self.events)
        self._earlier_dumps = {path.name: path.stat().st_mtime_ns for path in self._dumps()}
        self._dialled = True
        await self.command("dial", uri)

    def call_events(self) -> list[PhoneEvent]:
        """The events since the last dial."""
        return self.events[self._call_first_event :]

    async def established(self, timeout: float = 10.0) -> PhoneEvent:  # noqa: ASYNC109
        """Wait until the last dialled call is answered (CALL_ESTABLISHED); fails if it closes first."""

        def answered() -> PhoneEvent | None:
            for event in self.call_events():
                if event.type == "CALL_ESTABLISHED":
                    return event
                if event.type == "CALL_CLOSED":
                    raise SipPhoneError(
                        f"the call closed before it was answered: {event.param!r}\n{self._story()}"
                    )
            return None

        return await self._wait_for(answered, timeout, "the call to be established (CALL_ESTABLISHED)")

    async def closed(self, timeout: float = 10.0) -> PhoneEvent:  # noqa: ASYNC109
        """Wait until the last dialled call ends (CALL_CLOSED; `param` is the reason) and its recording is
        complete."""

        def ended() -> PhoneEvent | None:
            return next((event for event in self.call_events() if event.type == "CALL_CLOSED"), None)

        event = await self._wait_for(ended, timeout, "the call to close (CALL_CLOSED)")
        await self._recordings_finished(deadline=time.monotonic() + 5)
        return event

    async def press(self, digits: str, gap: float = 0.3) -> None:
        """Press keys (0-9, *, #, A-D) one after the other, `gap` seconds apart; baresip sends each as an
        RFC 4733 telephone-event in the RTP stream (key down, then key up)."""
        for index, key in enumerate(digits):
            if index:
                await asyncio.sleep(gap)
            await self.command("sndcode", key)

    async def hangup(self, timeout: float = 10.0) -> PhoneEvent:  # noqa: ASYNC109
        """Hang up the current call and wait until it is closed."""
        await self.command("hangup")
        return await self.closed(timeout)

    async def command(
        self,
        command: str,
        params: str | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> str:
        """Run one baresip command (as typed at its console, e.g. "dial", "hangup") and return its output."""
        if self._writer is None:
            raise SipPhoneError("the phone is not started")
        async with self._command_lock:
            token = str(next(self._tokens))
            message: dict[str, str] = {"command": command, "token": token}
            if params is not None:
                message["params"] = params
            payload = json.dumps(message).encode()
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._responses[token] = future
            try:
                self._writer.write(b"%d:%s," % (len(payload), payload))
                await self._writer.drain()
                response = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise SipPhoneError(
                    f"baresip did not answer the command {command!r} within {timeout:.0f}s\n{self._story()}"
                ) from None
            except (OSError, ConnectionError) as error:
                raise SipPhoneError(f"lost the connection to baresip ({error})\n{self._story()}") from error
            finally:
                self._responses.pop(token, None)
        if not response.get("ok", False):
            raise SipPhoneError(
                f"baresip refused {command} {params or ''}: {response.get('data', '')!r}\n{self._story()}"
            )
        return str(response.get("data", ""))

    # -- recordings ----------------------------------------------------------------------------------------

    def recording(self) -> Path:
        """The WAV file of what the phone heard in the last call (16-bit PCM, mono, 8 kHz)."""
        heard = [path for path in self.recordings() if path.name.endswith("-dec.wav")]
        if not heard:
            raise SipPhoneError(
                f"no recording of the last call in {self.recordings_dir} (did audio arrive?)\n{self._story()}"
            )
        return heard[-1]

    def recordings(self) -> list[Path]:
        """Every WAV file of the last call: `…-dec.wav` is what the phone heard, `…-enc.wav` what it sent."""
        if not self._dialled:
            return []
        # New since the dial, or rewritten: the names have a one-second resolution, so a call that starts in
        # the same second as the one before overwrites its files.
        files = [
            path for path in self._dumps() if self._earlier_dumps.get(path.name) != path.stat().st_mtime_ns
        ]
        return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))

    def _dumps(self) -> list[Path]:
        return list(self.recordings_dir.glob("dump-*.wav"))

    # -- diagnostics ---------------------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of baresip's log."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _story(self) -> str:
        events = "\n".join(f"  {event}" for event in self.events[-30:]) or "  (none)"
        return f"events:\n{events}\nbaresip log ({self.log_file}), last lines:\n{self.log_tail()}"

    # -- internals -----------------------------------------------------------------------------------------

    def _config_text(self, module_dir: Path) -> str:
        lines = [
            "poll_method\t\tepoll" if sys.platform.startswith("linux") else "",
            f"sip_listen\t\t127.0.0.1:{self.sip_port}",
            "net_interface\t\t127.0.0.1",  # so SDP offers the loopback address
            f"rtp_ports\t\t{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "rtp_timeout\t\t0",
            "call_local_timeout\t60",
            # No audio device: the source is a silence file, heard audio only goes through the filters.
            f"audio_source\t\taufile,{self.silence_file}",
            "ausrc_srate\t\t8000",
            "ausrc_channels\t\t1",
            f"module_path\t\t{module_dir}",
            "module\t\t\tg711.so",
            "module\t\t\taufile.so",
            "module\t\t\tsndfile.so",
            "module_app\t\taccount.so",
            "module_app\t\tmenu.so",
            "module_app\t\tctrl_tcp.so",
            f"snd_path\t\t{self.recordings_dir}",
            f"ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}",
        ]
        return "\n".join(line for line in lines if line) + "\n"

    def _accounts_text(self) -> str:
        name = self.display_name.replace('"', "")
        display = f'"{name}" ' if name else ""
        # regint=0: no registration; the phone calls the request URI's host directly.
        return f"{display}<{self.aor}>;regint=0;answermode={self.answer_mode}\n"

    async def _connect(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: OSError | None = None
        while time.monotonic() < deadline:
            if not self._process_alive():
                code = self._process.returncode if self._process else None
                raise SipPhoneError(
                    f"baresip exited with code {code} while starting; its log ({self.log_file}) ends:\n"
                    f"{self.log_tail()}"
                )
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
            except OSError as error:
                last_error = error
                await asyncio.sleep(0.1)
                continue
            self._read_task = asyncio.create_task(self._read_messages(self._reader))
            return
        raise SipPhoneError(
            f"baresip's ctrl_tcp never answered on 127.0.0.1:{self.ctrl_port} within "
            f"{self.startup_timeout:.0f}s ({last_error}); log ({self.log_file}):\n{self.log_tail()}"
        )

    def _process_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def _read_messages(self, reader: asyncio.StreamReader) -> None:
        reason = "baresip closed the control connection"
        try:
            while True:
                message = await _read_netstring(reader)
                if message is None:
                    break
                await self._handle(message)
        except (OSError, ValueError) as error:
            reason = f"control connection failed: {error}"
        finally:
            self._connection_lost = reason
            for future in self._responses.values():
                if not future.done():
                    future.set_exception(ConnectionError(reason))
            async with self._changed:
                self._changed.notify_all()

    async def _handle(self, message: bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if data.get("response"):
            future = self._responses.get(str(data.get("token", "")))
            if future is not None and not future.done():
                future.set_result(data)
            return
        if data.get("event"):
            self.events.append(
                PhoneEvent(
                    type=str(data.get("type", "")),
                    event_class=str(data.get("class", "")),
                    param=str(data.get("param", "")),
                    peer_uri=str(data.get("peeruri", "")),
                    call_id=str(data.get("id", "")),
                    at=round(time.monotonic() - self._started_at, 3),
                    raw=data,
                )
            )
            async with self._changed:
                self._changed.notify_all()

    async def _wait_for(
        self,
        found: Callable[[], PhoneEvent | None],
        seconds: float,
        what: str,
    ) -> PhoneEvent:
        deadline = time.monotonic() + seconds
        async with self._changed:
            while True:
                event = found()
                if event is not None:
                    return event
                if self._connection_lost is not None or not self._process_alive():
                    code = self._process.returncode if self._process else None
                    raise SipPhoneError(
                        f"baresip is gone (exit code {code}; {self._connection_lost}) while waiting for "
                        f"{what}\n{self._story()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SipPhoneError(f"waited {seconds:.1f}s for {what}\n{self._story()}")
                # Also wake up now and then to notice a process that died without closing the socket.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def _recordings_finished(self, deadline: float) -> None:
        # baresip closes a call's WAV files (finalising their headers) right after reporting CALL_CLOSED.
        while time.monotonic() < deadline:
            if all(_wav_finalised(path) for path in self.recordings()):
                return
            await asyncio.sleep(0.05)


async def _read_netstring(reader: asyncio.StreamReader) -> bytes | None:
    """One `LENGTH:PAYLOAD,` frame; None at the end of the stream."""
    try:
        head = await reader.readuntil(b":")
    except asyncio.IncompleteReadError:
        return None
    length = int(head[:-1])
    try:
        frame = await reader.readexactly(length + 1)
    except asyncio.IncompleteReadError:
        return None
    if frame[-1:] != b",":
        raise ValueError(f"netstring of {length} bytes without its trailing comma")
    return frame[:-1]


def _module_dir() -> Path:
    candidates = [os.environ.get("HIBIKI_BARESIP_MODULES", ""), *_MODULE_DIRS]
    for candidate in candidates:
        if candidate and all((Path(candidate) / module).is_file() for module in _MODULES):
            return Path(candidate)
    raise SipPhoneError(
        f"baresip modules {', '.join(_MODULES)} not found in {', '.join(_MODULE_DIRS)} "
        f"(or $HIBIKI_BARESIP_MODULES): {INSTALL_HINT}"
    )


def _free_sip_port() -> int:
    """A loopback port free for SIP over UDP and TCP, with the next one free for TCP (baresip's SIP/TLS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            if port < 65535 and _tcp_free(port) and _tcp_free(port + 1):
                return port
    raise SipPhoneError("found no free loopback port for SIP")


def _free_udp_range(count: int) -> tuple[int, int]:
    """First and last port of `count` consecutive loopback UDP ports that are free now (first one even)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1]) & ~1
        if first + count - 1 <= 65535 and all(_udp_free(port) for port in range(first, first + count)):
            return first, first + count - 1
    raise SipPhoneError(f"found no {count} consecutive free loopback UDP ports for RTP")


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- WAV files and their analysis ----------------------------------------------------------------------------


def write_wav(path: Path, samples: Iterable[int] | array[int], rate: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM mono samples as a WAV file."""
    pcm = samples if isinstance(samples, array) and samples.typecode == "h" else array("h", samples)
    if sys.byteorder == "big":
        pcm = array("h", pcm)
        pcm.byteswap()
    data = pcm.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", len(data),
    )  # fmt: skip
    path.write_bytes(header + data)
    return path


def write_silence_wav(path: Path, seconds: float, rate: int = SAMPLE_RATE) -> Path:
    """A WAV file of digital silence (16-bit PCM mono)."""
    return write_wav(path, array("h", bytes(2 * round(seconds * rate))), rate)


def write_tone_wav(
    path: Path, seconds: float, frequency: float = 440.0, rate: int = SAMPLE_RATE, level: float = 0.5
) -> Path:
    """A WAV file of a sine tone (16-bit PCM mono), `level` a fraction of full scale."""
    amplitude = level * 32767
    step = 2 * math.pi * frequency / rate
    return write_wav(
        path, (round(amplitude * math.sin(step * n)) for n in range(round(seconds * rate))), rate
    )


def read_wav(path: Path) -> tuple[int, array[int]]:
    """The sample rate and samples (first channel) of a 16-bit PCM WAV file.

    Tolerates a header that was never finalised (a recording still being written): the data then runs to
    the end of the file.
    """
    blob = Path(path).read_bytes()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a WAV file")
    offset, fmt, data = 12, None, None
    while offset + 8 <= len(blob):
        chunk_id, size = struct.unpack_from("<4sI", blob, offset)
        body = offset + 8
        if chunk_id == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", blob, body)
        elif chunk_id == b"data":
            end = body + size if 0 < size <= len(blob) - body else len(blob)
            data = blob[body:end]
            break
        offset = body + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path} has no fmt or data chunk")
    tag, channels, rate, _byte_rate, _align, bits = fmt
    if tag not in (1, 0xFFFE) or bits != 16:
        raise ValueError(f"{path} is not 16-bit PCM (format tag {tag}, {bits} bits)")
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if channels > 1:
        samples = samples[::channels]
    return rate, samples


def audio_duration(path: Path) -> float:
    """Seconds of audio in a 16-bit PCM WAV file."""
    rate, samples = read_wav(path)
    return len(samples) / rate


def sounding(
    path: Path, threshold: float = 0.02, window: float = 0.02, bridge: float = 0.1
) -> list[tuple[float, float]]:
    """The (start, end) seconds of the non-silent stretches of a WAV file.

    A `window` (20 ms) sounds when its RMS is at least `threshold`, a fraction of full scale (0.02 is
    about -34 dBFS); stretches less than `bridge` seconds apart are joined.
    """
    rate, samples = read_wav(path)
    size = max(1, round(window * rate))
    limit = (threshold * 32768) ** 2  # compare mean squares, not roots
    stretches: list[tuple[float, float]] = []
    for start in range(0, len(samples), size):
        chunk = samples[start : start + size]
        if sum(sample * sample for sample in chunk) < limit * len(chunk):
            continue
        begin, end = start / rate, (start + len(chunk)) / rate
        if stretches and begin - stretches[-1][1] < bridge:
            stretches[-1] = (stretches[-1][0], end)
        else:
            stretches.append((begin, end))
    return [(round(begin, 3), round(end, 3)) for begin, end in stretches]


def sounding_seconds(path: Path, threshold: float = 0.02, window: float = 0.02, bridge: float = 0.1) -> float:
    """Total seconds of the non-silent stretches of a WAV file (see `sounding`)."""
    return round(sum(end - begin for begin, end in sounding(path, threshold, window, bridge)), 3)


def _wav_finalised(path: Path) -> bool:
    """True when the RIFF size in the header matches the file (the writer has closed it)."""
    try:
        with path.open("rb") as file:
            head = file.read(8)
            size = path.stat().st_size
    except OSError:
        return True  # gone: nothing to wait for
    return len(head) == 8 and head[:4] == b"RIFF" and struct.unpack_from("<I", head, 4)[0] == size - 8 >= 36
