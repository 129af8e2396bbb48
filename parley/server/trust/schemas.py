"""Two-factor and session shapes: what the API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints, model_validator

from parley.server.accounts.schemas import Strict

Code = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class TwoFactorSetup(BaseModel):
    secret: str
    otpauth_uri: str
    qr_data_url: str  # data:image/svg+xml, the URI's QR code drawn by the server


class TwoFactorEnable(Strict):
    code: Code


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class TwoFactorDisable(Strict):
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    code: Code


class LoginSecondStep(Strict):
    mfa_token: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    code: Code | None = None
    recovery_code: Code | None = None

    @model_validator(mode="after")
    def _one_code(self) -> LoginSecondStep:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("give exactly one of code and recovery_code")
        return self


class MfaRequired(BaseModel):
    mfa_required: Literal[True] = True
    mfa_token: str
    expires_in: int


class SessionPublic(BaseModel):
    id: int
    created_at: datetime
    last_used_at: datetime | None
    user_agent: str
    device: str  # read from the user agent, e.g. "Firefox on Linux"
    ip: str
    current: bool
