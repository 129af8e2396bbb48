"""Two server processes on one PostgreSQL and one Redis: the send path's caches and presence
stay right when a change is made through the other process.

Each server has its own state (hub, caches, writer), as two processes would; they share
only the database and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from parley.server.accounts.service import promote_user
from parley.server.realtime import events
from tests.conftest import (
    REDIS_URL,
    Running,
    kill_client,
    need,
    no_cookies,
    start_server,
    stop_server,
    test_settings,
)
from tests.factories import (
    Account,
    connect,
    heard_before,
    is_of_chat,
    make_direct,
    make_group,
    make_user,
    no_frame,
    recv_type,
)
from tests.integration.test_backends import redis_problem, until
from tests.waiting import EventLog, capture_events, eventually, let_time_pass


@dataclass
class Pair:
    a: Running
    b: Running
    http_a: httpx.AsyncClient
    http_b: httpx.AsyncClient
    events_a: EventLog  # what A's hub received (through Redis): A has acted on these


@contextlib.asynccontextmanager
async def _servers(tmp_path: Path, pg_url: str, **a_only: object) -> AsyncIterator[Pair]:
    """Two servers on one database and one Redis (`a_only`: settings of A alone)."""
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    shared: dict[str, object] = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": REDIS_URL,
        "PARLEY_REDIS_PREFIX": f"parley-test-{uuid.uuid4().hex[:8]}:",
        "JWT_SECRET": "two-servers-" + uuid.uuid4().hex * 2,
    }
    a, server_a, task_a = await start_server(test_settings(tmp_path / "a", **shared | a_only))
    b, server_b, task_b = await start_server(test_settings(tmp_path / "b", **shared))
    try:
        async with (
            httpx.AsyncClient(base_url=a.base, cookies=no_cookies(), timeout=20) as http_a,
            httpx.AsyncClient(base_url=b.base, cookies=no_cookies(), timeout=20) as http_b,
        ):
            with capture_events(a) as events_a:
                yield Pair(a, b, http_a, http_b, events_a)
    finally:
        await stop_server(server_a, task_a)
        await stop_server(server_b, task_b)


@pytest.fixture
async def pair(tmp_path: Path, pg_url: str) -> AsyncIterator[Pair]:
    async with _servers(tmp_path, pg_url) as servers:
        yield servers


async def _send(http: httpx.AsyncClient, who: Account, chat_id: int, text: str) -> httpx.Response:
    return await http.post(
        f"/service/api/chats/{chat_id}/messages", json={"content": text}, headers=who.headers
    )


async def _ws_send(ws: Any, chat_id: int, text: str) -> dict[str, Any]:
    """Sends over a socket; the acknowledgement or the error frame."""
    client_id = uuid.uuid4().hex
    await ws.send(
        json.dumps({"type": "send", "chat_id": chat_id, "content": text, "client_id": client_id})
    )
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "error" and frame["ref"] == client_id:
                return dict(frame)
            if frame["type"] == "message" and frame["message"]["client_id"] == client_id:
                return dict(frame)


async def test_membership_change_through_b_takes_effect_on_a(pair: Pair) -> None:
    owner, member = await make_user(pair.http_a), await make_user(pair.http_a)
    chat = await make_group(pair.http_a, owner, member)
    ws = await connect(pair.a.ws_base, member)
    try:
        assert (await _ws_send(ws, chat["id"], "cached"))["type"] == "message"
        assert member.id in pair.a.state.checks.members[chat["id"]]  # A remembers it
        removed = await pair.http_b.delete(
            f"/service/api/chats/{chat['id']}/members/{member.id}", headers=owner.headers
        )
        assert removed.status_code == 204
        await pair.events_a.wait_for(events.MembershipChanged, chat_id=chat["id"], joined=False)
        refused = await _ws_send(ws, chat["id"], "after removal")
        assert refused["type"] == "error" and refused["code"] in {"chat_not_found", "not_member"}
        rest = await _send(pair.http_a, member, chat["id"], "after removal")
        assert rest.status_code in (403, 404)
        # and back in, through B again: A's next send goes through
        added = await pair.http_b.post(
            f"/service/api/chats/{chat['id']}/members",
            json={"user_ids": [member.id]},
            headers=owner.headers,
        )
        assert added.status_code in (200, 201, 204), added.text
        await pair.events_a.wait_for(
            events.MembershipChanged, chat_id=chat["id"], user_ids=[member.id], joined=True
        )
        assert (await _send(pair.http_a, member, chat["id"], "back")).status_code == 201
    finally:
        await ws.close()


async def test_role_change_through_b_reaches_a_cache(pair: Pair) -> None:
    owner, member = await make_user(pair.http_a), await make_user(pair.http_a)
    chat = await make_group(pair.http_a, owner, member)
    assert (await _send(pair.http_a, member, chat["id"], "warm")).status_code == 201
    assert pair.a.state.checks.members[chat["id"]][member.id].role == "member"
    changed = await pair.http_b.patch(
        f"/service/api/chats/{chat['id']}/members/{member.id}",
        json={"role": "admin"},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    await pair.events_a.wait_for(events.RolesChanged, chat_id=chat["id"])
    assert member.id not in pair.a.state.checks.members.get(chat["id"], {})
    assert (await _send(pair.http_a, member, chat["id"], "as admin")).status_code == 201
    assert pair.a.state.checks.members[chat["id"]][member.id].role == "admin"


async def test_ownership_inherited_through_b_reaches_a_cache(pair: Pair) -> None:
    """The owner leaves through B: the heir's `@all` on A mentions everyone at once."""
    owner, heir, later = [await make_user(pair.http_a) for _ in range(3)]
    chat = await make_group(pair.http_a, owner, heir)
    added = await pair.http_a.post(
        f"/service/api/chats/{chat['id']}/members",
        json={"user_ids": [later.id]},
        headers=owner.headers,
    )
    assert added.status_code == 200, added.text
    before = await _send(pair.http_a, heir, chat["id"], "@all before")
    assert before.json()["mentions"] == []
    assert pair.a.state.checks.members[chat["id"]][heir.id].role == "member"  # A remembers it
    left = await pair.http_b.delete(
        f"/service/api/chats/{chat['id']}/members/{owner.id}", headers=owner.headers
    )
    assert left.status_code == 204
    await until(lambda: heir.id not in pair.a.state.checks.members.get(chat["id"], {}))
    after = await _send(pair.http_a, heir, chat["id"], "@all after")
    assert after.json()["mentions"] == [later.id]
    assert pair.a.state.checks.members[chat["id"]][heir.id].role == "owner"


