"""Japanese words the report page shows for outcomes, statuses and stages (the seed's vocabulary).

Outcomes and SMS statuses are the domain's labels (the CSV uses the same words); stages and checklist steps
are the page's own. Keyed by the enums' string values, with a fallback to the value itself.
"""

from __future__ import annotations

from enum import StrEnum

from hibiki_reporting.domain.labels import call_outcome_label
from hibiki_reporting.domain.labels import sms_status_label as domain_sms_status_label

_STAGES = {
    "prompt": "ガイダンス再生中",
    "invalid_input": "入力ミス時ガイダンス",
    "timeout": "入力タイムアウト時ガイダンス",
    "number_capture": "携帯電話番号の入力中",
}
# Which step of the seed's checklist the verdict points at: ① no history, ② the SMS as sent, ③ the handset.
_VERDICT_STEPS = {
    "no_call_found": "①",
    "no_sms_requested": "①",
    "sms_delivered": "②",
}


def outcome_label(outcome: StrEnum) -> str:
    return call_outcome_label(outcome.value)


def stage_label(stage: StrEnum) -> str:
    return _STAGES.get(stage.value, stage.value)


def sms_status_label(status: StrEnum) -> str:
    return domain_sms_status_label(status.value)


def verdict_step(verdict: StrEnum) -> str:
    return _VERDICT_STEPS.get(verdict.value, "③")
