"""HTTP routes of a service (aiohttp): authentication with the same bearer tokens as gRPC."""

from __future__ import annotations

from aiohttp import web

from hibiki_runtime.auth import Authenticator, Principal, Role
from hibiki_runtime.errors import Unauthenticated


def http_principal(request: web.Request, authenticator: Authenticator, *roles: Role) -> Principal:
    """The caller of an HTTP request; 401 without valid credentials, 403 without one of `roles`."""
    try:
        principal = authenticator.authenticate({"authorization": request.headers.get("Authorization", "")})
    except Unauthenticated as error:
        raise web.HTTPUnauthorized(
            text=error.message, headers={"WWW-Authenticate": 'Bearer realm="hibiki"'}
        ) from error
    if roles and principal.role not in roles:
        raise web.HTTPForbidden(text=f"role {principal.role.value} may not do this")
    return principal
