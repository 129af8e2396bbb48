"""Stored link previews as messages show them (`preview` of the public message)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Attachment, MessagePreview
from parley.server.messages.public import attachment_fields


async def previews_of(session: AsyncSession, ids: Sequence[int] | Any) -> dict[int, dict[str, Any]]:
    """Per message id (a list, or a query of ids), its preview's public fields."""
    rows = await session.execute(
        select(MessagePreview, Attachment)
        .outerjoin(Attachment, Attachment.id == MessagePreview.image_id)
        .where(MessagePreview.message_id.in_(ids))
    )
    return {
        p.message_id: {
            "url": p.url,
            "title": p.title,
            "description": p.description,
            "site_name": p.site_name,
            "image": None
            if image is None
            else attachment_fields(image.id, image.filename, image.content_type, image.size),
        }
        for p, image in rows
    }
