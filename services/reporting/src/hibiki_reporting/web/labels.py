"""Japanese words the report page shows for outcomes and statuses (the seed's vocabulary).

Keyed by the enums' string values, and looked up with a fallback to the value itself, so that an outcome or
status added later shows as its name rather than breaking the page.
"""

from __future__ import annotations

from enum import StrEnum

_OUTCOMES = {
    "in_progress": "通話中",
    "completed": "完了",
    "sms_sent": "SMS送信",
    "transferred": "転送",
    "abandoned": "途中放棄",
    "not_in_service": "番号未設定",
    "rejected": "着信拒否",
    "platform_failure": "システム障害で切断",
}
_STAGES = {
    "prompt": "ガイダンス再生中",
    "invalid_input": "入力ミス時ガイダンス",
    "timeout": "入力タイムアウト時ガイダンス",
}
_SMS_STATUSES = {
    "requested": "送信依頼",
    "accepted": "送信完了",
    "delivered": "到達",
    "undelivered": "不達",
    "rejected": "送信不可",
    "failed": "送信失敗",
}
# Which step of the seed's checklist the verdict points at: ① no history, ② the SMS as sent, ③ the handset.
_VERDICT_STEPS = {
    "no_call_found": "①",
    "no_sms_requested": "①",
    "sms_delivered": "②",
}


def outcome_label(outcome: StrEnum) -> str:
    return _OUTCOMES.get(outcome.value, outcome.value)


def stage_label(stage: StrEnum) -> str:
    return _STAGES.get(stage.value, stage.value)


def sms_status_label(status: StrEnum) -> str:
    return _SMS_STATUSES.get(status.value, status.value)


def verdict_step(verdict: StrEnum) -> str:
    return _VERDICT_STEPS.get(verdict.value, "③")
