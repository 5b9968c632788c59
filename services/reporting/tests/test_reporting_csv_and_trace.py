import csv
import io
import re
from dataclasses import replace
from datetime import date

import pytest
from hibiki_reporting.domain.calls import CallOutcome, materialize_call
from hibiki_reporting.domain.csv_export import (
    CALL_HEADERS,
    HEADERS,
    SMS_HEADERS,
    CsvEncoder,
    CsvEncoding,
    CsvKind,
    csv_lines,
    history_header_line,
    history_line,
    safe_cell,
)
from hibiki_reporting.domain.facts import SmsStatus
from hibiki_reporting.domain.figures import DailyFigures
from hibiki_reporting.domain.labels import CALL_OUTCOME_LABELS, SMS_STATUS_LABELS
from hibiki_reporting.domain.sms import SmsRecord, materialize_sms
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
        assert cells["着信番号"] == "03-1234-5678"  # as the operator writes it: no visible quote in Excel
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


def parsed(kind: CsvKind, lines: list[str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(history_header_line(kind) + "".join(lines))))


def test_the_call_history_lists_each_call_with_numbers_as_written_in_japan() -> None:
    (row,) = parsed(CsvKind.CALLS, [history_line(materialize_call("call-a", CALLS["call-a"]))])
    assert list(row) == list(CALL_HEADERS)
    assert (row["着信番号"], row["発信者番号"]) == ("03-1234-5678", "090-1234-5678")
    assert (row["日付"], row["着信日時"]) == ("2026-11-09", "2026-11-09 10:00:00")
    assert (row["結果"], row["通話ID"]) == ("SMS送信", "call-a")
    withheld = replace(materialize_call("call-a", CALLS["call-a"]), caller_number="")
    assert parsed(CsvKind.CALLS, [history_line(withheld)])[0]["発信者番号"] == "非通知"


def test_the_sms_history_lists_each_request_with_its_status_and_reason_in_japanese() -> None:
    delivered, rejected = (materialize_sms(r, SMS[r]) for r in ("req-a", "req-f"))
    rows = parsed(CsvKind.SMS, [history_line(delivered), history_line(rejected)])
    assert list(rows[0]) == list(SMS_HEADERS)
    assert (rows[0]["送信先番号"], rows[0]["状態"], rows[0]["キャリア"]) == (
        "090-1234-5678",
        "到達",
        "docomo",
    )
    assert (rows[1]["状態"], rows[1]["理由"]) == ("送信不可", "非対応キャリア")
    # Text from a caller or a box stays guarded against formulas.
    hostile = replace(delivered, box_number='=HYPERLINK("http://x")')
    assert "'=HYPERLINK" in history_line(hostile)


def test_every_outcome_and_status_has_a_japanese_label() -> None:
    assert set(CALL_OUTCOME_LABELS) == {o.value for o in CallOutcome}
    assert set(SMS_STATUS_LABELS) == {s.value for s in SmsStatus}


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
    assert "端末に届けられませんでした" in undelivered.summary and "受信制限" in undelivered.summary
    assert answer_trace(calls, [materialize_sms("req-k", SMS["req-k"])]).verdict is TraceVerdict.SMS_PENDING
    # An earlier SMS that arrived is shown beside a later one that did not.
    assert "10:00に依頼した蓄積BOX「予約案内」のSMSは端末への到達を確認" in latest.summary
    assert "なお、" not in answer_trace(calls, [delivered]).summary


def refused(reason: str) -> SmsRecord:
    return replace(materialize_sms("req-f", SMS["req-f"]), reason=reason)


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (refused("opted_out"), "受信拒否（配信停止）に登録"),
        (refused("recipient_rate_limited"), "送信回数が上限"),
        (refused("unknown_box"), "蓄積BOXが見つからない"),
        (refused("withheld_number"), "非通知"),
        (replace(materialize_sms("req-h", SMS["req-h"]), reason="EXPIRED"), "電源が切れているか圏外"),
        (materialize_sms("req-j", SMS["req-j"]), "繰り返し試みましたが"),
        (replace(materialize_sms("req-j", SMS["req-j"]), reason="uncertain_after_crash"), "システム障害"),
    ],
)
def test_trace_explains_each_outcome_in_japanese_without_codes_or_the_wrong_advice(
    record: SmsRecord, says: str
) -> None:
    summary = answer_trace([materialize_call("call-f", CALLS["call-f"])], [record]).summary
    assert says in summary
    assert not re.search(r"[a-z]+_[a-z_]+|[A-Z]{5,}", summary), summary  # no machine codes
    if record.status is SmsStatus.REJECTED:
        # Only a refusal for the kind of number points at the carriers SMS can go to.
        assert "携帯電話番号にのみ送信できます" not in summary
