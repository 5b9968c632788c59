"""Who called which number, as a SIP INVITE tells it: numbers in E.164, a withheld caller recognised.

The dialed number comes from the Request-URI (the To header when the Request-URI names no number, as some
PBXs send), the caller from P-Asserted-Identity (set by the trusted network) or else From. Numbers arrive
in every form Japanese networks use — E.164 with or without "+", national ("0312345678"), with separators
(`tel:+81-3-1234-5678`), `;user=phone` parameters — and are normalised with phonenumbers (region JP).
A caller is withheld (非通知) when the identity is `anonymous` or the INVITE asks for privacy
(`Privacy: id` or `header`, RFC 3323/3325).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

# The user part of a sip:/sips: URI (before "@"), or the number of a tel: URI (inside <...> when a display
# name is present).
_URI_USER = re.compile(r"sips?:([^@;>?\s]+)@|tel:([^;>?\s]+)", re.IGNORECASE)
_ANONYMOUS = frozenset({"anonymous", "anonymous.invalid", "restricted", "unknown", "unavailable", "private"})
_PRIVATE = frozenset({"id", "header", "user"})
# What CallStarted takes for a caller that is not a number (contract: printable ASCII, at most 32).
_MAX_RAW = 32


@dataclass(frozen=True)
class Caller:
    number: str  # E.164, or another printable form (at most 32 characters); "" when withheld or absent
    withheld: bool


def uri_user(uri: str) -> str:
    """The user part of a SIP or tel URI ("" when there is none)."""
    match = _URI_USER.search(uri)
    return (match.group(1) or match.group(2)) if match else ""


def e164(user: str) -> str | None:
    """The E.164 form of a dialable number ("+81312345678"), or None when it is not one."""
    text = user.strip()
    if not text:
        return None
    if text.startswith("81") and text.isdigit():
        text = "+" + text  # E.164 without its "+", as many trunks send it
    elif text.startswith("0081"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, "JP")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def dialed_number(request_uri: str, to: str) -> str | None:
    """The E.164 number the caller dialed, from the Request-URI, else the To header."""
    for uri in (request_uri, to):
        number = e164(uri_user(uri))
        if number is not None:
            return number
    return None


def caller(from_: str, asserted: str, privacy: str) -> Caller:
    """The caller of an INVITE, from its From, P-Asserted-Identity and Privacy headers."""
    requested = {token.strip().lower() for token in privacy.replace(",", ";").split(";")}
    identity = asserted or from_
    user = uri_user(identity)
    if requested & _PRIVATE or user.lower() in _ANONYMOUS or _host(identity) in _ANONYMOUS:
        return Caller("", True)
    if not user:
        return Caller("", False)
    number = e164(user)
    if number is not None:
        return Caller(number, False)
    printable = "".join(ch for ch in user if "!" <= ch <= "~")[:_MAX_RAW]
    return Caller(printable, False)


def _host(uri: str) -> str:
    match = re.search(r"@([^;>:\s]+)", uri)
    return match.group(1).lower() if match else ""
