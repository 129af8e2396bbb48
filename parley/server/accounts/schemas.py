"""Account and profile shapes: what the API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from parley import errors
from parley.server.messages.emoji import check_emoji
from parley.server.text import Description, Name, Plain, check_status_text

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.\-]{3,32}$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
MAX_ID = 2**63 - 1  # what a 64-bit integer column holds; larger ids are refused (422)
Id = Annotated[int, Field(gt=0, le=MAX_ID)]
Seq = Annotated[int, Field(ge=0, le=MAX_ID)]


class Strict(BaseModel):
    """Unknown fields are refused, so a client cannot set what it does not own."""

    model_config = ConfigDict(extra="forbid")


class Register(Strict):
    username: Username
    email: EmailStr
    password: Password
    display_name: Name | None = None
    invite: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class Login(Strict):
    username: Annotated[Plain, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class PasswordChange(Strict):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


def _one_emoji(value: str) -> str:
    try:
        return check_emoji(value)
    except errors.ValidationFailed as exc:
        raise ValueError(exc.detail) from None


def _time_text(value: object) -> object:
    """A time must be written as RFC 3339 text: a bare number is not a time here."""
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be null or an RFC 3339 time with its offset")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_time_text)]
StatusEmoji = Annotated[str, StringConstraints(max_length=32), AfterValidator(_one_emoji)]
StatusText = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_status_text)]


class StatusSet(Strict):
    """A status: an emoji, a text (≤ 100 characters) or both; `until` (a future time) ends
    it by itself, null keeps it until changed."""

    emoji: StatusEmoji | None = None
    text: StatusText = ""
    until: Time | None = None


class ProfileUpdate(Strict):
    display_name: Name | None = None
    bio: Description | None = None
    email: EmailStr | None = None
    # presence of mind: null clears; a field left out stays as it is
    status: StatusSet | None = None
    dnd_until: Time | None = None
    share_read_receipts: bool | None = None
    email_notifications: bool | None = None  # reach: missed-message e-mails
    language: Literal["en", "ru"] | None = None  # reach: the language of e-mails


class StatusPublic(BaseModel):
    emoji: str | None
    text: str
    until: datetime | None


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    is_admin: bool
    online: bool
    last_seen_at: datetime | None
    created_at: datetime
    email: str | None = Field(default=None)
    avatar_data_url: str | None = Field(default=None)
    email_verified: bool | None = Field(default=None)
    email_notifications: bool | None = Field(default=None)  # reach: own profile only
    language: str | None = Field(default=None)  # reach: own profile only
    deactivated: bool = False  # trust: an admin deactivated the account
    two_factor: bool | None = Field(default=None)  # trust: own profile and admins only
    is_bot: bool = False  # integrations: a bot, or the sender of an incoming webhook
    owner_id: int | None = None  # integrations: the bot's owner (null for people)
    status: StatusPublic | None = None  # presence of mind
    dnd_until: datetime | None = None  # presence of mind: do not disturb until then
    share_read_receipts: bool | None = Field(default=None)  # own profile only

    @model_serializer(mode="wrap")
    def _drop_private(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # `email` is only for the owner and `avatar_data_url` only on the single-user route
        # (null there when there is no avatar): each appears only where it was set.
        data: dict[str, Any] = handler(self)
        for key in (
            "email",
            "avatar_data_url",
            "email_verified",
            "two_factor",
            "share_read_receipts",
            "email_notifications",
            "language",
        ):
            if key not in self.model_fields_set:
                data.pop(key, None)
        return data


class TokenPair(BaseModel):
    user: UserPublic
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class SenderPublic(BaseModel):
    id: int
    username: str
    display_name: str
