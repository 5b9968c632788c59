"""`hibiki report`: 着信・SMS送信レポート (the daily call & SMS report) from reporting."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki.reporting.v1 import report_service_pb2_grpc as pb_grpc
from hibiki.sms.v1 import sms_results_pb2
from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

from hibiki_cli.connection import Service, connect
from hibiki_cli.output import (
    TOKYO,
    JsonOption,
    OutputOption,
    as_dict,
    chosen,
    emit,
    local_time,
    progress_console,
    stdout,
    table,
)

app = typer.Typer(
    help="着信・SMS送信レポート (daily call & SMS report) — reporting. Days are Asia/Tokyo days; figures are "
    "provisional (速報) until the seed's publication rule makes them final (確定). "
    "Data older than 90 days is deleted and cannot be recovered: export the CSV regularly.",
    no_args_is_help=True,
)


def _today() -> date:
    return datetime.now(TOKYO).date()


FromOption = Annotated[
    datetime | None,
    typer.Option("--from", formats=["%Y-%m-%d"], help="First day (JST). Default: 6 days ago."),
]
ToOption = Annotated[
    datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (JST). Default: today.")
]
DialedOption = Annotated[str, typer.Option(help="Only this dialed number (着信番号).")]


def _range(start: datetime | None, end: datetime | None) -> pb.DateRange:
    last = end.date() if end else _today()
    first = start.date() if start else last - timedelta(days=6)
    return pb.DateRange(start_date=first.isoformat(), end_date=last.isoformat())


def _reason(value: sms_results_pb2.RejectReason.ValueType) -> str:
    return sms_results_pb2.RejectReason.Name(value).removeprefix("REJECT_REASON_").lower()


def _outcome(value: pb.CallOutcome.ValueType) -> str:
    """E.g. "platform_failure"; the number of an outcome that a newer reporting adds."""
    known = pb.CallOutcome.DESCRIPTOR.values_by_number.get(value)
    return known.name.removeprefix("CALL_OUTCOME_").lower() if known else str(value)


DAILY_COLUMNS = [
    "date", "dialed number", "calls 着信", "abandoned 途中放棄", "rate", "system failure 障害切断",
    "SMS requested", "送信完了 accepted", "delivered", "undelivered", "rejected", "failed", "status",
]  # fmt: skip


def _daily_row(r: pb.DailyReportRow) -> tuple[object, ...]:
    rejected = ", ".join(f"{_reason(x.reason)} {x.count}" for x in r.sms_rejected)
    return (
        r.date, r.dialed_number, r.calls, r.abandoned_calls, f"{r.abandonment_rate:.0%}", r.platform_failures,
        r.sms_requested, r.sms_accepted, r.sms_delivered, r.sms_undelivered, rejected, r.sms_failed,
        "確定 final" if r.final else "速報 provisional",
    )  # fmt: skip


def _daily_table(rows: list[pb.DailyReportRow]) -> object:
    return table("着信・SMS送信レポート", DAILY_COLUMNS, [_daily_row(r) for r in rows])


@app.command()
def daily(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    dialed_number: DialedOption = "",
    funnel: Annotated[
        bool, typer.Option(help="Also show where callers abandon, per route (途中放棄).")
    ] = False,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """The daily report per dialed number for a range of days."""
    days = _range(start, end)
    with connect(ctx, Service.REPORTING) as api:
        stub = pb_grpc.ReportServiceStub(api.channel)
        reply = api.unary(
            stub.GetDailyReport, pb.GetDailyReportRequest(range=days, dialed_number=dialed_number)
        )
        rows = list(reply.rows)
        routes = (
            list(
                api.unary(
                    stub.GetRouteFunnel, pb.GetRouteFunnelRequest(range=days, dialed_number=dialed_number)
                ).rows
            )
            if funnel
            else []
        )
    document: dict[str, object] = {"rows": [as_dict(row) for row in rows]}
    if funnel:
        document["funnel"] = [as_dict(row) for row in routes]
    funnel_table = table(
        "per route (funnel)",
        ["route", "reached", "invalid inputs", "timeouts", "abandoned here"],
        [
            (f"{r.route_name} ({r.route_id})", r.reached, r.invalid_inputs, r.timeouts, r.abandoned)
            for r in routes
        ],
    )
    emit(
        document,
        chosen(output, json_output),
        lambda: [_daily_table(rows), *([funnel_table] if funnel else [])],
        tsv_rows=lambda: document["rows"],  # a row per day and dialed number (the funnel: `report funnel`)
    )


class Encoding(StrEnum):
    UTF8 = "utf-8"
    CP932 = "cp932"


class CsvKind(StrEnum):
    DAILY = "daily"
    CALLS = "calls"
    SMS = "sms"

    @property
    def proto(self) -> pb.CsvKind.ValueType:
        return pb.CsvKind.Value("CSV_KIND_" + self.name)


@app.command("export-csv")
def export_csv(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    dialed_number: DialedOption = "",
    encoding: Annotated[
        Encoding, typer.Option(help="utf-8 (with BOM) or cp932 (Shift_JIS for older Excel).")
    ] = Encoding.UTF8,
    kind: Annotated[
        CsvKind,
        typer.Option("--kind", help="daily: a row per day and number; calls: per call; sms: per SMS."),
    ] = CsvKind.DAILY,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="File to write ('-' for stdout). Default: report_<from>_<to>.csv.",
        ),
    ] = None,
) -> None:
    """Download the report as CSV (Japanese headers, safe to open in Excel)."""
    days = _range(start, end)
    request = pb.ExportCsvRequest(
        range=days,
        dialed_number=dialed_number,
        encoding=pb.CSV_ENCODING_CP932 if encoding is Encoding.CP932 else pb.CSV_ENCODING_UTF8_BOM,
        kind=kind.proto,
    )
    data = bytearray()
    with (
        connect(ctx, Service.REPORTING) as api,
        Progress(SpinnerColumn(), TextColumn("exporting"), DownloadColumn(), TransferSpeedColumn(),
                 console=progress_console, transient=True) as progress,
    ):  # fmt: skip
        task = progress.add_task("export", total=None)
        for chunk in api.stream(pb_grpc.ReportServiceStub(api.channel).ExportCsv, request):
            data.extend(chunk.data)
            progress.update(task, completed=len(data))
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(data)
        return
    target = output or Path(f"report_{days.start_date.replace('-', '')}_{days.end_date.replace('-', '')}.csv")
    target.write_bytes(data)
    stdout.print(f"wrote {len(data)} bytes ({encoding.value}) to {target}")


def _path(call: pb.CallRecord) -> str:
    return " → ".join(
        f"{step.route_name or step.route_id}[{step.digits or '-'}]"
        + (f" ミス{step.invalid_attempts}" if step.invalid_attempts else "")
        + (f" タイムアウト{step.timeout_attempts}" if step.timeout_attempts else "")
        for step in call.path
    )


def _trace_view(reply: pb.TraceCallerResponse) -> list[object]:
    verdict = pb.TraceVerdict.Name(reply.verdict).removeprefix("TRACE_VERDICT_").lower()
    calls = table(
        "① calls 着信履歴",
        ["call", "started (JST)", "dialed number", "route path", "outcome"],
        [
            (
                t.call.call_id,
                local_time(t.call.start_time),
                t.call.dialed_number,
                _path(t.call),
                _outcome(t.call.outcome),
            )
            for t in reply.calls
        ],
    )
    sms = table(
        "②③ SMS as sent and the carrier result",
        ["call", "requested (JST)", "蓄積BOX", "message and URL as sent", "carrier", "status", "reason"],
        [
            (
                t.call.call_id,
                local_time(s.request_time),
                f"{s.snapshot.box_number} {s.snapshot.box_name}",
                s.snapshot.rendered_text or f"{s.snapshot.message_text} {s.snapshot.url}",
                sms_results_pb2.Carrier.Name(s.carrier).removeprefix("CARRIER_").lower(),
                pb.SmsStatus.Name(s.status).removeprefix("SMS_STATUS_").lower(),
                s.reason,
            )
            for t in reply.calls
            for s in t.sms
        ],
    )
    return [f"[bold]{verdict}[/]: {reply.summary}", calls, sms]


@app.command("trace-caller")
def trace_caller(
    ctx: typer.Context,
    caller_number: Annotated[
        str, typer.Argument(help="The caller's number, e.g. 090-1234-5678 or +819012345678.")
    ],
    start: FromOption = None,
    end: ToOption = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """The "SMS did not arrive" checklist (SMSが届かない ①–③) for one caller number."""
    request = pb.TraceCallerRequest(caller_number=caller_number, range=_range(start, end))
    with connect(ctx, Service.REPORTING) as api:
        reply = api.unary(pb_grpc.ReportServiceStub(api.channel).TraceCaller, request)
    emit(reply, chosen(output, json_output), lambda: _trace_view(reply))


@app.command()
def status(
    ctx: typer.Context,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"],
            help='The moment asked about, JST ("2026-12-01 13:00"). Default: now.',
        ),
    ] = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Which days are final (確定) and when the next days become final (13:00 JST on business days)."""
    with connect(ctx, Service.REPORTING) as api:
        reply = api.unary(
            pb_grpc.ReportServiceStub(api.channel).GetFinalizationStatus, _finalization_request(as_of)
        )
    emit(
        reply,
        chosen(output, json_output),
        lambda: (
            f"final (確定) through {reply.final_through_date}; "
            f"next: {local_time(reply.next_finalization_time)} JST makes days through "
            f"{reply.next_final_through_date} final"
        ),
    )


