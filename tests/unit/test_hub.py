"""The hub on its own: fan-out by chat, filters, membership, session ends, back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from parley.server.realtime.connection import Close, Connection, drain
from parley.server.realtime.events import Resync
from parley.server.realtime.hub import Hub
from parley.server.realtime.views import SocketView
from tests.waiting import assert_nothing_within


def conn(user_id: int, *chats: int, session_id: int = 0, queue_size: int = 8) -> Connection:
    c = Connection(user_id, session_id or user_id * 100, queue_size)
    c.chats = set(chats)
    return c


def queued(c: Connection) -> list[str | Close]:
    items = []
    while not c.queue.empty():
        items.append(c.queue.get_nowait())
    return items


async def hub_with(*conns: Connection) -> Hub:
    hub = Hub()
    for c in conns:
        await hub.register(c)
    return hub


async def test_chat_events_reach_the_chats_connections_only() -> None:
    a, a2, b, c = conn(1, 10), conn(1, 10, session_id=7), conn(2, 10, 20), conn(3, 20)
    hub = await hub_with(a, a2, b, c)
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "hi"})
    assert queued(a) == queued(a2) == queued(b) == ["hi"]
    assert queued(c) == []


async def test_blocked_senders_and_skipped_user_are_filtered() -> None:
    a, b, c = conn(1, 10), conn(2, 10), conn(3, 10)
    a.blocked = {3}
    hub = await hub_with(a, b, c)
    await hub.handle({"t": "chat", "chat_id": 10, "sender_id": 3, "frame": "from 3"})
    assert queued(a) == [] and queued(b) == queued(c) == ["from 3"]
    await hub.handle({"t": "chat", "chat_id": 10, "skip_user": 2, "frame": "typing"})
    assert queued(a) == queued(c) == ["typing"] and queued(b) == []
    await hub.handle({"t": "blocks", "user_id": 1, "blocked": []})
    await hub.handle({"t": "chat", "chat_id": 10, "sender_id": 3, "frame": "again"})
    assert queued(a) == ["again"]


async def test_user_events_reach_every_connection_of_those_users() -> None:
    a, a2, b = conn(1), conn(1, session_id=9), conn(2)
    hub = await hub_with(a, a2, b)
    await hub.handle({"t": "users", "user_ids": [1, 99], "frame": "yours"})
    assert queued(a) == queued(a2) == ["yours"] and queued(b) == []


async def test_membership_events_subscribe_and_unsubscribe() -> None:
    a, b = conn(1), conn(2, 10)
    hub = await hub_with(a, b)
    await hub.handle({"t": "membership", "chat_id": 10, "user_ids": [1], "joined": True})
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "welcome"})
    assert queued(a) == ["welcome"] and a.chats == {10}
    await hub.handle({"t": "membership", "chat_id": 10, "user_ids": [1], "joined": False})
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "bye"})
    assert queued(a) == [] and queued(b) == ["welcome", "bye"] and a.chats == set()
    await hub.handle({"t": "chat_removed", "chat_id": 10})
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "gone"})
    assert queued(b) == [] and b.chats == set()


async def test_unregistered_connections_get_nothing() -> None:
    a, b = conn(1, 10), conn(2, 10)
    hub = await hub_with(a, b)
    await hub.unregister(a)
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "x"})
    await hub.handle({"t": "users", "user_ids": [1], "frame": "y"})
    assert queued(a) == [] and queued(b) == ["x"]
    assert hub.connection_count == 1
    await hub.handle({"t": "no such event"})


async def test_sessions_ended_closes_those_sessions_with_4001() -> None:
    a1, a2, a3 = (conn(1, session_id=s) for s in (11, 12, 13))
    b = conn(2, session_id=21)
    hub = await hub_with(a1, a2, a3, b)
    await hub.handle({"t": "sessions_ended", "user_id": 1, "session_ids": [11]})
    assert queued(a1) == [Close(4001, "session ended")] and a1.closing
    assert queued(a2) == queued(a3) == [] and not a2.closing
    await hub.handle({"t": "sessions_ended", "user_id": 1, "keep": 12})
    assert queued(a2) == [] and queued(a3) == [Close(4001, "session ended")]
    await hub.handle({"t": "sessions_ended", "user_id": 1, "banned": True})
    assert queued(a2) == [Close(4003, "banned")]
    assert queued(b) == [] and not b.closing


async def test_a_full_queue_closes_with_1013_and_drops_the_backlog() -> None:
    a = conn(1, 10, queue_size=3)
    hub = await hub_with(a)
    for i in range(3):
        await hub.handle({"t": "chat", "chat_id": 10, "frame": f"m{i}"})
    assert not a.closing
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "one too many"})
    assert a.closing
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "after"})
    assert queued(a) == [Close(1013, "send queue full")]


async def test_closing_twice_keeps_the_first_code() -> None:
    a = conn(1)
    a.close(4001)
    a.close(1013)
    a.push("late")
    assert queued(a) == [Close(4001)]


async def test_replies_wait_for_room_instead_of_closing() -> None:
    a = conn(1, queue_size=1)
    a.push("first")
    reply = asyncio.create_task(a.send("pong"))
    await asyncio.sleep(0)
    assert not reply.done() and not a.closing
    assert a.queue.get_nowait() == "first"
    await asyncio.wait_for(reply, 1)
    assert queued(a) == ["pong"]


async def test_drain_writes_frames_in_order_until_close() -> None:
    a = conn(1)
    written: list[str] = []

    async def write(text: str) -> None:
        written.append(text)

    a.push("one")
    a.push("two")
    writer = asyncio.create_task(drain(a, write))
    await asyncio.sleep(0)
    assert written == ["one", "two"] and not writer.done()
    a.close(1001, "bye")
    assert await asyncio.wait_for(writer, 1) == Close(1001, "bye")


async def test_a_close_drops_what_was_not_written() -> None:
    a = conn(1)
    a.push("never read")
    a.close(4001)
    assert await drain(a, _refuse) == Close(4001)


async def _refuse(_text: str) -> None:
    raise AssertionError("nothing should be written after a close")


async def test_close_all_and_close_sessions() -> None:
    a, b, c = conn(1, session_id=1), conn(2, session_id=2), conn(3, session_id=3)
    hub = await hub_with(a, b, c)
    hub.close_sessions({2}, 4001)
    assert queued(b) == [Close(4001)] and not a.closing
    hub.close_all(1001)
    assert queued(a) == queued(c) == [Close(1001, "server shutting down")]


async def test_presence_follows_connections() -> None:
    events: list[tuple[int, bool]] = []

    async def record(user_id: int, online: bool) -> None:
        events.append((user_id, online))

    hub = Hub(presence_timeout=60, on_presence=record)
    first, second = conn(1), conn(1, session_id=2)
    await hub.register(first)
    await hub.register(second)
    assert hub.is_online(1) and events == [(1, True)]
    await hub.unregister(first)
    assert hub.is_online(1) and events == [(1, True)]
    await hub.unregister(second)
    assert not hub.is_online(1) and events == [(1, True), (1, False)]


async def test_quiet_connections_go_offline_and_come_back_when_touched() -> None:
    events: list[tuple[int, bool]] = []

    async def record(user_id: int, online: bool) -> None:
        events.append((user_id, online))

    hub = Hub(presence_timeout=60, on_presence=record)
    a = conn(1)
    await hub.register(a)
    a.last_active -= 61  # as if its last application frame was 61 s ago
    await hub.sweep_presence()
    assert events == [(1, True), (1, False)] and not hub.is_online(1)
    await hub.touch(a)
    assert events[-1] == (1, True) and hub.is_online(1)


async def test_presence_runs_on_the_injected_clock() -> None:
    now = [1000.0]
    flips: list[tuple[int, bool]] = []

    async def on_presence(user_id: int, online: bool) -> None:
        flips.append((user_id, online))

    hub = Hub(presence_timeout=10, on_presence=on_presence, monotonic=lambda: now[0])
    a = conn(1, 10)
    await hub.register(a)
    assert hub.is_online(1) and flips == [(1, True)]
    now[0] += 9
    await hub.sweep_presence()
    assert flips == [(1, True)]
    now[0] += 2  # quiet for 11 s by the hub's clock (no real time passed)
    await hub.sweep_presence()
    assert flips == [(1, True), (1, False)] and not hub.is_online(1)
    await hub.touch(a)
    assert flips[-1] == (1, True)


async def test_presence_elsewhere_counts_as_online() -> None:
    hub = Hub(process="here")
    await hub.handle({"t": "presence", "user_id": 5, "online": True, "process": "there"})
    assert hub.is_online(5)
    await hub.handle({"t": "presence", "user_id": 5, "online": False, "process": "there"})
    assert not hub.is_online(5)


async def test_a_failed_writer_wakes_every_waiting_sender() -> None:
    c = conn(1, queue_size=1)
    c.push("fills the queue")
    waiters = [asyncio.create_task(c.send(f"reply {n}")) for n in range(3)]
    await assert_nothing_within(0.01, lambda: any(w.done() for w in waiters), what="no reply")
    c.abort()  # what the writer does when the socket fails under it
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    await c.send("after")  # returns at once: the connection is closing


async def test_a_reply_that_cannot_be_queued_in_time_closes_with_1013() -> None:
    c = conn(1, queue_size=1)
    c.send_wait = 0.05
    c.push("fills the queue")
    await c.send("waits, then gives up")
    assert c.closing and queued(c) == [Close(1013, "send queue full")]


async def test_the_writer_sends_a_burst_in_one_wakeup() -> None:
    c = conn(1, queue_size=16)
    for n in range(5):
        c.push(f"f{n}")
    c.close(1000)
    sent: list[str] = []
    batches: list[list[str]] = []

    async def send_text(frame: str) -> None:
        sent.append(frame)

    async def send_many(frames: list[str]) -> None:
        batches.append(frames)

    d = conn(2, queue_size=16)
    for n in range(5):
        d.push(f"f{n}")
    d.queue.put_nowait(Close(1000))
    assert await drain(d, send_text, send_many) == Close(1000)
    assert batches == [[f"f{n}" for n in range(5)]] and sent == []


class Views:
    """The database's answer to a recheck, given by the test when it wants (`answer`)."""

    def __init__(self) -> None:
        self.asked: list[set[int]] = []
        self._answers: asyncio.Queue[dict[int, SocketView] | Exception] = asyncio.Queue()

    async def __call__(self, user_ids: Collection[int]) -> dict[int, SocketView]:
        self.asked.append(set(user_ids))
        answer = await self._answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def answer(self, views: dict[int, SocketView] | Exception) -> None:
        self._answers.put_nowait(views)

    async def reading(self, count: int) -> None:
        """Until the hub has started its `count`th read."""
        async with asyncio.timeout(5):
            while len(self.asked) < count:
                await asyncio.sleep(0)


