import pytest
from hibiki_runtime.errors import InvalidArgument
from hibiki_sms_gateway.domain.concatenation import UDHI_FLAG, read_part, ucs2_parts
from hibiki_sms_gateway.domain.message_text import preview, render, split_parts, ucs2_units, validate_content


def test_a_surrogate_pair_counts_as_two_characters() -> None:
    assert ucs2_units("あ") == 1
    assert ucs2_units("😀") == 2
    assert ucs2_units("予約😀です") == 6


def test_seventy_characters_fit_one_sms_and_seventy_one_need_two_parts_of_67() -> None:
    assert preview("あ" * 70, "").segments == 1
    result = preview("あ" * 71, "")
    assert result.segments == 2
    assert [len(part) for part in split_parts("あ" * 71)] == [67, 4]


def test_an_emoji_is_never_split_across_parts() -> None:
    text = "あ" * 66 + "😀" + "い" * 10
    parts = split_parts(text)
    assert parts[0] == "あ" * 66
    assert parts[1].startswith("😀")
    assert "".join(parts) == text


def test_preview_renders_the_url_on_its_own_line_and_counts_what_is_left() -> None:
    result = preview("ご予約はこちら", "https://example.jp/r", max_characters=660)
    assert result.rendered_text == "ご予約はこちら\nhttps://example.jp/r"
    assert result.characters == 7 + 1 + 20
    assert result.characters_left == 660 - 28
    assert result.encoding == "UCS-2"


def test_render_without_url_is_the_text_alone() -> None:
    assert render("こんにちは", "") == "こんにちは"


def test_content_over_the_maximum_is_refused_naming_message_text() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_content("あ" * 650, "https://example.jp/abcdefghij", max_characters=660)
    assert error.value.violations[0].field == "message_text"
    # 650 + a line break + 29 = 680: says by how much it is too long.
    assert "680 characters" in error.value.violations[0].description
    assert "20 over the maximum of 660" in error.value.violations[0].description


def test_preview_of_a_text_over_the_maximum_says_by_how_much() -> None:
    result = preview("あ" * 650, "https://example.jp/abcdefghij", max_characters=660)
    assert (result.characters, result.characters_left, result.characters_over) == (680, 0, 20)
    assert preview("あ", "", max_characters=660).characters_over == 0


@pytest.mark.parametrize(
    "url", ["ftp://example.jp/x", "example.jp", "https://exa mple.jp", "javascript:alert(1)"]
)
def test_a_malformed_or_non_http_url_is_refused_naming_url(url: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_content("本文", url)
    assert [v.field for v in error.value.violations] == ["url"]


def test_a_200_character_message_becomes_numbered_parts_that_reassemble_exactly() -> None:
    text = ("お問い合わせありがとうございます。詳細は下記URLをご確認ください。" * 6)[:200]
    assert len(text) == 200
    parts = ucs2_parts(text, reference=42)
    assert [(p.number, p.total) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    assert all(p.esm_class == UDHI_FLAG and len(p.short_message) <= 140 for p in parts)
    received = [read_part(p.short_message, p.esm_class) for p in parts]
    assert {r.reference for r in received} == {42}
    assert "".join(r.text for r in sorted(received, key=lambda r: r.number)) == text


def test_a_single_part_has_no_header() -> None:
    (part,) = ucs2_parts("短い", reference=1)
    assert part.esm_class == 0
    assert part.short_message == "短い".encode("utf-16-be")