async def test_block_through_b_stops_the_next_send_on_a(pair: Pair) -> None:
    x, y = await make_user(pair.http_a), await make_user(pair.http_a)
    direct = await make_direct(pair.http_a, x, y)
    assert (await _send(pair.http_a, x, direct["id"], "hi")).status_code == 201
    blocked = await pair.http_b.post(
        "/service/api/block", json={"user_id": x.id}, headers=y.headers
    )
    assert blocked.status_code == 201
    await pair.events_a.wait_for(events.BlocksChanged, user_id=y.id, blocked=[x.id])
    refused = await _send(pair.http_a, x, direct["id"], "still there?")
    assert refused.status_code == 403 and refused.json()["code"] == "blocked"
    assert (
        await pair.http_b.delete(f"/service/api/block/{x.id}", headers=y.headers)
    ).status_code == 204
    await pair.events_a.wait_for(events.BlocksChanged, user_id=y.id, blocked=[])
    assert (await _send(pair.http_a, x, direct["id"], "friends again")).status_code == 201


async def test_ban_through_b_closes_a_socket_and_stops_its_sends(pair: Pair) -> None:
    admin, user = await make_user(pair.http_a), await make_user(pair.http_a)
    async with pair.a.state.sessions() as session:
        assert await promote_user(session, username=admin.username)
    chat = await make_group(pair.http_a, admin, user)
    ws = await connect(pair.a.ws_base, user)
    assert (await _ws_send(ws, chat["id"], "before"))["type"] == "message"
    banned = await pair.http_b.post(
        "/service/api/admin/bans", json={"user_id": user.id}, headers=admin.headers
    )
    assert banned.status_code == 201
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    assert pair.a.state.checks.bans.get(user.id) in (None, False) or user.id not in (
        pair.a.state.checks.bans
    )
    refused = await _send(pair.http_a, user, chat["id"], "banned?")
    assert refused.status_code == 403 and refused.json()["code"] == "user_banned"
    lifted = await pair.http_b.delete(f"/service/api/admin/bans/{user.id}", headers=admin.headers)
    assert lifted.status_code == 204
    await pair.events_a.wait_for(events.Unbanned, user_id=user.id)
    assert user.id not in pair.a.state.checks.bans
    assert (await _send(pair.http_a, user, chat["id"], "welcome back")).status_code == 201


