"""Web Push against a real receiver: a loopback HTTP endpoint (allowed by
PARLEY_OUTBOUND_ALLOW) that checks the VAPID JWT's signature (RFC 8292) and decrypts the
aes128gcm payload (RFC 8291) with the subscription's private key. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import http_ece
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, connect, make_direct, make_group, make_user, recv_type, send
from tests.waiting import eventually


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's subscription: its own key pair and auth secret, and what it received."""

    path: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    received: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # then 201
    requests: int = 0

    @property
    def keys(self) -> dict[str, str]:
        public = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64(public), "auth": b64(self.auth)}


@dataclass
class Receiver:
    """The push service: checks each request, decrypts it for its device."""

    server_key: str = ""
    devices: dict[str, Device] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def device(self) -> Device:
        made = Device(f"/push/{os.urandom(6).hex()}")
        self.devices[made.path] = made
        return made

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, extra = self.take(path, headers, body)
            text = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            end = "Content-Length: 0\r\nConnection: close\r\n\r\n"
            writer.write(f"HTTP/1.1 {status} X\r\n{text}{end}".encode())
            await writer.drain()
        finally:
            writer.close()

    def take(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        device = self.devices.get(path)
        if device is None:
            return 404, {}
        device.requests += 1
        if device.answers:
            return device.answers.pop(0)
        scheme, _, params = headers.get("authorization", "").partition(" ")
        parts = dict(p.split("=", 1) for p in params.split(","))
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(parts["k"]))
        try:
            claims = jwt.decode(parts["t"], key, algorithms=["ES256"], audience=self.base)
        except jwt.PyJWTError as exc:
            self.problems.append(f"bad VAPID token: {exc}")
            return 403, {}
        if scheme != "vapid" or parts["k"] != self.server_key or "sub" not in claims:
            self.problems.append(f"bad VAPID header: {headers.get('authorization')}")
            return 403, {}
        if headers.get("content-encoding") != "aes128gcm" or headers.get("ttl") != "86400":
            self.problems.append(f"bad headers: {headers}")
        plain = http_ece.decrypt(
            body, private_key=device.private, auth_secret=device.auth, version="aes128gcm"
        )
        device.received.append(json.loads(plain))
        return 201, {}


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    made.server = await asyncio.start_server(made.serve, "127.0.0.1", 0)
    yield made
    made.server.close()


