"""mentions, muting, search that ignores punctuation on PostgreSQL

Create Date: 2026-12-02 20:30:00
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl, search
from parley.server.db.migrations.ddl import CASCADE, ID, TIME

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    ddl.create_table(
        "message_mentions",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("seq", ID, nullable=False),
        references={
            "chat_id": ("chats", CASCADE),
            "message_id": ("messages", CASCADE),
            "user_id": ("users", CASCADE),
        },
        primary_key=("message_id", "user_id"),
    )
    table = "message_mentions"
    ddl.create_index(table, "user_id", "message_id", name="ix_message_mentions_user_message")
    ddl.create_index(table, "user_id", "chat_id", "seq", name="ix_message_mentions_user_chat_seq")
    op.add_column("memberships", sa.Column("muted_until", TIME, nullable=True))
    if not ddl.is_sqlite():
        # This rewrites the messages table once.
        search.drop_search_vector()
        search.create_search_vector(search.WORDS_ONLY)


def downgrade() -> None:
    if not ddl.is_sqlite():
        search.drop_search_vector()
        search.create_search_vector("content")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("muted_until")
    op.drop_table("message_mentions")
