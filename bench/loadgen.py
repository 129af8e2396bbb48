"""The load generator: picows WebSocket clients on uvloop, and the scenarios.

A message's content is its client id, so a recipient (whose copy carries no client_id)
finds when it was sent. Latency is send → receipt by another member; the sender's own
copy is its acknowledgement (it opens room in the sender's window).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

now = time.perf_counter
SETTLE = 1.0  # seconds: pauses before measuring (the bench's config sets it)
DRAIN = 5.0  # seconds to wait, after the sending stops, for what is still on its way


def _no_mark(_event: str) -> None:
    return None


MARK: Callable[[str], None] = _no_mark  # "start"/"end" of a measured window (CPU per frame)


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def p99_by_second(run: Run, start: float) -> list[float | None]:
    """The delivery p99 (ms) of the messages sent in each second of the window: shows
    whether a high p99 is one stall or a steady queue."""
    seconds: dict[int, list[float]] = {}
    for sent, latency in zip(run.latency_sent, run.latency, strict=True):
        seconds.setdefault(int(sent - start), []).append(latency)
    return [ms(pct(seconds.get(i, []), 0.99)) for i in range(max(seconds, default=-1) + 1)]


@dataclass(frozen=True)
class Target:
    """Where the clients connect: the ceiling, Parley's gateway, or Parley's servers."""

    name: str  # "ceiling", "gateway", "direct"
    ws_urls: list[str]  # round-robin
    http_url: str
    tokens: dict[int, str] = field(default_factory=dict)

    def url_for(
        self, index: int, user: int, chats: Sequence[int]
    ) -> tuple[str, list[tuple[str, str]]]:
        base = self.ws_urls[index % len(self.ws_urls)]
        if self.name == "ceiling":
            return f"{base}?user={user}&chats={','.join(map(str, chats))}", []
        return base, [("Authorization", f"Bearer {self.tokens[user]}")]


class Run:
    """What one scenario observed."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]  # client ids are unique per run (the server dedups)
        self.sent_at: dict[str, float] = {}
        self.latency = array("d")
        self.latency_sent = array("d")  # when each delivered message was sent (same order)
        self.ack_latency = array("d")
        self.deliveries = 0
        self.frames = 0
        self.acks = 0
        self.received: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()  # frames received, by type
        self.errors: Counter[str] = Counter()
        self.window_end: float | None = None  # deliveries after it are not counted
        self.on_ack: Callable[[Client, str], None] | None = None
        self.record_ids = False

    def text(self, client: Client, data: bytes) -> None:
        self.frames += 1
        frame = orjson.loads(data)
        kind = frame.get("type")
        self.kinds[str(kind)] += 1
        if kind == "message":
            message = frame["message"]
            key = message.get("content")
            started = self.sent_at.get(key) if isinstance(key, str) else None
            if started is None:
                return
            t = now()
            late = self.window_end is not None and t > self.window_end
            if message.get("sender", {}).get("id") == client.user:
                if client.sender:
                    if not late:
                        self.acks += 1
                        self.ack_latency.append(t - started)
                    if self.on_ack is not None:
                        self.on_ack(client, key)
                return
            if self.record_ids:
                self.received[key] += 1
            if not late:
                self.deliveries += 1
                self.latency.append(t - started)
                self.latency_sent.append(started)
        elif kind == "hello":
            if not client.ready.done():
                client.ready.set_result(None)
        elif kind == "error":
            self.errors[str(frame.get("code"))] += 1
            ref = frame.get("ref")
            if client.sender and self.on_ack is not None and isinstance(ref, str):
                self.on_ack(client, ref)


