"""Presence and typing over the WebSocket: who is told, when, and how often."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import connect, make_direct, make_group, make_user, no_frame, recv_type
from tests.waiting import eventually


async def test_presence_online_offline_to_chat_partners_only(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b, stranger = [await make_user(client) for _ in range(3)]
    await make_direct(client, a, b)  # the stranger shares only `general` (a public channel)
    watcher = await connect(live.ws_base, b)
    outsider = await connect(live.ws_base, stranger)
    try:
        first = await connect(live.ws_base, a)
        online = await recv_type(watcher, "presence")
        assert online["user_id"] == a.id and online["status"] == "online"
        assert online["last_seen_at"]
        seen = (await client.get(f"/service/api/users/{a.id}", headers=b.headers)).json()
        assert seen["online"] is True
        listed = (await client.get("/service/api/chats", headers=b.headers)).json()
        assert [c["peer"]["online"] for c in listed if c["type"] == "direct"] == [True]

        second = await connect(live.ws_base, a)
        await first.close()
        await no_frame(watcher, "presence", wait=0.3)  # one connection is still open
        await second.close()
        offline = await recv_type(watcher, "presence")
        assert offline["user_id"] == a.id and offline["status"] == "offline"
        after = (await client.get(f"/service/api/users/{a.id}", headers=b.headers)).json()
        assert after["online"] is False and after["last_seen_at"] is not None
        await no_frame(outsider, "presence", wait=0.2)
    finally:
        await watcher.close()
        await outsider.close()


@pytest.fixture
async def quick_presence(tmp_path: Path, database_url: str | None) -> AsyncIterator[Running]:
    """A server of its own where presence times out after one quiet second."""
    overrides: dict[str, object] = {"PARLEY_PRESENCE_TIMEOUT": 1}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, server, task = await start_server(test_settings(tmp_path, **overrides))
    yield running
    await stop_server(server, task)


async def _presence_of(ws: Any, user_id: int, timeout: float = 5.0) -> dict[str, Any]:
    """The next presence frame about `user_id` (the watcher, as quiet as the other, may hear
    of itself in between)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv_type(ws, "presence", timeout=timeout)
            if frame["user_id"] == user_id:
                return frame


async def test_quiet_connection_goes_offline_then_back(quick_presence: Running) -> None:
    async with httpx.AsyncClient(base_url=quick_presence.base, cookies=no_cookies()) as http:
        a, b = await make_user(http), await make_user(http)
        await make_group(http, a, b)
        watcher = await connect(quick_presence.ws_base, b)
        quiet = await connect(quick_presence.ws_base, a)
        try:
            assert (await _presence_of(watcher, a.id))["status"] == "online"
            # No application frame from `a` for a second: offline, though its socket is open.
            offline = await _presence_of(watcher, a.id, timeout=5)
            assert offline["status"] == "offline"
            user = (await http.get(f"/service/api/users/{a.id}", headers=b.headers)).json()
            assert user["online"] is False
            await quiet.send(json.dumps({"type": "ping"}))
            assert (await recv_type(quiet, "pong"))["type"] == "pong"
            back = await _presence_of(watcher, a.id, timeout=5)
            assert back["status"] == "online"
        finally:
            await quiet.close()
            await watcher.close()


