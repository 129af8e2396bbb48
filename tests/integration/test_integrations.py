"""Integrations on SQLite and PostgreSQL: bots and their tokens, signed events with
retries and a log, incoming webhooks in Slack's shape, chat commands."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets

from parley import errors
from parley.clock import Clock
from parley.server.db.models import DataExport
from parley.server.workers import sweep_exports
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import (
    PASSWORD,
    Account,
    connect,
    make_group,
    make_user,
    no_frame,
    recv_type,
    send,
    unique,
)
from tests.integration.receiver import Receiver, answer
from tests.waiting import eventually


@pytest.fixture(scope="module")
async def allowed(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """A server that may call loopback addresses (PARLEY_OUTBOUND_ALLOW), with a small
    webhook limit."""
    overrides: dict[str, object] = {
        "PARLEY_OUTBOUND_ALLOW": "127.0.0.0/8",
        "PARLEY_RATE_WEBHOOK": "3/minute",
    }
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, server, task = await start_server(
        test_settings(tmp_path_factory.mktemp("integrations"), **overrides)
    )
    yield running
    await stop_server(server, task)


@pytest.fixture
async def http(allowed: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=allowed.base, timeout=20, cookies=no_cookies()) as c:
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver().start()
    yield made
    await made.close()


async def make_bot(
    http: httpx.AsyncClient, owner: Account, **extra: Any
) -> tuple[Account, dict[str, Any]]:
    name = unique("bot")
    response = await http.post(
        "/service/api/bots",
        json={"username": name, "display_name": "Robot " + name[-4:], **extra},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    bot = created["bot"]
    return Account(bot["id"], name, created["token"], "", user=bot), created


async def poll(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """The first truthy result of `check`, asked until the deadline."""
    return await eventually(check, timeout, interval=0.05)


async def messages_of(http: httpx.AsyncClient, who: Account, chat_id: int) -> list[dict[str, Any]]:
    response = await http.get(f"/service/api/chats/{chat_id}/messages", headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def deliveries(http: httpx.AsyncClient, owner: Account, bot: Account) -> list[Any]:
    response = await http.get(f"/service/api/bots/{bot.id}/deliveries", headers=owner.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


# --- bots -----------------------------------------------------------------------------------


async def test_a_bot_is_a_user_with_a_token_and_no_password(http: httpx.AsyncClient) -> None:
    owner = await make_user(http)
    bot, created = await make_bot(http, owner)
    assert created["bot"]["is_bot"] is True and created["bot"]["owner_id"] == owner.id
    assert len(created["signing_secret"]) >= 32
    assert owner.user["is_bot"] is False and owner.user["owner_id"] is None

    profile = await http.get("/service/api/profile", headers=bot.headers)
    assert profile.status_code == 200
    assert profile.json()["id"] == bot.id and profile.json()["is_bot"] is True

    listed = (await http.get("/service/api/bots", headers=owner.headers)).json()
    assert [b["bot"]["id"] for b in listed] == [bot.id]
    assert listed[0]["event_url"] == "" and listed[0]["commands"] == []
    assert "token" not in listed[0] and "signing_secret" not in listed[0]
    assert (await http.get("/service/api/bots", headers=bot.headers)).json() == []

    for login in (bot.username, f"{bot.username.lower()}@bots.invalid"):
        for password in (PASSWORD, "!", ""):
            refused = await http.post(
                "/service/api/login", json={"username": login, "password": password or "x"}
            )
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "invalid_credentials"

    owns = await http.post(
        "/service/api/bots",
        json={"username": unique("b"), "display_name": "B"},
        headers=bot.headers,
    )
    assert owns.status_code == 403 and owns.json()["code"] == "bot_not_allowed"
    taken = await http.post(
        "/service/api/bots",
        json={"username": owner.username.upper(), "display_name": "B"},
        headers=owner.headers,
    )
    assert taken.status_code == 409 and taken.json()["code"] == "username_taken"
    bad = await http.post(
        "/service/api/bots",
        json={"username": "no spaces", "display_name": "B"},
        headers=owner.headers,
    )
    assert bad.status_code == 422


async def test_at_most_ten_bots_per_user(http: httpx.AsyncClient) -> None:
    owner = await make_user(http)
    for _ in range(10):
        await make_bot(http, owner)
    eleventh = await http.post(
        "/service/api/bots",
        json={"username": unique("b"), "display_name": "B"},
        headers=owner.headers,
    )
    assert eleventh.status_code == 403 and eleventh.json()["code"] == "too_many_bots"
    assert len((await http.get("/service/api/bots", headers=owner.headers)).json()) == 10


async def test_only_the_owner_manages_a_bot(http: httpx.AsyncClient) -> None:
    owner, stranger = await make_user(http), await make_user(http)
    bot, _ = await make_bot(http, owner)
    for method, path in (
        ("PATCH", f"/service/api/bots/{bot.id}"),
        ("POST", f"/service/api/bots/{bot.id}/token"),
        ("DELETE", f"/service/api/bots/{bot.id}"),
        ("GET", f"/service/api/bots/{bot.id}/deliveries"),
    ):
        body = {"display_name": "Mine"} if method == "PATCH" else None
        response = await http.request(method, path, json=body, headers=stranger.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "bot_not_found"


async def test_a_bot_uses_the_rest_and_websocket_api_in_its_chats(
    http: httpx.AsyncClient, allowed: Running
) -> None:
    owner = await make_user(http)
    bot, _ = await make_bot(http, owner)
    group = await make_group(http, owner, bot)
    ws = await connect(allowed.ws_base, bot)
    try:
        await send(http, owner, group["id"], "hello bot")
        frame = await recv_type(ws, "message")
        assert frame["message"]["content"] == "hello bot"
        await ws.send(json.dumps({"type": "send", "chat_id": group["id"], "content": "beep"}))
        mine = await recv_type(ws, "message")
        assert mine["message"]["sender"]["id"] == bot.id
    finally:
        await ws.close()
    posted = await send(http, bot, group["id"], "boop")
    assert posted["sender"]["display_name"] == bot.user["display_name"]
    contents = [m["content"] for m in await messages_of(http, owner, group["id"])]
    assert contents[-3:] == ["hello bot", "beep", "boop"]
    # not in `general`: a bot is only where it was added
    chats = (await http.get("/service/api/chats", headers=bot.headers)).json()
    assert [c["id"] for c in chats] == [group["id"]]


async def test_rotating_the_token_ends_the_old_one_on_rest_and_websocket(
    http: httpx.AsyncClient, allowed: Running
) -> None:
    owner = await make_user(http)
    bot, created = await make_bot(http, owner)
    ws = await connect(allowed.ws_base, bot)
    rotated = await http.post(f"/service/api/bots/{bot.id}/token", headers=owner.headers)
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["token"] != created["token"]
    assert fresh["signing_secret"] != created["signing_secret"]
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

    async def old_refused() -> bool:
        response = await http.get("/service/api/profile", headers=bot.headers)
        return response.status_code == 401

    await poll(old_refused, timeout=5)
    new = await http.get(
        "/service/api/profile", headers={"Authorization": f"Bearer {fresh['token']}"}
    )
    assert new.status_code == 200 and new.json()["id"] == bot.id


async def test_deleting_a_bot_ends_its_token_and_keeps_its_messages(
    http: httpx.AsyncClient,
) -> None:
    owner = await make_user(http)
    bot, _ = await make_bot(http, owner)
    group = await make_group(http, owner, bot)
    await send(http, bot, group["id"], "last words")
    deleted = await http.delete(f"/service/api/bots/{bot.id}", headers=owner.headers)
    assert deleted.status_code == 204
    assert (await http.get("/service/api/profile", headers=bot.headers)).status_code == 401
    assert (await http.get("/service/api/bots", headers=owner.headers)).json() == []
    [kept] = await messages_of(http, owner, group["id"])
    assert kept["content"] == "last words" and kept["sender"] is None


async def test_patch_sets_name_event_url_and_commands(http: httpx.AsyncClient) -> None:
    owner = await make_user(http)
    bot, _ = await make_bot(http, owner)
    patched = await http.patch(
        f"/service/api/bots/{bot.id}",
        json={
            "display_name": "Deployer",
            "event_url": "https://bots.example.com/parley",
            "commands": [{"command": "deploy", "description": "Ship it"}],
        },
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["bot"]["display_name"] == "Deployer"
    assert body["event_url"] == "https://bots.example.com/parley"
    assert body["commands"] == [{"command": "/deploy", "description": "Ship it"}]
    for bad in (
        {"event_url": "ftp://example.com/x"},
        {"event_url": "not a url"},
        {"commands": [{"command": "/me", "description": "taken"}]},
        {"commands": [{"command": "/two words"}]},
        {"commands": [{"command": "/a"}, {"command": "a"}]},
    ):
        refused = await http.patch(f"/service/api/bots/{bot.id}", json=bad, headers=owner.headers)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["code"] == "validation_error"
    cleared = await http.patch(
        f"/service/api/bots/{bot.id}", json={"event_url": None}, headers=owner.headers
    )
    assert cleared.json()["event_url"] == ""


# --- events ---------------------------------------------------------------------------------


async def _bot_with_url(
    http: httpx.AsyncClient, owner: Account, url: str, commands: list[dict[str, str]] | None = None
) -> tuple[Account, str]:
    bot, created = await make_bot(http, owner)
    body: dict[str, Any] = {"event_url": url}
    if commands is not None:
        body["commands"] = commands
    patched = await http.patch(f"/service/api/bots/{bot.id}", json=body, headers=owner.headers)
    assert patched.status_code == 200, patched.text
    return bot, created["signing_secret"]


async def test_messages_reach_the_bot_signed_and_its_answer_is_posted(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.script = [answer(200, {"text": "pong"})]
    owner = await make_user(http)
    bot, secret = await _bot_with_url(http, owner, receiver.url)
    group = await make_group(http, owner, bot, title="Ops")
    sent = await send(http, owner, group["id"], "ping")

    [event] = await receiver.wait_for(1)
    assert event.path == "/events"
    assert event.signed_by(secret)
    assert not event.signed_by(secret + "0")
    body = event.json()
    assert body["type"] == "message"
    assert body["message"]["id"] == sent["id"] and body["message"]["content"] == "ping"
    assert body["chat"] == {"id": group["id"], "type": "group", "title": "Ops"}

    async def replied() -> list[dict[str, Any]]:
        return [m for m in await messages_of(http, owner, group["id"]) if m["content"] == "pong"]

    [reply] = await poll(replied)
    assert reply["sender"]["id"] == bot.id
    log = await poll(
        lambda: _finished(http, owner, bot),
    )
    assert log[0]["status"] == "delivered" and log[0]["response_status"] == 200
    assert log[0]["kind"] == "message" and log[0]["attempts"] == 1
    # the bot's own reply is not sent to it
    await send(http, owner, group["id"], "second")
    await receiver.wait_for(2)
    assert [r.json()["message"]["content"] for r in receiver.received] == ["ping", "second"]


async def _finished(http: httpx.AsyncClient, owner: Account, bot: Account) -> list[Any]:
    log = await deliveries(http, owner, bot)
    return log if log and all(d["status"] != "pending" for d in log) else []


async def test_a_failed_delivery_is_retried(http: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script = [answer(500), answer(200, {"text": "second try"})]
    owner = await make_user(http)
    bot, secret = await _bot_with_url(http, owner, receiver.url)
    group = await make_group(http, owner, bot)
    await send(http, owner, group["id"], "are you there")
    first, second = await receiver.wait_for(2, timeout=15)
    assert first.body == second.body and second.signed_by(secret)
    [entry] = await poll(lambda: _finished(http, owner, bot), timeout=15)
    assert entry["status"] == "delivered" and entry["attempts"] == 2
    assert entry["response_status"] == 200

    async def replied() -> bool:
        return any(
            m["content"] == "second try" for m in await messages_of(http, owner, group["id"])
        )

    await poll(replied)


async def test_events_to_a_loopback_address_are_refused_without_the_allow_list(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The shared server has no PARLEY_OUTBOUND_ALLOW: nothing reaches the listener."""
    owner = await make_user(client)
    bot, _ = await _bot_with_url(client, owner, receiver.url)
    group = await make_group(client, owner, bot)
    await send(client, owner, group["id"], "hello?")
    [entry] = await poll(lambda: _finished(client, owner, bot))
    assert entry["status"] == "failed" and entry["error"] == "refused"
    assert entry["response_status"] is None
    assert receiver.connections == 0 and receiver.received == []


