import csv
import io
from dataclasses import replace
from datetime import date

from hibiki_reporting.domain.calls import materialize_call
from hibiki_reporting.domain.csv_export import HEADERS, CsvEncoder, CsvEncoding, csv_lines, safe_cell
from hibiki_reporting.domain.figures import DailyFigures
from hibiki_reporting.domain.sms import materialize_sms
from hibiki_reporting.domain.trace import TraceVerdict, answer_trace

from services.reporting.tests.reporting_recorded import CALLS, SHOP, SMS

ROW = DailyFigures(
    date(2026, 11, 9), SHOP, calls=6, abandoned_calls=1, sms_requested=4, sms_accepted=2,
    sms_delivered=1, sms_undelivered=1, sms_rejected={"unsupported_carrier": 1}, sms_failed=1, final=True,
)  # fmt: skip


def encoded(rows: list[DailyFigures], encoding: CsvEncoding) -> bytes:
    encoder = CsvEncoder(encoding)
    return b"".join(encoder.encode(line) for line in csv_lines(rows))


def test_cells_that_spreadsheets_would_evaluate_are_quoted() -> None:
    for dangerous in ("=1+1", "+81312345678", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("予約") == "予約"
    assert safe_cell(12) == "12"


def test_csv_decodes_as_cp932_and_utf8_with_bom_with_exact_figures() -> None:
    utf8 = encoded([ROW], CsvEncoding.UTF8_BOM)
    cp932 = encoded([ROW], CsvEncoding.CP932)

    assert utf8.startswith(b"\xef\xbb\xbf")
    assert utf8.count(b"\xef\xbb\xbf") == 1
    for text in (utf8.decode("utf-8-sig"), cp932.decode("cp932")):
        header, row = list(csv.reader(io.StringIO(text)))
        assert header == list(HEADERS)
        cells = dict(zip(header, row, strict=True))
        assert cells["日付"] == "2026-11-09"
        assert cells["着信番号"] == "'+81312345678"
        assert (cells["着信数"], cells["途中放棄数"], cells["途中放棄率(%)"]) == ("6", "1", "16.7")
        assert (cells["SMS送信依頼数"], cells["SMS送信完了数"]) == ("4", "2")
        assert (cells["SMS到達数"], cells["SMS不達数"], cells["SMS送信失敗数"]) == ("1", "1", "1")
        assert (cells["SMS送信不可数"], cells["SMS送信不可(非対応キャリア)"]) == ("1", "1")
        assert cells["SMS送信不可(番号不正)"] == "0"
        assert cells["状態"] == "確定"


def test_csv_is_produced_line_by_line() -> None:
    lines = csv_lines(replace(ROW, day=date(2026, 11, d)) for d in range(1, 31))
    assert next(lines).startswith("日付,")
    assert next(lines).startswith("2026-11-01,")


def test_trace_without_calls_says_the_caller_probably_did_not_call() -> None:
    answer = answer_trace([], [])
    assert answer.verdict is TraceVerdict.NO_CALL_FOUND
    assert "お電話されていない可能性" in answer.summary


def test_trace_of_calls_without_sms() -> None:
    answer = answer_trace([materialize_call("call-b", CALLS["call-b"])], [])
    assert answer.verdict is TraceVerdict.NO_SMS_REQUESTED
    assert "着信履歴は1件" in answer.summary


def test_trace_reports_carrier_result_and_reason_of_the_latest_sms() -> None:
    calls = [materialize_call("call-a", CALLS["call-a"])]
    delivered = materialize_sms("req-a", SMS["req-a"])
    rejected = materialize_sms("req-f", SMS["req-f"])

    assert answer_trace(calls, [delivered]).verdict is TraceVerdict.SMS_DELIVERED
    assert "docomoから端末への到達を確認" in answer_trace(calls, [delivered]).summary
    latest = answer_trace(calls, [delivered, rejected])
    assert latest.verdict is TraceVerdict.SMS_REJECTED
    assert "非対応キャリア" in latest.summary
    assert "予約案内" in latest.summary
    undelivered = answer_trace(calls, [materialize_sms("req-h", SMS["req-h"])])
    assert undelivered.verdict is TraceVerdict.SMS_UNDELIVERED
    assert "UNDELIV" in undelivered.summary and "受信制限" in undelivered.summary
    assert answer_trace(calls, [materialize_sms("req-k", SMS["req-k"])]).verdict is TraceVerdict.SMS_PENDING
