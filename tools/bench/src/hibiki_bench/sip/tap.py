"""A packet tap on the loopback interface: RTP packets of a port range with the kernel's timestamps.

The time a packet crossed the interface is taken by the kernel (SO_TIMESTAMPNS) when the sender's `sendto`
hands it to the loopback device, not when a process gets round to reading it: the spacing measured is the
sender's, whatever the load on the receiving process (the caller) or on this thread. A classic BPF filter in
the kernel keeps only UDP packets from or to the watched port range, so the broker's, PostgreSQL's and gRPC's
loopback traffic never reaches Python. Needs CAP_NET_RAW (root); `TapUnavailable` says so otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
import threading
from dataclasses import dataclass

_ETH_P_ALL = 0x0003
_SO_ATTACH_FILTER = 26
_SO_TIMESTAMPNS = 35
_PACKET_OUTGOING = 4  # the copy of a loopback packet taken as it is sent (the incoming copy is skipped)
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4
_ETHERNET = 14
_RTCP_TYPES = range(72, 77)  # RTCP packet types 200–204 with the marker bit taken off
SNAP_BYTES = 256  # Ethernet + IPv4 + UDP + RTP header + a 20 ms G.711 payload


class TapUnavailable(RuntimeError):
    """The tap cannot capture (no CAP_NET_RAW, or no packet sockets on this system)."""


@dataclass(frozen=True)
class Rtp:
    """One RTP packet as the tap saw it."""

    at_ns: int  # kernel timestamp, CLOCK_REALTIME nanoseconds
    src_port: int
    dst_port: int
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    payload: bytes


def bpf_program(first_port: int, last_port: int, snap: int = SNAP_BYTES) -> list[tuple[int, int, int, int]]:
    """Classic BPF (code, jump if true, jump if false, k): keep sent (not received) unfragmented IPv4 UDP
    packets whose source or destination port is in [first_port, last_port], cut to `snap` bytes; drop the
    rest. Jumps count instructions after the next one."""
    keep, drop = 15, 16
    return [
        (0x20, 0, 0, _SKF_AD_PKTTYPE),  # 0: A = packet type
        (0x15, 0, drop - 2, _PACKET_OUTGOING),  # 1
        (0x28, 0, 0, 12),  # 2: A = ethertype
        (0x15, 0, drop - 4, 0x0800),  # 3: IPv4
        (0x30, 0, 0, 23),  # 4: A = IP protocol
        (0x15, 0, drop - 6, 17),  # 5: UDP
        (0x28, 0, 0, 20),  # 6: A = flags and fragment offset
        (0x45, drop - 8, 0, 0x1FFF),  # 7: a fragment after the first
        (0xB1, 0, 0, _ETHERNET),  # 8: X = IP header length
        (0x48, 0, 0, _ETHERNET),  # 9: A = source port
        (0x35, 0, 1, first_port),  # 10: below the range: look at the destination
        (0x25, 0, keep - 12, last_port),  # 11: within it: keep
        (0x48, 0, 0, _ETHERNET + 2),  # 12: A = destination port
        (0x35, 0, drop - 14, first_port),  # 13
        (0x25, drop - 15, 0, last_port),  # 14
        (0x06, 0, 0, snap),  # 15: keep
        (0x06, 0, 0, 0),  # 16: drop
    ]


def parse(at_ns: int, frame: bytes) -> Rtp | None:
    """The RTP packet in an Ethernet/IPv4/UDP frame, or None (too short, not RTP version 2, or RTCP)."""
    if len(frame) < _ETHERNET + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip_header = (frame[_ETHERNET] & 0x0F) * 4
    udp = _ETHERNET + ip_header
    rtp = udp + 8
    if len(frame) < rtp + 12:
        return None
    src_port, dst_port = struct.unpack_from("!HH", frame, udp)
    first, second = frame[rtp], frame[rtp + 1]
    payload_type = second & 0x7F
    if first >> 6 != 2 or payload_type in _RTCP_TYPES:
        return None
    seq, timestamp = struct.unpack_from("!HI", frame, rtp + 2)
    start = rtp + 12 + 4 * (first & 0x0F)  # CSRC list
    if first & 0x10 and len(frame) >= start + 4:  # header extension
        start += 4 + 4 * struct.unpack_from("!H", frame, start + 2)[0]
    return Rtp(at_ns, src_port, dst_port, payload_type, bool(second & 0x80), seq, timestamp, frame[start:])


class RtpTap:
    """Captures, in a thread, the RTP packets sent from or to [first_port, last_port] on loopback.

    `packets()` may be called at any time; `stop()` ends the capture. Frames are kept raw while capturing
    and parsed when asked for, so that the capture itself costs little.
    """

    def __init__(self, first_port: int, last_port: int) -> None:
        self.first_port, self.last_port = first_port, last_port
        self._frames: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        except (PermissionError, AttributeError, OSError) as error:
            raise TapUnavailable(
                f"cannot open a packet socket ({error}): timing RTP packets needs CAP_NET_RAW (run as root)"
            ) from error
        code = b"".join(
            struct.pack("HBBI", *ins)
            for ins in bpf_program(first_port=self.first_port, last_port=self.last_port)
        )
        buffer = ctypes.create_string_buffer(code)
        self._program = buffer  # referenced while the socket lives
        sock.setsockopt(
            socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HL", len(code) // 8, ctypes.addressof(buffer))
        )
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind(("lo", 0))
        sock.settimeout(0.2)
        self._socket = sock
        self._thread = threading.Thread(target=self._run, name="rtp-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = self._socket
        assert sock is not None
        ancillary = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                frame, extra, _flags, _address = sock.recvmsg(SNAP_BYTES, ancillary)
            except TimeoutError:
                continue
            except OSError:
                return
            at_ns = 0
            for level, kind, data in extra:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanoseconds = struct.unpack_from("qq", data)
                    at_ns = seconds * 1_000_000_000 + nanoseconds
            with self._lock:
                self._frames.append((at_ns, frame))

    def packets(self) -> list[Rtp]:
        """The RTP packets captured so far, in the order they were sent."""
        with self._lock:
            frames = list(self._frames)
        parsed = (parse(at_ns, frame) for at_ns, frame in frames)
        return [packet for packet in parsed if packet is not None]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
