"""History pages served from memory (`messages/history.py`) on SQLite and PostgreSQL: the
same bytes as the models would give, forgotten exactly when a page changes, never shared
between readers who see different messages, and the caller authenticated from memory with
revocation taking effect on the next request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from sqlalchemy import select

from parley.server.accounts.service import promote_user
from parley.server.db.models import Message
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import messages_public
from tests.conftest import Running, no_cookies
from tests.factories import Account, make_direct, make_group, make_user, send

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
CHATS = "/service/api/chats"
MESSAGES = "/service/api/messages"
PAGES = TypeAdapter(list[MessagePublic])


async def page(
    http: httpx.AsyncClient, who: Account, chat_id: int, query: str = "limit=50"
) -> httpx.Response:
    return await http.get(f"{CHATS}/{chat_id}/messages?{query}", headers=who.headers)


async def contents(http: httpx.AsyncClient, who: Account, chat_id: int) -> list[Any]:
    response = await page(http, who, chat_id)
    assert response.status_code == 200, response.text
    return [m["content"] for m in response.json()]


async def models_json(live: Running, chat_id: int, *, limit: int = 50) -> bytes:
    """The page as the ORM and pydantic models build it (the shape before the cache)."""
    async with live.state.sessions() as session:
        rows = (
            await session.execute(
                select(Message)
                .where(Message.chat_id == chat_id)
                .order_by(Message.seq.desc())
                .limit(limit)
            )
        ).scalars()
        return PAGES.dump_json(await messages_public(session, list(rows)[::-1]))


async def test_a_page_is_byte_for_byte_what_the_models_give(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, peer = await make_user(client, display_name="Zoë ✨"), await make_user(client)
    group = await make_group(client, me, peer)
    texts = [
        "plain",
        "unicode: żółć 日本 🎉",
        'quotes " \\ / and \t tab',
        "lines\nbreak \u2028 \u00a0 <b>&amp;</b>",
    ]
    sent = [await send(client, me, group["id"], text) for text in texts]
    await send(client, peer, group["id"], f"hi @{me.username} and @nobody")
    reply = await send(client, peer, group["id"], "a reply", reply_to=sent[0]["id"])
    upload = await client.post(
        f"{CHATS}/{group['id']}/attachments",
        files={"file": ("notes.txt", b"some text", "text/plain")},
        headers=me.headers,
    )
    assert upload.status_code == 201, upload.text
    await send(client, me, group["id"], "with a file", attachment_ids=[upload.json()["id"]])
    for who, emoji in ((me, "👍"), (peer, "👍"), (peer, "🎉")):
        reacted = await client.post(
            f"{MESSAGES}/{reply['id']}/reactions", json={"emoji": emoji}, headers=who.headers
        )
        assert reacted.status_code == 200
    edited = await client.patch(
        f"{MESSAGES}/{sent[1]['id']}", json={"content": "edited ✓"}, headers=me.headers
    )
    assert edited.status_code == 200
    assert (
        await client.delete(f"{MESSAGES}/{sent[2]['id']}", headers=me.headers)
    ).status_code == 204
    served = await page(client, peer, group["id"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.content == await models_json(live, group["id"])
    again = await page(client, me, group["id"])  # another member: the page from memory
    assert again.content == served.content
    body = served.json()
    assert body[4]["mentions"] == [me.id]
    assert body[5]["reactions"] == [
        {"emoji": "👍", "count": 2, "user_ids": [me.id, peer.id]},
        {"emoji": "🎉", "count": 1, "user_ids": [peer.id]},
    ]
    assert body[6]["attachments"][0]["filename"] == "notes.txt"


async def test_the_page_follows_every_change(client: httpx.AsyncClient, live: Running) -> None:
    me, peer = await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    first = await send(client, me, group["id"], "first")
    assert await contents(client, peer, group["id"]) == ["first"]
    hits = live.state.pages.hits
    assert await contents(client, peer, group["id"]) == ["first"]
    assert live.state.pages.hits == hits + 1  # served from memory
    await send(client, me, group["id"], "second")
    assert await contents(client, peer, group["id"]) == ["first", "second"]
    await client.patch(f"{MESSAGES}/{first['id']}", json={"content": "1st"}, headers=me.headers)
    assert await contents(client, peer, group["id"]) == ["1st", "second"]
    await client.post(
        f"{MESSAGES}/{first['id']}/reactions", json={"emoji": "👍"}, headers=peer.headers
    )
    reactions = (await page(client, me, group["id"])).json()[0]["reactions"]
    assert reactions == [{"emoji": "👍", "count": 1, "user_ids": [peer.id]}]
    await client.delete(f"{MESSAGES}/{first['id']}/reactions/👍", headers=peer.headers)
    assert (await page(client, me, group["id"])).json()[0]["reactions"] == []
    await client.patch("/service/api/profile", json={"display_name": "Renamed"}, headers=me.headers)
    assert (await page(client, peer, group["id"])).json()[0]["sender"]["display_name"] == "Renamed"
    await client.delete(f"{MESSAGES}/{first['id']}", headers=me.headers)
    gone = (await page(client, peer, group["id"])).json()[0]
    assert gone["deleted"] is True and gone["content"] == ""
    assert (await page(client, peer, group["id"])).content == await models_json(live, group["id"])
    # other paging arguments are pages of their own, kept right the same way
    older = await page(client, peer, group["id"], "limit=1&before=2")
    assert [m["seq"] for m in older.json()] == [1]
    await send(client, me, group["id"], "third")
    assert [m["content"] for m in (await page(client, peer, group["id"], "after=1")).json()] == [
        "second",
        "third",
    ]


async def test_readers_blocking_a_sender_never_get_each_others_page(
    client: httpx.AsyncClient,
) -> None:
    me, rude, other = await make_user(client), await make_user(client), await make_user(client)
    group = await make_group(client, me, rude, other)
    await send(client, me, group["id"], "mine")
    await send(client, rude, group["id"], "rude")
    assert await contents(client, other, group["id"]) == ["mine", "rude"]  # now in memory
    blocked = await client.post("/service/api/block", json={"user_id": rude.id}, headers=me.headers)
    assert blocked.status_code == 201
    assert await contents(client, me, group["id"]) == ["mine"]
    assert await contents(client, other, group["id"]) == ["mine", "rude"]
    assert (
        await client.delete(f"/service/api/block/{rude.id}", headers=me.headers)
    ).status_code == 204
    assert await contents(client, me, group["id"]) == ["mine", "rude"]
    # in a direct chat a block hides nothing from the history
    direct = await make_direct(client, me, rude)
    await send(client, rude, direct["id"], "psst")
    await client.post("/service/api/block", json={"user_id": rude.id}, headers=me.headers)
    assert await contents(client, me, direct["id"]) == ["psst"]


async def test_members_only_and_odd_input_answers_as_before(client: httpx.AsyncClient) -> None:
    me, peer, stranger = await make_user(client), await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    await send(client, me, group["id"], "secret")
    assert (await page(client, peer, group["id"])).status_code == 200
    hidden = await page(client, stranger, group["id"])
    assert hidden.status_code == 404 and hidden.json()["code"] == "chat_not_found"
    assert (await page(client, me, 10**9)).json()["code"] == "chat_not_found"
    for query in ("limit=0", "limit=x", "before=-1", "around=1&before=3"):
        refused = await page(client, me, group["id"], query)
        assert refused.status_code == 422 and refused.json()["code"] == "validation_error", query
    assert (await page(client, me, group["id"], "limit=5&unknown=1")).status_code == 200
    anonymous = await client.get(f"{CHATS}/{group['id']}/messages")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    forged = await client.get(
        f"{CHATS}/{group['id']}/messages", headers={"Authorization": "Bearer not.a.token"}
    )
    assert forged.status_code == 401
    # a member who leaves reads no more (membership events reach the cache)
    left = await client.delete(f"{CHATS}/{group['id']}/members/{peer.id}", headers=me.headers)
    assert left.status_code == 204
    assert (await page(client, peer, group["id"])).status_code == 404


async def test_logout_and_bans_take_effect_on_the_next_request(
    client: httpx.AsyncClient, live: Running
) -> None:
    admin, me = await make_user(client), await make_user(client)
    async with live.state.sessions() as session:
        assert await promote_user(session, username=admin.username)
    group = await make_group(client, admin, me)
    assert (await page(client, me, group["id"])).status_code == 200  # session now in memory
    banned = await client.post(
        "/service/api/admin/bans", json={"user_id": me.id}, headers=admin.headers
    )
    assert banned.status_code == 201
    refused = await page(client, me, group["id"])
    assert refused.status_code == 403 and refused.json()["code"] == "user_banned"
    lifted = await client.delete(f"/service/api/admin/bans/{me.id}", headers=admin.headers)
    assert lifted.status_code == 204
    assert (await page(client, me, group["id"])).status_code == 200
    assert (await page(client, admin, group["id"])).status_code == 200
    assert (await client.post("/service/api/logout", headers=admin.headers)).status_code == 204
    ended = await page(client, admin, group["id"])
    assert ended.status_code == 401 and ended.json()["code"] == "unauthorized"


async def test_a_page_request_is_counted_under_its_route(
    client: httpx.AsyncClient, live: Running
) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    assert (await page(client, me, group["id"])).status_code == 200
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        text = (await http.get("/service/metrics")).text
    assert 'route="/service/api/chats/{chat_id}/messages"' in text
