"""reach: missed-message e-mail digests (the user's choice, language and digest cursor)

Create Date: 2026-12-07 19:40:00

Only new columns with defaults: nothing is rebuilt. The cursor starts at the newest message
so that upgrading does not e-mail everybody about every old unread message.
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import ID, TIME

revision = "0005_reach"
down_revision = "0005_mind"


def upgrade() -> None:
    ddl.add_columns(
        "users",
        sa.Column("email_notifications", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("language", sa.String(length=8), nullable=False, server_default="en"),
        sa.Column("digest_sent_at", TIME, nullable=True),
        sa.Column("digest_after_id", ID, nullable=False, server_default=sa.text("0")),
    )
    op.execute("UPDATE users SET digest_after_id = (SELECT COALESCE(MAX(id), 0) FROM messages)")


def downgrade() -> None:
    ddl.drop_columns(
        "users", "digest_after_id", "digest_sent_at", "language", "email_notifications"
    )
