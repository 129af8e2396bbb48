"""Simulated people for `make loadtest`: one generator process's share, on its own event loop.

Every person holds one WebSocket through the gateway, opened during the ramp with a token
made beforehand, and pings every 30 s as the web client does (that is its presence). The
active ones also act, each on its own random clock (an exponential pause between
actions, so the actions of many people arrive as a Poisson stream):

  send       typing, 1-3 s later the message (its content carries the send time: every
             receiver measures its delivery, the sender its acknowledgement)
  open       a chat's newest page of history (GET, 50 messages), then the read marker
  read       the read marker to the last message seen in a chat (its `read` echo)
  react      an emoji on a recent message (the `message_updated` echo)
  edit       its own last message (the `message_updated` echo)
  search     a word, over every chat it is in (GET)
  upload     a small PNG (POST), then a message carrying it
  reconnect  a network change: the socket closes, a new one opens and syncs

A socket the server closes (a restart: 1012/1001; too slow: 1013) reconnects with the web
client's backoff (0.5 s doubling to 30 s, "equal jitter") and syncs. Latencies go into
log-bucket histograms (mergeable across processes and machines); the process reports its
own CPU and its event loop's lag, so a saturated generator is noticed, not believed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

TAG = "lt"
_VOCABULARY = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu apple "
    "banana cherry grape lemon mango melon orange peach pear plum berry coffee tea bread "
    "cheese butter honey pepper salt sugar river mountain forest ocean desert island valley "
    "meadow canyon glacier planet comet galaxy rocket orbit lunar solar storm thunder rain "
    "snow cloud breeze sunset sunrise evening morning winter summer autumn spring budget "
    "meeting report deadline release review deploy backup server client ticket invoice "
    "design roadmap sprint launch"
)
WORDS = tuple(_VOCABULARY.split())  # message text and search terms
EMOJI = ("👍", "❤️", "😂", "🎉", "👀", "🙏", "🔥", "✅")
TIMEOUT = 15.0  # seconds an action may wait for its answer before it counts as an error
PING_EVERY = 30.0  # the web client's heartbeat


class Hist:
    """Latencies in buckets 2 % wide from 0.05 ms: mergeable, percentiles within 2 %."""

    STEP = math.log(1.02)

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def add(self, seconds: float) -> None:
        ms = seconds * 1000
        self.counts[0 if ms <= 0.05 else int(math.log(ms / 0.05) / self.STEP) + 1] += 1

    def merge(self, other: dict[int, int] | Counter[int]) -> None:
        for k, v in other.items():
            self.counts[int(k)] += v

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def pct(self, q: float) -> float | None:
        total = self.n
        if not total:
            return None
        rank = q * total
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen >= rank:
                return round(0.05 * math.exp(k * self.STEP), 2)  # the bucket's upper bound
        return None

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "p50_ms": self.pct(0.5), "p95_ms": self.pct(0.95),
                "p99_ms": self.pct(0.99), "max_ms": self.pct(1.0)}  # fmt: skip


@dataclass
class Share:
    """What one generator process runs (plain data: it crosses the process boundary)."""

    index: int
    ws_urls: list[str]
    http_urls: list[str]
    people: list[tuple[int, str, bool, dict[int, int]]]  # (user, token, active, {chat: seq})
    ramp_per_s: float
    pace: float = 1.0  # > 1: the same mix, that many times faster (short runs)
    mix: dict[str, float] = field(default_factory=dict)  # action -> per active person per min
    lag_bound_ms: float = 50.0
    cpu_bound: float = 0.85
    start_at: float | None = None  # epoch seconds: the ramp starts then (several machines)


class Stats:
    def __init__(self) -> None:
        self.hists: dict[str, Hist] = {}
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.sent: dict[str, int] = {}  # message key -> chat (sent in the window)
        self.received: Counter[str] = Counter()  # message key -> deliveries to others
        self.window = False

    def time(self, action: str, seconds: float) -> None:
        if self.window:
            self.hists.setdefault(action, Hist()).add(seconds)


class Person(WSListener):
    def __init__(self, gen: Generator, user: int, token: str, active: bool,
                 chats: dict[int, int]) -> None:  # fmt: skip
        super().__init__()
        self.gen = gen
        self.user = user
        self.token = token
        self.active = active
        self.seen = dict(chats)  # chat -> last seq seen
        self.read_at = dict(chats)  # chat -> its read marker (sending moves it too)
        self.recent: dict[int, list[int]] = {c: [] for c in chats}  # message ids, for reactions
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] | None = None
        self.pending: dict[tuple[str, Any], tuple[str, float, asyncio.Future[bool]]] = {}
        self.last_own: int | None = None
        self.reacted: set[tuple[int, str]] = set()
        self.leaving = False  # a close it asked for (a network change, the end)
        self.connected = False
        self.closed_at: float | None = None
        self.back_at: float | None = None  # after a close it did not ask for: synced again
        self.attempts = 0
        self.syncing = False
        self.ever = False  # opened a socket at least once

    # frames

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.text(orjson.loads(frame.get_payload_as_bytes()))
        elif frame.msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code()
            if not self.leaving:
                self.gen.stats.events[f"closed_by_server_{getattr(code, 'value', code)}"] += 1
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if transport is not self.transport:
            return  # a socket it already left (a network change)
        self.transport = None
        was = self.connected
        self.connected = False
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before hello"))
        if was and not self.leaving and not self.gen.stopping:
            self.closed_at = time.time()
            self.back_at = None
            self.gen.spawn(self.come_back())

    def text(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        stats = self.gen.stats
        if kind == "message":
            m = frame["message"]
            chat, seq = m["chat_id"], m["seq"]
            if seq > self.seen.get(chat, 0):
                self.seen[chat] = seq
            if self.active:
                recent = self.recent.setdefault(chat, [])
                recent.append(m["id"])
                del recent[:-20]
            content = m.get("content") or ""
            if not content.startswith(TAG + " "):
                return
            _tag, key, sent_at, *_ = content.split(" ", 3)
            if (m.get("sender") or {}).get("id") == self.user:
                self.last_own = m["id"]
                self.read_at[chat] = max(self.read_at.get(chat, 0), seq)
                self.resolve(("send", key))
            else:
                if stats.window:  # what a sync brings after a reconnect counts apart
                    kind = "delivery_via_sync" if self.syncing else "delivery"
                    stats.time(kind, time.time() - float(sent_at))
                stats.received[key] += 1
        elif kind == "message_updated":
            self.resolve(("updated", frame["message"]["id"]))
        elif kind == "read":
            if frame.get("user_id") == self.user:
                self.resolve(("read", frame.get("chat_id")))
        elif kind == "synced":
            self.syncing = False
            self.resolve(("sync", None))
        elif kind == "pong":
            self.resolve(("ping", None))
        elif kind == "hello":
            self.connected = True
            self.ever = True
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error":
            code = str(frame.get("code"))
            ref = frame.get("ref")
            for key in list(self.pending):
                if key[1] == ref or (ref is None and key[0] in ("read", "sync", "ping")):
                    action, _t, fut = self.pending.pop(key)
                    stats.errors[f"{action}:{code}"] += 1
                    if not fut.done():
                        fut.set_result(False)
                    return
            stats.errors[f"frame:{code}"] += 1
        else:
            stats.events[str(kind)] += 1

    # requests with an answer

    def expect(self, key: tuple[str, Any], action: str) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[key] = (action, time.perf_counter(), fut)
        return fut

    def resolve(self, key: tuple[str, Any]) -> None:
        entry = self.pending.pop(key, None)
        if entry is None:
            return
        action, started, fut = entry
        self.gen.stats.time(action, time.perf_counter() - started)
        if not fut.done():
            fut.set_result(True)

    async def answered(self, key: tuple[str, Any], fut: asyncio.Future[bool]) -> bool:
        """Waits for the answer: True when it came, False for an error frame or a timeout."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), TIMEOUT)
        except TimeoutError:
            entry = self.pending.pop(key, None)
            if entry is not None:
                self.gen.stats.errors[f"{entry[0]}:timeout"] += 1
            return False

    def send(self, frame: dict[str, Any]) -> bool:
        if self.transport is None or not self.connected:
            return False
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))
        return True

    # connecting

    async def connect(self) -> None:
        """Opens the socket and waits for hello (raises on failure)."""
        self.ready = asyncio.get_running_loop().create_future()
        self.leaving = False
        url = self.gen.share.ws_urls[self.user % len(self.gen.share.ws_urls)]
        await ws_connect(
            lambda: self, url, extra_headers=[("Authorization", f"Bearer {self.token}")],
            websocket_handshake_timeout=30, max_frame_size=1 << 20,
        )  # fmt: skip
        await asyncio.wait_for(self.ready, 30)

    async def sync(self, action: str) -> bool:
        key = ("sync", None)
        fut = self.expect(key, action)
        self.syncing = True
        if self.send({"type": "sync", "chats": {str(c): s for c, s in self.seen.items()}}):
            done = await self.answered(key, fut)
            self.syncing = False
            return done
        self.pending.pop(key, None)
        return False

    async def come_back(self) -> None:
        """After a close it did not ask for: the web client's backoff, then sync."""
        self.attempts = 0
        while not self.gen.stopping:
            base = min(30.0, 0.5 * 2**self.attempts)
            await asyncio.sleep(base / 2 + random.random() * base / 2)
            self.attempts += 1
            try:
                await self.connect()
            except Exception as exc:
                self.gen.stats.events[f"reconnect_failed_{_why(exc)}"] += 1
                continue
            for tries in range(5):  # a failed sync is asked again, as a client would
                if await self.sync("resync"):
                    self.back_at = time.time()
                    if self.active and self.gen.storming and self.seen:
                        # back: it writes, and whoever is still away must get it by sync
                        self.gen.spawn(self.send_message(random.choice(list(self.seen)),
                                                         typing=False))  # fmt: skip
                    return
                await asyncio.sleep(0.5 * 2**tries)
            self.leave()  # never synced: try the whole way again
            self.leaving = False

    def leave(self) -> None:
        self.leaving = True
        self.connected = False
        transport, self.transport = self.transport, None
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    # the actions of an active person

    async def act(self, action: str) -> None:
        chats = list(self.seen)
        if not chats and action != "search":
            return
        chat = random.choice(chats) if chats else 0
        stats = self.gen.stats
        if action == "send":
            await self.send_message(chat)
        elif action == "open":
            started = time.perf_counter()
            status, body = await self.gen.http(
                "GET", f"/service/api/chats/{chat}/messages?limit=50", self.token
            )
            if status != 200:
                stats.errors[failure("history", status, body)] += 1
                return
            stats.time("history", time.perf_counter() - started)
            page = orjson.loads(body)
            if page:
                self.seen[chat] = max(self.seen.get(chat, 0), page[-1]["seq"])
                await self.mark_read(chat)
        elif action == "read":
            unread = [c for c in chats if self.seen[c] > self.read_at.get(c, 0)]
            if unread:
                await self.mark_read(random.choice(unread))
        elif action == "react":
            ids = self.recent.get(chat) or []
            if not ids:
                return
            mid = random.choice(ids)
            emoji = random.choice(EMOJI)
            if (mid, emoji) in self.reacted:
                return
            self.reacted.add((mid, emoji))
            key = ("updated", mid)
            fut = self.expect(key, "react")
            if self.send({"type": "react", "message_id": mid, "emoji": emoji}):
                await self.answered(key, fut)
        elif action == "edit":
            if self.last_own is None:
                return
            key = ("updated", self.last_own)
            fut = self.expect(key, "edit")
            text = " ".join(random.choices(WORDS, k=4)) + " (edited)"
            if self.send({"type": "edit", "message_id": self.last_own, "content": text}):
                await self.answered(key, fut)
        elif action == "search":
            started = time.perf_counter()
            status, body = await self.gen.http(
                "GET", f"/service/api/search?q={random.choice(WORDS)}&limit=20", self.token
            )
            if status != 200:
                stats.errors[failure("search", status, body)] += 1
                return
            stats.time("search", time.perf_counter() - started)
        elif action == "upload":
            started = time.perf_counter()
            status, body = await self.gen.http(
                "POST", f"/service/api/chats/{chat}/attachments", self.token,
                files={"file": ("photo.png", self.gen.image, "image/png")},
            )  # fmt: skip
            if status != 201:
                stats.errors[failure("upload", status, body)] += 1
                return
            stats.time("upload", time.perf_counter() - started)
            await self.send_message(chat, attachment=orjson.loads(body)["id"], typing=False)
        elif action == "reconnect":
            started = time.perf_counter()
            self.leave()
            try:
                await self.connect()
            except Exception as exc:
                stats.errors[f"reconnect:{type(exc).__name__}"] += 1
                self.gen.spawn(self.come_back())
                return
            await self.sync("sync")
            stats.time("reconnect", time.perf_counter() - started)

    async def send_message(self, chat: int, attachment: int | None = None,
                           typing: bool = True) -> None:  # fmt: skip
        if typing:
            self.send({"type": "typing", "chat_id": chat})
            await asyncio.sleep(random.uniform(1.0, 3.0) / self.gen.share.pace)
        key = f"{self.gen.share.index}.{self.user}.{next(self.gen.counter)}"
        words = " ".join(random.choices(WORDS, k=random.randint(3, 12)))
        frame: dict[str, Any] = {
            "type": "send", "chat_id": chat, "client_id": key,
            "content": f"{TAG} {key} {time.time():.6f} {words}",
        }  # fmt: skip
        if attachment is not None:
            frame["attachment_ids"] = [attachment]
        fut = self.expect(("send", key), "send")
        if self.send(frame):
            if self.gen.stats.window:
                self.gen.stats.sent[key] = chat
            await self.answered(("send", key), fut)
        else:
            self.pending.pop(("send", key), None)

    async def mark_read(self, chat: int) -> None:
        seq = self.seen.get(chat, 0)
        if seq <= self.read_at.get(chat, 0):
            return  # nothing new: the client sends nothing (the server would not echo)
        self.read_at[chat] = seq
        key = ("read", chat)
        fut = self.expect(key, "read")
        if self.send({"type": "read", "chat_id": chat, "seq": seq}):
            await self.answered(key, fut)


