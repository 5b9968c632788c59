"""Mutual TLS on the gRPC port and JWTs on HTTP routes, with a throwaway CA made in the test."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as pb_grpc
from hibiki_runtime.auth import JwtAuthenticator, Role, hmac_key, require_role
from hibiki_runtime.grpc_server import create_server, tls_server_credentials
from hibiki_runtime.http import http_principal
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry

SECRET = "k" * 32
AUTHENTICATOR = JwtAuthenticator([hmac_key("k1", SECRET)], issuer="idp", audience="hibiki")


def token(role: str = "operator", tenant: str = "tenant-a") -> str:
    claims = {
        "iss": "idp",
        "aud": "hibiki",
        "sub": "svc",
        "tenant_id": tenant,
        "role": role,
        "exp": datetime.now(UTC) + timedelta(minutes=1),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})


@dataclass
class Pki:
    ca: bytes
    server_cert: Path
    server_key: Path
    ca_file: Path
    client_cert: bytes
    client_key: bytes
    stranger_cert: bytes
    stranger_key: bytes


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, *, ca: bool
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _self_signed_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return key, _certificate(name, key, subject, key, ca=True)


def _leaf(name: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, key, ca.subject, ca_key, ca=False)
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca = _self_signed_ca("hibiki-test-ca")
    other_key, other_ca = _self_signed_ca("someone-else")
    server_cert, server_key = _leaf("localhost", ca_key, ca)
    client_cert, client_key = _leaf("routing", ca_key, ca)
    stranger_cert, stranger_key = _leaf("stranger", other_key, other_ca)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    for name, data in [("server.crt", server_cert), ("server.key", server_key), ("ca.crt", ca_pem)]:
        (folder / name).write_bytes(data)
    return Pki(
        ca_pem,
        folder / "server.crt",
        folder / "server.key",
        folder / "ca.crt",
        client_cert,
        client_key,
        stranger_cert,
        stranger_key,
    )


class BoxServicer(pb_grpc.SmsBoxServiceServicer):
    async def GetSmsBox(self, request: pb.GetSmsBoxRequest, context: Any) -> pb.GetSmsBoxResponse:
        principal = require_role(Role.OPERATOR)
        return pb.GetSmsBoxResponse(sms_box=pb.SmsBox(box_number="1", box_name=principal.tenant_id))


@pytest.fixture
async def mtls_port(pki: Pki) -> AsyncIterator[int]:
    server, port, health = create_server(
        "127.0.0.1:0",
        registrars=[
            (
                "hibiki.sms.v1.SmsBoxService",
                lambda s: pb_grpc.add_SmsBoxServiceServicer_to_server(BoxServicer(), s),  # type: ignore[abstract]
            )
        ],
        authenticator=AUTHENTICATOR,
        metrics=RuntimeMetrics("tls", CollectorRegistry()),
        credentials=tls_server_credentials(pki.server_cert, pki.server_key, pki.ca_file),
    )
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    yield port
    await server.stop(None)


def _channel(port: int, pki: Pki, cert: bytes | None, key: bytes | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca, private_key=key, certificate_chain=cert
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


async def test_a_client_with_a_certificate_of_the_ca_and_a_token_is_served(mtls_port: int, pki: Pki) -> None:
    async with _channel(mtls_port, pki, pki.client_cert, pki.client_key) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reply = await pb_grpc.SmsBoxServiceStub(channel).GetSmsBox(
            pb.GetSmsBoxRequest(box_number="1"), metadata=(("authorization", f"Bearer {token()}"),), timeout=5
        )
        assert reply.sms_box.box_name == "tenant-a"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.SmsBoxServiceStub(channel).GetSmsBox(pb.GetSmsBoxRequest(box_number="1"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # TLS does not replace the token


@pytest.mark.parametrize("client", ["none", "stranger"])
async def test_clients_without_a_certificate_of_the_ca_cannot_connect(
    mtls_port: int, pki: Pki, client: str
) -> None:
    cert, key = (None, None) if client == "none" else (pki.stranger_cert, pki.stranger_key)
    async with _channel(mtls_port, pki, cert, key) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_clients_cannot_talk_to_a_tls_port(mtls_port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_http_routes_accept_jwts_and_check_the_role() -> None:
    def request(bearer: str) -> web.Request:
        return make_mocked_request("GET", "/reports/daily.csv", headers={"Authorization": f"Bearer {bearer}"})

    principal = http_principal(request(token("viewer")), AUTHENTICATOR, Role.OPERATOR, Role.VIEWER)
    assert (principal.tenant_id, principal.role) == ("tenant-a", Role.VIEWER)
    with pytest.raises(web.HTTPForbidden):
        http_principal(request(token("platform")), AUTHENTICATOR, Role.OPERATOR, Role.VIEWER)
    with pytest.raises(web.HTTPUnauthorized):
        http_principal(request(token()[:-3] + "abc"), AUTHENTICATOR, Role.OPERATOR)


def test_half_configured_tls_stops_the_service_before_it_starts(pki: Pki, tmp_path: Path) -> None:
    from hibiki_runtime.service import ServiceRuntime
    from hibiki_runtime.settings import ServiceSettings

    database = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match="KEY_FILE"):
        ServiceRuntime(ServiceSettings(database_url=database, grpc_tls_cert_file=pki.server_cert))
    with pytest.raises(ValueError, match="CLIENT_CA_FILE"):
        ServiceRuntime(ServiceSettings(database_url=database, grpc_tls_client_ca_file=pki.ca_file))
    configured = ServiceRuntime(
        ServiceSettings(
            database_url=database,
            grpc_tls_cert_file=pki.server_cert,
            grpc_tls_key_file=pki.server_key,
            grpc_tls_client_ca_file=pki.ca_file,
        )
    )
    assert configured.settings.grpc_tls_client_ca_file == pki.ca_file
