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
