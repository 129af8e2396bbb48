"""trust: two-factor sign-in, session details, deactivation, reports, audit log, retention

Revision ID: 0004_trust
Revises: 0004_reach
Create Date: 2026-12-07 17:20:00

Columns are added in place (no table rebuild: on SQLite a rebuild of `users` or `sessions`
would cascade deletes, foreign keys being on); the new tables are created.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)

revision: str = "0004_trust"
down_revision: str | None = "0004_reach"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("deactivated_at", WHEN, nullable=True))
    op.add_column("users", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column(
        "users",
        sa.Column("totp_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("users", sa.Column("totp_last_step", ID, nullable=True))
    op.add_column(
        "sessions", sa.Column("ip", sa.String(length=64), nullable=False, server_default="")
    )
    op.add_column("sessions", sa.Column("last_used_at", WHEN, nullable=True))
    op.add_column("chats", sa.Column("retention_days", sa.Float(), nullable=True))
    _create_audit()
    _create_recovery_codes()
    _create_reports()


def _create_audit() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor_id", ID, nullable=True),
        sa.Column("actor_name", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", ID, nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    op.create_index("ix_audit_entries_actor_id", "audit_entries", ["actor_id", "id"])
    op.create_index(op.f("ix_audit_entries_action"), "audit_entries", ["action"])


def _create_recovery_codes() -> None:
    op.create_table(
        "recovery_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_codes_code_hash")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])


def _create_reports() -> None:
    op.create_table(
        "reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("reporter_id", ID, nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.Column("resolved_by", ID, nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_reports_status")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_reports_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["users.id"],
            name=op.f("fk_reports_reporter_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name=op.f("fk_reports_resolved_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint(
            "message_id", "reporter_id", name=op.f("uq_reports_message_id_reporter_id")
        ),
    )
    op.create_index("ix_reports_status_id", "reports", ["status", "id"])


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_table("recovery_codes")
    op.drop_table("audit_entries")  # the whole log goes only with the whole feature
    op.drop_column("chats", "retention_days")
    op.drop_column("sessions", "last_used_at")
    op.drop_column("sessions", "ip")
    for name in ("totp_last_step", "totp_enabled", "totp_secret", "deactivated_at"):
        op.drop_column("users", name)
