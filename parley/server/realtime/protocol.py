"""The WebSocket frames a client may send, as pydantic models keyed by `type`."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley import errors
from parley.server.accounts.schemas import Id, Seq
from parley.server.messages.schemas import AttachmentIds, ClientId, Emoji
from parley.server.text import Content


class Frame(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str


class Send(Frame):
    chat_id: Id | None = None  # None only for the seed-000 frame: a send to `general`
    content: Content
    client_id: ClientId | None = None
    reply_to: Id | None = None
    attachment_ids: AttachmentIds = Field(default_factory=list)


class Edit(Frame):
    message_id: Id
    content: Content


class Delete(Frame):
    message_id: Id


class React(Frame):
    message_id: Id
    emoji: Emoji


class Typing(Frame):
    chat_id: Id


class Read(Frame):
    chat_id: Id
    seq: Seq


class Sync(Frame):
    chats: Annotated[dict[Id, Seq], Field(max_length=1000)]


class PresenceQuery(Frame):
    user_ids: Annotated[list[Id], Field(max_length=200)]


class Ping(Frame):
    pass


FRAMES: dict[str, type[Frame]] = {
    "send": Send,
    "edit": Edit,
    "delete": Delete,
    "react": React,
    "unreact": React,
    "typing": Typing,
    "read": Read,
    "sync": Sync,
    "presence_query": PresenceQuery,
    "ping": Ping,
}


RATE_GROUP = {"unreact": "react"}  # frame types that share another type's rate limit


class FrameError(errors.ParleyError):
    code = "bad_frame"
    detail = "Malformed frame"


def ref_of(data: Any) -> Any:
    """What an error frame echoes: the frame's client_id, else its message_id."""
    if isinstance(data, dict):
        return data.get("client_id") or data.get("message_id")
    return None


def decode(text: str) -> dict[str, Any]:
    """The frame as a JSON object; raises FrameError."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("Frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise FrameError("Frame must be a JSON object")
    return data


def parse(data: dict[str, Any]) -> Frame:
    """The typed frame of a decoded one; raises FrameError, ParleyError or ValidationFailed."""
    kind = data.get("type")
    if kind is None and "content" in data:  # seed 000: {"content": ...} is a send to general
        data = {"content": data["content"], "client_id": data.get("client_id"), "type": "send"}
        kind = "send"
    if not isinstance(kind, str):
        raise FrameError("Frame needs a string `type`")
    model = FRAMES.get(kind)
    if model is None:
        raise errors.ParleyError(f"Unknown frame type {kind[:32]!r}", code="unknown_type")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise errors.ValidationFailed(f"{where}: {first['msg']}") from None
