"""The full-text index over messages the migrations build: on SQLite an FTS5 table kept in
step by triggers, on PostgreSQL a generated tsvector with a GIN index.

Append-only, as ddl.py beside it: a change here would change what old migrations build.
The 'simple' configuration and unicode61 let Cyrillic and Latin words both match without
language stemming; unicode61 folds case for both alphabets.
"""

from alembic import op

# 0002's source on PostgreSQL: ASCII punctuation becomes a space first, as SQLite's
# unicode61 tokenizer already does, so search matches the words and never the Markdown
# around them (its parser reads `[docs](https://example.com/guide)` as a URL, a host and a
# path, so neither "example" nor "guide" would match).
WORDS_ONLY = "regexp_replace(content, '[!-/:-@[-`{-~]+', ' ', 'g')"
_TRIGGERS = ("messages_fts_ai", "messages_fts_ad", "messages_fts_au")


def create_fts(column: str) -> None:
    """SQLite: FTS5 over `column` of messages (external content), kept in step by triggers."""
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


def drop_fts() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS messages_fts")


def create_search_vector(source: str) -> None:
    """PostgreSQL: messages.search_vector, computed from `source` (SQL over the row)."""
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS (to_tsvector('simple', {source})) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search_vector ON messages USING GIN (search_vector)")


def drop_search_vector() -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_search_vector")
    op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
