"""What the media-gateway phase computes from packets, prompts and broker records."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hibiki_bench.media_stats import (
    ULAW,
    AudioCheck,
    Digits,
    audible_ulaw,
    audio_check,
    first_after,
    key_presses,
    largest_intact,
    lead_in_frames,
    onsets,
    pair_keys,
    spacing,
    wav_samples,
)
from hibiki_bench.scenarios.media import _burst_of
from hibiki_bench.sip.tap import bpf_program, parse

SILENCE, LOUD = 0xFF, 0x10  # μ-law codes of 0 and of a loud sample


def test_ulaw_decoding_matches_g711() -> None:
    assert (ULAW[0x00], ULAW[0x80], ULAW[0xFF], ULAW[0x7F]) == (-32124, 32124, 0, 0)
    assert (ULAW[0xEF], ULAW[0x6F]) == (132, -132)  # the smallest steps above silence
    assert not audible_ulaw(bytes([SILENCE, 0xFE, 0x7E] * 53))
    assert audible_ulaw(bytes([SILENCE] * 159 + [LOUD]))


def test_the_lead_in_of_a_prompt_counts_whole_silent_frames() -> None:
    prompt = bytes([SILENCE] * 160 * 15 + [SILENCE] * 100 + [LOUD] + [SILENCE] * 500)
    assert lead_in_frames(prompt) == 15
    with pytest.raises(ValueError):
        lead_in_frames(bytes([SILENCE] * 800))


def test_evenly_spaced_packets_deviate_by_nothing() -> None:
    packets = [(10.0 + i * 0.020, 100 + i) for i in range(50)]
    result = spacing(packets)
    assert result.packets == 50 and result.lost == 0 and result.out_of_order == 0
    assert max(result.deviations_ms) == pytest.approx(0.0, abs=1e-6)


def test_a_late_packet_shows_twice_and_a_gap_in_sequence_counts_as_loss() -> None:
    times = [0.0, 0.020, 0.047, 0.060, 0.120]  # the third 7 ms late; seq 5 and 6 never arrive
    result = spacing(zip(times, [1, 2, 3, 4, 7], strict=True))
    assert [round(d, 3) for d in result.deviations_ms] == [0.0, 7.0, 7.0, 0.0]
    assert result.lost == 2


def test_sequence_numbers_wrap_and_late_duplicates_are_set_aside() -> None:
    packets = [(0.0, 65534), (0.020, 65535), (0.040, 0), (0.041, 65535), (0.060, 1)]
    result = spacing(packets)
    assert result.lost == 0 and result.out_of_order == 1
    assert max(result.deviations_ms) == pytest.approx(0.0, abs=1e-6)


def check(p99: float, lost: int = 0, streams: int = 4, calls: int = 4) -> AudioCheck:
    return AudioCheck(calls, streams, 1000, 0.1, p99, p99, lost, 0)


def test_audio_is_intact_with_every_call_a_low_p99_and_no_loss() -> None:
    assert check(4.9).intact(5.0)
    assert not check(5.0).intact(5.0)
    assert not check(1.0, lost=1).intact(5.0)
    assert not check(1.0, streams=3).intact(5.0)  # a call got no audio (refused, or silent)


def test_the_largest_intact_step_stops_at_the_first_failure() -> None:
    assert (
        largest_intact({1: check(0.5), 2: check(1.0), 4: check(2.0), 8: check(1.0, streams=4, calls=8)}, 5)
        == 4
    )
    assert largest_intact({2: check(9.0), 4: check(1.0)}, 5) == 0  # 4 passing after 2 failed does not count
    assert largest_intact({2: check(1.0), 4: None}, 5) == 2


def test_audio_check_pools_the_streams() -> None:
    steady = [(i * 0.020, i) for i in range(200)]
    jumpy = [(i * 0.020 + (0.006 if i % 10 == 5 else 0.0), i) for i in range(200)]
    result = audio_check(2, {"a": steady, "b": jumpy})
    assert result.streams == 2 and result.packets == 400
    assert result.p50_ms == pytest.approx(0.0, abs=1e-6)
    assert result.max_ms == pytest.approx(6.0)


def test_sound_onsets_and_key_starts() -> None:
    heard = [(0.00, False), (0.02, True), (0.04, True), (0.06, False), (0.08, True)]
    assert onsets(heard) == [0.02, 0.08]
    # RFC 4733: every packet of an event repeats its start timestamp; the end packet goes out three times.
    events = [(1.00, 800), (1.05, 800), (1.20, 800), (1.21, 800), (3.00, 2400), (3.02, 2400)]
    assert key_presses(events) == [1.00, 3.00]
    assert first_after([1.0, 2.0, 3.0], 2.0) == 2.0
    assert first_after([1.0, 2.0, 3.0], 3.5) is None


def test_each_key_is_paired_with_its_digits_routings_action_and_the_next_prompt() -> None:
    keys = [10.000, 20.000]
    digits = [Digits("c:3:digits", 20.004, 20.010), Digits("c:2:digits", 10.003, 10.009)]
    actions = {"c:2:digits": 10.030, "c:3:digits": 20.050}
    sound = [5.0, 10.400, 12.0, 20.420]  # the first prompt, then each next prompt's first audible packet
    pairs, unpaired = pair_keys(keys, sound, digits, actions, lead_in=0.300)

    assert unpaired == 0
    first, second = pairs
    assert first.total_ms == pytest.approx(100.0)
    assert (first.gateway_in_ms, first.routing_ms, first.gateway_out_ms) == pytest.approx((9.0, 21.0, 70.0))
    assert second.total_ms == pytest.approx(120.0)


def test_a_key_without_an_answer_or_with_sound_before_routing_answered_is_not_paired() -> None:
    digits = [Digits("d1", 1.001, 1.005), Digits("d2", 2.001, 2.005)]
    pairs, unpaired = pair_keys([1.0, 2.0, 3.0], [1.2, 2.1], digits, {"d1": 1.05, "d2": 2.5}, lead_in=0.0)
    assert len(pairs) == 1 and unpaired == 2  # 2.0: sound before the action; 3.0: no DigitsCollected


def test_wav_samples_reads_the_data_chunk_of_a_mulaw_wav() -> None:
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8) + b"\x00\x00"  # μ-law: format 7, cbSize
    fact = b"fact" + struct.pack("<I", 4) + struct.pack("<I", 3)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + fact + b"data" + struct.pack("<I", 3)
    wav = b"RIFF" + struct.pack("<I", len(body) + 4) + body + b"\x01\x02\x03" + b"\x00"
    assert wav_samples(wav) == b"\x01\x02\x03"
    with pytest.raises(ValueError):
        wav_samples(b"RIFF\x00\x00\x00\x00WAVEfmt ")


def test_a_burst_rate_counts_answered_calls_from_the_first_invite_to_the_last_answer() -> None:
    calls = [[0.0, 0.010, 200], [0.025, 0.030, 200], [0.050, None, 486], [0.075, 1.010, 200]]
    result = _burst_of({"calls": calls})
    assert result.answered_per_second == pytest.approx(3 / 1.010)
    assert result.not_answered == Counter({486: 1})
    assert result.answer_p50_ms == pytest.approx(10.0)


# -- the packet tap's filter and parser ----------------------------------------------------------------
OUTGOING, HOST = 4, 0


def run_bpf(program: list[tuple[int, int, int, int]], frame: bytes, packet_type: int) -> int:
    """A classic-BPF interpreter for the instructions the tap uses; returns the bytes kept."""
    a = x = pc = 0
    while True:
        code, jump_true, jump_false, k = program[pc]
        if code == 0x20:
            a = packet_type if k == 0xFFFFF004 else int.from_bytes(frame[k : k + 4], "big")
        elif code == 0x28:
            a = int.from_bytes(frame[k : k + 2], "big")
        elif code == 0x30:
            a = frame[k]
        elif code == 0xB1:
            x = (frame[k] & 0x0F) * 4
        elif code == 0x48:
            a = int.from_bytes(frame[x + k : x + k + 2], "big")
        elif code in (0x15, 0x25, 0x35, 0x45):
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jump_true if taken else jump_false
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unknown instruction {code:#x}")
        pc += 1


def udp_frame(src: int, dst: int, payload: bytes, *, protocol: int = 17, fragment: int = 0) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, fragment, 64, protocol, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))  # fmt: skip
    udp = struct.pack("!HHHH", src, dst, 8 + len(payload), 0)
    return bytes(12) + b"\x08\x00" + ip + udp + payload


def rtp(
    seq: int, payload: bytes, *, payload_type: int = 0, marker: bool = False, timestamp: int = 160
) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), seq, timestamp, 0x1234) + payload
    )


def test_the_tap_keeps_sent_udp_packets_of_its_port_range_only() -> None:
    program = bpf_program(40000, 40199)
    audio = rtp(7, bytes([LOUD] * 160))
    assert run_bpf(program, udp_frame(40002, 50000, audio), OUTGOING) > 0  # from the range
    assert run_bpf(program, udp_frame(50000, 40199, audio), OUTGOING) > 0  # to the range
    assert run_bpf(program, udp_frame(40002, 50000, audio), HOST) == 0  # the received copy of the same
    assert run_bpf(program, udp_frame(50000, 40200, audio), OUTGOING) == 0
    assert run_bpf(program, udp_frame(39999, 50000, audio), OUTGOING) == 0
    assert run_bpf(program, udp_frame(40002, 50000, audio, protocol=6), OUTGOING) == 0  # TCP
    assert run_bpf(program, udp_frame(40002, 50000, audio, fragment=100), OUTGOING) == 0


def test_an_rtp_packet_is_read_from_its_frame_and_rtcp_is_skipped() -> None:
    packet = parse(
        123, udp_frame(40002, 50000, rtp(65535, b"\x01\x02\x03\x04", payload_type=101, marker=True))
    )
    assert packet is not None
    assert (packet.at_ns, packet.src_port, packet.dst_port) == (123, 40002, 50000)
    assert (packet.payload_type, packet.marker, packet.seq, packet.payload) == (
        101,
        True,
        65535,
        b"\x01\x02\x03\x04",
    )
    receiver_report = struct.pack("!BBH", 0x80, 201, 1) + bytes(4)
    assert parse(0, udp_frame(40003, 50001, receiver_report)) is None
