"""Reactions and read markers over HTTP and WebSocket, with the frames they push."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import Running, no_cookies
from tests.factories import Account, connect, make_group, make_user, no_frame, recv_type, send


@pytest.fixture(scope="module")
async def people(live: Running) -> list[Account]:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        return [await make_user(http) for _ in range(3)]


async def react(
    http: httpx.AsyncClient, who: Account, message_id: int, emoji: str
) -> httpx.Response:
    return await http.post(
        f"/service/api/messages/{message_id}/reactions", json={"emoji": emoji}, headers=who.headers
    )


async def my_chat(http: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    chats = (await http.get("/service/api/chats", headers=who.headers)).json()
    return next(c for c in chats if c["id"] == chat_id)


async def test_reactions_aggregate_one_per_user_per_emoji(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, outsider = people
    chat = await make_group(client, a, b)
    message = await send(client, a, chat["id"], "react to me")
    ws = await connect(live.ws_base, a)
    try:
        first = await react(client, b, message["id"], "👍")
        assert first.status_code == 200
        assert first.json()["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [b.id]}]
        pushed = await recv_type(ws, "message_updated")
        assert pushed["message"]["reactions"] == first.json()["reactions"]
        again = await react(client, b, message["id"], "👍")
        assert again.json()["reactions"] == first.json()["reactions"]
        await no_frame(ws, "message_updated", wait=0.2)  # nothing changed, nothing pushed
        await react(client, a, message["id"], "👍")
        both = (await react(client, b, message["id"], "❤️")).json()["reactions"]
        assert both == [
            {"emoji": "👍", "count": 2, "user_ids": [b.id, a.id]},
            {"emoji": "❤️", "count": 1, "user_ids": [b.id]},
        ]
        removed = await client.delete(
            f"/service/api/messages/{message['id']}/reactions/👍", headers=b.headers
        )
        assert removed.status_code == 204
        got = (await client.get(f"/service/api/messages/{message['id']}", headers=b.headers)).json()
        assert got["reactions"][0] == {"emoji": "👍", "count": 1, "user_ids": [a.id]}
        frames = [await recv_type(ws, "message_updated") for _ in range(3)]
        assert frames[-1]["message"]["reactions"] == got["reactions"]
    finally:
        await ws.close()
    hidden = await react(client, outsider, message["id"], "👍")
    assert hidden.status_code == 404


@pytest.mark.parametrize(
    "emoji", ["abc", "<b>", "", " ", "👍👍👍👍👍👍👍👍👍👍👍", "a👍", "\u200d"]
)
async def test_invalid_emoji_is_refused(
    client: httpx.AsyncClient, people: list[Account], emoji: str
) -> None:
    a = people[0]
    chat = await make_group(client, a)
    message = await send(client, a, chat["id"], "x")
    refused = await react(client, a, message["id"], emoji)
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"


async def test_valid_emoji_sequences_and_ws_react(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, _ = people
    chat = await make_group(client, a, b)
    message = await send(client, a, chat["id"], "sequences")
    for emoji in ("👍🏽", "🇺🇦", "1️⃣", "👩‍💻"):
        assert (await react(client, a, message["id"], emoji)).status_code == 200, emoji
    bad_delete = await client.delete(
        f"/service/api/messages/{message['id']}/reactions/abc", headers=a.headers
    )
    assert bad_delete.status_code == 422
    watcher = await connect(live.ws_base, b)
    actor = await connect(live.ws_base, a)
    try:
        await actor.send(json.dumps({"type": "react", "message_id": message["id"], "emoji": "🎉"}))
        added = await recv_type(watcher, "message_updated")
        assert {"emoji": "🎉", "count": 1, "user_ids": [a.id]} in added["message"]["reactions"]
        await actor.send(
            json.dumps({"type": "unreact", "message_id": message["id"], "emoji": "🎉"})
        )
        dropped = await recv_type(watcher, "message_updated")
        assert "🎉" not in [r["emoji"] for r in dropped["message"]["reactions"]]
        await actor.send(json.dumps({"type": "react", "message_id": message["id"], "emoji": "<b>"}))
        error = await recv_type(actor, "error")
        assert error["code"] == "validation_error" and error["ref"] == message["id"]
    finally:
        await watcher.close()
        await actor.close()


EMOJI = [chr(0x1F600 + i) for i in range(40)]  # 😀 onwards: forty distinct single emoji


async def test_a_message_holds_at_most_max_reactions_distinct_emoji(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, c = people
    limit = live.settings.max_reactions
    assert limit == 20  # the default
    chat = await make_group(client, a, b, c)
    message = await send(client, a, chat["id"], "react to me")
    for emoji in EMOJI[:limit]:
        assert (await react(client, b, message["id"], emoji)).status_code == 200, emoji
    watcher = await connect(live.ws_base, c)
    try:
        over = await react(client, b, message["id"], EMOJI[limit])
        assert over.status_code == 409
        assert over.json() == {
            "detail": f"A message can have at most {limit} different reactions",
            "code": "too_many_reactions",
        }
        frame = {"type": "react", "message_id": message["id"], "emoji": EMOJI[limit + 1]}
        await watcher.send(json.dumps(frame))
        error = await recv_type(watcher, "error")
        assert error["code"] == "too_many_reactions" and error["ref"] == message["id"]
        # An emoji already there can still be added, by anyone, over HTTP and the socket.
        added = await react(client, a, message["id"], EMOJI[0])
        assert added.status_code == 200, added.text
        assert added.json()["reactions"][0] == {
            "emoji": EMOJI[0],
            "count": 2,
            "user_ids": [b.id, a.id],
        }
        await watcher.send(json.dumps(frame | {"emoji": EMOJI[1]}))
        await recv_type(watcher, "message_updated")  # a's
        mine = (await recv_type(watcher, "message_updated"))["message"]["reactions"]
        assert mine[1] == {"emoji": EMOJI[1], "count": 2, "user_ids": [b.id, c.id]}
    finally:
        await watcher.close()
    stored = await client.get(f"/service/api/messages/{message['id']}", headers=c.headers)
    assert [r["emoji"] for r in stored.json()["reactions"]] == EMOJI[:limit]
    # Room made by removing one: a new emoji fits again.
    gone = await client.delete(
        f"/service/api/messages/{message['id']}/reactions/{EMOJI[5]}", headers=b.headers
    )
    assert gone.status_code == 204
    assert (await react(client, c, message["id"], EMOJI[limit])).status_code == 200


async def test_read_markers_drive_unread_count_and_reach_members(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, outsider = people
    chat = await make_group(client, a, b)
    for text in ("one", "two", "three"):
        await send(client, a, chat["id"], text)
    mine = await my_chat(client, a, chat["id"])
    assert mine["unread_count"] == 0 and mine["last_message"]["content"] == "three"
    theirs = await my_chat(client, b, chat["id"])
    assert theirs["unread_count"] == 3 and theirs["last_message"]["content"] == "three"
    assert theirs["last_seq"] == 3

    ws = await connect(live.ws_base, a)
    reader = await connect(live.ws_base, b)
    try:
        marked = await client.post(
            f"/service/api/chats/{chat['id']}/read", json={"seq": 2}, headers=b.headers
        )
        assert marked.status_code == 204
        assert (await recv_type(ws, "read")) == {
            "type": "read",
            "chat_id": chat["id"],
            "user_id": b.id,
            "seq": 2,
        }
        assert (await my_chat(client, b, chat["id"]))["unread_count"] == 1
        await reader.send(json.dumps({"type": "read", "chat_id": chat["id"], "seq": 99}))
        assert (await recv_type(ws, "read"))["seq"] == 3  # clamped to the last message
        assert (await my_chat(client, b, chat["id"]))["unread_count"] == 0
        await client.post(
            f"/service/api/chats/{chat['id']}/read", json={"seq": 1}, headers=b.headers
        )
        await no_frame(ws, "read", wait=0.2)  # never backwards, nothing to tell
        assert (await my_chat(client, b, chat["id"]))["unread_count"] == 0
        await send(client, a, chat["id"], "four")
        after = await my_chat(client, b, chat["id"])
        assert after["unread_count"] == 1 and after["last_message"]["content"] == "four"
    finally:
        await ws.close()
        await reader.close()
    hidden = await client.post(
        f"/service/api/chats/{chat['id']}/read", json={"seq": 1}, headers=outsider.headers
    )
    assert hidden.status_code == 404
    negative = await client.post(
        f"/service/api/chats/{chat['id']}/read", json={"seq": -1}, headers=b.headers
    )
    assert negative.status_code == 422
