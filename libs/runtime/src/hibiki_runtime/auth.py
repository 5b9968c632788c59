"""Who is calling: principals, bearer-token authenticators (signed JWT, static) and the current principal."""

from __future__ import annotations

import contextvars
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hibiki_runtime.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from hibiki_runtime.settings import ServiceSettings


class Role(StrEnum):
    """What a principal may do within its tenant."""

    OPERATOR = "operator"  # read and change the tenant's configuration and reports
    VIEWER = "viewer"  # read reports only
    PLATFORM = "platform"  # service-to-service calls


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: Role
    subject: str = ""


class Authenticator(Protocol):
    """Turns request metadata into a principal or raises Unauthenticated."""

    def authenticate(self, metadata: Mapping[str, str]) -> Principal: ...


def bearer_token(metadata: Mapping[str, str]) -> str:
    """The token of the `authorization: Bearer <token>` metadata; Unauthenticated without one."""
    scheme, _, token = metadata.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing bearer token in the authorization metadata")
    return token


class StaticTokenAuthenticator:
    """Bearer tokens from configuration: {token: {"tenant_id": ..., "role": ...}} (local runs and tests)."""

    def __init__(self, tokens: Mapping[str, Mapping[str, str]]) -> None:
        self._tokens = {
            token: Principal(
                entry["tenant_id"], Role(entry.get("role", Role.OPERATOR)), entry.get("subject", "")
            )
            for token, entry in tokens.items()
        }

    @classmethod
    def from_settings(
        cls, tokens: Mapping[str, Mapping[str, str]], tokens_file: Path | None
    ) -> StaticTokenAuthenticator:
        """Tokens from the settings, extended by a JSON tokens file when one is configured."""
        merged = dict(tokens)
        if tokens_file is not None:
            merged.update(json.loads(tokens_file.read_text(encoding="utf-8")))
        return cls(merged)

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        token = bearer_token(metadata)
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return principal
        raise Unauthenticated("unknown bearer token")


@dataclass(frozen=True)
class VerificationKey:
    """A key that verifies token signatures with exactly one algorithm (no algorithm confusion)."""

    kid: str
    algorithm: str
    key: Any  # bytes for HMAC, a cryptography public key object (or PyJWK) otherwise


# Asymmetric algorithms must never be verified with a shared secret and vice versa; "none" is never allowed.
_SUPPORTED_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384"}
)
_MIN_HMAC_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash output


def hmac_key(kid: str, secret: str) -> VerificationKey:
    """An HS256 shared secret; short secrets are refused because they can be brute-forced offline."""
    raw = secret.encode("utf-8")
    if len(raw) < _MIN_HMAC_SECRET_BYTES:
        raise ValueError(f"JWT secret {kid!r} is shorter than {_MIN_HMAC_SECRET_BYTES} bytes")
    return VerificationKey(kid, "HS256", raw)


def pem_public_key(kid: str, pem: bytes) -> VerificationKey:
    """An RSA (RS256) or EC P-256/P-384 (ES256/ES384) public key in PEM form."""
    key = load_pem_public_key(pem)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"JWT key {kid!r}: RSA keys need at least 2048 bits")
        return VerificationKey(kid, "RS256", key)
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return VerificationKey(kid, "ES256" if key.curve.name == "secp256r1" else "ES384", key)
    raise ValueError(f"JWT key {kid!r}: only RSA and EC P-256/P-384 public keys are supported")


def jwks_keys(jwks: Mapping[str, Any]) -> list[VerificationKey]:
    """The keys of a JSON Web Key Set ({"keys": [...]}); each needs a "kid" so that tokens can name it."""
    keys = []
    for entry in jwks.get("keys", []):
        kid = entry.get("kid")
        if not kid:
            raise ValueError("every key of the JWKS needs a kid")
        parsed = jwt.PyJWK(entry)
        keys.append(VerificationKey(kid, parsed.algorithm_name, parsed))
    return keys


