import json
import logging

import pytest
from hibiki_runtime.logging import (
    PhoneMaskingFilter,
    configure_logging,
    log_context,
    mask_phone_numbers,
    trace_id_of,
)


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


def test_log_context_fields_reach_every_line_written_inside_it(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("routing", "INFO", json=True)
    log = logging.getLogger("hibiki.test")
    with log_context(call_id="call-7", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
        with log_context(event_id="call-7:3"):
            log.info("decided")
        log.info("after")
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()[-3:]]
    assert lines[0]["call_id"] == "call-7" and lines[0]["event_id"] == "call-7:3"
    assert lines[1]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and "event_id" not in lines[1]
    assert "call_id" not in lines[2]


@pytest.mark.parametrize(
    ("traceparent", "trace_id"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""),
        ("not a traceparent", ""),
        ("", ""),
    ],
)
def test_trace_id_is_read_from_w3c_traceparent(traceparent: str, trace_id: str) -> None:
    assert trace_id_of(traceparent) == trace_id


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("caller ０９０－１２３４－５６７８ typed", "caller *********78 typed"),
        ("caller ＋８１９０１２３４５６７８ typed", "caller +**********78 typed"),
        ("caller 090 1234 5678 typed", "caller *********78 typed"),
    ],
)
def test_numbers_written_any_way_the_runtime_accepts_are_masked(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked
