"""A server's life: metrics exposition, graceful shutdown of sockets, database outages."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import CI, Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import connect, make_user, send
from tests.waiting import eventually

SERVER_METRICS = [
    "app_request_total",
    "message_processing_time_seconds",
    "ws_manager_active_chats_total",
    "app_error_total",
    "app_uptime_seconds",
    "app_info",
    "http_requests_total",
    "messages_total",
    "websocket_connections_active",
]


async def test_metrics_names_values_and_promtool(client: httpx.AsyncClient, live: Running) -> None:
    me = await make_user(client)
    ws = await connect(live.ws_base, me)
    chats = (await client.get("/service/api/chats", headers=me.headers)).json()
    await send(client, me, chats[0]["id"], "counted")
    await client.get("/service/api/chats/999999999", headers=me.headers)
    text = (await client.get("/service/metrics")).text
    await ws.close()
    for name in SERVER_METRICS:
        assert f"# TYPE {name}" in text, name
    assert (
        'app_request_total{method="POST",route="/service/api/chats/{chat_id}/messages",status="201"}'
        in text
    )
    assert 'app_error_total{code="chat_not_found"}' in text
    assert "/service/api/chats/999999999" not in text  # route templates, never raw paths
    sent = [line for line in text.splitlines() if line.startswith("messages_total ")]
    assert sent and float(sent[0].split()[1]) >= 1
    promtool = shutil.which("promtool")
    if promtool is None:
        if CI:
            pytest.fail("promtool is required in CI (Debian package prometheus)")
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "ws_manager_active_chats_total" not in line
    ]
    assert problems == [], problems  # the seed's gauge name with a _total suffix is expected


async def test_shutdown_closes_sockets_for_reconnect(tmp_path: Path) -> None:
    running, server, task = await start_server(test_settings(tmp_path))
    async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
        me = await make_user(http)
    ws = await connect(running.ws_base, me)
    await stop_server(server, task)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)


async def test_database_outage_answers_503_and_recovers(tmp_path: Path) -> None:
    """The SQLite file's directory is made unreadable: nothing is acknowledged, then it recovers."""
    if os.geteuid() == 0:
        pass  # root ignores permissions; we swap the engine's URL target instead, below
    running, server, task = await start_server(test_settings(tmp_path))
    state = running.state
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            general = (await http.get("/service/api/chats", headers=me.headers)).json()[0]["id"]
            ws = await connect(running.ws_base, me)
            good_engine, good_sessions = state.engine, state.sessions
            from parley.server.db.session import make_engine, make_sessionmaker

            dead = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_size=1)
            state.engine, state.sessions = dead, make_sessionmaker(dead)
            try:
                health = await http.get("/health")
                assert health.status_code == 503 and health.json()["status"] == "unavailable"
                assert health.json()["checks"]["database"].startswith("error")
                down = await http.post(
                    f"/service/api/chats/{general}/messages",
                    json={"content": "lost?"},
                    headers=me.headers,
                )
                assert down.status_code == 503 and down.json()["code"] == "unavailable"
                await ws.send(
                    json.dumps(
                        {"type": "send", "chat_id": general, "content": "x", "client_id": "c-down"}
                    )
                )
                from tests.factories import recv_type

                error = await recv_type(ws, "error")
                assert error["code"] == "unavailable" and error["ref"] == "c-down"
            finally:
                state.engine, state.sessions = good_engine, good_sessions
                await dead.dispose()
            assert (await http.get("/health")).status_code == 200
            again = await http.post(
                f"/service/api/chats/{general}/messages",
                json={"content": "back", "client_id": "c-down"},
                headers=me.headers,
            )
            assert again.status_code == 201 and again.json()["content"] == "back"
            history = (
                await http.get(f"/service/api/chats/{general}/messages", headers=me.headers)
            ).json()
            assert [m["content"] for m in history if m["sender"]["id"] == me.id] == ["back"]
            await ws.close()
    finally:
        await stop_server(server, task)


async def test_handshake_beyond_max_connections_gets_503(tmp_path: Path) -> None:
    running, server, task = await start_server(test_settings(tmp_path, MAX_CONNECTIONS=2))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
        first, second = await connect(running.ws_base, me), await connect(running.ws_base, me)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect(running.ws_base, me)
        assert refused.value.response.status_code == 503
        assert json.loads(refused.value.response.body)["code"] == "unavailable"
        await first.close()

        async def third_connects() -> Any:
            try:
                return await connect(running.ws_base, me)
            except websockets.InvalidStatus:
                return None

        third = await eventually(third_connects, what="a freed slot usable again")
        await third.close()
        await second.close()
    finally:
        await stop_server(server, task)
