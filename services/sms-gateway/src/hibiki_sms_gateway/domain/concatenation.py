"""UCS-2 payloads of SMS parts with the 8-bit-reference concatenation header (UDH IEI 0x00)."""

from __future__ import annotations

from dataclasses import dataclass

from hibiki_sms_gateway.domain.message_text import split_parts

UDHI_FLAG = 0x40  # esm_class bit: the short message starts with a user data header
UCS2_DATA_CODING = 0x08
_IEI_CONCAT_8BIT = 0x00
MAX_PARTS = 255


@dataclass(frozen=True)
class Part:
    """One submit_sm worth of payload: number (1-based), total, and the short_message bytes."""

    number: int
    total: int
    short_message: bytes
    esm_class: int


def ucs2_parts(text: str, reference: int) -> list[Part]:
    """The parts of `text`; a single part has no header, several share `reference` (0-255)."""
    texts = split_parts(text)
    if len(texts) == 1:
        return [Part(1, 1, text.encode("utf-16-be"), 0)]
    if len(texts) > MAX_PARTS:
        raise ValueError(f"{len(texts)} parts exceed the {MAX_PARTS} a concatenation header can number")
    total = len(texts)
    return [
        Part(
            number,
            total,
            bytes([5, _IEI_CONCAT_8BIT, 3, reference & 0xFF, total, number]) + chunk.encode("utf-16-be"),
            UDHI_FLAG,
        )
        for number, chunk in enumerate(texts, start=1)
    ]


@dataclass(frozen=True)
class ReceivedPart:
    reference: int | None
    total: int
    number: int
    text: str


def read_part(short_message: bytes, esm_class: int) -> ReceivedPart:
    """Decode a UCS-2 short message, reading the concatenation header when the UDHI flag is set."""
    if not esm_class & UDHI_FLAG:
        return ReceivedPart(None, 1, 1, short_message.decode("utf-16-be"))
    header_length = short_message[0]
    header, payload = short_message[1 : 1 + header_length], short_message[1 + header_length :]
    position = 0
    while position + 2 <= len(header):
        iei, length = header[position], header[position + 1]
        value = header[position + 2 : position + 2 + length]
        if iei == _IEI_CONCAT_8BIT and length == 3:
            return ReceivedPart(value[0], value[1], value[2], payload.decode("utf-16-be"))
        position += 2 + length
    return ReceivedPart(None, 1, 1, payload.decode("utf-16-be"))
