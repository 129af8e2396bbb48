"""Passwords, access tokens and refresh tokens. Imports nothing of parley."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
ISSUER = "parley"
LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["sub", "sid", "exp", "iat", "iss"]
SESSION_ID_BYTES = 16  # 128 bits: a session cannot be guessed, even by one who holds the key
_SESSION_ID = re.compile(rf"[0-9a-f]{{{2 * SESSION_ID_BYTES}}}")

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash("parley-timing-equaliser")


class TokenError(Exception):
    """The token is missing, malformed, expired, forged or of the wrong kind."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str  # the `sid` claim: a session's random id, never its row number
    expires_at: datetime


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Checks a password; with no hash it still spends the same time (no user enumeration)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_session_id() -> str:
    """A login session's public id (the `sid` claim): random, never sequential."""
    return secrets.token_hex(SESSION_ID_BYTES)


def make_access_token(
    key: str, *, user_id: int, session_id: str, ttl_seconds: int, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "sid": session_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_seconds)).timestamp()),
        "iss": ISSUER,
        "typ": "access",
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(key: str, token: str) -> AccessClaims:
    """Verifies signature (HS256 only), issuer, expiry and required claims."""
    claims = _decode(key, token, leeway=LEEWAY_SECONDS, options={"require": _REQUIRED_CLAIMS})
    if claims.get("typ", "access") != "access":
        raise TokenError("not an access token")
    user_id = _subject(claims)
    session_id = claims["sid"]
    # A token from before session ids were random (an integer) is refused: its client
    # refreshes, and the refresh token, kept by the migration, gets a new one.
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise TokenError("malformed session id")
    return AccessClaims(user_id, session_id, datetime.fromtimestamp(claims["exp"], UTC))


def make_refresh_token() -> str:
    """An opaque random refresh token; only its hash is stored."""
    return "rt_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def origin_matches(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """True when a browser's Origin is this site (its Host) or an allowed origin."""
    if not origin or origin == "null":
        return False
    if origin in allowed:
        return True
    if not host:
        return False
    bare = origin.split("://", 1)[-1]
    return bare == host


class AccessTokens:
    """`decode_access_token` with a per-process memory of tokens already verified.

    A token is verified (signature, issuer, claims) once; afterwards only its expiry is
    checked again, as PyJWT would (`exp` with the same leeway). The memory is bounded: past
    `max_entries` it starts afresh. Tokens are stateless, so nothing else can change.
    """

    def __init__(self, key: str, *, max_entries: int = 100_000) -> None:
        self.key = key
        self.max_entries = max_entries
        self._known: dict[str, tuple[AccessClaims, float]] = {}

    def decode(self, token: str, *, now: float | None = None) -> AccessClaims:
        known = self._known.get(token)
        if known is not None:
            claims, exp = known
            if exp > (time.time() if now is None else now) - LEEWAY_SECONDS:
                return claims
            del self._known[token]
            raise TokenError("Signature has expired")
        claims = decode_access_token(self.key, token)
        if len(self._known) >= self.max_entries:
            self._known.clear()
        self._known[token] = (claims, claims.expires_at.timestamp())
        return claims


MFA_TTL_SECONDS = 300


def make_mfa_token(key: str, *, user_id: int, now: datetime) -> str:
    """The proof of a right password that the second step of a two-factor login presents;
    never an access token (`typ`), valid MFA_TTL_SECONDS on the server's clock."""
    claims = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=MFA_TTL_SECONDS)).timestamp()),
        "iss": ISSUER,
        "typ": "mfa",
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_mfa_token(key: str, token: str, *, now: datetime) -> int:
    """The user id of a valid mfa token; raises TokenError. Expiry is checked against
    `now` (the server's clock), not the machine's."""
    claims = _decode(
        key, token, options={"require": ["sub", "exp", "iat", "iss", "typ"], "verify_exp": False}
    )
    if claims.get("typ") != "mfa":
        raise TokenError("not an mfa token")
    if not isinstance(claims["exp"], int) or claims["exp"] <= now.timestamp():
        raise TokenError("Signature has expired")
    return _subject(claims)


def _decode(key: str, token: str, **checks: Any) -> dict[str, Any]:
    """The claims of a token signed with `key` (HS256 only) by this issuer; raises TokenError."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[ALGORITHM], issuer=ISSUER, **checks
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    return claims


def _subject(claims: dict[str, Any]) -> int:
    """The user id in `sub`; raises TokenError."""
    try:
        return int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise TokenError("malformed subject") from exc