async def _settled(hub: Hub, rechecks: int) -> None:
    async with asyncio.timeout(5):
        while hub.rechecks < rechecks:
            await asyncio.sleep(0)


async def test_a_resync_rechecks_every_socket_then_replays_what_came_meanwhile() -> None:
    views = Views()
    removed, kept, other = conn(1, 10, 20), conn(2, 10), conn(3, 10)
    hub = Hub(read_views=views)
    for c in (removed, kept, other):
        await hub.register(c)
    await hub.handle(Resync())  # events were lost: user 1 left chat 10, user 3 was banned
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "held"})
    await hub.handle({"t": "membership", "chat_id": 20, "user_ids": [2], "joined": True})
    assert queued(removed) == queued(kept) == []  # held back until the views are applied
    await views.reading(1)
    assert views.asked == [{1, 2, 3}]
    views.answer(
        {
            1: SocketView(chats=frozenset({20}), sessions=frozenset({100})),
            2: SocketView(chats=frozenset({10}), sessions=frozenset({200})),
            3: SocketView(chats=frozenset({10}), sessions=frozenset({300}), banned=True),
        }
    )
    await _settled(hub, 1)
    assert queued(removed) == [] and queued(kept) == ["held"]
    assert queued(other) == [Close(4003, "banned")]
    assert removed.chats == {20} and kept.chats == {10, 20}  # the held join, replayed
    assert removed not in hub.by_chat[10]
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "next"})
    assert queued(removed) == [] and queued(kept) == ["next"]


