"""Administration on SQLite and PostgreSQL: users (deactivation, admin rights, 2FA resets),
reports, and the audit entry each act writes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pyotp
import pytest
import websockets

from parley.server.accounts.service import promote_user
from tests.conftest import Running, no_cookies
from tests.factories import PASSWORD, Account, connect, make_group, make_user, send


@pytest.fixture
async def admin(live: Running) -> Account:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        account = await make_user(http)
    async with live.state.sessions() as session:
        assert await promote_user(session, username=account.username)
    return account


async def audit(http: httpx.AsyncClient, admin: Account, **params: Any) -> list[dict[str, Any]]:
    answer = await http.get("/service/api/admin/audit", params=params, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def entry(
    http: httpx.AsyncClient, admin: Account, action: str, target_id: int
) -> dict[str, Any]:
    """The newest entry of `admin` doing `action` to `target_id` (asserted to exist)."""
    rows = await audit(http, admin, actor=admin.id, action=action)
    found = [r for r in rows if r["target_id"] == target_id]
    assert found, f"no {action} entry for {target_id}: {rows}"
    return found[0]


async def login(http: httpx.AsyncClient, who: Account) -> httpx.Response:
    return await http.post(
        "/service/api/login", json={"username": who.username, "password": PASSWORD}
    )


# --- users ------------------------------------------------------------------------------------


async def test_admin_routes_refuse_other_users(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    for method, path in [
        ("GET", "/service/api/admin/users"),
        ("GET", "/service/api/admin/audit"),
        ("GET", "/service/api/admin/reports"),
        ("POST", f"/service/api/admin/users/{me.id}/deactivate"),
        ("POST", f"/service/api/admin/users/{me.id}/2fa/reset"),
    ]:
        answer = await client.request(method, path, headers=me.headers)
        assert answer.status_code == 403 and answer.json()["code"] == "admin_required", path
    patch = await client.patch(
        f"/service/api/admin/users/{me.id}", json={"is_admin": True}, headers=me.headers
    )
    assert patch.status_code == 403


async def test_admin_user_list_shows_private_fields(
    client: httpx.AsyncClient, admin: Account
) -> None:
    someone = await make_user(client)
    answer = await client.get(
        "/service/api/admin/users", params={"q": someone.username}, headers=admin.headers
    )
    assert answer.status_code == 200
    [row] = answer.json()
    assert row["id"] == someone.id
    assert row["email"] == f"{someone.username}@example.com"
    assert row["deactivated"] is False and row["two_factor"] is False
    assert row["is_admin"] is False and row["created_at"] and "last_seen_at" in row
    by_email = await client.get(
        "/service/api/admin/users",
        params={"q": f"{someone.username}@example"},
        headers=admin.headers,
    )
    assert [u["id"] for u in by_email.json()] == [someone.id]


async def test_deactivation_ends_everything_but_messages(
    client: httpx.AsyncClient, live: Running, admin: Account
) -> None:
    user, friend = await make_user(client), await make_user(client)
    chat = await make_group(client, friend, user)
    said = await send(client, user, chat["id"], "still here")
    ws = await connect(live.ws_base, user)
    done = await client.post(
        f"/service/api/admin/users/{user.id}/deactivate", headers=admin.headers
    )
    assert done.status_code == 204
    await _closed_with(ws, 4003)
    assert (await client.get("/service/api/profile", headers=user.headers)).status_code == 401
    refused = await login(client, user)
    assert refused.status_code == 403 and refused.json()["code"] == "user_deactivated"
    wrong = await client.post(
        "/service/api/login", json={"username": user.username, "password": "wrong-password"}
    )
    assert wrong.status_code == 401  # a wrong password learns nothing of the account
    kept = await client.get(f"/service/api/messages/{said['id']}", headers=friend.headers)
    assert kept.json()["content"] == "still here" and kept.json()["deleted"] is False
    shown = await client.get(f"/service/api/users/{user.id}", headers=friend.headers)
    assert shown.json()["deactivated"] is True
    assert (await entry(client, admin, "user.deactivate", user.id))["target_type"] == "user"
    back = await client.post(
        f"/service/api/admin/users/{user.id}/reactivate", headers=admin.headers
    )
    assert back.status_code == 204
    assert (await login(client, user)).status_code == 200
    await entry(client, admin, "user.reactivate", user.id)


async def test_admin_cannot_deactivate_itself(client: httpx.AsyncClient, admin: Account) -> None:
    answer = await client.post(
        f"/service/api/admin/users/{admin.id}/deactivate", headers=admin.headers
    )
    assert answer.status_code == 422 and answer.json()["code"] == "self_deactivation"


async def test_grant_and_take_admin_rights(client: httpx.AsyncClient, admin: Account) -> None:
    user = await make_user(client)
    granted = await client.patch(
        f"/service/api/admin/users/{user.id}", json={"is_admin": True}, headers=admin.headers
    )
    assert granted.status_code == 200 and granted.json()["is_admin"] is True
    assert (await entry(client, admin, "user.admin", user.id))["details"] == {"is_admin": True}
    assert (await client.get("/service/api/admin/users", headers=user.headers)).status_code == 200
    taken = await client.patch(
        f"/service/api/admin/users/{user.id}", json={"is_admin": False}, headers=admin.headers
    )
    assert taken.json()["is_admin"] is False
    self_demotion = await client.patch(
        f"/service/api/admin/users/{admin.id}", json={"is_admin": False}, headers=admin.headers
    )
    assert self_demotion.status_code == 422


async def test_two_factor_reset(client: httpx.AsyncClient, admin: Account) -> None:
    user = await make_user(client)
    secret = (await client.post("/service/api/2fa/setup", headers=user.headers)).json()["secret"]
    enable = await client.post(
        "/service/api/2fa/enable", json={"code": pyotp.TOTP(secret).now()}, headers=user.headers
    )
    assert enable.status_code == 200
    pending = (await login(client, user)).json()
    assert pending["mfa_required"] is True
    reset = await client.post(
        f"/service/api/admin/users/{user.id}/2fa/reset", headers=admin.headers
    )
    assert reset.status_code == 200 and reset.json()["two_factor"] is False
    assert "access_token" in (await login(client, user)).json()
    assert (await entry(client, admin, "user.2fa_reset", user.id))["details"] == {"was_on": True}
    stale = await client.post(
        "/service/api/login/2fa",
        json={"mfa_token": pending["mfa_token"], "recovery_code": "aaaaa-bbbbb"},
    )
    assert stale.status_code == 401 and stale.json()["code"] == "unauthorized"


# --- reports ----------------------------------------------------------------------------------


async def report(
    http: httpx.AsyncClient, who: Account, message_id: int, reason: str = "spam"
) -> httpx.Response:
    return await http.post(
        f"/service/api/messages/{message_id}/report", json={"reason": reason}, headers=who.headers
    )


async def test_members_report_once(client: httpx.AsyncClient, admin: Account) -> None:
    author, member, outsider = [await make_user(client) for _ in range(3)]
    chat = await make_group(client, author, member)
    message = await send(client, author, chat["id"], "buy now")
    first = await report(client, member, message["id"], "  spam  ")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["message_id"] == message["id"] and body["reason"] == "spam"
    assert body["status"] == "open" and body["reporter"]["id"] == member.id
    again = await report(client, member, message["id"])
    assert again.status_code == 409 and again.json()["code"] == "already_reported"
    hidden = await report(client, outsider, message["id"])
    assert hidden.status_code == 404
    empty = await report(client, author, message["id"], "   ")
    assert empty.status_code == 422
    queue = await client.get(
        "/service/api/admin/reports", params={"status": "open"}, headers=admin.headers
    )
    mine = [r for r in queue.json() if r["message_id"] == message["id"]]
    assert len(mine) == 1 and mine[0]["message"]["content"] == "buy now"


async def test_outsider_of_a_public_channel_cannot_report(client: httpx.AsyncClient) -> None:
    author, outsider = await make_user(client), await make_user(client)
    channel = await make_group(client, author, type="channel", title="Open")
    message = await send(client, author, channel["id"], "hello")
    answer = await report(client, outsider, message["id"])
    assert answer.status_code == 403 and answer.json()["code"] == "not_member"


async def test_resolve_dismiss_then_twice_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    author, member = await make_user(client), await make_user(client)
    chat = await make_group(client, author, member)
    message = await send(client, author, chat["id"], "meh")
    report_id = (await report(client, member, message["id"])).json()["id"]
    done = await client.post(
        f"/service/api/admin/reports/{report_id}/resolve",
        json={"action": "dismiss"},
        headers=admin.headers,
    )
    assert done.status_code == 200
    assert done.json()["status"] == "resolved" and done.json()["resolution"] == "dismiss"
    twice = await client.post(
        f"/service/api/admin/reports/{report_id}/resolve",
        json={"action": "dismiss"},
        headers=admin.headers,
    )
    assert twice.status_code == 409 and twice.json()["code"] == "report_resolved"
    details = (await entry(client, admin, "report.resolve", report_id))["details"]
    assert details["action"] == "dismiss" and details["message_id"] == message["id"]
    resolved = await client.get(
        "/service/api/admin/reports", params={"status": "resolved"}, headers=admin.headers
    )
    assert report_id in [r["id"] for r in resolved.json()]


async def test_resolve_by_deleting_the_message(
    client: httpx.AsyncClient, live: Running, admin: Account
) -> None:
    author, member = await make_user(client), await make_user(client)
    chat = await make_group(client, author, member)
    message = await send(client, author, chat["id"], "nasty")
    report_id = (await report(client, member, message["id"])).json()["id"]
    ws = await connect(live.ws_base, member)
    done = await client.post(
        f"/service/api/admin/reports/{report_id}/resolve",
        json={"action": "delete_message"},
        headers=admin.headers,
    )
    assert done.status_code == 200
    seen = await client.get(f"/service/api/messages/{message['id']}", headers=member.headers)
    assert seen.json()["deleted"] is True and seen.json()["content"] == ""
    from tests.factories import recv_type

    update = await recv_type(ws, "message_updated")
    assert update["message"]["id"] == message["id"] and update["message"]["deleted"] is True
    await ws.close()
    await entry(client, admin, "message.delete", message["id"])


async def test_resolve_by_banning_the_sender(client: httpx.AsyncClient, admin: Account) -> None:
    author, member = await make_user(client), await make_user(client)
    chat = await make_group(client, author, member)
    message = await send(client, author, chat["id"], "worse")
    report_id = (await report(client, member, message["id"])).json()["id"]
    done = await client.post(
        f"/service/api/admin/reports/{report_id}/resolve",
        json={"action": "ban_user", "duration_seconds": 3600},
        headers=admin.headers,
    )
    assert done.status_code == 200
    refused = await login(client, author)
    assert refused.status_code == 403 and refused.json()["code"] == "user_banned"
    ban = await entry(client, admin, "user.ban", author.id)
    assert ban["details"]["duration_seconds"] == 3600 and ban["details"]["reason"] == "spam"


# --- the audit log ----------------------------------------------------------------------------


async def test_bans_and_unbans_are_audited(client: httpx.AsyncClient, admin: Account) -> None:
    user = await make_user(client)
    banned = await client.post(
        "/service/api/admin/bans", json={"user_id": user.id, "reason": "r"}, headers=admin.headers
    )
    assert banned.status_code == 201
    lifted = await client.delete(f"/service/api/admin/bans/{user.id}", headers=admin.headers)
    assert lifted.status_code == 204
    rows = await audit(client, admin, actor=admin.id)
    assert [r["action"] for r in rows[:2]] == ["user.unban", "user.ban"]  # newest first
    assert rows[0]["actor"]["id"] == admin.id and rows[0]["actor"]["username"] == admin.username
    assert rows[0]["target_type"] == "user" and rows[0]["target_id"] == user.id


async def test_a_refused_act_writes_nothing(client: httpx.AsyncClient, admin: Account) -> None:
    refused = await client.post(
        "/service/api/admin/bans", json={"user_id": admin.id}, headers=admin.headers
    )
    assert refused.status_code == 422
    assert await audit(client, admin, actor=admin.id) == []


async def test_chat_acts_are_audited(client: httpx.AsyncClient, admin: Account) -> None:
    owner, member, other = [await make_user(client) for _ in range(3)]
    chat = await make_group(client, owner, member, other)
    said = await send(client, member, chat["id"], "off topic")
    own = await send(client, owner, chat["id"], "mine")
    path = f"/service/api/chats/{chat['id']}"
    role = await client.patch(
        f"{path}/members/{member.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert role.status_code == 200
    deleted = await client.delete(f"/service/api/messages/{said['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert await client.delete(f"/service/api/messages/{own['id']}", headers=owner.headers)
    kept = await client.patch(path, json={"retention_days": 30}, headers=member.headers)
    assert kept.status_code == 200 and kept.json()["retention_days"] == 30
    handed = await client.patch(
        f"{path}/members/{other.id}", json={"role": "owner"}, headers=owner.headers
    )
    assert handed.status_code == 200
    rows = [
        r
        for r in await audit(client, admin, limit=200)
        if r["actor"]["id"] in (owner.id, member.id)
    ]
    actions = [(r["action"], r["actor"]["id"], r["target_type"], r["target_id"]) for r in rows]
    assert actions == [
        ("chat.owner", owner.id, "chat", chat["id"]),
        ("chat.retention", member.id, "chat", chat["id"]),
        ("message.delete", owner.id, "message", said["id"]),  # not the owner's own message
        ("chat.role", owner.id, "chat", chat["id"]),
    ]
    assert rows[0]["details"] == {"user_id": other.id, "from": "member", "to": "owner"}
    assert rows[1]["details"] == {"from": None, "to": 30.0}


async def test_owner_leaving_hands_over_and_is_audited(
    client: httpx.AsyncClient, admin: Account
) -> None:
    owner, member = await make_user(client), await make_user(client)
    chat = await make_group(client, owner, member)
    left = await client.delete(
        f"/service/api/chats/{chat['id']}/members/{owner.id}", headers=owner.headers
    )
    assert left.status_code == 204
    rows = await audit(client, admin, actor=owner.id, action="chat.owner")
    assert rows[0]["details"] == {"from": owner.id, "to": member.id}


async def test_audit_pages_with_before(client: httpx.AsyncClient, admin: Account) -> None:
    users = [await make_user(client) for _ in range(3)]
    for user in users:
        await client.patch(
            f"/service/api/admin/users/{user.id}", json={"is_admin": True}, headers=admin.headers
        )
    first = await audit(client, admin, actor=admin.id, limit=2)
    assert [r["target_id"] for r in first] == [users[2].id, users[1].id]
    rest = await audit(client, admin, actor=admin.id, limit=2, before=first[-1]["id"])
    assert [r["target_id"] for r in rest] == [users[0].id]
    assert (await audit(client, admin, action="no.such.action")) == []


async def _closed_with(ws: Any, code: int) -> None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
