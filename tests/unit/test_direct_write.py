"""The hub's direct-write path: frames framed once and written to the socket from the dispatch.

A fake socket stands in for uvicorn's transport (`write_now` refuses while it is paused),
and the real writer loop (`drain`) is the slow path: frames must keep their order across
both, a slow client is still closed with 1013 without holding up the others, and nothing
reaches a closed connection.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from parley.server.realtime.events import ChatFrame
from parley.server.realtime.hub import Close, Connection, Hub, drain
from parley.wsserver import text_frame


def parse(data: bytes) -> list[str]:
    """The text frames in `data`, read by the `websockets` client's own parser."""
    client = ClientProtocol(parse_uri("ws://test/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    frames = client.events_received()
    assert client.parser_exc is None
    assert all(f.opcode is Opcode.TEXT and f.fin for f in frames)
    return [bytes(f.data).decode() for f in frames]


class FakeSocket:
    """A transport: bytes written while not paused; the writer's path writes when it may."""

    def __init__(self) -> None:
        self.wire = bytearray()
        self.paused = False
        self.direct = 0  # writes taken from the dispatch
        self.resumed = asyncio.Event()
        self.resumed.set()

    def write_now(self, data: bytes) -> bool:
        if self.paused:
            return False
        self.direct += 1
        self.wire += data
        return True

    def pause(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume(self) -> None:
        self.paused = False
        self.resumed.set()

    async def send_text(self, text: str) -> None:
        await self.resumed.wait()
        self.wire += text_frame(text)

    async def send_many(self, batch: list[str]) -> None:
        await self.resumed.wait()
        self.wire += b"".join(text_frame(t) for t in batch)

    def texts(self) -> list[str]:
        return parse(bytes(self.wire))


def connected(
    hub: Hub, user_id: int, *chats: int, queue_size: int = 8
) -> tuple[Connection, FakeSocket, asyncio.Task[Close]]:
    sock = FakeSocket()
    conn = Connection(user_id, user_id * 100, queue_size)
    conn.chats = set(chats)
    conn.write_now = sock.write_now
    hub.connect(conn)
    writer = asyncio.create_task(drain(conn, sock.send_text, sock.send_many))
    return conn, sock, writer


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("text", ["", "a" * 125, "b" * 126, "é" * 40_000, "c" * 65_536])
def test_text_frame_is_a_valid_unmasked_frame_of_any_length(text: str) -> None:
    assert parse(text_frame(text)) == [text]
    assert parse(text_frame(text) + text_frame("next")) == [text, "next"]


async def test_chat_frames_are_written_directly_in_order_to_every_member() -> None:
    hub = Hub()
    a, sa, wa = connected(hub, 1, 10)
    b, sb, wb = connected(hub, 2, 10)
    _, sc, wc = connected(hub, 3, 11)
    for n in range(5):
        await hub.handle(ChatFrame(10, f"m{n}", sender_id=1))
    assert sa.texts() == sb.texts() == [f"m{n}" for n in range(5)]
    assert sc.texts() == []
    assert sa.direct == sb.direct == 5 and a.queue.empty() and b.queue.empty()
    for conn, writer in ((a, wa), (b, wb)):
        conn.close(1000)
        assert await writer == Close(1000)
    wc.cancel()


async def test_a_paused_socket_queues_and_no_frame_overtakes_the_queued_ones() -> None:
    hub = Hub()
    a, sock, writer = connected(hub, 1, 10)
    await hub.handle(ChatFrame(10, "m0"))
    sock.pause()  # the client stopped reading for a moment
    await hub.handle(ChatFrame(10, "m1"))
    await hub.handle(ChatFrame(10, "m2"))
    await settle()  # the writer took m1 and waits for room, holding it
    assert a.busy
    sock.resume()  # room again, but the writer has not run yet:
    await hub.handle(ChatFrame(10, "m3"))  # must not go ahead of m1 and m2
    reply = asyncio.create_task(a.send("pong"))  # a reply takes the same path
    await settle()
    await reply
    await hub.handle(ChatFrame(10, "m4"))
    await settle()
    assert sock.texts() == ["m0", "m1", "m2", "m3", "pong", "m4"]
    assert not a.busy and a.queue.empty()
    written = sock.direct
    await hub.handle(ChatFrame(10, "m5"))  # caught up: direct again
    assert sock.direct == written + 1 and sock.texts()[-1] == "m5"
    a.close(1000)
    assert await writer == Close(1000)


async def test_a_client_that_stops_reading_is_closed_1013_and_the_others_still_receive() -> None:
    hub = Hub()
    slow, slow_sock, slow_writer = connected(hub, 1, 10, queue_size=3)
    fast, fast_sock, fast_writer = connected(hub, 2, 10, queue_size=3)
    slow_sock.pause()  # never resumed
    for n in range(10):
        await hub.handle(ChatFrame(10, f"m{n}"))
        await settle()
    # Closed with 1013, its backlog dropped; its writer is stuck on the full socket (in
    # the server, ws.py cancels it after a grace period and drops the connection).
    assert slow.closing and slow.queue.get_nowait() == Close(1013, "send queue full")
    assert slow.busy and not slow_writer.done() and slow_sock.texts() == []
    slow_writer.cancel()
    assert fast_sock.texts() == [f"m{n}" for n in range(10)] and not fast.closing
    fast.close(1000)
    assert await fast_writer == Close(1000)


async def test_a_blocked_sender_and_the_skipped_user_get_nothing_directly() -> None:
    hub = Hub()
    a, sa, wa = connected(hub, 1, 10)
    b, sb, wb = connected(hub, 2, 10)
    c, sc, wc = connected(hub, 3, 10)
    b.blocked = {1}
    await hub.handle(ChatFrame(10, "from 1", sender_id=1))
    await hub.handle(ChatFrame(10, "typing", sender_id=3, skip_user=3))
    assert sa.texts() == ["from 1", "typing"]
    assert sb.texts() == ["typing"]
    assert sc.texts() == ["from 1"]
    for conn, writer in ((a, wa), (b, wb), (c, wc)):
        conn.close(1000)
        await writer


async def test_nothing_is_written_after_close() -> None:
    hub = Hub()
    a, sock, writer = connected(hub, 1, 10)
    await hub.handle(ChatFrame(10, "before"))
    a.close(4001, "session ended")
    await hub.handle(ChatFrame(10, "after"))
    a.push("late")
    await a.send("late reply")
    assert await writer == Close(4001, "session ended")
    assert sock.texts() == ["before"]


async def test_a_reply_waits_behind_queued_frames_then_goes_out_in_order() -> None:
    hub = Hub()
    a, sock, writer = connected(hub, 1, 10, queue_size=2)
    sock.pause()
    await hub.handle(ChatFrame(10, "m0"))
    await settle()  # the writer holds m0
    await hub.handle(ChatFrame(10, "m1"))
    await hub.handle(ChatFrame(10, "m2"))  # the queue (2) is full now
    reply = asyncio.create_task(a.send("synced"))
    await settle()
    assert not reply.done() and not a.closing  # waits for room, within its 5 s
    sock.resume()
    await asyncio.wait_for(reply, 1)
    await settle()
    assert sock.texts() == ["m0", "m1", "m2", "synced"]
    a.close(1000)
    assert await writer == Close(1000)


async def test_a_frame_queued_before_the_writer_woke_is_not_overtaken() -> None:
    hub = Hub()
    a, sock, writer = connected(hub, 1, 10)
    sock.pause()
    await hub.handle(ChatFrame(10, "m1"))  # queued; the writer is woken but has not run
    sock.resume()
    await hub.handle(ChatFrame(10, "m2"))
    await settle()
    assert sock.texts() == ["m1", "m2"]
    a.close(1000)
    assert await writer == Close(1000)
