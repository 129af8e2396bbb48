"""Request bodies at the server: 64 KiB for JSON (413 unread), uploads their own, 408 if slow."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, make_group, make_user
from tests.waiting import let_time_pass

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


async def raw_request(
    base: str, head: list[str], *parts: bytes, pause: float = 0.0
) -> tuple[int, str, dict[str, str]]:
    """Sends a request by hand, so a test can stop sending or send slowly."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(("\r\n".join([*head, "Host: x", "", ""])).encode())
        for part in parts:
            await let_time_pass(pause, "a slow client")
            writer.write(part)
            await writer.drain()
        top = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode().lower()
        length = next(
            int(line.split(":")[1])
            for line in top.splitlines()
            if line.startswith("content-") and line.startswith("content-length:")
        )
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
    finally:
        writer.close()
    return int(top.split()[1]), top, body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


async def test_json_body_over_64k_is_413_without_being_read(
    live: Running, client: httpx.AsyncClient
) -> None:
    me = await make_user(client)
    auth = f"Authorization: {me.headers['Authorization']}"
    head = ["POST /service/api/chats HTTP/1.1", auth, "Content-Type: application/json"]
    status, _top, body = await raw_request(live.base, [*head, "Content-Length: 65537"])
    assert status == 413  # answered with the body never sent
    assert body == {"detail": "Request body larger than 65536 bytes", "code": "payload_too_large"}
    chunked = [_chunk(b" " * 16384) for _ in range(5)]
    status, _top, body = await raw_request(
        live.base, [*head, "Transfer-Encoding: chunked"], *chunked
    )
    assert status == 413 and body["code"] == "payload_too_large"
    # Just under the limit reaches the route (and is judged by its own rules).
    padded = json.dumps({"type": "group", "title": "t" + " " * 10, "member_ids": []})
    padded += " " * (65536 - len(padded))
    created = await client.post(
        "/service/api/chats",
        content=padded,
        headers={**me.headers, "Content-Type": "application/json"},
    )
    assert created.status_code == 201, created.text


async def test_uploads_keep_their_own_limit_above_64k(
    live: Running, client: httpx.AsyncClient
) -> None:
    me: Account = await make_user(client)
    chat = await make_group(client, me)
    data = b"plain text, not small\n" * 10_000  # 220 KB
    response = await client.post(
        f"/service/api/chats/{chat['id']}/attachments",
        files={"file": ("notes.txt", data, "text/plain")},
        headers=me.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data)


@pytest.mark.parametrize("upload", [False, True])
async def test_a_body_slower_than_the_timeout_gets_408(tmp_path: Path, upload: bool) -> None:
    running, server, task = await start_server(test_settings(tmp_path, PARLEY_BODY_TIMEOUT=0.5))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            chat = await make_group(http, me)
        path = f"/service/api/chats/{chat['id']}/attachments" if upload else "/service/api/chats"
        kind = "multipart/form-data; boundary=b0" if upload else "application/json"
        head = [
            f"POST {path} HTTP/1.1",
            f"Authorization: {me.headers['Authorization']}",
            f"Content-Type: {kind}",
            "Content-Length: 400",
        ]
        started = time.monotonic()
        first = b'--b0\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        status, top, body = await raw_request(running.base, head, first if upload else b"{")
        assert 0.4 < time.monotonic() - started < 5
        assert status == 408
        assert body == {"detail": "The request body arrived too slowly", "code": "request_timeout"}
        assert "connection: close" in top
    finally:
        await stop_server(server, task)
