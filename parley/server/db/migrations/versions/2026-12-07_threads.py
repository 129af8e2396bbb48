"""threads: replies name their root; roots keep their thread's summary; who follows what

Create Date: 2026-12-07 19:20:00

Columns are added in place (ALTER TABLE ADD COLUMN): no rebuild of `messages`. On SQLite
the foreign key of `thread_root_id` is declared in the ADD COLUMN itself (allowed there
for a column whose default is NULL).
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import CASCADE, ID, TIME

revision = "0005_threads"
down_revision = "0004_integrations"


def upgrade() -> None:
    sqlite = ddl.is_sqlite()
    if sqlite and "thread_root_id" in _columns("messages"):
        pass  # left by a downgrade (see there)
    elif sqlite:
        op.execute(
            "ALTER TABLE messages ADD COLUMN thread_root_id INTEGER "
            "REFERENCES messages (id) ON DELETE CASCADE"
        )
    else:
        op.add_column("messages", sa.Column("thread_root_id", ID, nullable=True))
        op.create_foreign_key(
            op.f("fk_messages_thread_root_id_messages"),
            "messages",
            "messages",
            ["thread_root_id"],
            ["id"],
            ondelete="CASCADE",
        )
    ddl.add_columns(
        "messages",
        sa.Column("also_in_chat", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reply_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_reply_at", TIME, nullable=True),
        sa.Column("thread_participants", sa.String(length=120), nullable=False, server_default=""),
    )
    ddl.create_index("messages", "thread_root_id", "seq", name="ix_messages_thread_root_seq")
    ddl.create_table(
        "thread_follows",
        sa.Column("root_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("following", sa.Boolean(), nullable=True),
        sa.Column("last_read_seq", sa.Integer(), nullable=False),
        references={
            "root_id": ("messages", CASCADE),
            "user_id": ("users", CASCADE),
            "chat_id": ("chats", CASCADE),
        },
        primary_key=("root_id", "user_id"),
    )
    ddl.create_index("thread_follows", "user_id", "following", name="ix_thread_follows_user")
    ddl.create_index("thread_follows", "chat_id")


def downgrade() -> None:
    op.drop_table("thread_follows")  # with its indexes
    op.drop_index("ix_messages_thread_root_seq", table_name="messages")
    ddl.drop_columns(
        "messages", "thread_participants", "last_reply_at", "reply_count", "also_in_chat"
    )
    if ddl.is_sqlite():
        # SQLite cannot drop a column that has a foreign key without rebuilding `messages`
        # (whose rebuild would cascade deletes): it stays, unused, all NULL, and the
        # upgrade keeps it.
        op.execute("UPDATE messages SET thread_root_id = NULL")
        return
    op.drop_constraint(op.f("fk_messages_thread_root_id_messages"), "messages", type_="foreignkey")
    op.drop_column("messages", "thread_root_id")


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
