import pytest
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.field_mask import update_paths

ALLOWED = ("message_text", "url")


@pytest.mark.parametrize("paths", [[], ()])
def test_an_absent_or_empty_mask_is_refused_naming_the_mask_and_the_fields_it_may_list(
    paths: list[str],
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        update_paths(paths, ALLOWED)
    (violation,) = refused.value.violations
    assert violation.field == "update_mask"
    assert "required" in violation.description and "message_text, url" in violation.description


def test_a_path_the_rpc_does_not_update_is_refused() -> None:
    with pytest.raises(InvalidArgument) as refused:
        update_paths(["url", "colour"], ALLOWED)
    assert "colour" in refused.value.violations[0].description


def test_named_paths_come_back_in_order_once_each() -> None:
    assert update_paths(["url", "message_text", "url"], ALLOWED) == ("url", "message_text")