class JwtAuthenticator:
    """Bearer tokens that are signed JWTs issued for Hibiki.

    Required claims: iss and aud (checked against configuration), exp, sub, tenant_id and role. Keys are
    looked up by the token's `kid` header, so keys can be rotated by adding the new kid before issuing with it
    and removing the old one after its tokens have expired.
    """

    def __init__(
        self,
        keys: Iterable[VerificationKey],
        *,
        issuer: str,
        audience: str,
        leeway: timedelta = timedelta(seconds=30),
    ) -> None:
        self._keys = {key.kid: key for key in keys}
        if not self._keys:
            raise ValueError("JwtAuthenticator needs at least one key")
        if not issuer or not audience:
            raise ValueError("JWT authentication needs an issuer and an audience to check")
        unsupported = {key.algorithm for key in self._keys.values()} - _SUPPORTED_ALGORITHMS
        if unsupported:
            raise ValueError(f"unsupported JWT algorithms: {', '.join(sorted(unsupported))}")
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    def _key_for(self, token: str) -> VerificationKey:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise Unauthenticated("bearer token is not a signed JWT") from error
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if not isinstance(kid, str) or kid not in self._keys:
            raise Unauthenticated("bearer token is signed with an unknown key (kid)")
        return self._keys[kid]

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        token = bearer_token(metadata)
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("bearer token has expired") from error
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"bearer token rejected: {error}") from error
        tenant_id, role, subject = claims.get("tenant_id"), claims.get("role"), claims["sub"]
        if not isinstance(tenant_id, str) or not tenant_id:
            raise Unauthenticated("bearer token has no tenant_id claim")
        if role not in {r.value for r in Role}:
            raise Unauthenticated("bearer token has no valid role claim (operator, viewer or platform)")
        return Principal(tenant_id, Role(role), str(subject))


class ChainAuthenticator:
    """Accepts what any of its authenticators accepts (e.g. JWTs plus a static break-glass tokens file)."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self._authenticators = tuple(authenticators)

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        bearer_token(metadata)  # a missing token is one error, not one per authenticator
        reasons: list[str] = []
        for authenticator in self._authenticators:
            try:
                return authenticator.authenticate(metadata)
            except Unauthenticated as error:
                reasons.append(error.message)
        raise Unauthenticated("; ".join(dict.fromkeys(reasons)) or "no authenticator configured")


def _configured_jwt_keys(settings: ServiceSettings) -> list[VerificationKey]:
    keys = [
        hmac_key(kid, secret.get_secret_value()) for kid, secret in settings.auth_jwt_hs256_secrets.items()
    ]
    if settings.auth_jwt_jwks:
        keys += jwks_keys(json.loads(settings.auth_jwt_jwks))
    if settings.auth_jwt_jwks_file is not None:
        keys += jwks_keys(json.loads(settings.auth_jwt_jwks_file.read_text(encoding="utf-8")))
    if settings.auth_jwt_public_keys_dir is not None:
        keys += [
            pem_public_key(path.stem, path.read_bytes())
            for path in sorted(settings.auth_jwt_public_keys_dir.glob("*.pem"))
        ]
    return keys


def authenticator_from_settings(settings: ServiceSettings) -> Authenticator:
    """JWT and/or static tokens, as configured; with neither, every authenticated call is refused."""
    authenticators: list[Authenticator] = []
    keys = _configured_jwt_keys(settings)
    if keys:
        authenticators.append(
            JwtAuthenticator(
                keys,
                issuer=settings.auth_jwt_issuer,
                audience=settings.auth_jwt_audience,
                leeway=timedelta(seconds=settings.auth_jwt_leeway_seconds),
            )
        )
    if settings.auth_tokens or settings.auth_tokens_file is not None or not authenticators:
        authenticators.append(
            StaticTokenAuthenticator.from_settings(settings.auth_tokens, settings.auth_tokens_file)
        )
    return authenticators[0] if len(authenticators) == 1 else ChainAuthenticator(authenticators)


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("hibiki_principal", default=None)


def set_current_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_current_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def current_principal() -> Principal:
    """The authenticated caller of the RPC being served."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def require_role(*roles: Role) -> Principal:
    """The current principal, if it has one of the roles; PERMISSION_DENIED otherwise."""
    principal = current_principal()
    if principal.role not in roles:
        raise PermissionDenied(f"role {principal.role.value} may not do this")
    return principal
