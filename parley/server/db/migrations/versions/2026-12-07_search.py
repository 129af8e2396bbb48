"""search by stems: messages.search_text, indexed instead of the content on both databases

Revision ID: 0004_search
Revises: 0003
Create Date: 2026-12-07 17:30:00

Every message gets `search_text`, the Snowball stems of its words and of its attachments'
file names (parley/server/messages/terms.py), written in chunks of 1,000 rows; a deleted
message gets none. SQLite's FTS5 table `messages_fts` is rebuilt over it (its triggers
follow `search_text`), PostgreSQL's generated `search_vector` is computed from it.
Link previews: `link_previews` (what a URL's page said, fetched at most once a day) and
`message_previews` (a message's preview, its image an attachment row).
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.server.messages import terms

revision: str = "0004_search"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 1000
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MESSAGES = sa.table(
    "messages",
    sa.column("id", sa.BigInteger()),
    sa.column("content", sa.Text()),
    sa.column("deleted_at", sa.DateTime()),
    sa.column("search_text", sa.Text()),
)
_ATTACHMENTS = sa.table(
    "attachments",
    sa.column("id", sa.BigInteger()),
    sa.column("message_id", sa.BigInteger()),
    sa.column("filename", sa.String()),
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _drop_fts()
    else:
        op.execute("DROP INDEX IF EXISTS ix_messages_search_vector")
        op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
    op.add_column(
        "messages", sa.Column("search_text", sa.Text(), nullable=False, server_default="")
    )
    _fill()
    if sqlite:
        _create_fts("search_text")
    else:
        _search_vector("coalesce(search_text, '')")
    _create_previews()


def downgrade() -> None:
    op.drop_table("message_previews")
    op.drop_table("link_previews")
    if op.get_bind().dialect.name == "sqlite":
        _drop_fts()
        op.execute("ALTER TABLE messages DROP COLUMN search_text")  # no table rebuild
        _create_fts("content")
    else:
        op.execute("DROP INDEX IF EXISTS ix_messages_search_vector")
        op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
        op.drop_column("messages", "search_text")
        _search_vector("regexp_replace(content, '[!-/:-@[-`{-~]+', ' ', 'g')")


def _fill() -> None:
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.select(_MESSAGES.c.id, _MESSAGES.c.content)
            .where(_MESSAGES.c.id > after, _MESSAGES.c.deleted_at.is_(None))
            .order_by(_MESSAGES.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        ids = [row.id for row in rows]
        names: dict[int, list[str]] = defaultdict(list)
        for message_id, filename in bind.execute(
            sa.select(_ATTACHMENTS.c.message_id, _ATTACHMENTS.c.filename)
            .where(_ATTACHMENTS.c.message_id.in_(ids))
            .order_by(_ATTACHMENTS.c.id)
        ):
            names[message_id].append(filename)
        bind.execute(
            _MESSAGES.update()
            .where(_MESSAGES.c.id == sa.bindparam("message_id"))
            .values(search_text=sa.bindparam("text")),
            [{"message_id": r.id, "text": terms.search_text(r.content, names[r.id])} for r in rows],
        )
        after = ids[-1]


def _drop_fts() -> None:
    for trigger in ("messages_fts_ai", "messages_fts_ad", "messages_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS messages_fts")


def _create_fts(column: str) -> None:
    """FTS5 over `column` of messages (external content), kept in step by triggers."""
    c = column
    op.execute(
        f"CREATE VIRTUAL TABLE messages_fts USING fts5({c}, content='messages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN "
        f"INSERT INTO messages_fts(rowid, {c}) VALUES (new.id, new.{c}); END"
    )
    op.execute(
        "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN "
        f"INSERT INTO messages_fts(messages_fts, rowid, {c}) VALUES ('delete', old.id, old.{c}); END"
    )
    op.execute(
        f"CREATE TRIGGER messages_fts_au AFTER UPDATE OF {c} ON messages BEGIN "
        f"INSERT INTO messages_fts(messages_fts, rowid, {c}) VALUES ('delete', old.id, old.{c}); "
        f"INSERT INTO messages_fts(rowid, {c}) VALUES (new.id, new.{c}); END"
    )
    op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")


def _search_vector(source: str) -> None:
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS (to_tsvector('simple', {source})) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search_vector ON messages USING GIN (search_vector)")


def _create_previews() -> None:
    op.create_table(
        "link_previews",
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("site_name", sa.Text(), nullable=True),
        sa.Column("image_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_link_previews")),
    )
    op.create_table(
        "message_previews",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("site_name", sa.Text(), nullable=True),
        sa.Column("image_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_previews_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["attachments.id"],
            name=op.f("fk_message_previews_image_id_attachments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_previews")),
    )
