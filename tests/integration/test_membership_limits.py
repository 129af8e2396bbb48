"""Who can be added to a chat, how many chats one user may be in, and that the most still works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, insert, select

from parley.server.db.models import Chat, Membership, Message
from tests.conftest import Running
from tests.factories import Account, connect, make_direct, make_group, make_user, send, unique


async def _block(client: httpx.AsyncClient, who: Account, target: Account) -> None:
    answer = await client.post(
        "/service/api/block", json={"user_id": target.id}, headers=who.headers
    )
    assert answer.status_code == 201, answer.text


async def test_a_user_who_blocked_you_cannot_be_added(client: httpx.AsyncClient) -> None:
    adder, blocker, friend = (
        await make_user(client),
        await make_user(client),
        await make_user(client),
    )
    await _block(client, blocker, adder)
    created = await client.post(
        "/service/api/chats",
        json={"type": "group", "title": "t", "member_ids": [friend.id, blocker.id]},
        headers=adder.headers,
    )
    assert created.status_code == 403 and created.json()["code"] == "blocked", created.text
    chat = await make_group(client, adder, friend)
    added = await client.post(
        f"/service/api/chats/{chat['id']}/members",
        json={"user_ids": [blocker.id]},
        headers=adder.headers,
    )
    assert added.status_code == 403 and added.json()["code"] == "blocked"
    members = await client.get(f"/service/api/chats/{chat['id']}/members", headers=adder.headers)
    assert blocker.id not in {m["user"]["id"] for m in members.json()}
    # The other way round is allowed: the blocker may still add the user it blocks.
    theirs = await make_group(client, blocker)
    again = await client.post(
        f"/service/api/chats/{theirs['id']}/members",
        json={"user_ids": [adder.id]},
        headers=blocker.headers,
    )
    assert again.status_code == 200, again.text


async def _fill(live: Running, who: Account, count: int) -> None:
    """`count` more groups for `who`, each with one message, inserted in bulk."""
    async with live.state.sessions() as session:
        ids = list(
            (
                await session.execute(
                    insert(Chat).returning(Chat.id),
                    [
                        {"type": "group", "title": unique("g"), "is_public": False, "last_seq": 1}
                        for _ in range(count)
                    ],
                )
            ).scalars()
        )
        await session.execute(
            insert(Membership),
            [{"chat_id": i, "user_id": who.id, "role": "owner"} for i in ids],
        )
        await session.execute(
            insert(Message),
            [{"chat_id": i, "seq": 1, "sender_id": who.id, "content": f"in {i}"} for i in ids],
        )
        await session.commit()


@contextmanager
def _largest_statement(live: Running) -> Iterator[list[int]]:
    """Records how many bound parameters each SQL statement of the server carries."""
    sizes: list[int] = []
    engine = live.state.engine.sync_engine

    def record(_conn: Any, _cursor: Any, _sql: str, params: Any, *_rest: Any) -> None:
        sizes.append(len(params) if isinstance(params, list | tuple | dict) else 0)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sizes
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_user_in_the_most_chats_loads_them_and_connects(
    client: httpx.AsyncClient, live: Running
) -> None:
    most = live.settings.max_chats_per_user
    assert most == 5000
    me, peer, stranger = await make_user(client), await make_user(client), await make_user(client)
    direct = await make_direct(client, me, peer)
    await send(client, peer, direct["id"], "hi")
    await _fill(live, me, most - 2)  # with `general` and the direct chat: the most allowed
    with _largest_statement(live) as sizes:
        chats = await client.get("/service/api/chats", headers=me.headers, timeout=60)
    assert chats.status_code == 200
    listed = chats.json()
    assert len(listed) == most
    assert max(sizes) < 50  # no IN (...) list of the user's chats: joins and subqueries
    by_id = {c["id"]: c for c in listed}
    assert by_id[direct["id"]]["peer"]["id"] == peer.id
    assert by_id[direct["id"]]["last_message"]["content"] == "hi"
    assert all(c["last_message"] for c in listed if c["type"] == "group")
    ws = await connect(live.ws_base, me, open_timeout=30)
    await ws.close()

    # Past the most: creating, being added, joining and opening a direct chat are refused.
    refusals = [
        await client.post(
            "/service/api/chats",
            json={"type": "group", "title": "one more", "member_ids": []},
            headers=me.headers,
        ),
        await client.post(
            "/service/api/chats",
            json={"type": "direct", "user_id": stranger.id},
            headers=me.headers,
        ),
    ]
    theirs = await make_group(client, stranger)
    refusals.append(
        await client.post(
            f"/service/api/chats/{theirs['id']}/members",
            json={"user_ids": [me.id]},
            headers=stranger.headers,
        )
    )
    channel = await make_group(client, stranger, type="channel", title=unique("c"))
    refusals.append(
        await client.post(f"/service/api/chats/{channel['id']}/join", headers=me.headers)
    )
    for refused in refusals:
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "too_many_chats"
    async with live.state.reads() as session:
        count = len(
            (await session.execute(select(Membership.chat_id).where(Membership.user_id == me.id)))
            .scalars()
            .all()
        )
    assert count == most
    # Leaving one makes room again.
    left = await client.delete(
        f"/service/api/chats/{listed[-1]['id']}/members/{me.id}", headers=me.headers
    )
    assert left.status_code == 204, left.text
    joined = await client.post(f"/service/api/chats/{channel['id']}/join", headers=me.headers)
    assert joined.status_code == 200, joined.text
