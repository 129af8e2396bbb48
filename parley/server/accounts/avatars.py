"""Avatars: decode-checked, re-encoded square images in file storage, one per user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server import images
from parley.server.accounts.service import access_user
from parley.server.db.models import User
from parley.server.state import AppState
from parley.server.storage import new_key

CACHE = "avatar_data_url"


async def read_capped(chunks: AsyncIterator[bytes], *, max_bytes: int) -> bytes:
    """The whole upload, or TooLarge as soon as it passes `max_bytes` (nothing more is read)."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            raise errors.TooLarge(f"Avatar larger than {max_bytes} bytes")
    return bytes(data)


async def set_avatar(session: AsyncSession, state: AppState, *, user_id: int, data: bytes) -> User:
    """Decodes and re-encodes `data` (415 when it is not an image), stores it, commits,
    then deletes the previous file and forgets its cached data URL."""
    avatar = await images.make_avatar(data, max_bytes=state.settings.max_avatar_bytes)
    key = new_key("avatars")
    await state.storage.save_bytes(key, avatar)
    try:
        user = await access_user(session, user_id)
        old, user.avatar_key = user.avatar_key, key
        await session.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await state.storage.delete(key)
        raise
    await _forget(state, old)
    return user


async def delete_avatar(session: AsyncSession, state: AppState, *, user_id: int) -> None:
    """Idempotent: no avatar is fine."""
    user = await access_user(session, user_id)
    old, user.avatar_key = user.avatar_key, None
    await session.commit()
    await _forget(state, old)


async def open_avatar(
    session: AsyncSession, state: AppState, *, user_id: int
) -> AsyncIterator[bytes]:
    """The avatar's bytes; NotFound when the user has none."""
    user = await access_user(session, user_id)
    if not user.avatar_key:
        raise errors.NotFound("This user has no avatar", code="avatar_not_found")
    return await state.storage.open(user.avatar_key)


async def _forget(state: AppState, key: str | None) -> None:
    if key is None:
        return
    state.caches.get(CACHE, {}).pop(key, None)
    with contextlib.suppress(errors.ParleyError, OSError):  # an orphan file is harmless
        await state.storage.delete(key)
