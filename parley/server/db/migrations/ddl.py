"""The column types and table shapes the migrations share, named by the models' convention.

Append-only: every fresh database replays every migration, so changing a helper here
changes the schema that old, already applied migrations produce (and fresh databases would
no longer match upgraded ones). A new shape is a new helper; a helper in use never changes.

Constraint and index names follow `NAMING` in parley/server/db/models/base.py, spelled out
here rather than imported so that a later change of the models cannot reach old migrations.
A migration declares only `revision` and `down_revision`: Alembic reads `branch_labels` and
`depends_on` with getattr, None when absent.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# SQLite has no 64-bit autoincrement type of its own: INTEGER PRIMARY KEY is the rowid.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
CASCADE = "CASCADE"
SET_NULL = "SET NULL"


def is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def create_table(
    name: str,
    *columns: sa.Column[Any],
    primary_key: str | tuple[str, ...] = "id",
    references: Mapping[str, tuple[str, str]] | None = None,
    unique: Sequence[str | tuple[str, ...]] = (),
    checks: Mapping[str, str] | None = None,
) -> None:
    """`references` maps a column to the table whose `id` it holds and its ON DELETE;
    `checks` maps a check's name to its SQL. The constraints are declared checks first,
    then references, the primary key and unique keys (the order SQLite keeps in its
    CREATE TABLE text)."""
    op.create_table(
        name,
        *columns,
        *(
            sa.CheckConstraint(sql, name=op.f(f"ck_{name}_{key}"))
            for key, sql in (checks or {}).items()
        ),
        *(_reference(name, column, *target) for column, target in (references or {}).items()),
        sa.PrimaryKeyConstraint(*_names(primary_key), name=op.f(f"pk_{name}")),
        *(
            sa.UniqueConstraint(*_names(key), name=op.f(f"uq_{name}_{'_'.join(_names(key))}"))
            for key in unique
        ),
    )


def create_index(table: str, *columns: str, name: str | None = None, unique: bool = False) -> None:
    """`name` defaults to the convention's ix_<table>_<column>, for an index of one column."""
    op.create_index(op.f(name or f"ix_{table}_{columns[0]}"), table, list(columns), unique=unique)


def add_columns(table: str, *columns: sa.Column[Any]) -> None:
    """Each with its own ALTER TABLE ADD COLUMN: never a rebuild of `table` (on SQLite a
    rebuild of a table others refer to would cascade deletes, foreign keys being on)."""
    for column in columns:
        op.add_column(table, column)


def drop_columns(table: str, *names: str) -> None:
    """In place on SQLite 3.35+ (ALTER TABLE DROP COLUMN): no rebuild."""
    for name in names:
        op.drop_column(table, name)


def _reference(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    name = op.f(f"fk_{table}_{column}_{target}")
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=name, ondelete=ondelete)


def _names(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else key
