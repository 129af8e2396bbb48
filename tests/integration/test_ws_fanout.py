"""Fan-out through uvicorn with frames written directly to the sockets (SQLite, PostgreSQL).

The hub frames a chat event once and writes the bytes to every socket that keeps up; these
tests check what a client sees of that: every frame, in order, replies among them, and a
client that stops reading closed with 1013 while the others go on receiving.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import connect, make_group, make_user, send
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


async def frames_until(ws: Any, done: Any, timeout: float = 15) -> list[dict[str, Any]]:
    """Every frame received until `done(frames)` holds."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not done(frames):
            frames.append(json.loads(await ws.recv()))
    return frames


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == kind]


async def test_fanned_out_frames_and_replies_arrive_complete_and_in_order(
    live: Running, client: httpx.AsyncClient
) -> None:
    me, peer, third = [await make_user(client) for _ in range(3)]
    group = await make_group(client, me, peer, third)
    sends, pings = 60, 20
    mine, theirs, others = [await connect(live.ws_base, who) for who in (me, peer, third)]
    try:
        conns = [c for who in (me, peer, third) for c in live.state.hub.connections_of(who.id)]
        assert len(conns) == 3 and all(c.write_now is not None for c in conns)  # direct path
        for n in range(sends):
            frame = {"type": "send", "chat_id": group["id"], "content": f"m{n}"}
            await mine.send(json.dumps({**frame, "client_id": f"c{n}"}))
            if n % 3 == 0:
                await mine.send(json.dumps({"type": "ping"}))
                await theirs.send(json.dumps({"type": "ping"}))

        def complete(frames: list[dict[str, Any]]) -> bool:
            pongs = len(of_type(frames, "pong"))
            return len(of_type(frames, "message")) == sends and pongs == pings

        received = await asyncio.gather(*(frames_until(ws, complete) for ws in (mine, theirs)))
        third_frames = await frames_until(others, lambda f: len(of_type(f, "message")) == sends)
    finally:
        for ws in (mine, theirs, others):
            await ws.close()
    for frames in (*received, third_frames):
        messages = [f["message"] for f in of_type(frames, "message")]
        assert [m["seq"] for m in messages] == list(range(1, sends + 1))
        assert [m["content"] for m in messages] == [f"m{n}" for n in range(sends)]
    acks = [f["message"]["client_id"] for f in of_type(received[0], "message")]
    assert acks == [f"c{n}" for n in range(sends)]
    assert of_type(third_frames, "pong") == []  # replies go to the asker only


async def test_a_reader_that_stops_is_closed_1013_while_the_others_get_everything(
    tmp_path: Path,
) -> None:
    running, server, task = await start_server(test_settings(tmp_path, PARLEY_WS_SEND_QUEUE=4))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            slow, talker, reader = [await make_user(http) for _ in range(3)]
            group = await make_group(http, talker, slow, reader)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(
                sock, ("127.0.0.1", int(running.base.rsplit(":", 1)[1]))
            )
            stalled = await connect(running.ws_base, slow, sock=sock, max_queue=1, compression=None)
            fast = await connect(running.ws_base, reader)
            got: list[str] = []

            async def read_all() -> None:
                while True:
                    frame = json.loads(await fast.recv())
                    if frame["type"] == "message":
                        got.append(frame["message"]["content"])

            reading = asyncio.create_task(read_all())
            big = "😀" * 3990  # 16 KB per frame
            sent: list[str] = []
            while len(sent) < 300 and not all(
                c.closing for c in running.state.hub.connections_of(slow.id)
            ):
                content = f"{len(sent)} {big}"
                await send(http, talker, group["id"], content)
                sent.append(content)
            assert len(sent) < 300, "the server kept buffering for a client that never reads"
            for _ in range(5):  # and it goes on: the others are not held up by it
                content = f"after {len(sent)}"
                await send(http, talker, group["id"], content)
                sent.append(content)
            await eventually(lambda: len(got) >= len(sent), 15, what="every message read")
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            assert got == sent
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await stalled.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            await fast.close()
    finally:
        await stop_server(server, task)
