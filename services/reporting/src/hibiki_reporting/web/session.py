"""The report page's login session and CSRF protection.

Browsers cannot send a bearer header when they navigate, so logging in stores the bearer token itself in a
cookie: HttpOnly (page scripts cannot read it), SameSite=Strict (never sent on requests started by another
site), limited to /reports and Secure over HTTPS. Every request authenticates that token again through the
service's Authenticator, exactly like a gRPC call: a token removed from the configuration stops working at
once, and no session store or signing key has to be shared between replicas.

CSRF: SameSite=Strict already keeps the cookie off cross-site requests; in addition every POST must carry a
form token and, when the browser sends one, an Origin equal to the page's. Logged in, the form token is an
HMAC of a fixed label keyed by the session token (only a holder of the session can compute it); on the login
form it is a random value that must equal the one in a short-lived cookie (double submit), so another site
cannot log a victim into its own tenant either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web
from hibiki_runtime.auth import Authenticator, Principal, Role
from hibiki_runtime.errors import Unauthenticated

SESSION_COOKIE = "hibiki_report_session"
LOGIN_CSRF_COOKIE = "hibiki_report_login"
COOKIE_PATH = "/reports"
SESSION_SECONDS = 8 * 3600
PAGE_ROLES = (Role.OPERATOR, Role.VIEWER)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def session_principal(request: web.Request, authenticator: Authenticator) -> Principal | None:
    """The principal of the session cookie; None without a cookie or with a token no longer valid."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    try:
        return authenticator.authenticate(bearer(token))
    except Unauthenticated:
        return None


def csrf_token(request: web.Request) -> str:
    """The form token of the logged-in session."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(session.encode(), b"hibiki report page csrf", hashlib.sha256).hexdigest()


def _set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def start_session(response: web.StreamResponse, request: web.Request, token: str) -> None:
    _set_cookie(response, request, SESSION_COOKIE, token, SESSION_SECONDS)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def login_csrf(request: web.Request) -> str:
    """The login form's double-submit value: the browser's current one, or a fresh random one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def remember_login_csrf(response: web.StreamResponse, request: web.Request, value: str) -> None:
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, value, 3600)


def check_post(request: web.Request, form_token: str, expected: str) -> None:
    """403 unless the POST comes from this site and carries the expected form token."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-site request refused")
    if not expected or not hmac.compare_digest(form_token.encode(), expected.encode()):
        raise web.HTTPForbidden(text="missing or wrong form token; reload the page and try again")
