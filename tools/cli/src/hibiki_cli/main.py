"""The `hibiki` console: one sub-command group per service, endpoints and token from options or HIBIKI_*."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hibiki_cli import dlq, guidance, report, routing, sms_box
from hibiki_cli.connection import Service, Settings, TlsSettings

app = typer.Typer(
    name="hibiki",
    help="Operate Hibiki: guidance (音声ファイル, オリジナルガイダンス), routing (入力指示ルーティング), "
    "SMS boxes (蓄積BOX), the call & SMS report (着信・SMS送信レポート) and dead letters (dlq).\n\n"
    "Exit codes: 0 done; 1 a check failed (e.g. validate) or the server failed; 2 wrong usage; "
    "3 request refused (invalid field, stale revision, precondition, duplicate); 4 not found; "
    "5 missing or insufficient token; 6 service (or, for dlq, the Kafka broker) unreachable or too slow.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(guidance.app, name="guidance")
app.add_typer(routing.app, name="routing")
app.add_typer(sms_box.app, name="sms-box")
app.add_typer(report.app, name="report")
app.add_typer(dlq.app, name="dlq")


@app.callback()
def configure(
    ctx: typer.Context,
    token: Annotated[
        str, typer.Option(envvar="HIBIKI_TOKEN", help="Bearer token of your tenant.", show_default=False)
    ] = "",
    guidance_endpoint: Annotated[
        str, typer.Option(envvar="HIBIKI_GUIDANCE_ENDPOINT", help="host:port of guidance-tts's gRPC.")
    ] = "127.0.0.1:50051",
    routing_endpoint: Annotated[
        str, typer.Option(envvar="HIBIKI_ROUTING_ENDPOINT", help="host:port of routing's gRPC.")
    ] = "127.0.0.1:50052",
    sms_endpoint: Annotated[
        str, typer.Option(envvar="HIBIKI_SMS_ENDPOINT", help="host:port of sms-gateway's gRPC.")
    ] = "127.0.0.1:50053",
    reporting_endpoint: Annotated[
        str, typer.Option(envvar="HIBIKI_REPORTING_ENDPOINT", help="host:port of reporting's gRPC.")
    ] = "127.0.0.1:50054",
    tls: Annotated[
        bool,
        typer.Option(
            "--tls", envvar="HIBIKI_TLS", help="Connect over TLS (system roots unless --tls-ca-file)."
        ),
    ] = False,
    tls_ca_file: Annotated[
        Path | None,
        typer.Option(
            envvar="HIBIKI_TLS_CA_FILE",
            help="CA certificate (PEM) that signed the services' certificates; implies --tls.",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    tls_cert_file: Annotated[
        Path | None,
        typer.Option(
            envvar="HIBIKI_TLS_CERT_FILE",
            help="Client certificate (PEM) for mutual TLS.",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    tls_key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="HIBIKI_TLS_KEY_FILE",
            help="Private key (PEM) of the client certificate.",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(envvar="HIBIKI_TIMEOUT", help="Seconds each call may take.", min=0.1)
    ] = 30.0,
) -> None:
    if (tls_cert_file is None) != (tls_key_file is None):
        raise typer.BadParameter(
            "mutual TLS needs both --tls-cert-file and --tls-key-file", param_hint="--tls-cert-file"
        )
    ctx.obj = Settings(
        endpoints={
            Service.GUIDANCE: guidance_endpoint,
            Service.ROUTING: routing_endpoint,
            Service.SMS: sms_endpoint,
            Service.REPORTING: reporting_endpoint,
        },
        token=token,
        timeout_seconds=timeout,
        tls=TlsSettings(tls_ca_file, tls_cert_file, tls_key_file)
        if tls or tls_ca_file or tls_cert_file
        else None,
    )


# Every RPC of the four configuration and report APIs, and the `hibiki` command that calls it (the README's
# table; a test fails when an RPC has no command here, or a command named here does not exist).
RPC_COMMANDS: dict[str, str] = {
    "hibiki.guidance.v1.GuidanceService/CreateAudioFile": "guidance create-file",
    "hibiki.guidance.v1.GuidanceService/GetAudioFile": "guidance show-file",
    "hibiki.guidance.v1.GuidanceService/ListAudioFiles": "guidance list --files",
    "hibiki.guidance.v1.GuidanceService/UpdateAudioFile": "guidance update-file",
    "hibiki.guidance.v1.GuidanceService/DeleteAudioFile": "guidance delete-file",
    "hibiki.guidance.v1.GuidanceService/CreateOriginalGuidance": "guidance register",
    "hibiki.guidance.v1.GuidanceService/GetOriginalGuidance": "guidance show",
    "hibiki.guidance.v1.GuidanceService/ListOriginalGuidances": "guidance list",
    "hibiki.guidance.v1.GuidanceService/UpdateOriginalGuidance": "guidance update",
    "hibiki.guidance.v1.GuidanceService/DeleteOriginalGuidance": "guidance delete",
    "hibiki.guidance.v1.GuidanceService/StreamAudio": "guidance play",
    "hibiki.guidance.v1.GuidanceService/Preview": "guidance preview",
    "hibiki.guidance.v1.GuidanceService/SetGuidanceUsage": "guidance set-usage",
    "hibiki.routing.v1.RoutingService/CreateFlow": "routing create",
    "hibiki.routing.v1.RoutingService/GetFlow": "routing show",
    "hibiki.routing.v1.RoutingService/SearchFlows": "routing search",
    "hibiki.routing.v1.RoutingService/UpdateFlow": "routing update, set-digit, remove-digit, set-prompt, "
    "set-menu, set-miss-guidance, set-timeout-guidance, set-business-hours, set-caller-rejection",
    "hibiki.routing.v1.RoutingService/ValidateFlow": "routing validate",
    "hibiki.routing.v1.RoutingService/PublishFlow": "routing publish",
    "hibiki.routing.v1.RoutingService/ListFlowVersions": "routing versions",
    "hibiki.routing.v1.RoutingService/RollbackFlow": "routing rollback",
    "hibiki.routing.v1.RoutingService/DryRunFlow": "routing dry-run",
    "hibiki.routing.v1.RoutingService/AddBlockedNumber": "routing block add",
    "hibiki.routing.v1.RoutingService/RemoveBlockedNumber": "routing block remove",
    "hibiki.routing.v1.RoutingService/ListBlockedNumbers": "routing block list",
    "hibiki.sms.v1.SmsBoxService/CreateSmsBox": "sms-box create",
    "hibiki.sms.v1.SmsBoxService/GetSmsBox": "sms-box show",
    "hibiki.sms.v1.SmsBoxService/SearchSmsBoxes": "sms-box list",
    "hibiki.sms.v1.SmsBoxService/UpdateSmsBox": "sms-box update",
    "hibiki.sms.v1.SmsBoxService/ListSmsBoxRevisions": "sms-box revisions",
    "hibiki.sms.v1.SmsBoxService/PreviewMessage": "sms-box preview",
    "hibiki.sms.v1.SmsBoxService/AddOptOut": "sms-box opt-out add",
    "hibiki.sms.v1.SmsBoxService/RemoveOptOut": "sms-box opt-out remove",
    "hibiki.reporting.v1.ReportService/GetDailyReport": "report daily",
    "hibiki.reporting.v1.ReportService/GetRouteFunnel": "report funnel (or report daily --funnel)",
    "hibiki.reporting.v1.ReportService/ListCalls": "report calls",
    "hibiki.reporting.v1.ReportService/TraceCaller": "report trace-caller",
    "hibiki.reporting.v1.ReportService/GetFinalizationStatus": "report status",
    "hibiki.reporting.v1.ReportService/ExportCsv": "report export-csv",
    "hibiki.reporting.v1.ReportService/GetLinkClickReport": "report link-clicks",
}


def commands_of(description: str) -> list[list[str]]:
    """The command lines an RPC_COMMANDS entry names: "routing update, set-digit" → [[routing, update], …]."""
    first, *more = (part.split("(")[0].strip() for part in description.split(","))
    words = [word for word in first.split() if not word.startswith("-")]
    return [words] + [[*words[:-1], *name.split()] for name in more]
