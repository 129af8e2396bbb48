"""Blocks and bans over HTTP and WebSocket on SQLite and PostgreSQL, and their expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets

from parley.server.accounts.service import promote_user
from parley.server.realtime import events
from tests.conftest import Running, no_cookies
from tests.factories import (
    PASSWORD,
    Account,
    connect,
    make_direct,
    make_group,
    make_user,
    no_frame,
    recv_type,
    send,
    unique,
)
from tests.waiting import EventLog, eventually


@pytest.fixture(scope="module")
async def admin(live: Running) -> Account:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        account = await make_user(http)
    async with live.state.sessions() as session:
        assert await promote_user(session, username=account.username)
    return account


async def block(
    http: httpx.AsyncClient, who: Account, target: Account, **extra: Any
) -> httpx.Response:
    return await http.post(
        "/service/api/block", json={"user_id": target.id, **extra}, headers=who.headers
    )


async def post(http: httpx.AsyncClient, who: Account, chat_id: int, content: str) -> httpx.Response:
    return await http.post(
        f"/service/api/chats/{chat_id}/messages", json={"content": content}, headers=who.headers
    )


async def login(http: httpx.AsyncClient, who: Account) -> httpx.Response:
    return await http.post(
        "/service/api/login", json={"username": who.username, "password": PASSWORD}
    )


# --- blocks ---------------------------------------------------------------------------------


async def test_block_list_unblock(client: httpx.AsyncClient) -> None:
    me, b, c = [await make_user(client) for _ in range(3)]
    timed = await block(client, me, b, duration_seconds=3600)
    assert timed.status_code == 201, timed.text
    body = timed.json()
    expires = datetime.fromisoformat(body["expires_at"])
    assert body["user_id"] == b.id and body["created_at"]
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    forever = await block(client, me, c)
    assert forever.status_code == 201 and forever.json()["expires_at"] is None
    listed = (await client.get("/service/api/block", headers=me.headers)).json()
    assert [x["user_id"] for x in listed] == [b.id, c.id]
    assert (await client.get("/service/api/block", headers=b.headers)).json() == []
    assert (
        await client.delete(f"/service/api/block/{b.id}", headers=me.headers)
    ).status_code == 204
    gone = await client.delete(f"/service/api/block/{b.id}", headers=me.headers)
    assert gone.status_code == 404
    listed = (await client.get("/service/api/block", headers=me.headers)).json()
    assert [x["user_id"] for x in listed] == [c.id]
    assert (await block(client, me, me)).status_code == 422
    missing = await client.post("/service/api/block", json={"user_id": 10**9}, headers=me.headers)
    assert missing.status_code == 404
    bad = await block(client, me, b, duration_seconds=0)
    assert bad.status_code == 422


async def test_direct_block_stops_both_sides(client: httpx.AsyncClient, live: Running) -> None:
    a, b, c = [await make_user(client) for _ in range(3)]
    chat = await make_direct(client, a, b)
    assert (await post(client, b, chat["id"], "hi")).status_code == 201
    assert (await block(client, a, b)).status_code == 201
    for sender in (a, b):
        refused = await post(client, sender, chat["id"], "still there?")
        assert refused.status_code == 403 and refused.json()["code"] == "blocked"
    ws = await connect(live.ws_base, b)
    try:
        await ws.send(json.dumps({"type": "send", "chat_id": chat["id"], "content": "x"}))
        error = await recv_type(ws, "error")
        assert error["code"] == "blocked"
    finally:
        await ws.close()
    assert (await block(client, c, a)).status_code == 201
    for opener, peer in ((a, c), (c, a)):
        opened = await client.post(
            "/service/api/chats",
            json={"type": "direct", "user_id": peer.id},
            headers=opener.headers,
        )
        assert opened.status_code == 403 and opened.json()["code"] == "blocked"
    await client.delete(f"/service/api/block/{b.id}", headers=a.headers)
    assert (await post(client, b, chat["id"], "friends again")).status_code == 201


async def test_group_block_hides_live_and_history(client: httpx.AsyncClient, live: Running) -> None:
    a, b, c = [await make_user(client) for _ in range(3)]
    chat = await make_group(client, a, b, c)
    early = await send(client, b, chat["id"], "before the block")
    ws = await connect(live.ws_base, a)
    try:
        assert (await block(client, a, b)).status_code == 201
        await send(client, b, chat["id"], "hidden from a")
        await send(client, c, chat["id"], "seen by a")
        frame = await recv_type(ws, "message")
        assert frame["message"]["content"] == "seen by a"
        history = await client.get(f"/service/api/chats/{chat['id']}/messages", headers=a.headers)
        assert [m["content"] for m in history.json()] == ["seen by a"]
        hidden = await client.get(f"/service/api/messages/{early['id']}", headers=a.headers)
        assert hidden.status_code == 404
        others = await client.get(f"/service/api/chats/{chat['id']}/messages", headers=c.headers)
        assert len(others.json()) == 3
        # b is not told, and can still write to the group.
        assert (await post(client, b, chat["id"], "again")).status_code == 201
        await no_frame(ws, "message", wait=0.3)
        await client.delete(f"/service/api/block/{b.id}", headers=a.headers)
        await send(client, b, chat["id"], "visible again")
        assert (await recv_type(ws, "message"))["message"]["content"] == "visible again"
    finally:
        await ws.close()


async def test_chat_list_skips_blocked_senders_in_last_message_and_unread(
    client: httpx.AsyncClient,
) -> None:
    a, b, c = [await make_user(client) for _ in range(3)]
    group = await make_group(client, c, a, b)
    channel = await make_group(client, c, a, b, type="channel", title="News")
    direct = await make_direct(client, a, b)
    await send(client, c, group["id"], "from c")
    await send(client, b, channel["id"], "first from b")
    await send(client, b, direct["id"], "direct from b")
    assert (await block(client, a, b)).status_code == 201
    await send(client, b, group["id"], "hidden one")
    await send(client, b, group["id"], "hidden two")
    await send(client, c, channel["id"], "visible in channel")
    await send(client, b, channel["id"], "hidden in channel")

    def by_id(body: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        return {chat["id"]: chat for chat in body}

    mine = by_id((await client.get("/service/api/chats", headers=a.headers)).json())
    # The group's two newest are b's: its last message is c's, and only c's is unread.
    assert mine[group["id"]]["last_message"]["content"] == "from c"
    assert mine[group["id"]]["unread_count"] == 1
    assert mine[channel["id"]]["last_message"]["content"] == "visible in channel"
    assert mine[channel["id"]]["unread_count"] == 1
    # A direct chat still shows what was said before the block.
    assert mine[direct["id"]]["last_message"]["content"] == "direct from b"
    assert mine[direct["id"]]["unread_count"] == 1
    one = (await client.get(f"/service/api/chats/{group['id']}", headers=a.headers)).json()
    assert one["last_message"]["content"] == "from c" and one["unread_count"] == 1
    # Others see everything.
    theirs = by_id((await client.get("/service/api/chats", headers=c.headers)).json())
    assert theirs[group["id"]]["last_message"]["content"] == "hidden two"
    assert theirs[group["id"]]["unread_count"] == 2
    # Once unblocked, b's messages count again.
    await client.delete(f"/service/api/block/{b.id}", headers=a.headers)
    again = by_id((await client.get("/service/api/chats", headers=a.headers)).json())
    assert again[group["id"]]["last_message"]["content"] == "hidden two"
    assert again[group["id"]]["unread_count"] == 3
    # `read_seq` is my read marker, where a client opens the chat.
    assert again[group["id"]]["read_seq"] == 0
    first_seq = mine[group["id"]]["last_message"]["seq"]
    read = await client.post(
        f"/service/api/chats/{group['id']}/read", json={"seq": first_seq}, headers=a.headers
    )
    assert read.status_code == 204
    moved = (await client.get(f"/service/api/chats/{group['id']}", headers=a.headers)).json()
    assert moved["read_seq"] == first_seq and moved["unread_count"] == 2


async def test_timed_block_is_lifted_by_the_worker(
    client: httpx.AsyncClient, live: Running, published: EventLog
) -> None:
    a, b = await make_user(client), await make_user(client)
    group = await make_group(client, a, b)
    ws = await connect(live.ws_base, a)
    try:
        assert (await block(client, a, b, duration_seconds=2)).status_code == 201
        await send(client, b, group["id"], "while blocked")
        await no_frame(ws, "message", wait=0.2)
        # The worker deletes the row, then publishes a's blocks (none now) to every hub.
        await published.wait_for(events.BlocksChanged, 4.0, user_id=a.id, blocked=[])
        # The worker also told a's open socket: b's messages reach it live again.
        await send(client, b, group["id"], "after expiry")
        assert (await recv_type(ws, "message", timeout=2))["message"]["content"] == "after expiry"
    finally:
        await ws.close()
    assert (await client.get("/service/api/block", headers=a.headers)).json() == []


# --- bans -----------------------------------------------------------------------------------


async def test_bans_are_for_admins_only(client: httpx.AsyncClient) -> None:
    me, other = await make_user(client), await make_user(client)
    tried = await client.post(
        "/service/api/admin/bans", json={"user_id": other.id}, headers=me.headers
    )
    assert tried.status_code == 403
    assert (await client.get("/service/api/admin/bans", headers=me.headers)).status_code == 403
    lift = await client.delete(f"/service/api/admin/bans/{other.id}", headers=me.headers)
    assert lift.status_code == 403
    assert (await client.get("/service/api/profile", headers=other.headers)).status_code == 200


async def test_ban_locks_out_everywhere_until_lifted(
    client: httpx.AsyncClient, live: Running, admin: Account
) -> None:
    target = await make_user(client)
    ws = await connect(live.ws_base, target)
    reason = unique("spam")
    banned = await client.post(
        "/service/api/admin/bans",
        json={"user_id": target.id, "reason": reason},
        headers=admin.headers,
    )
    assert banned.status_code == 201, banned.text
    assert banned.json()["user_id"] == target.id and banned.json()["expires_at"] is None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(3):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    old = await client.get("/service/api/profile", headers=target.headers)
    assert old.status_code == 403 and old.json()["code"] == "user_banned"
    again = await login(client, target)
    assert again.status_code == 403 and again.json()["code"] == "user_banned"
    refreshed = await client.post(
        "/service/api/refresh", json={"refresh_token": target.refresh_token}
    )
    assert refreshed.status_code == 403 and refreshed.json()["code"] == "user_banned"
    with pytest.raises(websockets.InvalidStatus):
        await connect(live.ws_base, target)
    listed = (await client.get("/service/api/admin/bans", headers=admin.headers)).json()
    mine = [b for b in listed if b["user_id"] == target.id]
    assert mine and mine[0]["reason"] == reason and mine[0]["banned_by"] == admin.id

    lifted = await client.delete(f"/service/api/admin/bans/{target.id}", headers=admin.headers)
    assert lifted.status_code == 204
    assert (await login(client, target)).status_code == 200
    assert (
        await client.delete(f"/service/api/admin/bans/{target.id}", headers=admin.headers)
    ).status_code == 404
    self_ban = await client.post(
        "/service/api/admin/bans", json={"user_id": admin.id}, headers=admin.headers
    )
    assert self_ban.status_code == 422


async def test_timed_ban_is_lifted_by_the_worker(
    client: httpx.AsyncClient, live: Running, admin: Account
) -> None:
    target = await make_user(client)
    banned = await client.post(
        "/service/api/admin/bans",
        json={"user_id": target.id, "duration_seconds": 2},
        headers=admin.headers,
    )
    assert banned.status_code == 201
    # 2 s, not 1: a login (argon2) on a loaded machine can take a good part of a second.
    assert (await login(client, target)).status_code == 403

    async def logs_in() -> bool:
        return (await login(client, target)).status_code == 200

    await eventually(logs_in, 4.0, interval=0.2, what="the ban lifted")
    assert (await client.get("/service/api/profile", headers=target.headers)).status_code == 200
