import unicodedata

import pytest
from hibiki_guidance_tts.domain.text_rules import NAME_MAX_CHARS, TEXT_MAX_CHARS, clean_name, clean_text
from hibiki_runtime.errors import InvalidArgument
from hypothesis import given
from hypothesis import strategies as st

SEED_TEXT = "入力が間違っています。案内をお聞きいただきもう一度入力してください。"


def violation(error: pytest.ExceptionInfo[InvalidArgument]) -> tuple[str, str]:
    (only,) = error.value.violations
    return only.field, only.description


def test_seed_texts_and_mixed_japanese_are_accepted_and_trimmed() -> None:
    assert clean_text("text", f"  {SEED_TEXT}\r\n") == SEED_TEXT
    mixed = "お電話ありがとうございます。①はSMS、②はＦＡＱ（24時間）です。ｱｲｳ 〆切は3/31→延長※ 室温25℃±2"
    assert clean_text("text", mixed) == mixed


def test_text_keeps_line_breaks_inside() -> None:
    assert clean_text("text", "一行目\r\n二行目") == "一行目\n二行目"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused_on_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        clean_text("text", text)
    assert violation(error) == ("text", "must not be empty")


def test_text_over_the_limit_is_refused_with_the_limit() -> None:
    clean_text("text", "あ" * TEXT_MAX_CHARS)
    with pytest.raises(InvalidArgument) as error:
        clean_text("text", "あ" * (TEXT_MAX_CHARS + 1))
    assert violation(error) == (
        "text",
        f"must be at most {TEXT_MAX_CHARS} characters, got {TEXT_MAX_CHARS + 1}",
    )


@pytest.mark.parametrize(
    ("text", "char", "position"),
    [
        ("こんにちは😀", "U+1F600", 5),
        ("안녕하세요", "U+C548", 0),
        ("ベル\x07です", "U+0007", 2),
        ("a\u200bb", "U+200B", 1),
    ],
)
def test_characters_the_engine_cannot_speak_are_named_with_their_position(
    text: str, char: str, position: int
) -> None:
    with pytest.raises(InvalidArgument) as error:
        clean_text("text", text)
    field, description = violation(error)
    assert field == "text"
    assert description.startswith(f"unsupported character {char}")
    assert f"at position {position}" in description


def test_names_are_trimmed_and_nfc_normalized() -> None:
    assert clean_name("name", "  ガイダンス1 ") == "ガイダンス1"
    assert clean_name("name", "ガ") == "ガ"  # カ + combining dakuten


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("", "must not be empty"),
        (
            "x" * (NAME_MAX_CHARS + 1),
            f"must be at most {NAME_MAX_CHARS} characters, got {NAME_MAX_CHARS + 1}",
        ),
        ("tab\tname", "unsupported character U+0009 at position 3"),
    ],
)
def test_bad_names_are_refused_on_the_given_field(name: str, description: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        clean_name("audio_file.name", name)
    assert violation(error)[0] == "audio_file.name"
    assert violation(error)[1].startswith(description)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_accepted_text_is_already_clean(text: str) -> None:
    try:
        cleaned = clean_text("text", text)
    except InvalidArgument:
        return
    assert clean_text("text", cleaned) == cleaned
    assert 1 <= len(cleaned) <= TEXT_MAX_CHARS


# 𠮷 (U+20BB7, as in 𠮷野家), 𡈽 (U+2123D), a CJK extension H ideograph (U+31350), a compatibility
# supplement ideograph (U+2F800) and 葛 with an ideographic variation selector (U+E0100).
CJK_BEYOND_THE_BMP = ["𠮷野家", "𡈽屋", "\U00031350田", "\U0002f800", "葛\U000e0100飾"]


@pytest.mark.parametrize("text", CJK_BEYOND_THE_BMP)
def test_kanji_outside_the_bmp_are_accepted_in_names_and_texts(text: str) -> None:
    stored = unicodedata.normalize("NFC", text)  # a compatibility ideograph is stored as its unified form
    assert clean_name("name", text) == stored
    assert clean_text("text", f"{text}へようこそ。") == f"{stored}へようこそ。"
