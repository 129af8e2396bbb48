"""One injectable clock drives every timer (DESIGN.md principle 7): no module under
parley/server reads wall or monotonic time, sleeps, or arms a timer or timeout except
through parley/clock.py's Clock, so a test's FakeClock drives them all.

Read from the source with `ast`. Each exception is listed below with its reason; an entry
that no longer matches anything fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "parley" / "server"

# (file, what) → why it may read the time itself.
ALLOWED: dict[tuple[str, str], str] = {
    ("db/models/base.py", "datetime.now"): (
        "utcnow(), the column default for rows inserted without a stamp: a fallback, never "
        "compared by a service (those take `now` from the caller's clock)"
    ),
    ("db/models/core.py", "utcnow"): "the column defaults naming utcnow (see above)",
    ("db/models/reach.py", "utcnow"): "the column defaults naming utcnow (see above)",
    ("db/session.py", "time.perf_counter"): (
        "a query's duration for the db_query_time histogram: measured, not a timer"
    ),
    ("messages/service.py", "time.perf_counter"): (
        "a send's duration for the message_time histogram: measured, not a timer"
    ),
    ("realtime/hub.py", "time.monotonic"): (
        "a default only (Hub(monotonic=...)): the app passes the clock's monotonic"
    ),
    ("email/mailer.py", "asyncio.wait(timeout=)"): (
        "at shutdown, a bounded wait for the e-mails still being sent: not a timer of the app"
    ),
    ("realtime/connection.py", "time.monotonic"): (
        "a default only (Connection.last_active): register() stamps it from the clock"
    ),
    ("realtime/connection.py", "asyncio.wait(timeout=)"): (
        "Connection.send's wait for room in a full queue (SEND_WAIT): the Connection has no "
        "clock yet; left to the delivery-path work that owns it"
    ),
}

TIME_READS = {
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "sleep"},
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
    "asyncio": {"sleep", "timeout", "timeout_at", "wait_for"},
}


def _found(tree: ast.AST) -> list[str]:
    """What a module does with time outside the clock, one entry per occurrence."""
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module, attr = node.value.id, node.attr
            if attr in TIME_READS.get(module, ()):
                out.append(f"{module}.{attr}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"call_later", "call_at"}
            and "clock" not in ast.unparse(node.value)
        ):
            out.append(node.attr)
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "time"
            and "loop" in ast.unparse(node.value).lower()
        ):
            out.append("loop.time")
        if isinstance(node, ast.ImportFrom) and node.module in {"time", "asyncio"}:
            out += [
                f"{node.module}.{a.name}" for a in node.names if a.name in TIME_READS[node.module]
            ]
        if isinstance(node, ast.Name) and node.id == "utcnow":
            out.append("utcnow")
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "asyncio.wait"
            and any(k.arg == "timeout" for k in node.keywords)
        ):
            out.append("asyncio.wait(timeout=)")
    return out


def _yields(tree: ast.AST) -> int:
    """`asyncio.sleep(0)`: a turn of the loop, not a timer."""
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "asyncio.sleep"
        and [ast.unparse(a) for a in node.args] == ["0"]
    )


def _reads() -> dict[tuple[str, str], int]:
    found: Counter[tuple[str, str]] = Counter()
    for path in sorted(SERVER.rglob("*.py")):
        relative = path.relative_to(SERVER).as_posix()
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for what in _found(tree):
            found[relative, what] += 1
        if _yields(tree):
            found[relative, "asyncio.sleep"] -= _yields(tree)
    return {key: n for key, n in found.items() if n > 0}


def test_only_the_clock_reads_the_time() -> None:
    stray = sorted(f"{path}: {what}" for path, what in _reads() if (path, what) not in ALLOWED)
    assert not stray, "read the time through the injected Clock: " + ", ".join(stray)


def test_every_exception_is_still_needed() -> None:
    stale = sorted(f"{p}: {w}" for p, w in ALLOWED if (p, w) not in _reads())
    assert not stale, "remove from ALLOWED: " + ", ".join(stale)


def test_the_check_sees_what_it_looks_for() -> None:
    source = """
import asyncio, time
from datetime import datetime
async def f(loop, clock):
    time.monotonic(); datetime.now(); await asyncio.sleep(1); await asyncio.sleep(0)
    loop.call_later(1, f); clock.call_later(1, f); asyncio.get_running_loop().time()
    async with asyncio.timeout(1): ...
    await asyncio.wait(set(), timeout=1); await asyncio.wait(set())
"""
    tree = ast.parse(source)
    found = Counter(_found(tree))
    assert found == Counter(
        {
            "time.monotonic": 1,
            "datetime.now": 1,
            "asyncio.sleep": 2,
            "call_later": 1,
            "loop.time": 1,
            "asyncio.timeout": 1,
            "asyncio.wait(timeout=)": 1,
        }
    )
    assert _yields(tree) == 1
