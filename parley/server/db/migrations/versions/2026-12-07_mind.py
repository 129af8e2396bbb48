"""presence of mind: status, do not disturb, read-receipt sharing, notify levels, drafts,
scheduled messages

Create Date: 2026-12-07 19:30:00

Columns are added in place (no rebuild of `users` or `memberships`: on SQLite a rebuild
would cascade deletes); the scheduled messages get their own table.
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import CASCADE, ID, TIME

revision = "0005_mind"
down_revision = "0005_pins"


def upgrade() -> None:
    ddl.add_columns(
        "users",
        sa.Column("status_emoji", sa.String(length=32), nullable=True),
        sa.Column("status_text", sa.String(length=100), nullable=True),
        sa.Column("status_until", TIME, nullable=True),
        sa.Column("dnd_until", TIME, nullable=True),
        sa.Column("share_read_receipts", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    ddl.create_index("users", "status_until")
    ddl.create_index("users", "dnd_until")
    ddl.add_columns(
        "memberships",
        sa.Column("notify", sa.String(length=16), nullable=True),
        sa.Column("draft", sa.Text(), nullable=True),
        sa.Column("draft_updated_at", TIME, nullable=True),
    )
    ddl.create_table(
        "scheduled_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("send_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        references={"chat_id": ("chats", CASCADE), "user_id": ("users", CASCADE)},
    )
    for column in ("user_id", "chat_id", "send_at"):
        ddl.create_index("scheduled_messages", column)


def downgrade() -> None:
    op.drop_table("scheduled_messages")  # with its indexes
    ddl.drop_columns("memberships", "draft_updated_at", "draft", "notify")
    op.drop_index(op.f("ix_users_dnd_until"), table_name="users")
    op.drop_index(op.f("ix_users_status_until"), table_name="users")
    ddl.drop_columns(
        "users", "share_read_receipts", "dnd_until", "status_until", "status_text", "status_emoji"
    )
