"""The console over (mutual) TLS, against a ReportService that requires a client certificate and the token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki.reporting.v1 import report_service_pb2_grpc as pb_grpc
from hibiki_cli.main import app
from typer.testing import CliRunner

TOKEN = "token-tls"


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(item: Any) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class StatusOnly(pb_grpc.ReportServiceServicer):
    def GetFinalizationStatus(
        self, request: pb.GetFinalizationStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetFinalizationStatusResponse:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        return pb.GetFinalizationStatusResponse(
            final_through_date="2026-11-20", next_final_through_date="2026-11-21"
        )


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("hibiki test CA", ca_key, None)
    files = {
        "ca.pem": _pem(ca),
        "server.pem": _pem(_certificate("reporting", server_key, (ca.subject, ca_key))),
        "server.key": _pem(server_key),
        "client.pem": _pem(_certificate("operator", client_key, (ca.subject, ca_key))),
        "client.key": _pem(client_key),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_ReportServiceServicer_to_server(StatusOnly(), server)
    credentials = grpc.ssl_server_credentials(
        [(files["server.key"], files["server.pem"])],
        root_certificates=files["ca.pem"],
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield port, directory
    server.stop(None)


def run(port: int, *options: str) -> Any:
    env = {"HIBIKI_REPORTING_ENDPOINT": f"127.0.0.1:{port}", "HIBIKI_TOKEN": TOKEN, "HIBIKI_TIMEOUT": "5"}
    return CliRunner().invoke(app, [*options, "report", "status", "--json"], env=env)


def test_mutual_tls_with_the_ca_and_a_client_certificate(tls_server: tuple[int, Path]) -> None:
    port, certs = tls_server
    result = run(
        port,
        "--tls-ca-file", str(certs / "ca.pem"),
        "--tls-cert-file", str(certs / "client.pem"),
        "--tls-key-file", str(certs / "client.key"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["final_through_date"] == "2026-11-20"


def test_without_a_client_certificate_or_over_plaintext_the_service_is_unreachable(
    tls_server: tuple[int, Path],
) -> None:
    port, certs = tls_server
    for options in (("--tls-ca-file", str(certs / "ca.pem")), ()):
        result = run(port, *options)
        assert result.exit_code == 6, result.stdout + result.stderr
        assert "UNAVAILABLE" in result.stderr


def test_a_client_certificate_needs_its_key(tls_server: tuple[int, Path]) -> None:
    port, certs = tls_server
    result = run(port, "--tls-cert-file", str(certs / "client.pem"))
    assert result.exit_code == 2 and "--tls-key-file" in result.stderr
