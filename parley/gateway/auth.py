"""Which routes are public, where the gateway looks for the access token, its stateless check."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from parley.credentials import UNSAFE_METHODS, Credentials, TokenSource
from parley.security import AccessClaims, AccessTokens, TokenError, origin_matches

_PUBLIC_PATHS = frozenset(
    {
        "/",
        "/chat",
        "/login",
        "/register",
        "/metrics",
        "/health",
        "/stats",
        "/favicon.ico",
        "/service/api/register",
        "/service/api/login",
        "/service/api/login/2fa",
        "/service/api/refresh",
        "/service/api/email/verify",
        "/service/api/password/forgot",
        "/service/api/password/reset",
        "/service/api/email/unsubscribe",
        "/reset-password",
        "/verify-email",
    }
)
_PUBLIC_POSTS = frozenset({"/api/v1/users", "/api/v1/users/"})
# Invitations: the preview (`GET /service/api/invites/{code}`) and the page `/invite/{code}`
# are public; accepting (`…/accept`) needs a token.
_PUBLIC_PREFIXES = ("/service/api/invites/", "/invite/")

TOKEN_SOURCES: tuple[TokenSource, ...] = ("header", "cookie", "query")
"""Where the gateway looks for the access token, in this order (`find_credentials`)."""


def is_public(method: str, path: str) -> bool:
    """The public routes of API.md; every other route needs a valid access token."""
    if path in _PUBLIC_PATHS or path.startswith("/static/"):
        return True
    if method in ("GET", "HEAD") and path.startswith(_PUBLIC_PREFIXES):
        rest = path.split("/")[-1]
        return bool(rest) and path.count("/") == (4 if path.startswith("/service/") else 2)
    # incoming webhooks: the token in the path is the credential (the server checks it)
    return method == "POST" and (path in _PUBLIC_POSTS or path.startswith("/hooks/"))


def check_token(tokens: AccessTokens, credentials: Credentials | None) -> AccessClaims:
    """Signature, algorithm, issuer, expiry and kind (the signature once per token, then
    from memory); raises TokenError. Stateless."""
    if credentials is None:
        raise TokenError("missing token")
    return tokens.decode(credentials.token)


def is_cross_site(conn: HTTPConnection, credentials: Credentials, allowed: list[str]) -> bool:
    """A cookie-authenticated unsafe request or WebSocket handshake without this site's Origin."""
    if credentials.source != "cookie":
        return False
    if conn.scope["type"] == "http" and conn.scope["method"] not in UNSAFE_METHODS:
        return False
    return not origin_matches(conn.headers.get("origin"), conn.headers.get("host"), allowed)
