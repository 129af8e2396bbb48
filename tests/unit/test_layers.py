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
    "middleware.py",
    "operations.py",
    "realtime/ws.py",
    "realtime/handlers.py",
    "accounts/routes.py",
    "chats/routes.py",
    "messages/routes.py",
    "messages/fastpath.py",
    "moderation/routes.py",
    "email/routes.py",
    "instance/routes.py",
    "invites/routes.py",
    "push/routes.py",
    "admin/routes.py",
    "trust/routes.py",
    "integrations/routes.py",
}
FORBIDDEN = ("fastapi", "parley.server.state", "parley.server.deps")
SERVICES = [
    "parley.server.accounts.service",
    "parley.server.accounts.profile",
    "parley.server.accounts.avatars",
    "parley.server.chats.service",
    "parley.server.chats.personal",
    "parley.server.messages.service",
    "parley.server.messages.reactions",
    "parley.server.messages.attachments",
    "parley.server.messages.writer",
    "parley.server.messages.drafts",
    "parley.server.moderation.service",
    "parley.server.realtime.presence",
    "parley.server.realtime.hub",
    "parley.server.uploads",
    "parley.server.storage",
    "parley.server.images",
    "parley.server.cache",
    "parley.server.email.service",
    "parley.server.email.mailer",
    "parley.server.instance.settings",
    "parley.server.invites.service",
    "parley.server.push.service",
    "parley.server.push.sender",
    "parley.server.push.keys",
    "parley.server.audit",
    "parley.server.admin.service",
    "parley.server.admin.reports",
    "parley.server.accounts.twofactor",
    "parley.server.trust.sessions",
    "parley.server.messages.retention",
    "parley.server.messages.notices",
    "parley.server.messages.pins",
    "parley.server.messages.forwarding",
    "parley.server.messages.scheduled",
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
    assert _loaded_after_importing(SERVICES, FORBIDDEN) == []


def _loaded_after_importing(names: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The `forbidden` modules (and their submodules) a fresh interpreter has loaded once it
    imported `names`."""
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in names)
        + f"bad = {forbidden!r}\n"
        + "under = tuple(b + '.' for b in bad)\n"
        + "print(sorted(m for m in sys.modules if m in bad or m.startswith(under)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return ast.literal_eval(out.stdout.strip())  # type: ignore[no-any-return]


# The gateway: nothing of the server, directly or through parley's top-level modules.

PARLEY = SERVER.parent
GATEWAY = PARLEY / "gateway"
GATEWAY_FORBIDDEN = ("parley.server", "sqlalchemy", "fastapi")


def _module_file(name: str) -> Path | None:
    """The file of a parley module (`parley.gateway.app`), None for a non-module name."""
    parts = name.split(".")
    if parts[0] != "parley":
        return None
    base = PARLEY.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable(path: Path) -> dict[str, Path]:
    """Every name imported by `path` or by the parley modules it reaches, with the file that
    imports it (parley.server's own files are not followed: reaching one is the failure)."""
    found: dict[str, Path] = {}
    todo, seen = [path], {path}
    while todo:
        current = todo.pop()
        for name in _imports(current):
            found.setdefault(name, current)
            target = _module_file(name)
            if target is not None and target not in seen and not name.startswith("parley.server"):
                seen.add(target)
                todo.append(target)
    return found


def _gateway_modules() -> list[Path]:
    return sorted(GATEWAY.glob("*.py"))


def test_the_gateway_check_follows_top_level_modules() -> None:
    """auth.py reaches PyJWT only through parley/security.py: the walk goes that far."""
    reached = _reachable(GATEWAY / "auth.py")
    assert reached["jwt"] == PARLEY / "security.py"
    assert len(_gateway_modules()) > 10


@pytest.mark.parametrize("path", _gateway_modules(), ids=lambda p: p.name)
def test_no_gateway_module_reaches_the_server(path: Path) -> None:
    bad = {
        name: via.relative_to(PARLEY.parent).as_posix()
        for name, via in _reachable(path).items()
        if any(name == b or name.startswith(b + ".") for b in GATEWAY_FORBIDDEN)
    }
    assert not bad, f"{path.name} reaches {bad} (name: the file that imports it)"


def test_importing_the_gateway_loads_nothing_of_the_server() -> None:
    """At run time too: a fresh interpreter imports every gateway module, then looks."""
    names = [f"parley.gateway.{p.stem}" for p in _gateway_modules() if p.stem != "__init__"]
    assert _loaded_after_importing(names, GATEWAY_FORBIDDEN) == []


def _module_graph() -> dict[str, set[str]]:
    """Which parley module imports which, counting imports inside functions too (a lazy
    import hides a cycle; it does not remove it)."""
    root = SERVER.parent
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {dep for dep in _imports(path) if dep in modules and dep != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = _module_graph()
    assert "parley.server.chats.general" in graph["parley.server.accounts.service"]
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