# --- commands -------------------------------------------------------------------------------


async def test_commands_list_builtins_and_bots_and_reach_the_bot(
    http: httpx.AsyncClient, allowed: Running, receiver: Receiver
) -> None:
    receiver.respond = lambda got: (
        answer(200, {"text": "only you see this", "ephemeral": True})
        if got.json()["type"] == "command"
        else answer(200)
    )
    owner, other = await make_user(http), await make_user(http)
    bot, secret = await _bot_with_url(
        http, owner, receiver.url, [{"command": "/deploy", "description": "Ship it"}]
    )
    group = await make_group(http, owner, other, bot)
    listed = await http.get(f"/service/api/chats/{group['id']}/commands", headers=other.headers)
    assert listed.status_code == 200
    names = [c["command"] for c in listed.json()]
    assert names[:9] == [
        "/me", "/shrug", "/mute", "/unmute", "/leave", "/invite", "/topic", "/status", "/dnd"
    ]  # fmt: skip
    assert all(c["description"] for c in listed.json())
    deploy = listed.json()[-1]
    assert deploy["command"] == "/deploy" and deploy["bot"]["id"] == bot.id

    mine = await connect(allowed.ws_base, other)
    theirs = await connect(allowed.ws_base, owner)
    try:
        ran = await http.post(
            f"/service/api/chats/{group['id']}/commands",
            json={"command": "/deploy", "text": "prod now"},
            headers=other.headers,
        )
        assert ran.status_code == 200, ran.text
        assert ran.json()["status"] == "sent" and ran.json()["bot"]["id"] == bot.id
        [event] = await receiver.wait_for(1)
        assert event.signed_by(secret)
        body = event.json()
        assert body["type"] == "command" and body["command"] == "/deploy"
        assert body["text"] == "prod now" and body["chat_id"] == group["id"]
        assert body["user"]["id"] == other.id
        frame = await recv_type(mine, "ephemeral")
        assert frame["chat_id"] == group["id"] and frame["text"] == "only you see this"
        assert frame["bot"]["id"] == bot.id and frame["bot"]["is_bot"] is True
        await no_frame(theirs, "ephemeral")
    finally:
        await mine.close()
        await theirs.close()
    assert not any(
        m["content"] == "only you see this" for m in await messages_of(http, owner, group["id"])
    )

    for command in ("/nothing", "/me"):
        unknown = await http.post(
            f"/service/api/chats/{group['id']}/commands",
            json={"command": command, "text": ""},
            headers=other.headers,
        )
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_command"
    stranger = await make_user(http)
    hidden = await http.get(f"/service/api/chats/{group['id']}/commands", headers=stranger.headers)
    assert hidden.status_code == 404


