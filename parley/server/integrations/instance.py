"""`parley export` / `parley import`: a whole instance as one ZIP, and back.

The ZIP holds `manifest.json`, one `tables/<table>.json` per table (every row, columns by
name, times in ISO 8601) and `files/<key>` for every stored file (avatars,
attachments). Login sessions and their refresh tokens stay behind (people sign in again:
their passwords keep working), and so do exports; bots keep their secrets, but their
tokens name sessions that did not move: rotate them on the new instance.

Importing inserts each row whose primary key is not there yet, table by table in the
order of their foreign keys, then moves PostgreSQL's id sequences past the largest id: so
an instance moves between SQLite and PostgreSQL with its ids and seqs, and importing the
same file twice adds nothing.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from parley.server.db.models import Base, UTCDateTime
from parley.server.storage import Storage

SKIPPED = frozenset({"sessions", "refresh_tokens", "exports"})
CLEARED = {"bots": {"session_id": None}}  # columns naming what stayed behind
FORMAT = 1
BATCH = 500
Progress = Callable[[str, int, int], None]  # (what, done, total)


def _tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED]


def _to_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _from_json(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for column in table.columns:
        if column.name not in row:
            continue
        value = row[column.name]
        if value is not None and isinstance(column.type, UTCDateTime):
            value = datetime.fromisoformat(value)
        out[column.name] = value
    return out


async def export_instance(
    engine: AsyncEngine, storage: Storage, out: Path, progress: Progress | None = None
) -> dict[str, int]:
    """Writes the ZIP; returns the rows per table."""
    counts: dict[str, int] = {}
    keys: list[str] = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        async with engine.connect() as conn:
            tables = _tables()
            for i, table in enumerate(tables, 1):
                rows = [dict(r._mapping) for r in await conn.execute(select(table))]
                for row in rows:
                    row.update(CLEARED.get(table.name, {}))
                counts[table.name] = len(rows)
                archive.writestr(
                    f"tables/{table.name}.json",
                    json.dumps([{k: _to_json(v) for k, v in r.items()} for r in rows]),
                )
                if table.name == "users":
                    keys += [r["avatar_key"] for r in rows if r.get("avatar_key")]
                if table.name == "attachments":
                    keys += [r["storage_key"] for r in rows]
                if progress:
                    progress("tables", i, len(tables))
        for i, key in enumerate(keys, 1):
            try:
                archive.writestr(f"files/{key}", await storage.read_bytes(key))
            except Exception:  # gone from the store: its row still moves
                counts["missing_files"] = counts.get("missing_files", 0) + 1
            if progress:
                progress("files", i, len(keys))
        manifest = {"format": FORMAT, "tables": [t.name for t in _tables()], "counts": counts}
        archive.writestr("manifest.json", json.dumps(manifest))
    return counts


async def import_instance(
    engine: AsyncEngine, storage: Storage, source: Path, progress: Progress | None = None
) -> dict[str, int]:
    """Adds what the instance does not have yet; returns the rows added per table."""
    added: dict[str, int] = {}
    with zipfile.ZipFile(source) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ValueError("not a Parley instance export (or a newer format)")
        names = set(archive.namelist())
        tables = [t for t in _tables() if f"tables/{t.name}.json" in names]
        async with engine.begin() as conn:
            for i, table in enumerate(tables, 1):
                rows = [
                    _from_json(table, r)
                    for r in json.loads(archive.read(f"tables/{table.name}.json"))
                ]
                added[table.name] = await _insert_missing(conn, table, rows)
                if progress:
                    progress("tables", i, len(tables))
            if conn.dialect.name == "postgresql":
                await _advance_sequences(conn, tables)
        files = [n for n in archive.namelist() if n.startswith("files/")]
        for i, name in enumerate(files, 1):
            await storage.save_bytes(name.removeprefix("files/"), archive.read(name))
            if progress:
                progress("files", i, len(files))
    return added


async def _insert_missing(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> int:
    keys = list(table.primary_key.columns)
    count = 0
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        if len(keys) == 1:
            column = keys[0]
            wanted = [r[column.name] for r in batch]
            have = set((await conn.execute(select(column).where(column.in_(wanted)))).scalars())
            new = [r for r in batch if r[column.name] not in have]
        else:
            found = await conn.execute(
                select(*keys).where(or_(*(and_(*(k == r[k.name] for k in keys)) for r in batch)))
            )
            have = {tuple(row) for row in found}
            new = [r for r in batch if tuple(r[k.name] for k in keys) not in have]
        if new:
            await conn.execute(table.insert(), new)
            count += len(new)
    return count


async def _advance_sequences(conn: AsyncConnection, tables: list[Table]) -> None:
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].name != "id" or not keys[0].autoincrement:
            continue
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                f" GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table.name}), 1),"
                f" (SELECT COUNT(*) > 0 FROM {table.name}))"
            )
        )
