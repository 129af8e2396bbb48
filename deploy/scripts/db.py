#!/usr/bin/env python3
"""`make db-shell` and `make db-backup` against the database Parley is configured for.

    python deploy/scripts/db.py shell
    python deploy/scripts/db.py backup [DIR]      (default ./backups)

The database is the one `parley` itself would use (DATABASE_URL, DB_*, else SQLite in
PARLEY_DATA_DIR). PostgreSQL: `psql`, and `pg_dump --format=custom` (restore with
`pg_restore --clean --if-exists -d URL FILE`). SQLite: `sqlite3`, and SQLite's online
backup (a consistent copy while Parley runs). The file store (PARLEY_DATA_DIR/files) is
archived beside it; with S3 the objects stay in the bucket (back it up with `mc mirror`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from parley.config import Settings


def libpq_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def shell(settings: Settings) -> int:
    url = settings.sqlalchemy_url
    if url.startswith("postgresql"):
        tool, args = "psql", [libpq_url(url)]
    else:
        tool, args = "sqlite3", [str(sqlite_path(url))]
    if shutil.which(tool) is None:
        print(f"make db-shell: needs `{tool}` (Debian: apt-get install "
              f"{'postgresql-client' if tool == 'psql' else 'sqlite3'})")  # fmt: skip
        return 1
    os.execvp(tool, [tool, *args])
    return 0  # not reached


def backup(settings: Settings, target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    url = settings.sqlalchemy_url
    if url.startswith("postgresql"):
        if shutil.which("pg_dump") is None:
            print("make db-backup: needs `pg_dump` (Debian: apt-get install postgresql-client)")
            return 1
        out = target / f"parley-{stamp}.dump"
        done = subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", f"--file={out}", libpq_url(url)],
            check=False,
        )
        if done.returncode != 0:
            return done.returncode
    else:
        source = sqlite_path(url)
        if not source.exists():
            print(f"make db-backup: no database at {source} (nothing to back up yet)")
            return 1
        out = target / f"parley-{stamp}.db"
        src, dst = sqlite3.connect(source), sqlite3.connect(out)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
            src.close()
    out.chmod(0o600)
    print(f"database   -> {out} ({out.stat().st_size} bytes)")
    if settings.s3_endpoint:
        print(f"files      -> in S3 bucket {settings.s3_bucket!r} at {settings.s3_endpoint}: "
              "mirror it with `mc mirror` (docs/operations.md)")  # fmt: skip
        return 0
    files = settings.data_dir / "files"
    if files.is_dir():
        archive = target / f"files-{stamp}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(files, arcname="files")
        archive.chmod(0o600)
        print(f"files      -> {archive} ({archive.stat().st_size} bytes)")
    else:
        print(f"files      -> none yet ({files} does not exist)")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("shell", "backup"):
        print(__doc__)
        return 2
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"Invalid configuration: {exc}")
        return 2
    if argv[1] == "shell":
        return shell(settings)
    return backup(settings, Path(argv[2] if len(argv) > 2 else "backups"))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
