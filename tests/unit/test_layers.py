"""Services get what they use: no domain module imports FastAPI or the application state.

Only the composition layer (the app, its dependencies and state, the routes, the
WebSocket endpoint, the workers) may hold the whole state; a service takes the session and
the few collaborators it uses (DESIGN.md principle 7).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "parley" / "server"
COMPOSITION = {
    "app.py",
    "deps.py",
    "state.py",
    "workers.py",
    "compat.py",
    "problems.py",
    "realtime/ws.py",
    "accounts/routes.py",
    "chats/routes.py",
    "messages/routes.py",
    "moderation/routes.py",
}
FORBIDDEN = ("fastapi", "parley.server.state", "parley.server.deps")
SERVICES = [
    "parley.server.accounts.service",
    "parley.server.accounts.avatars",
    "parley.server.chats.service",
    "parley.server.messages.service",
    "parley.server.messages.attachments",
    "parley.server.messages.writer",
    "parley.server.moderation.service",
    "parley.server.realtime.presence",
    "parley.server.realtime.hub",
    "parley.server.uploads",
    "parley.server.storage",
    "parley.server.images",
    "parley.server.cache",
]


def _domain_modules() -> list[Path]:
    modules = sorted(SERVER.rglob("*.py"))
    return [
        p
        for p in modules
        if p.relative_to(SERVER).as_posix() not in COMPOSITION and "migrations" not in p.parts
    ]


def _imports(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (TYPE_CHECKING blocks too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def test_the_composition_layer_is_where_the_state_is_used() -> None:
    """The list above names real files (a rename must not silently widen it)."""
    for relative in COMPOSITION:
        assert (SERVER / relative).is_file(), relative
    assert len(_domain_modules()) > 20


@pytest.mark.parametrize("path", _domain_modules(), ids=lambda p: p.relative_to(SERVER).as_posix())
def test_no_domain_module_imports_fastapi_or_the_state(path: Path) -> None:
    bad = sorted(name for name in _imports(path) if _forbidden(name))
    assert not bad, f"{path.relative_to(SERVER)} imports {bad}"


def test_no_domain_function_takes_the_app_state() -> None:
    for path in _domain_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.arg) and node.annotation is not None:
                assert "AppState" not in ast.unparse(node.annotation), (
                    f"{path.relative_to(SERVER)}: parameter {node.arg}"
                )


def test_importing_the_services_loads_neither_fastapi_nor_the_state() -> None:
    """Transitively too: a fresh interpreter imports every service, then looks."""
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in SERVICES)
        + f"print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
