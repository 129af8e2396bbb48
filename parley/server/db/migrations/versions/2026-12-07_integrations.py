"""integrations: bots, their event deliveries, incoming webhooks, data exports

Create Date: 2026-12-07 17:20:00
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import CASCADE, ID, SET_NULL, TIME

revision = "0004_integrations"
down_revision = "0004_trust"


def upgrade() -> None:
    ddl.add_columns(
        "users",
        sa.Column("is_bot", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("owner_id", ID, nullable=True),
    )
    ddl.create_index("users", "owner_id")
    ddl.create_table(
        "bots",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("event_url", sa.String(length=2000), nullable=False),
        sa.Column("commands", sa.Text(), nullable=False),
        sa.Column("signing_secret", sa.String(length=100), nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        references={
            "owner_id": ("users", CASCADE),
            "session_id": ("sessions", SET_NULL),
            "user_id": ("users", CASCADE),
        },
        primary_key="user_id",
    )
    ddl.create_index("bots", "owner_id")
    ddl.create_table(
        "bot_deliveries",
        sa.Column("id", ID, nullable=False),
        sa.Column("bot_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", ID, nullable=False),
        sa.Column("response_status", ID, nullable=True),
        sa.Column("error", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        references={"bot_id": ("users", CASCADE)},
    )
    ddl.create_index("bot_deliveries", "bot_id", "id", name="ix_bot_deliveries_bot_id_id")
    ddl.create_table(
        "webhooks",
        sa.Column("id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("bot_id", ID, nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        references={
            "bot_id": ("users", CASCADE),
            "chat_id": ("chats", CASCADE),
            "created_by": ("users", SET_NULL),
        },
        unique=["token"],
    )
    ddl.create_index("webhooks", "chat_id")
    ddl.create_table(
        "exports",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=True),
        sa.Column("size", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        references={"chat_id": ("chats", CASCADE), "user_id": ("users", CASCADE)},
    )
    ddl.create_index("exports", "user_id")


def downgrade() -> None:
    for table in ("exports", "webhooks", "bot_deliveries", "bots"):
        op.drop_table(table)  # with its indexes
    op.drop_index(op.f("ix_users_owner_id"), table_name="users")
    ddl.drop_columns("users", "owner_id", "is_bot")
