"""Missed-message e-mail digests: direct messages and mentions still unread after
PARLEY_EMAIL_DIGEST_MINUTES, sent as one e-mail (at most one an hour per user) to a
verified address that has not opted out, in the user's language.

The worker calls `send_digests` every worker interval. What is e-mailed honours what
pushes honour: never one's own messages, nothing from someone one blocks, nothing of a
muted chat except mentions (and nothing during do-not-disturb: `_recipient_quiet`). Each
user's `digest_after_id` is the newest message already told of, so a message is in at most
one digest; the hourly limit is claimed by one UPDATE, so two server processes never both
send one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import ColumnElement, and_, exists, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from parley import errors
from parley.server.db.models import Block, Chat, Membership, Message, MessageMention, User
from parley.server.db.unit import after_commit
from parley.server.email import templates
from parley.server.email.mailer import Mailer
from parley.server.moderation.service import in_force

EVERY = timedelta(hours=1)  # at most one digest per user per hour
LOOK_BACK = timedelta(days=1)  # older unread messages are not e-mailed about
MAX_ROWS = 5000  # candidate messages read per run (the rest wait for the next run)
LINES_PER_CHAT = 5
PREVIEW = 140


class UnsubscribeInvalid(
    errors.ParleyError,
    status=400,
    code="token_invalid",
    detail="This unsubscribe link is not valid",
): ...


def _mac(secret: str, user_id: int, email_key: str) -> str:
    digest = hmac.new(
        secret.encode(), f"unsubscribe:{user_id}:{email_key}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def unsubscribe_token(secret: str, user: User) -> str:
    """Signed (HMAC with the server's secret) for the user and its current address: it
    needs no sign-in, cannot be forged, and stops working when the address changes."""
    return f"{user.id}.{_mac(secret, user.id, user.email_key)}"


def unsubscribe_url(base: str, token: str) -> str:
    return f"{base}/service/api/email/unsubscribe?token={token}"


async def unsubscribe(session: AsyncSession, *, secret: str, token: str) -> User:
    """Turns `email_notifications` off for the token's user (UnsubscribeInvalid if forged)."""
    user_part, _, mac = token.partition(".")
    user = await session.get(User, int(user_part)) if user_part.isdigit() else None
    if user is None or not hmac.compare_digest(mac, _mac(secret, user.id, user.email_key)):
        raise UnsubscribeInvalid()
    user.email_notifications = False
    await session.commit()
    return user


def _recipient_quiet(now: datetime) -> list[ColumnElement[bool]]:
    """Who may get a digest now: nobody in do-not-disturb (the messages wait for its end)."""
    return [
        or_(User.dnd_until.is_(None), User.dnd_until <= now),
        User.email_notifications.is_(True),
        User.email_verified_at.is_not(None),
        User.deactivated_at.is_(None),
        User.is_bot.is_(False),
        or_(User.digest_sent_at.is_(None), User.digest_sent_at <= now - EVERY),
    ]


@dataclass(frozen=True, slots=True)
class _Missed:
    user_id: int
    message_id: int
    chat_id: int


async def _missed(session: AsyncSession, *, now: datetime, delay: timedelta) -> list[_Missed]:
    cutoff = now - delay
    common = [
        Message.created_at <= cutoff,
        Message.created_at > cutoff - LOOK_BACK,
        Message.deleted_at.is_(None),
        Message.seq > Membership.last_read_seq,
        Message.id > User.digest_after_id,
        or_(Message.sender_id.is_(None), Message.sender_id != Membership.user_id),
        ~exists().where(
            Block.blocker_id == Membership.user_id,
            Block.blocked_id == Message.sender_id,
            in_force(Block.expires_at, now),
        ),
        *_recipient_quiet(now),
    ]
    direct = (
        select(Membership.user_id, Message.id, Message.chat_id)
        .select_from(Message)
        .join(Chat, and_(Chat.id == Message.chat_id, Chat.type == "direct"))
        .join(Membership, Membership.chat_id == Message.chat_id)
        .join(User, User.id == Membership.user_id)
        .where(
            *common,
            or_(Membership.muted_until.is_(None), Membership.muted_until <= now),
        )
    )
    mentioned = (
        select(Membership.user_id, Message.id, Message.chat_id)
        .select_from(MessageMention)
        .join(Message, Message.id == MessageMention.message_id)
        .join(
            Membership,
            and_(
                Membership.chat_id == MessageMention.chat_id,
                Membership.user_id == MessageMention.user_id,
            ),
        )
        .join(User, User.id == Membership.user_id)
        .where(*common)
    )
    both = union_all(direct, mentioned).subquery()
    rows = await session.execute(
        select(both.c[0], both.c[1], both.c[2])
        .distinct()
        .order_by(both.c[0], both.c[1])
        .limit(MAX_ROWS)
    )
    return [_Missed(user_id, message_id, chat_id) for user_id, message_id, chat_id in rows]


async def _claim(
    session: AsyncSession, *, user_id: int, through_id: int, now: datetime
) -> User | None:
    """Marks the digest as sent (one UPDATE, so only one process wins); the user, or None
    when another process or an earlier run already sent one this hour."""
    claimed = await session.execute(
        update(User)
        .where(
            User.id == user_id,
            User.digest_after_id < through_id,
            or_(User.digest_sent_at.is_(None), User.digest_sent_at <= now - EVERY),
        )
        .values(digest_sent_at=now, digest_after_id=through_id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await session.get(User, user_id, populate_existing=True)


async def _chats(
    session: AsyncSession, user_id: int, message_ids: list[int], base: str
) -> list[templates.DigestChat]:
    sender = aliased(User)
    rows = await session.execute(
        select(Message, Chat, sender.display_name)
        .join(Chat, Chat.id == Message.chat_id)
        .outerjoin(sender, sender.id == Message.sender_id)
        .where(Message.id.in_(message_ids))
        .order_by(Message.chat_id, Message.id)
    )
    grouped: dict[int, tuple[Chat, list[tuple[str, str]]]] = {}
    for message, chat, name in rows:
        entry = grouped.setdefault(chat.id, (chat, []))
        body = " ".join(message.content.split())
        body = body if len(body) <= PREVIEW else body[: PREVIEW - 1] + "…"
        entry[1].append((name or "—", body))
    chats = []
    for chat_id, (chat, lines) in grouped.items():
        title = chat.title if chat.type != "direct" else (lines[0][0] if lines else "")
        chats.append(
            templates.DigestChat(
                title=title or "Parley",
                url=f"{base}/chat#{chat_id}",
                lines=lines[-LINES_PER_CHAT:],
                total=len(lines),
            )
        )
    return chats


def _poster(mailer: Mailer, message: EmailMessage) -> Callable[[], Awaitable[None]]:
    async def post() -> None:
        mailer.post(message)

    return post


async def send_digests(
    sessions: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    *,
    now: datetime,
    delay: timedelta,
    base: str,
    secret: str,
) -> int:
    """Sends the digests due at `now`; returns how many were sent."""
    if not mailer.enabled:
        return 0
    async with sessions() as session:
        missed = await _missed(session, now=now, delay=delay)
    by_user: dict[int, list[int]] = defaultdict(list)
    for row in missed:
        by_user[row.user_id].append(row.message_id)
    sent = 0
    for user_id, message_ids in by_user.items():
        async with sessions() as session:
            user = await _claim(session, user_id=user_id, through_id=max(message_ids), now=now)
            if user is None:
                await session.rollback()
                continue
            chats = await _chats(session, user_id, message_ids, base)
            link = unsubscribe_url(base, unsubscribe_token(secret, user))
            written = templates.write_digest(
                user.language,
                who=user.display_name or user.username,
                chats=chats,
                unsubscribe_url=link,
            )
            message = mailer.compose(
                to=user.email,
                subject=written.subject,
                text=written.text,
                html=written.html,
                headers={
                    "List-Unsubscribe": f"<{link}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            )
            after_commit(session, _poster(mailer, message))
            await session.commit()
            sent += 1
    return sent
