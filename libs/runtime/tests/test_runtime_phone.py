import pytest
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.phone import PHONE_HINT, is_e164, parse_phone, require_phone, to_e164, written_form


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("03-1234-5678", "+81312345678"),
        ("(03)1234-5678", "+81312345678"),
        ("0312345678", "+81312345678"),
        ("090 1234 5678", "+819012345678"),
        ("090-1234-5678", "+819012345678"),
        ("０９０１２３４５６７８", "+819012345678"),
        ("０９０－１２３４－５６７８", "+819012345678"),
        ("０３ー１２３４ー５６７８", "+81312345678"),
        ("+819012345678", "+819012345678"),
        ("+81 90-1234-5678", "+819012345678"),
        ("＋８１９０１２３４５６７８", "+819012345678"),
        (" 0120-000-000 ", "+81120000000"),
        ("+1 415 555 2671", "+14155552671"),
    ],
)
def test_every_way_people_write_a_number_gives_the_same_e164(written: str, e164: str) -> None:
    assert to_e164(written) == e164
    assert require_phone("n", written) == e164


@pytest.mark.parametrize(
    "written",
    [
        "",
        " ",
        "abc",
        "12",
        "090-1234-5678ext",
        "0120-GO-HIBIKI",
        "١٢٣٤٥٦٧٨٩٠",
        "+",
        "1" * 300,
        "0312345678\x00",
    ],
)
def test_what_is_not_a_phone_number_is_refused_with_one_message(written: str) -> None:
    assert parse_phone(written) is None
    with pytest.raises(InvalidArgument) as refused:
        require_phone("caller_number", written)
    assert refused.value.violations[0].field == "caller_number"
    assert refused.value.violations[0].description == PHONE_HINT


def test_the_parsed_number_carries_what_domain_rules_need() -> None:
    phone = parse_phone("090-1234-5678")
    assert phone is not None
    assert (phone.country_code, phone.national_number) == (81, "9012345678")


def test_only_the_e164_form_itself_is_e164() -> None:
    assert is_e164("+819012345678")
    assert not is_e164("09012345678") and not is_e164("+819012345678\n") and not is_e164("")


@pytest.mark.parametrize(
    ("e164", "written"),
    [
        ("+81312345678", "03-1234-5678"),
        ("+819012345678", "090-1234-5678"),
        ("+81120123456", "0120-123-456"),
        ("+16502530000", "010 1 650-253-0000"),  # as dialled from Japan
        ("", ""),
        ("anonymous", "anonymous"),
    ],
)
def test_a_stored_number_is_written_as_an_operator_in_japan_writes_it(e164: str, written: str) -> None:
    assert written_form(e164) == written
    if e164:
        assert to_e164(written) in (e164, None)  # reads back (foreign forms with 010 excepted)
