"""Every table of Parley, in one SQLAlchemy model shared by SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from parley.security import SESSION_ID_BYTES, new_session_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no 64-bit autoincrement type of its own: INTEGER PRIMARY KEY is the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), int: BigId}


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


# --- Reach: instance settings, invitations, e-mail tokens (migration 0004_reach) ---


class InstanceSetting(Base):
    """One instance-wide setting an admin may change at run time (`registration`…): a JSON
    value by key, so every process reads the same (the environment gives the default)."""

    __tablename__ = "instance_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    """An admin invite (`chat_id` null: lets someone register, and joins `chat_ids`) or a
    chat's invite link (`chat_id` set: joins that chat; one live link per chat)."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    chat_id: Mapped[int | None] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE"), index=True
    )
    chat_ids: Mapped[str] = mapped_column(Text, default="")  # "1,2,3": joined on registering
    email: Mapped[str | None] = mapped_column(String(254))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    uses_left: Mapped[int | None]  # None: unlimited
    revoked_at: Mapped[datetime | None]


class EmailToken(Base):
    """A link sent by e-mail: verifying an address or resetting a password. Only its hash is
    kept; it works once, until `expires_at`."""

    __tablename__ = "email_tokens"
    __table_args__ = (CheckConstraint("purpose IN ('verify', 'reset')", name="purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))  # the address it was sent to
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PushSubscription(Base):
    """A browser's Web Push subscription (RFC 8030): where to post, and its keys (RFC 8291)."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(2048))
    endpoint_key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of endpoint
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One administrative or moderating act, written in the act's own transaction.

    Nothing deletes these rows: no foreign keys that could cascade, the actor's name kept.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_actor_id", "actor_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None]
    actor_name: Mapped[str] = mapped_column(String(32), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None]
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON


class RecoveryCode(Base):
    """A two-factor recovery code (its hash); each works once."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None]


class Report(Base):
    """A member's report of a message, for the admins' queue; one per message and reporter."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("message_id", "reporter_id"),
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        Index("ix_reports_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolution: Mapped[str | None] = mapped_column(String(32))


# --- integrations: bots, their event deliveries, incoming webhooks -------------------------


class Bot(Base):
    """What a bot user has beyond its row in `users`: its owner, where its events go, its
    commands, the secret its events are signed with and the session its token names."""

    __tablename__ = "bots"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    event_url: Mapped[str] = mapped_column(String(2000), default="")
    commands: Mapped[str] = mapped_column(Text, default="[]")  # JSON [{command, description}]
    signing_secret: Mapped[str] = mapped_column(String(100))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotDelivery(Base):
    """One event sent (or being sent) to a bot's event URL, with its outcome."""

    __tablename__ = "bot_deliveries"
    __table_args__ = (Index("ix_bot_deliveries_bot_id_id", "bot_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "message" | "command"
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    response_status: Mapped[int | None]
    error: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Webhook(Base):
    """An incoming webhook: whoever holds its token posts in its chat as its bot user."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataExport(Base):
    """A person's export (`chat_id` null) or a chat's: a ZIP built in the background."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int | None] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    storage_key: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


# --- presence of mind: scheduled messages (migration 0005_mind) ----------------------------


class ScheduledMessage(Base):
    """A message its author wants sent later: seen by the author only until `send_at`,
    then sent as an ordinary message (or dropped if the author can no longer post)."""

    __tablename__ = "scheduled_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(Text)
    send_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
