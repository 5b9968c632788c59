"""`hibiki report` tables: platform failures in the daily figures and as a call outcome of the trace."""

from __future__ import annotations

import io

from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki_cli.report import DAILY_COLUMNS, _daily_row, _outcome, _trace_view
from rich.console import Console


def rendered(view: object) -> str:
    output = io.StringIO()
    Console(file=output, width=300, color_system=None).print(view)
    return output.getvalue()


def test_the_daily_table_shows_platform_failures_next_to_the_abandonment_figures() -> None:
    row = pb.DailyReportRow(
        date="2026-11-09", dialed_number="+81312345678", calls=5, abandoned_calls=1, abandonment_rate=0.5,
        platform_failures=2, sms_requested=1,
    )  # fmt: skip
    cells = dict(zip(DAILY_COLUMNS, _daily_row(row), strict=True))
    assert (cells["calls 着信"], cells["abandoned 途中放棄"], cells["rate"]) == (5, 1, "50%")
    assert cells["system failure 障害切断"] == 2


def test_the_trace_names_a_lost_calls_outcome() -> None:
    call = pb.CallRecord(
        call_id="gw-1", dialed_number="+81312345678", outcome=pb.CALL_OUTCOME_PLATFORM_FAILURE,
        end_reason="platform_failure",
    )  # fmt: skip
    reply = pb.TraceCallerResponse(
        verdict=pb.TRACE_VERDICT_NO_SMS_REQUESTED,
        summary="システム障害により通話が切断されました",
        calls=[pb.CallTrace(call=call)],
    )
    headline, calls, _sms = _trace_view(reply)
    assert "システム障害により通話が切断されました" in str(headline)
    assert "platform_failure" in rendered(calls)


def test_an_outcome_a_newer_server_adds_shows_as_its_number() -> None:
    assert _outcome(pb.CALL_OUTCOME_ABANDONED) == "abandoned"
    assert _outcome(99) == "99"  # type: ignore[arg-type]
