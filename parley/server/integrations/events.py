"""Events to bots: every message in a bot's chats (not its own) and its commands, POSTed to
its `event_url`, signed, retried, logged, and the answer posted as the bot's reply.

Nothing here is on the send path: the writer hands each batch of stored messages to
`BotEvents.on_messages`, which only puts them on a bounded queue (a full queue drops the
overflow, counted in `dropped`). One worker task reads the queue, finds the bots to tell
(a per-process set of the chats that have any bot with an event URL spares a query per
message in the others; it is forgotten when membership or a bot changes, from any
process) and starts one delivery task per (event, bot), so a slow bot delays no other.

A delivery: `POST event_url` through the outbound module (its address rules, 5 s), with
`X-Parley-Timestamp` and `X-Parley-Signature: v1=<hex HMAC-SHA256(secret, ts + "." +
body)>`. A 2xx ends it; a failure or a 5xx is retried after RETRY_DELAYS on the clock,
then dropped; a 4xx or a refused address ends it as failed. Each delivery is a row of
`bot_deliveries` (the last LOG_SIZE per bot are kept). A 2xx answer with JSON `{text}`
is posted in the chat as the bot (`{text, ephemeral: true}` to a command: only the
caller's sockets get it, as an `ephemeral` frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.clock import Clock
from parley.server.accounts.schemas import UserPublic
from parley.server.accounts.service import user_public
from parley.server.db.models import Bot, BotDelivery, Chat, Membership, User
from parley.server.integrations.bots import LOG_SIZE
from parley.server.jobs import Loop, run_logged
from parley.server.messages.schemas import MessagePublic
from parley.server.outbound import Failed, Outbound, Refused
from parley.server.realtime import events, frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import UsersFrame

log = logging.getLogger("parley.bots")
RETRY_DELAYS = (1.0, 10.0, 60.0)  # seconds before the 2nd, 3rd and 4th attempts
MAX_ANSWER = 64 * 1024  # bytes of a bot's answer read
MAX_PENDING = 10_000  # events waiting for the worker
MAX_RUNNING = 100  # deliveries in flight at once
CHATS_TTL = 30.0  # seconds the set of chats with bots is trusted without an event


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Parley-Signature` value: `v1=` + hex HMAC-SHA256(secret, ts + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


# Posts `text` in `chat_id` as `bot_id` (the send path every transport shares).
PostReply = Callable[[int, int, str], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Target:
    bot_id: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class CommandCall:
    chat_id: int
    command: str
    text: str
    user: UserPublic
    target: Target


class BotEvents:
    """The queue and worker that deliver bot events of this process."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbound: Outbound,
        broker: Broker,
        clock: Clock,
        post_reply: PostReply,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.sessions, self.outbound, self.broker, self.clock = sessions, outbound, broker, clock
        self.post_reply = post_reply
        self.retry_delays = tuple(retry_delays)
        self.queue: asyncio.Queue[MessagePublic | CommandCall] = asyncio.Queue(MAX_PENDING)
        self.running: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(MAX_RUNNING)
        self.dropped = 0
        self._chats: frozenset[int] | None = None  # chats with a bot that has an event URL
        self._chats_at = 0.0
        self._loop = Loop("bot-events", self._run)

    # --- entries --------------------------------------------------------------------

    def on_messages(self, messages: Sequence[MessagePublic]) -> None:
        """The writer's listener: queues, never waits, never raises."""
        chats = self._chats
        for message in messages:
            if chats is not None and message.chat_id not in chats and self._fresh():
                continue
            try:
                self.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped += 1

    def command(self, call: CommandCall) -> None:
        try:
            self.queue.put_nowait(call)
        except asyncio.QueueFull:
            self.dropped += 1
            raise errors.Overloaded() from None

    def on_event(self, event: events.Event) -> None:
        """A hub listener: membership or a bot changed (any process): ask again."""
        if isinstance(
            event,
            events.MembershipChanged | events.ChatRemoved | events.ProfileChanged | events.Resync,
        ):
            self._chats = None

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- the worker -------------------------------------------------------------------

    def _fresh(self) -> bool:
        return self.clock.monotonic() - self._chats_at < CHATS_TTL

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            await run_logged(partial(self._prepare, item), log, "a bot event could not be prepared")

    async def _prepare(self, item: MessagePublic | CommandCall) -> None:
        if isinstance(item, CommandCall):
            await self._start(item.target, "command", _command_body(item), item)
        else:
            await self._on_message(item)

    async def _on_message(self, message: MessagePublic) -> None:
        if self._chats is None or not self._fresh():
            async with self.sessions() as session:
                self._chats = await chats_with_bots(session)
            self._chats_at = self.clock.monotonic()
        if message.chat_id not in self._chats:
            return
        sender = message.sender.id if message.sender else None
        async with self.sessions() as session:
            chat = await session.get(Chat, message.chat_id)
            targets = await message_targets(session, message.chat_id, sender)
        if chat is None:
            return
        body = orjson.dumps(
            {
                "type": "message",
                "message": message.model_dump(mode="json"),
                "chat": {"id": chat.id, "type": chat.type, "title": chat.title},
            }
        )
        for target in targets:
            await self._start(target, "message", body, message.chat_id)

    async def _start(
        self, target: Target, kind: str, body: bytes, context: CommandCall | int
    ) -> None:
        async with self.sessions() as session:
            row = BotDelivery(bot_id=target.bot_id, kind=kind, created_at=self.clock())
            session.add(row)
            await session.flush()
            delivery_id = row.id
            await _prune(session, target.bot_id, delivery_id)
            await session.commit()
        await self.slots.acquire()
        task = asyncio.create_task(self._deliver(delivery_id, target, body, context))
        self.running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self.slots.release()

    async def _deliver(
        self, delivery_id: int, target: Target, body: bytes, context: CommandCall | int
    ) -> None:
        delays = (0.0, *self.retry_delays)
        outcome = "dropped"
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                await self.clock.sleep(delay)
            status, error, answer = await self._attempt(target, body)
            retry = status is None or status >= 500
            if status is not None and 200 <= status < 300:
                outcome = "delivered"
                error = await self._answer(target, answer, context)
            elif error == "refused" or not retry:
                outcome = "failed"
            done = outcome != "dropped" or attempt == len(delays)
            await self._record(delivery_id, attempt, status, error, outcome if done else None)
            if outcome != "dropped":
                return

    async def _attempt(self, target: Target, body: bytes) -> tuple[int | None, str, bytes]:
        timestamp = str(int(self.clock().timestamp()))
        headers = {
            "content-type": "application/json",
            "x-parley-timestamp": timestamp,
            "x-parley-signature": sign(target.secret, timestamp, body),
        }
        try:
            response = await self.outbound.post(
                target.url, body, headers=headers, max_bytes=MAX_ANSWER
            )
        except Refused as exc:
            log.info("bot %d: event URL refused: %s", target.bot_id, exc.detail)
            return None, "refused", b""
        except Failed as exc:
            return None, exc.detail[:200], b""
        error = "" if response.status < 300 else f"HTTP {response.status}"
        return response.status, error, response.body

    async def _answer(self, target: Target, answer: bytes, context: CommandCall | int) -> str:
        """Posts the answer's `text`; "" when done (or none), else why not."""
        try:
            data = json.loads(answer) if answer.strip() else None
        except ValueError:
            return ""  # not JSON: nothing to post
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return ""
        text = data["text"].strip()
        if not text:
            return ""
        chat_id = context.chat_id if isinstance(context, CommandCall) else context
        try:
            if isinstance(context, CommandCall) and data.get("ephemeral") is True:
                await self._ephemeral(target.bot_id, context, text[:4000])
            else:
                await self.post_reply(target.bot_id, chat_id, text[:4000])
        except errors.ParleyError as exc:
            return f"reply refused: {exc.code}"
        return ""

    async def _ephemeral(self, bot_id: int, call: CommandCall, text: str) -> None:
        async with self.sessions() as session:
            bot = await session.get(User, bot_id)
            if bot is None:
                return
            frame = frames.Ephemeral(chat_id=call.chat_id, text=text, bot=user_public(bot))
        await self.broker.publish(UsersFrame.of([call.user.id], frame))

    async def _record(
        self,
        delivery_id: int,
        attempts: int,
        status: int | None,
        error: str,
        outcome: str | None,
    ) -> None:
        async with self.sessions() as session:
            row = await session.get(BotDelivery, delivery_id)
            if row is None:  # the bot is gone
                return
            row.attempts, row.response_status, row.error = attempts, status, error[:200]
            if outcome is not None:
                row.status, row.finished_at = outcome, self.clock()
            await session.commit()


