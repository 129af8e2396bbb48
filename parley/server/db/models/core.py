"""The core tables: accounts and their sessions, chats and members, messages and what hangs
on them (mentions, thread follows, attachments, reactions, previews), blocks and bans."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley.security import SESSION_ID_BYTES, new_session_id
from parley.server.db.models.base import Base, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(64))
    bio: Mapped[str] = mapped_column(String(500), default="")
    avatar_key: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    email_verified_at: Mapped[datetime | None]  # None until the address's link is followed

    # trust: an admin deactivated the account (cannot sign in; its messages stay)
    deactivated_at: Mapped[datetime | None]
    # trust: two-factor sign-in. The secret is set up first and only counts once enabled;
    # the last time step used keeps a code from being accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None]

    # integrations: a bot (or a webhook's sender) and, for a bot, the user who owns it
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    owner_id: Mapped[int | None] = mapped_column(index=True)

    # presence of mind: a status (emoji and/or text, ending at status_until or never),
    # do-not-disturb until a time, and whether others see how far this user has read
    status_emoji: Mapped[str | None] = mapped_column(String(32))
    status_text: Mapped[str | None] = mapped_column(String(100))
    status_until: Mapped[datetime | None] = mapped_column(index=True)
    dnd_until: Mapped[datetime | None] = mapped_column(index=True)
    share_read_receipts: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # reach: missed-message e-mail digests (parley/server/email/digest.py): whether they are
    # wanted, the language they are written in, when the last one left, and the newest
    # message already told of (or older than the digests: set to the newest on upgrade)
    email_notifications: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    digest_sent_at: Mapped[datetime | None]
    digest_after_id: Mapped[int] = mapped_column(default=0, server_default=text("0"))


class Session(Base):
    """A login: one refresh-token chain. Revoking it ends its access tokens too."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # What access tokens name (`sid`): random, so a session cannot be guessed; `id` stays
    # inside the database.
    sid: Mapped[str] = mapped_column(
        String(2 * SESSION_ID_BYTES), index=True, unique=True, default=new_session_id
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    # trust: shown in the sessions list (updated on login and refresh)
    ip: Mapped[str] = mapped_column(String(64), default="")
    last_used_at: Mapped[datetime | None]


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        CheckConstraint("type IN ('direct', 'group', 'channel')", name="type"),
        Index("ix_chats_public_activity", "is_public", "last_activity_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    # "min_id:max_id" for a direct chat, so a pair has exactly one.
    direct_key: Mapped[str | None] = mapped_column(String(48), unique=True)
    slug: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    # trust: days its messages are kept (fractions allowed); None inherits the server's
    retention_days: Mapped[float | None] = mapped_column(Float)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("role IN ('owner', 'admin', 'member')", name="role"),)

    chat_id: Mapped[int] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16), default="member")
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_read_seq: Mapped[int] = mapped_column(default=0)
    # Notifications off until then; FOREVER (year 9999) for "forever", None when not muted.
    muted_until: Mapped[datetime | None]
    # presence of mind: "all" | "mentions" | "none"; None is the chat type's default
    notify: Mapped[str | None] = mapped_column(String(16))
    # presence of mind: the unsent text of the composer, the same on every device
    draft: Mapped[str | None] = mapped_column(Text)
    draft_updated_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "seq"),
        UniqueConstraint("sender_id", "client_id"),
        Index("ix_messages_chat_created", "chat_id", "created_at"),
        Index("ix_messages_thread_root_seq", "thread_root_id", "seq"),
        Index("ix_messages_chat_pinned", "chat_id", "pinned_at"),
        # a chat's notices past a read marker: taken off its unread count
        Index("ix_messages_kind_chat_seq", "kind", "chat_id", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int]
    sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    content: Mapped[str] = mapped_column(Text, default="")
    client_id: Mapped[str | None] = mapped_column(String(64))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    # The stems of its words and file names (parley/server/messages/terms.py), indexed by
    # FTS5 `messages_fts` on SQLite and the generated `search_vector` on PostgreSQL.
    search_text: Mapped[str] = mapped_column(Text, default="")
    # threads: a reply names its root (never a reply); `also_in_chat` shows it in the
    # chat's main timeline too. A root keeps its thread's summary, so history reads it
    # with the row: replies so far, the last one's time, the last repliers (ids, most
    # recent first, comma-separated, at most 5).
    thread_root_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE")
    )
    also_in_chat: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reply_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_reply_at: Mapped[datetime | None]
    thread_participants: Mapped[str] = mapped_column(String(120), default="", server_default="")
    # pins: "message", or "notice" (a change to a group or channel, `notice` its JSON)
    kind: Mapped[str] = mapped_column(String(16), default="message", server_default="message")
    pinned_at: Mapped[datetime | None]
    pinned_by: Mapped[int | None]
    # JSON {message_id, sender, created_at, chat_id?}: the source as it was when forwarded
    forwarded_from: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(Text)  # JSON {action, actor_id, user_ids, title}


class MessageMention(Base):
    """A member named in a message (`@username`, or everyone for an admin's `@all`).

    `chat_id` and `seq` are copied from the message so "my unread mentions per chat" and
    "my mentions, newest first" are answered from this table's indexes alone.
    """

    __tablename__ = "message_mentions"
    __table_args__ = (
        Index("ix_message_mentions_user_message", "user_id", "message_id"),
        Index("ix_message_mentions_user_chat_seq", "user_id", "chat_id", "seq"),
    )

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int]


class ThreadFollow(Base):
    """A user's place in a thread: whether it follows it and how far it has read.

    `following` is None when the user made no choice (a row kept for its read marker):
    the thread's author then follows it on a reply; False after an explicit unfollow.
    """

    __tablename__ = "thread_follows"
    __table_args__ = (Index("ix_thread_follows_user", "user_id", "following"),)

    root_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    following: Mapped[bool | None] = mapped_column(Boolean)
    last_read_seq: Mapped[int] = mapped_column(default=0)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    is_image: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reaction(Base):
    __tablename__ = "reactions"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Block(Base):
    __tablename__ = "blocks"

    blocker_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    blocked_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class Ban(Base):
    __tablename__ = "bans"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    banned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class LinkPreview(Base):
    """What a URL's page said when last fetched (link previews: one fetch per URL per
    24 h); `image_key` the stored re-encoded image, if any."""

    __tablename__ = "link_previews"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    fetched_at: Mapped[datetime]
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    site_name: Mapped[str | None] = mapped_column(Text)
    image_key: Mapped[str | None] = mapped_column(String(200))


class MessagePreview(Base):
    """A message's link preview; its image is an attachment row of the chat (not listed
    among the message's attachments)."""

    __tablename__ = "message_previews"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    site_name: Mapped[str | None] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("attachments.id", ondelete="SET NULL"))
