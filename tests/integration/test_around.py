"""GET /chats/{id}/messages?around=SEQ: the page that opens at a message (both databases)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import make_group, make_user, send
from tests.integration.conftest import Crowded


async def around(http: httpx.AsyncClient, crowded: Crowded, seq: int, **params: Any) -> list[int]:
    response = await http.get(
        f"/service/api/chats/{crowded.chat['id']}/messages",
        params={"around": seq, **params},
        headers=crowded.member.headers,
    )
    assert response.status_code == 200, response.text
    return [m["seq"] for m in response.json()]


async def test_centred_on_the_seq(client: httpx.AsyncClient, crowded: Crowded) -> None:
    assert await around(client, crowded, 100, limit=5) == [98, 99, 100, 101, 102]
    assert await around(client, crowded, 100, limit=4) == [99, 100, 101, 102]
    assert await around(client, crowded, 100, limit=1) == [100]
    assert await around(client, crowded, 300) == list(range(276, 326))  # default limit 50


async def test_the_other_side_fills_in_at_the_ends(
    client: httpx.AsyncClient, crowded: Crowded
) -> None:
    assert await around(client, crowded, 2, limit=5) == [1, 2, 3, 4, 5]
    assert await around(client, crowded, crowded.count, limit=5) == list(
        range(crowded.count - 4, crowded.count + 1)
    )
    big = await around(client, crowded, 260, limit=1000)  # clamped to 200
    assert big == list(range(161, 361))


@pytest.mark.parametrize("extra", [{"before": 10}, {"after": 10}, {"offset": 5}])
async def test_around_with_before_or_after_is_422(
    client: httpx.AsyncClient, crowded: Crowded, extra: dict[str, int]
) -> None:
    response = await client.get(
        f"/service/api/chats/{crowded.chat['id']}/messages",
        params={"around": 100, **extra},
        headers=crowded.member.headers,
    )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_around_hides_what_history_hides(client: httpx.AsyncClient) -> None:
    me, friend, rude = [await make_user(client) for _ in range(3)]
    group = await make_group(client, me, friend, rude)
    for n in range(1, 7):
        await send(client, rude if n % 2 else friend, group["id"], f"m{n}")
    blocked = await client.post("/service/api/block", json={"user_id": rude.id}, headers=me.headers)
    assert blocked.status_code == 201
    response = await client.get(
        f"/service/api/chats/{group['id']}/messages",
        params={"around": 4, "limit": 3},
        headers=me.headers,
    )
    assert [m["content"] for m in response.json()] == ["m2", "m4", "m6"]
    stranger = await make_user(client)
    response = await client.get(
        f"/service/api/chats/{group['id']}/messages",
        params={"around": 4},
        headers=stranger.headers,
    )
    assert response.status_code == 404