def _command_body(call: CommandCall) -> bytes:
    return orjson.dumps(
        {
            "type": "command",
            "command": call.command,
            "text": call.text,
            "chat_id": call.chat_id,
            "user": call.user.model_dump(mode="json"),
        }
    )


async def chats_with_bots(session: AsyncSession) -> frozenset[int]:
    rows = await session.execute(
        select(Membership.chat_id)
        .join(Bot, Bot.user_id == Membership.user_id)
        .where(Bot.event_url != "")
        .distinct()
    )
    return frozenset(rows.scalars())


async def message_targets(
    session: AsyncSession, chat_id: int, sender_id: int | None
) -> list[Target]:
    """The bots of the chat with an event URL, the sender aside."""
    query = (
        select(Bot.user_id, Bot.event_url, Bot.signing_secret)
        .join(Membership, Membership.user_id == Bot.user_id)
        .where(Membership.chat_id == chat_id, Bot.event_url != "")
        .order_by(Bot.user_id)
    )
    if sender_id is not None:
        query = query.where(Bot.user_id != sender_id)
    return [Target(r.user_id, r.event_url, r.signing_secret) for r in await session.execute(query)]


async def _prune(session: AsyncSession, bot_id: int, newest: int) -> None:
    """Keeps the bot's last LOG_SIZE deliveries."""
    cutoff = await session.scalar(
        select(BotDelivery.id)
        .where(BotDelivery.bot_id == bot_id, BotDelivery.id <= newest)
        .order_by(BotDelivery.id.desc())
        .offset(LOG_SIZE)
        .limit(1)
    )
    if cutoff is not None:
        await session.execute(
            delete(BotDelivery).where(BotDelivery.bot_id == bot_id, BotDelivery.id <= cutoff)
        )
