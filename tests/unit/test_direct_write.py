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

from parley.server.realtime.connection import Close, Connection, drain
from parley.server.realtime.events import ChatFrame
from parley.server.realtime.hub import Hub
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
        self.writes: list[bytes] = []  # each direct write, as written
        self.resumed = asyncio.Event()
        self.resumed.set()

    def write_now(self, data: bytes, force: bool = False) -> bool:
        if self.paused and not force:
            return False
        self.direct += 1
        self.writes.append(data)
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
    hub: Hub, user_id: int, *chats: int, queue_size: int = 8, coalesce: bool = False
) -> tuple[Connection, FakeSocket, asyncio.Task[Close]]:
    sock = FakeSocket()
    conn = Connection(user_id, user_id * 100, queue_size)
    conn.chats = set(chats)
    conn.write_now = sock.write_now
    if coalesce:
        conn.outbox = hub.outbox
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


async def test_frames_of_one_loop_turn_after_the_first_go_out_in_one_write() -> None:
    hub = Hub()
    a, sa, wa = connected(hub, 1, 10, coalesce=True)
    b, sb, wb = connected(hub, 2, 10, coalesce=True)
    for n in range(3):  # one writer batch: three messages in the same turn
        await hub.handle(ChatFrame(10, f"m{n}"))
    a.push("error for a")
    assert parse(b"".join(sa.writes)) == ["m0"]  # the first at once, the rest held
    await asyncio.sleep(0)  # the turn ends
    assert [parse(w) for w in sa.writes] == [["m0"], ["m1", "m2", "error for a"]]
    assert [parse(w) for w in sb.writes] == [["m0"], ["m1", "m2"]]
    await hub.handle(ChatFrame(10, "next turn"))  # a new turn: written at once again
    assert parse(sa.writes[-1]) == parse(sb.writes[-1]) == ["next turn"]
    await asyncio.sleep(0)
    for conn, writer in ((a, wa), (b, wb)):
        conn.close(1000)
        assert await writer == Close(1000)


async def test_held_frames_follow_a_first_write_that_filled_the_buffer_but_not_a_close() -> None:
    hub = Hub()
    a, sa, wa = connected(hub, 1, 10, coalesce=True)
    b, sb, wb = connected(hub, 2, 10, coalesce=True)
    await hub.handle(ChatFrame(10, "m0"))
    sa.pause()  # a's first write of the turn reached its high-water mark
    await hub.handle(ChatFrame(10, "m1"))
    await hub.handle(ChatFrame(10, "m2"))
    b.close(4001, "session ended")  # b closes before the turn ends
    await asyncio.sleep(0)
    assert sa.texts() == ["m0", "m1", "m2"] and a.queue.empty()
    assert sb.texts() == ["m0"]
    await hub.handle(ChatFrame(10, "m3"))  # a is still paused: queued now
    assert a.queue.qsize() == 1 and sa.texts() == ["m0", "m1", "m2"]
    sa.resume()
    await settle()
    assert sa.texts() == ["m0", "m1", "m2", "m3"]
    assert await wb == Close(4001, "session ended")
    a.close(1000)
    assert await wa == Close(1000)


async def test_a_turn_holds_a_bounded_amount_then_frames_queue_behind_it() -> None:
    hub = Hub()
    a, sock, writer = connected(hub, 1, 10, queue_size=4, coalesce=True)
    big = "x" * 30_000
    replies = [f"{n} {big}" for n in range(10)]  # a sync: replies sent without yielding
    for reply in replies[:7]:
        await a.send(reply)
    # One written at once, then held up to 64 KiB (three of 30 KB): those go out together
    # as soon as one more would pass the limit, and the rest queue behind them.
    assert [parse(w) for w in sock.writes] == [replies[:1], replies[1:4]]
    assert a.held is None and a.queue.qsize() == 3
    await settle()
    assert sock.texts() == replies[:7] and a.queue.empty()
    sock.pause()  # the client stops reading: the next turn's replies queue, bounded
    for reply in replies[7:]:
        a.push(reply)
    for _ in range(5):
        a.push("more")
    assert a.closing and a.queue.get_nowait() == Close(1013, "send queue full")
    writer.cancel()
