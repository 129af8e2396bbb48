"""Domain errors: each carries an HTTP status, a snake_case code and a human detail.

A class declares all three in its header (`class NotFound(ParleyError, status=404,
code=..., detail=...)`); what it leaves out it inherits, so a `Forbidden` subclass
names only its code and detail.
"""

from __future__ import annotations


class ParleyError(Exception):
    status = 400
    code = "bad_request"
    detail = "Bad request"

    def __init_subclass__(
        cls, *, status: int | None = None, code: str | None = None, detail: str | None = None
    ) -> None:
        super().__init_subclass__()
        declared = {"status": status, "code": code, "detail": detail}
        for name, value in declared.items():
            if value is not None:
                setattr(cls, name, value)

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        self.detail = detail or type(self).detail
        if code:
            self.code = code
        super().__init__(self.detail)


class ValidationFailed(
    ParleyError, status=422, code="validation_error", detail="Invalid input"
): ...


class Unauthorized(
    ParleyError, status=401, code="unauthorized", detail="Authentication required"
): ...


class InvalidCredentials(
    ParleyError, status=401, code="invalid_credentials", detail="Wrong username or password"
): ...


class InvalidCode(
    ParleyError, status=401, code="invalid_code", detail="Wrong or already used code"
): ...


class Forbidden(ParleyError, status=403, code="forbidden", detail="Not allowed"): ...


class UserBanned(Forbidden, code="user_banned", detail="This account is banned"): ...


class UserDeactivated(Forbidden, code="user_deactivated", detail="This account is deactivated"): ...


class TwoFactorRequired(Forbidden, code="2fa_required", detail="Set up two-factor sign-in first"):
    """PARLEY_REQUIRE_2FA puts the caller in scope and it has no second factor yet."""


class NotMember(Forbidden, code="not_member", detail="Join the chat first"): ...


class Blocked(Forbidden, code="blocked", detail="You cannot message this user"): ...


class BadOrigin(Forbidden, code="bad_origin", detail="Cross-site request refused"): ...


class NotFound(ParleyError, status=404, code="not_found", detail="Not found"): ...


class RequestTimeout(
    ParleyError, status=408, code="request_timeout", detail="The request body arrived too slowly"
): ...


class Conflict(ParleyError, status=409, code="conflict", detail="Conflict"): ...


class TooLarge(ParleyError, status=413, code="too_large", detail="Too large"): ...


class QuotaExceeded(
    TooLarge,
    code="quota_exceeded",
    detail="Your upload storage is full: delete some files first",
): ...


class UnsupportedMedia(
    ParleyError, status=415, code="unsupported_media_type", detail="Unsupported file type"
): ...


class ImageTooLarge(
    UnsupportedMedia, code="image_too_large", detail="Image has too many pixels"
): ...


class _RetryLater(ParleyError):
    """Refused for now: the client may try again after `retry_after` seconds."""

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimited(
    _RetryLater, status=429, code="rate_limited", detail="Too many requests, slow down"
): ...


class Unavailable(
    ParleyError, status=503, code="unavailable", detail="Service temporarily unavailable"
): ...


class Overloaded(
    _RetryLater, status=503, code="overloaded", detail="The server is overloaded, retry shortly"
):
    """The server cannot take this work now (its queue stayed full): retry shortly."""