class Client(WSListener):  # type: ignore[misc]
    def __init__(self, run: Run, user: int, sender: bool) -> None:
        super().__init__()
        self.run = run
        self.user = user
        self.sender = sender
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.in_flight = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.run.text(self, frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before hello"))

    def send(self, chat: int, key: str) -> None:
        assert self.transport is not None
        key = self.run.tag + key
        self.run.sent_at[key] = now()
        frame = {"type": "send", "chat_id": chat, "content": key, "client_id": key}
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


async def connect_all(
    target: Target,
    run: Run,
    plan: Sequence[tuple[int, Sequence[int], bool]],  # (user, chats, sender)
    *,
    concurrency: int = 64,
    progress: Callable[[str], None] | None = None,
    budget: float | None = None,
) -> tuple[list[Client], int]:
    """Opens one socket per plan entry and waits for each hello; returns them and failures.
    With a `budget` (seconds), sockets not started by then are not opened (nor failures)."""
    gate = asyncio.Semaphore(concurrency)
    failures = 0
    done = 0
    deadline = None if budget is None else now() + budget

    async def one(index: int, user: int, chats: Sequence[int], sender: bool) -> Client | None:
        nonlocal failures, done
        url, headers = target.url_for(index, user, chats)
        async with gate:
            if deadline is not None and now() > deadline:
                return None
            try:
                _t, client = await ws_connect(
                    lambda: Client(run, user, sender), url, extra_headers=headers,
                    websocket_handshake_timeout=30, max_frame_size=1 << 20,
                )  # fmt: skip
                await asyncio.wait_for(client.ready, 30)
            except Exception:
                failures += 1
                return None
            finally:
                done += 1
                if progress and done % 500 == 0:
                    progress(f"{done}/{len(plan)} sockets")
        return client  # type: ignore[no-any-return]

    results = await asyncio.gather(*(one(i, *entry) for i, entry in enumerate(plan)))
    return [c for c in results if c is not None], failures


async def quiet(
    cpu: Callable[[], float],
    *,
    idle: float = 0.05,
    hold: float = 1.0,
    step: float = 0.25,
    limit: float = 30,
) -> None:
    """Waits until the processes measured by `cpu` used under `idle` of a core for `hold`
    seconds in a row (or `limit` seconds passed). In a row: work that waits on a lock
    (SQLite's busy timeout sleeps) shows short idle gaps between bursts."""
    deadline = now() + limit
    calm = 0.0
    while now() < deadline and calm < hold:
        before = cpu()
        await asyncio.sleep(step)
        calm = calm + step if cpu() - before < idle * step else 0.0


def close_all(clients: Sequence[Client]) -> None:
    for client in clients:
        client.close()


# HTTP: a minimal keep-alive client (the bench must not be the bottleneck)


async def http_pages(
    url: str, path: str, headers: dict[str, str], *, duration: float, concurrency: int
) -> tuple[int, int, list[float]]:
    """GETs `path` back to back on `concurrency` keep-alive connections for `duration`."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode()
    ok = bad = 0
    timings: list[float] = []
    stop_at = now() + duration

    async def worker() -> None:
        nonlocal ok, bad
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while now() < stop_at:
                started = now()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                timings.append(now() - started)
                if status_line[9:12] == b"200":
                    ok += 1
                else:
                    bad += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)), return_exceptions=True)
    return ok, bad, timings


# Scenarios. Each returns its figures; the caller adds CPU and RSS.


async def saturate(
    target: Target, users: Sequence[int], chat: int, *, senders: int, window: int, duration: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    run = Run()
    plan = [(u, [chat], i < senders) for i, u in enumerate(users)]
    clients, failures = await connect_all(target, run, plan, progress=progress)
    stopping = False
    counter = itertools.count()

    def ack(client: Client, _key: str) -> None:
        client.in_flight -= 1
        if not stopping:
            client.in_flight += 1
            client.send(chat, f"s{next(counter)}")

    run.on_ack = ack
    sending = [c for c in clients if c.sender]
    await asyncio.sleep(SETTLE / 2)
    MARK("start")
    window_start = run.frames
    started = now()
    for client in sending:
        for _ in range(window):
            client.in_flight += 1
            client.send(chat, f"s{next(counter)}")
    await _tick(progress, "saturate", duration)
    MARK("end")
    window_frames = run.frames - window_start
    run.window_end = now()
    stopping = True
    elapsed = run.window_end - started
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while any(c.in_flight > 0 for c in sending):
                await asyncio.sleep(0.05)
    close_all(clients)
    return {
        "members": len(users), "senders": senders, "window": window,
        "frames_received": run.frames, "frames_in_window": window_frames,
        "handshake_failures": failures,
        "deliveries_per_s": round(run.deliveries / elapsed, 1),
        "messages_per_s": round(run.acks / elapsed, 1),
        "delivery_p50_ms": ms(pct(run.latency, 0.5)), "delivery_p99_ms": ms(pct(run.latency, 0.99)),
        "errors": dict(run.errors),
    }  # fmt: skip


async def fanout(
    target: Target, users: Sequence[int], chat: int, *, senders: int, rate: float,
    duration: float, progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    run = Run()
    run.record_ids = True
    plan = [(u, [chat], i < senders) for i, u in enumerate(users)]
    clients, failures = await connect_all(target, run, plan, progress=progress)
    sending = [c for c in clients if c.sender]
    await asyncio.sleep(SETTLE / 2)
    MARK("start")
    window_start = run.frames
    window_started = now()
    pacer = asyncio.create_task(
        _pace(rate, duration, lambda n: sending[n % len(sending)].send(chat, f"f{n}"))
    )
    await _tick(progress, "fan-out", duration)
    sent = await pacer
    expected = sent * (len(clients) - 1)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN):
            while run.deliveries < expected:
                await asyncio.sleep(0.05)
    MARK("end")
    close_all(clients)
    return {
        "members": len(users), "senders": senders, "offered_per_s": rate, "messages": sent,
        "frames_received": run.frames, "frames_in_window": run.frames - window_start,
        "frames_by_type": dict(run.kinds),
        "handshake_failures": failures,
        "expected_deliveries": expected, "deliveries": run.deliveries,
        "lost": max(0, expected - run.deliveries),
        "delivery_p50_ms": ms(pct(run.latency, 0.5)), "delivery_p99_ms": ms(pct(run.latency, 0.99)),
        "delivery_p99_ms_by_second": p99_by_second(run, window_started),
        "errors": dict(run.errors),
    }  # fmt: skip


async def pairs(
    target: Target, chats: Sequence[int], members: dict[int, list[int]], *, rate: float,
    duration: float, progress: Callable[[str], None],
    cpu: Callable[[], float],
) -> dict[str, Any]:  # fmt: skip
    run = Run()
    run.record_ids = True
    plan: list[tuple[int, Sequence[int], bool]] = []
    for chat in chats:
        a, b = members[chat]
        plan += [(a, [chat], True), (b, [chat], False)]
    # The sockets are all open, and the server done with what opening them costs (the
    # handshakes, then each user's presence announced to its peer), before the measured
    # window: the window is about messages, its CPU is divided by messages only.
    cpu_start = cpu()
    started = now()
    clients, failures = await connect_all(target, run, plan, progress=progress)
    connect_s = now() - started
    by_user = {c.user: c for c in clients}
    senders = [(by_user[members[c][0]], c) for c in chats if members[c][0] in by_user]
    await asyncio.sleep(SETTLE / 2)
    settled = now()
    await quiet(cpu)
    settle_s = now() - settled
    cpu_before = cpu()
    handshake_cpu = cpu_before - cpu_start
    MARK("start")
    window_start = run.frames
    window_started = now()

    def fire(n: int) -> None:
        client, chat = senders[n % len(senders)]
        client.send(chat, f"p{n}")

    total_rate = rate * len(senders)
    sent = await _with_progress(_pace(total_rate, duration, fire), progress, "pairs", duration)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN):
            while run.deliveries < sent:
                await asyncio.sleep(0.05)
    cpu_used = cpu() - cpu_before
    MARK("end")
    close_all(clients)
    within_3s = sum(1 for x in run.latency if x <= 3.0)
    return {
        "chats": len(chats), "offered_per_s": total_rate, "messages": sent,
        "frames_received": run.frames, "frames_in_window": run.frames - window_start,
        "frames_by_type": dict(run.kinds),
        "handshakes": len(plan), "handshake_failures": failures,
        "connect_s": round(connect_s, 1), "settle_s": round(settle_s, 1),
        "server_cpu_ms_per_handshake": round(handshake_cpu * 1000 / max(1, len(clients)), 3),
        "delivered": run.deliveries, "lost": max(0, sent - run.deliveries),
        "delivered_within_3s": within_3s, "acks": run.acks,
        "delivery_p50_ms": ms(pct(run.latency, 0.5)), "delivery_p99_ms": ms(pct(run.latency, 0.99)),
        "delivery_p99_ms_by_second": p99_by_second(run, window_started),
        "server_cpu_ms_per_message": round(cpu_used * 1000 / max(1, run.acks), 3),
        "errors": dict(run.errors),
    }  # fmt: skip


async def idle(
    target: Target, users: Sequence[int], chats_of: dict[int, list[int]], *, sockets: int,
    rss: Callable[[], dict[str, float]], progress: Callable[[str], None], budget: float,
) -> dict[str, Any]:  # fmt: skip
    run = Run()
    before = rss()
    plan = [
        (users[i % len(users)], chats_of.get(users[i % len(users)], []), False)
        for i in range(sockets)
    ]
    started = now()
    clients, failures = await connect_all(
        target, run, plan, concurrency=100, progress=progress, budget=budget
    )
    connect_s = now() - started
    await asyncio.sleep(2 * SETTLE)
    after = rss()
    close_all(clients)
    opened = max(1, len(clients))
    await asyncio.sleep(SETTLE)
    return {
        "sockets": sockets, "opened": len(clients), "handshake_failures": failures,
        "connect_s": round(connect_s, 1), "connect_budget_s": budget,
        "handshakes_per_s": round(len(clients) / max(0.001, connect_s), 1),
        "kb_per_connection": {
            role: round((after[role] - before.get(role, 0.0)) * 1024 / opened, 1) for role in after
        },
    }  # fmt: skip


HISTORY_PAGE = 50
HISTORY_SEED = 60  # messages the history scenario's own chat holds: a full page, whatever ran


async def history(
    target: Target, chat: int, user: int, *, duration: float, concurrency: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """Pages of `limit=50` from a chat of its own, seeded here with HISTORY_SEED messages
    through the API (so the pages are full whichever scenarios ran before)."""
    headers = {} if target.name == "ceiling" else {"Authorization": f"Bearer {target.tokens[user]}"}
    path = f"/service/api/chats/{chat}/messages?limit={HISTORY_PAGE}"
    page_messages = None
    if target.name != "ceiling":
        progress(f"history: seeding {HISTORY_SEED} messages")
        page_messages = await seed_history(target.http_url, path, headers, chat)
    progress(f"history: {duration:.0f} s")
    ok, bad, timings = await http_pages(
        target.http_url, path, headers, duration=duration, concurrency=concurrency
    )
    return {
        "pages": ok, "failed": bad, "pages_per_s": round(ok / duration, 1),
        "p50_ms": ms(pct(timings, 0.5)), "p99_ms": ms(pct(timings, 0.99)),
        "page_messages": page_messages,
    }  # fmt: skip


async def seed_history(url: str, path: str, headers: dict[str, str], chat: int) -> int:
    """Tops the chat up to HISTORY_SEED messages (varied lengths, a mention now and then,
    a reply) and returns how many a page holds; fails when the page is not full."""
    import httpx

    async with httpx.AsyncClient(
        base_url=url, headers=headers, trust_env=False, timeout=30
    ) as http:
        answer = await http.get(path.replace(f"limit={HISTORY_PAGE}", "limit=200"))
        answer.raise_for_status()
        have = len(answer.json())
        me = (await http.get("/service/api/profile")).json()["username"]
        first: int | None = None
        for i in range(have, HISTORY_SEED):
            words = " ".join(f"word{(i * 7 + k) % 97}" for k in range(5 + (i * 13) % 40))
            body: dict[str, Any] = {
                "content": f"history {i}: {words}" + (f" @{me}" if i % 5 == 0 else ""),
                "client_id": f"history-{chat}-{i}",
            }
            if first is not None and i % 9 == 0:
                body["reply_to"] = first
            sent = await http.post(f"/service/api/chats/{chat}/messages", json=body)
            sent.raise_for_status()
            first = first if first is not None else sent.json()["id"]
        page = await http.get(path)
        page.raise_for_status()
        count = len(page.json())
    if count < HISTORY_PAGE:
        raise RuntimeError(f"history: a page holds {count} messages, not {HISTORY_PAGE}")
    return count


async def overload(
    target: Target, chats: Sequence[int], members: dict[int, list[int]], probe_chat: int,
    login: tuple[str, str], *, rate: float, duration: float, progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """Every pair's sender sends `rate` msg/s (far more than the server carries) for
    `duration`; health and login are probed meanwhile; then a quiet pair measures how long
    the latency takes to come back to its level before the load."""
    import httpx

    run = Run()
    plan: list[tuple[int, Sequence[int], bool]] = []
    for chat in chats:
        a, b = members[chat]
        plan += [(a, [chat], True), (b, [chat], False)]
    clients, failures = await connect_all(target, run, plan, progress=progress)
    probe_run = Run()
    pa, pb = members[probe_chat]
    probes, _ = await connect_all(
        target, probe_run, [(pa, [probe_chat], True), (pb, [probe_chat], False)]
    )
    probe_sender = next(c for c in probes if c.sender)

    async def probe_latency(samples: int, tag: str) -> list[float]:
        out = []
        for i in range(samples):
            count = len(probe_run.latency)
            probe_sender.send(probe_chat, f"{tag}{i}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    while len(probe_run.latency) == count:
                        await asyncio.sleep(0.002)
            out.append(probe_run.latency[-1] if len(probe_run.latency) > count else 2.0)
            await asyncio.sleep(0.05)
        return out

    baseline = await probe_latency(10, "base")
    normal = max(0.05, 3 * (pct(baseline, 0.5) or 0.0))
    by_user = {c.user: c for c in clients}
    senders = [(by_user[members[c][0]], c) for c in chats if members[c][0] in by_user]

    def fire(n: int) -> None:
        client, chat = senders[n % len(senders)]
        client.send(chat, f"o{n}")

    health: list[tuple[float, int]] = []
    logins: list[tuple[float, int]] = []

    async def probe_http(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=target.http_url, trust_env=False, timeout=10) as http:
            while not stop.is_set():
                for path, sink in (("/health", health), ("/service/api/login", logins)):
                    started = now()
                    try:
                        if sink is health:
                            status = (await http.get(path)).status_code
                        else:
                            body = {"username": login[0], "password": login[1]}
                            status = (await http.post(path, json=body)).status_code
                    except httpx.HTTPError:
                        status = 0
                    sink.append((now() - started, status))
                await asyncio.sleep(0.25)

    stop = asyncio.Event()
    prober = asyncio.create_task(probe_http(stop))
    offered = await _with_progress(
        _pace(rate * len(senders), duration, fire), progress, "overload", duration
    )
    load_stopped = now()
    stop.set()
    await prober
    close_all(clients)
    recovered: float | None = None
    deadline = now() + 10
    while now() < deadline:
        sample = (await probe_latency(1, f"after{random.random()}"))[0]
        if sample <= normal:
            recovered = now() - load_stopped
            break
    close_all(probes)
    login_ok = [t for t, s in logins if s == 200]
    return {
        "senders": len(senders), "offered_per_s": rate * len(senders), "offered": offered,
        "handshake_failures": failures, "acks": run.acks,
        "overloaded_errors": run.errors.get("overloaded", 0), "errors": dict(run.errors),
        "health_checks": len(health), "health_failed": sum(1 for _, s in health if s != 200),
        "health_max_ms": ms(max((t for t, _ in health), default=None)),
        "logins": len(logins), "logins_failed": len(logins) - len(login_ok),
        "login_max_ms": ms(max(login_ok, default=None)),
        "baseline_p50_ms": ms(pct(baseline, 0.5)),
        "recovered_after_s": None if recovered is None else round(recovered, 2),
    }  # fmt: skip


async def _pace(rate: float, duration: float, fire: Callable[[int], None]) -> int:
    """Calls fire(n) `rate` times a second, evenly, for `duration`; returns how many."""
    started = now()
    n = 0
    while True:
        elapsed = now() - started
        if elapsed >= duration:
            return n
        due = int(elapsed * rate) + 1
        while n < due:
            fire(n)
            n += 1
        await asyncio.sleep(max(0.0, min(0.01, (n / rate) - (now() - started))))


async def _tick(progress: Callable[[str], None], label: str, duration: float) -> None:
    started = now()
    while (left := duration - (now() - started)) > 0:
        progress(f"{label}: {left:4.0f} s left")
        await asyncio.sleep(min(1.0, left))


async def _with_progress(
    work: Any, progress: Callable[[str], None], label: str, duration: float
) -> Any:
    task = asyncio.ensure_future(work)
    ticker = asyncio.create_task(_tick(progress, label, duration))
    try:
        return await task
    finally:
        ticker.cancel()
