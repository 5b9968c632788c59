"""The sms.results edge of reporting: results, receipts and link clicks become Observations of their SMS."""

from __future__ import annotations

from hibiki_runtime.events import SMS_RESULTS, DecodedEvent

from hibiki_reporting.adapters.events import sms_fact
from hibiki_reporting.domain.observations import Observation, RecordKind, Touch


def observation(event: DecodedEvent) -> Observation:
    message = event.message
    sms = Touch(RecordKind.SMS, message.request_id)  # type: ignore[attr-defined]
    return Observation((sms,), sms_fact=sms_fact(SMS_RESULTS, message))


TRANSLATORS = {SMS_RESULTS: observation}
