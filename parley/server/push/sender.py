"""Sending Web Push: a bounded queue of deliveries, worked off in the background.

Each new message this process stored is handed over (`on_new`, never blocking the
writer); the worker reads who should hear of it (service.audience), leaves out users
with a socket active within PARLEY_PUSH_IDLE_SECONDS, and posts one encrypted request
per subscription through outbound.py: the payload is encrypted by pywebpush (RFC 8291,
aes128gcm) and signed with the server's VAPID key (RFC 8292, py_vapid); the bytes go out
through `Outbound`, under its address rules. 404/410: the subscription is deleted;
429/5xx: retried at most 3 times, after Retry-After (or 1, 2, 4 s). What does not fit
in the queue is dropped and counted (`push_dropped_total`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter
from py_vapid import Vapid02
from pywebpush import WebPusher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.clock import Clock
from parley.server.jobs import run_logged
from parley.server.messages.schemas import MessagePublic
from parley.server.outbound import Failed, Outbound, Refused
from parley.server.push import service

log = logging.getLogger("parley.push")
TTL = 24 * 3600
MAX_RETRIES = 3
MAX_RETRY_AFTER = 60.0
BODY_CHARS = 140
ANYONE_FRESH_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Delivery:
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: bytes


class Pusher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbound: Outbound,
        vapid: Vapid02,
        clock: Clock,
        *,
        subject: str,
        idle_seconds: float,
        show_content: bool,
        is_active: Callable[[int, float], bool],
        max_queue: int = 1000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`is_active(user_id, seconds)`: whether one of the user's sockets here sent an
        application frame within `seconds`."""
        self.sessions, self.outbound, self.vapid, self.clock = sessions, outbound, vapid, clock
        self.subject, self.idle_seconds, self.show_content = subject, idle_seconds, show_content
        self.is_active = is_active
        self.messages: asyncio.Queue[MessagePublic] = asyncio.Queue(max_queue)
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue(max_queue)
        self.dropped = Counter(
            "push_dropped_total", "Web Push notifications dropped: queue full", registry=registry
        )
        self.sent = Counter(
            "push_sent_total", "Web Push requests by outcome", ["outcome"], registry=registry
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._anyone: tuple[bool, float] | None = None  # (answer, monotonic time read)

    def subscribed(self) -> None:
        """Somebody subscribed through this process: push from now on, without asking."""
        self._anyone = (True, self.clock.monotonic())

    async def _anyone_subscribed(self) -> bool:
        """Whether anybody has a subscription, read at most every ANYONE_FRESH_SECONDS:
        where nobody has subscribed a new message costs no query at all. A first
        subscription made through another process is seen within that time."""
        now = self.clock.monotonic()
        if self._anyone is not None and now - self._anyone[1] < ANYONE_FRESH_SECONDS:
            return self._anyone[0]
        async with self.sessions() as session:
            anyone = await service.anyone_subscribed(session)
        self._anyone = (anyone, now)
        return anyone

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._decide_loop(), name="push-decide"),
                asyncio.create_task(self._send_loop(), name="push-send"),
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def on_new(self, messages: Collection[MessagePublic]) -> None:
        """New messages stored by this process; never blocks (full: dropped, counted)."""
        for message in messages:
            try:
                self.messages.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped.inc()

    async def _decide_loop(self) -> None:
        while True:
            batch = [await self.messages.get()]
            while not self.messages.empty():  # everything queued meanwhile, decided together
                batch.append(self.messages.get_nowait())
            try:
                if not await self._anyone_subscribed():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("push: reading the subscriptions failed", exc_info=True)
                continue
            for message in batch:
                try:
                    await self.decide(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("push: deciding for message %s failed", message.id, exc_info=True)

    async def decide(self, message: MessagePublic) -> None:
        sender = message.sender.id if message.sender else None
        async with self.sessions() as session:
            chat, audience = await service.audience(
                session,
                chat_id=message.chat_id,
                sender_id=sender,
                mentioned=message.mentions,
                now=self.clock(),
                thread_root_id=message.thread_root_id,
            )
        if chat is None:
            return
        for user_id, subscriptions in audience.items():
            if self.is_active(user_id, self.idle_seconds):
                continue  # reading here right now: the open tab shows it
            payload = self._payload(message, chat.type, chat.title)
            for sub in subscriptions:
                try:
                    self.deliveries.put_nowait(
                        Delivery(sub.id, sub.endpoint, sub.p256dh, sub.auth, payload)
                    )
                except asyncio.QueueFull:
                    self.dropped.inc()

    def _payload(self, message: MessagePublic, chat_type: str, chat_title: str) -> bytes:
        who = message.sender.display_name if message.sender else ""
        title = who if chat_type == "direct" else f"{who} · {chat_title}"
        body = message.content[:BODY_CHARS] if self.show_content else "New message"
        data = {
            "type": "message",
            "chat_id": message.chat_id,
            "message_id": message.id,
            "seq": message.seq,
            "title": title,
            "body": body,
            "tag": f"chat-{message.chat_id}",
        }
        return json.dumps(data, ensure_ascii=False).encode()

    async def _send_loop(self) -> None:
        while True:
            delivery = await self.deliveries.get()
            await run_logged(partial(self.send, delivery), log, "push: sending failed")

    def request_for(self, delivery: Delivery) -> tuple[dict[str, str], bytes]:
        """The headers and encrypted body of one push (RFC 8291 and 8292)."""
        pusher = WebPusher(
            {
                "endpoint": delivery.endpoint,
                "keys": {"p256dh": delivery.p256dh, "auth": delivery.auth},
            }
        )
        body = pusher.encode(delivery.payload, "aes128gcm")["body"]
        parts = urlsplit(delivery.endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(self.clock().timestamp()) + 12 * 3600,
            "sub": self.subject,
        }
        headers = {
            **self.vapid.sign(claims),
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(TTL),
            "urgency": "normal",
        }
        return headers, body

    async def send(self, delivery: Delivery) -> str:
        """Posts one push, retrying 429/5xx; the outcome ("sent", "gone", "failed")."""
        headers, body = self.request_for(delivery)
        for attempt in range(MAX_RETRIES + 1):
            try:
                answer = await self.outbound.post(
                    delivery.endpoint, body, headers=headers, max_bytes=4096
                )
            except Refused:
                return self._outcome("refused")
            except Failed:
                status, retry_after = 0, None
            else:
                status, retry_after = answer.status, answer.headers.get("retry-after")
            if 200 <= status < 300:
                return self._outcome("sent")
            if status in (404, 410):
                async with self.sessions() as session:
                    await service.forget(session, subscription_id=delivery.subscription_id)
                return self._outcome("gone")
            if not (status == 0 or status == 429 or status >= 500) or attempt == MAX_RETRIES:
                break
            await self.clock.sleep(_delay(retry_after, attempt))
        return self._outcome("failed")

    def _outcome(self, outcome: str) -> str:
        self.sent.labels(outcome).inc()
        return outcome


def _delay(retry_after: str | None, attempt: int) -> float:
    try:
        seconds = float(retry_after) if retry_after else 2.0**attempt
    except ValueError:
        seconds = 2.0**attempt  # an HTTP date: not worth parsing for a capped wait
    return max(0.0, min(seconds, MAX_RETRY_AFTER))