class Generator:
    def __init__(self, share: Share) -> None:
        self.share = share
        self.people = [Person(self, u, t, a, c) for u, t, a, c in share.people]
        self.stats = Stats()
        self.stopping = False
        self.storming = False
        self.counter = iter(range(1 << 62))
        self.tasks: set[asyncio.Task[Any]] = set()
        self.image = _small_png()
        self.lag = Hist()
        self.http_client: Any = None

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def http(
        self, method: str, path: str, token: str, files: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        import httpx

        if self.http_client is None:
            # Idle connections are dropped before the gateway's keep-alive timeout (uvicorn's
            # 5 s) can close them under a request.
            self.http_client = httpx.AsyncClient(
                trust_env=False, timeout=TIMEOUT,
                limits=httpx.Limits(
                    max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0
                ),
            )  # fmt: skip
        base = random.choice(self.share.http_urls)
        for attempt in (1, 2):
            try:
                r = await self.http_client.request(
                    method, base + path, headers={"Authorization": f"Bearer {token}"}, files=files
                )
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # A kept-alive connection the other side closed as it was reused: a browser
                # sends an idempotent request again on a new one, once. Counted apart.
                if method == "GET" and attempt == 1:
                    self.stats.events[f"http_retried_{type(exc).__name__}"] += 1
                    continue
                return 0, type(exc).__name__.encode()
            except httpx.HTTPError as exc:
                return 0, type(exc).__name__.encode()
            return r.status_code, r.content
        raise AssertionError("unreachable")

    async def ramp(self) -> dict[str, Any]:
        """Opens every socket at the share's rate; returns how it went."""
        if self.share.start_at is not None:
            await asyncio.sleep(max(0.0, self.share.start_at - time.time()))
        started = time.perf_counter()
        gate = asyncio.Semaphore(256)
        failures: Counter[str] = Counter()
        refused: Counter[str] = Counter()  # tries refused, then tried again
        handshake = Hist()

        async def one(i: int, person: Person) -> None:
            due = started + i / self.share.ramp_per_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            t = time.perf_counter()  # a refused try counts in the handshake's time
            for attempt in range(RAMP_TRIES):
                async with gate:
                    try:
                        await person.connect()
                    except Exception as exc:
                        why = _why(exc)
                        if why != "http_503" or attempt == RAMP_TRIES - 1:
                            failures[why] += 1
                            return
                        refused[why] += 1
                    else:
                        handshake.add(time.perf_counter() - t)
                        return
                # refused before the upgrade (the server's admission, Retry-After: 1): the
                # web client's backoff, at least the second it was told
                base = min(30.0, 0.5 * 2**attempt)
                await asyncio.sleep(max(1.0, base / 2 + random.random() * base / 2))

        await asyncio.gather(*(one(i, p) for i, p in enumerate(self.people)))
        self.spawn(self.pinger())
        return {
            "opened": sum(p.connected for p in self.people),
            "failures": dict(failures),
            "refused_then_retried": dict(refused),
            "seconds": round(time.perf_counter() - started, 2),
            "handshake": handshake.summary(),
        }

    async def pinger(self) -> None:
        """Each person pings every 30 s at its own phase (120 slots of 0.25 s)."""
        slots: list[list[Person]] = [[] for _ in range(120)]
        for p in self.people:
            slots[random.randrange(120)].append(p)
        tick = 0
        started = time.perf_counter()
        while not self.stopping:
            for p in slots[tick % 120]:
                if p.connected and ("ping", None) not in p.pending:
                    key = ("ping", None)
                    fut = p.expect(key, "ping")
                    if p.send({"type": "ping"}):
                        self.spawn(p.answered(key, fut))
                    else:
                        p.pending.pop(key, None)
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * PING_EVERY / 120 - time.perf_counter()))

    async def behave(self, person: Person) -> None:
        mix = self.share.mix
        actions = list(mix)
        weights = [mix[a] for a in actions]
        per_s = sum(weights) / 60 * self.share.pace
        if per_s <= 0:
            return
        while not self.stopping and self.stats.window:
            await asyncio.sleep(random.expovariate(per_s))
            if self.stopping or not self.stats.window:
                return
            if not person.connected:
                continue
            action = random.choices(actions, weights)[0]
            self.stats.events[f"act_{action}"] += 1
            try:
                await person.act(action)
            except Exception as exc:  # a bug in the generator must show, not hang the run
                self.stats.errors[f"generator:{type(exc).__name__}"] += 1

    async def watch_lag(self) -> None:
        while not self.stopping:
            t = time.perf_counter()
            await asyncio.sleep(0.1)
            self.lag.add(max(0.0, time.perf_counter() - t - 0.1))

    async def window(self, seconds: float, drain: float) -> dict[str, Any]:
        """The steady phase: every active person acts for `seconds`; then `drain` seconds
        for what is still on its way. Returns this process's figures."""
        self.lag = Hist()
        self.stats.events.clear()  # the window's (the ramp's presence burst is not steady)
        self.stats.window = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        watcher = asyncio.ensure_future(self.watch_lag())
        for p in self.people:
            if p.active:
                self.spawn(self.behave(p))
        await asyncio.sleep(seconds)
        self.stats.window = False  # no new actions; answers still count
        await asyncio.sleep(drain)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        watcher.cancel()
        for p in self.people:  # asked and never answered, even after the drain
            for action, _t, _fut in p.pending.values():
                self.stats.errors[f"{action}:unanswered"] += 1
        lag99 = self.lag.pct(0.99) or 0.0
        s = self.stats
        return {
            "index": self.share.index,
            "people": len(self.people),
            "connected_at_end": sum(p.connected for p in self.people),
            "hists": {k: dict(h.counts) for k, h in s.hists.items()},
            "errors": dict(s.errors),
            "events": dict(s.events),
            "sent": s.sent,
            "received": dict(s.received),
            "cpu_share": round(cpu, 3),
            "loop_lag_p99_ms": lag99,
            "loop_lag_max_ms": self.lag.pct(1.0),
            "saturated": cpu > self.share.cpu_bound or lag99 > self.share.lag_bound_ms,
            "rss_mib": round(_rss_mib(), 1),
            "seen": {p.user: p.seen for p in self.people},
            "absent": [p.user for p in self.people if not p.ever],
        }

    async def storm(self, timeout: float) -> dict[str, Any]:
        """Waits until everyone whose socket the server closed is back and synced; the
        active ones write a message once back, which those still away must get by sync."""
        self.storming = True
        for p in self.people:
            p.closed_at = p.back_at = None
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            closed = [p for p in self.people if p.closed_at is not None]
            if len(closed) == sum(p.ever for p in self.people) and all(
                p.back_at is not None for p in closed
            ):
                break
            await asyncio.sleep(0.1)
        # the messages the last ones back wrote are still on their way: the steady phase's
        # drain, then what everyone has seen is compared with the database
        await asyncio.sleep(STORM_DRAIN)
        closed = [p for p in self.people if p.closed_at is not None]
        back = [p.back_at for p in closed if p.back_at is not None]
        return {
            "index": self.share.index,
            "closed": len(closed),
            "back": len(back),
            "first_closed_at": min((p.closed_at for p in closed if p.closed_at), default=None),
            "last_back_at": max(back, default=None),
            "attempts_max": max((p.attempts for p in closed), default=0),
            "seen": {p.user: p.seen for p in self.people},
            "events": dict(self.stats.events),
            "errors": dict(self.stats.errors),
        }

    async def close(self) -> None:
        self.stopping = True
        for p in self.people:
            p.leave()
        for task in list(self.tasks):
            task.cancel()
        if self.http_client is not None:
            await self.http_client.aclose()