async def test_a_public_command_answer_is_posted_in_the_chat(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.respond = lambda got: (
        answer(200, {"text": "deployed"}) if got.json()["type"] == "command" else answer(200)
    )
    owner = await make_user(http)
    bot, _ = await _bot_with_url(http, owner, receiver.url, [{"command": "ship"}])
    group = await make_group(http, owner, bot)
    ran = await http.post(
        f"/service/api/chats/{group['id']}/commands",
        json={"command": "ship"},
        headers=owner.headers,
    )
    assert ran.status_code == 200, ran.text

    async def posted() -> list[dict[str, Any]]:
        return [
            m for m in await messages_of(http, owner, group["id"]) if m["content"] == "deployed"
        ]

    [message] = await poll(posted)
    assert message["sender"]["id"] == bot.id


# --- incoming webhooks --------------------------------------------------------------------------


async def _hook(http: httpx.AsyncClient, owner: Account, chat_id: int, name: str) -> dict[str, Any]:
    made = await http.post(
        f"/service/api/chats/{chat_id}/webhooks", json={"name": name}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


async def test_webhooks_post_json_and_slack_forms(
    http: httpx.AsyncClient, allowed: Running
) -> None:
    owner, member = await make_user(http), await make_user(http)
    group = await make_group(http, owner, member)
    hook = await _hook(http, owner, group["id"], "CI")
    assert hook["name"] == "CI" and hook["url"].startswith(allowed.base + "/hooks/")
    listed = await http.get(f"/service/api/chats/{group['id']}/webhooks", headers=owner.headers)
    assert [h["id"] for h in listed.json()] == [hook["id"]]
    assert listed.json()[0]["url"] == hook["url"]
    refused = await http.post(
        f"/service/api/chats/{group['id']}/webhooks", json={"name": "x"}, headers=member.headers
    )
    assert refused.status_code == 403

    path = _path(hook["url"])
    plain = await http.post(path, json={"text": "build #1 passed"})
    assert plain.status_code == 200 and plain.text == "ok"
    named = await http.post(path, json={"text": "disk full", "username": "Monitoring"})
    assert named.status_code == 200
    form = await http.post(
        path, data={"payload": json.dumps({"text": "from a form", "username": "Monitoring"})}
    )
    assert form.status_code == 200, form.text

    got = await messages_of(http, member, group["id"])
    assert [(m["content"], m["sender"]["display_name"]) for m in got] == [
        ("build #1 passed", "CI"),
        ("disk full", "Monitoring"),
        ("from a form", "Monitoring"),
    ]
    assert got[1]["sender"]["id"] == got[2]["sender"]["id"] != got[0]["sender"]["id"]


async def test_webhook_errors_and_deletion(http: httpx.AsyncClient) -> None:
    owner = await make_user(http)
    group = await make_group(http, owner)
    hook = await _hook(http, owner, group["id"], "Alerts")
    path = _path(hook["url"])
    for body in ({"text": ""}, {"text": "   "}, {"username": "x"}, {"text": 5}):
        empty = await http.post(path, json=body)
        assert empty.status_code == 400, (body, empty.text)
        assert empty.json()["code"] == "validation_error"
    broken = await http.post(
        path, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    unknown = await http.post("/hooks/nope" + path[-6:], json={"text": "hi"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "webhook_not_found"
    deleted = await http.delete(
        f"/service/api/chats/{group['id']}/webhooks/{hook['id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    gone = await http.post(path, json={"text": "hi"})
    assert gone.status_code == 404
    assert (
        await http.get(f"/service/api/chats/{group['id']}/webhooks", headers=owner.headers)
    ).json() == []
    assert await messages_of(http, owner, group["id"]) == []


async def test_a_webhook_is_rate_limited(http: httpx.AsyncClient) -> None:
    """PARLEY_RATE_WEBHOOK is 3/minute on this server; each hook has its own budget."""
    owner = await make_user(http)
    group = await make_group(http, owner)
    first = _path((await _hook(http, owner, group["id"], "One"))["url"])
    second = _path((await _hook(http, owner, group["id"], "Two"))["url"])
    answers = [(await http.post(first, json={"text": f"n{i}"})).status_code for i in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = await http.post(first, json={"text": "again"})
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    assert (await http.post(second, json={"text": "other hook"})).status_code == 200
    contents = [m["content"] for m in await messages_of(http, owner, group["id"])]
    assert contents == ["n0", "n1", "n2", "other hook"]


# --- exports --------------------------------------------------------------------------------


async def _ready_zip(http: httpx.AsyncClient, who: Account, started: httpx.Response) -> Any:
    import io
    import zipfile

    assert started.status_code == 202, started.text
    assert started.json()["status"] == "pending"
    export_id = started.json()["id"]

    async def ready() -> dict[str, Any] | None:
        got = await http.get(f"/service/api/export/{export_id}", headers=who.headers)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["status"] != "failed", body
        return dict(body) if body["status"] == "ready" else None

    body = await poll(ready, timeout=20)
    download = await http.get(body["url"], headers=who.headers)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert body["size"] == len(download.content)
    return zipfile.ZipFile(io.BytesIO(download.content))


async def test_my_export_holds_my_profile_chats_messages_and_files(
    http: httpx.AsyncClient,
) -> None:
    me, peer = await make_user(http), await make_user(http)
    group = await make_group(http, me, peer, title="Export group")
    direct = (
        await http.post(
            "/service/api/chats", json={"type": "direct", "user_id": peer.id}, headers=me.headers
        )
    ).json()
    upload = await http.post(
        f"/service/api/chats/{group['id']}/attachments",
        files={"file": ("notes.txt", b"file body", "text/plain")},
        headers=me.headers,
    )
    assert upload.status_code == 201, upload.text
    await send(http, me, group["id"], "mine in the group", attachment_ids=[upload.json()["id"]])
    await send(http, peer, group["id"], "theirs in the group")
    await send(http, peer, direct["id"], "theirs in our direct chat")
    await send(http, me, direct["id"], "mine in our direct chat")

    started = await http.post("/service/api/export", headers=me.headers)
    again = await http.post("/service/api/export", headers=me.headers)
    assert again.status_code in (202, 409)  # 409 while the first is pending
    if again.status_code == 409:
        assert again.json()["code"] == "export_in_progress"
    archive = await _ready_zip(http, me, started)
    names = set(archive.namelist())
    profile = json.loads(archive.read("profile.json"))
    assert profile["id"] == me.id and profile["email"] == f"{me.username}@example.com"
    chats = {c["id"]: c for c in json.loads(archive.read("chats.json"))}
    assert {group["id"], direct["id"]} <= set(chats)
    in_group = json.loads(archive.read(f"messages/{group['id']}.json"))
    assert [m["content"] for m in in_group] == ["mine in the group"]
    [attachment] = in_group[0]["attachments"]
    assert attachment["path"] in names and archive.read(attachment["path"]) == b"file body"
    in_direct = json.loads(archive.read(f"messages/{direct['id']}.json"))
    assert [m["content"] for m in in_direct] == [
        "theirs in our direct chat",
        "mine in our direct chat",
    ]
    other = await make_user(http)
    hidden = await http.get(f"/service/api/export/{started.json()['id']}", headers=other.headers)
    assert hidden.status_code == 404


async def test_a_chat_export_is_for_its_managers_and_holds_every_message(
    http: httpx.AsyncClient,
) -> None:
    owner, member = await make_user(http), await make_user(http)
    group = await make_group(http, owner, member, title="Whole chat")
    await send(http, owner, group["id"], "one")
    await send(http, member, group["id"], "two")
    refused = await http.post(f"/service/api/chats/{group['id']}/export", headers=member.headers)
    assert refused.status_code == 403
    started = await http.post(f"/service/api/chats/{group['id']}/export", headers=owner.headers)
    archive = await _ready_zip(http, owner, started)
    assert "profile.json" not in archive.namelist()
    [chat] = json.loads(archive.read("chats.json"))
    assert chat["id"] == group["id"] and chat["title"] == "Whole chat"
    messages = json.loads(archive.read(f"messages/{group['id']}.json"))
    assert [(m["seq"], m["content"]) for m in messages] == [(1, "one"), (2, "two")]


async def test_an_export_expires_after_7_days(http: httpx.AsyncClient, allowed: Running) -> None:
    """The worker's sweep on a clock moved forward: the row and the file go; then 404."""
    me = await make_user(http)
    await make_group(http, me, title="Soon gone")
    started = await http.post("/service/api/export", headers=me.headers)
    await _ready_zip(http, me, started)
    export_id = started.json()["id"]
    async with allowed.state.reads() as session:
        row = await session.get(DataExport, export_id)
        assert row is not None and row.storage_key is not None
        key, expires_at = row.storage_key, row.expires_at
    assert await allowed.state.storage.read_bytes(key)  # the ZIP, kept meanwhile
    assert expires_at - datetime.now(UTC) > timedelta(days=6.9)
    state = allowed.state
    soon = Clock(lambda: expires_at - timedelta(seconds=1))
    await sweep_exports(state.sessions, state.storage, soon)
    kept = await http.get(f"/service/api/export/{export_id}", headers=me.headers)
    assert kept.status_code == 200 and kept.json()["status"] == "ready"
    later = Clock(lambda: expires_at + timedelta(seconds=1))
    assert await sweep_exports(state.sessions, state.storage, later) >= 1
    for path in (f"/service/api/export/{export_id}", f"/service/api/export/{export_id}/download"):
        gone = await http.get(path, headers=me.headers)
        assert gone.status_code == 404 and gone.json()["code"] == "export_not_found", path
    with pytest.raises(errors.NotFound):
        await state.storage.read_bytes(key)
    again = await http.post("/service/api/export", headers=me.headers)
    assert again.status_code == 202  # a new one may be asked for
    await _ready_zip(http, me, again)


async def test_a_large_attachment_is_streamed_into_the_export(
    http: httpx.AsyncClient, allowed: Running
) -> None:
    """A file of several chunks (256 KiB each) goes into the ZIP whole, byte for byte."""
    me = await make_user(http)
    group = await make_group(http, me, title="Big files")
    body = os.urandom(3 * 1024 * 1024 + 17)
    upload = await http.post(
        f"/service/api/chats/{group['id']}/attachments",
        files={"file": ("big.bin", body, "application/octet-stream")},
        headers=me.headers,
    )
    assert upload.status_code == 201, upload.text
    await send(http, me, group["id"], "the big one", attachment_ids=[upload.json()["id"]])
    archive = await _ready_zip(http, me, await http.post("/service/api/export", headers=me.headers))
    [message] = json.loads(archive.read(f"messages/{group['id']}.json"))
    assert archive.read(message["attachments"][0]["path"]) == body
