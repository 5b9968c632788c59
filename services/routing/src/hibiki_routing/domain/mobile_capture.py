"""Mobile number capture: who needs it, what a keyed number must look like, how it is read back."""

from __future__ import annotations

from hibiki_runtime.phone import parse_phone

from .calls import Prompt
from .flows import MenuNode, MobileNumberCapture
from .system_prompts import PAUSE, READBACK_CONFIRM, digit

# 070/080/090 numbers, the ones Japanese carriers deliver SMS to (sms-gateway applies the same rule):
# national significant numbers of 10 digits starting 70, 80 or 90.
_MOBILE_PREFIXES = ("70", "80", "90")
_MOBILE_NATIONAL_DIGITS = 10
CONFIRM_DIGIT = "1"
CORRECT_DIGIT = "2"


def can_receive_sms(number: str) -> bool:
    """False for withheld (empty), landline, 050 IP-phone, toll-free and foreign numbers."""
    phone = parse_phone(number)
    return (
        phone is not None
        and phone.e164 == number
        and _is_japanese_mobile(phone.country_code, phone.national_number)
    )


def keyed_mobile_number(digits: str) -> str | None:
    """The E.164 form of an 11-digit Japanese mobile number as keyed (a trailing # is the terminator)."""
    national = digits.removesuffix("#")
    if not (national.isascii() and national.isdigit() and national.startswith("0")):
        return None  # keyed domestically: a trunk 0 and digits only
    phone = parse_phone(national)
    if phone is None or not _is_japanese_mobile(phone.country_code, phone.national_number):
        return None
    return phone.e164


def _is_japanese_mobile(country_code: int, national_number: str) -> bool:
    return (
        country_code == 81
        and len(national_number) == _MOBILE_NATIONAL_DIGITS
        and national_number.startswith(_MOBILE_PREFIXES)
    )


def readback(e164: str) -> tuple[Prompt, ...]:
    """The number read back digit by digit in groups of 3-4-4, then the question.

    E.g. 090, pause, 1234, pause, 5678, "でよろしければ1を、訂正は2を押してください。": 14 prompts.
    """
    national = "0" + e164.removeprefix("+81")
    area, middle, last = national[:3], national[3:7], national[7:]
    return (*map(digit, area), PAUSE, *map(digit, middle), PAUSE, *map(digit, last), READBACK_CONFIRM)


def number_entry(capture: MobileNumberCapture) -> MenuNode:
    """The number entry as a menu without choices: 11 digits, # to finish, the capture's own limits."""
    return MenuNode(
        prompt_guidance_id=capture.prompt_guidance_id,
        digit_targets={},
        max_digits=11,
        terminator="#",
        invalid_input_guidance=capture.invalid_input_guidance,
        input_timeout_guidance=capture.input_timeout_guidance,
        max_invalid_attempts=capture.max_invalid_attempts,
        max_timeout_attempts=capture.max_timeout_attempts,
        fallback_node_id=capture.fallback_node_id,
    )


def confirmation(capture: MobileNumberCapture) -> MenuNode:
    """The read-back's one-key answer, under the same limits as the entry."""
    entry = number_entry(capture)
    return MenuNode(
        prompt_guidance_id="",
        digit_targets={CONFIRM_DIGIT: "", CORRECT_DIGIT: ""},
        invalid_input_guidance=entry.invalid_input_guidance,
        input_timeout_guidance=entry.input_timeout_guidance,
        max_invalid_attempts=entry.max_invalid_attempts,
        max_timeout_attempts=entry.max_timeout_attempts,
        fallback_node_id=entry.fallback_node_id,
    )
