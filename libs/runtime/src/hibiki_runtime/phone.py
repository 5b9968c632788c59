"""Phone numbers as people write them, read one way everywhere: normalized to E.164 with phonenumbers.

Accepted: domestic forms with or without separators ("03-1234-5678", "090 1234 5678", "(03)1234-5678"),
full-width digits and separators ("０９０－１２３４－５６７８"), and international forms ("+81 90 1234 5678",
"+819012345678"). Refused: letters (phonenumbers would read "ext" or vanity letters as digits), digits of
other scripts, and digit runs whose length no number of that country has. Domain rules (which numbers are
mobile, which may receive SMS) stay with the services and work on the parsed number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from hibiki_runtime.errors import InvalidArgument

REGION = "JP"
PHONE_HINT = "expected a phone number such as 03-1234-5678, 090-1234-5678 or +81312345678"
MAX_WRITTEN_LENGTH = 40
E164_MAX_DIGITS = 15  # ITU-T E.164: country code and number together
# What a written number may consist of: an optional leading plus, digits, spaces, hyphens, dots, brackets
# (ASCII and full-width, plus the long-vowel mark that Japanese input methods type for a hyphen).
_WRITTEN = re.compile(r"[+＋]?[0-9０-９ \u3000\-‐‑‒–—―−ー－ｰ().（）．]+")


@dataclass(frozen=True)
class Phone:
    """A parsed number: its E.164 form, country calling code and national significant number."""

    e164: str
    country_code: int
    national_number: str


def parse_phone(text: str) -> Phone | None:
    """The number written in `text`, or None when it is not a possible phone number."""
    written = text.strip()
    if not written or len(written) > MAX_WRITTEN_LENGTH or not _WRITTEN.fullmatch(written):
        return None
    try:
        number = phonenumbers.parse(written, REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) - 1 > E164_MAX_DIGITS:
        return None
    return Phone(
        e164,
        int(number.country_code or 0),
        phonenumbers.national_significant_number(number),
    )


def to_e164(text: str) -> str | None:
    """The E.164 form of a written number ("+81312345678"), or None."""
    phone = parse_phone(text)
    return phone.e164 if phone else None


def is_e164(text: str) -> bool:
    """True when `text` is already a number in E.164 form (what events and stored rows carry)."""
    return to_e164(text) == text


def require_phone(field: str, text: str) -> str:
    """The E.164 form of a written number, or INVALID_ARGUMENT on `field` with the one message for all."""
    e164 = to_e164(text)
    if e164 is None:
        raise InvalidArgument.field(field, PHONE_HINT)
    return e164


def optional_phone(field: str, text: str) -> str:
    """require_phone for an optional filter: "" (not given) stays ""."""
    return require_phone(field, text) if text.strip() else ""


def written_form(e164: str) -> str:
    """How an operator in Japan writes a stored number: "03-1234-5678", "090-1234-5678"; a foreign number as
    dialled from Japan ("010 1 650-253-0000"). Neither starts with a character a spreadsheet evaluates, so a
    CSV cell shows it as it is. Text that is not a number is returned unchanged.
    """
    try:
        number = phonenumbers.parse(e164, REGION)
    except phonenumbers.NumberParseException:
        return e164
    if not phonenumbers.is_possible_number(number):
        return e164
    return phonenumbers.format_out_of_country_calling_number(number, REGION)
