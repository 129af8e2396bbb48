"""Avatars: decode-checked, re-encoded square images in file storage, one per user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server import images
from parley.server.accounts.service import access_user, announce_user
from parley.server.db.models import User
from parley.server.realtime.broker import Broker
from parley.server.storage import Storage, new_key

DATA_URL_CACHE_SIZE = 2048


class DataUrls:
    """The avatars' thumbnails as Data URLs (for the seed's single-user route), cached by
    storage key: a new avatar has a new key, and a replaced one is forgotten."""

    def __init__(self, storage: Storage, size: int = DATA_URL_CACHE_SIZE) -> None:
        self.storage, self.size = storage, size
        self._cache: dict[str, str] = {}

    async def of(self, user: User) -> str | None:
        if not user.avatar_key:
            return None
        if (hit := self._cache.get(user.avatar_key)) is not None:
            return hit
        data = await self.storage.read_bytes(user.avatar_key)
        url = await images.make_thumbnail_data_url(data)
        if len(self._cache) >= self.size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[user.avatar_key] = url
        return url

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)


async def read_capped(chunks: AsyncIterator[bytes], *, max_bytes: int) -> bytes:
    """The whole upload, or TooLarge as soon as it passes `max_bytes` (nothing more is read)."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            raise errors.TooLarge(f"Avatar larger than {max_bytes} bytes")
    return bytes(data)


async def set_avatar(
    session: AsyncSession,
    storage: Storage,
    data_urls: DataUrls,
    broker: Broker,
    *,
    user_id: int,
    data: bytes,
    max_bytes: int,
    now: datetime,
    max_group: int,
) -> User:
    """Decodes and re-encodes `data` (415 when it is not an image), stores it, commits,
    then deletes the previous file and forgets its cached data URL."""
    avatar = await images.make_avatar(data, max_bytes=max_bytes)
    key = new_key("avatars", now)
    await storage.save_bytes(key, avatar)
    try:
        user = await access_user(session, user_id)
        old, user.avatar_key = user.avatar_key, key
        await announce_user(session, broker, user, max_group=max_group)
        await session.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await storage.delete(key)
        raise
    await _forget(storage, data_urls, old)
    return user


async def delete_avatar(
    session: AsyncSession,
    storage: Storage,
    data_urls: DataUrls,
    broker: Broker,
    *,
    user_id: int,
    max_group: int,
) -> None:
    """Idempotent: no avatar is fine (and then nobody is told)."""
    user = await access_user(session, user_id)
    old, user.avatar_key = user.avatar_key, None
    if old is not None:
        await announce_user(session, broker, user, max_group=max_group)
    await session.commit()
    await _forget(storage, data_urls, old)


async def open_avatar(
    session: AsyncSession, storage: Storage, *, user_id: int
) -> AsyncIterator[bytes]:
    """The avatar's bytes; NotFound when the user has none."""
    user = await access_user(session, user_id)
    if not user.avatar_key:
        raise errors.NotFound("This user has no avatar", code="avatar_not_found")
    return await storage.open(user.avatar_key)


async def _forget(storage: Storage, data_urls: DataUrls, key: str | None) -> None:
    if key is None:
        return
    data_urls.forget(key)
    with contextlib.suppress(errors.ParleyError, OSError):  # an orphan file is harmless
        await storage.delete(key)
