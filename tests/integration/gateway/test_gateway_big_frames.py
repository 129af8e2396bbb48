"""Frames from the server larger than the clients' 64 KiB limit reach a member through a real
gateway in front of a real server, live and through `sync`, on SQLite and PostgreSQL.

The 64 KiB limit (`PARLEY_WS_MAX_FRAME`) is on what clients send (API.md, "Isolation"):
a message with many reactions and a long mention list must not close anyone's socket.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import insert, select

from parley.server.db.models import Membership, User
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, make_group, make_user, send

from .conftest import RunningGateway

CLIENT_LIMIT = 64 * 1024
REACTIONS = 60  # distinct emoji: three times the default PARLEY_MAX_REACTIONS
CROWD = 14_000  # members whose ids `@all` lists: over 64 KiB of mentions on their own


@dataclass
class Front:
    server: Running
    gateway: RunningGateway
    http: httpx.AsyncClient  # straight to the server


@pytest.fixture
async def front(
    database_url: str | None, tmp_path: Path, make_gateway: Any
) -> AsyncIterator[Front]:
    overrides: dict[str, object] = {"PARLEY_MAX_REACTIONS": 100}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    settings = test_settings(tmp_path / "server", **overrides)
    server, uvicorn_server, task = await start_server(settings)
    try:
        gateway = make_gateway([server.base], JWT_SECRET=settings.jwt_secret)
        async with httpx.AsyncClient(
            base_url=server.base, timeout=60, cookies=no_cookies()
        ) as http:
            yield Front(server, gateway, http)
    finally:
        await stop_server(uvicorn_server, task)


async def _crowd(server: Running, chat_id: int, count: int) -> None:
    """`count` more members of the chat, inserted in bulk (registering them one by one
    would take minutes; only their ids matter here)."""
    tag = uuid.uuid4().hex[:8]
    users = [
        {
            "username": f"c{tag}{n}",
            "username_key": f"c{tag}{n}",
            "email": f"c{tag}{n}@example.com",
            "email_key": f"c{tag}{n}@example.com",
            "password_hash": "-",
            "display_name": f"c{tag}{n}",
        }
        for n in range(count)
    ]
    async with server.state.sessions() as session:
        await session.execute(insert(User), users)
        ids = (
            await session.execute(select(User.id).where(User.username.like(f"c{tag}%")))
        ).scalars()
        await session.execute(
            insert(Membership), [{"chat_id": chat_id, "user_id": i, "role": "member"} for i in ids]
        )
        await session.commit()


async def _next(ws: Any, kind: str, timeout: float = 20) -> tuple[dict[str, Any], int]:
    """The next frame of `kind` and its size in bytes, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            frame = json.loads(raw)
            if frame["type"] == kind:
                return frame, len(raw.encode() if isinstance(raw, str) else raw)


def _connect(gateway: RunningGateway, who: Account) -> Any:
    return websockets.connect(
        f"{gateway.ws_url}/ws", additional_headers=who.headers, max_size=None, open_timeout=10
    )


async def test_a_message_larger_than_the_clients_limit_reaches_members_live_and_by_sync(
    front: Front,
) -> None:
    http = front.http
    owner, member = await make_user(http), await make_user(http)
    chat = await make_group(http, owner, member, title="Crowded")
    await _crowd(front.server, chat["id"], CROWD)
    emoji = [chr(0x1F400 + n) for n in range(REACTIONS)]  # 🐀 onwards: distinct emoji
    async with _connect(front.gateway, member) as ws:
        await _next(ws, "hello")
        message = await send(http, owner, chat["id"], "@all look")
        assert len(message["mentions"]) == CROWD + 1
        live, size = await _next(ws, "message")
        assert live["message"]["id"] == message["id"] and size > CLIENT_LIMIT
        for e in emoji:
            answer = await http.post(
                f"/service/api/messages/{message['id']}/reactions",
                json={"emoji": e},
                headers=owner.headers,
            )
            assert answer.status_code == 200, answer.text
        for n in range(REACTIONS):
            updated, size = await _next(ws, "message_updated")
            assert len(updated["message"]["reactions"]) == n + 1 and size > CLIENT_LIMIT
        # Still open, and still served: a ping is answered, a sync brings the message.
        await ws.send(json.dumps({"type": "ping"}))
        await _next(ws, "pong")
        await ws.send(json.dumps({"type": "sync", "chats": {str(chat["id"]): 0}}))
        synced, size = await _next(ws, "message")
        assert size > CLIENT_LIMIT
        assert [r["emoji"] for r in synced["message"]["reactions"]] == emoji
        assert len(synced["message"]["mentions"]) == CROWD + 1
        await _next(ws, "synced")
    # A member who was away catches up the same way on a new socket.
    async with _connect(front.gateway, member) as ws:
        await _next(ws, "hello")
        await ws.send(json.dumps({"type": "sync", "chats": {str(chat["id"]): 0}}))
        synced, size = await _next(ws, "message")
        assert synced["message"]["id"] == message["id"] and size > CLIENT_LIMIT
        await _next(ws, "synced")
