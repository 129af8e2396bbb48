"""Shapes of bots, their deliveries, incoming webhooks and chat commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from parley.server.accounts.schemas import Strict, Username, UserPublic
from parley.server.text import Name, check_description

MAX_COMMANDS = 50  # per bot

# The built-in commands, run by the client through the API (`GET …/commands` lists them).
BUILTINS: tuple[tuple[str, str], ...] = (
    ("/me", "Say something in the third person: /me waves"),
    ("/shrug", "Append ¯\\_(ツ)_/¯ to your message"),
    ("/mute", "Mute this chat"),
    ("/unmute", "Unmute this chat"),
    ("/leave", "Leave this chat"),
    ("/invite", "Add someone to this chat: /invite @username"),
    ("/topic", "Set the chat's description: /topic text"),
    ("/status", "Set your status: /status text"),
    ("/dnd", "Do not disturb: mute notifications"),
)
BUILTIN_NAMES = frozenset(name for name, _ in BUILTINS)


def check_command(value: str) -> str:
    """`/deploy` or `deploy` → `/deploy`: a slash, then 1–32 of a-z 0-9 _ -."""
    return "/" + value.strip().removeprefix("/").lower()


CommandName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^/?[A-Za-z0-9][A-Za-z0-9_\-]{0,31}$"),
    AfterValidator(check_command),
]
CommandText = Annotated[str, StringConstraints(max_length=4000)]


class CommandSpec(Strict):
    command: CommandName
    description: Annotated[
        str, StringConstraints(max_length=200), AfterValidator(check_description)
    ] = ""


class BotCreate(Strict):
    username: Username
    display_name: Name


class BotUpdate(Strict):
    display_name: Name | None = None
    # "" (or null with the key present) clears it: no events are sent
    event_url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = (
        None
    )
    commands: Annotated[list[CommandSpec], Field(max_length=MAX_COMMANDS)] | None = None


class BotPublic(BaseModel):
    """A bot as its owner sees it: the user, where its events go, its commands."""

    bot: UserPublic
    event_url: str
    commands: list[CommandSpec]
    created_at: datetime


class BotCreated(BaseModel):
    """The answer to creating a bot or rotating its token: the secrets, shown this once."""

    bot: UserPublic
    token: str
    signing_secret: str


class DeliveryPublic(BaseModel):
    id: int
    kind: str  # "message" | "command"
    status: str  # "pending" | "delivered" | "failed" | "dropped"
    attempts: int
    response_status: int | None
    error: str
    created_at: datetime
    finished_at: datetime | None


class WebhookCreate(Strict):
    name: Name


class WebhookPublic(BaseModel):
    id: int
    chat_id: int
    name: str
    url: str
    created_at: datetime


class CommandRun(Strict):
    command: CommandName
    text: CommandText = ""


class BotRef(BaseModel):
    id: int
    username: str
    display_name: str


class CommandPublic(BaseModel):
    command: str
    description: str
    bot: BotRef | None = None  # null for a built-in (run by the client)


class CommandSent(BaseModel):
    status: str  # "sent": queued for the bot's event URL; "no_event_url": the bot has none
    bot: BotRef
