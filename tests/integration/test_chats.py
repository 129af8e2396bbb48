"""Chats over HTTP on SQLite and PostgreSQL: direct chats, groups, channels, members, roles."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import Running
from tests.factories import (
    Account,
    connect,
    make_direct,
    make_group,
    make_user,
    recv_type,
    send,
    unique,
)

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
CHATS = "/service/api/chats"


async def users(http: httpx.AsyncClient, count: int) -> list[Account]:
    return [await make_user(http) for _ in range(count)]


async def test_direct_chat_is_one_per_pair_from_either_side(client: httpx.AsyncClient) -> None:
    a, b = await make_user(client), await make_user(client)
    first = await client.post(CHATS, json={"type": "direct", "user_id": b.id}, headers=a.headers)
    assert first.status_code == 201
    chat = first.json()
    assert chat["type"] == "direct" and chat["is_public"] is False and chat["member_count"] == 2
    assert chat["peer"]["id"] == b.id and chat["title"] == b.user["display_name"]
    again = await client.post(CHATS, json={"type": "direct", "user_id": b.id}, headers=a.headers)
    assert again.status_code == 200 and again.json()["id"] == chat["id"]
    other_side = await client.post(
        CHATS, json={"type": "direct", "user_id": a.id}, headers=b.headers
    )
    assert other_side.status_code == 200 and other_side.json()["id"] == chat["id"]
    assert other_side.json()["peer"]["id"] == a.id


async def test_direct_chat_to_yourself_or_nobody_is_refused(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    myself = await client.post(CHATS, json={"type": "direct", "user_id": me.id}, headers=me.headers)
    assert myself.status_code == 422 and myself.json()["code"] == "validation_error"
    nobody = await client.post(
        CHATS, json={"type": "direct", "user_id": 2_000_000_000}, headers=me.headers
    )
    assert nobody.status_code == 404


async def test_group_creator_is_owner_and_members_are_added(client: httpx.AsyncClient) -> None:
    owner, ann, bob = await make_user(client), await make_user(client), await make_user(client)
    response = await client.post(
        CHATS,
        json={
            "type": "group",
            "title": "  Team  ",
            "description": "ours",
            "member_ids": [ann.id, bob.id],
        },
        headers=owner.headers,
    )
    assert response.status_code == 201
    chat = response.json()
    assert chat["title"] == "Team" and chat["description"] == "ours"
    assert chat["type"] == "group" and chat["is_public"] is False
    assert chat["my_role"] == "owner" and chat["created_by"] == owner.id
    assert chat["member_count"] == 3 and chat["last_seq"] == 0 and chat["peer"] is None
    members = (await client.get(f"{CHATS}/{chat['id']}/members", headers=ann.headers)).json()
    roles = {m["user"]["id"]: m["role"] for m in members}
    assert roles == {owner.id: "owner", ann.id: "member", bob.id: "member"}


async def test_channel_is_public_and_listed_by_query(client: httpx.AsyncClient) -> None:
    owner, stranger = await make_user(client), await make_user(client)
    word = unique("Topic")
    channel = await make_group(client, owner, type="channel", title=f"About {word} here")
    assert channel["is_public"] is True and channel["type"] == "channel"
    await make_group(client, owner, type="group", title=f"Secret {word}")
    found = await client.get(
        f"{CHATS}/public", params={"q": word.lower()}, headers=stranger.headers
    )
    assert found.status_code == 200
    assert [c["id"] for c in found.json()] == [channel["id"]]
    assert found.json()[0]["my_role"] is None
    everything = (await client.get(f"{CHATS}/public", headers=stranger.headers)).json()
    assert all(c["is_public"] for c in everything)


async def test_my_chats_by_recent_activity_with_unread_and_last_message(
    client: httpx.AsyncClient,
) -> None:
    me, peer = await make_user(client), await make_user(client)
    older = await make_group(client, me, peer, title="Older")
    newer = await make_group(client, me, peer, title="Newer")
    await send(client, peer, older["id"], "first")
    await send(client, peer, older["id"], "second")
    chats = (await client.get(CHATS, headers=me.headers)).json()
    mine = [c for c in chats if c["id"] in (older["id"], newer["id"])]
    assert [c["id"] for c in mine] == [older["id"], newer["id"]]
    assert chats[0]["id"] == older["id"]
    assert mine[0]["unread_count"] == 2 and mine[0]["last_seq"] == 2
    assert mine[0]["last_message"]["content"] == "second"
    assert mine[1]["unread_count"] == 0 and mine[1]["last_message"] is None
    await send(client, me, newer["id"], "mine")
    chats = (await client.get(CHATS, headers=me.headers)).json()
    assert chats[0]["id"] == newer["id"] and chats[0]["unread_count"] == 0
    read = await client.post(f"{CHATS}/{older['id']}/read", json={"seq": 2}, headers=me.headers)
    assert read.status_code == 204
    again = (await client.get(f"{CHATS}/{older['id']}", headers=me.headers)).json()
    assert again["unread_count"] == 0


async def test_get_chat_hides_private_chats_and_shows_public_ones(
    client: httpx.AsyncClient,
) -> None:
    owner, member, stranger = await users(client, 3)
    group = await make_group(client, owner, member)
    channel = await make_group(client, owner, type="channel", title="Open")
    assert (await client.get(f"{CHATS}/{group['id']}", headers=member.headers)).status_code == 200
    hidden = await client.get(f"{CHATS}/{group['id']}", headers=stranger.headers)
    missing = await client.get(f"{CHATS}/2000000000", headers=stranger.headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() and hidden.json()["code"] == "chat_not_found"
    seen = await client.get(f"{CHATS}/{channel['id']}", headers=stranger.headers)
    assert seen.status_code == 200 and seen.json()["my_role"] is None
    members = await client.get(f"{CHATS}/{group['id']}/members", headers=stranger.headers)
    assert members.status_code == 404


async def test_rename_by_owner_or_admin_only(client: httpx.AsyncClient) -> None:
    owner, admin, member = await users(client, 3)
    group = await make_group(client, owner, admin, member)
    url = f"{CHATS}/{group['id']}"
    promoted = await client.patch(
        f"{url}/members/{admin.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    by_owner = await client.patch(url, json={"title": "Renamed"}, headers=owner.headers)
    assert by_owner.status_code == 200 and by_owner.json()["title"] == "Renamed"
    by_admin = await client.patch(url, json={"description": "about"}, headers=admin.headers)
    assert by_admin.status_code == 200
    assert by_admin.json()["title"] == "Renamed" and by_admin.json()["description"] == "about"
    by_member = await client.patch(url, json={"title": "Mine"}, headers=member.headers)
    assert by_member.status_code == 403
    assert (await client.get(url, headers=member.headers)).json()["title"] == "Renamed"


@pytest.mark.parametrize(
    "title",
    ["evil\u202egnp.exe", "zero\u200bwidth", "nul\x00byte", "x" * 65, "   ", "", "line\nbreak"],
)
async def test_bad_titles_are_refused(client: httpx.AsyncClient, title: str) -> None:
    owner = await make_user(client)
    create = await client.post(CHATS, json={"type": "group", "title": title}, headers=owner.headers)
    assert create.status_code == 422 and create.json()["code"] == "validation_error"
    group = await make_group(client, owner)
    rename = await client.patch(
        f"{CHATS}/{group['id']}", json={"title": title}, headers=owner.headers
    )
    assert rename.status_code == 422 and rename.json()["code"] == "validation_error"
    assert (await client.get(f"{CHATS}/{group['id']}", headers=owner.headers)).json()[
        "title"
    ] == "Team"


async def test_title_of_64_characters_is_fine(client: httpx.AsyncClient) -> None:
    owner = await make_user(client)
    group = await make_group(client, owner, title="é" * 64)
    assert group["title"] == "é" * 64


async def test_add_members_by_owner_or_admin_only(client: httpx.AsyncClient) -> None:
    owner, member, newcomer, other = await users(client, 4)
    group = await make_group(client, owner, member)
    url = f"{CHATS}/{group['id']}/members"
    refused = await client.post(url, json={"user_ids": [newcomer.id]}, headers=member.headers)
    assert refused.status_code == 403
    added = await client.post(
        url, json={"user_ids": [newcomer.id, member.id]}, headers=owner.headers
    )
    assert added.status_code == 200
    assert {m["user"]["id"] for m in added.json()} == {owner.id, member.id, newcomer.id}
    nobody = await client.post(url, json={"user_ids": [2_000_000_000]}, headers=owner.headers)
    assert nobody.status_code == 404
    outsider = await client.post(url, json={"user_ids": [other.id]}, headers=other.headers)
    assert outsider.status_code == 404
    assert (await client.get(f"{CHATS}/{group['id']}", headers=newcomer.headers)).status_code == 200


async def test_join_public_channel_but_not_private_group(client: httpx.AsyncClient) -> None:
    owner, me = await make_user(client), await make_user(client)
    channel = await make_group(client, owner, type="channel", title="Lobby")
    group = await make_group(client, owner)
    joined = await client.post(f"{CHATS}/{channel['id']}/join", headers=me.headers)
    assert joined.status_code == 200
    assert joined.json()["my_role"] == "member" and joined.json()["member_count"] == 2
    twice = await client.post(f"{CHATS}/{channel['id']}/join", headers=me.headers)
    assert twice.status_code == 200 and twice.json()["member_count"] == 2
    private = await client.post(f"{CHATS}/{group['id']}/join", headers=me.headers)
    assert private.status_code == 404 and private.json()["code"] == "chat_not_found"
    assert channel["id"] in [c["id"] for c in (await client.get(CHATS, headers=me.headers)).json()]


async def test_writing_to_an_unjoined_channel_is_not_member(client: httpx.AsyncClient) -> None:
    owner, me = await make_user(client), await make_user(client)
    channel = await make_group(client, owner, type="channel", title="Read only for now")
    response = await client.post(
        f"{CHATS}/{channel['id']}/messages", json={"content": "hi"}, headers=me.headers
    )
    assert response.status_code == 403 and response.json()["code"] == "not_member"
    history = await client.get(f"{CHATS}/{channel['id']}/messages", headers=me.headers)
    assert history.status_code == 200


async def test_leave_and_remove_members(client: httpx.AsyncClient) -> None:
    owner, admin, member, leaver = await users(client, 4)
    group = await make_group(client, owner, admin, member, leaver)
    url = f"{CHATS}/{group['id']}/members"
    await client.patch(f"{url}/{admin.id}", json={"role": "admin"}, headers=owner.headers)
    left = await client.delete(f"{url}/{leaver.id}", headers=leaver.headers)
    assert left.status_code == 204
    assert (await client.get(f"{CHATS}/{group['id']}", headers=leaver.headers)).status_code == 404
    by_member = await client.delete(f"{url}/{admin.id}", headers=member.headers)
    assert by_member.status_code == 403
    owner_stays = await client.delete(f"{url}/{owner.id}", headers=admin.headers)
    assert owner_stays.status_code == 403
    removed = await client.delete(f"{url}/{member.id}", headers=admin.headers)
    assert removed.status_code == 204
    members = (await client.get(url, headers=owner.headers)).json()
    assert {m["user"]["id"] for m in members} == {owner.id, admin.id}
    gone = await client.delete(f"{url}/{member.id}", headers=owner.headers)
    assert gone.status_code == 404


async def test_owner_leaving_hands_ownership_over(client: httpx.AsyncClient) -> None:
    owner, admin, member = await users(client, 3)
    group = await make_group(client, owner, member, admin)
    url = f"{CHATS}/{group['id']}/members"
    await client.patch(f"{url}/{admin.id}", json={"role": "admin"}, headers=owner.headers)
    assert (await client.delete(f"{url}/{owner.id}", headers=owner.headers)).status_code == 204
    roles = {
        m["user"]["id"]: m["role"] for m in (await client.get(url, headers=member.headers)).json()
    }
    assert roles == {admin.id: "owner", member.id: "member"}


async def test_role_changes_are_for_the_owner(client: httpx.AsyncClient) -> None:
    owner, admin, member = await users(client, 3)
    group = await make_group(client, owner, admin, member)
    url = f"{CHATS}/{group['id']}/members"
    ok = await client.patch(f"{url}/{admin.id}", json={"role": "admin"}, headers=owner.headers)
    assert ok.status_code == 200 and ok.json()["user"]["id"] == admin.id
    by_admin = await client.patch(
        f"{url}/{member.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert by_admin.status_code == 403
    by_member = await client.patch(
        f"{url}/{member.id}", json={"role": "owner"}, headers=member.headers
    )
    assert by_member.status_code == 403
    bad = await client.patch(f"{url}/{member.id}", json={"role": "king"}, headers=owner.headers)
    assert bad.status_code == 422
    handed = await client.patch(f"{url}/{member.id}", json={"role": "owner"}, headers=owner.headers)
    assert handed.status_code == 200 and handed.json()["role"] == "owner"
    roles = {
        m["user"]["id"]: m["role"] for m in (await client.get(url, headers=owner.headers)).json()
    }
    assert roles == {owner.id: "admin", admin.id: "admin", member.id: "owner"}


async def test_delete_chat_by_owner_tells_members(live: Running, client: httpx.AsyncClient) -> None:
    owner, member = await make_user(client), await make_user(client)
    group = await make_group(client, owner, member)
    await send(client, member, group["id"], "soon gone")
    ws = await connect(live.ws_base, member)
    try:
        refused = await client.delete(f"{CHATS}/{group['id']}", headers=member.headers)
        assert refused.status_code == 403
        deleted = await client.delete(f"{CHATS}/{group['id']}", headers=owner.headers)
        assert deleted.status_code == 204
        removed = await recv_type(ws, "chat_removed")
        assert removed["chat_id"] == group["id"]
    finally:
        await ws.close()
    assert (await client.get(f"{CHATS}/{group['id']}", headers=owner.headers)).status_code == 404
    assert group["id"] not in [
        c["id"] for c in (await client.get(CHATS, headers=member.headers)).json()
    ]


async def test_general_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    general = next(
        c for c in (await client.get(CHATS, headers=me.headers)).json() if c["title"] == "general"
    )
    assert (await client.delete(f"{CHATS}/{general['id']}", headers=me.headers)).status_code == 403


async def test_direct_chat_cannot_be_renamed_or_grown(client: httpx.AsyncClient) -> None:
    a, b, c = await users(client, 3)
    direct = await make_direct(client, a, b)
    rename = await client.patch(f"{CHATS}/{direct['id']}", json={"title": "Us"}, headers=a.headers)
    assert rename.status_code in (403, 422)
    grow = await client.post(
        f"{CHATS}/{direct['id']}/members", json={"user_ids": [c.id]}, headers=a.headers
    )
    assert grow.status_code in (403, 422)


async def test_concurrent_direct_chats_of_a_pair_make_one(client: httpx.AsyncClient) -> None:
    a, b = await users(client, 2)
    responses = await asyncio.gather(
        *(
            client.post(CHATS, json={"type": "direct", "user_id": peer.id}, headers=me.headers)
            for me, peer in [(a, b), (b, a)] * 5
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [
        r.text for r in responses
    ]
    assert len({r.json()["id"] for r in responses}) == 1
    directs = [
        c for c in (await client.get(CHATS, headers=a.headers)).json() if c["type"] == "direct"
    ]
    assert len(directs) == 1 and directs[0]["member_count"] == 2


async def test_concurrent_joins_add_one_membership(client: httpx.AsyncClient) -> None:
    owner, me = await users(client, 2)
    channel = await make_group(client, owner, type="channel", title="Busy")
    responses = await asyncio.gather(
        *(client.post(f"{CHATS}/{channel['id']}/join", headers=me.headers) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    members = (await client.get(f"{CHATS}/{channel['id']}/members", headers=owner.headers)).json()
    assert sorted(m["user"]["id"] for m in members) == sorted([owner.id, me.id])