@pytest.fixture(scope="module")
async def pushing(
    database_url: str | None, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    settings = test_settings(
        tmp_path_factory.mktemp("push"), PARLEY_OUTBOUND_ALLOW="127.0.0.0/8", **overrides
    )
    running, server, task = await start_server(settings)
    async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
        someone = await make_user(http)
        key = await http.get("/service/api/push/key", headers=someone.headers)
    receiver.server_key = key.json()["public_key"]
    yield running
    await stop_server(server, task)


@pytest.fixture
async def http(pushing: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pushing.base, timeout=20, cookies=no_cookies()) as c:
        yield c


async def subscribe(
    http: httpx.AsyncClient, receiver: Receiver, who: Account, device: Device | None = None
) -> Device:
    device = device or receiver.device()
    answer = await http.post(
        "/service/api/push/subscriptions",
        json={"endpoint": receiver.base + device.path, "keys": device.keys},
        headers=who.headers,
    )
    assert answer.status_code in (200, 201), answer.text
    return device


async def wait_for(device: Device, count: int) -> list[dict[str, Any]]:
    await eventually(
        lambda: len(device.received) >= count, timeout=10, what=f"{count} push(es) to a device"
    )
    return device.received


async def test_the_key_and_subscriptions(
    http: httpx.AsyncClient, receiver: Receiver, pushing: Running
) -> None:
    me = await make_user(http)
    key = (await http.get("/service/api/push/key", headers=me.headers)).json()["public_key"]
    assert len(unb64(key)) == 65 and unb64(key)[0] == 4
    assert (pushing.settings.data_dir / "vapid_private.pem").stat().st_mode & 0o077 == 0
    device = receiver.device()
    body = {"endpoint": receiver.base + device.path, "keys": device.keys}
    first = await http.post("/service/api/push/subscriptions", json=body, headers=me.headers)
    again = await http.post("/service/api/push/subscriptions", json=body, headers=me.headers)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"] and "created_at" in first.json()
    plain = {"endpoint": "http://push.example.com/x", "keys": device.keys}
    refused = await http.post("/service/api/push/subscriptions", json=plain, headers=me.headers)
    assert refused.status_code == 422
    for _ in range(9):
        await subscribe(http, receiver, me)
    over = await http.post(
        "/service/api/push/subscriptions",
        json={"endpoint": receiver.base + "/push/eleventh", "keys": device.keys},
        headers=me.headers,
    )
    assert over.status_code == 409 and over.json()["code"] == "too_many_subscriptions"
    listed = (await http.get("/service/api/push/subscriptions", headers=me.headers)).json()
    assert len(listed) == 10
    gone = await http.delete(
        f"/service/api/push/subscriptions/{first.json()['id']}", headers=me.headers
    )
    assert gone.status_code == 204
    again_gone = await http.delete(
        f"/service/api/push/subscriptions/{first.json()['id']}", headers=me.headers
    )
    assert again_gone.status_code == 404


async def test_a_direct_message_is_pushed_encrypted_and_signed_never_to_its_sender(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    me, peer = await make_user(http), await make_user(http)
    mine, theirs = await subscribe(http, receiver, me), await subscribe(http, receiver, peer)
    chat = await make_direct(http, me, peer)
    sent = await send(http, me, chat["id"], "x" * 200)
    [payload] = await wait_for(theirs, 1)
    assert payload == {
        "type": "message",
        "chat_id": chat["id"],
        "message_id": sent["id"],
        "seq": sent["seq"],
        "title": me.user["display_name"],
        "body": "x" * 140,
        "tag": f"chat-{chat['id']}",
    }
    reply = await send(http, peer, chat["id"], "back to you")
    assert (await wait_for(mine, 1))[0]["message_id"] == reply["id"]
    assert len(theirs.received) == 1  # its own reply was not pushed to it
    assert receiver.problems == []


async def test_groups_push_mentions_only_and_mute_blocks_and_activity_hold_back(
    http: httpx.AsyncClient, receiver: Receiver, pushing: Running
) -> None:
    owner, reader, muter, blocker = [await make_user(http) for _ in range(4)]
    devices = {a.id: await subscribe(http, receiver, a) for a in (reader, muter, blocker)}
    group = await make_group(http, owner, reader, muter, blocker, title="Team")
    await http.patch(
        f"/service/api/chats/{group['id']}/settings",
        json={"muted_until": "forever"},
        headers=muter.headers,
    )
    block = await http.post(
        "/service/api/block", json={"user_id": owner.id}, headers=blocker.headers
    )
    assert block.status_code == 201
    # a group's default notify level is `all`: the reader chooses mentions only here
    # (tests/integration/test_push_mind.py covers the levels themselves)
    level = await http.patch(
        f"/service/api/chats/{group['id']}/settings",
        json={"notify": "mentions"},
        headers=reader.headers,
    )
    assert level.json()["notify"] == "mentions"
    await send(http, owner, group["id"], "no mention: nobody hears")
    names = f"@{reader.username} @{muter.username} @{blocker.username}"
    mention = await send(http, owner, group["id"], f"{names} look")
    assert (await wait_for(devices[reader.id], 1))[0]["message_id"] == mention["id"]
    assert (await wait_for(devices[muter.id], 1))[0]["message_id"] == mention["id"]
    assert devices[reader.id].received[0]["title"] == f"{owner.user['display_name']} · Team"
    # active here: a frame within the idle window holds the push back
    ws = await connect(pushing.ws_base, reader)
    try:
        await ws.send(json.dumps({"type": "ping"}))
        await recv_type(ws, "pong")  # the frame was handled: this socket is active now
        held = await send(http, owner, group["id"], f"{names} again")
        marker = await send(http, owner, group["id"], f"@{muter.username} marker")
        await wait_for(devices[muter.id], 3)
        assert [p["message_id"] for p in devices[muter.id].received][1:] == [
            held["id"],
            marker["id"],
        ]
    finally:
        await ws.close()
    assert len(devices[reader.id].received) == 1
    assert devices[blocker.id].received == [] and devices[blocker.id].requests == 0


async def test_a_reply_is_pushed_to_those_who_follow_its_thread(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    author, replier, other = [await make_user(http) for _ in range(3)]
    devices = {a.id: await subscribe(http, receiver, a) for a in (author, replier, other)}
    group = await make_group(http, author, replier, other, title="Team")
    for account in (author, replier, other):  # a group's default is `all`: mentions only here
        level = await http.patch(
            f"/service/api/chats/{group['id']}/settings",
            json={"notify": "mentions"},
            headers=account.headers,
        )
        assert level.json()["notify"] == "mentions"
    root = await send(http, author, group["id"], "a question")
    first = await send(http, replier, group["id"], "an answer", thread_root_id=root["id"])
    # the root's author follows the thread once it has a reply; the replier sent it
    assert (await wait_for(devices[author.id], 1))[0]["message_id"] == first["id"]
    second = await send(http, author, group["id"], "thanks", thread_root_id=root["id"])
    assert (await wait_for(devices[replier.id], 1))[0]["message_id"] == second["id"]
    marker = await send(http, author, group["id"], f"@{other.username} marker")
    assert (await wait_for(devices[other.id], 1))[0]["message_id"] == marker["id"]
    assert len(devices[author.id].received) == 1  # never its own reply


async def test_410_deletes_and_429_is_retried(http: httpx.AsyncClient, receiver: Receiver) -> None:
    me, gone_user, busy_user = [await make_user(http) for _ in range(3)]
    gone = await subscribe(http, receiver, gone_user)
    gone.answers = [(410, {})]
    busy = await subscribe(http, receiver, busy_user)
    busy.answers = [(429, {"Retry-After": "0"}), (503, {})]
    await send(http, me, (await make_direct(http, me, gone_user))["id"], "to a gone device")
    sent = await send(http, me, (await make_direct(http, me, busy_user))["id"], "to a busy one")
    [payload] = await wait_for(busy, 1)
    assert payload["message_id"] == sent["id"] and busy.requests == 3

    async def gone_is_deleted() -> bool:
        listed = await http.get("/service/api/push/subscriptions", headers=gone_user.headers)
        return listed.json() == []

    await eventually(gone_is_deleted, what="the 410 subscription deleted")
    assert gone.requests == 1


async def test_a_full_queue_drops_and_counts(pushing: Running, http: httpx.AsyncClient) -> None:
    pusher = pushing.state.pusher
    before = pusher.dropped._value.get()
    blocked = asyncio.Queue(1)
    original, pusher.messages = pusher.messages, blocked
    try:
        blocked.put_nowait(object())  # the queue is full: nothing more fits
        pusher.on_new([object(), object()])
    finally:
        pusher.messages = original
    assert pusher.dropped._value.get() == before + 2
    metrics = await http.get("/service/metrics")
    assert f"push_dropped_total {before + 2}" in metrics.text
