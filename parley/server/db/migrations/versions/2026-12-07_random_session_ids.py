"""random session ids: the `sid` access tokens carry is no longer the sessions' row number

Create Date: 2026-12-07 17:00:00

Every existing session gets a random sid. Access tokens issued before carry the row
number, which is not a sid: they are refused (401) and their clients refresh, since the
refresh tokens and their sessions are kept. Nothing is rebuilt: on SQLite a table
rebuild would drop `sessions` and, foreign keys being on, delete every refresh token.

The column keeps a server default ('') on SQLite, which cannot drop one without that
rebuild; Parley always gives a sid, and '' is never one.
"""

import secrets

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl

revision = "0003"
down_revision = "0002"

SID_BYTES = 16  # 128 bits, as parley.security.SESSION_ID_BYTES when this was written
_SESSIONS = sa.table("sessions", sa.column("id", sa.BigInteger()), sa.column("sid", sa.String()))


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("sid", sa.String(length=2 * SID_BYTES), nullable=False, server_default=""),
    )
    bind = op.get_bind()
    ids = bind.execute(sa.select(_SESSIONS.c.id)).scalars().all()
    fill = (
        sa.update(_SESSIONS)
        .where(_SESSIONS.c.id == sa.bindparam("row_id"))
        .values(sid=sa.bindparam("new_sid"))
    )
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        bind.execute(fill, [{"row_id": i, "new_sid": secrets.token_hex(SID_BYTES)} for i in chunk])
    if bind.dialect.name == "postgresql":
        op.alter_column("sessions", "sid", server_default=None)
    ddl.create_index("sessions", "sid", unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_sid"), table_name="sessions")
    op.drop_column("sessions", "sid")  # SQLite ≥ 3.35 drops a column in place
