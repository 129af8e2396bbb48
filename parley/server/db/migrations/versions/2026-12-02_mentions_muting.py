"""mentions, muting, search that ignores punctuation on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_mentions",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("seq", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_message_mentions_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_mentions_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_message_mentions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "user_id", name=op.f("pk_message_mentions")),
    )
    with op.batch_alter_table("message_mentions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_mentions_user_message", ["user_id", "message_id"], unique=False
        )
        batch_op.create_index(
            "ix_message_mentions_user_chat_seq", ["user_id", "chat_id", "seq"], unique=False
        )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("muted_until", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        _search_vector(_WORDS_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _search_vector("content")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("muted_until")
    with op.batch_alter_table("message_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_message_mentions_user_chat_seq")
        batch_op.drop_index("ix_message_mentions_user_message")
    op.drop_table("message_mentions")


# PostgreSQL's parser reads `[docs](https://example.com/guide)` as a URL, a host and a path
# ("example.com/guide)"), so neither "example" nor "guide" would match. ASCII punctuation
# becomes a space first, as SQLite's unicode61 tokenizer already does, so search matches the
# words and never the Markdown around them. (This rewrites the messages table once.)
_WORDS_ONLY = "regexp_replace(content, '[!-/:-@[-`{-~]+', ' ', 'g')"


def _search_vector(source: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_search_vector")
    op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS (to_tsvector('simple', {source})) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search_vector ON messages USING GIN (search_vector)")
