"""threads: replies name their root; roots keep their thread's summary; who follows what

Revision ID: 0005_threads
Revises: 0004_integrations
Create Date: 2026-12-07 19:20:00

Columns are added in place (ALTER TABLE ADD COLUMN): no rebuild of `messages`. On SQLite
the foreign key of `thread_root_id` is declared in the ADD COLUMN itself (allowed there
for a column whose default is NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)

revision: str = "0005_threads"
down_revision: str | None = "0004_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
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
    op.add_column(
        "messages",
        sa.Column("also_in_chat", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "messages", sa.Column("reply_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("messages", sa.Column("last_reply_at", TIME, nullable=True))
    op.add_column(
        "messages",
        sa.Column("thread_participants", sa.String(length=120), nullable=False, server_default=""),
    )
    op.create_index(
        "ix_messages_thread_root_seq", "messages", ["thread_root_id", "seq"], unique=False
    )
    op.create_table(
        "thread_follows",
        sa.Column("root_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("following", sa.Boolean(), nullable=True),
        sa.Column("last_read_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_id"],
            ["messages.id"],
            name=op.f("fk_thread_follows_root_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_thread_follows_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_thread_follows_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("root_id", "user_id", name=op.f("pk_thread_follows")),
    )
    op.create_index("ix_thread_follows_user", "thread_follows", ["user_id", "following"])
    op.create_index(op.f("ix_thread_follows_chat_id"), "thread_follows", ["chat_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_thread_follows_chat_id"), table_name="thread_follows")
    op.drop_index("ix_thread_follows_user", table_name="thread_follows")
    op.drop_table("thread_follows")
    op.drop_index("ix_messages_thread_root_seq", table_name="messages")
    for column in ("thread_participants", "last_reply_at", "reply_count", "also_in_chat"):
        op.drop_column("messages", column)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a column that has a foreign key without rebuilding `messages`
        # (whose rebuild would cascade deletes): it stays, unused, all NULL, and the
        # upgrade keeps it.
        op.execute("UPDATE messages SET thread_root_id = NULL")
        return
    op.drop_constraint(op.f("fk_messages_thread_root_id_messages"), "messages", type_="foreignkey")
    op.drop_column("messages", "thread_root_id")


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
