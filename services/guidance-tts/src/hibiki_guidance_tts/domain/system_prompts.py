"""System prompts: audio every tenant has, addressed as `system:<name>` wherever a guidance id works.

Routing plays them where a flow names no guidance of its own (the seed's invalid-input and timeout texts, the
not-in-service announcement, the closing guidance past a retry limit without a fallback node, the notice that
the caller's number cannot receive SMS, a keyed mobile number read back digit by digit). Each spoken one is a
system guidance of the tenant, so the tenant can change its text; `system:pause` is plain silence.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hibiki_runtime.errors import NotFound

from hibiki_guidance_tts.domain.model import GuidanceType

SYSTEM_ID_PREFIX = "system:"

# Ids of system items are derived from the tenant, so concurrent first uses on two replicas collide on the
# primary key instead of creating duplicates.
_SYSTEM_NAMESPACE = uuid.UUID("5b0f3c1e-7a52-4d4e-9a57-5f1f0d6c2a11")


@dataclass(frozen=True)
class SystemGuidance:
    """A guidance every tenant has, with a default text the tenant may change."""

    key: str  # part of the derived ids: never change it
    alias: str  # the prompt id is system:<alias>
    type: GuidanceType
    name: str
    text: str
    # Created with the tenant (shown in its lists from the start); the others on their first fetch.
    with_tenant: bool = False
    # Clips joined into one utterance (digits) have the engine's leading and trailing silence cut.
    trim_silence: bool = False

    @property
    def prompt_id(self) -> str:
        return SYSTEM_ID_PREFIX + self.alias

    def guidance_id(self, tenant_id: str) -> str:
        return str(uuid.uuid5(_SYSTEM_NAMESPACE, f"{tenant_id}/guidance/{self.key}"))

    def audio_file_id(self, tenant_id: str) -> str:
        return str(uuid.uuid5(_SYSTEM_NAMESPACE, f"{tenant_id}/audio/{self.key}"))


@dataclass(frozen=True)
class SystemSilence:
    """A silent clip (the same for every tenant): nothing to say, nothing to edit."""

    alias: str
    duration_ms: int

    @property
    def prompt_id(self) -> str:
        return SYSTEM_ID_PREFIX + self.alias


# How Open JTalk reads each digit inside a phone number ("090-1234-5678" → ゼロキューゼロ イチニーサンヨン …).
_DIGIT_READINGS = ("ゼロ", "イチ", "ニー", "サン", "ヨン", "ゴー", "ロク", "ナナ", "ハチ", "キュー")

SYSTEM_GUIDANCES = (
    SystemGuidance(
        "invalid-input",
        "invalid_input",
        GuidanceType.INVALID_INPUT,
        "入力ミス時ガイダンス(標準)",
        "入力が間違っています。案内をお聞きいただきもう一度入力してください。",
        with_tenant=True,
    ),
    SystemGuidance(
        "input-timeout",
        "input_timeout",
        GuidanceType.INPUT_TIMEOUT,
        "入力タイムアウト時ガイダンス(標準)",
        "入力が確認できません。案内をお聞きいただきもう一度入力してください。",
        with_tenant=True,
    ),
    SystemGuidance(
        "not-in-service",
        "not_in_service",
        GuidanceType.ANNOUNCEMENT,
        "番号未使用アナウンス(標準)",
        "おかけになった電話番号は現在使われておりません。",
    ),
    SystemGuidance(
        "closing",
        "closing",
        GuidanceType.ANNOUNCEMENT,
        "終話ガイダンス(標準)",
        "入力が確認できなかったため、通話を終了いたします。恐れ入りますが、もう一度おかけ直しください。",
    ),
    SystemGuidance(
        "sms-unavailable",
        "sms_unavailable",
        GuidanceType.ANNOUNCEMENT,
        "SMS送信不可ガイダンス(標準)",
        "恐れ入りますが、おかけの電話番号にはSMSをお送りできません。携帯電話から番号を通知しておかけ直しください。",
    ),
    SystemGuidance(
        "readback-confirm",
        "readback_confirm",
        GuidanceType.PB_ROUTING,
        "番号確認ガイダンス(標準)",
        "でよろしければ1を、訂正は2を押してください。",
    ),
    *(
        SystemGuidance(
            f"digit-{digit}",
            f"digit-{digit}",
            GuidanceType.ANNOUNCEMENT,
            f"数字読み上げ {digit}(標準)",
            reading,
            trim_silence=True,
        )
        for digit, reading in enumerate(_DIGIT_READINGS)
    ),
)

SYSTEM_SILENCES = (SystemSilence("pause", 300),)

_ALL: tuple[SystemGuidance | SystemSilence, ...] = (*SYSTEM_GUIDANCES, *SYSTEM_SILENCES)
_BY_ID = {spec.prompt_id: spec for spec in _ALL}


def is_system_id(item_id: str) -> bool:
    return item_id.startswith(SYSTEM_ID_PREFIX)


def system_prompt(prompt_id: str) -> SystemGuidance | SystemSilence:
    """The system prompt a `system:<name>` id names; NotFound (listing the known ones) otherwise."""
    spec = _BY_ID.get(prompt_id)
    if spec is None:
        raise NotFound(f"no system prompt {prompt_id!r}; system prompts are {', '.join(_BY_ID)}")
    return spec
