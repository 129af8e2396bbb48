"""Two-factor sign-in (TOTP, RFC 6238): setup, enable with recovery codes, disable, and the
second step of a login.

A code is accepted within ±1 time step of the server's clock and only once: the last step
used is stored, and only a later step passes (an atomic update, so two concurrent uses of
one code cannot both win). A recovery code works once. Wrong codes at sign-in count toward
the account's failed-login limit ("login" in the throttle), as wrong passwords do.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.security import TokenError, decode_mfa_token, hash_token
from parley.server.accounts.service import (
    Client,
    Issuer,
    Tokens,
    check_may_sign_in,
    get_user,
    login_slot,
    start_session,
    verify_password,
)
from parley.server.db.models import RecoveryCode, User
from parley.server.throttle import Throttle

ISSUER_NAME = "Parley"
RECOVERY_CODES = 10
WINDOW = 1  # steps accepted either side of now
LOGIN_DETAIL = "Too many failed logins, try again shortly"


@dataclass(frozen=True, slots=True)
class Setup:
    secret: str
    otpauth_uri: str
    qr_data_url: str  # an SVG of the URI's QR code, drawn here (nothing leaves the server)


async def setup_two_factor(session: AsyncSession, *, user: User) -> Setup:
    """A new secret, not in force until `enable_two_factor`; commits. 409 when enabled."""
    if user.totp_enabled:
        raise errors.Conflict("Two-factor sign-in is already on", code="2fa_enabled")
    user.totp_secret = pyotp.random_base32()
    await session.commit()
    uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=ISSUER_NAME)
    qr = segno.make(uri, error="m").svg_data_uri(scale=4, border=2)
    return Setup(user.totp_secret, uri, qr)


async def enable_two_factor(
    session: AsyncSession, *, user: User, code: str, now: datetime
) -> list[str]:
    """Checks a code of the set-up secret, then turns 2FA on; the recovery codes, shown once."""
    if user.totp_enabled:
        raise errors.Conflict("Two-factor sign-in is already on", code="2fa_enabled")
    if not user.totp_secret:
        raise errors.Conflict("Set up two-factor sign-in first", code="2fa_not_set_up")
    if not await use_code(session, user, code, now=now):
        raise errors.Forbidden("Wrong code", code="invalid_code")
    user.totp_enabled = True
    codes = await _new_recovery_codes(session, user.id)
    await session.commit()
    return codes


async def disable_two_factor(
    session: AsyncSession, *, user: User, password: str, code: str, now: datetime
) -> None:
    """Needs the password and a current code (or an unused recovery code); commits."""
    await session.commit()  # no transaction held across the slow password check
    if not await verify_password(user.password_hash, password):
        raise errors.Forbidden("Wrong password", code="invalid_credentials")
    if not user.totp_enabled:
        raise errors.Conflict("Two-factor sign-in is off", code="2fa_not_enabled")
    if not (
        await use_code(session, user, code, now=now)
        or await use_recovery(session, user, code, now=now)
    ):
        raise errors.Forbidden("Wrong code", code="invalid_code")
    await turn_off(session, user)
    await session.commit()


async def turn_off(session: AsyncSession, user: User) -> None:
    """Forgets the secret and the recovery codes (disable, an admin's reset); no commit."""
    user.totp_secret, user.totp_enabled, user.totp_last_step = None, False, None
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


async def complete_login(
    session: AsyncSession,
    issuer: Issuer,
    throttle: Throttle,
    *,
    mfa_token: str,
    code: str | None,
    recovery_code: str | None,
    client: Client,
) -> Tokens:
    """The second step: a valid mfa token and one unused code (or recovery code) → tokens.

    Each attempt counts in the account's failed-login window; a success clears it."""
    now = issuer.clock()
    try:
        user_id = decode_mfa_token(issuer.jwt_key, mfa_token, now=now)
    except TokenError as exc:
        raise errors.Unauthorized("The sign-in step expired; sign in again") from exc
    slot = login_slot(f"user:{user_id}", client.ip)
    await throttle.check("login_ip", client.ip, detail=LOGIN_DETAIL)
    await throttle.hit("login", slot, detail=LOGIN_DETAIL)
    user = await get_user(session, user_id)
    if user is None or not user.totp_enabled:  # deleted, or its 2FA reset meanwhile
        raise errors.Unauthorized("The sign-in step expired; sign in again")
    if code is not None:
        passed = await use_code(session, user, code, now=now)
    else:
        passed = await use_recovery(session, user, recovery_code or "", now=now)
    if not passed:
        await session.commit()
        await throttle.allow("login_ip", client.ip)
        raise errors.InvalidCode()
    await throttle.clear("login", slot)
    await check_may_sign_in(session, user, now=now)
    return await start_session(session, issuer, user=user, client=client)


async def use_code(session: AsyncSession, user: User, code: str, *, now: datetime) -> bool:
    """True when `code` is the secret's code within ±1 step of `now` and later than the last
    one used, which it becomes (flushed, not committed)."""
    code = code.strip().replace(" ", "")
    if not user.totp_secret or not code.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return await _advance(session, user, step)
    return False


async def _advance(session: AsyncSession, user: User, step: int) -> bool:
    result = await session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    user.totp_last_step = step
    return True


async def use_recovery(session: AsyncSession, user: User, code: str, *, now: datetime) -> bool:
    """Spends an unused recovery code of the user (flushed, not committed)."""
    normal = _normal(code)
    if not normal:
        return False
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == hash_token(normal),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _new_recovery_codes(session: AsyncSession, user_id: int) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_format(secrets.token_hex(5)) for _ in range(RECOVERY_CODES)]
    session.add_all(
        RecoveryCode(user_id=user_id, code_hash=hash_token(_normal(code))) for code in codes
    )
    return codes


def _format(raw: str) -> str:
    return f"{raw[:5]}-{raw[5:]}"


def _normal(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())
