"""The typed event contract between services and hubs.

A service builds an event with one of the classes below and publishes it once; every
server process's hub receives it and dispatches on its class. A frame meant for clients
(frames.py) is encoded once per event (`ChatFrame.of`, `UsersFrame.of`), so the hub
pushes the same string to every recipient. On the wire (Redis) an event is a small JSON
object whose `t` names its class; `from_wire` turns it back into the typed event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, dataclass_transform

from parley.server.realtime.frames import ServerFrame


@dataclass_transform(frozen_default=True)
class _Event:
    """Base of every event, a frozen dataclass declared with `t`, the name of its class on
    the wire: `class ChatRemoved(_Event, t="chat_removed")`."""

    t: ClassVar[str]

    def __init_subclass__(cls, *, t: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.t = t
        dataclass(frozen=True)(cls)
        KINDS[t] = cls


KINDS: dict[str, type[Any]] = {}


class ChatFrame(_Event, t="chat"):
    """A frame for every connection subscribed to a chat (minus blockers of the sender).

    `kind` is the frame's type, so listeners (the history cache) need not parse `frame`."""

    chat_id: int
    frame: str
    sender_id: int | None = None
    skip_user: int | None = None
    kind: str = ""

    @classmethod
    def of(
        cls,
        chat_id: int,
        frame: ServerFrame,
        *,
        sender_id: int | None = None,
        skip_user: int | None = None,
    ) -> ChatFrame:
        return cls(chat_id, frame.encode(), sender_id, skip_user, frame.kind)


class UsersFrame(_Event, t="users"):
    """A frame for every connection of some users."""

    user_ids: list[int]
    frame: str

    @classmethod
    def of(cls, user_ids: list[int], frame: ServerFrame) -> UsersFrame:
        return cls(user_ids, frame.encode())


class MembershipChanged(_Event, t="membership"):
    """Users joined or left a chat: sockets (un)subscribe, membership caches forget them."""

    chat_id: int
    user_ids: list[int]
    joined: bool


class RolesChanged(_Event, t="roles"):
    """Roles of some members of a chat changed."""

    chat_id: int
    user_ids: list[int]


class ChatRemoved(_Event, t="chat_removed"):
    chat_id: int


class BlocksChanged(_Event, t="blocks"):
    """The full list of users `user_id` blocks now."""

    user_id: int
    blocked: list[int]


class SessionsEnded(_Event, t="sessions_ended"):
    """Login sessions ended (all of a user's when `session_ids` is None), or a ban."""

    user_id: int
    session_ids: list[int] | None = None
    keep: int | None = None
    banned: bool = False


class Unbanned(_Event, t="unbanned"):
    user_id: int


class ProfileChanged(_Event, t="profile"):
    """A user's public profile (name, display name, avatar) changed or the user is gone."""

    user_id: int


class PresenceChanged(_Event, t="presence"):
    """A server process now holds (or no longer holds) a present connection of a user."""

    user_id: int
    online: bool
    process: str


class Resync(_Event, t="resync"):
    """Events may have been lost (a broker reconnect): caches must forget everything."""


Event = (
    ChatFrame
    | UsersFrame
    | MembershipChanged
    | RolesChanged
    | ChatRemoved
    | BlocksChanged
    | SessionsEnded
    | Unbanned
    | ProfileChanged
    | PresenceChanged
    | Resync
)


def to_wire(event: Event | dict[str, Any]) -> dict[str, Any]:
    if isinstance(event, dict):
        return event
    fields = {name: getattr(event, name) for name in event.__dataclass_fields__}
    return {"t": event.t, **fields}


def from_wire(data: Event | dict[str, Any]) -> Event | None:
    """The typed event of a wire object; None for an unknown kind (a newer process's)."""
    if not isinstance(data, dict):
        return data
    cls = KINDS.get(data.get("t", ""))
    if cls is None:
        return None
    names = cls.__dataclass_fields__
    event: Event = cls(**{k: v for k, v in data.items() if k in names})
    return event
