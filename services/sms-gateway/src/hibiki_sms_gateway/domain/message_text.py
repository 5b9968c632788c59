"""Rendering an SMS box into the text a handset shows, counted and segmented the way handsets count it.

Japanese text never fits GSM-7, so every message is UCS-2: 70 code units in a single SMS, 67 per part once a
concatenation header takes its 6 bytes. Handsets count UTF-16 code units, so an emoji outside the BMP (a
surrogate pair) counts as two characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from hibiki_runtime.errors import FieldViolation, InvalidArgument
from pydantic import HttpUrl, TypeAdapter, ValidationError

from hibiki_sms_gateway.domain.short_links import sample_short_link

ENCODING = "UCS-2"
SINGLE_SEGMENT_UNITS = 70
PART_UNITS = 67
DEFAULT_MAX_CHARACTERS = 660
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def render(message_text: str, url: str) -> str:
    """The text handed to the carrier: the message, then the URL on its own line."""
    if not url:
        return message_text
    return f"{message_text}\n{url}" if message_text else url


def sent_url(url: str, short_link_base: str = "") -> str:
    """The URL as it goes out: the box URL, or a short link of the same length as every real one."""
    return sample_short_link(short_link_base) if url and short_link_base else url


def ucs2_units(text: str) -> int:
    """Characters as the handset counts them (UTF-16 code units)."""
    return len(text.encode("utf-16-be")) // 2


def split_parts(text: str) -> list[str]:
    """The text of each SMS part; a surrogate pair is never split across two parts."""
    if ucs2_units(text) <= SINGLE_SEGMENT_UNITS:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        width = ucs2_units(char)
        if used + width > PART_UNITS:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += width
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class MessagePreview:
    rendered_text: str
    encoding: str
    characters: int
    segments: int
    characters_left: int
    max_characters: int
    # How far the message goes past max_characters (0 when it fits).
    characters_over: int = 0


def preview(
    message_text: str, url: str, max_characters: int = DEFAULT_MAX_CHARACTERS, short_link_base: str = ""
) -> MessagePreview:
    """What the recipient would get (with a sample short link when links are tracked), and the room left."""
    rendered = render(message_text, sent_url(url, short_link_base))
    characters = ucs2_units(rendered)
    return MessagePreview(
        rendered_text=rendered,
        encoding=ENCODING,
        characters=characters,
        segments=len(split_parts(rendered)) if rendered else 0,
        characters_left=max(0, max_characters - characters),
        max_characters=max_characters,
        characters_over=max(0, characters - max_characters),
    )


def url_problem(url: str) -> str | None:
    """Why `url` cannot go into an SMS, or None when it is a well-formed http(s) URL (empty is allowed)."""
    if not url:
        return None
    if any(char.isspace() for char in url):
        return "must not contain spaces or line breaks"
    try:
        parsed = _HTTP_URL.validate_python(url)
    except ValidationError:
        return "must be a well-formed http:// or https:// URL"
    if not parsed.host:
        return "must name a host"
    return None


def validate_content(
    message_text: str, url: str, max_characters: int = DEFAULT_MAX_CHARACTERS, short_link_base: str = ""
) -> None:
    """Raise InvalidArgument naming each field that cannot be sent as is (counting the URL as it goes out)."""
    violations: list[FieldViolation] = []
    if not message_text.strip():
        violations.append(FieldViolation("message_text", "must not be empty"))
    elif "\x00" in message_text:
        violations.append(FieldViolation("message_text", "must not contain NUL characters"))
    if (problem := url_problem(url)) is not None:
        violations.append(FieldViolation("url", problem))
    if not violations:
        result = preview(message_text, url, max_characters, short_link_base)
        if result.characters > max_characters:
            violations.append(
                FieldViolation(
                    "message_text",
                    f"message with URL is {result.characters} characters (UCS-2, a surrogate pair counts 2), "
                    f"{result.characters_over} over the maximum of {max_characters}",
                )
            )
    if violations:
        raise InvalidArgument(*violations)
