"""The audit entries of the acts not covered in test_trust_admin.py, on SQLite and PostgreSQL:
instance settings (registration, server-wide retention), admin invites, chat invite links and
bot token rotations. Each entry is read back through GET /service/api/admin/audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from parley.server.accounts.service import promote_user
from tests.conftest import Running, no_cookies
from tests.factories import Account, make_group, make_user

SETTINGS = "/service/api/admin/settings"


@pytest.fixture
async def admin(live: Running) -> Account:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        account = await make_user(http)
    async with live.state.sessions() as session:
        assert await promote_user(session, username=account.username)
    return account


@pytest.fixture
async def restore_settings(live: Running, admin: Account) -> AsyncIterator[None]:
    """The live server is shared: its settings go back to the environment's afterwards."""
    yield
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        body = {"registration": "open", "retention_days": None}
        answer = await http.patch(SETTINGS, json=body, headers=admin.headers)
        assert answer.status_code == 200, answer.text


async def entries(
    http: httpx.AsyncClient, admin: Account, *, actor: int, action: str
) -> list[dict[str, Any]]:
    answer = await http.get(
        "/service/api/admin/audit",
        params={"actor": actor, "action": action},
        headers=admin.headers,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def test_settings_changes_are_audited(
    client: httpx.AsyncClient, admin: Account, restore_settings: None
) -> None:
    changed = await client.patch(
        SETTINGS, json={"registration": "invite", "retention_days": 30}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    [row] = await entries(client, admin, actor=admin.id, action="settings.update")
    assert row["actor"]["id"] == admin.id and row["actor"]["username"] == admin.username
    assert (row["target_type"], row["target_id"]) == ("instance", None)
    assert row["details"] == {
        "registration": {"from": "open", "to": "invite"},
        "retention_days": {"from": 0.0, "to": 30},
    }
    same = await client.patch(SETTINGS, json={"registration": "invite"}, headers=admin.headers)
    assert same.status_code == 200
    rows = await entries(client, admin, actor=admin.id, action="settings.update")
    assert len(rows) == 1  # nothing changed: nothing written


async def test_server_retention_setting(
    client: httpx.AsyncClient, admin: Account, restore_settings: None
) -> None:
    read = await client.get(SETTINGS, headers=admin.headers)
    assert read.json() == {"registration": "open", "retention_days": None,
                           "default_retention_days": 0.0}  # fmt: skip
    for bad in (-1, 40000, "soon", True):
        refused = await client.patch(SETTINGS, json={"retention_days": bad}, headers=admin.headers)
        assert refused.status_code == 422, bad
        assert refused.json()["code"] == "validation_error"
    set_ = await client.patch(SETTINGS, json={"retention_days": 0.5}, headers=admin.headers)
    assert set_.json()["retention_days"] == 0.5
    assert (await client.get(SETTINGS, headers=admin.headers)).json()["retention_days"] == 0.5
    back = await client.patch(SETTINGS, json={"retention_days": None}, headers=admin.headers)
    assert back.json() == {"registration": "open", "retention_days": None,
                           "default_retention_days": 0.0}  # fmt: skip
    rows = await entries(client, admin, actor=admin.id, action="settings.update")
    assert [r["details"] for r in rows] == [
        {"retention_days": {"from": 0.5, "to": 0.0}},  # back to the environment's value
        {"retention_days": {"from": 0.0, "to": 0.5}},
    ]


async def test_admin_invites_are_audited(client: httpx.AsyncClient, admin: Account) -> None:
    owner = await make_user(client)
    chat = await make_group(client, owner)
    body = {"email": "new@example.com", "max_uses": 2, "chat_ids": [chat["id"]]}
    made = await client.post("/service/api/admin/invites", json=body, headers=admin.headers)
    assert made.status_code == 201, made.text
    [created] = await entries(client, admin, actor=admin.id, action="invite.create")
    assert created["target_type"] == "invite" and isinstance(created["target_id"], int)
    assert created["details"] == {
        "email": "new@example.com",
        "max_uses": 2,
        "chat_ids": [chat["id"]],
    }
    gone = await client.delete(
        f"/service/api/admin/invites/{made.json()['code']}", headers=admin.headers
    )
    assert gone.status_code == 204
    [deleted] = await entries(client, admin, actor=admin.id, action="invite.delete")
    assert deleted["target_id"] == created["target_id"]
    assert deleted["details"] == {"email": "new@example.com", "chat_ids": [chat["id"]]}


async def test_chat_invite_links_are_audited(client: httpx.AsyncClient, admin: Account) -> None:
    owner, member = await make_user(client), await make_user(client)
    chat = await make_group(client, owner, member)
    path = f"/service/api/chats/{chat['id']}/invite_link"
    made = await client.post(path, json={"max_uses": 5}, headers=owner.headers)
    assert made.status_code == 201, made.text
    [created] = await entries(client, admin, actor=owner.id, action="chat.invite_link")
    assert (created["target_type"], created["target_id"]) == ("chat", chat["id"])
    assert created["details"]["max_uses"] == 5 and created["details"]["expires_at"] is None
    assert await client.delete(path, headers=owner.headers)
    again = await client.delete(path, headers=owner.headers)  # nothing left to revoke
    assert again.status_code == 204
    [revoked] = await entries(client, admin, actor=owner.id, action="chat.invite_link_revoke")
    assert (revoked["target_type"], revoked["target_id"]) == ("chat", chat["id"])
    assert revoked["actor"]["username"] == owner.username


async def test_bot_token_rotation_is_audited(client: httpx.AsyncClient, admin: Account) -> None:
    owner = await make_user(client)
    made = await client.post(
        "/service/api/bots",
        json={"username": "audit" + owner.username[-8:], "display_name": "Audited"},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    bot = made.json()["bot"]
    rotated = await client.post(f"/service/api/bots/{bot['id']}/token", headers=owner.headers)
    assert rotated.status_code == 200, rotated.text
    [row] = await entries(client, admin, actor=owner.id, action="bot.token")
    assert (row["target_type"], row["target_id"]) == ("user", bot["id"])
    assert row["details"] == {"bot": bot["username"], "owner_id": owner.id}


async def test_removing_a_member_is_audited_leaving_is_not(
    client: httpx.AsyncClient, admin: Account
) -> None:
    owner, member, other = [await make_user(client) for _ in range(3)]
    chat = await make_group(client, owner, member, other)
    path = f"/service/api/chats/{chat['id']}/members"
    removed = await client.delete(f"{path}/{member.id}", headers=owner.headers)
    assert removed.status_code == 204
    left = await client.delete(f"{path}/{other.id}", headers=other.headers)
    assert left.status_code == 204
    [row] = await entries(client, admin, actor=owner.id, action="chat.remove_member")
    assert (row["target_type"], row["target_id"]) == ("chat", chat["id"])
    assert row["details"] == {"user_id": member.id, "role": "member"}
    assert await entries(client, admin, actor=other.id, action="chat.remove_member") == []
