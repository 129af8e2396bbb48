"""integrations: bots, their event deliveries, incoming webhooks, data exports

Revision ID: 0004_integrations
Revises: 0004_trust
Create Date: 2026-12-07 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)

revision: str = "0004_integrations"
down_revision: str | None = "0004_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns added in place (ALTER TABLE ADD COLUMN): no rebuild of `users`, whose
    # rebuild on SQLite would cascade deletes.
    # (not in batch mode, which may rebuild the table)
    op.add_column(
        "users", sa.Column("is_bot", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("users", sa.Column("owner_id", ID, nullable=True))
    op.create_index(op.f("ix_users_owner_id"), "users", ["owner_id"], unique=False)
    op.create_table(
        "bots",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("event_url", sa.String(length=2000), nullable=False),
        sa.Column("commands", sa.Text(), nullable=False),
        sa.Column("signing_secret", sa.String(length=100), nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_bots_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_bots_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bots_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_bots")),
    )
    op.create_index(op.f("ix_bots_owner_id"), "bots", ["owner_id"], unique=False)
    op.create_table(
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
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["users.id"],
            name=op.f("fk_bot_deliveries_bot_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_deliveries")),
    )
    op.create_index("ix_bot_deliveries_bot_id_id", "bot_deliveries", ["bot_id", "id"])
    op.create_table(
        "webhooks",
        sa.Column("id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("bot_id", ID, nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["users.id"], name=op.f("fk_webhooks_bot_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_webhooks_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_webhooks_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        sa.UniqueConstraint("token", name=op.f("uq_webhooks_token")),
    )
    op.create_index(op.f("ix_webhooks_chat_id"), "webhooks", ["chat_id"], unique=False)
    op.create_table(
        "exports",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=True),
        sa.Column("size", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_exports_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_exports_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index(op.f("ix_exports_user_id"), "exports", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_exports_user_id"), table_name="exports")
    op.drop_table("exports")
    op.drop_index(op.f("ix_webhooks_chat_id"), table_name="webhooks")
    op.drop_table("webhooks")
    op.drop_index("ix_bot_deliveries_bot_id_id", table_name="bot_deliveries")
    op.drop_table("bot_deliveries")
    op.drop_index(op.f("ix_bots_owner_id"), table_name="bots")
    op.drop_table("bots")
    op.drop_index(op.f("ix_users_owner_id"), table_name="users")
    op.drop_column("users", "owner_id")  # SQLite 3.35+: ALTER TABLE DROP COLUMN, no rebuild
    op.drop_column("users", "is_bot")
