"""The fast paths read their parameters from their route's own declaration: a request the
route would refuse (or read differently) never takes them."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI, Path, Query
from fastapi.routing import APIRoute

from parley.server.messages.fastpath import Declared
from parley.server.messages.routes import list_messages, router
from parley.server.middleware import SocketFastPath
from parley.server.realtime.ws import websocket_endpoint


def _scope(path: str, query: bytes = b"", headers: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "http", "path": path, "query_string": query, "headers": headers or []}


def _history() -> Declared:
    route = next(
        r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is list_messages
    )
    return Declared.of(route, app_only=("thread",))


def test_history_arguments_follow_the_route() -> None:
    declared = _history()
    assert declared.parse(_scope("/service/api/chats/7/messages", b"limit=5&before=9")) == {
        "chat_id": 7,
        "limit": 5,
        "before": 9,
        "after": None,
        "offset": 0,
        "around": None,
    }
    for path, query in [
        ("/service/api/chats/0/messages", b""),  # chat_id: gt=0
        ("/service/api/chats/x/messages", b""),
        ("/service/api/chats/7/messages", b"limit=0"),  # limit: ge=1
        ("/service/api/chats/7/messages", b"limit=1&limit=2"),
        ("/service/api/chats/7/messages", b"unknown=1"),
        ("/service/api/chats/7/messages", b"before=-1"),
        ("/service/api/chats/7/messages", b"after=9223372036854775808"),
        ("/service/api/chats/7/messages/x", b""),
        ("/service/api/chats/7/messages", b"thread=main"),  # not an integer: the app's
    ]:
        assert declared.parse(_scope(path, query)) is None, (path, query)
    with_body = _scope("/service/api/chats/7/messages", headers=[(b"content-length", b"2")])
    assert declared.parse(with_body) is None


def test_a_declaration_changed_to_something_else_fails_at_once() -> None:
    local = APIRouter()

    @local.get("/things/{name}")
    async def things(name: Annotated[str, Path()], n: Annotated[int, Query(ge=0)] = 0) -> None:
        return None

    @local.get("/unbounded/{n}")
    async def unbounded(n: int) -> None:
        return None

    for route in local.routes:
        assert isinstance(route, APIRoute)
        with pytest.raises(TypeError):
            Declared.of(route)


def test_the_socket_fast_path_serves_the_paths_the_app_declares() -> None:
    app = FastAPI()
    app.add_api_websocket_route("/somewhere/ws", websocket_endpoint)
    assert SocketFastPath(app).paths == {"/somewhere/ws"}
    with pytest.raises(TypeError):
        SocketFastPath(FastAPI())
