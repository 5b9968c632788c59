from datetime import UTC, datetime, timedelta

import pytest
from hibiki_runtime.errors import Aborted, InvalidArgument
from hibiki_sms_gateway.domain.sms_box import create_box, edit_box

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def a_box():
    return create_box("t", "101", "予約案内", "ご予約はこちら", "https://example.jp/a", actor="op", now=NOW)


def test_creating_a_box_records_revision_one_with_the_initial_content() -> None:
    box, revision = a_box()
    assert box.revision == 1
    assert (revision.actor, revision.message_text_after, revision.url_after) == (
        "op",
        "ご予約はこちら",
        "https://example.jp/a",
    )


def test_creating_a_box_reports_every_bad_field() -> None:
    with pytest.raises(InvalidArgument) as error:
        create_box("t", "no spaces!", " ", "", "mailto:x@y", actor="op", now=NOW)
    assert {v.field for v in error.value.violations} == {"box_number", "box_name", "message_text", "url"}


@pytest.mark.parametrize("field", ["box_number", "box_name"])
def test_number_and_name_can_never_change(field: str) -> None:
    box, _ = a_box()
    with pytest.raises(InvalidArgument) as error:
        edit_box(box, {field: "changed"}, expected_revision=1, actor="op", now=NOW)
    assert error.value.violations[0].field == field
    assert "cannot be changed" in error.value.violations[0].description


def test_the_unchanged_name_may_accompany_an_edit() -> None:
    box, _ = a_box()
    updated, _ = edit_box(
        box, {"box_name": "予約案内", "message_text": "新"}, expected_revision=1, actor="op", now=NOW
    )
    assert (updated.box_name, updated.message_text) == ("予約案内", "新")


def test_editing_text_and_url_keeps_before_and_after_and_bumps_the_revision() -> None:
    box, _ = a_box()
    later = NOW + timedelta(hours=1)
    updated, revision = edit_box(
        box,
        {"message_text": "新しい本文", "url": "https://example.jp/b"},
        expected_revision=1,
        actor="op2",
        now=later,
    )
    assert (updated.revision, updated.message_text, updated.url, updated.updated_at) == (
        2,
        "新しい本文",
        "https://example.jp/b",
        later,
    )
    assert updated.box_name == box.box_name and updated.created_at == NOW
    assert (revision.message_text_before, revision.url_before) == ("ご予約はこちら", "https://example.jp/a")
    assert (revision.actor, revision.changed_at, revision.revision) == ("op2", later, 2)


def test_editing_a_stale_revision_is_aborted() -> None:
    box, _ = a_box()
    with pytest.raises(Aborted):
        edit_box(box, {"message_text": "x"}, expected_revision=0, actor="op", now=NOW)


def test_an_unknown_field_in_the_mask_is_refused() -> None:
    box, _ = a_box()
    with pytest.raises(InvalidArgument) as error:
        edit_box(box, {"revision": "9"}, expected_revision=1, actor="op", now=NOW)
    assert error.value.violations[0].field == "update_mask"
