"""WebSocket on SQLite and PostgreSQL: frames in and out, errors, limits, sync, back-pressure."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, connect, make_group, make_user, no_frame, recv_type, send
from tests.integration.conftest import Crowded

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
CHATS = "/service/api/chats"


@asynccontextmanager
async def opened(live: Running, who: Account, **kwargs: Any) -> AsyncIterator[Any]:
    ws = await connect(live.ws_base, who, **kwargs)
    try:
        yield ws
    finally:
        await ws.close()


async def send_json(ws: Any, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def until_synced(ws: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `message` frames received before `synced`, and the `synced` frame."""
    messages = []
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "synced":
                return messages, frame
            if frame["type"] == "message":
                messages.append(frame["message"])


async def closed_with(ws: Any) -> int:
    """Reads until the server closes the connection; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return int(closed.value.rcvd.code)


async def test_hello_comes_first_with_own_profile(live: Running, client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    ws = await websockets.connect(live.ws_base + "/service/ws", additional_headers=me.headers)
    try:
        hello = json.loads(await ws.recv())
    finally:
        await ws.close()
    assert hello["type"] == "hello" and hello["heartbeat_interval"] == 30
    assert hello["user"]["id"] == me.id and hello["user"]["email"] == f"{me.username}@example.com"


async def test_token_in_query_and_bad_tokens_refused_before_upgrade(
    live: Running, client: httpx.AsyncClient
) -> None:
    me = await make_user(client)
    ws = await websockets.connect(f"{live.ws_base}/service/ws?token={me.access_token}")
    try:
        assert json.loads(await ws.recv())["user"]["id"] == me.id
    finally:
        await ws.close()
    for url, headers in (
        (f"{live.ws_base}/service/ws?token=not-a-token", {}),
        (f"{live.ws_base}/service/ws", {"Authorization": "Bearer not-a-token"}),
        (f"{live.ws_base}/ws", {}),
    ):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, additional_headers=headers)
        assert refused.value.response.status_code == 401


async def test_send_reaches_every_connected_member_and_no_one_else(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, peer, stranger = [await make_user(client) for _ in range(3)]
    group = await make_group(client, me, peer)
    async with (
        opened(live, me) as mine,
        opened(live, peer) as theirs,
        opened(live, stranger) as out,
    ):
        await send_json(
            mine, {"type": "send", "chat_id": group["id"], "content": " hi ", "client_id": "k1"}
        )
        ack = (await recv_type(mine, "message"))["message"]
        assert ack["content"] == "hi" and ack["client_id"] == "k1" and ack["seq"] == 1
        assert ack["sender"]["id"] == me.id and ack["chat_id"] == group["id"]
        assert (await recv_type(theirs, "message"))["message"] == ack
        await send_json(
            mine, {"type": "send", "chat_id": group["id"], "content": "hi", "client_id": "k1"}
        )
        assert (await recv_type(mine, "message"))[
            "message"
        ] == ack  # a resend is acknowledged again
        by_rest = await send(client, peer, group["id"], "over http")
        assert (await recv_type(mine, "message"))["message"] == by_rest
        await no_frame(out, "message")
    stored = (await client.get(f"{CHATS}/{group['id']}/messages", headers=me.headers)).json()
    assert [m["content"] for m in stored] == ["hi", "over http"]


async def test_edit_and_delete_push_message_updated(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, peer = await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    message = await send(client, me, group["id"], "draft")
    async with opened(live, me) as mine, opened(live, peer) as theirs:
        await send_json(mine, {"type": "edit", "message_id": message["id"], "content": "final"})
        for ws in (mine, theirs):
            edited = (await recv_type(ws, "message_updated"))["message"]
            assert edited["id"] == message["id"] and edited["content"] == "final"
            assert edited["edited_at"] is not None
        await send_json(theirs, {"type": "edit", "message_id": message["id"], "content": "hijack"})
        refused = await recv_type(theirs, "error")
        assert refused["code"] == "not_author" and refused["ref"] == message["id"]
        await send_json(mine, {"type": "delete", "message_id": message["id"]})
        for ws in (mine, theirs):
            gone = (await recv_type(ws, "message_updated"))["message"]
            assert gone["deleted"] is True and gone["content"] == ""


async def test_typing_reaches_others_but_not_the_typist(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, peer = await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    async with opened(live, me) as mine, opened(live, peer) as theirs:
        await send_json(mine, {"type": "typing", "chat_id": group["id"]})
        typing = await recv_type(theirs, "typing")
        assert typing == {"type": "typing", "chat_id": group["id"], "user_id": me.id}
        await no_frame(mine, "typing")


async def test_ping_and_bad_frames_keep_the_connection(
    live: Running, client: httpx.AsyncClient
) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    async with opened(live, me) as ws:
        await send_json(ws, {"type": "ping"})
        assert await recv_type(ws, "pong") == {"type": "pong"}
        await ws.send("{not json")
        assert (await recv_type(ws, "error"))["code"] == "bad_frame"
        await ws.send("[1, 2]")
        assert (await recv_type(ws, "error"))["code"] == "bad_frame"
        await send_json(ws, {"type": "dance"})
        assert (await recv_type(ws, "error"))["code"] == "unknown_type"
        await send_json(
            ws, {"type": "send", "chat_id": group["id"], "content": "  ", "client_id": "c-9"}
        )
        invalid = await recv_type(ws, "error")
        assert (
            invalid["code"] == "validation_error" and invalid["ref"] == "c-9" and invalid["detail"]
        )
        await send_json(ws, {"type": "send", "content": "no chat", "client_id": "c-10"})
        assert (await recv_type(ws, "error"))["code"] == "validation_error"
        await send_json(ws, {"type": "ping"})
        assert (await recv_type(ws, "pong"))["type"] == "pong"
    history = (await client.get(f"{CHATS}/{group['id']}/messages", headers=me.headers)).json()
    assert history == []


async def test_send_to_a_chat_of_others_is_refused(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, owner = await make_user(client), await make_user(client)
    group = await make_group(client, owner)
    channel = await make_group(client, owner, type="channel", title="Open")
    async with opened(live, me) as ws:
        await send_json(
            ws, {"type": "send", "chat_id": group["id"], "content": "hi", "client_id": "a"}
        )
        hidden = await recv_type(ws, "error")
        assert hidden["code"] == "chat_not_found" and hidden["ref"] == "a"
        await send_json(
            ws, {"type": "send", "chat_id": channel["id"], "content": "hi", "client_id": "b"}
        )
        unjoined = await recv_type(ws, "error")
        assert unjoined["code"] == "not_member" and unjoined["ref"] == "b"
        await send_json(ws, {"type": "typing", "chat_id": group["id"]})
        assert (await recv_type(ws, "error"))["code"] in {"not_member", "chat_not_found"}
    for chat in (group, channel):
        stored = (await client.get(f"{CHATS}/{chat['id']}/messages", headers=owner.headers)).json()
        assert stored == []


async def test_seed_frame_without_type_posts_to_general(
    live: Running, client: httpx.AsyncClient
) -> None:
    me = await make_user(client)
    general = next(
        c for c in (await client.get(CHATS, headers=me.headers)).json() if c["title"] == "general"
    )
    async with opened(live, me) as ws:
        await send_json(ws, {"content": "hi from the seed"})
        message = (await recv_type(ws, "message"))["message"]
    assert message["chat_id"] == general["id"] and message["content"] == "hi from the seed"
    assert message["sender"]["id"] == me.id


async def test_oversized_frame_closes_with_1009(live: Running, client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    async with opened(live, me, compression=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (64 * 1024)}))
        assert await closed_with(ws) == 1009
    async with opened(live, me, compression=None) as ws:
        await ws.send(["x" * (16 * 1024) for _ in range(5)])  # fragmented: the total counts
        assert await closed_with(ws) == 1009
    async with opened(live, me, compression=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (60 * 1024)}))
        assert (await recv_type(ws, "pong"))["type"] == "pong"


async def test_invalid_utf8_text_frame_closes_with_1007(
    live: Running, client: httpx.AsyncClient
) -> None:
    me = await make_user(client)
    async with opened(live, me, compression=None) as ws:
        await ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
        assert await closed_with(ws) == 1007


async def test_sync_after_reconnect_sends_exactly_what_was_missed(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, peer = await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    other = await make_group(client, me, peer, title="Quiet")
    async with opened(live, me) as ws:
        await send(client, peer, group["id"], "seen 1")
        await send(client, peer, group["id"], "seen 2")
        last_seen = (await recv_type(ws, "message"))["message"]["seq"]
        last_seen = (await recv_type(ws, "message"))["message"]["seq"]
    missed = [await send(client, peer, group["id"], f"missed {i}") for i in range(3)]
    async with opened(live, me) as ws:
        await send_json(
            ws, {"type": "sync", "chats": {str(group["id"]): last_seen, str(other["id"]): 0}}
        )
        messages, synced = await until_synced(ws)
    assert last_seen == 2
    assert messages == missed and [m["seq"] for m in messages] == [3, 4, 5]
    assert synced == {"type": "synced"}


async def test_one_sync_hides_a_blocked_senders_messages_in_groups_not_in_direct_chats(
    live: Running, client: httpx.AsyncClient
) -> None:
    """A sync reads all its chats together: in each group the blocked user's messages are
    left out, in the direct chat with that user they are not, and every chat keeps its own
    order."""
    me, blocked, friend = [await make_user(client) for _ in range(3)]
    crowd = await make_group(client, me, blocked, friend)
    pair = await make_group(client, me, friend, title="Pair")
    direct = (
        await client.post(
            "/service/api/chats", json={"type": "direct", "user_id": blocked.id}, headers=me.headers
        )
    ).json()
    hidden = await send(client, blocked, crowd["id"], "from the blocked")
    kept = [
        await send(client, friend, crowd["id"], "crowd 1"),
        await send(client, friend, pair["id"], "pair 1"),
        await send(client, blocked, direct["id"], "direct 1"),
        await send(client, friend, crowd["id"], "crowd 2"),
    ]
    answer = await client.post(
        "/service/api/block", json={"user_id": blocked.id}, headers=me.headers
    )
    assert answer.status_code == 201, answer.text
    async with opened(live, me) as ws:
        asked = {str(chat["id"]): 0 for chat in (crowd, pair, direct)}
        await send_json(ws, {"type": "sync", "chats": asked})
        messages, synced = await until_synced(ws)
    assert hidden["id"] not in [m["id"] for m in messages]
    assert messages == [kept[0], kept[3], kept[1], kept[2]]  # by chat as asked, then by seq
    assert synced == {"type": "synced"}


async def test_sync_past_500_missed_sends_the_newest_and_says_truncated(
    live: Running, crowded: Crowded
) -> None:
    async with opened(live, crowded.member) as ws:
        await send_json(ws, {"type": "sync", "chats": {str(crowded.chat["id"]): 10}})
        messages, synced = await until_synced(ws)
    assert [m["seq"] for m in messages] == list(range(crowded.count - 499, crowded.count + 1))
    assert messages[-1]["content"] == f"m{crowded.count}"
    assert synced == {"type": "synced", "truncated": [crowded.chat["id"]]}


async def test_sync_of_a_chat_not_mine_sends_nothing(
    live: Running, client: httpx.AsyncClient, crowded: Crowded
) -> None:
    me = await make_user(client)
    async with opened(live, me) as ws:
        await send_json(ws, {"type": "sync", "chats": {str(crowded.chat["id"]): 0}})
        messages, synced = await until_synced(ws)
    assert messages == [] and synced == {"type": "synced"}


async def test_sync_of_more_chats_than_one_read_takes_sends_each_in_order(
    live: Running, client: httpx.AsyncClient, crowded: Crowded
) -> None:
    """A sync reads its chats ten at a time on one connection: past ten, across the
    boundary, and with a chat not mine among them, every chat's missed messages come in
    the order asked, then one `synced`."""
    me, peer = await make_user(client), await make_user(client)
    groups = [await make_group(client, me, peer, title=f"g{i}") for i in range(12)]
    sent = {g["id"]: await send(client, peer, g["id"], f"to {g['title']}") for g in groups}
    asked = {str(g["id"]): 0 for g in groups[:5]}
    asked[str(crowded.chat["id"])] = 0  # not mine: skipped, the others still come
    asked.update({str(g["id"]): 0 for g in groups[5:]})
    async with opened(live, me) as ws:
        await send_json(ws, {"type": "sync", "chats": asked})
        messages, synced = await until_synced(ws)
    assert messages == [sent[g["id"]] for g in groups]
    assert synced == {"type": "synced"}


async def test_slow_consumer_is_closed_with_1013(tmp_path: Path) -> None:
    running, server, task = await start_server(test_settings(tmp_path, PARLEY_WS_SEND_QUEUE=4))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            slow, talker = await make_user(http), await make_user(http)
            group = await make_group(http, talker, slow)
            # A tiny receive buffer and a one-frame client queue: the server's socket buffers
            # fill after a few frames, its writer blocks, and its send queue overflows.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(
                sock, ("127.0.0.1", int(running.base.rsplit(":", 1)[1]))
            )
            ws = await connect(running.ws_base, slow, sock=sock, max_queue=1, compression=None)
            big = "😀" * 4000  # 16 KB per frame
            sent = 0
            while sent < 300 and not all(
                c.closing for c in running.state.hub.connections_of(slow.id)
            ):
                await send(http, talker, group["id"], big)
                sent += 1
            assert sent < 300, "the server kept buffering for a client that never reads"
            received = 0
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        received += json.loads(await ws.recv())["type"] == "message"
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert received < sent
    finally:
        await stop_server(server, task)


async def test_open_sockets_follow_membership_changes(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, newcomer = await make_user(client), await make_user(client)
    group = await make_group(client, owner)
    async with opened(live, newcomer) as ws:
        await client.post(
            f"{CHATS}/{group['id']}/members",
            json={"user_ids": [newcomer.id]},
            headers=owner.headers,
        )
        joined = (await recv_type(ws, "chat_updated"))["chat"]
        assert joined["id"] == group["id"] and joined["my_role"] == "member"
        added = (await recv_type(ws, "message"))["message"]  # the notice of its addition
        assert added["kind"] == "notice" and added["notice"]["user_ids"] == [newcomer.id]
        first = await send(client, owner, group["id"], "welcome")
        assert (await recv_type(ws, "message"))["message"] == first
        removed = await client.delete(
            f"{CHATS}/{group['id']}/members/{newcomer.id}", headers=owner.headers
        )
        assert removed.status_code == 204
        assert (await recv_type(ws, "chat_removed"))["chat_id"] == group["id"]
        await send(client, owner, group["id"], "after you left")
        await no_frame(ws, "message")


async def test_role_changes_reach_the_member_with_its_own_role(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner, member = await make_user(client), await make_user(client)
    group = await make_group(client, owner, member)
    url = f"{CHATS}/{group['id']}/members"

    async def my_role_frame(ws: Any) -> dict[str, Any]:
        while True:  # the chat-wide frame leaves my_role out; the member's own one has it
            chat = (await recv_type(ws, "chat_updated"))["chat"]
            if "my_role" in chat:
                return dict(chat)

    async with opened(live, member) as ws_member, opened(live, owner) as ws_owner:
        await client.patch(f"{url}/{member.id}", json={"role": "admin"}, headers=owner.headers)
        promoted = await my_role_frame(ws_member)
        assert promoted["id"] == group["id"] and promoted["my_role"] == "admin"
        await client.patch(f"{url}/{member.id}", json={"role": "owner"}, headers=owner.headers)
        assert (await my_role_frame(ws_member))["my_role"] == "owner"
        assert (await my_role_frame(ws_owner))["my_role"] == "admin"  # handed over
