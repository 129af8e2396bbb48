"""Messages over HTTP on SQLite and PostgreSQL: send, idempotency, seq, history, edit, delete."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.conftest import Running
from tests.factories import Account, connect, make_group, make_user, recv_type, send, unique
from tests.integration.conftest import Crowded

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
CHATS = "/service/api/chats"
MESSAGES = "/service/api/messages"


async def post(
    http: httpx.AsyncClient, who: Account, chat_id: int, **body: object
) -> httpx.Response:
    return await http.post(f"{CHATS}/{chat_id}/messages", json=body, headers=who.headers)


async def history(
    http: httpx.AsyncClient, who: Account, chat_id: int, **params: object
) -> list[dict[str, object]]:
    response = await http.get(f"{CHATS}/{chat_id}/messages", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_send_counts_seq_up_by_one(client: httpx.AsyncClient) -> None:
    me, peer = await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    first = await post(client, me, group["id"], content="one")
    assert first.status_code == 201
    message = first.json()
    assert message["seq"] == 1 and message["chat_id"] == group["id"]
    assert message["sender"] == {"id": me.id, "username": me.username, "display_name": me.username}
    assert message["deleted"] is False and message["edited_at"] is None
    assert message["reply_to"] is None and message["client_id"] is None
    assert message["attachments"] == [] and message["reactions"] == []
    second = await send(client, peer, group["id"], "two")
    third = await send(client, me, group["id"], "three")
    assert (second["seq"], third["seq"]) == (2, 3)
    chat = (await client.get(f"{CHATS}/{group['id']}", headers=me.headers)).json()
    assert chat["last_seq"] == 3 and chat["last_message"]["id"] == third["id"]


async def test_content_is_trimmed_bounded_and_stored_verbatim(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    trimmed = await send(client, me, group["id"], "  \n hello\r\nworld \t ")
    assert trimmed["content"] == "hello\nworld"
    html = "<script>alert('x')</script> &amp; <b>bold</b>"
    assert (await send(client, me, group["id"], html))["content"] == html
    assert (await send(client, me, group["id"], "é" * 4000))["content"] == "é" * 4000
    for bad in ["", "   \n\t ", "x" * 4001, "nul\x00byte", "evil\u202eoverride"]:
        response = await post(client, me, group["id"], content=bad)
        assert response.status_code == 422, bad
        assert response.json()["code"] == "validation_error"
    stored = await history(client, me, group["id"])
    assert [m["content"] for m in stored] == ["hello\nworld", html, "é" * 4000]


async def test_resend_with_same_client_id_returns_the_first(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    first = await post(client, me, group["id"], content="once", client_id="c-1")
    again = await post(client, me, group["id"], content="once", client_id="c-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json() and first.json()["client_id"] == "c-1"
    assert len(await history(client, me, group["id"])) == 1


async def test_a_client_id_reused_in_another_chat_is_a_conflict(
    client: httpx.AsyncClient, live: Running
) -> None:
    """Nothing of the first chat's message comes back, nothing is stored in the second;
    in its own chat the client_id still makes a resend idempotent."""
    me, friend = await make_user(client), await make_user(client)
    private = await make_group(client, me, friend, title="Private")
    other = await make_group(client, me, title="Other")
    first = await post(client, me, private["id"], content="secret plans", client_id="c-1")
    assert first.status_code == 201
    liked = await client.post(
        f"{MESSAGES}/{first.json()['id']}/reactions", json={"emoji": "🤫"}, headers=friend.headers
    )
    assert liked.status_code == 200
    reused = await post(client, me, other["id"], content="hello", client_id="c-1")
    assert reused.status_code == 409
    assert reused.json() == {
        "detail": "This client_id belongs to a message of another chat",
        "code": "conflict",
    }
    ws = await connect(live.ws_base, me)
    try:
        send_frame = {"type": "send", "chat_id": other["id"], "content": "hi", "client_id": "c-1"}
        await ws.send(json.dumps(send_frame))
        error = await recv_type(ws, "error")
        assert error["code"] == "conflict" and error["ref"] == "c-1", error
        assert "secret" not in json.dumps(error) and "🤫" not in json.dumps(error)
        # Two sends of one new client_id to two chats, back to back (often one batch):
        # the first is stored, the second refused.
        for chat in (private, other):
            await ws.send(json.dumps(send_frame | {"chat_id": chat["id"], "client_id": "c-2"}))
        stored = await recv_type(ws, "message")
        assert stored["message"]["chat_id"] == private["id"]
        assert stored["message"]["client_id"] == "c-2"
        refused = await recv_type(ws, "error")
        assert refused["code"] == "conflict" and refused["ref"] == "c-2"
    finally:
        await ws.close()
    assert await history(client, me, other["id"]) == []
    again = await post(client, me, private["id"], content="secret plans", client_id="c-1")
    assert again.status_code == 200
    assert again.json() == liked.json()  # the first message, its reaction included
    assert [m["content"] for m in await history(client, me, private["id"])] == [
        "secret plans",
        "hi",
    ]


async def test_concurrent_resends_store_exactly_one(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    client_id = unique("cid-")
    responses = await asyncio.gather(
        *(post(client, me, group["id"], content="race", client_id=client_id) for _ in range(20))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["id"] for r in responses}) == 1
    stored = await history(client, me, group["id"])
    assert len(stored) == 1 and stored[0]["seq"] == 1
    chat = (await client.get(f"{CHATS}/{group['id']}", headers=me.headers)).json()
    assert chat["last_seq"] == 1


async def test_concurrent_senders_get_gapless_seqs(client: httpx.AsyncClient) -> None:
    owner = await make_user(client)
    senders = [await make_user(client) for _ in range(5)]
    group = await make_group(client, owner, *senders)
    per_sender = 12

    async def write(who: Account) -> list[int]:
        return [
            (await send(client, who, group["id"], f"{who.id}:{i}"))["seq"]
            for i in range(per_sender)
        ]

    seqs = await asyncio.gather(*(write(who) for who in senders))
    total = per_sender * len(senders)
    assert sorted(s for mine in seqs for s in mine) == list(range(1, total + 1))
    assert all(mine == sorted(mine) for mine in seqs)
    newest = await history(client, owner, group["id"])
    assert [m["seq"] for m in newest] == list(range(total - 49, total + 1))
    everything = await history(client, owner, group["id"], limit=200)
    assert [m["seq"] for m in everything] == list(range(1, total + 1))


async def test_history_pages_before_after_and_offset(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    for i in range(1, 11):
        await send(client, me, group["id"], f"m{i}")

    async def seqs(**params: object) -> list[object]:
        return [m["seq"] for m in await history(client, me, group["id"], **params)]

    assert await seqs() == list(range(1, 11))
    assert await seqs(limit=3) == [8, 9, 10]
    assert await seqs(before=5, limit=2) == [3, 4]
    assert await seqs(before=1) == []
    assert await seqs(after=7) == [8, 9, 10]
    assert await seqs(after=2, limit=3) == [3, 4, 5]
    assert await seqs(after=10) == []
    assert await seqs(offset=2, limit=3) == [6, 7, 8]
    for bad in ({"limit": 0}, {"limit": -1}, {"before": "x"}, {"offset": -1}):
        response = await client.get(
            f"{CHATS}/{group['id']}/messages", params=bad, headers=me.headers
        )
        assert response.status_code == 422, bad
        assert response.json()["code"] == "validation_error"


async def test_history_limit_is_clamped_to_200(client: httpx.AsyncClient, crowded: Crowded) -> None:
    page = await history(client, crowded.member, crowded.chat["id"], limit=1000)
    assert [m["seq"] for m in page] == list(range(crowded.count - 199, crowded.count + 1))
    older = await history(client, crowded.member, crowded.chat["id"], before=11, limit=500)
    assert [m["content"] for m in older] == [f"m{i}" for i in range(1, 11)]


async def test_history_and_messages_are_hidden_from_non_members(client: httpx.AsyncClient) -> None:
    me, stranger = await make_user(client), await make_user(client)
    group = await make_group(client, me)
    message = await send(client, me, group["id"], "private")
    listed = await client.get(f"{CHATS}/{group['id']}/messages", headers=stranger.headers)
    assert listed.status_code == 404 and listed.json()["code"] == "chat_not_found"
    one = await client.get(f"{MESSAGES}/{message['id']}", headers=stranger.headers)
    missing = await client.get(f"{MESSAGES}/2000000000", headers=stranger.headers)
    assert one.status_code == missing.status_code == 404 and one.json() == missing.json()
    mine = await client.get(f"{MESSAGES}/{message['id']}", headers=me.headers)
    assert mine.status_code == 200 and mine.json() == message
    for change in (
        client.patch(
            f"{MESSAGES}/{message['id']}", json={"content": "x"}, headers=stranger.headers
        ),
        client.delete(f"{MESSAGES}/{message['id']}", headers=stranger.headers),
    ):
        assert (await change).status_code == 404


@pytest.mark.parametrize(
    "extra",
    [{"sender": {"id": 1}}, {"sender_id": 1}, {"seq": 99}, {"created_at": "2020-01-01T00:00:00Z"}],
)
async def test_clients_cannot_set_server_fields(
    client: httpx.AsyncClient, extra: dict[str, object]
) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    response = await post(client, me, group["id"], content="hi", **extra)
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert await history(client, me, group["id"]) == []


async def test_reply_to_must_be_in_the_same_chat(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    here, there = await make_group(client, me), await make_group(client, me)
    target = await send(client, me, here["id"], "question")
    elsewhere = await send(client, me, there["id"], "other")
    reply = await send(client, me, here["id"], "answer", reply_to=target["id"])
    assert reply["reply_to"] == target["id"]
    for bad in (elsewhere["id"], 2_000_000_000):
        response = await post(client, me, here["id"], content="answer", reply_to=bad)
        assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_edit_is_for_the_author_only(client: httpx.AsyncClient) -> None:
    author, owner = await make_user(client), await make_user(client)
    group = await make_group(client, owner, author)
    message = await send(client, author, group["id"], "draft")
    url = f"{MESSAGES}/{message['id']}"
    edited = await client.patch(url, json={"content": "  final  "}, headers=author.headers)
    assert edited.status_code == 200
    body = edited.json()
    assert body["content"] == "final" and body["edited_at"] is not None
    assert body["seq"] == message["seq"] and body["created_at"] == message["created_at"]
    by_owner = await client.patch(url, json={"content": "mine"}, headers=owner.headers)
    assert by_owner.status_code == 403
    empty = await client.patch(url, json={"content": "  "}, headers=author.headers)
    assert empty.status_code == 422
    assert (await client.get(url, headers=owner.headers)).json()["content"] == "final"


async def test_delete_by_author_or_chat_manager(client: httpx.AsyncClient) -> None:
    owner, admin, author, other = [await make_user(client) for _ in range(4)]
    group = await make_group(client, owner, admin, author, other)
    await client.patch(
        f"{CHATS}/{group['id']}/members/{admin.id}", json={"role": "admin"}, headers=owner.headers
    )
    first, second, third = [await send(client, author, group["id"], f"m{i}") for i in range(3)]
    refused = await client.delete(f"{MESSAGES}/{first['id']}", headers=other.headers)
    assert refused.status_code == 403
    for who, message in ((author, first), (owner, second), (admin, third)):
        response = await client.delete(f"{MESSAGES}/{message['id']}", headers=who.headers)
        assert response.status_code == 204
    stored = await history(client, other, group["id"])
    # seq 1 is the notice of the admin's new role
    assert [(m["seq"], m["content"], m["deleted"]) for m in stored] == [
        (1, "", False),
        (2, "", True),
        (3, "", True),
        (4, "", True),
    ]
    assert stored[0]["kind"] == "notice"
    edit = await client.patch(
        f"{MESSAGES}/{first['id']}", json={"content": "back"}, headers=author.headers
    )
    assert edit.status_code == 409


async def test_concurrent_identical_reactions_count_once(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    message = await send(client, me, group["id"], "react to me")
    url = f"{MESSAGES}/{message['id']}/reactions"
    responses = await asyncio.gather(
        *(client.post(url, json={"emoji": "👍"}, headers=me.headers) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    stored = (await client.get(f"{MESSAGES}/{message['id']}", headers=me.headers)).json()
    assert stored["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [me.id]}]