async def test_typing_reaches_others_not_sender_and_is_rate_limited(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    chat = await make_group(client, a, b)
    typist = await connect(live.ws_base, a)
    reader = await connect(live.ws_base, b)
    try:
        for _ in range(6):
            await typist.send(json.dumps({"type": "typing", "chat_id": chat["id"]}))
        got = [await recv_type(reader, "typing")]
        with pytest.raises(TimeoutError):
            while True:
                got.append(await recv_type(reader, "typing", timeout=0.4))
        assert got[0] == {"type": "typing", "chat_id": chat["id"], "user_id": a.id}
        allowed = int(live.settings.rate_typing.split("/")[0])  # 2/second by default
        assert len(got) == allowed < 6  # the rest were dropped silently
        await no_frame(typist, "typing", wait=0.1)
        await typist.send(json.dumps({"type": "typing", "chat_id": 10**9}))
        assert (await recv_type(typist, "error"))["code"] == "not_member"
    finally:
        await typist.close()
        await reader.close()


async def test_new_direct_chat_shows_whether_the_peer_is_online(
    client: httpx.AsyncClient, live: Running
) -> None:
    """The chat a new direct chat announces carries the peer's presence, not a default."""
    a, b = await make_user(client), await make_user(client)
    peer_socket = await connect(live.ws_base, b)
    mine = await connect(live.ws_base, a)
    try:
        created = await client.post(
            "/service/api/chats", json={"type": "direct", "user_id": b.id}, headers=a.headers
        )
        assert created.status_code == 201 and created.json()["peer"]["online"] is True
        async with asyncio.timeout(5):
            while True:
                frame = await recv_type(mine, "chat_updated")
                if frame["chat"].get("peer"):
                    break
        assert frame["chat"]["peer"]["id"] == b.id and frame["chat"]["peer"]["online"] is True
    finally:
        await mine.close()
        await peer_socket.close()


@pytest.fixture
async def small_groups(tmp_path: Path, database_url: str | None) -> AsyncIterator[Running]:
    """A server where groups above two members count as large for presence."""
    overrides: dict[str, object] = {"PARLEY_PRESENCE_MAX_GROUP": 2}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, server, task = await start_server(test_settings(tmp_path, **overrides))
    yield running
    await stop_server(server, task)


async def test_large_groups_get_no_pushed_presence_but_can_ask(small_groups: Running) -> None:
    async with httpx.AsyncClient(base_url=small_groups.base, cookies=no_cookies()) as http:
        a, b, c, stranger = [await make_user(http) for _ in range(4)]
        await make_group(http, a, b, c)  # three members: above PARLEY_PRESENCE_MAX_GROUP
        await make_direct(http, a, c)
        watcher_b = await connect(small_groups.ws_base, b)
        watcher_c = await connect(small_groups.ws_base, c)
        try:
            ws_a = await connect(small_groups.ws_base, a)
            direct = await recv_type(watcher_c, "presence")  # c shares a direct chat with a
            assert direct["user_id"] == a.id and direct["status"] == "online"
            await no_frame(watcher_b, "presence", wait=0.5)  # b shares only the large group
            # b asks: one `presence` frame per asked user it shares a chat with
            await watcher_b.send(
                json.dumps({"type": "presence_query", "user_ids": [a.id, c.id, stranger.id]})
            )
            answers = [await recv_type(watcher_b, "presence") for _ in range(2)]
            assert {(f["user_id"], f["status"]) for f in answers} == {
                (a.id, "online"),
                (c.id, "online"),
            }
            assert all("last_seen_at" in f for f in answers)
            await watcher_b.send(json.dumps({"type": "ping"}))
            await recv_type(watcher_b, "pong")  # nothing about the stranger came before it
            too_many = list(range(1, 202))
            await watcher_b.send(json.dumps({"type": "presence_query", "user_ids": too_many}))
            error = await recv_type(watcher_b, "error")
            assert error["code"] == "validation_error"
            await ws_a.close()
        finally:
            await watcher_b.close()
            await watcher_c.close()


@pytest.fixture
async def typing_limit(tmp_path: Path, database_url: str | None) -> AsyncIterator[Running]:
    """A server where chats above three members hear nobody typing."""
    overrides: dict[str, object] = {"PARLEY_TYPING_MAX_MEMBERS": 3}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, server, task = await start_server(test_settings(tmp_path, **overrides))
    yield running
    await stop_server(server, task)


async def test_chats_above_the_typing_limit_hear_nobody_typing(typing_limit: Running) -> None:
    async with httpx.AsyncClient(base_url=typing_limit.base, cookies=no_cookies()) as http:
        a, b, c, d = [await make_user(http) for _ in range(4)]
        small = await make_group(http, a, b, c)  # three members: at the limit
        large = await make_group(http, a, b, c)
        typist = await connect(typing_limit.ws_base, a)
        reader = await connect(typing_limit.ws_base, b)
        try:
            await typist.send(json.dumps({"type": "typing", "chat_id": small["id"]}))
            heard = await recv_type(reader, "typing")
            assert heard == {"type": "typing", "chat_id": small["id"], "user_id": a.id}
            added = await http.post(
                f"/service/api/chats/{large['id']}/members",
                json={"user_ids": [d.id]},
                headers=a.headers,
            )
            assert added.status_code in (200, 201, 204), added.text
            await typist.send(json.dumps({"type": "typing", "chat_id": large["id"]}))
            await no_frame(reader, "typing", wait=0.5)  # four members: above it
            # a member leaving brings the chat back under the limit, at once
            left = await http.delete(
                f"/service/api/chats/{large['id']}/members/{d.id}", headers=a.headers
            )
            assert left.status_code in (200, 204), left.text
            await asyncio.sleep(1.1)  # typing frames are throttled per user
            await typist.send(json.dumps({"type": "typing", "chat_id": large["id"]}))
            heard = await recv_type(reader, "typing")
            assert heard == {"type": "typing", "chat_id": large["id"], "user_id": a.id}
        finally:
            await typist.close()
            await reader.close()


async def test_flips_within_a_second_reach_a_recipient_as_one_frame(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    await make_direct(client, a, b)
    watcher = await connect(live.ws_base, b)
    try:
        for _ in range(3):  # online, offline, online, offline, online: within one second
            ws = await connect(live.ws_base, a)
            await ws.close()
        last = await connect(live.ws_base, a)
        first = await recv_type(watcher, "presence")
        assert first["user_id"] == a.id and first["status"] == "online"
        await no_frame(watcher, "presence", wait=1.5)  # the state at the end is unchanged
        await last.close()
        offline = await recv_type(watcher, "presence", timeout=3)
        assert offline["status"] == "offline"
    finally:
        await watcher.close()


async def test_presence_failures_never_leak_a_connection_slot(
    client: httpx.AsyncClient, live: Running
) -> None:
    """A presence hook that fails on register and unregister: the socket still works and its
    slot and writer task are released when it closes."""
    hub = live.state.hub
    me = await make_user(client)
    before = hub.connection_count

    async def broken(_user_id: int, _online: bool) -> None:
        raise OSError("presence store down")

    original, hub.on_presence = hub.on_presence, broken
    try:
        ws = await connect(live.ws_base, me)
        await ws.send(json.dumps({"type": "ping"}))
        await recv_type(ws, "pong")
        assert hub.connection_count == before + 1
        await ws.close()
        await eventually(
            lambda: (
                hub.connection_count == before
                and not any(t.get_name() == f"ws-writer-{me.id}" for t in asyncio.all_tasks())
            ),
            what="the socket and its writer task gone",
        )
    finally:
        hub.on_presence = original
