"""pins, forwarding, notices: a message's kind, its pin and what it was forwarded from

Revision ID: 0005_pins
Revises: 0004_integrations
Create Date: 2026-12-07 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)

revision: str = "0005_pins"
down_revision: str | None = "0005_threads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns added in place (ALTER TABLE ADD COLUMN), never a rebuild of `messages`.
    op.add_column(
        "messages",
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="message"),
    )
    op.add_column("messages", sa.Column("pinned_at", TIME, nullable=True))
    op.add_column("messages", sa.Column("pinned_by", ID, nullable=True))
    op.add_column("messages", sa.Column("forwarded_from", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("notice", sa.Text(), nullable=True))
    op.create_index("ix_messages_chat_pinned", "messages", ["chat_id", "pinned_at"])
    op.create_index("ix_messages_kind_chat_seq", "messages", ["kind", "chat_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_messages_kind_chat_seq", table_name="messages")
    op.drop_index("ix_messages_chat_pinned", table_name="messages")
    # SQLite 3.35+: ALTER TABLE DROP COLUMN, no rebuild (which would lose the FTS triggers)
    for column in ("notice", "forwarded_from", "pinned_by", "pinned_at", "kind"):
        op.drop_column("messages", column)
