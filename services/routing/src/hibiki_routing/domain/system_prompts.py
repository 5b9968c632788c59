"""Prompts every tenant has in guidance-tts under well-known ids, for what a flow names no guidance for.

guidance-tts serves `system:<name>` wherever a guidance id works, as the tenant's own (editable) system
guidance of that kind; the texts here are what it says by default, carried along for logs and traces.
"""

from __future__ import annotations

from .calls import Prompt

# The seed's default guidances (入力ミス時 / 入力タイムアウト時).
INVALID_INPUT = Prompt(
    "system:invalid_input", "入力が間違っています。案内をお聞きいただきもう一度入力してください。"
)
INPUT_TIMEOUT = Prompt(
    "system:input_timeout", "入力が確認できません。案内をお聞きいただきもう一度入力してください。"
)
# Played before hanging up on a dialed number without a published flow.
NOT_IN_SERVICE = Prompt("system:not_in_service", "おかけになった電話番号は現在使われておりません。")
# Played before hanging up when a route's retry limit is reached and the route has no fallback node.
CLOSING = Prompt(
    "system:closing",
    "入力が確認できなかったため、通話を終了いたします。恐れ入りますが、もう一度おかけ直しください。",
)
# Played instead of an SMS route's "sent" announcement when the caller's number cannot receive SMS.
SMS_UNAVAILABLE = Prompt(
    "system:sms_unavailable",
    "恐れ入りますが、おかけの電話番号にはSMSをお送りできません。携帯電話から番号を通知しておかけ直しください。",
)
# About 300 ms of silence, e.g. between the digit groups of a number read back.
PAUSE = Prompt("system:pause", "-")
# The question after a read-back; its keys are mobile_capture.CONFIRM_DIGIT and CORRECT_DIGIT.
READBACK_CONFIRM = Prompt("system:readback_confirm", "でよろしければ1を、訂正は2を押してください。")


def digit(key: str) -> Prompt:
    """One spoken digit, "0" to "9"."""
    if not (len(key) == 1 and key in "0123456789"):
        raise ValueError(f"not a digit: {key!r}")
    return Prompt(f"system:digit-{key}", key)
