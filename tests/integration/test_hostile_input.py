"""Hostile input found by fuzzing the OpenAPI schema: a clear 422, never a 500 or a 503."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Running
from tests.factories import connect, make_user, recv_type

HUGE = 2**64


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/service/api/chats/{HUGE}"),
        ("GET", f"/service/api/chats/{HUGE}/messages"),
        ("GET", f"/service/api/messages/{HUGE}"),
        ("GET", f"/service/api/users/{HUGE}"),
        ("DELETE", f"/service/api/block/{HUGE}"),
        ("GET", "/service/api/chats/1/messages?before=" + str(HUGE)),
        ("GET", "/service/api/chats/1/messages?offset=" + str(HUGE)),
        ("GET", "/service/api/search?q=x&chat_id=" + str(HUGE)),
        ("GET", "/service/api/users?q=a%00b"),
        ("GET", "/service/api/chats/public?q=%00"),
        ("GET", "/service/api/search?q=hi%00there"),
    ],
)
async def test_out_of_range_and_nul_in_urls(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    me = await make_user(client)
    response = await client.request(method, path, headers=me.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_out_of_range_ids_and_nul_in_bodies(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    cases = [
        ("/service/api/chats", {"type": "direct", "user_id": HUGE}),
        ("/service/api/chats", {"type": "group", "title": "t", "member_ids": [HUGE]}),
        ("/service/api/block", {"user_id": HUGE}),
        ("/service/api/login", {"username": "nul\x00user", "password": "whatever-1"}),
    ]
    for path, body in cases:
        response = await client.post(path, json=body, headers=me.headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "validation_error"
    assert (await client.get("/health")).status_code == 200


async def test_out_of_range_ids_over_the_websocket(
    client: httpx.AsyncClient, live: Running
) -> None:
    me = await make_user(client)
    ws = await connect(live.ws_base, me)
    try:
        frames = [
            {"type": "send", "chat_id": HUGE, "content": "x", "client_id": "big-1"},
            {"type": "read", "chat_id": 1, "seq": HUGE},
            {"type": "sync", "chats": {str(HUGE): 0}},
        ]
        for frame in frames:
            await ws.send(json.dumps(frame))
            error = await recv_type(ws, "error")
            assert error["code"] == "validation_error", error
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_type(ws, "pong"))["type"] == "pong"
    finally:
        await ws.close()
