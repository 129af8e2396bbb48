"""Presence of mind: status and do-not-disturb (with their expiry by the worker), notify
levels, drafts, read markers and read-receipt sharing, scheduled messages. SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from parley.server.db.models import Membership, User
from parley.server.workers import send_scheduled, sweep_minds
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
from tests.fake_clock import FakeClock
from tests.waiting import eventually


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ahead(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def profile(client: httpx.AsyncClient, who: Account, **body: Any) -> httpx.Response:
    return await client.patch("/service/api/profile", json=body, headers=who.headers)


async def settings(
    client: httpx.AsyncClient, who: Account, chat_id: int, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"/service/api/chats/{chat_id}/settings", json=body, headers=who.headers
    )


async def chat_of(client: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    answer = await client.get(f"/service/api/chats/{chat_id}", headers=who.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# --- status and do not disturb ---------------------------------------------------------------


async def test_a_status_is_validated_like_user_text(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    bad = [
        {"emoji": "🍔", "text": "x" * 101},
        {"text": "zero\u200bwidth"},
        {"text": "bidi \u202etrick"},
        {"text": "bell \x07"},
        {"emoji": "abc", "text": "not an emoji"},
        {"emoji": None, "text": ""},
        {"text": "over", "until": iso(ahead(hours=-1))},
        {"text": "a number is no time", "until": 1700000000},
        {"text": "unknown field", "color": "red"},
    ]
    for status in bad:
        answer = await profile(client, me, status=status)
        assert answer.status_code == 422, (status, answer.text)
        assert answer.json()["code"] == "validation_error" and answer.json()["detail"]
    until = ahead(hours=1)
    good = await profile(client, me, status={"emoji": "🍔", "text": " Lunch ", "until": iso(until)})
    assert good.status_code == 200, good.text
    status = good.json()["status"]
    assert status["emoji"] == "🍔" and status["text"] == "Lunch"
    assert datetime.fromisoformat(status["until"]) == until.replace(microsecond=until.microsecond)
    assert good.json()["share_read_receipts"] is True
    family = await profile(client, me, status={"emoji": "👨\u200d👩\u200d👧", "text": "x" * 100})
    assert family.status_code == 200 and family.json()["status"]["until"] is None
    other = await make_user(client)
    seen = (await client.get(f"/service/api/users/{me.id}", headers=other.headers)).json()
    assert seen["status"]["emoji"] == "👨\u200d👩\u200d👧" and "share_read_receipts" not in seen
    cleared = await profile(client, me, status=None)
    assert cleared.json()["status"] is None
    untouched = await profile(client, me, bio="still no status")
    assert untouched.json()["status"] is None and untouched.json()["dnd_until"] is None


async def test_dnd_and_status_end_by_the_worker_and_are_announced(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, peer = await make_user(client), await make_user(client)
    await make_direct(client, me, peer)
    until = ahead(minutes=30)
    answer = await profile(client, me, status={"emoji": "🌴", "text": "Away"}, dnd_until=iso(until))
    assert answer.json()["dnd_until"] is not None
    answer = await profile(client, me, status={"emoji": "🌴", "text": "Away", "until": iso(until)})
    assert answer.json()["status"]["until"] is not None
    ws_peer, ws_me = await connect(live.ws_base, peer), await connect(live.ws_base, me)
    try:
        early = FakeClock(start=until - timedelta(minutes=1))
        await sweep_minds(live.state.sessions, live.state.broker, early, max_group=100)
        still = (await client.get("/service/api/profile", headers=me.headers)).json()
        assert still["status"]["text"] == "Away" and still["dnd_until"] is not None
        later = FakeClock(start=until + timedelta(seconds=1))
        ended = await sweep_minds(live.state.sessions, live.state.broker, later, max_group=100)
        assert ended >= 1
        for ws in (ws_peer, ws_me):
            frame = await recv_type(ws, "user_updated")
            assert frame["user"]["id"] == me.id
            assert frame["user"]["status"] is None and frame["user"]["dnd_until"] is None
        gone = (await client.get("/service/api/profile", headers=me.headers)).json()
        assert gone["status"] is None and gone["dnd_until"] is None
    finally:
        await ws_peer.close()
        await ws_me.close()


async def test_a_status_change_reaches_direct_and_small_group_peers_only(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, direct_peer, group_peer, stranger = [await make_user(client) for _ in range(4)]
    await make_direct(client, me, direct_peer)
    await make_group(client, me, group_peer)
    await make_direct(client, stranger, direct_peer)  # shares only `general` with me
    sockets = [await connect(live.ws_base, a) for a in (direct_peer, group_peer, stranger)]
    try:
        await profile(client, me, status={"emoji": "🎧", "text": "Focus"})
        for ws in sockets[:2]:
            frame = await recv_type(ws, "user_updated")
            assert frame["user"]["id"] == me.id and frame["user"]["status"]["text"] == "Focus"
            assert "email" not in frame["user"] and "share_read_receipts" not in frame["user"]
        # the stranger hears the direct peer's change next, so mine never came to it
        await profile(client, direct_peer, status={"emoji": "☕"})
        frame = await recv_type(sockets[2], "user_updated")
        assert frame["user"]["id"] == direct_peer.id
    finally:
        for ws in sockets:
            await ws.close()


# --- notify levels and drafts ------------------------------------------------------------------


async def test_notify_defaults_by_chat_type_and_settings_reach_my_other_socket(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, peer = await make_user(client), await make_user(client)
    direct = await make_direct(client, me, peer)
    group = await make_group(client, me, peer)
    channel = await make_group(client, me, peer, type="channel", title="News")
    assert (direct["notify"], group["notify"], channel["notify"]) == ("all", "all", "mentions")
    listed = {
        c["id"]: c for c in (await client.get("/service/api/chats", headers=me.headers)).json()
    }
    assert listed[channel["id"]]["notify"] == "mentions" and listed[direct["id"]]["draft"] is None
    ws = await connect(live.ws_base, me)
    try:
        changed = await settings(client, me, group["id"], notify="none")
        assert changed.status_code == 200 and changed.json()["notify"] == "none"
        assert changed.json()["muted_until"] is None
        frame = await recv_type(ws, "chat_updated")
        assert frame["chat"]["id"] == group["id"] and frame["chat"]["notify"] == "none"
    finally:
        await ws.close()
    assert (await chat_of(client, peer, group["id"]))["notify"] == "all"  # mine only
    both = await settings(client, me, channel["id"], notify="all", muted_until="forever")
    assert both.json()["notify"] == "all" and both.json()["muted_until"] == "forever"
    back = await settings(client, me, channel["id"], notify=None)
    assert back.json()["notify"] == "mentions" and back.json()["muted_until"] == "forever"
    wrong = await settings(client, me, group["id"], notify="loud")
    assert wrong.status_code == 422 and wrong.json()["code"] == "validation_error"
    stranger = await make_user(client)
    hidden = await settings(client, stranger, group["id"], notify="all")
    assert hidden.status_code == 404


async def test_drafts_are_kept_bounded_and_reach_my_other_socket(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, peer = await make_user(client), await make_user(client)
    group = await make_group(client, me, peer)
    url = f"/service/api/chats/{group['id']}/draft"
    ws = await connect(live.ws_base, me)
    try:
        put = await client.put(url, json={"content": "half a thought\n"}, headers=me.headers)
        assert put.status_code == 204 and put.content == b""
        frame = await recv_type(ws, "chat_updated")
        assert frame["chat"]["draft"]["content"] == "half a thought\n"
    finally:
        await ws.close()
    draft = (await chat_of(client, me, group["id"]))["draft"]
    assert draft["content"] == "half a thought\n" and draft["updated_at"]
    assert (await chat_of(client, peer, group["id"]))["draft"] is None
    listed = (await client.get("/service/api/chats", headers=me.headers)).json()
    assert [c["draft"]["content"] for c in listed if c["id"] == group["id"]] == ["half a thought\n"]
    assert (
        await client.put(url, json={"content": "x" * 4000}, headers=me.headers)
    ).status_code == 204
    for bad in ("x" * 4001, "bidi \u202e", "nul \x00"):
        answer = await client.put(url, json={"content": bad}, headers=me.headers)
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error"
    assert (await chat_of(client, me, group["id"]))["draft"]["content"] == "x" * 4000
    cleared = await client.put(url, json={"content": ""}, headers=me.headers)
    assert cleared.status_code == 204
    assert (await chat_of(client, me, group["id"]))["draft"] is None
    stranger = await make_user(client)
    hidden = await client.put(url, json={"content": "hi"}, headers=stranger.headers)
    assert hidden.status_code == 404 and hidden.json()["code"]


# --- read receipts ---------------------------------------------------------------------------


async def read(client: httpx.AsyncClient, who: Account, chat_id: int, seq: int) -> None:
    answer = await client.post(
        f"/service/api/chats/{chat_id}/read", json={"seq": seq}, headers=who.headers
    )
    assert answer.status_code == 204


async def test_read_markers_show_others_who_share(client: httpx.AsyncClient) -> None:
    me, reader, idle = [await make_user(client) for _ in range(3)]
    group = await make_group(client, me, reader, idle)
    await send(client, me, group["id"], "one")
    await send(client, me, group["id"], "two")
    await read(client, me, group["id"], 2)
    await read(client, reader, group["id"], 1)
    # my own marker is not listed, nor a member who has read nothing
    assert (await chat_of(client, me, group["id"]))["read_markers"] == [
        {"user_id": reader.id, "seq": 1}
    ]
    assert (await chat_of(client, reader, group["id"]))["read_markers"] == [
        {"user_id": me.id, "seq": 2}
    ]


async def test_a_reader_outside_a_public_channel_sees_no_read_markers(
    client: httpx.AsyncClient,
) -> None:
    owner, member, outsider = [await make_user(client) for _ in range(3)]
    channel = await make_group(client, owner, member, type="channel", title="Open")
    await send(client, owner, channel["id"], "news")
    await read(client, member, channel["id"], 1)
    assert (await chat_of(client, owner, channel["id"]))["read_markers"] == [
        {"user_id": member.id, "seq": 1}
    ]
    seen = await chat_of(client, outsider, channel["id"])
    assert seen["my_role"] is None and seen["read_markers"] == []


async def test_not_sharing_read_receipts_works_in_all_three_directions(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, private, other = [await make_user(client) for _ in range(3)]
    group = await make_group(client, me, private, other)
    turned = await profile(client, private, share_read_receipts=False)
    assert turned.json()["share_read_receipts"] is False
    await send(client, me, group["id"], "one")
    ws_me = await connect(live.ws_base, me)
    ws_private = await connect(live.ws_base, private)
    try:
        await read(client, private, group["id"], 1)
        own = await recv_type(ws_private, "read")  # its own sockets still hear it
        assert own == {"type": "read", "chat_id": group["id"], "user_id": private.id, "seq": 1}
        await read(client, other, group["id"], 1)
        heard = await recv_type(ws_me, "read")  # the private read came to nobody else
        assert heard["user_id"] == other.id
        await read(client, me, group["id"], 1)
        # nor does the private user hear others': its next read frame is its own
        await read(client, private, group["id"], 1)
        await send(client, other, group["id"], "two")
        await read(client, private, group["id"], 2)
        assert (await recv_type(ws_private, "read"))["user_id"] == private.id
    finally:
        await ws_me.close()
        await ws_private.close()
    # (sending "two" moved its sender's marker too)
    assert (await chat_of(client, me, group["id"]))["read_markers"] == [
        {"user_id": other.id, "seq": 2}
    ]
    assert (await chat_of(client, private, group["id"]))["read_markers"] == []
    again = await profile(client, private, share_read_receipts=True)
    assert again.json()["share_read_receipts"] is True
    markers = (await chat_of(client, me, group["id"]))["read_markers"]
    assert {"user_id": private.id, "seq": 2} in markers


async def test_no_read_markers_above_100_members(client: httpx.AsyncClient, live: Running) -> None:
    me, reader = await make_user(client), await make_user(client)
    group = await make_group(client, me, reader)
    await send(client, me, group["id"], "hello crowd")
    await read(client, reader, group["id"], 1)
    assert len((await chat_of(client, me, group["id"]))["read_markers"]) == 1
    names = [unique("crowd") for _ in range(99)]
    async with live.state.sessions() as session:
        rows = [
            {
                "username": n, "username_key": n, "email": f"{n}@example.com",
                "email_key": f"{n}@example.com", "password_hash": "-", "display_name": n,
            }
            for n in names
        ]  # fmt: skip
        ids = (await session.execute(insert(User).returning(User.id), rows)).scalars().all()
        await session.execute(
            insert(Membership), [{"chat_id": group["id"], "user_id": i} for i in ids]
        )
        await session.commit()
    crowded = await chat_of(client, me, group["id"])
    assert crowded["member_count"] == 101 and crowded["read_markers"] == []
    # nor does a read marker moving reach the others: only the reader's own sockets
    await send(client, me, group["id"], "still here")
    ws_me = await connect(live.ws_base, me)
    ws_reader = await connect(live.ws_base, reader)
    try:
        await read(client, reader, group["id"], 2)
        own = await recv_type(ws_reader, "read")
        assert own == {"type": "read", "chat_id": group["id"], "user_id": reader.id, "seq": 2}
        await send(client, reader, group["id"], "and a message")  # what me hears next
        async with asyncio.timeout(5):
            while (frame := json.loads(await ws_me.recv()))["type"] not in ("message", "read"):
                pass
        assert frame["type"] == "message", frame  # no `read` of the reader's came first
    finally:
        await ws_me.close()
        await ws_reader.close()


# --- scheduled messages ------------------------------------------------------------------------


async def schedule(
    client: httpx.AsyncClient, who: Account, chat_id: int, content: str, send_at: datetime
) -> httpx.Response:
    return await client.post(
        f"/service/api/chats/{chat_id}/messages",
        json={"content": content, "send_at": iso(send_at)},
        headers=who.headers,
    )


async def test_scheduling_answers_202_and_only_the_author_sees_it(
    client: httpx.AsyncClient,
) -> None:
    me, peer = await make_user(client), await make_user(client)
    chat = await make_direct(client, me, peer)
    when = ahead(days=300)
    answer = await schedule(client, me, chat["id"], "  later  ", when)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert set(body) == {"id", "chat_id", "content", "send_at"}
    assert body["chat_id"] == chat["id"] and body["content"] == "later"
    assert datetime.fromisoformat(body["send_at"]) == when
    mine = (await client.get("/service/api/scheduled", headers=me.headers)).json()
    assert mine == [body]
    assert (await client.get("/service/api/scheduled", headers=peer.headers)).json() == []
    history = await client.get(f"/service/api/chats/{chat['id']}/messages", headers=me.headers)
    assert history.json() == []
    for who, code in ((peer, 404), (me, 200)):
        seen = await client.patch(
            f"/service/api/scheduled/{body['id']}", json={"content": "x"}, headers=who.headers
        )
        assert seen.status_code == code
    gone = await client.delete(f"/service/api/scheduled/{body['id']}", headers=peer.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "scheduled_not_found"


async def test_scheduling_limits(client: httpx.AsyncClient) -> None:
    me, peer = await make_user(client), await make_user(client)
    chat = await make_direct(client, me, peer)
    for when in (ahead(days=366), ahead(minutes=-1)):
        answer = await schedule(client, me, chat["id"], "when?", when)
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error"
    assert (await schedule(client, me, chat["id"], "ok", ahead(days=364))).status_code == 202
    stranger = await make_user(client)
    refused = await schedule(client, stranger, chat["id"], "not mine", ahead(days=1))
    assert refused.status_code == 404
    blank = await schedule(client, me, chat["id"], "   ", ahead(days=1))
    assert blank.status_code == 422


async def test_edit_and_delete_a_scheduled_message(client: httpx.AsyncClient) -> None:
    me, peer = await make_user(client), await make_user(client)
    chat = await make_direct(client, me, peer)
    made = (await schedule(client, me, chat["id"], "draft one", ahead(days=200))).json()
    url = f"/service/api/scheduled/{made['id']}"
    when = ahead(days=201)
    edited = await client.patch(
        url, json={"content": "final", "send_at": iso(when)}, headers=me.headers
    )
    assert edited.status_code == 200
    assert edited.json()["content"] == "final"
    assert datetime.fromisoformat(edited.json()["send_at"]) == when
    too_far = await client.patch(url, json={"send_at": iso(ahead(days=400))}, headers=me.headers)
    assert too_far.status_code == 422
    assert (await client.delete(url, headers=me.headers)).status_code == 204
    assert (await client.get("/service/api/scheduled", headers=me.headers)).json() == []
    assert (await client.delete(url, headers=me.headers)).status_code == 404


async def test_the_worker_sends_a_scheduled_message_at_its_time(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, peer = await make_user(client), await make_user(client)
    chat = await make_direct(client, me, peer)
    ws = await connect(live.ws_base, peer)
    try:
        made = (await schedule(client, me, chat["id"], "on time", ahead(seconds=1))).json()
        frame = await recv_type(ws, "message", timeout=10)
        message = frame["message"]
        assert message["content"] == "on time" and message["sender"]["id"] == me.id
        assert message["chat_id"] == chat["id"] and message["seq"] == 1
    finally:
        await ws.close()

    async def none_left() -> bool:
        listed = await client.get("/service/api/scheduled", headers=me.headers)
        return listed.json() == []

    await eventually(none_left, what="the sent message to leave the scheduled list")
    again = await send_scheduled(
        live.state.sessions, live.state.writer, live.state.checks, live.state.throttle,
        live.state.broker, FakeClock(start=ahead(seconds=30)),
    )  # fmt: skip
    assert again >= 0
    history = await client.get(f"/service/api/chats/{chat['id']}/messages", headers=peer.headers)
    assert [m["content"] for m in history.json()] == ["on time"]
    assert made["id"]


async def test_a_scheduled_message_is_dropped_when_its_author_left(
    client: httpx.AsyncClient, live: Running
) -> None:
    owner, me = await make_user(client), await make_user(client)
    group = await make_group(client, owner, me)
    when = ahead(minutes=20)
    made = (await schedule(client, me, group["id"], "too late", when)).json()
    removed = await client.delete(
        f"/service/api/chats/{group['id']}/members/{me.id}", headers=owner.headers
    )
    assert removed.status_code == 204
    ws = await connect(live.ws_base, me)
    try:
        sent = await send_scheduled(
            live.state.sessions, live.state.writer, live.state.checks, live.state.throttle,
            live.state.broker, FakeClock(start=when + timedelta(seconds=1)),
        )  # fmt: skip
        assert sent >= 1
        frame = await recv_type(ws, "error")
        assert frame["code"] == "not_member" and frame["ref"] == made["id"] and frame["detail"]
    finally:
        await ws.close()
    assert (await client.get("/service/api/scheduled", headers=me.headers)).json() == []
    history = await client.get(f"/service/api/chats/{group['id']}/messages", headers=owner.headers)
    assert "too late" not in json.dumps(history.json())


async def test_status_and_dnd_are_builtin_commands(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    group = await make_group(client, me)
    listed = await client.get(f"/service/api/chats/{group['id']}/commands", headers=me.headers)
    names = [c["command"] for c in listed.json()]
    assert "/status" in names and "/dnd" in names
