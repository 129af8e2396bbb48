"""presence of mind: status, do not disturb, read-receipt sharing, notify levels, drafts,
scheduled messages

Revision ID: 0005_mind
Revises: 0004_integrations
Create Date: 2026-12-07 19:30:00

Columns are added in place (no rebuild of `users` or `memberships`: on SQLite a rebuild
would cascade deletes); the scheduled messages get their own table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)

revision: str = "0005_mind"
down_revision: str | None = "0005_pins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("status_emoji", sa.String(length=32), nullable=True))
    op.add_column("users", sa.Column("status_text", sa.String(length=100), nullable=True))
    op.add_column("users", sa.Column("status_until", WHEN, nullable=True))
    op.add_column("users", sa.Column("dnd_until", WHEN, nullable=True))
    op.add_column(
        "users",
        sa.Column("share_read_receipts", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_index(op.f("ix_users_status_until"), "users", ["status_until"], unique=False)
    op.create_index(op.f("ix_users_dnd_until"), "users", ["dnd_until"], unique=False)
    op.add_column("memberships", sa.Column("notify", sa.String(length=16), nullable=True))
    op.add_column("memberships", sa.Column("draft", sa.Text(), nullable=True))
    op.add_column("memberships", sa.Column("draft_updated_at", WHEN, nullable=True))
    op.create_table(
        "scheduled_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("send_at", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_scheduled_messages_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_scheduled_messages_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_messages")),
    )
    for column in ("user_id", "chat_id", "send_at"):
        op.create_index(
            op.f(f"ix_scheduled_messages_{column}"), "scheduled_messages", [column], unique=False
        )


def downgrade() -> None:
    for column in ("user_id", "chat_id", "send_at"):
        op.drop_index(op.f(f"ix_scheduled_messages_{column}"), table_name="scheduled_messages")
    op.drop_table("scheduled_messages")
    for column in ("draft_updated_at", "draft", "notify"):
        op.drop_column("memberships", column)  # SQLite 3.35+: no rebuild
    op.drop_index(op.f("ix_users_dnd_until"), table_name="users")
    op.drop_index(op.f("ix_users_status_until"), table_name="users")
    for column in ("share_read_receipts", "dnd_until", "status_until", "status_text"):
        op.drop_column("users", column)
    op.drop_column("users", "status_emoji")
