"""CSV of the daily report: Japanese headers, Excel-friendly encodings, safe against formula injection."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from enum import StrEnum

from .figures import DailyFigures
from .labels import REJECT_REASON_LABELS


class CsvEncoding(StrEnum):
    UTF8_BOM = "utf-8-sig"
    CP932 = "cp932"


# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# Calls the platform cut off before a terminal target (never counted as 途中放棄).
PLATFORM_FAILURES_HEADER = "通話切断(システム障害)数"

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
        figures.dialed_number,
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
    ]


def _line(cells: Iterable[str | int]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


def header_line() -> str:
    return _line(HEADERS)


def row_line(figures: DailyFigures) -> str:
    return _line(row_cells(figures))


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
