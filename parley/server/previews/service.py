"""Link previews: made off the send path, after the message is stored and acknowledged.

The writer offers each new message (`LinkPreviews.offer`); one whose text has an http(s)
URL outside code (parley/server/previews/page.py) is queued (bounded: when full, the
newest offers are dropped, never the send). One task takes the queue in order: the page
of the first URL is fetched through `Outbound` (its address rules, 5 s, 1 MiB of HTML),
parsed, and its image fetched (5 MiB), re-encoded (≤ 1024 px, WebP) and stored. What a
URL's page said is kept in `link_previews` and used for 24 h, fetched or failed: one
fetch per URL a day. The message gets its `message_previews` row (the image an
attachment row of its chat) and the chat `message_updated`. The author removes it with
`remove_preview`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.clock import Clock
from parley.server import images
from parley.server.db.models import Attachment, LinkPreview, Message, MessagePreview
from parley.server.db.unit import after_commit
from parley.server.jobs import Loop, run_logged
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import access_message, message_public, publish_update
from parley.server.outbound import Failed, Outbound, Refused
from parley.server.previews.page import Page, first_url, parse_page
from parley.server.realtime.broker import Broker
from parley.server.storage import Storage, new_key

log = logging.getLogger("parley.previews")

CACHE_FOR = timedelta(hours=24)
MAX_HTML = 1024 * 1024
MAX_IMAGE = 5 * 1024 * 1024
QUEUE = 1000
_HTML = ("text/html", "application/xhtml+xml")


class LinkPreviews:
    """The queue and its task (started by the app when `PARLEY_LINK_PREVIEWS` is on)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbound: Outbound,
        storage: Storage,
        broker: Broker,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.outbound = outbound
        self.storage = storage
        self.broker = broker
        self.clock = clock
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(QUEUE)
        self.loop = Loop("parley-link-previews", self._run)

    def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    def offer(self, messages: Sequence[MessagePublic]) -> None:
        """Queues the new messages that have a URL (called once they are acknowledged)."""
        if self.loop.task is None:
            return
        for message in messages:
            url = first_url(message.content)
            if url is None:
                continue
            try:
                self.queue.put_nowait((message.id, url))
            except asyncio.QueueFull:
                log.warning("link preview queue full: message %s gets none", message.id)

    async def _run(self) -> None:
        while True:
            message_id, url = await self.queue.get()
            failure = "link preview of message %s failed"
            await run_logged(partial(self.make, message_id, url), log, failure, message_id)

    async def make(self, message_id: int, url: str) -> None:
        """The message's preview of `url`, from the cache or fetched; then told."""
        async with self.sessions() as session:
            page, image_key = await self._page(session, url)
            message = await session.get(Message, message_id)
            empty = page is None or (page.empty and image_key is None)
            if page is None or message is None or message.deleted_at is not None or empty:
                await session.commit()  # the cache row
                return
            if await session.get(MessagePreview, message_id) is not None:
                return
            now = self.clock()
            image_id = None
            if image_key is not None:
                image_id = await self._copy_image(session, message, image_key, now)
            session.add(
                MessagePreview(
                    message_id=message_id,
                    url=url,
                    title=page.title,
                    description=page.description,
                    site_name=page.site_name,
                    image_id=image_id,
                )
            )
            after_commit(session, lambda: self._announce(message_id))
            await session.commit()

    async def _announce(self, message_id: int) -> None:
        async with self.sessions() as session:
            message = await session.get(Message, message_id)
            if message is not None:
                await publish_update(self.broker, await message_public(session, message))

    async def _page(self, session: AsyncSession, url: str) -> tuple[Page | None, str | None]:
        """What the page says and its stored image's key: cached if fetched in the last
        24 h, else fetched now (and cached, a failure too)."""
        now = self.clock()
        cached = await session.get(LinkPreview, url)
        if cached is not None and cached.fetched_at > now - CACHE_FOR:
            known = Page(cached.title, cached.description, cached.site_name, None)
            return known, cached.image_key
        page, image_key = await self._fetch(url, now)
        if cached is None:
            cached = LinkPreview(url=url)
            session.add(cached)
        cached.fetched_at = now
        cached.title = page.title if page else None
        cached.description = page.description if page else None
        cached.site_name = page.site_name if page else None
        cached.image_key = image_key
        await session.flush()
        return page, image_key

    async def _fetch(self, url: str, now: datetime) -> tuple[Page | None, str | None]:
        try:
            answer = await self.outbound.request(
                "GET", url, headers={"accept": "text/html"}, max_bytes=MAX_HTML
            )
        except (Refused, Failed) as exc:
            log.info("no link preview of %s: %s", url, exc.detail)
            return None, None
        if answer.status != 200 or answer.content_type not in _HTML:
            return None, None
        page = parse_page(answer.body, answer.url)
        if page.image_url is None:
            return page, None
        return page, await self._fetch_image(page.image_url, now)

    async def _fetch_image(self, url: str, now: datetime) -> str | None:
        try:
            answer = await self.outbound.request("GET", url, max_bytes=MAX_IMAGE)
        except (Refused, Failed) as exc:
            log.info("no link preview image %s: %s", url, exc.detail)
            return None
        if answer.status != 200 or answer.truncated:
            return None
        try:
            data = await images.make_preview_image(answer.body)
        except errors.UnsupportedMedia:
            return None
        key = new_key("previews", now)
        await self.storage.save_bytes(key, data)
        return key

    async def _copy_image(
        self, session: AsyncSession, message: Message, image_key: str, now: datetime
    ) -> int | None:
        """The cached image as an attachment row of the message's chat (its own file)."""
        try:
            data = await self.storage.read_bytes(image_key)
        except errors.NotFound:
            return None
        key = new_key("attachments", now)
        await self.storage.save_bytes(key, data)
        image = Attachment(
            chat_id=message.chat_id,
            uploader_id=None,
            message_id=None,
            filename="preview.webp",
            content_type="image/webp",
            size=len(data),
            is_image=True,
            storage_key=key,
            created_at=now,
        )
        session.add(image)
        await session.flush()
        return image.id


async def remove_preview(
    session: AsyncSession,
    broker: Broker,
    storage: Storage,
    *,
    user_id: int,
    message_id: int,
    now: datetime,
) -> None:
    """The author removes the message's preview (and its image); the chat hears of it."""
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    if message.sender_id != user_id:
        raise errors.Forbidden("Only the author can remove the preview", code="not_author")
    preview = await session.get(MessagePreview, message_id)
    if preview is None:
        return
    image = await session.get(Attachment, preview.image_id) if preview.image_id else None
    await session.delete(preview)
    if image is not None:
        await session.execute(delete(Attachment).where(Attachment.id == image.id))

    async def announce() -> None:
        if image is not None:
            with contextlib.suppress(errors.ParleyError, OSError):  # an orphan file is harmless
                await storage.delete(image.storage_key)
        await publish_update(broker, await message_public(session, message))

    after_commit(session, announce)
    await session.commit()
