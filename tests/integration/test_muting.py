"""Per-member chat settings: PATCH /chats/{id}/settings {muted_until} (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.conftest import Running
from tests.factories import Account, connect, make_group, make_user, no_frame, recv_type

API = "/service/api"


async def mute(
    http: httpx.AsyncClient, who: Account, chat_id: int, body: dict[str, Any]
) -> httpx.Response:
    return await http.patch(f"{API}/chats/{chat_id}/settings", json=body, headers=who.headers)


async def listed(http: httpx.AsyncClient, who: Account, chat_id: int) -> dict[str, Any]:
    response = await http.get(f"{API}/chats", headers=who.headers)
    return next(c for c in response.json() if c["id"] == chat_id)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_mute_forever_until_a_time_and_unmute(client: httpx.AsyncClient) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    assert (await listed(client, me, group["id"]))["muted_until"] is None
    response = await mute(client, me, group["id"], {"muted_until": "forever"})
    assert response.status_code == 200, response.text
    assert response.json()["muted_until"] == "forever" and response.json()["id"] == group["id"]
    assert (await listed(client, me, group["id"]))["muted_until"] == "forever"
    assert (await listed(client, other, group["id"]))["muted_until"] is None  # per member
    until = datetime.now(UTC) + timedelta(hours=1)
    response = await mute(client, me, group["id"], {"muted_until": until.isoformat()})
    assert parse(response.json()["muted_until"]) == until
    later = until + timedelta(minutes=5)
    in_moscow = later.astimezone(timezone(timedelta(hours=3))).isoformat()
    response = await mute(client, me, group["id"], {"muted_until": in_moscow})
    shown = response.json()["muted_until"]
    assert shown.endswith("Z") and parse(shown) == later  # another zone in, UTC out
    fetched = await client.get(f"{API}/chats/{group['id']}", headers=me.headers)
    assert fetched.json()["muted_until"] == shown
    response = await mute(client, me, group["id"], {"muted_until": None})
    assert response.status_code == 200 and response.json()["muted_until"] is None
    assert (await listed(client, me, group["id"]))["muted_until"] is None


async def test_a_past_time_unmutes(client: httpx.AsyncClient) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    await mute(client, me, group["id"], {"muted_until": "forever"})
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await mute(client, me, group["id"], {"muted_until": past})
    assert response.status_code == 200 and response.json()["muted_until"] is None
    assert (await listed(client, me, group["id"]))["muted_until"] is None


async def test_an_empty_body_changes_nothing(client: httpx.AsyncClient) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    await mute(client, me, group["id"], {"muted_until": "forever"})
    response = await mute(client, me, group["id"], {})
    assert response.status_code == 200 and response.json()["muted_until"] == "forever"


@pytest.mark.parametrize(
    "value",
    [
        "tomorrow",
        "Forever",
        "2030-01-01T10:00:00",  # no offset: which zone?
        "2030-01-01",
        1893456000,
        True,
        {"at": "2030-01-01T10:00:00Z"},
    ],
)
async def test_invalid_values_are_422(client: httpx.AsyncClient, value: object) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    response = await mute(client, me, group["id"], {"muted_until": value})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error" and response.json()["detail"]


async def test_unknown_settings_are_422(client: httpx.AsyncClient) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    response = await mute(client, me, group["id"], {"muted_until": None, "sound": "off"})
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_members_only(client: httpx.AsyncClient) -> None:
    owner, member, stranger = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, member)
    response = await mute(client, stranger, group["id"], {"muted_until": "forever"})
    assert response.status_code == 404 and response.json()["code"] == "chat_not_found"
    channel = await make_group(client, owner, type="channel", title="Open")
    response = await mute(client, stranger, channel["id"], {"muted_until": "forever"})
    assert response.status_code == 403 and response.json()["code"] == "not_member"
    response = await mute(client, stranger, 987654321, {"muted_until": "forever"})
    assert response.status_code == 404 and response.json()["code"] == "chat_not_found"
    assert (await listed(client, owner, group["id"]))["muted_until"] is None


async def test_the_change_reaches_my_other_sockets_only(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    mine, theirs = await connect(live.ws_base, me), await connect(live.ws_base, other)
    try:
        await mute(client, me, group["id"], {"muted_until": "forever"})
        chat = (await recv_type(mine, "chat_updated"))["chat"]
        assert chat["id"] == group["id"] and chat["muted_until"] == "forever"
        assert chat["mention_count"] == 0 and chat["my_role"] == "owner"
        await no_frame(theirs, "chat_updated")
        await mute(client, me, group["id"], {"muted_until": "forever"})  # no change: no frame
        await no_frame(mine, "chat_updated")
        await mute(client, me, group["id"], {"muted_until": None})
        assert (await recv_type(mine, "chat_updated"))["chat"]["muted_until"] is None
    finally:
        await mine.close()
        await theirs.close()
