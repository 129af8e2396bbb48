"""Open WebSockets per user: PARLEY_MAX_SOCKETS_PER_USER, refused with 429 before the upgrade."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import Running
from tests.factories import Account, connect, make_user
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


async def _try_connect(live: Running, who: Account) -> Any:
    """An open socket past `hello`, or the handshake's refusal (InvalidStatus)."""
    try:
        return await connect(live.ws_base, who)
    except websockets.InvalidStatus as refused:
        return refused


async def test_one_account_cannot_open_more_than_its_sockets_even_all_at_once(
    live: Running, client: httpx.AsyncClient
) -> None:
    limit = live.settings.max_sockets_per_user
    assert limit == 20
    me, other = await make_user(client), await make_user(client)
    results = await asyncio.gather(*(_try_connect(live, me) for _ in range(limit + 6)))
    opened = [r for r in results if not isinstance(r, websockets.InvalidStatus)]
    refused = [r for r in results if isinstance(r, websockets.InvalidStatus)]
    try:
        assert len(opened) == limit
        assert len(refused) == 6
        for refusal in refused:
            assert refusal.response.status_code == 429
            body = json.loads(refusal.response.body)
            assert body["code"] == "rate_limited"
            assert str(limit) in body["detail"]
            assert refusal.response.headers["Retry-After"] == "5"
        # Another account is not affected, and the opened sockets still work.
        await (await connect(live.ws_base, other)).close()
        await opened[0].send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(opened[0].recv(), 5))["type"] == "pong"
        # A closed socket gives its slot back.
        await opened.pop().close()
        await eventually(
            lambda: live.state.hub.slots.by_user.get(me.id) == limit - 1, what="a slot back"
        )
        again = await connect(live.ws_base, me)
        opened.append(again)
        refusal = await _try_connect(live, me)
        assert isinstance(refusal, websockets.InvalidStatus)
        assert refusal.response.status_code == 429
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))
    await eventually(lambda: me.id not in live.state.hub.slots.by_user, what="every slot back")
