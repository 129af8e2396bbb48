"""trust: two-factor sign-in, session details, deactivation, reports, audit log, retention

Create Date: 2026-12-07 17:20:00

Columns are added in place (no table rebuild: on SQLite a rebuild of `users` or `sessions`
would cascade deletes, foreign keys being on); the new tables are created.
"""

import sqlalchemy as sa
from alembic import op

from parley.server.db.migrations import ddl
from parley.server.db.migrations.ddl import CASCADE, ID, SET_NULL, TIME

revision = "0004_trust"
down_revision = "0004_reach"


def upgrade() -> None:
    ddl.add_columns(
        "users",
        sa.Column("deactivated_at", TIME, nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("totp_last_step", ID, nullable=True),
    )
    ddl.add_columns(
        "sessions",
        sa.Column("ip", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("last_used_at", TIME, nullable=True),
    )
    op.add_column("chats", sa.Column("retention_days", sa.Float(), nullable=True))
    _create_audit()
    _create_recovery_codes()
    _create_reports()


def _create_audit() -> None:
    ddl.create_table(
        "audit_entries",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor_id", ID, nullable=True),
        sa.Column("actor_name", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", ID, nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
    )
    ddl.create_index("audit_entries", "actor_id", "id", name="ix_audit_entries_actor_id")
    ddl.create_index("audit_entries", "action")


def _create_recovery_codes() -> None:
    ddl.create_table(
        "recovery_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        references={"user_id": ("users", CASCADE)},
        unique=["code_hash"],
    )
    ddl.create_index("recovery_codes", "user_id")


def _create_reports() -> None:
    ddl.create_table(
        "reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("reporter_id", ID, nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.Column("resolved_by", ID, nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        checks={"status": "status IN ('open', 'resolved')"},
        references={
            "message_id": ("messages", CASCADE),
            "reporter_id": ("users", SET_NULL),
            "resolved_by": ("users", SET_NULL),
        },
        unique=[("message_id", "reporter_id")],
    )
    ddl.create_index("reports", "status", "id", name="ix_reports_status_id")


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_table("recovery_codes")
    op.drop_table("audit_entries")  # the whole log goes only with the whole feature
    op.drop_column("chats", "retention_days")
    ddl.drop_columns("sessions", "last_used_at", "ip")
    ddl.drop_columns("users", "totp_last_step", "totp_enabled", "totp_secret", "deactivated_at")
