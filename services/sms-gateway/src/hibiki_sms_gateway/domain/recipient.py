"""Who may receive an SMS: Japanese mobile numbers only, classified with the phonenumbers library."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType


class RejectReason(StrEnum):
    """Why a request is never sent (mirrors hibiki.sms.v1.RejectReason)."""

    INVALID_NUMBER = "invalid_number"
    FOREIGN_NUMBER = "foreign_number"
    LANDLINE_NUMBER = "landline_number"
    IP_PHONE_NUMBER = "ip_phone_number"
    TOLL_FREE_NUMBER = "toll_free_number"
    M2M_NUMBER = "m2m_number"
    UNSUPPORTED_CARRIER = "unsupported_carrier"
    UNKNOWN_BOX = "unknown_box"
    OPTED_OUT = "opted_out"
    RECIPIENT_RATE_LIMITED = "recipient_rate_limited"
    WITHHELD_NUMBER = "withheld_number"


@dataclass(frozen=True)
class Recipient:
    e164: str


@dataclass(frozen=True)
class Refusal:
    reason: RejectReason
    detail: str


_MOBILE_PREFIXES = ("70", "80", "90")  # national significant number of 070/080/090
_M2M_PREFIX = "20"
_WITHHELD = {"", "anonymous", "unknown", "private", "withheld"}
_BY_TYPE = {
    PhoneNumberType.FIXED_LINE: (RejectReason.LANDLINE_NUMBER, "landline numbers cannot receive SMS"),
    PhoneNumberType.VOIP: (RejectReason.IP_PHONE_NUMBER, "050 IP-phone numbers cannot receive SMS"),
    PhoneNumberType.TOLL_FREE: (RejectReason.TOLL_FREE_NUMBER, "toll-free numbers cannot receive SMS"),
}


def classify_recipient(raw: str, *, allow_m2m: bool = False) -> Recipient | Refusal:
    """A sendable recipient (E.164) or the reason it is refused."""
    if raw.strip().lower() in _WITHHELD:
        return Refusal(RejectReason.WITHHELD_NUMBER, "the caller withheld the number")
    try:
        number = phonenumbers.parse(raw, "JP")
    except NumberParseException:
        return Refusal(RejectReason.INVALID_NUMBER, "not a phone number")
    if number.country_code != 81:
        return Refusal(RejectReason.FOREIGN_NUMBER, f"country code +{number.country_code} is not Japan")
    if not phonenumbers.is_valid_number(number):
        return Refusal(RejectReason.INVALID_NUMBER, "not a valid Japanese number")
    national = phonenumbers.national_significant_number(number)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if national.startswith(_M2M_PREFIX):
        if allow_m2m:
            return Recipient(e164)
        return Refusal(RejectReason.M2M_NUMBER, "020 M2M numbers are not enabled")
    number_type = phonenumbers.number_type(number)
    if (
        number_type == PhoneNumberType.MOBILE
        and national.startswith(_MOBILE_PREFIXES)
        and len(national) == 10
    ):
        return Recipient(e164)
    if number_type in _BY_TYPE:
        reason, detail = _BY_TYPE[number_type]
        return Refusal(reason, detail)
    return Refusal(RejectReason.INVALID_NUMBER, "not a Japanese mobile number")