async def test_a_second_resync_during_a_recheck_reads_again_and_drops_what_was_held() -> None:
    views = Views()
    a = conn(1, 10)
    hub = Hub(read_views=views)
    await hub.register(a)
    await hub.handle(Resync())
    await views.reading(1)
    await hub.handle({"t": "membership", "chat_id": 30, "user_ids": [1], "joined": True})
    await hub.handle(Resync())  # lost again: the join above may have been undone meanwhile
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "after"})
    views.answer({1: SocketView(chats=frozenset({10}), sessions=frozenset({100}))})
    views.answer({1: SocketView(chats=frozenset({10}), sessions=frozenset({100}))})
    await _settled(hub, 1)
    assert len(views.asked) == 2
    assert a.chats == {10} and queued(a) == ["after"]


async def test_a_recheck_the_database_cannot_answer_closes_every_socket_with_1012() -> None:
    views = Views()
    a, b = conn(1, 10), conn(2, 10)
    hub = Hub(read_views=views)
    for c in (a, b):
        await hub.register(c)
    await hub.handle(Resync())
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "held"})
    views.answer(OSError("database down"))
    async with asyncio.timeout(5):
        while not (a.closing and b.closing):
            await asyncio.sleep(0)
    assert queued(a) == queued(b) == [Close(1012, "server restarting")]
    await hub.handle({"t": "chat", "chat_id": 10, "frame": "later"})  # no longer held
    assert hub.rechecks == 0