async def test_profile_change_through_b_shows_in_a_next_message(pair: Pair) -> None:
    owner, member = await make_user(pair.http_a), await make_user(pair.http_a)
    chat = await make_group(pair.http_a, owner, member)
    first = (await _send(pair.http_a, member, chat["id"], "one")).json()
    assert first["sender"]["display_name"] == member.username
    renamed = await pair.http_b.patch(
        "/service/api/profile", json={"display_name": "New Name"}, headers=member.headers
    )
    assert renamed.status_code == 200
    await pair.events_a.wait_for(events.ProfileChanged, user_id=member.id)
    second = (await _send(pair.http_a, member, chat["id"], "two")).json()
    assert second["sender"]["display_name"] == "New Name"


async def test_presence_is_right_across_processes(pair: Pair) -> None:
    p, friend = await make_user(pair.http_a), await make_user(pair.http_a)
    await make_direct(pair.http_a, p, friend)
    watcher = await connect(pair.b.ws_base, friend)  # the friend is on B
    try:
        on_a = await connect(pair.a.ws_base, p)  # p comes online on A
        online = await recv_type(watcher, "presence")
        assert online["user_id"] == p.id and online["status"] == "online"

        async def seen_on_b() -> Any:
            return (
                await pair.http_b.get(f"/service/api/users/{p.id}", headers=friend.headers)
            ).json()["online"]

        # B knows, though p has no socket on B
        await eventually(seen_on_b, what=f"B to see user {p.id} online")
        on_b = await connect(pair.b.ws_base, p)
        await let_time_pass(1.2, "past the one-second coalescing window")
        await on_a.close()  # still online on B: nobody is told p went offline
        await no_frame(watcher, "presence", wait=1.5)
        assert (await pair.http_a.get(f"/service/api/users/{p.id}", headers=friend.headers)).json()[
            "online"
        ] is True
        await on_b.close()
        offline = await recv_type(watcher, "presence", timeout=5)
        assert offline["user_id"] == p.id and offline["status"] == "offline"

        async def offline_on_a() -> bool:
            seen = await pair.http_a.get(f"/service/api/users/{p.id}", headers=friend.headers)
            return seen.json()["online"] is False

        await eventually(offline_on_a, what=f"A to see user {p.id} offline")
    finally:
        await watcher.close()


async def test_a_process_started_later_learns_who_is_online(pair: Pair, tmp_path: Path) -> None:
    p, friend = await make_user(pair.http_a), await make_user(pair.http_a)
    await make_direct(pair.http_a, p, friend)
    ws = await connect(pair.a.ws_base, p)
    try:  # A shared p's presence in Redis before publishing it
        await pair.events_a.wait_for(events.PresenceChanged, user_id=p.id, online=True)
        settings = pair.a.settings.model_copy(update={"data_dir": tmp_path / "c"})
        c, server_c, task_c = await start_server(settings)
        try:
            async with httpx.AsyncClient(base_url=c.base, cookies=no_cookies()) as http_c:
                seen = await http_c.get(f"/service/api/users/{p.id}", headers=friend.headers)
                assert seen.json()["online"] is True
        finally:
            await stop_server(server_c, task_c)
    finally:
        await ws.close()


async def _page(http: httpx.AsyncClient, who: Account, chat_id: int) -> httpx.Response:
    return await http.get(f"/service/api/chats/{chat_id}/messages?limit=50", headers=who.headers)


