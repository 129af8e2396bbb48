"""The frames the server sends to clients: one typed class per frame `type`.

A frame is built once per event and encoded once (`encode`), so the hub pushes the same
string to every recipient; the events that carry it (`ChatFrame`, `UsersFrame` in
events.py) also carry its `kind`, so a cache can tell what changed without reading the
JSON. The client frames (what clients send) are in protocol.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, dataclass_transform

import orjson

from parley.server.accounts.schemas import UserPublic
from parley.server.chats.schemas import ChatPublic
from parley.server.messages.schemas import MessagePublic


def _default(value: object) -> object:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(type(value))


@dataclass_transform(frozen_default=True)
class ServerFrame:
    """Base of every server frame, a frozen dataclass declared with its `kind`, the `type`
    clients see: `class Typing(ServerFrame, kind="typing")`."""

    kind: ClassVar[str]

    def __init_subclass__(cls, *, kind: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = kind
        dataclass(frozen=True)(cls)

    def encode(self) -> str:
        """`{"type": kind, ...fields}` as text, fields in their declared order."""
        body = orjson.dumps(self, default=_default)
        head = '{"type":"' + self.kind + '"'
        return head + "}" if body == b"{}" else head + "," + body[1:].decode()


class Hello(ServerFrame, kind="hello"):
    user: UserPublic
    heartbeat_interval: int


class NewMessage(ServerFrame, kind="message"):
    """A stored message: to every member, the sender's copy being its acknowledgement."""

    message: MessagePublic


class MessageUpdated(ServerFrame, kind="message_updated"):
    """An edit, a deletion or a reaction."""

    message: MessagePublic


class Typing(ServerFrame, kind="typing"):
    chat_id: int
    user_id: int


class Read(ServerFrame, kind="read"):
    chat_id: int
    user_id: int
    seq: int


class ThreadRead(ServerFrame, kind="thread_read"):
    """My read marker in a thread moved: to my sockets."""

    root_id: int
    seq: int


class Presence(ServerFrame, kind="presence"):
    user_id: int
    status: str  # "online" | "offline"
    last_seen_at: str | None


class ChatUpdated(ServerFrame, kind="chat_updated"):
    """The chat as one viewer sees it, or (one frame for a whole chat) its shared fields."""

    chat: ChatPublic | dict[str, object]


class UserUpdated(ServerFrame, kind="user_updated"):
    """A user's public profile changed (name, bio, avatar): to itself and the users who hear
    its presence."""

    user: UserPublic


class ChatRemoved(ServerFrame, kind="chat_removed"):
    chat_id: int


class Error(ServerFrame, kind="error"):
    code: str
    detail: str
    ref: object = None


class Synced(ServerFrame, kind="synced"):
    """The end of a sync; `truncated` lists the chats cut at the sync limit (omitted when
    none was)."""

    truncated: list[int]

    def encode(self) -> str:
        return ServerFrame.encode(self) if self.truncated else '{"type":"synced"}'


class Pong(ServerFrame, kind="pong"): ...


class Ephemeral(ServerFrame, kind="ephemeral"):
    """A bot's answer to a command that only the caller sees (integrations)."""

    chat_id: int
    text: str
    bot: UserPublic
