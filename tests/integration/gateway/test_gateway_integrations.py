"""Bots and incoming webhooks through the gateway in front of a real `parley server`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.processes import stop_process, wait_http

from .conftest import JWT_SECRET, RunningGateway, free_port


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    data = tmp_path_factory.mktemp("server-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_", "DB_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="warning",
        JWT_SECRET=JWT_SECRET,
        PARLEY_SESSION_CHECK_INTERVAL="0.5",
    )
    args = [sys.executable, "-m", "parley.cli", "server", "--port", str(port),
            "--data-dir", str(data)]  # fmt: skip
    process = subprocess.Popen(args, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture
def front(server_url: str, make_gateway: Any) -> RunningGateway:
    running: RunningGateway = make_gateway([server_url])
    return running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _owner(http: httpx.AsyncClient) -> dict[str, Any]:
    name = "gwi" + uuid.uuid4().hex[:10]
    response = await http.post(
        "/service/api/register",
        json={"username": name, "email": f"{name}@example.com", "password": "correct horse 1"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_bot_token_works_through_the_gateway_until_rotated(front: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as http:
        owner = await _owner(http)
        me = _bearer(owner["access_token"])
        created = await http.post(
            "/service/api/bots",
            json={"username": "gwbot" + uuid.uuid4().hex[:8], "display_name": "Gate bot"},
            headers=me,
        )
        assert created.status_code == 201, created.text
        bot, token = created.json()["bot"], created.json()["token"]
        group = await http.post(
            "/service/api/chats",
            json={"type": "group", "title": "Bots", "member_ids": [bot["id"]]},
            headers=me,
        )
        chat_id = group.json()["id"]
        profile = await http.get("/service/api/profile", headers=_bearer(token))
        assert profile.status_code == 200 and profile.json()["is_bot"] is True

        url = f"{front.ws_url}/ws"
        async with websockets.connect(url, additional_headers=_bearer(token), proxy=None) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert hello["type"] == "hello" and hello["user"]["id"] == bot["id"]
            frame = {"type": "send", "chat_id": chat_id, "content": "hi from a bot"}
            await ws.send(json.dumps(frame))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if event["type"] == "message":
                    break
            assert event["message"]["sender"]["id"] == bot["id"]

            rotated = await http.post(f"/service/api/bots/{bot['id']}/token", headers=me)
            assert rotated.status_code == 200
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        old = await http.get("/service/api/profile", headers=_bearer(token))
        assert old.status_code == 401
        new = await http.get("/service/api/profile", headers=_bearer(rotated.json()["token"]))
        assert new.status_code == 200


async def test_incoming_webhooks_are_a_public_route_of_the_gateway(front: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as http:
        owner = await _owner(http)
        me = _bearer(owner["access_token"])
        group = await http.post(
            "/service/api/chats",
            json={"type": "group", "title": "CI", "member_ids": []},
            headers=me,
        )
        chat_id = group.json()["id"]
        hook = await http.post(
            f"/service/api/chats/{chat_id}/webhooks", json={"name": "Builds"}, headers=me
        )
        assert hook.status_code == 201, hook.text
        url = hook.json()["url"]
        assert url.startswith(front.url + "/hooks/"), url  # the address people reach
        posted = await http.post(url.removeprefix(front.url), json={"text": "green"})
        assert posted.status_code == 200 and posted.text == "ok"
        form = await http.post(
            url.removeprefix(front.url), data={"payload": json.dumps({"text": "form"})}
        )
        assert form.status_code == 200
        unknown = await http.post("/hooks/unknown-token", json={"text": "x"})
        assert unknown.status_code == 404 and unknown.json()["code"] == "webhook_not_found"
        listing = await http.get("/hooks/whatever")  # only POST is routed
        assert listing.status_code in (404, 405)
        messages = await http.get(f"/service/api/chats/{chat_id}/messages", headers=me)
        assert [m["content"] for m in messages.json()] == ["green", "form"]
        assert messages.json()[0]["sender"]["display_name"] == "Builds"