async def test_history_page_changed_through_b_is_fresh_on_a(pair: Pair) -> None:
    owner, member = await make_user(pair.http_a), await make_user(pair.http_a)
    chat = await make_group(pair.http_a, owner, member)
    first = (await _send(pair.http_a, owner, chat["id"], "one")).json()
    assert [m["content"] for m in (await _page(pair.http_a, member, chat["id"])).json()] == ["one"]
    hits = pair.a.state.pages.hits
    await _page(pair.http_a, member, chat["id"])
    assert pair.a.state.pages.hits == hits + 1  # A serves it from memory now
    edited = await pair.http_b.patch(
        f"/service/api/messages/{first['id']}", json={"content": "uno"}, headers=owner.headers
    )
    assert edited.status_code == 200
    assert (await _send(pair.http_b, member, chat["id"], "two")).status_code == 201

    async def fresh_on_a() -> list[str]:
        page = (await _page(pair.http_a, member, chat["id"])).json()
        contents = [m["content"] for m in page]
        assert contents == ["uno", "two"]
        return contents

    await eventually(fresh_on_a, what="A's page to show the edit and the new message")
    renamed = await pair.http_b.patch(
        "/service/api/profile", json={"display_name": "Owner B"}, headers=owner.headers
    )
    assert renamed.status_code == 200
    await pair.events_a.wait_for(events.ProfileChanged, user_id=owner.id)
    page = (await _page(pair.http_a, member, chat["id"])).json()
    assert page[0]["sender"]["display_name"] == "Owner B"


async def test_logout_and_ban_through_b_refuse_the_next_page_on_a(pair: Pair) -> None:
    admin, user = await make_user(pair.http_a), await make_user(pair.http_a)
    async with pair.a.state.sessions() as session:
        assert await promote_user(session, username=admin.username)
    chat = await make_group(pair.http_a, admin, user)
    assert (await _page(pair.http_a, user, chat["id"])).status_code == 200
    assert (await _page(pair.http_a, admin, chat["id"])).status_code == 200
    banned = await pair.http_b.post(
        "/service/api/admin/bans", json={"user_id": user.id}, headers=admin.headers
    )
    assert banned.status_code == 201
    await pair.events_a.wait_for(events.SessionsEnded, user_id=user.id, banned=True)
    refused = await _page(pair.http_a, user, chat["id"])
    assert refused.status_code == 403 and refused.json()["code"] == "user_banned"
    out = await pair.http_b.post("/service/api/logout", headers=admin.headers)
    assert out.status_code == 204
    await pair.events_a.wait_for(events.SessionsEnded, user_id=admin.id)
    ended = await _page(pair.http_a, admin, chat["id"])
    assert ended.status_code == 401 and ended.json()["code"] == "unauthorized"


# --- a removed member hears nothing more, whatever the broker lost ----------------------


async def _marker_heard(pair: Pair, ws: Any, owner: Account, kept: int, chat: int) -> list[Any]:
    """Markers posted through B in `kept` until one reaches `ws` (whose process may be
    subscribing again); the frames of `chat` the socket got meanwhile."""
    heard: list[Any] = []
    markers: set[int] = set()
    async with asyncio.timeout(15):
        while True:
            markers.add((await _send(pair.http_b, owner, kept, "marker")).json()["id"])
            try:
                async with asyncio.timeout(1):
                    while True:
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "message" and frame["message"]["id"] in markers:
                            return heard
                        if is_of_chat(frame, chat):
                            heard.append(frame)
            except TimeoutError:
                continue  # lost while the process was not listening: another one


async def _group_of_two(pair: Pair) -> tuple[Account, Account, int, int]:
    """An owner, a member, the chat the member will lose and one it keeps."""
    owner, member = await make_user(pair.http_a), await make_user(pair.http_a)
    chat = await make_group(pair.http_a, owner, member)
    kept = await make_group(pair.http_a, owner, member, title="Kept")
    return owner, member, chat["id"], kept["id"]


