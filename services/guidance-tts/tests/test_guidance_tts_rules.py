from datetime import UTC, datetime

import pytest
from hibiki_guidance_tts.domain.model import (
    AudioFile,
    GuidanceType,
    GuidanceUser,
    OriginalGuidance,
    VoiceSettings,
    audio_cache_key,
)
from hibiki_guidance_tts.domain.rules import (
    check_audio_file_deletable,
    check_guidance_deletable,
    check_guidance_source,
    check_revision,
    check_system_guidance_name,
    check_usage,
)
from hibiki_guidance_tts.domain.system_prompts import SYSTEM_GUIDANCES, SystemGuidance, system_prompt
from hibiki_runtime.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def guidance(name: str = "メインメニュー", *, system: bool = False) -> OriginalGuidance:
    return OriginalGuidance("g1", "tenant-a", GuidanceType.PB_ROUTING, name, True, "f1", system, 1, NOW, NOW)


def test_every_tenant_starts_with_the_seed_default_texts() -> None:
    texts = {spec.type: spec.text for spec in SYSTEM_GUIDANCES if spec.with_tenant}
    assert texts == {
        GuidanceType.INVALID_INPUT: "入力が間違っています。案内をお聞きいただきもう一度入力してください。",
        GuidanceType.INPUT_TIMEOUT: "入力が確認できません。案内をお聞きいただきもう一度入力してください。",
    }


def test_system_prompt_ids_name_the_seed_texts_the_digits_a_pause_and_the_read_back_question() -> None:
    def spoken(prompt_id: str) -> str:
        spec = system_prompt(prompt_id)
        return spec.text if isinstance(spec, SystemGuidance) else f"{spec.duration_ms} ms silence"

    assert spoken("system:invalid_input").startswith("入力が間違っています。")
    assert spoken("system:input_timeout").startswith("入力が確認できません。")
    assert spoken("system:not_in_service") == "おかけになった電話番号は現在使われておりません。"
    assert spoken("system:readback_confirm") == "でよろしければ1を、訂正は2を押してください。"
    assert [spoken(f"system:digit-{d}") for d in range(10)] == [
        "ゼロ", "イチ", "ニー", "サン", "ヨン", "ゴー", "ロク", "ナナ", "ハチ", "キュー"
    ]  # fmt: skip
    assert spoken("system:pause") == "300 ms silence"
    names = {spec.name for spec in SYSTEM_GUIDANCES}
    assert len(names) == len(SYSTEM_GUIDANCES)  # names are unique per tenant
    for unknown in ("system:digit-10", "system:", "system:Invalid_Input"):
        with pytest.raises(NotFound, match="system prompts are system:invalid_input"):
            system_prompt(unknown)


def test_routing_has_a_closing_guidance_and_an_sms_unavailable_notice_each_tenant_can_reword() -> None:
    closing, unavailable = system_prompt("system:closing"), system_prompt("system:sms_unavailable")
    assert isinstance(closing, SystemGuidance) and isinstance(unavailable, SystemGuidance)
    assert closing.text.startswith("入力が確認できなかったため、通話を終了いたします。")
    assert "SMSをお送りできません" in unavailable.text
    # Tenant-editable like every spoken system prompt: a guidance of its own per tenant, created on first use.
    assert closing.guidance_id("tenant-a") != closing.guidance_id("tenant-b")
    assert not closing.with_tenant and not closing.trim_silence


def test_system_ids_are_stable_per_tenant_and_differ_between_tenants() -> None:
    spec = SYSTEM_GUIDANCES[0]
    assert spec.guidance_id("tenant-a") == "6d7b5700-1c87-5abf-b465-c399e9410105"  # stored rows use it
    assert spec.guidance_id("tenant-a") != spec.guidance_id("tenant-b")
    assert spec.guidance_id("tenant-a") != spec.audio_file_id("tenant-a")


def test_guidance_in_use_cannot_be_deleted_and_the_error_names_the_users() -> None:
    users = [GuidanceUser("flow:2", "受付フロー v3"), GuidanceUser("flow:1", "夜間フロー v1")]
    with pytest.raises(FailedPrecondition) as error:
        check_guidance_deletable(guidance(), users)
    assert "in use by 受付フロー v3, 夜間フロー v1" in error.value.message


def test_unused_guidance_can_be_deleted_but_a_system_one_never() -> None:
    check_guidance_deletable(guidance(), [])
    with pytest.raises(FailedPrecondition, match="system guidance"):
        check_guidance_deletable(guidance(system=True), [])


def test_audio_file_played_by_a_guidance_cannot_be_deleted() -> None:
    audio_file = AudioFile("f1", "tenant-a", "挨拶", "こんにちは", 1, "k", 1000, "h", False, NOW, NOW)
    check_audio_file_deletable(audio_file, [])
    with pytest.raises(FailedPrecondition, match="メインメニュー"):
        check_audio_file_deletable(audio_file, [guidance()])


def test_stale_revision_aborts_and_zero_means_any() -> None:
    check_revision("expected_revision", 3, 3)
    check_revision("expected_revision", 3, 0)
    with pytest.raises(Aborted, match="current revision is 3"):
        check_revision("expected_revision", 3, 2)


def test_only_synthesized_guidances_exist() -> None:
    check_guidance_source(True)
    with pytest.raises(InvalidArgument) as error:
        check_guidance_source(False)
    assert error.value.violations[0].field == "speech_synthesis"


def test_system_guidance_keeps_its_name() -> None:
    check_system_guidance_name(guidance(system=True), "メインメニュー")
    check_system_guidance_name(guidance(), "別名")
    with pytest.raises(InvalidArgument):
        check_system_guidance_name(guidance(system=True), "別名")


def test_cache_key_changes_with_text_and_every_voice_setting() -> None:
    voice = VoiceSettings(engine="e/1")
    base = audio_cache_key("こんにちは", voice)
    assert base == audio_cache_key("こんにちは", VoiceSettings(engine="e/1"))
    variants = [
        audio_cache_key("こんばんは", voice),
        audio_cache_key("こんにちは", VoiceSettings(engine="e/2")),
        audio_cache_key("こんにちは", VoiceSettings(engine="e/1", speed=1.2)),
        audio_cache_key("こんにちは", VoiceSettings(engine="e/1", half_tone=1.0)),
        audio_cache_key("こんにちは", voice, trim_silence=True),
    ]
    assert len({base, *variants}) == 6
    # stored audio is found by its key: the key of a text must never change
    assert base == "1f21c31251f0b281aab57d08fe75db25d66de6985bbccdb040b7b0a9404e8c91"


def test_usage_record_names_its_user_and_only_known_guidances() -> None:
    check_usage(GuidanceUser("routing-flow/1", "受付フロー v1"), {"g1", "g2"}, ["g1", "g2"])
    with pytest.raises(InvalidArgument) as error:
        check_usage(GuidanceUser("", "x" * 201), {"g1"}, ["g1", "g9"])
    assert {v.field: v.description for v in error.value.violations} == {
        "user_id": "must be 1..128 characters",
        "display_name": "must be 1..200 characters",
        "guidance_ids[1]": "no original guidance 'g9' in this tenant",
    }