def _finalization_request(as_of: datetime | None) -> pb.GetFinalizationStatusRequest:
    request = pb.GetFinalizationStatusRequest()
    if as_of is not None:
        request.as_of.FromDatetime(as_of.replace(tzinfo=TOKYO).astimezone(UTC))
    return request


def _funnel_table(routes: list[pb.RouteFunnelRow]) -> object:
    return table(
        "per route (funnel)",
        ["flow", "dialed number", "route", "reached", "invalid inputs", "timeouts", "abandoned here"],
        [
            (r.flow_id, r.dialed_number, f"{r.route_name} ({r.route_id})", r.reached, r.invalid_inputs,
             r.timeouts, r.abandoned)
            for r in routes
        ],
    )  # fmt: skip


@app.command()
def funnel(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    dialed_number: DialedOption = "",
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Where callers abandon, per route (途中放棄): reached, invalid inputs, timeouts, abandoned."""
    request = pb.GetRouteFunnelRequest(range=_range(start, end), dialed_number=dialed_number)
    with connect(ctx, Service.REPORTING) as api:
        rows = list(api.unary(pb_grpc.ReportServiceStub(api.channel).GetRouteFunnel, request).rows)
    emit(rows, chosen(output, json_output), lambda: _funnel_table(rows))


class Outcome(StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    SMS_SENT = "sms-sent"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    NOT_IN_SERVICE = "not-in-service"
    REJECTED = "rejected"
    PLATFORM_FAILURE = "platform-failure"
    ABANDONED_IN_NUMBER_CAPTURE = "abandoned-in-number-capture"

    @property
    def proto(self) -> pb.CallOutcome.ValueType:
        return pb.CallOutcome.Value("CALL_OUTCOME_" + self.name)


@app.command()
def calls(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    dialed_number: DialedOption = "",
    caller: Annotated[str, typer.Option(help="Only calls from this number.")] = "",
    outcome: Annotated[Outcome | None, typer.Option(help="Only calls that ended like this.")] = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every call of a range of days (着信履歴): when, from whom, the route path, how it ended."""
    request = pb.ListCallsRequest(
        range=_range(start, end),
        dialed_number=dialed_number,
        caller_number=caller,
        outcome=outcome.proto if outcome else pb.CALL_OUTCOME_UNSPECIFIED,
    )
    with connect(ctx, Service.REPORTING) as api:
        found = api.every_page(pb_grpc.ReportServiceStub(api.channel).ListCalls, request, "calls")
    emit(
        found,
        chosen(output, json_output),
        lambda: table(
            "calls 着信履歴",
            ["call", "started (JST)", "dialed number", "caller", "route path", "outcome"],
            [
                (
                    c.call_id,
                    local_time(c.start_time),
                    c.dialed_number,
                    c.caller_number,
                    _path(c),
                    _outcome(c.outcome),
                )
                for c in found
            ],
        ),
    )


@app.command("link-clicks")
def link_clicks(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    dialed_number: DialedOption = "",
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """How many SMS recipients opened the URL, per day and SMS box."""
    request = pb.GetLinkClickReportRequest(range=_range(start, end), dialed_number=dialed_number)
    with connect(ctx, Service.REPORTING) as api:
        rows = list(api.unary(pb_grpc.ReportServiceStub(api.channel).GetLinkClickReport, request).rows)
    emit(
        rows,
        chosen(output, json_output),
        lambda: table(
            "URL clicks",
            ["date", "蓄積BOX", "SMS accepted", "SMS clicked", "clicks", "click-through"],
            [
                (r.date, r.box_number, r.sms_accepted, r.sms_clicked, r.clicks, f"{r.click_through_rate:.0%}")
                for r in rows
            ],
        ),
    )
