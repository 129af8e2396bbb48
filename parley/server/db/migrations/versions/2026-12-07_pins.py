"""pins, forwarding, notices: a message's kind, its pin and what it was forwarded from

Create Date: 2026-12-07 19:20:00
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import ID, TIME

revision = "0005_pins"
down_revision = "0005_threads"


def upgrade() -> None:
    # never a rebuild of `messages`, which would lose the FTS triggers
    ddl.add_columns(
        "messages",
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="message"),
        sa.Column("pinned_at", TIME, nullable=True),
        sa.Column("pinned_by", ID, nullable=True),
        sa.Column("forwarded_from", sa.Text(), nullable=True),
        sa.Column("notice", sa.Text(), nullable=True),
    )
    ddl.create_index("messages", "chat_id", "pinned_at", name="ix_messages_chat_pinned")
    ddl.create_index("messages", "kind", "chat_id", "seq", name="ix_messages_kind_chat_seq")


def downgrade() -> None:
    op.drop_index("ix_messages_kind_chat_seq", table_name="messages")
    op.drop_index("ix_messages_chat_pinned", table_name="messages")
    ddl.drop_columns("messages", "notice", "forwarded_from", "pinned_by", "pinned_at", "kind")
