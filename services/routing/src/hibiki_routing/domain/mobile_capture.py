"""Mobile number capture: who needs it, what a keyed number must look like, how it is read back."""

from __future__ import annotations

import re

from .calls import Prompt
from .flows import MenuNode, MobileNumberCapture
from .system_prompts import PAUSE, READBACK_CONFIRM, digit

# 070/080/090 numbers, the ones Japanese carriers deliver SMS to (sms-gateway applies the same rule).
_MOBILE_E164 = re.compile(r"\+81[789]0[0-9]{8}")
_KEYED_MOBILE = re.compile(r"0[789]0[0-9]{8}")
CONFIRM_DIGIT = "1"
CORRECT_DIGIT = "2"


def can_receive_sms(number: str) -> bool:
    """False for withheld (empty), landline, 050 IP-phone, toll-free and foreign numbers."""
    return bool(_MOBILE_E164.fullmatch(number))


def keyed_mobile_number(digits: str) -> str | None:
    """The E.164 form of an 11-digit Japanese mobile number as keyed (a trailing # is the terminator)."""
    national = digits.removesuffix("#")
    return "+81" + national[1:] if _KEYED_MOBILE.fullmatch(national) else None


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
