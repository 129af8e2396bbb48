"""reach: missed-message e-mail digests (the user's choice, language and digest cursor)

Revision ID: 0005_reach
Revises: 0004_integrations
Create Date: 2026-12-07 19:40:00

Only new columns with defaults: nothing is rebuilt. The cursor starts at the newest message
so that upgrading does not e-mail everybody about every old unread message.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)

revision: str = "0005_reach"
down_revision: str | None = "0005_mind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("email_notifications", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "users", sa.Column("language", sa.String(length=8), nullable=False, server_default="en")
    )
    op.add_column("users", sa.Column("digest_sent_at", TIME, nullable=True))
    op.add_column(
        "users", sa.Column("digest_after_id", ID, nullable=False, server_default=sa.text("0"))
    )
    op.execute("UPDATE users SET digest_after_id = (SELECT COALESCE(MAX(id), 0) FROM messages)")


def downgrade() -> None:
    for column in ("digest_after_id", "digest_sent_at", "language", "email_notifications"):
        op.drop_column("users", column)
