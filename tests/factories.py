"""Plain async factories that go through the public API."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

PASSWORD = "correct horse battery"


@dataclass
class Account:
    id: int
    username: str
    access_token: str
    refresh_token: str
    password: str = PASSWORD
    user: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def make_user(http: httpx.AsyncClient, username: str | None = None, **extra: Any) -> Account:
    username = username or unique()
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **extra}
    response = await http.post("/service/api/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    return Account(
        data["user"]["id"], username, data["access_token"], data["refresh_token"], user=data["user"]
    )


async def make_group(
    http: httpx.AsyncClient,
    owner: Account,
    *members: Account,
    type: str = "group",
    title: str = "Team",
) -> dict[str, Any]:
    response = await http.post(
        "/service/api/chats",
        json={"type": type, "title": title, "member_ids": [m.id for m in members]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def make_direct(http: httpx.AsyncClient, a: Account, b: Account) -> dict[str, Any]:
    response = await http.post(
        "/service/api/chats", json={"type": "direct", "user_id": b.id}, headers=a.headers
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def send(
    http: httpx.AsyncClient, who: Account, chat_id: int, content: str, **extra: Any
) -> dict[str, Any]:
    response = await http.post(
        f"/service/api/chats/{chat_id}/messages",
        json={"content": content, **extra},
        headers=who.headers,
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def connect(base_ws: str, who: Account, path: str = "/service/ws", **kwargs: Any) -> Any:
    """An open WebSocket past its `hello` frame."""
    ws = await websockets.connect(
        base_ws + path, additional_headers=who.headers, max_size=2**20, **kwargs
    )
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello" and hello["user"]["id"] == who.id
    return ws


async def recv_type(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame of `kind`, skipping others (presence, chat_updated...)."""
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return dict(frame)


async def no_frame(ws: Any, kind: str, wait: float = 0.5) -> None:
    """Asserts that no frame of `kind` arrives within `wait` seconds."""
    import asyncio

    try:
        async with asyncio.timeout(wait):
            while True:
                frame = json.loads(await ws.recv())
                assert frame["type"] != kind, f"unexpected {kind} frame: {frame}"
    except TimeoutError:
        return


def is_of_chat(frame: dict[str, Any], chat_id: int) -> bool:
    """The frame tells something of the chat (its `chat_removed` notice aside)."""
    if frame["type"] == "chat_removed":
        return False
    message, chat = frame.get("message") or {}, frame.get("chat") or {}
    return chat_id in (frame.get("chat_id"), message.get("chat_id"), chat.get("id"))


async def heard_before(ws: Any, message_id: int, chat_id: int) -> list[dict[str, Any]]:
    """The frames of `chat_id` a socket receives before the message `message_id`: silence
    proven by order (a socket gets events in the order they were published), not a wait."""
    import asyncio

    heard: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "message" and frame["message"]["id"] == message_id:
                return heard
            if is_of_chat(frame, chat_id):
                heard.append(frame)


async def seed_users(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every user of `GET /api/v1/users`, page by page (the shared test database holds
    more users than one page)."""
    found: list[dict[str, Any]] = []
    while True:
        page = await http.get(
            "/api/v1/users", params={"limit": 200, "offset": len(found)}, headers=headers
        )
        assert page.status_code == 200, page.text
        found += page.json()
        if len(page.json()) < 200:
            return found
