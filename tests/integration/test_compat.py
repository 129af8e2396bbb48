"""Seed 000's routes (/api/v1, /health, /stats) and the per-user send limit."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.conftest import (
    PG_DSN,
    Running,
    _create_database,
    _drop_database,
    no_cookies,
    start_server,
    stop_server,
    test_settings,
)
from tests.factories import PASSWORD, connect, make_group, make_user, recv_type, seed_users, unique


async def test_seed_users_list_and_register(client: httpx.AsyncClient) -> None:
    name = unique("seed")
    created = await client.post(
        "/api/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "id": created.json()["id"],
        "username": name,
        "email": f"{name}@example.com",
    }
    taken = await client.post(
        "/api/v1/users",
        json={"username": name, "email": f"x{name}@example.com", "password": PASSWORD},
    )
    assert taken.status_code == 409
    login = await client.post("/service/api/login", json={"username": name, "password": PASSWORD})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    users = await seed_users(client, headers)
    assert {"id": created.json()["id"], "username": name, "email": f"{name}@example.com"} in users
    assert (await client.get("/api/v1/users")).status_code == 401


async def test_seed_messages_post_as_token_user_newest_first(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, other = await make_user(client), await make_user(client)
    posted = []
    for text in ("first", "second", "third"):
        response = await client.post(
            "/api/v1/messages",
            json={"content": text, "user_id": other.id, "username": other.username},
            headers=me.headers,
        )
        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == me.id and response.json()["username"] == me.username
        posted.append(response.json())
    newest = (await client.get("/api/v1/messages", params={"limit": 3}, headers=me.headers)).json()
    assert [m["content"] for m in newest] == ["third", "second", "first"]
    assert set(newest[0]) == {"id", "user_id", "username", "content", "created_at"}
    page = await client.get(
        "/api/v1/messages", params={"limit": 2, "offset": 1}, headers=me.headers
    )
    assert [m["id"] for m in page.json()] == [posted[1]["id"], posted[0]["id"]]
    assert (await client.get("/api/v1/messages")).status_code == 401
    assert (
        await client.post("/api/v1/messages", json={"content": "  "}, headers=me.headers)
    ).status_code == 422
    # Seed clients also send frames without a type: a send to `general`.
    ws = await connect(live.ws_base, me)
    try:
        await ws.send(json.dumps({"content": "from a seed client"}))
        frame = await recv_type(ws, "message")
        assert frame["message"]["content"] == "from a seed client"
    finally:
        await ws.close()
    latest = (await client.get("/api/v1/messages", params={"limit": 1}, headers=me.headers)).json()
    assert latest[0]["content"] == "from a seed client"


async def test_health_and_stats(client: httpx.AsyncClient, live: Running) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["checks"]["database"] == "ok"
    assert set(health.json()["checks"]) == {"database", "broker", "storage"}
    live.state.caches.pop("stats", None)
    before = (await client.get("/stats")).json()
    assert set(before) == {"users", "chats", "messages", "connections", "uptime_seconds"}
    me = await make_user(client)
    chat = await make_group(client, me)
    await client.post(
        f"/service/api/chats/{chat['id']}/messages",
        json={"content": "count me"},
        headers=me.headers,
    )
    ws = await connect(live.ws_base, me)
    live.state.caches.pop("stats", None)  # counts are cached for 5 s
    try:
        after = (await client.get("/stats")).json()
    finally:
        await ws.close()
    assert after["users"] == before["users"] + 1
    assert after["chats"] == before["chats"] + 1
    assert after["messages"] == before["messages"] + 1
    assert after["connections"] == before["connections"] + 1
    assert after["uptime_seconds"] >= before["uptime_seconds"] > 0


async def test_health_503_when_postgres_is_gone(tmp_path: Path, pg_url: str) -> None:
    """A server on a database of its own; the database is then dropped under it."""
    name = "parley_gone_" + uuid.uuid4().hex[:10]
    await _create_database(name)
    url = f"{PG_DSN.rsplit('/', 1)[0]}/{name}"
    running, server, task = await start_server(test_settings(tmp_path, DATABASE_URL=url))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            assert (await http.get("/health")).status_code == 200
            await _drop_database(name)  # WITH (FORCE): its connections are terminated
            health = await http.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "unavailable"
            assert health.json()["checks"]["database"].startswith("error")
            rest = await http.get("/service/api/chats", headers=me.headers)
            assert rest.status_code == 503 and rest.json()["code"] == "unavailable"
    finally:
        await stop_server(server, task)
        await _drop_database(name)


async def test_send_limit_counts_rest_and_websocket_together(tmp_path: Path) -> None:
    # "3/minute", not "3/second": the same rule, but a slow run cannot slip into a new window.
    running, server, task = await start_server(test_settings(tmp_path, PARLEY_RATE_SEND="3/minute"))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            chat = await make_group(http, me)
            url = f"/service/api/chats/{chat['id']}/messages"
            for i in range(2):
                ok = await http.post(url, json={"content": f"rest {i}"}, headers=me.headers)
                assert ok.status_code == 201
            ws = await connect(running.ws_base, me)
            try:
                await ws.send(json.dumps({"type": "send", "chat_id": chat["id"], "content": "ws"}))
                assert (await recv_type(ws, "message"))["message"]["content"] == "ws"
                over = {"type": "send", "chat_id": chat["id"], "content": "4th", "client_id": "c4"}
                await ws.send(json.dumps(over))
                error = await recv_type(ws, "error")
                assert error["code"] == "rate_limited" and error["ref"] == "c4"
            finally:
                await ws.close()
            limited = await http.post(url, json={"content": "5th"}, headers=me.headers)
            assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            seed = await http.post("/api/v1/messages", json={"content": "6th"}, headers=me.headers)
            assert seed.status_code == 429
            history = (await http.get(url, headers=me.headers)).json()
            assert [m["content"] for m in history] == ["rest 0", "rest 1", "ws"]
    finally:
        await stop_server(server, task)
