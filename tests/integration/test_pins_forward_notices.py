"""Pins, forwarding, mark as unread and notices (API.md, "Conversations"), on both databases."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Running, no_cookies
from tests.factories import (
    Account,
    connect,
    make_direct,
    make_group,
    make_user,
    no_frame,
    recv_type,
    send,
)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (0, 128, 255)).save(out, "PNG")
    return out.getvalue()


PNG = png()


@pytest.fixture(scope="module")
async def people(live: Running) -> list[Account]:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        return [await make_user(http) for _ in range(4)]


async def history(http: httpx.AsyncClient, who: Account, chat_id: int) -> list[dict[str, Any]]:
    response = await http.get(f"/service/api/chats/{chat_id}/messages", headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def my_chat(http: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    response = await http.get(f"/service/api/chats/{chat_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def pin(http: httpx.AsyncClient, who: Account, chat_id: int, message_id: int) -> Any:
    return await http.post(
        f"/service/api/chats/{chat_id}/pins", json={"message_id": message_id}, headers=who.headers
    )


async def next_frames(ws: Any, kinds: set[str], count: int) -> list[dict[str, Any]]:
    """The next `count` frames of those kinds, in the order they came."""
    got = []
    while len(got) < count:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["type"] in kinds:
            got.append(frame)
    return got


def notices(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["notice"] | {"seq": m["seq"]} for m in messages if m["kind"] == "notice"]


# --- pins ------------------------------------------------------------------------------


async def test_pin_unpin_list_and_frames(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, *_ = people
    chat = await make_group(client, a, b)
    first = await send(client, a, chat["id"], "first")
    second = await send(client, b, chat["id"], "second")
    assert first["kind"] == "message" and first["pinned_at"] is None
    ws = await connect(live.ws_base, a)
    try:
        pinned = await pin(client, b, chat["id"], first["id"])
        assert pinned.status_code == 200, pinned.text
        body = pinned.json()
        assert body["id"] == first["id"] and body["pinned_by"] == b.id and body["pinned_at"]
        got = await next_frames(ws, {"message", "message_updated"}, 2)
        notice, updated = sorted(got, key=lambda f: f["type"] != "message")
        assert updated["message"]["id"] == first["id"]
        assert updated["message"]["pinned_by"] == b.id
        assert notice["message"]["kind"] == "notice"
        assert notice["message"]["notice"]["action"] == "pinned"
        assert notice["message"]["reply_to"] == first["id"]
        assert (await pin(client, a, chat["id"], second["id"])).status_code == 200
        await next_frames(ws, {"message", "message_updated"}, 2)
        listed = (
            await client.get(f"/service/api/chats/{chat['id']}/pins", headers=a.headers)
        ).json()
        assert [m["id"] for m in listed] == [second["id"], first["id"]]  # latest pin first
        gone = await client.delete(
            f"/service/api/chats/{chat['id']}/pins/{second['id']}", headers=b.headers
        )
        assert gone.status_code == 204
        got = await next_frames(ws, {"message", "message_updated"}, 2)
        [frame] = [f for f in got if f["type"] == "message_updated"]
        assert frame["message"]["id"] == second["id"] and frame["message"]["pinned_at"] is None
    finally:
        await ws.close()
    listed = (await client.get(f"/service/api/chats/{chat['id']}/pins", headers=b.headers)).json()
    assert [m["id"] for m in listed] == [first["id"]]
    actions = [n["action"] for n in notices(await history(client, a, chat["id"]))]
    assert actions == ["pinned", "pinned", "unpinned"]
    found = await client.get(
        "/service/api/search", params={"q": f"is:pinned in:{chat['id']}"}, headers=a.headers
    )
    ids = [m["id"] for m in found.json() if m["chat_id"] == chat["id"]]
    assert ids == [first["id"]]


async def test_pin_permissions(client: httpx.AsyncClient, people: list[Account]) -> None:
    a, b, c, outsider = people
    channel = await make_group(client, a, b, type="channel", title="News")
    post = await send(client, a, channel["id"], "announcement")
    refused = await pin(client, b, channel["id"], post["id"])
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    hidden = await pin(client, outsider, channel["id"], post["id"])
    assert hidden.status_code == 403 and hidden.json()["code"] == "not_member"
    assert (await pin(client, a, channel["id"], post["id"])).status_code == 200
    unpin = await client.delete(
        f"/service/api/chats/{channel['id']}/pins/{post['id']}", headers=b.headers
    )
    assert unpin.status_code == 403
    group = await make_group(client, a, c)
    secret = await send(client, a, group["id"], "secret")
    assert (await pin(client, outsider, group["id"], secret["id"])).status_code == 404
    assert (await pin(client, c, group["id"], secret["id"])).status_code == 200
    elsewhere = await pin(client, c, group["id"], post["id"])  # a message of another chat
    assert elsewhere.status_code == 404
    direct = await make_direct(client, a, c)
    said = await send(client, c, direct["id"], "hi")
    assert (await pin(client, a, direct["id"], said["id"])).status_code == 200
    # direct chats have no notices
    assert [m["kind"] for m in await history(client, a, direct["id"])] == ["message"]


async def test_at_most_fifty_pins(client: httpx.AsyncClient, people: list[Account]) -> None:
    a, b, *_ = people
    chat = await make_direct(client, a, b)
    sent = [await send(client, a, chat["id"], f"m{n}") for n in range(51)]
    for message in sent[:50]:
        assert (await pin(client, a, chat["id"], message["id"])).status_code == 200
    over = await pin(client, b, chat["id"], sent[50]["id"])
    assert over.status_code == 409 and over.json()["code"] == "too_many_pins"
    assert over.json()["detail"]
    again = await pin(client, b, chat["id"], sent[0]["id"])  # already pinned: harmless
    assert again.status_code == 200
    listed = (await client.get(f"/service/api/chats/{chat['id']}/pins", headers=b.headers)).json()
    assert len(listed) == 50 and listed[0]["id"] == sent[49]["id"]


# --- forwarding --------------------------------------------------------------------------


async def forward(
    http: httpx.AsyncClient, who: Account, message_id: int, chat_ids: list[int], **extra: Any
) -> httpx.Response:
    return await http.post(
        f"/service/api/messages/{message_id}/forward",
        json={"chat_ids": chat_ids, **extra},
        headers=who.headers,
    )


async def test_forward_with_comment_and_attachment(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, c, _ = people
    source_chat = await make_group(client, a, b)
    upload = await client.post(
        f"/service/api/chats/{source_chat['id']}/attachments",
        files={"file": ("dot.png", PNG, "image/png")},
        headers=b.headers,
    )
    assert upload.status_code == 201, upload.text
    original = await send(
        client, b, source_chat["id"], "look at this", attachment_ids=[upload.json()["id"]]
    )
    target1 = await make_group(client, a, c, title="Elsewhere")
    target2 = await make_direct(client, a, c)
    ws = await connect(live.ws_base, c)
    try:
        answer = await forward(
            client, a, original["id"], [target1["id"], target2["id"]], comment="see @" + c.username
        )
        assert answer.status_code == 201, answer.text
        copies = answer.json()
        assert [m["chat_id"] for m in copies] == [target1["id"], target2["id"]]
        for copy in copies:
            assert copy["content"] == "look at this" and copy["sender"]["id"] == a.id
            assert copy["forwarded_from"] == {
                "message_id": original["id"],
                "sender": original["sender"],
                "created_at": original["created_at"],
                "chat_id": None,  # a private group: not named
            }
            [attachment] = copy["attachments"]
            assert attachment["filename"] == "dot.png"
            assert attachment["id"] != original["attachments"][0]["id"]
            got = await client.get(attachment["url"], headers=c.headers)
            assert got.status_code == 200 and got.content == PNG
        pushed = [await recv_type(ws, "message") for _ in range(4)]
        assert [p["message"]["content"] for p in pushed] == [
            "see @" + c.username,
            "look at this",
        ] * 2
        assert pushed[1]["message"]["forwarded_from"]["message_id"] == original["id"]
    finally:
        await ws.close()
    shown = await history(client, c, target1["id"])
    assert [m["content"] for m in shown[-2:]] == ["see @" + c.username, "look at this"]
    assert shown[-1]["seq"] == shown[-2]["seq"] + 1
    assert shown[-2]["forwarded_from"] is None and shown[-2]["mentions"] == [c.id]
    # the source stays the source's: the outsider still cannot download it
    denied = await client.get(original["attachments"][0]["url"], headers=c.headers)
    assert denied.status_code == 404


async def test_forward_names_a_public_channel(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    a, b, *_ = people
    channel = await make_group(client, a, type="channel", title="Open")
    post = await send(client, a, channel["id"], "public words")
    direct = await make_direct(client, a, b)
    [copy] = (await forward(client, a, post["id"], [direct["id"]])).json()
    assert copy["forwarded_from"]["chat_id"] == channel["id"]
    # a copy of a copy names the original
    [again] = (await forward(client, b, copy["id"], [direct["id"]])).json()
    assert again["forwarded_from"] == copy["forwarded_from"]


async def test_forward_is_all_or_nothing(client: httpx.AsyncClient, people: list[Account]) -> None:
    a, b, c, outsider = people
    source = await make_group(client, a, b)
    original = await send(client, a, source["id"], "only once")
    mine = await make_group(client, a, title="Mine")
    foreign = await make_group(client, outsider, title="Not mine")
    channel = await make_group(client, outsider, type="channel", title="Not joined")
    before = len(await history(client, a, mine["id"]))
    refused = await forward(client, a, original["id"], [mine["id"], foreign["id"]], comment="x")
    assert refused.status_code == 404
    refused = await forward(client, a, original["id"], [mine["id"], channel["id"]])
    assert refused.status_code == 403 and refused.json()["code"] == "not_member"
    blocked_chat = await make_direct(client, a, c)
    block = await client.post("/service/api/block", json={"user_id": a.id}, headers=c.headers)
    assert block.status_code == 201
    try:
        refused = await forward(client, a, original["id"], [mine["id"], blocked_chat["id"]])
        assert refused.status_code == 403 and refused.json()["code"] == "blocked"
    finally:
        await client.delete(f"/service/api/block/{a.id}", headers=c.headers)
    assert len(await history(client, a, mine["id"])) == before  # nothing was sent
    unseen = await forward(client, outsider, original["id"], [foreign["id"]])
    assert unseen.status_code == 404
    too_many = await forward(client, a, original["id"], [mine["id"]] * 11)
    assert too_many.status_code == 422 and too_many.json()["code"] == "validation_error"
    none = await forward(client, a, original["id"], [])
    assert none.status_code == 422


# --- mark as unread ----------------------------------------------------------------------


async def test_mark_unread_moves_the_marker_back(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, *_ = people
    chat = await make_group(client, a, b)
    sent = [await send(client, a, chat["id"], f"n{n}") for n in range(5)]
    read = await client.post(
        f"/service/api/chats/{chat['id']}/read", json={"seq": sent[-1]["seq"]}, headers=b.headers
    )
    assert read.status_code == 204
    assert (await my_chat(client, b, chat["id"]))["unread_count"] == 0
    ws = await connect(live.ws_base, b)
    try:
        back = await client.post(
            f"/service/api/chats/{chat['id']}/unread",
            json={"seq": sent[2]["seq"]},
            headers=b.headers,
        )
        assert back.status_code == 204
        frame = await recv_type(ws, "read")
        assert frame == {
            "type": "read",
            "chat_id": chat["id"],
            "user_id": b.id,
            "seq": sent[2]["seq"] - 1,
        }
    finally:
        await ws.close()
    mine = await my_chat(client, b, chat["id"])
    assert mine["unread_count"] == 3 and mine["read_seq"] == sent[2]["seq"] - 1
    outsider = people[3]
    hidden = await client.post(
        f"/service/api/chats/{chat['id']}/unread", json={"seq": 1}, headers=outsider.headers
    )
    assert hidden.status_code == 404


# --- notices -----------------------------------------------------------------------------


async def test_creation_and_general_make_no_notice(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    a, b, *_ = people
    chat = await make_group(client, a, b)
    first = await send(client, a, chat["id"], "hello")
    assert first["seq"] == 1
    general = next(
        c
        for c in (await client.get("/service/api/chats", headers=a.headers)).json()
        if c["title"] == "general"
    )
    # other tests share `general` (their members leave it, are given roles): none of its
    # notices is about these people, who joined it by registering
    ours = {p.id for p in people}
    about_us = [
        m
        for m in await history(client, a, general["id"])
        if m["kind"] == "notice"
        and ((m["sender"] and m["sender"]["id"] in ours) or ours & set(m["notice"]["user_ids"]))
    ]
    assert about_us == []


async def test_every_notice_action(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, c, d = people
    chat = await make_group(client, a, b)
    base = f"/service/api/chats/{chat['id']}"
    ws_b = await connect(live.ws_base, b)
    ws_c = await connect(live.ws_base, c)
    try:
        await client.patch(base, json={"title": "Renamed"}, headers=a.headers)
        await client.patch(base, json={"description": "About"}, headers=a.headers)
        await client.post(f"{base}/members", json={"user_ids": [c.id, d.id]}, headers=a.headers)
        await client.patch(f"{base}/members/{b.id}", json={"role": "admin"}, headers=a.headers)
        await client.delete(f"{base}/members/{c.id}", headers=b.headers)
        removed = await recv_type(ws_c, "chat_removed")
        assert removed["chat_id"] == chat["id"]
        await client.delete(f"{base}/members/{d.id}", headers=d.headers)
        await client.patch(f"{base}/members/{b.id}", json={"role": "owner"}, headers=a.headers)
        frames = [await recv_type(ws_b, "message") for _ in range(7)]
        # c, removed, gets `chat_removed`, never the notice of its removal (nor later ones)
        await no_frame(ws_c, "message", wait=0.3)
    finally:
        await ws_b.close()
        await ws_c.close()
    told = [f["message"]["notice"] for f in frames]
    expected = [
        {"action": "renamed", "actor_id": a.id, "user_ids": [], "title": "Renamed"},
        {"action": "description_changed", "actor_id": a.id, "user_ids": [], "title": None},
        {"action": "added", "actor_id": a.id, "user_ids": sorted([c.id, d.id]), "title": None},
        {"action": "role_changed", "actor_id": a.id, "user_ids": [b.id], "title": None},
        {"action": "removed", "actor_id": b.id, "user_ids": [c.id], "title": None},
        {"action": "left", "actor_id": d.id, "user_ids": [d.id], "title": None},
        {"action": "owner_changed", "actor_id": a.id, "user_ids": [b.id], "title": None},
    ]
    assert told == expected
    shown = await history(client, b, chat["id"])
    assert [m["notice"] for m in shown] == expected
    assert [m["seq"] for m in shown] == list(range(1, 8))
    for m in shown:
        assert m["kind"] == "notice" and m["content"] == "" and m["mentions"] == []
    assert shown[0]["sender"]["id"] == a.id
    # e joins the public channel: a `joined` notice
    e = await make_user(client)
    channel = await make_group(client, a, type="channel", title="Lobby")
    joined = await client.post(f"/service/api/chats/{channel['id']}/join", headers=e.headers)
    assert joined.status_code == 200
    [notice] = notices(await history(client, a, channel["id"]))
    assert notice == {
        "action": "joined",
        "actor_id": e.id,
        "user_ids": [e.id],
        "title": None,
        "seq": 1,
    }


async def test_notice_rules(client: httpx.AsyncClient, people: list[Account]) -> None:
    a, b, c, _ = people
    chat = await make_group(client, a, b)
    said = await send(client, a, chat["id"], "last real words")
    await client.post(f"/service/api/chats/{chat['id']}/read", json={"seq": 1}, headers=b.headers)
    await client.post(
        f"/service/api/chats/{chat['id']}/members", json={"user_ids": [c.id]}, headers=a.headers
    )
    await client.patch(f"/service/api/chats/{chat['id']}", json={"title": "T2"}, headers=a.headers)
    seen = await my_chat(client, b, chat["id"])
    assert seen["last_seq"] == 3 and seen["unread_count"] == 0  # notices are never unread
    assert seen["last_message"]["id"] == said["id"]  # nor the last message
    listed = (await client.get("/service/api/chats", headers=b.headers)).json()
    assert next(x for x in listed if x["id"] == chat["id"])["last_message"]["id"] == said["id"]
    notice = (await history(client, a, chat["id"]))[-1]
    assert notice["kind"] == "notice"
    url = f"/service/api/messages/{notice['id']}"
    refusals = [
        await client.patch(url, json={"content": "x"}, headers=a.headers),
        await client.post(f"{url}/reactions", json={"emoji": "👍"}, headers=b.headers),
        await client.post(
            f"/service/api/chats/{chat['id']}/messages",
            json={"content": "re", "reply_to": notice["id"]},
            headers=b.headers,
        ),
        await forward(client, a, notice["id"], [chat["id"]]),
    ]
    for refused in refusals:
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error" and refused.json()["detail"]
    found = await client.get(
        "/service/api/search", params={"q": f"from:{a.username} in:{chat['id']}"}, headers=b.headers
    )
    assert [m["id"] for m in found.json()] == [said["id"]]  # notices are not searched
    # a new message after the notices is unread as usual
    await send(client, a, chat["id"], "news")
    assert (await my_chat(client, b, chat["id"]))["unread_count"] == 1


async def test_owner_leaving_hands_over_with_notices(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    a, b, *_ = people
    chat = await make_group(client, a, b)
    left = await client.delete(f"/service/api/chats/{chat['id']}/members/{a.id}", headers=a.headers)
    assert left.status_code == 204
    told = notices(await history(client, b, chat["id"]))
    assert [(n["action"], n["actor_id"], n["user_ids"]) for n in told] == [
        ("left", a.id, [a.id]),
        ("owner_changed", a.id, [b.id]),
    ]


async def test_notice_cannot_be_pinned_nor_replied_to_over_websocket(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    a, b, *_ = people
    chat = await make_group(client, a, b)
    await client.patch(f"/service/api/chats/{chat['id']}", json={"title": "N"}, headers=a.headers)
    [notice] = [m for m in await history(client, a, chat["id"]) if m["kind"] == "notice"]
    refused = await pin(client, a, chat["id"], notice["id"])
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"
    ws = await connect(live.ws_base, b)
    try:
        frame = {"type": "send", "chat_id": chat["id"], "content": "re", "client_id": "re-notice"}
        await ws.send(json.dumps(frame | {"reply_to": notice["id"]}))
        error = await recv_type(ws, "error")
        assert error["code"] == "validation_error" and error["ref"] == "re-notice"
    finally:
        await ws.close()


async def test_deleting_a_pinned_message_unpins_it(client: httpx.AsyncClient) -> None:
    a, b = await make_user(client), await make_user(client)  # a direct chat of their own
    chat = await make_direct(client, a, b)
    said = await send(client, a, chat["id"], "pinned then gone")
    assert (await pin(client, b, chat["id"], said["id"])).status_code == 200
    gone = await client.delete(f"/service/api/messages/{said['id']}", headers=a.headers)
    assert gone.status_code == 204
    listed = await client.get(f"/service/api/chats/{chat['id']}/pins", headers=a.headers)
    assert listed.json() == []
    again = await pin(client, a, chat["id"], said["id"])
    assert again.status_code == 409 and again.json()["code"] == "message_deleted"