RAMP_TRIES = 8  # a handshake refused with 503 is tried again, as the web client would
STORM_DRAIN = 5.0  # seconds after the last one is back before the storm's count


def failure(action: str, status: int, body: bytes) -> str:
    """An HTTP action's error key: its status, or the client's exception (status 0)."""
    return f"{action}:{status}" if status else f"{action}:{body.decode(errors='replace')}"


def _why(exc: Exception) -> str:
    """An exception as a short key: a refused handshake by its HTTP status."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status", None)
    if status is not None:
        return f"http_{int(status)}"
    return type(exc).__name__


def _small_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def _rss_mib() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / (1 << 20)


# The process: commands arrive on a pipe from the coordinator.


def worker_main(conn: Any, share: Share) -> None:
    """Entry point of a generator process (multiprocessing, spawn)."""
    import uvloop

    from bench.harness import raise_nofile

    raise_nofile()
    random.seed(os.getpid() ^ time.time_ns())
    uvloop.run(_serve(conn, share))


async def _serve(conn: Any, share: Share) -> None:
    gen = Generator(share)
    loop = asyncio.get_running_loop()
    recv: Callable[[], Any] = conn.recv
    try:
        conn.send(("ramped", await gen.ramp()))
        while True:
            command, arg = await loop.run_in_executor(None, recv)
            if command == "window":
                conn.send(("window", await gen.window(*arg)))
            elif command == "storm":
                conn.send(("storm", await gen.storm(arg)))
            elif command == "stop":
                break
    finally:
        await gen.close()
        conn.send(("stopped", None))
