"""Numbers from RTP packets and prompt audio: packet spacing, losses, sound onsets, key presses.

Pure functions over what the packet tap saw (kernel timestamps, RTP sequence numbers, whether a G.711 payload
is audible) and over prompt files; the media-gateway phase and its caller process use them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hibiki_bench.stats import percentile

FRAME_SECONDS = 0.020  # one RTP packet of G.711 at 8 kHz: 160 samples
SAMPLES_PER_FRAME = 160
SEQ_MODULO = 1 << 16
# A sample louder than this (16-bit scale, about -40 dBFS) makes a 20 ms frame audible; Open JTalk's padding
# and μ-law's quietest codes stay far below it, speech far above.
AUDIBLE_THRESHOLD = 330


def _ulaw_table() -> tuple[int, ...]:
    """G.711 μ-law code → 16-bit linear sample (ITU-T G.711, as `audioop.ulaw2lin`)."""
    table = []
    for code in range(256):
        inverted = ~code & 0xFF
        exponent = (inverted >> 4) & 0x07
        mantissa = inverted & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        table.append(-magnitude if inverted & 0x80 else magnitude)
    return tuple(table)


ULAW = _ulaw_table()
# μ-law codes whose sample is at least AUDIBLE_THRESHOLD loud.
_LOUD_CODES = frozenset(code for code, sample in enumerate(ULAW) if abs(sample) >= AUDIBLE_THRESHOLD)


def audible_ulaw(payload: bytes) -> bool:
    """True when a G.711 μ-law payload has a sample at or above AUDIBLE_THRESHOLD."""
    return not _LOUD_CODES.isdisjoint(payload)


def lead_in_frames(ulaw_samples: bytes) -> int:
    """How many whole 20 ms frames of a prompt pass before its first audible one (the file's lead-in)."""
    for index in range(0, len(ulaw_samples), SAMPLES_PER_FRAME):
        if audible_ulaw(ulaw_samples[index : index + SAMPLES_PER_FRAME]):
            return index // SAMPLES_PER_FRAME
    raise ValueError("the prompt has no audible frame")


@dataclass(frozen=True)
class Spacing:
    """How evenly one RTP stream's packets arrived."""

    packets: int
    # |arrival gap − 20 ms × sequence gap| of each consecutive pair, in ms.
    deviations_ms: list[float]
    lost: int  # sequence numbers never seen between the first and the last packet
    out_of_order: int


def spacing(packets: Iterable[tuple[float, int]], frame_seconds: float = FRAME_SECONDS) -> Spacing:
    """The spacing of one stream's packets, given in arrival order as (arrival seconds, RTP sequence number).

    A packet whose sequence number is not ahead of the one before (a duplicate, or late after a reorder)
    counts as out of order and is left out of the deviations; a gap in sequence numbers counts as loss, and
    the arrival gap across it is compared with the packets' time (20 ms per sequence number).
    """
    deviations: list[float] = []
    lost = out_of_order = count = 0
    previous: tuple[float, int] | None = None
    for at, seq in packets:
        count += 1
        if previous is None:
            previous = (at, seq)
            continue
        ahead = (seq - previous[1]) % SEQ_MODULO
        if ahead == 0 or ahead > SEQ_MODULO // 2:
            out_of_order += 1
            continue
        lost += ahead - 1
        deviations.append(abs((at - previous[0]) - ahead * frame_seconds) * 1000)
        previous = (at, seq)
    return Spacing(count, deviations, lost, out_of_order)


@dataclass(frozen=True)
class AudioCheck:
    """Packet spacing over all streams of one step (N calls at once)."""

    calls: int
    streams: int
    packets: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    out_of_order: int

    def intact(self, limit_ms: float) -> bool:
        """Every call had a stream, p99 of the deviations under the limit, nothing lost or reordered."""
        return (
            self.streams >= self.calls
            and self.p99_ms < limit_ms
            and self.lost == 0
            and self.out_of_order == 0
        )


def audio_check(calls: int, streams: Mapping[object, Sequence[tuple[float, int]]]) -> AudioCheck:
    """Pool the deviations of every stream (one per call) and summarise them."""
    spacings = [spacing(packets) for packets in streams.values()]
    pooled = [d for s in spacings for d in s.deviations_ms]
    if not pooled:
        raise ValueError("no two consecutive packets in any stream")
    return AudioCheck(
        calls=calls,
        streams=len(spacings),
        packets=sum(s.packets for s in spacings),
        p50_ms=percentile(pooled, 0.50),
        p99_ms=percentile(pooled, 0.99),
        max_ms=max(pooled),
        lost=sum(s.lost for s in spacings),
        out_of_order=sum(s.out_of_order for s in spacings),
    )


def largest_intact(checks: Mapping[int, AudioCheck | None], limit_ms: float) -> int:
    """The largest number of calls that kept audio intact, counting steps upwards until the first that did
    not (a larger step passing by luck after a failing one does not count); 0 when the first step failed.
    A step without a check (nothing measured) fails."""
    best = 0
    for calls in sorted(checks):
        check = checks[calls]
        if check is None or not check.intact(limit_ms):
            break
        best = calls
    return best


def onsets(packets: Iterable[tuple[float, bool]]) -> list[float]:
    """Arrival times of audible packets that follow an inaudible one (or start the stream): where sound
    starts again. Packets are (arrival seconds, audible) in arrival order."""
    starts = []
    sounding = False
    for at, audible in packets:
        if audible and not sounding:
            starts.append(at)
        sounding = audible
    return starts


def key_presses(events: Iterable[tuple[float, int]]) -> list[float]:
    """When each RFC 4733 event started: the first packet of each new event timestamp (its packets repeat
    the timestamp of the event's start, and the end packet is sent three times). Packets are (arrival seconds,
    RTP timestamp) in arrival order."""
    starts = []
    current: int | None = None
    for at, timestamp in events:
        if timestamp != current:
            starts.append(at)
            current = timestamp
    return starts


def first_after(times: Sequence[float], moment: float) -> float | None:
    """The first of the sorted `times` at or after `moment`, or None."""
    index = bisect.bisect_left(times, moment)
    return times[index] if index < len(times) else None


@dataclass(frozen=True)
class KeyToPrompt:
    """One key press and what followed, as absolute times (seconds, the same wall clock)."""

    key_sent: float  # the first RFC 4733 packet of the key, on the wire
    digits_produced: float  # DigitsCollected record produced by the gateway's outbox relay
    action_produced: float  # routing's next action produced by routing's outbox relay
    prompt_started: float  # first packet of the next prompt: first audible packet − the prompt's lead-in

    @property
    def total_ms(self) -> float:
        return (self.prompt_started - self.key_sent) * 1000

    @property
    def gateway_in_ms(self) -> float:
        return (self.digits_produced - self.key_sent) * 1000

    @property
    def routing_ms(self) -> float:
        return (self.action_produced - self.digits_produced) * 1000

    @property
    def gateway_out_ms(self) -> float:
        return (self.prompt_started - self.action_produced) * 1000


@dataclass(frozen=True)
class Digits:
    """A DigitsCollected of one call as read from call.events."""

    event_id: str
    occurred: float  # envelope occurred_at: when the gateway took the key
    produced: float  # record timestamp: when its outbox relay produced it


# Timestamps come from different clocks' readings of the same wall clock (kernel, Python, Kafka records in
# whole milliseconds): comparisons allow this much.
CLOCK_SLACK = 0.002


def pair_keys(
    keys: Sequence[float],
    sound_onsets: Sequence[float],
    digits: Sequence[Digits],
    actions: Mapping[str, float],
    lead_in: float,
) -> tuple[list[KeyToPrompt], int]:
    """One call's key presses with what followed each; returns the pairs and how many keys found none.

    A key goes with the first DigitsCollected the gateway took at or after it (not already paired), that
    event with routing's action caused by it (`actions`: causation event id → when the action was produced),
    and the first sound after the key with the next prompt, which started `lead_in` seconds before its first
    audible packet. A key whose chain is incomplete, or whose prompt would have started before routing's
    action existed, is not paired.
    """
    remaining = sorted(digits, key=lambda d: d.occurred)
    onsets_sorted = sorted(sound_onsets)
    pairs: list[KeyToPrompt] = []
    unpaired = 0
    for key in sorted(keys):
        found = next((d for d in remaining if d.occurred >= key - CLOCK_SLACK), None)
        if found is None:
            unpaired += 1
            continue
        remaining.remove(found)
        action = actions.get(found.event_id)
        sound = first_after(onsets_sorted, key)
        if action is None or sound is None or sound - lead_in < action - CLOCK_SLACK:
            unpaired += 1
            continue
        pairs.append(KeyToPrompt(key, found.produced, action, sound - lead_in))
    return pairs, unpaired


def wav_samples(wav: bytes) -> bytes:
    """The sample bytes (the `data` chunk) of a RIFF WAV file, whatever its encoding (μ-law included)."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("not a RIFF WAVE file")
    offset = 12
    while offset + 8 <= len(wav):
        kind, size = wav[offset : offset + 4], int.from_bytes(wav[offset + 4 : offset + 8], "little")
        if kind == b"data":
            return wav[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    raise ValueError("the WAV file has no data chunk")
