"""Who is calling: principals, the authentication hook and the per-request principal."""

from __future__ import annotations

import contextvars
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from hibiki_runtime.errors import PermissionDenied, Unauthenticated


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


class StaticTokenAuthenticator:
    """Bearer tokens from configuration: {token: {"tenant_id": ..., "role": ...}}."""

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
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing bearer token in the authorization metadata")
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return principal
        raise Unauthenticated("unknown bearer token")


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
