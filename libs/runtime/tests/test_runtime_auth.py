import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hibiki_runtime.auth import (
    ChainAuthenticator,
    JwtAuthenticator,
    Principal,
    Role,
    StaticTokenAuthenticator,
    authenticator_from_settings,
    hmac_key,
    pem_public_key,
)
from hibiki_runtime.errors import Unauthenticated
from hibiki_runtime.settings import ServiceSettings

ISSUER = "https://id.example.jp"
AUDIENCE = "hibiki"
SECRET = "s" * 32
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "tenant_id": "tenant-a",
        "role": "operator",
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def public_pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def authenticator() -> JwtAuthenticator:
    return JwtAuthenticator(
        [
            hmac_key("k1", SECRET),
            pem_public_key("rsa1", public_pem(RSA_KEY)),
            pem_public_key("ec1", public_pem(EC_KEY)),
        ],
        issuer=ISSUER,
        audience=AUDIENCE,
    )


@pytest.mark.parametrize(
    ("key", "algorithm", "kid"),
    [(SECRET, "HS256", "k1"), (RSA_KEY, "RS256", "rsa1"), (EC_KEY, "ES256", "ec1")],
)
def test_a_signed_jwt_with_tenant_and_role_claims_becomes_the_principal(
    key: Any, algorithm: str, kid: str
) -> None:
    token = jwt.encode(claims(role="viewer"), key, algorithm=algorithm, headers={"kid": kid})
    assert authenticator().authenticate(bearer(token)) == Principal("tenant-a", Role.VIEWER, "alice")


@pytest.mark.parametrize(
    ("token_claims", "reason"),
    [
        (claims(exp=datetime.now(UTC) - timedelta(minutes=5)), "expired"),
        (claims(iss="https://evil.example"), "(?i)issuer"),
        (claims(aud="other-service"), "(?i)audience"),
        (claims(exp=None), "exp"),
        (claims(sub=None), "sub"),
        (claims(tenant_id=None), "tenant_id"),
        (claims(tenant_id=""), "tenant_id"),
        (claims(role="admin"), "role"),
        (claims(role=None), "role"),
    ],
)
def test_tokens_with_wrong_or_missing_claims_are_unauthenticated(
    token_claims: dict[str, Any], reason: str
) -> None:
    token = jwt.encode(token_claims, SECRET, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated, match=reason):
        authenticator().authenticate(bearer(token))


def test_a_token_signed_with_another_secret_is_unauthenticated() -> None:
    token = jwt.encode(claims(), "x" * 32, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated, match="Signature"):
        authenticator().authenticate(bearer(token))


def test_an_unknown_kid_is_unauthenticated() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "retired"})
    with pytest.raises(Unauthenticated, match="unknown key"):
        authenticator().authenticate(bearer(token))


def test_algorithm_confusion_with_the_public_key_as_hmac_secret_is_refused() -> None:
    # The classic attack: sign HS256 with the RSA public key bytes and name the RSA kid.
    forged = jwt.api_jws.PyJWS().encode(
        json.dumps(claims(exp=int((datetime.now(UTC) + timedelta(minutes=5)).timestamp()))).encode(),
        b"irrelevant-but-long-enough-secret-0123456789",
        algorithm="HS256",
        headers={"kid": "rsa1"},
    )
    with pytest.raises(Unauthenticated, match="alg"):
        authenticator().authenticate(bearer(forged))


def test_unsigned_tokens_are_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated):
        authenticator().authenticate(bearer(token))


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer   ", "Basic abc", "bearer not-a-jwt"])
def test_missing_or_malformed_bearer_tokens_are_unauthenticated(header: str) -> None:
    with pytest.raises(Unauthenticated):
        authenticator().authenticate({"authorization": header})


def test_a_single_key_verifies_tokens_without_a_kid() -> None:
    single = JwtAuthenticator([hmac_key("only", SECRET)], issuer=ISSUER, audience=AUDIENCE)
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert single.authenticate(bearer(token)).tenant_id == "tenant-a"


def test_weak_keys_and_missing_issuer_or_audience_are_configuration_errors() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        hmac_key("k", "short")
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        pem_public_key("k", public_pem(small_rsa))
    with pytest.raises(ValueError, match="issuer"):
        JwtAuthenticator([hmac_key("k", SECRET)], issuer="", audience=AUDIENCE)


def test_the_chain_accepts_static_tokens_and_jwts_and_explains_a_refusal() -> None:
    chain = ChainAuthenticator(
        [authenticator(), StaticTokenAuthenticator({"dev-token": {"tenant_id": "demo", "role": "operator"}})]
    )
    assert chain.authenticate(bearer("dev-token")).tenant_id == "demo"
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
    assert chain.authenticate(bearer(token)).tenant_id == "tenant-a"
    with pytest.raises(Unauthenticated, match="unknown bearer token"):
        chain.authenticate(bearer("guess"))
    with pytest.raises(Unauthenticated, match="missing bearer token"):
        chain.authenticate({})


def test_settings_pick_jwt_static_or_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "2026-11.pem").write_bytes(public_pem(RSA_KEY))
    jwks = {
        "keys": [{"kid": "ec-2026", **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))}]
    }
    monkeypatch.setenv("HIBIKI_AUTH_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("HIBIKI_AUTH_JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("HIBIKI_AUTH_JWT_HS256_SECRETS", json.dumps({"hs-1": SECRET}))
    monkeypatch.setenv("HIBIKI_AUTH_JWT_JWKS", json.dumps(jwks))
    monkeypatch.setenv("HIBIKI_AUTH_JWT_PUBLIC_KEYS_DIR", str(keys_dir))
    jwt_only = authenticator_from_settings(ServiceSettings())
    assert isinstance(jwt_only, JwtAuthenticator)
    keys: list[tuple[Any, str, str]] = [
        (SECRET, "HS256", "hs-1"),
        (RSA_KEY, "RS256", "2026-11"),
        (EC_KEY, "ES256", "ec-2026"),
    ]
    for key, algorithm, kid in keys:
        token = jwt.encode(claims(), key, algorithm=algorithm, headers={"kid": kid})
        assert jwt_only.authenticate(bearer(token)).subject == "alice"
    assert "SecretStr" in repr(ServiceSettings().auth_jwt_hs256_secrets)  # secrets stay out of reprs and logs

    monkeypatch.setenv("HIBIKI_AUTH_TOKENS", json.dumps({"dev": {"tenant_id": "demo", "role": "viewer"}}))
    both = authenticator_from_settings(ServiceSettings())
    assert isinstance(both, ChainAuthenticator)
    assert both.authenticate(bearer("dev")).role is Role.VIEWER

    for name in ("HIBIKI_AUTH_JWT_HS256_SECRETS", "HIBIKI_AUTH_JWT_JWKS", "HIBIKI_AUTH_JWT_PUBLIC_KEYS_DIR"):
        monkeypatch.delenv(name)
    assert isinstance(authenticator_from_settings(ServiceSettings()), StaticTokenAuthenticator)


def test_jwt_keys_without_issuer_fail_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIBIKI_AUTH_JWT_HS256_SECRETS", json.dumps({"hs-1": SECRET}))
    with pytest.raises(ValueError, match="issuer"):
        authenticator_from_settings(ServiceSettings())
