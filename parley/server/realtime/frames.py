"""The frames the server sends to clients: one typed class per frame `type`.

A frame is built once per event and encoded once (`encode`), so the hub pushes the same
string to every recipient; the events that carry it (`ChatFrame`, `UsersFrame` in
events.py) also carry its `kind`, so a cache can tell what changed without reading the
JSON. The client frames (what clients send) are in protocol.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import orjson

from parley.server.accounts.schemas import UserPublic
from parley.server.chats.schemas import ChatPublic
from parley.server.messages.schemas import MessagePublic


def _default(value: object) -> object:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(type(value))


class ServerFrame:
    """Base of every server frame: its `kind` is the `type` clients see."""

    __slots__ = ()
    kind: ClassVar[str]

    def encode(self) -> str:
        """`{"type": kind, ...fields}` as text, fields in their declared order."""
        body = orjson.dumps(self, default=_default)
        head = '{"type":"' + self.kind + '"'
        return head + "}" if body == b"{}" else head + "," + body[1:].decode()


@dataclass(frozen=True, slots=True)
class Hello(ServerFrame):
    kind = "hello"
    user: UserPublic
    heartbeat_interval: int


@dataclass(frozen=True, slots=True)
class NewMessage(ServerFrame):
    """A stored message: to every member, the sender's copy being its acknowledgement."""

    kind = "message"
    message: MessagePublic


@dataclass(frozen=True, slots=True)
class MessageUpdated(ServerFrame):
    """An edit, a deletion or a reaction."""

    kind = "message_updated"
    message: MessagePublic


@dataclass(frozen=True, slots=True)
class Typing(ServerFrame):
    kind = "typing"
    chat_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Read(ServerFrame):
    kind = "read"
    chat_id: int
    user_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class ThreadRead(ServerFrame):
    """My read marker in a thread moved: to my sockets."""

    kind = "thread_read"
    root_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class Presence(ServerFrame):
    kind = "presence"
    user_id: int
    status: str  # "online" | "offline"
    last_seen_at: str | None


@dataclass(frozen=True, slots=True)
class ChatUpdated(ServerFrame):
    """The chat as one viewer sees it, or (one frame for a whole chat) its shared fields."""

    kind = "chat_updated"
    chat: ChatPublic | dict[str, object]


@dataclass(frozen=True, slots=True)
class UserUpdated(ServerFrame):
    """A user's public profile changed (name, bio, avatar): to itself and the users who hear
    its presence."""

    kind = "user_updated"
    user: UserPublic


@dataclass(frozen=True, slots=True)
class ChatRemoved(ServerFrame):
    kind = "chat_removed"
    chat_id: int


@dataclass(frozen=True, slots=True)
class Error(ServerFrame):
    kind = "error"
    code: str
    detail: str
    ref: object = None


@dataclass(frozen=True, slots=True)
class Synced(ServerFrame):
    """The end of a sync; `truncated` lists the chats cut at the sync limit (omitted when
    none was)."""

    kind = "synced"
    truncated: list[int]

    def encode(self) -> str:
        return ServerFrame.encode(self) if self.truncated else '{"type":"synced"}'


@dataclass(frozen=True, slots=True)
class Pong(ServerFrame):
    kind = "pong"


@dataclass(frozen=True, slots=True)
class Ephemeral(ServerFrame):
    """A bot's answer to a command that only the caller sees (integrations)."""

    kind = "ephemeral"
    chat_id: int
    text: str
    bot: UserPublic
