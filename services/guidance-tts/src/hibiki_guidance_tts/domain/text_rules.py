"""Validation of names and guidance texts, with field-level messages.

Limits (documented in the README):
- names: 1..64 characters after trimming; no control or invisible format characters.
- texts: 1..1000 characters after trimming (about three minutes of speech); only characters Open JTalk
  can read: kana, kanji, Latin letters and digits (half- or full-width), Japanese and ASCII punctuation,
  spaces and line breaks; common symbols (→, ■, ±) are accepted and heard as a short pause. Emoji, other
  scripts (e.g. Hangul) and control characters are refused instead of being skipped silently by the
  synthesizer.
"""

from __future__ import annotations

import re
import unicodedata

from hibiki_runtime.errors import InvalidArgument

NAME_MAX_CHARS = 64
_UNPRINTABLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
TEXT_MAX_CHARS = 1000

# Kanji beyond the BMP that Japanese names use (𠮷 U+20BB7 of 𠮷野家, 𡈽): CJK extensions B to I and the
# compatibility supplement fill planes 2 and 3; a variation selector picks a glyph (葛󠄀) and is not heard.
# Characters of the newest extensions may be unassigned in this Python's Unicode tables, so by range.
_IDEOGRAPHS_BEYOND_BMP = "\U00020000-\U0003ffff"
_VARIATION_SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_IDEOGRAPHIC = re.compile(f"[{_IDEOGRAPHS_BEYOND_BMP}{_VARIATION_SELECTORS}]")

# Unicode blocks whose characters Open JTalk's dictionary reads (kanji it has no reading for are skipped).
_SPEAKABLE = re.compile(
    "["
    "\u0020-\u007e"  # ASCII printable
    "\u00a0-\u00ff"  # Latin-1 (×, ÷, accented letters)
    "\u2010-\u203b"  # general punctuation (dashes, quotes, ※)
    "\u2100-\u218f"  # letterlike symbols and number forms (℃, №, Ⅲ)
    "\u2190-\u22ff"  # arrows and mathematical operators (→, ±, ≒)
    "\u2460-\u24ff"  # circled numbers (①)
    "\u25a0-\u25ff"  # geometric shapes (■, ○)
    "\u3000-\u303f"  # CJK symbols and punctuation (、。「」々〆)
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3190-\u319f\u31f0-\u31ff"  # kanbun, katakana phonetic extensions
    "\u3200-\u33ff"  # enclosed CJK letters, CJK compatibility (㈱, ㎡)
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kanji
    "\uff01-\uffef"  # full-width forms, half-width katakana
    f"{_IDEOGRAPHS_BEYOND_BMP}{_VARIATION_SELECTORS}"
    "\n\t"
    "]"
)


def clean_name(field: str, name: str) -> str:
    """The trimmed, NFC-normalized name, or InvalidArgument on `field`."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise InvalidArgument.field(field, "must not be empty")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidArgument.field(field, f"must be at most {NAME_MAX_CHARS} characters, got {len(name)}")
    for position, char in enumerate(name):
        if unicodedata.category(char) in _UNPRINTABLE and not _IDEOGRAPHIC.fullmatch(char):
            raise InvalidArgument.field(
                field, f"unsupported character {_describe(char)} at position {position}"
            )
    return name


def clean_text(field: str, text: str) -> str:
    """The trimmed, NFC-normalized guidance text, or InvalidArgument on `field`."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").strip()
    if not text:
        raise InvalidArgument.field(field, "must not be empty")
    if len(text) > TEXT_MAX_CHARS:
        raise InvalidArgument.field(field, f"must be at most {TEXT_MAX_CHARS} characters, got {len(text)}")
    for position, char in enumerate(text):
        if not _SPEAKABLE.fullmatch(char):
            raise InvalidArgument.field(
                field,
                f"unsupported character {_describe(char)} at position {position}: "
                "use Japanese, Latin letters, digits and punctuation",
            )
    return text


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")
