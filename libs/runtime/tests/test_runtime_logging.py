import json
import logging

import pytest
from hibiki_runtime.logging import PhoneMaskingFilter, configure_logging, mask_phone_numbers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("caller +819012345678 pressed 1", "caller +**********78 pressed 1"),
        ("sent to 090-1234-5678", "sent to *********78"),
        ("landline 03-1234-5678 called", "landline ********78 called"),
        ("call-42 step 3 took 120 ms", "call-42 step 3 took 120 ms"),
        ("order 2026-11-25", "order 2026-11-25"),
    ],
)
def test_phone_numbers_are_masked_but_other_numbers_kept(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked


def test_json_log_lines_never_carry_a_full_phone_number(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("routing", "INFO", json=True)
    logging.getLogger("hibiki.test").info("sms to %s", "09012345678", extra={"recipient": "+819012345678"})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "sms to *********78"
    assert line["recipient"] == "+**********78"
    assert line["service"] == "routing"
    assert line["level"] == "INFO"


def test_filter_keeps_records_flowing() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "n=%s", ("08011112222",), None)
    assert PhoneMaskingFilter().filter(record)
    assert record.getMessage() == "n=*********22"
