"""Threads: replies, their root's summary and frames, ?thread=main, the thread endpoint,
following, /threads with unread counts, thread read markers, chat unread counts (both
databases)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import Running
from tests.factories import (
    Account,
    connect,
    make_group,
    make_user,
    no_frame,
    recv_type,
    send,
)

API = "/service/api"


async def reply(
    http: httpx.AsyncClient, who: Account, chat_id: int, root_id: int, content: str, **extra: Any
) -> dict[str, Any]:
    return await send(http, who, chat_id, content, thread_root_id=root_id, **extra)


async def get(http: httpx.AsyncClient, who: Account, path: str, **params: Any) -> Any:
    response = await http.get(f"{API}{path}", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def listed(http: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    chats = await get(http, who, "/chats")
    return dict(next(c for c in chats if c["id"] == chat_id))


async def followed(http: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    return list(await get(http, who, "/threads", **params))


async def test_a_reply_is_in_its_thread_and_the_root_counts_it(client: httpx.AsyncClient) -> None:
    owner, bob, carol = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, bob, carol)
    root = await send(client, owner, group["id"], "release plan?")
    assert root["thread_root_id"] is None and root["thread"] is None
    assert root["also_in_chat"] is False
    first = await reply(client, bob, group["id"], root["id"], "monday")
    assert first["thread_root_id"] == root["id"] and first["also_in_chat"] is False
    assert first["seq"] == root["seq"] + 1  # the chat's next seq
    second = await reply(client, carol, group["id"], root["id"], "tuesday")
    again = await reply(client, bob, group["id"], root["id"], "fine")
    stored = await get(client, owner, f"/messages/{root['id']}")
    thread = stored["thread"]
    assert thread["reply_count"] == 3
    assert thread["participant_ids"] == [bob.id, carol.id]  # most recent first, once each
    assert thread["last_reply_at"] == again["created_at"]
    # without ?thread every message, as before; with thread=main no thread-only replies
    everything = await get(client, owner, f"/chats/{group['id']}/messages")
    assert [m["id"] for m in everything] == [root["id"], first["id"], second["id"], again["id"]]
    assert everything[0]["thread"]["reply_count"] == 3
    main = await get(client, owner, f"/chats/{group['id']}/messages", thread="main")
    assert [m["id"] for m in main] == [root["id"]]
    # ?after= (catch-up) returns the replies by seq
    after = await get(client, owner, f"/chats/{group['id']}/messages", after=root["seq"])
    assert [m["id"] for m in after] == [first["id"], second["id"], again["id"]]


async def test_also_in_chat_and_a_reply_to_a_reply_goes_to_the_root(
    client: httpx.AsyncClient,
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    root = await send(client, owner, group["id"], "root")
    inner = await reply(client, bob, group["id"], root["id"], "only in thread")
    shown = await reply(client, owner, group["id"], inner["id"], "also here", also_in_chat=True)
    assert shown["thread_root_id"] == root["id"] and shown["also_in_chat"] is True
    main = await get(client, bob, f"/chats/{group['id']}/messages", thread="main")
    assert [m["id"] for m in main] == [root["id"], shown["id"]]
    page = await get(client, bob, f"/messages/{root['id']}/thread")
    assert page["root"]["id"] == root["id"] and page["root"]["thread"]["reply_count"] == 2
    assert [m["id"] for m in page["replies"]] == [inner["id"], shown["id"]]


async def test_bad_roots_are_refused(client: httpx.AsyncClient) -> None:
    owner, bob, stranger = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, bob)
    other = await make_group(client, owner, bob, title="Other")
    hidden = await make_group(client, stranger, title="Hidden")
    in_other = await send(client, owner, other["id"], "elsewhere")
    secret = await send(client, stranger, hidden["id"], "secret")
    url = f"{API}/chats/{group['id']}/messages"
    cases = [(in_other["id"], 422), (secret["id"], 404), (10**12, 422)]
    for root_id, status in cases:
        body = {"content": "x", "thread_root_id": root_id}
        response = await client.post(url, json=body, headers=bob.headers)
        assert response.status_code == status, (root_id, response.text)
        problem = response.json()
        assert problem["code"] == ("validation_error" if status == 422 else "message_not_found")
        assert problem["detail"]
    assert await get(client, bob, f"/chats/{group['id']}/messages") == []  # nothing stored
    bogus = await client.get(url, params={"thread": "all"}, headers=bob.headers)
    assert bogus.status_code == 422 and bogus.json()["code"] == "validation_error"


async def test_a_bad_root_over_the_socket_is_an_error_frame(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    ws = await connect(live.ws_base, bob)
    try:
        frame = {"type": "send", "chat_id": group["id"], "content": "x", "client_id": "bad-1"}
        await ws.send(json.dumps({**frame, "thread_root_id": 10**12}))
        error = await recv_type(ws, "error")
        assert error["code"] == "validation_error" and error["ref"] == "bad-1"
    finally:
        await ws.close()


async def test_websocket_send_in_thread_and_frames_to_members(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    root = await send(client, owner, group["id"], "root")
    author, listener = await connect(live.ws_base, bob), await connect(live.ws_base, owner)
    try:
        frame = {
            "type": "send",
            "chat_id": group["id"],
            "content": "via socket",
            "client_id": "t-1",
            "thread_root_id": root["id"],
        }
        await author.send(json.dumps(frame))
        for ws in (author, listener):
            new = (await recv_type(ws, "message"))["message"]
            assert new["thread_root_id"] == root["id"] and new["content"] == "via socket"
            updated = (await recv_type(ws, "message_updated"))["message"]
            assert updated["id"] == root["id"]
            assert updated["thread"]["reply_count"] == 1
            assert updated["thread"]["participant_ids"] == [bob.id]
        # a resend of the same client_id is the stored reply again, nothing more
        await author.send(json.dumps(frame))
        again = (await recv_type(author, "message"))["message"]
        assert again["id"] == new["id"] and again["thread_root_id"] == root["id"]
        await no_frame(listener, "message_updated", wait=0.5)
    finally:
        await author.close()
        await listener.close()
    stored = await get(client, owner, f"/messages/{root['id']}")
    assert stored["thread"]["reply_count"] == 1


async def test_thread_endpoint_pages_ascending(client: httpx.AsyncClient) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    root = await send(client, owner, group["id"], "root")
    await send(client, owner, group["id"], "noise in the chat")
    replies = [await reply(client, bob, group["id"], root["id"], f"r{n}") for n in range(5)]
    seqs = [r["seq"] for r in replies]
    path = f"/messages/{root['id']}/thread"
    newest = await get(client, owner, path, limit=2)
    assert [m["content"] for m in newest["replies"]] == ["r3", "r4"]
    older = await get(client, owner, path, limit=2, before=seqs[3])
    assert [m["content"] for m in older["replies"]] == ["r1", "r2"]
    later = await get(client, owner, path, limit=3, after=seqs[0])
    assert [m["content"] for m in later["replies"]] == ["r1", "r2", "r3"]
    # a reply's id opens its root's thread
    via_reply = await get(client, owner, f"/messages/{replies[0]['id']}/thread", limit=1)
    assert via_reply["root"]["id"] == root["id"]
    outsider = await make_user(client)
    hidden = await client.get(f"{API}{path}", headers=outsider.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "message_not_found"


async def test_who_follows_and_threads_ordering(client: httpx.AsyncClient) -> None:
    owner, bob, carol, dave = [await make_user(client) for _ in range(4)]
    group = await make_group(client, owner, bob, carol, dave)
    gid = group["id"]
    first = await send(client, owner, gid, "first root")
    second = await send(client, carol, gid, "second root")
    quiet = await send(client, owner, gid, "no replies")
    assert await followed(client, owner) == []  # a root without replies: not followed yet
    await reply(client, bob, gid, first["id"], f"hey @{dave.username}")
    await reply(client, bob, gid, second["id"], "b")
    # owner wrote `first` (it got a reply); bob replied to both; dave was mentioned
    assert [t["root"]["id"] for t in await followed(client, owner)] == [first["id"]]
    assert [t["root"]["id"] for t in await followed(client, bob)] == [second["id"], first["id"]]
    assert [t["root"]["id"] for t in await followed(client, dave)] == [first["id"]]
    assert [t["root"]["id"] for t in await followed(client, carol)] == [second["id"]]
    # a new reply moves its thread first
    await reply(client, carol, gid, first["id"], "c")
    mine = await followed(client, bob)
    assert [t["root"]["id"] for t in mine] == [first["id"], second["id"]]
    assert mine[0]["last_reply_at"] == mine[0]["root"]["thread"]["last_reply_at"]
    assert [t["unread_count"] for t in mine] == [1, 0]  # bob's own replies are read
    page = await followed(client, bob, limit=1)
    assert [t["root"]["id"] for t in page] == [first["id"]]
    rest = await followed(client, bob, before=page[0]["last_reply_at"])
    assert [t["root"]["id"] for t in rest] == [second["id"]]
    # explicit follow and unfollow
    url = f"{API}/messages/{first['id']}/follow"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert await followed(client, owner) == []
    await reply(client, bob, gid, first["id"], "the author unfollowed: stays so")
    assert await followed(client, owner) == []
    assert (await client.put(url, headers=owner.headers)).status_code == 204
    assert [t["root"]["id"] for t in await followed(client, owner)] == [first["id"]]
    quiet_url = f"{API}/messages/{quiet['id']}/follow"
    assert (await client.put(quiet_url, headers=bob.headers)).status_code == 204
    assert quiet["id"] not in [t["root"]["id"] for t in await followed(client, bob)]
    outsider = await make_user(client)
    refused = await client.put(url, headers=outsider.headers)
    assert refused.status_code == 404 and refused.json()["code"] == "message_not_found"


async def test_thread_read_marker_and_frame_to_my_sockets(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    root = await send(client, owner, group["id"], "root")
    replies = [await reply(client, bob, group["id"], root["id"], f"r{n}") for n in range(3)]
    [thread] = await followed(client, owner)
    assert thread["unread_count"] == 3
    mine, theirs = await connect(live.ws_base, owner), await connect(live.ws_base, bob)
    try:
        url = f"{API}/messages/{root['id']}/thread/read"
        response = await client.post(url, json={"seq": replies[1]["seq"]}, headers=owner.headers)
        assert response.status_code == 204
        frame = await recv_type(mine, "thread_read")
        assert frame == {"type": "thread_read", "root_id": root["id"], "seq": replies[1]["seq"]}
        await no_frame(theirs, "thread_read", wait=0.3)
    finally:
        await mine.close()
        await theirs.close()
    [thread] = await followed(client, owner)
    assert thread["unread_count"] == 1
    # never back, never past the thread's last reply
    back = await client.post(url, json={"seq": 0}, headers=owner.headers)
    assert back.status_code == 204
    assert (await followed(client, owner))[0]["unread_count"] == 1
    await client.post(url, json={"seq": 10**6}, headers=owner.headers)
    assert (await followed(client, owner))[0]["unread_count"] == 0
    late = await reply(client, bob, group["id"], root["id"], "late")
    assert (await followed(client, owner))[0]["unread_count"] == 1
    assert late["seq"] > replies[-1]["seq"]


async def test_chat_unread_counts_the_main_timeline_and_mentions_in_threads(
    client: httpx.AsyncClient,
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    gid = group["id"]
    root = await send(client, bob, gid, "root")
    await reply(client, bob, gid, root["id"], "thread only")
    await reply(client, bob, gid, root["id"], "shown too", also_in_chat=True)
    await reply(client, bob, gid, root["id"], f"thread only, for @{owner.username}")
    chat = await listed(client, owner, gid)
    assert chat["unread_count"] == 2  # the root and the reply also in the chat
    assert chat["mention_count"] == 1  # the mention in the thread counts
    single = await get(client, owner, f"/chats/{gid}")
    assert single["unread_count"] == 2 and single["mention_count"] == 1
    [thread] = await followed(client, owner)  # owner was mentioned: follows it
    assert thread["unread_count"] == 3
    assert (await listed(client, bob, gid))["unread_count"] == 0  # the sender read its own


async def test_search_is_thread(client: httpx.AsyncClient) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    root = await send(client, owner, group["id"], "kiwi root")
    await send(client, owner, group["id"], "kiwi alone")
    answer = await reply(client, bob, group["id"], root["id"], "kiwi answer")
    found = await get(client, owner, "/search", q="kiwi is:thread")
    assert sorted(m["id"] for m in found) == sorted([root["id"], answer["id"]])


async def test_five_participants_at_most_and_history_pages_follow_the_root(
    client: httpx.AsyncClient,
) -> None:
    owner = await make_user(client)
    others = [await make_user(client) for _ in range(6)]
    group = await make_group(client, owner, *others)
    gid = group["id"]
    root = await send(client, owner, gid, "root")
    url = f"/chats/{gid}/messages"
    # pages served once are remembered: a reply must make them fresh (the root changed)
    assert (await get(client, owner, url))[0]["thread"] is None
    assert (await get(client, owner, url, thread="main"))[0]["thread"] is None
    for who in others:
        await reply(client, who, gid, root["id"], f"from {who.username}")
    await reply(client, others[0], gid, root["id"], "again")
    [shown] = await get(client, owner, url, thread="main")
    assert shown["thread"]["reply_count"] == 7
    expected = [others[0].id, others[5].id, others[4].id, others[3].id, others[2].id]
    assert shown["thread"]["participant_ids"] == expected
    assert (await get(client, owner, url))[0]["thread"] == shown["thread"]


async def test_sync_replays_replies_with_their_thread(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, bob = await make_user(client), await make_user(client)
    group = await make_group(client, owner, bob)
    root = await send(client, owner, group["id"], "root")
    answer = await reply(client, bob, group["id"], root["id"], "missed")
    ws = await connect(live.ws_base, owner)
    try:
        await ws.send(json.dumps({"type": "sync", "chats": {str(group["id"]): root["seq"]}}))
        replayed = (await recv_type(ws, "message"))["message"]
        assert replayed["id"] == answer["id"] and replayed["thread_root_id"] == root["id"]
        await recv_type(ws, "synced")
    finally:
        await ws.close()
