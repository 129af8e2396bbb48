"""Registration modes, admin invites and chat invite links, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from parley.server.accounts.service import promote_user
from parley.server.db.models import InstanceSetting, Invite
from tests.conftest import Running, no_cookies
from tests.factories import PASSWORD, Account, make_direct, make_group, make_user, unique


@pytest.fixture(scope="module")
async def admin(live: Running) -> Account:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        account = await make_user(http)
    async with live.state.sessions() as session:
        assert await promote_user(session, username=account.username)
    return account


@pytest.fixture
async def mode(live: Running, admin: Account) -> AsyncIterator[Any]:
    """Sets the registration mode for a test; open again afterwards."""
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:

        async def set_mode(value: str) -> None:
            answer = await http.patch(
                "/service/api/admin/settings", json={"registration": value}, headers=admin.headers
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["registration"] == value

        yield set_mode
        await set_mode("open")


async def register(http: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    name = unique()
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **extra}
    return await http.post("/service/api/register", json=body)


async def admin_invite(http: httpx.AsyncClient, admin: Account, **body: Any) -> dict[str, Any]:
    answer = await http.post("/service/api/admin/invites", json=body, headers=admin.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_settings_are_for_admins_and_kept_in_the_database(
    client: httpx.AsyncClient, live: Running, admin: Account, mode: Any
) -> None:
    someone = await make_user(client)
    read = await client.get("/service/api/admin/settings", headers=admin.headers)
    assert read.status_code == 200 and read.json()["registration"] == "open"
    for method in ("get", "patch"):
        refused = await client.request(
            method,
            "/service/api/admin/settings",
            json={"registration": "closed"} if method == "patch" else None,
            headers=someone.headers,
        )
        assert refused.status_code == 403 and refused.json()["code"] == "admin_required"
    bad = await client.patch(
        "/service/api/admin/settings", json={"registration": "maybe"}, headers=admin.headers
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    await mode("invite")
    async with live.state.reads() as session:  # what every process reads
        stored = (
            await session.execute(
                select(InstanceSetting.value).where(InstanceSetting.key == "registration")
            )
        ).scalar_one()
    assert stored == '"invite"'


async def test_invite_mode_needs_a_valid_admin_invite(
    client: httpx.AsyncClient, admin: Account, mode: Any
) -> None:
    await mode("invite")
    refused = await register(client)
    assert refused.status_code == 403 and refused.json()["code"] == "invite_required"
    invite = await admin_invite(client, admin, max_uses=1)
    assert invite["uses_left"] == 1 and invite["url"].endswith("/invite/" + invite["code"])
    made = await register(client, invite=invite["code"])
    assert made.status_code == 201, made.text
    again = await register(client, invite=invite["code"])
    assert again.status_code == 410 and again.json()["code"] == "invite_invalid"
    unknown = await register(client, invite="nope")
    assert unknown.status_code == 410 and unknown.json()["code"] == "invite_invalid"
    listed = await client.get("/service/api/admin/invites", headers=admin.headers)
    mine = next(i for i in listed.json() if i["code"] == invite["code"])
    assert mine["uses_left"] == 0


async def test_closed_mode_refuses_even_an_invite(
    client: httpx.AsyncClient, admin: Account, mode: Any
) -> None:
    invite = await admin_invite(client, admin)
    await mode("closed")
    refused = await register(client, invite=invite["code"])
    assert refused.status_code == 403 and refused.json()["code"] == "registration_closed"
    await mode("open")
    assert (await register(client)).status_code == 201


async def test_an_admin_invite_joins_its_chats(
    client: httpx.AsyncClient, admin: Account, mode: Any
) -> None:
    owner = await make_user(client)
    private = await make_group(client, owner, title="Hidden")
    invite = await admin_invite(client, admin, chat_ids=[private["id"]], max_uses=2)
    await mode("invite")
    made = await register(client, invite=invite["code"])
    assert made.status_code == 201, made.text
    token = made.json()["access_token"]
    chats = await client.get("/service/api/chats", headers={"Authorization": f"Bearer {token}"})
    assert "Hidden" in [c["title"] for c in chats.json()]
    missing = await client.post(
        "/service/api/admin/invites", json={"chat_ids": [2**62]}, headers=admin.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "chat_not_found"


async def test_admin_invites_are_listed_and_deleted_by_admins_only(
    client: httpx.AsyncClient, live: Running, admin: Account
) -> None:
    someone = await make_user(client)
    refused = await client.post("/service/api/admin/invites", json={}, headers=someone.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "admin_required"
    invite = await admin_invite(client, admin, email="friend@example.com", expires_in_seconds=3600)
    expires = datetime.fromisoformat(invite["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    listed = await client.get("/service/api/admin/invites", headers=admin.headers)
    assert invite["code"] in [i["code"] for i in listed.json()]
    assert (
        await client.delete(f"/service/api/admin/invites/{invite['code']}", headers=someone.headers)
    ).status_code == 403
    deleted = await client.delete(
        f"/service/api/admin/invites/{invite['code']}", headers=admin.headers
    )
    assert deleted.status_code == 204
    listed = await client.get("/service/api/admin/invites", headers=admin.headers)
    assert invite["code"] not in [i["code"] for i in listed.json()]
    assert (await register(client, invite=invite["code"])).json()["code"] == "invite_invalid"
    gone = await client.delete(
        f"/service/api/admin/invites/{invite['code']}", headers=admin.headers
    )
    assert gone.status_code == 404


async def test_an_expired_admin_invite_is_refused(
    client: httpx.AsyncClient, live: Running, admin: Account
) -> None:
    invite = await admin_invite(client, admin)
    async with live.state.sessions() as session:
        await session.execute(
            update(Invite)
            .where(Invite.code == invite["code"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    refused = await register(client, invite=invite["code"])
    assert refused.status_code == 410 and refused.json()["code"] == "invite_invalid"
    preview = await client.get(f"/service/api/invites/{invite['code']}")
    assert preview.json() == {"chat": None, "valid": False}


async def link(http: httpx.AsyncClient, who: Account, chat_id: int, **body: Any) -> httpx.Response:
    return await http.post(
        f"/service/api/chats/{chat_id}/invite_link", json=body or None, headers=who.headers
    )


async def accept(http: httpx.AsyncClient, who: Account, code: str) -> httpx.Response:
    return await http.post(f"/service/api/invites/{code}/accept", headers=who.headers)


async def test_a_chat_link_previews_and_joins_a_private_group(client: httpx.AsyncClient) -> None:
    owner, member, guest = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, member, title="Inner circle")
    made = await link(client, owner, group["id"])
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    assert made.json()["url"].endswith(f"/invite/{code}") and made.json()["expires_at"] is None
    by_member = await link(client, member, group["id"])
    assert by_member.status_code == 403 and by_member.json()["code"] == "not_allowed"
    preview = await client.get(f"/service/api/invites/{code}")  # no token
    assert preview.status_code == 200
    assert preview.json() == {
        "chat": {"title": "Inner circle", "type": "group", "member_count": 2},
        "valid": True,
    }
    joined = await accept(client, guest, code)
    assert joined.status_code == 200, joined.text
    assert joined.json()["id"] == group["id"] and joined.json()["my_role"] == "member"
    assert joined.json()["member_count"] == 3
    twice = await accept(client, guest, code)  # already a member: the chat again
    assert twice.status_code == 200 and twice.json()["member_count"] == 3
    current = await client.get(
        f"/service/api/chats/{group['id']}/invite_link", headers=owner.headers
    )
    assert current.json()["code"] == code


async def test_a_new_link_replaces_the_old_and_revoking_ends_it(client: httpx.AsyncClient) -> None:
    owner, late, later = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, title="Rotating")
    first = (await link(client, owner, group["id"])).json()["code"]
    second = (await link(client, owner, group["id"])).json()["code"]
    assert first != second
    old = await accept(client, late, first)
    assert old.status_code == 410 and old.json()["code"] == "invite_invalid"
    assert (await client.get(f"/service/api/invites/{first}")).json()["valid"] is False
    revoked = await client.delete(
        f"/service/api/chats/{group['id']}/invite_link", headers=owner.headers
    )
    assert revoked.status_code == 204
    gone = await accept(client, later, second)
    assert gone.status_code == 410 and gone.json()["code"] == "invite_invalid"
    none = await client.get(f"/service/api/chats/{group['id']}/invite_link", headers=owner.headers)
    assert none.status_code == 404
    unknown = await client.get("/service/api/invites/never-made")
    assert unknown.json() == {"chat": None, "valid": False}
    assert (await accept(client, later, "never-made")).status_code == 410


async def test_a_used_up_or_expired_link_is_refused(
    client: httpx.AsyncClient, live: Running
) -> None:
    owner, first, second = [await make_user(client) for _ in range(3)]
    group = await make_group(client, owner, type="channel", title="Once")
    code = (await link(client, owner, group["id"], max_uses=1)).json()["code"]
    assert (await accept(client, first, code)).status_code == 200
    used_up = await accept(client, second, code)
    assert used_up.status_code == 410 and used_up.json()["code"] == "invite_invalid"
    made = (await link(client, owner, group["id"], expires_in_seconds=60)).json()
    assert made["expires_at"] is not None
    async with live.state.sessions() as session:
        await session.execute(
            update(Invite)
            .where(Invite.code == made["code"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    expired = await accept(client, second, made["code"])
    assert expired.status_code == 410 and expired.json()["code"] == "invite_invalid"


async def test_links_refused_for_direct_chats_admin_codes_and_banned_users(
    client: httpx.AsyncClient, admin: Account
) -> None:
    owner, peer, banned = [await make_user(client) for _ in range(3)]
    direct = await make_direct(client, owner, peer)
    refused = await link(client, owner, direct["id"])
    assert refused.status_code == 422 and refused.json()["code"] == "direct_chat"
    registration = await admin_invite(client, admin)
    wrong = await accept(client, peer, registration["code"])
    assert wrong.status_code == 422 and wrong.json()["code"] == "not_a_chat_invite"
    group = await make_group(client, owner, title="No bans")
    code = (await link(client, owner, group["id"])).json()["code"]
    ban = await client.post(
        "/service/api/admin/bans", json={"user_id": banned.id}, headers=admin.headers
    )
    assert ban.status_code == 201, ban.text
    denied = await accept(client, banned, code)
    assert denied.status_code == 403 and denied.json()["code"] == "user_banned"
    members = await client.get(f"/service/api/chats/{group['id']}/members", headers=owner.headers)
    assert banned.id not in [m["user"]["id"] for m in members.json()]


async def test_the_mode_and_invites_hold_on_every_server(pg_url: str, tmp_path: Any) -> None:
    """Two servers on one PostgreSQL and one Redis: an admin's PATCH on one is what the
    other follows, and an invite made on one is used up on the other."""
    from tests.integration.test_two_servers import _servers

    async with _servers(tmp_path, pg_url) as pair:
        admin = await make_user(pair.http_a)
        async with pair.a.state.sessions() as session:
            assert await promote_user(session, username=admin.username)
        changed = await pair.http_a.patch(
            "/service/api/admin/settings", json={"registration": "invite"}, headers=admin.headers
        )
        assert changed.status_code == 200
        try:
            refused = await register(pair.http_b)
            assert refused.status_code == 403 and refused.json()["code"] == "invite_required"
            invite = await admin_invite(pair.http_b, admin, max_uses=1)
            assert (await register(pair.http_a, invite=invite["code"])).status_code == 201
            spent = await register(pair.http_b, invite=invite["code"])
            assert spent.status_code == 410 and spent.json()["code"] == "invite_invalid"
        finally:  # the database is shared by the session's other PostgreSQL tests
            reopened = await pair.http_a.patch(
                "/service/api/admin/settings", json={"registration": "open"}, headers=admin.headers
            )
            assert reopened.status_code == 200
