"""reach: instance settings, invitations, e-mail tokens, Web Push subscriptions

Create Date: 2026-12-07 17:10:00

Only new tables and one nullable column: nothing is rebuilt (on SQLite a rebuild of
`users` would cascade deletes through every table that refers to it).
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import CASCADE, ID, SET_NULL, TIME

revision = "0004_reach"
down_revision = "0004_search"


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", TIME, nullable=True))
    ddl.create_table(
        "instance_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        primary_key="key",
    )
    ddl.create_table(
        "invites",
        sa.Column("id", ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("chat_id", ID, nullable=True),
        sa.Column("chat_ids", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("uses_left", ID, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
        references={"chat_id": ("chats", CASCADE), "created_by": ("users", SET_NULL)},
        unique=["code"],
    )
    ddl.create_index("invites", "chat_id")
    ddl.create_table(
        "email_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        checks={"purpose": "purpose IN ('verify', 'reset')"},
        references={"user_id": ("users", CASCADE)},
        unique=["token_hash"],
    )
    ddl.create_index("email_tokens", "user_id")
    ddl.create_table(
        "push_subscriptions",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("endpoint_key", sa.String(length=64), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        references={"user_id": ("users", CASCADE)},
        unique=["endpoint_key"],
    )
    ddl.create_index("push_subscriptions", "user_id")


def downgrade() -> None:
    for table in ("push_subscriptions", "email_tokens", "invites", "instance_settings"):
        op.drop_table(table)  # with its indexes
    op.drop_column("users", "email_verified_at")  # SQLite ≥ 3.35 drops a column in place
