"""The WebSocket frames a client may send: one declaration per frame type.

Each frame type is a pydantic model that names its `kind` and its rate `budget` in its
class header (`class Edit(Frame, kind="edit", budget="5/second")`); the
handler that serves it registers with `handles` (parley/server/realtime/ws.py), and the
registry refuses, at import, a frame type without a budget or a handler. Adding a frame
is one model here and one decorated handler there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley import errors
from parley.server.accounts.schemas import Id, Seq
from parley.server.messages.schemas import Emoji, SendFields
from parley.server.text import Content


@dataclass(frozen=True, slots=True)
class Budget:
    """How many frames of a type one user may send.

    `rate` ("5/second") is checked before the handler runs, under the limit `frame:<name>`
    (`PARLEY_RATE_FRAMES` overrides it by name). `rate=None` means the handler checks a
    limit of its own that has its own variable (`send`: `PARLEY_RATE_SEND`, shared with
    REST; `typing`: `PARLEY_RATE_TYPING`, where extra frames are dropped).
    """

    name: str
    rate: str | None


class Frame(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str

    kind: ClassVar[str]
    budget: ClassVar[Budget]

    def __init_subclass__(cls, *, kind: str, budget: str | Budget | None, **kwargs: Any) -> None:
        """Declares a frame type: its `kind`, and its budget: a rate ("5/second") for a
        budget of its own named after it, None for one its handler checks, or another
        frame's `Budget` to share."""
        super().__init_subclass__(**kwargs)
        if kind in FRAMES:
            raise TypeError(f"frame type {kind!r} is declared twice")
        cls.kind = kind
        cls.budget = budget if isinstance(budget, Budget) else Budget(kind, budget)
        FRAMES[kind] = cls


FRAMES: dict[str, type[Frame]] = {}


class Send(Frame, SendFields, kind="send", budget=None):
    chat_id: Id | None = None  # None only for the seed-000 frame: a send to `general`


class Edit(Frame, kind="edit", budget="5/second"):
    message_id: Id
    content: Content


class Delete(Frame, kind="delete", budget="5/second"):
    message_id: Id


class React(Frame, kind="react", budget="10/second"):
    message_id: Id
    emoji: Emoji


class Unreact(React, kind="unreact", budget=React.budget):
    """One budget for adding and removing reactions."""


class Typing(Frame, kind="typing", budget=None):
    chat_id: Id


class Read(Frame, kind="read", budget="10/second"):
    chat_id: Id
    seq: Seq


class Sync(Frame, kind="sync", budget="30/minute"):
    chats: Annotated[dict[Id, Seq], Field(max_length=1000)]


class PresenceQuery(Frame, kind="presence_query", budget="2/second"):
    user_ids: Annotated[list[Id], Field(max_length=200)]


class Ping(Frame, kind="ping", budget="60/minute"): ...


def frame_rates(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The throttle limits of the frames checked before their handler (`frame:<name>`),
    with `PARLEY_RATE_FRAMES`' overrides; an override of an unknown name is refused."""
    rates = {b.name: b.rate for b in _budgets() if b.rate is not None}
    for name, rate in (overrides or {}).items():
        if name not in rates:
            raise ValueError(
                f"PARLEY_RATE_FRAMES: expected type=rate with a type of {sorted(rates)}"
            )
        rates[name] = rate
    return {f"frame:{name}": rate for name, rate in rates.items()}


def _budgets() -> list[Budget]:
    return list(dict.fromkeys(model.budget for model in FRAMES.values()))


def check_handled(handlers: dict[str, Any]) -> None:
    """Called where the handlers are registered: every frame type has exactly one."""
    missing = sorted(set(FRAMES) - set(handlers))
    unknown = sorted(set(handlers) - set(FRAMES))
    if missing or unknown:
        raise TypeError(f"frame handlers missing for {missing}, declared for unknown {unknown}")


class FrameError(errors.ParleyError, code="bad_frame", detail="Malformed frame"): ...


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
