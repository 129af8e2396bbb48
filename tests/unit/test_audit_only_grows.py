"""Nothing in Parley deletes or rewrites audit entries: no query, route, CLI command or job."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import parley
from parley.config import Settings
from parley.server.app import create_app
from parley.server.audit import audit

ROOT = Path(parley.__file__).parent
# An ORM delete or update of the model, SQL against the table, or a session.delete of an entry.
FORBIDDEN = re.compile(
    r"(delete|update)\(\s*AuditEntry|(DELETE\s+FROM|UPDATE|TRUNCATE(\s+TABLE)?)\s+\"?audit_entries"
    r"|\.delete\(\s*entry\b",
    re.IGNORECASE,
)


def _sources() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if "migrations" not in p.parts]


def test_no_code_deletes_or_rewrites_audit_entries() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in _sources()
        for match in FORBIDDEN.finditer(path.read_text())
    ]
    assert offenders == []


def test_the_pattern_would_catch_a_delete() -> None:
    assert FORBIDDEN.search("await session.execute(delete(AuditEntry).where(x))")
    assert FORBIDDEN.search('session.execute(text("DELETE FROM audit_entries"))')
    assert not FORBIDDEN.search("delete(Attachment)")


def test_migrations_never_delete_rows_of_the_log() -> None:
    for path in (ROOT / "server" / "db" / "migrations").rglob("*.py"):
        assert not FORBIDDEN.search(path.read_text()), path


def test_no_route_removes_or_changes_audit_entries(tmp_path: Path) -> None:
    settings = Settings(PARLEY_DATA_DIR=tmp_path, JWT_SECRET=secrets.token_hex(32))  # type: ignore[call-arg]
    app = create_app(settings)
    for route in app.routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        if "audit" in path:
            assert methods <= {"GET", "HEAD"}, (path, methods)


def test_the_cli_has_no_audit_command() -> None:
    assert "audit" not in (ROOT / "cli.py").read_text().lower()


def test_audit_is_one_helper_that_never_commits() -> None:
    source = (ROOT / "server" / "audit.py").read_text()
    assert ".commit(" not in source.split("def audit", 1)[1].split("def list_audit", 1)[0]
    assert audit.__name__ == "audit"
