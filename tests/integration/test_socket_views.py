"""What a socket hears is what the database says, even for a socket whose handshake raced
with the change: once a removal, a block or a ban has answered, none of that user's sockets
receives anything more of it.

Silence is proven by order, never by waiting: after the change, a message goes where the
user must hear nothing, then a marker where it still hears; each socket must get the
marker and nothing of the first before it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import Running
from tests.factories import (
    Account,
    connect,
    heard_before,
    make_group,
    make_user,
    recv_type,
    send,
)

ROUNDS = 12  # of the removal; blocks and bans take the same path, in fewer rounds
FEWER = 6
SOCKETS = 15  # opened at once, while the change is made


async def _open_during(
    live: Running, who: Account, change: Any, *, refused: int | None = None
) -> tuple[httpx.Response, list[Any]]:
    """Opens SOCKETS sockets for `who` while `change` runs; its answer and the sockets
    opened (those the handshake refused with the status `refused` left out)."""
    opening = [asyncio.create_task(connect(live.ws_base, who)) for _ in range(SOCKETS)]
    answer = await change
    sockets = []
    for opened in await asyncio.gather(*opening, return_exceptions=True):
        if isinstance(opened, InvalidStatus) and opened.response.status_code == refused:
            continue  # opened after the change: refused at the handshake, as it must be
        assert not isinstance(opened, BaseException), opened
        sockets.append(opened)
    # A socket is indexed in the hub after its upgrade answers (the client's `sync` covers
    # the messages in between); its first `pong` comes after that, so what follows is live.
    for ws in sockets if refused is None else ():
        await ws.send(json.dumps({"type": "ping"}))
        await recv_type(ws, "pong")
    return answer, sockets


async def _close(sockets: list[Any]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets))


async def test_sockets_opened_during_a_removal_hear_nothing_after_it(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner = await make_user(client)
    for _ in range(ROUNDS):
        member = await make_user(client)
        chat = await make_group(client, owner, member)
        kept = await make_group(client, owner, member, title="Kept")
        removal = client.delete(
            f"/service/api/chats/{chat['id']}/members/{member.id}", headers=owner.headers
        )
        removed, sockets = await _open_during(live, member, removal)
        try:
            assert removed.status_code == 204, removed.text
            await send(client, owner, chat["id"], "after the removal")
            marker = await send(client, owner, kept["id"], "marker")
            for ws in sockets:
                assert await heard_before(ws, marker["id"], chat["id"]) == []
        finally:
            await _close(sockets)
        history = await client.get(
            f"/service/api/chats/{chat['id']}/messages", headers=member.headers
        )
        assert history.status_code == 404


async def test_sockets_opened_during_a_block_hear_nothing_of_the_blocked(
    live: Running, client: httpx.AsyncClient
) -> None:
    owner = await make_user(client)
    for _ in range(FEWER):
        blocker, blocked = await make_user(client), await make_user(client)
        chat = await make_group(client, owner, blocker, blocked)
        block = client.post(
            "/service/api/block", json={"user_id": blocked.id}, headers=blocker.headers
        )
        answer, sockets = await _open_during(live, blocker, block)
        try:
            assert answer.status_code == 201, answer.text
            hidden = await send(client, blocked, chat["id"], "from the blocked")
            marker = await send(client, owner, chat["id"], "marker")
            for ws in sockets:
                heard = await heard_before(ws, marker["id"], chat["id"])
                assert [f for f in heard if f.get("message", {}).get("id") == hidden["id"]] == []
        finally:
            await _close(sockets)


async def test_sockets_opened_during_a_ban_are_closed(
    live: Running, client: httpx.AsyncClient
) -> None:
    admin = await make_user(client)
    async with live.state.sessions() as session:
        from parley.server.accounts.service import promote_user

        assert await promote_user(session, username=admin.username)
    for _ in range(FEWER):
        user = await make_user(client)
        chat = await make_group(client, admin, user)
        ban = client.post(
            "/service/api/admin/bans", json={"user_id": user.id}, headers=admin.headers
        )
        answer, sockets = await _open_during(live, user, ban, refused=403)
        try:
            assert answer.status_code == 201, answer.text
            await send(client, admin, chat["id"], "after the ban")
            for ws in sockets:
                assert await _close_code(ws) == 4003
        finally:
            await _close(sockets)
        lifted = await client.delete(f"/service/api/admin/bans/{user.id}", headers=admin.headers)
        assert lifted.status_code == 204


async def _close_code(ws: Any) -> int | None:
    """How the server closed the socket; every frame before the close must be harmless."""
    try:
        async with asyncio.timeout(10):
            while True:
                frame = await ws.recv()
                assert '"type":"message"' not in frame.replace(" ", ""), frame
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
