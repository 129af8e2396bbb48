"""search by stems: messages.search_text, indexed instead of the content on both databases

Create Date: 2026-12-07 17:30:00

Every message gets `search_text`, the Snowball stems of its words and of its attachments'
file names (parley/server/messages/terms.py), written in chunks of 1,000 rows; a deleted
message gets none. SQLite's FTS5 table `messages_fts` is rebuilt over it (its triggers
follow `search_text`), PostgreSQL's generated `search_vector` is computed from it.
Link previews: `link_previews` (what a URL's page said, fetched at most once a day) and
`message_previews` (a message's preview, its image an attachment row).
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl, search
from parley.server.db.migrations.ddl import CASCADE, ID, SET_NULL, TIME
from parley.server.messages import terms

revision = "0004_search"
down_revision = "0003"

CHUNK = 1000
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
    sqlite = ddl.is_sqlite()
    if sqlite:
        search.drop_fts()
    else:
        search.drop_search_vector()
    op.add_column(
        "messages", sa.Column("search_text", sa.Text(), nullable=False, server_default="")
    )
    _fill()
    if sqlite:
        _create_fts("search_text")
    else:
        search.create_search_vector("coalesce(search_text, '')")
    _create_previews()


def downgrade() -> None:
    op.drop_table("message_previews")
    op.drop_table("link_previews")
    if ddl.is_sqlite():
        search.drop_fts()
        op.execute("ALTER TABLE messages DROP COLUMN search_text")  # no table rebuild
        _create_fts("content")
    else:
        search.drop_search_vector()
        op.drop_column("messages", "search_text")
        search.create_search_vector(search.WORDS_ONLY)


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


def _create_fts(column: str) -> None:
    """Over the rows already there too."""
    search.create_fts(column)
    op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")


def _create_previews() -> None:
    ddl.create_table(
        "link_previews",
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("fetched_at", TIME, nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("site_name", sa.Text(), nullable=True),
        sa.Column("image_key", sa.String(length=200), nullable=True),
        primary_key="url",
    )
    ddl.create_table(
        "message_previews",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("site_name", sa.Text(), nullable=True),
        sa.Column("image_id", ID, nullable=True),
        references={"message_id": ("messages", CASCADE), "image_id": ("attachments", SET_NULL)},
        primary_key="message_id",
    )
