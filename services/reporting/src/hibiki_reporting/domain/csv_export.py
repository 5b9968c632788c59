"""CSV of the daily report: Japanese headers, Excel-friendly encodings, safe against formula injection."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum

from hibiki_runtime.phone import written_form

from .calendar import TOKYO
from .calls import CallRecord
from .figures import DailyFigures
from .labels import (
    REJECT_REASON_LABELS,
    call_outcome_label,
    carrier_label,
    end_reason_label,
    sms_reason_label,
    sms_status_label,
)
from .sms import SmsRecord


class CsvEncoding(StrEnum):
    UTF8_BOM = "utf-8-sig"
    CP932 = "cp932"


class CsvKind(StrEnum):
    """What a CSV export lists: figures per day and dialed number, or the calls or SMS themselves."""

    DAILY = "daily"
    CALLS = "calls"
    SMS = "sms"


# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# Calls the platform cut off before a terminal target (never counted as 途中放棄).
PLATFORM_FAILURES_HEADER = "通話切断(システム障害)数"
# Of 途中放棄数: callers who chose the SMS and hung up while keying in a mobile number (or confirming it).
NUMBER_CAPTURE_ABANDONED_HEADER = "途中放棄数(携帯番号入力中)"

# A final day's figures stay as they were at finalization; what moved since, e.g. "SMS到達数 +2".
CHANGES_HEADER = "確定後の変更"
_FIGURE_HEADERS = {
    "calls": "着信数",
    "abandoned_calls": "途中放棄数",
    "rejected_calls": "着信拒否数",
    "sms_requested": "SMS送信依頼数",
    "sms_accepted": "SMS送信完了数",
    "sms_delivered": "SMS到達数",
    "sms_undelivered": "SMS不達数",
    "sms_rejected": "SMS送信不可数",
    "sms_failed": "SMS送信失敗数",
    "platform_failures": PLATFORM_FAILURES_HEADER,
    "abandoned_in_number_capture": NUMBER_CAPTURE_ABANDONED_HEADER,
    "sms_requested_to_captured_number": "SMS送信依頼数(入力された携帯番号宛て)",
}


def changes_text(figures: DailyFigures) -> str:
    """The changes after finalization as the operator reads them: "SMS到達数 +2、SMS送信失敗数 -1"."""
    return "、".join(
        f"{_FIGURE_HEADERS.get(name, name)} {change:+d}"
        for name, change in figures.changes_after_finalization.items()
    )


# Columns added later go after 状態, so that sheets and macros reading earlier columns by position keep
# working.
HEADERS = (
    "日付",
    "着信番号",
    "着信数",
    "途中放棄数",
    "途中放棄率(%)",
    "着信拒否数",
    "SMS送信依頼数",
    "SMS送信完了数",
    "SMS到達数",
    "SMS不達数",
    "SMS送信不可数",
    *(f"SMS送信不可({label})" for label in REJECT_REASON_LABELS.values()),
    "SMS送信失敗数",
    "状態",
    PLATFORM_FAILURES_HEADER,
    NUMBER_CAPTURE_ABANDONED_HEADER,
    CHANGES_HEADER,
)


def safe_cell(value: str | int) -> str:
    """The cell's text; text a spreadsheet would evaluate gets a leading single quote."""
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_TRIGGERS):
        return "'" + text
    return text


def row_cells(figures: DailyFigures) -> list[str | int]:
    return [
        figures.day.isoformat(),
        written_form(figures.dialed_number),
        figures.calls,
        figures.abandoned_calls,
        f"{figures.abandonment_rate * 100:.1f}",
        figures.rejected_calls,
        figures.sms_requested,
        figures.sms_accepted,
        figures.sms_delivered,
        figures.sms_undelivered,
        figures.sms_rejected_total,
        *(figures.sms_rejected.get(reason, 0) for reason in REJECT_REASON_LABELS),
        figures.sms_failed,
        "確定" if figures.final else "速報",
        figures.platform_failures,
        figures.abandoned_in_number_capture,
        changes_text(figures),
    ]


# One line per call (着信履歴) and per SMS request (SMS送信履歴). Phone numbers are written as operators write
# them ("03-1234-5678"), times in Japan time.
CALL_HEADERS = ("日付", "着信日時", "終了日時", "着信番号", "発信者番号", "結果", "終了理由", "通話ID")
SMS_HEADERS = (
    "日付", "依頼日時", "着信番号", "送信先番号", "SMSボックス", "状態", "理由", "キャリア", "状態の日時",
    "リンククリック数", "通話ID", "依頼ID",
)  # fmt: skip
WITHHELD = "非通知"


def _time(at: datetime | None) -> str:
    return at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S") if at is not None else ""


def call_cells(record: CallRecord) -> list[str | int]:
    return [
        record.report_date.isoformat(),
        _time(record.start_time or record.first_seen),
        _time(record.end_time),
        written_form(record.dialed_number),
        written_form(record.caller_number) if record.caller_number else WITHHELD,
        call_outcome_label(record.outcome),
        end_reason_label(record.end_reason),
        record.call_id,
    ]


def sms_cells(record: SmsRecord) -> list[str | int]:
    return [
        record.report_date.isoformat(),
        _time(record.request_time or record.first_seen),
        written_form(record.dialed_number),
        written_form(record.recipient) if record.recipient else WITHHELD,
        record.box_number,
        sms_status_label(record.status),
        sms_reason_label(record.status, record.reason),
        carrier_label(record.carrier) if record.carrier else "",
        _time(record.status_time),
        record.clicks,
        record.call_id,
        record.request_id,
    ]


def _line(cells: Iterable[str | int]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


def header_line() -> str:
    return _line(HEADERS)


def row_line(figures: DailyFigures) -> str:
    return _line(row_cells(figures))


def history_header_line(kind: CsvKind) -> str:
    return _line(CALL_HEADERS if kind is CsvKind.CALLS else SMS_HEADERS)


def history_line(record: CallRecord | SmsRecord) -> str:
    return _line(call_cells(record) if isinstance(record, CallRecord) else sms_cells(record))


def csv_lines(rows: Iterable[DailyFigures]) -> Iterator[str]:
    """The header line, then one line per row, produced one at a time."""
    yield header_line()
    for row in rows:
        yield row_line(row)


class CsvEncoder:
    """Encodes CSV text incrementally; UTF-8 gets its byte-order mark once, at the start."""

    def __init__(self, encoding: CsvEncoding) -> None:
        # Characters CP932 lacks become "?" rather than failing half-way through a download.
        self._encoder = codecs.getincrementalencoder(encoding.value)(errors="replace")

    def encode(self, text: str) -> bytes:
        return self._encoder.encode(text)