async def test_a_removal_lost_by_a_dropped_subscription_still_silences_the_socket(
    tmp_path: Path, pg_url: str, redis_user: tuple[str, str]
) -> None:
    """A's subscription is killed, and Redis refuses A new connections (its ACL user is off)
    while the member is removed through B: A never hears of it. Once subscribed again, A
    re-checks its sockets: the member's socket there receives nothing more of the chat,
    and A refuses the member's sends."""
    url, name = redis_user
    admin = aioredis.Redis.from_url(REDIS_URL)
    async with _servers(tmp_path, pg_url, REDIS_URL=url) as pair:
        owner, member, chat, kept = await _group_of_two(pair)
        ws = await connect(pair.a.ws_base, member)
        try:
            assert (await _ws_send(ws, chat, "cached"))["type"] == "message"  # A's cache too
            await admin.execute_command("ACL", "SETUSER", name, "off")
            await kill_client(admin, f"parley-events-{pair.a.state.hub.process}")
            removed = await pair.http_b.delete(
                f"/service/api/chats/{chat}/members/{member.id}", headers=owner.headers
            )
            assert removed.status_code == 204
            await admin.execute_command("ACL", "SETUSER", name, "on")
            assert await _marker_heard(pair, ws, owner, kept, chat) == []
            await _send(pair.http_b, owner, chat, "after the removal")
            marker = (await _send(pair.http_b, owner, kept, "marker")).json()
            assert await heard_before(ws, marker["id"], chat) == []
            refused = await _ws_send(ws, chat, "still here?")
            assert refused["type"] == "error"
            assert refused["code"] in {"chat_not_found", "not_member"}
        finally:
            await admin.aclose()
            await ws.close()


@pytest.fixture
async def redis_user() -> AsyncIterator[tuple[str, str]]:
    """A Redis ACL user of this test alone (deleted after): a URL for it, and its name."""
    name, password = f"parley-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        await admin.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", "&*")
        await admin.execute_command("ACL", "SETUSER", name, "+@all")
    except Exception as exc:
        await admin.aclose()
        need("Redis ACL users", str(exc))
    url = urlsplit(REDIS_URL)
    netloc = f"{name}:{password}@{url.hostname}:{url.port or 6379}"
    try:
        yield urlunsplit(url._replace(netloc=netloc)), name
    finally:
        await admin.execute_command("ACL", "DELUSER", name)
        await admin.aclose()


async def test_a_removal_whose_publish_fails_still_silences_the_member(
    tmp_path: Path, pg_url: str, redis_user: tuple[str, str]
) -> None:
    """Redis refuses A's publishes (its ACL user loses PUBLISH) while the member is removed
    through A: A answers, its own socket of the member hears nothing more and A refuses the
    member's sends; once Redis takes A's publishes again every process resyncs, so B's
    socket of the member hears nothing more either, and B refuses its sends too."""
    url, name = redis_user
    settings = {"REDIS_URL": url, "PARLEY_BROKER_KEEPALIVE": 0.3}
    admin = aioredis.Redis.from_url(REDIS_URL)
    async with _servers(tmp_path, pg_url, **settings) as pair:
        owner, member, chat, kept = await _group_of_two(pair)
        ws_a, ws_b = await connect(pair.a.ws_base, member), await connect(pair.b.ws_base, member)
        try:
            assert (await _send(pair.http_a, member, chat, "cached")).status_code == 201
            assert await _marker_heard(pair, ws_a, owner, kept, chat) != []  # "cached"
            assert await _marker_heard(pair, ws_b, owner, kept, chat) != []
            await admin.execute_command("ACL", "SETUSER", name, "-publish")
            removed = await pair.http_a.delete(
                f"/service/api/chats/{chat}/members/{member.id}", headers=owner.headers
            )
            assert removed.status_code == 204, removed.text
            # the publish after the commit failed: a resync is owed (the publish is a task)
            await eventually(lambda: pair.a.state.broker.resync_due, what="a resync owed")
            assert (await _send(pair.http_a, owner, chat, "unpublished")).status_code == 201
            marker = (await _send(pair.http_a, owner, kept, "unpublished marker")).json()
            assert await heard_before(ws_a, marker["id"], chat) == []  # delivered on A alone
            refused = await _send(pair.http_a, member, chat, "still here?")
            assert refused.status_code in (403, 404), refused.text
            await admin.execute_command("ACL", "SETUSER", name, "+publish")
            await eventually(lambda: pair.b.state.hub.rechecks >= 1, 10, what="A's Resync at B")
            assert not pair.a.state.broker.resync_due
            await _send(pair.http_b, owner, chat, "after the resync")
            assert await _marker_heard(pair, ws_b, owner, kept, chat) == []
            refused = await _send(pair.http_b, member, chat, "and here?")
            assert refused.status_code in (403, 404), refused.text
        finally:
            await admin.aclose()
            await ws_a.close()
            await ws_b.close()
