"""initial schema

Create Date: 2026-11-21 11:53:03.842609
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl, search
from parley.server.db.migrations.ddl import CASCADE, ID, SET_NULL, TIME

revision = "0001"
down_revision = None


def upgrade() -> None:
    ddl.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("username_key", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("bio", sa.String(length=500), nullable=False),
        sa.Column("avatar_key", sa.String(length=200), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        unique=["email_key", "username_key"],
    )
    ddl.create_table(
        "bans",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("banned_by", ID, nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        primary_key="user_id",
        references={"banned_by": ("users", SET_NULL), "user_id": ("users", CASCADE)},
    )
    ddl.create_index("bans", "expires_at")
    ddl.create_table(
        "blocks",
        sa.Column("blocker_id", ID, nullable=False),
        sa.Column("blocked_id", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        primary_key=("blocker_id", "blocked_id"),
        references={"blocked_id": ("users", CASCADE), "blocker_id": ("users", CASCADE)},
    )
    ddl.create_index("blocks", "blocked_id")
    ddl.create_index("blocks", "expires_at")
    ddl.create_table(
        "chats",
        sa.Column("id", ID, nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("direct_key", sa.String(length=48), nullable=True),
        sa.Column("slug", sa.String(length=64), nullable=True),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("last_seq", ID, nullable=False),
        sa.Column("last_activity_at", TIME, nullable=False),
        checks={"type": "type IN ('direct', 'group', 'channel')"},
        references={"created_by": ("users", SET_NULL)},
        unique=["direct_key", "slug"],
    )
    ddl.create_index("chats", "is_public", "last_activity_at", name="ix_chats_public_activity")
    ddl.create_table(
        "sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        references={"user_id": ("users", CASCADE)},
    )
    ddl.create_index("sessions", "user_id")
    ddl.create_table(
        "memberships",
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_at", TIME, nullable=False),
        sa.Column("last_read_seq", ID, nullable=False),
        checks={"role": "role IN ('owner', 'admin', 'member')"},
        references={"chat_id": ("chats", CASCADE), "user_id": ("users", CASCADE)},
        primary_key=("chat_id", "user_id"),
    )
    ddl.create_index("memberships", "user_id")
    ddl.create_table(
        "messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("seq", ID, nullable=False),
        sa.Column("sender_id", ID, nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("reply_to_id", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("edited_at", TIME, nullable=True),
        sa.Column("deleted_at", TIME, nullable=True),
        references={
            "chat_id": ("chats", CASCADE),
            "reply_to_id": ("messages", SET_NULL),
            "sender_id": ("users", SET_NULL),
        },
        unique=[("chat_id", "seq"), ("sender_id", "client_id")],
    )
    ddl.create_index("messages", "chat_id", "created_at", name="ix_messages_chat_created")
    ddl.create_index("messages", "sender_id")
    ddl.create_table(
        "refresh_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        references={"session_id": ("sessions", CASCADE)},
        unique=["token_hash"],
    )
    ddl.create_index("refresh_tokens", "session_id")
    ddl.create_table(
        "attachments",
        sa.Column("id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("uploader_id", ID, nullable=True),
        sa.Column("message_id", ID, nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", ID, nullable=False),
        sa.Column("is_image", sa.Boolean(), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        references={
            "chat_id": ("chats", CASCADE),
            "message_id": ("messages", CASCADE),
            "uploader_id": ("users", SET_NULL),
        },
        unique=["storage_key"],
    )
    ddl.create_index("attachments", "chat_id")
    ddl.create_index("attachments", "message_id")
    ddl.create_table(
        "reactions",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("emoji", sa.String(length=32), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        references={"message_id": ("messages", CASCADE), "user_id": ("users", CASCADE)},
        primary_key=("message_id", "user_id", "emoji"),
    )
    # Full-text search over messages (see migrations/search.py)
    if ddl.is_sqlite():
        search.create_fts("content")
    else:
        search.create_search_vector("content")


def downgrade() -> None:
    if ddl.is_sqlite():
        search.drop_fts()  # its triggers first: dropping `messages` would fire them
    else:
        search.drop_search_vector()
    # each table's indexes go with it
    for table in (
        "reactions",
        "attachments",
        "refresh_tokens",
        "messages",
        "memberships",
        "sessions",
        "chats",
        "blocks",
        "bans",
        "users",
    ):
        op.drop_table(table)
