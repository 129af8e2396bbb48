"""Mentions: resolution when stored and edited, mention_count, GET /mentions (both databases)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import event

from tests.conftest import Running
from tests.factories import (
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

API = "/service/api"


async def history(http: httpx.AsyncClient, who: Account, chat_id: int) -> list[dict[str, Any]]:
    response = await http.get(f"{API}/chats/{chat_id}/messages", headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def chat_of(http: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    response = await http.get(f"{API}/chats/{chat_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def listed(http: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    """The chat as GET /chats lists it for `who`."""
    response = await http.get(f"{API}/chats", headers=who.headers)
    assert response.status_code == 200, response.text
    return next(c for c in response.json() if c["id"] == chat_id)


async def mentions(http: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    response = await http.get(f"{API}/mentions", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def promote(http: httpx.AsyncClient, owner: Account, chat_id: int, who: Account) -> None:
    response = await http.patch(
        f"{API}/chats/{chat_id}/members/{who.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text


async def test_members_named_ignoring_case_and_nobody_else(client: httpx.AsyncClient) -> None:
    owner, bob, carol = [await make_user(client, unique(p)) for p in ("own", "bob", "car")]
    outsider = await make_user(client, unique("out"))
    group = await make_group(client, owner, bob, carol)
    text = (
        f"hi @{bob.username.upper()}, @{carol.username}. and @{outsider.username} "
        f"and @nobody{unique()} and @{owner.username} (me) and mail{bob.username}@example.com"
    )
    sent = await send(client, owner, group["id"], text)
    assert sent["mentions"] == sorted([bob.id, carol.id])  # not the outsider, not the sender
    assert (await history(client, bob, group["id"]))[-1]["mentions"] == sent["mentions"]
    fetched = await client.get(f"{API}/messages/{sent['id']}", headers=bob.headers)
    assert fetched.json()["mentions"] == sent["mentions"]
    in_code = await send(
        client, owner, group["id"], f"`@{bob.username}`\n```\n@{carol.username}\n```"
    )
    assert in_code["mentions"] == []
    email_only = await send(client, owner, group["id"], f"write to x@{bob.username}")
    assert email_only["mentions"] == []
    plain = await send(client, owner, group["id"], "no mention here")
    assert plain["mentions"] == []


async def test_everyone_only_from_owner_or_admin_in_groups(client: httpx.AsyncClient) -> None:
    owner, admin, member = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, admin, member)
    await promote(client, owner, group["id"], admin)
    assert (await send(client, owner, group["id"], "@all standup"))["mentions"] == sorted(
        [admin.id, member.id]
    )
    assert (await send(client, admin, group["id"], "@ALL look"))["mentions"] == sorted(
        [owner.id, member.id]
    )
    assert (await send(client, member, group["id"], "@all hey"))["mentions"] == []
    channel = await make_group(client, owner, member, type="channel", title="News")
    assert (await send(client, owner, channel["id"], "@all: news"))["mentions"] == [member.id]
    direct = await make_direct(client, owner, member)
    assert (await send(client, owner, direct["id"], "@all hello"))["mentions"] == []
    named = await send(client, owner, direct["id"], f"@{member.username} hello")
    assert named["mentions"] == [member.id]


async def test_the_member_who_inherits_ownership_mentions_everyone_at_once(
    live: Running, client: httpx.AsyncClient
) -> None:
    """The heir's role reaches the send path's cache with the hand-over (its `@all` was
    refused a moment before, from the same cache), and its own sockets see `my_role`."""
    owner, heir, later = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, heir)
    added = await client.post(
        f"{API}/chats/{group['id']}/members", json={"user_ids": [later.id]}, headers=owner.headers
    )
    assert added.status_code == 200, added.text  # joined after the heir: not the heir
    assert (await send(client, heir, group["id"], "@all before"))["mentions"] == []
    ws = await connect(live.ws_base, heir)
    try:
        left = await client.delete(
            f"{API}/chats/{group['id']}/members/{owner.id}", headers=owner.headers
        )
        assert left.status_code == 204
        assert (await send(client, heir, group["id"], "@all after"))["mentions"] == [later.id]
        async with asyncio.timeout(5):
            while True:
                chat = (await recv_type(ws, "chat_updated"))["chat"]
                if "my_role" in chat:
                    break
        assert chat["id"] == group["id"] and chat["my_role"] == "owner"
    finally:
        await ws.close()


async def test_mentions_reach_members_in_the_message_frame(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    ws = await connect(live.ws_base, bob)
    try:
        await send(client, owner, group["id"], f"ping @{bob.username}")
        frame = (await recv_type(ws, "message"))["message"]
        assert frame["content"] == f"ping @{bob.username}" and frame["mentions"] == [bob.id]
    finally:
        await ws.close()


async def test_edits_update_mentions_in_frames_and_history(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob, carol = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, bob, carol)
    message = await send(client, owner, group["id"], f"hi @{bob.username}")
    assert message["mentions"] == [bob.id]
    author, ws = await connect(live.ws_base, owner), await connect(live.ws_base, carol)
    try:
        content = f"hi @{carol.username}"
        edit = {"type": "edit", "message_id": message["id"], "content": content}
        await author.send(json.dumps(edit))
        edited = (await recv_type(ws, "message_updated"))["message"]
        assert edited["content"] == content and edited["mentions"] == [carol.id]
        assert (await history(client, bob, group["id"]))[-1]["mentions"] == [carol.id]
        assert (await chat_of(client, bob, group["id"]))["mention_count"] == 0
        assert (await chat_of(client, carol, group["id"]))["mention_count"] == 1
        response = await client.patch(
            f"{API}/messages/{message['id']}", json={"content": "hi all"}, headers=owner.headers
        )
        assert response.json()["mentions"] == []
        assert (await recv_type(ws, "message_updated"))["message"]["mentions"] == []
        assert await mentions(client, carol) == []
    finally:
        await ws.close()
        await author.close()


async def test_deleted_message_mentions_nobody(client: httpx.AsyncClient) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    message = await send(client, owner, group["id"], f"@{bob.username} secret")
    assert (await chat_of(client, bob, group["id"]))["mention_count"] == 1
    await client.delete(f"{API}/messages/{message['id']}", headers=owner.headers)
    assert (await history(client, bob, group["id"]))[-1]["mentions"] == []
    assert (await chat_of(client, bob, group["id"]))["mention_count"] == 0
    assert await mentions(client, bob) == []


async def test_mention_count_follows_the_read_marker(client: httpx.AsyncClient) -> None:
    owner, bob, carol = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, bob, carol)
    first = await send(client, owner, group["id"], f"@{bob.username} one")
    await send(client, owner, group["id"], "no mention")
    await send(client, owner, group["id"], f"@{bob.username} two")
    mine = await listed(client, bob, group["id"])
    assert (mine["mention_count"], mine["unread_count"]) == (2, 3)
    assert (await chat_of(client, bob, group["id"]))["mention_count"] == 2
    assert (await listed(client, carol, group["id"]))["mention_count"] == 0
    assert (await listed(client, owner, group["id"]))["mention_count"] == 0
    read = f"{API}/chats/{group['id']}/read"
    await client.post(read, json={"seq": first["seq"]}, headers=bob.headers)
    assert (await listed(client, bob, group["id"]))["mention_count"] == 1
    await client.post(read, json={"seq": first["seq"] + 2}, headers=bob.headers)
    assert (await listed(client, bob, group["id"]))["mention_count"] == 0
    await send(client, carol, group["id"], f"again @{bob.username}")
    assert (await listed(client, bob, group["id"]))["mention_count"] == 1


async def test_public_channel_seen_from_outside_has_no_mentions(
    client: httpx.AsyncClient,
) -> None:
    owner, reader = await make_user(client), await make_user(client)
    channel = await make_group(client, owner, type="channel", title="Open")
    seen = await chat_of(client, reader, channel["id"])
    assert seen["mention_count"] == 0 and seen["muted_until"] is None


async def test_my_mentions_newest_first_paged(client: httpx.AsyncClient) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    direct = await make_direct(client, owner, bob)
    sent = [
        await send(client, owner, group["id"], f"@{bob.username} g1"),
        await send(client, owner, direct["id"], f"@{bob.username} d1"),
        await send(client, owner, group["id"], "nothing"),
        await send(client, owner, group["id"], f"@{bob.username} g2"),
    ]
    wanted = [m["id"] for m in (sent[3], sent[1], sent[0])]
    assert [m["id"] for m in await mentions(client, bob)] == wanted
    page = await mentions(client, bob, limit=2)
    assert [m["id"] for m in page] == wanted[:2] and page[0]["mentions"] == [bob.id]
    rest = await mentions(client, bob, limit=2, before=page[-1]["id"])
    assert [m["id"] for m in rest] == wanted[2:]
    assert await mentions(client, bob, before=wanted[-1]) == []
    assert await mentions(client, owner) == []
    big = await mentions(client, bob, limit=10_000)  # clamped, not refused
    assert len(big) == 3
    for bad in ({"limit": 0}, {"before": 0}, {"before": "x"}):
        response = await client.get(f"{API}/mentions", params=bad, headers=bob.headers)
        assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_my_mentions_only_from_chats_i_am_in_and_not_from_blocked(
    client: httpx.AsyncClient,
) -> None:
    owner, bob, rude = [await make_user(client) for _ in range(3)]
    left = await make_group(client, owner, bob, title="Left")
    stay = await make_group(client, owner, bob, rude, title="Stay")
    await send(client, owner, left["id"], f"@{bob.username} in left")
    kept = await send(client, owner, stay["id"], f"@{bob.username} in stay")
    await send(client, rude, stay["id"], f"@{bob.username} rude")
    assert (await listed(client, bob, stay["id"]))["mention_count"] == 2
    response = await client.delete(
        f"{API}/chats/{left['id']}/members/{bob.id}", headers=bob.headers
    )
    assert response.status_code == 204
    response = await client.post(f"{API}/block", json={"user_id": rude.id}, headers=bob.headers)
    assert response.status_code == 201
    assert [m["id"] for m in await mentions(client, bob)] == [kept["id"]]
    assert (await listed(client, bob, stay["id"]))["mention_count"] == 1


async def test_mentions_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/mentions")
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


async def test_a_chat_updated_frame_for_the_whole_chat_has_no_per_viewer_fields(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    ws = await connect(live.ws_base, bob)
    try:
        response = await client.patch(
            f"{API}/chats/{group['id']}", json={"title": "Renamed"}, headers=owner.headers
        )
        assert response.status_code == 200
        chat = (await recv_type(ws, "chat_updated"))["chat"]
        assert chat["title"] == "Renamed"
        assert "mention_count" not in chat and "muted_until" not in chat
        await no_frame(ws, "chat_updated", wait=0.2)
    finally:
        await ws.close()


async def test_chat_list_counts_mentions_in_one_query(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    for n in range(6):
        group = await make_group(client, owner, bob, title=f"G{n}")
        await send(client, owner, group["id"], f"@{bob.username} {n}")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "message_mentions" in statement:
            statements.append(statement)

    # reads may run on the read-only engine (SQLite has a pool of its own for them)
    engines = {live.state.engine.sync_engine, live.state.read_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        chats = (await client.get(f"{API}/chats", headers=bob.headers)).json()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    assert sum(c["mention_count"] for c in chats) == 6
    # Six chats, two statements: the last messages' mentions (batched) and one grouped count.
    assert len(statements) == 2 and "GROUP BY" in statements[1]
