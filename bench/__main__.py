"""`make bench`: Parley against a ceiling server, measured in the same run.

Starts the ceiling (bench/ceiling.py: a Starlette/uvicorn broadcast server with no
persistence and no auth) and Parley (one server + gateway on SQLite; two servers + gateway
on PostgreSQL + Redis when both answer), seeds users and chats straight into the database,
and runs the scenarios with picows clients on uvloop:

  saturate  200 members in one group, 5 senders, 10 unacknowledged each
  fanout    200 members, 5 senders, 50 msg/s offered: nothing lost, p99
  pairs     500 direct chats, 1 msg/s each: nothing lost, handshakes, p99, server CPU/msg
  idle      5,000 idle sockets: KB per connection in each process
  history   GET /service/api/chats/{id}/messages?limit=50 through the gateway: pages/s
            (its own chat, seeded with 60 messages first: full pages whatever ran before)
  overload  far more than it can carry: `overloaded` errors, health and login, recovery

Prints one table (Parley's ratio to the ceiling per scenario, CPU seconds and RSS of every
process) and writes bench/results/bench-<time>.json. BENCH_QUICK=1: about a minute.
BENCH_ONLY=sqlite|postgres limits the deployments; BENCH_SCENARIOS=saturate,pairs the
scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import harness, loadgen

RESULTS = Path(__file__).with_name("results")
SCENARIOS = ("saturate", "fanout", "pairs", "idle", "history", "overload")


@dataclass(frozen=True)
class Config:
    members: int = 200
    senders: int = 5
    window: int = 10
    saturate_s: float = 15
    fanout_rate: float = 50
    fanout_s: float = 20
    pairs: int = 500
    pairs_rate: float = 1
    pairs_s: float = 20
    idle_sockets: int = 5000
    idle_budget_s: float = 30  # sockets not opened by then are left out (the rate is shown)
    history_s: float = 5
    history_concurrency: int = 8
    overload_pairs: int = 200
    overload_rate: float = 20
    overload_s: float = 8
    postgres: bool = True
    direct_on_postgres: bool = False
    direct_on_sqlite: bool = True
    settle_s: float = 1.0  # pauses between and inside scenarios


FULL = Config()
QUICK = Config(
    members=50, saturate_s=3, fanout_s=4, fanout_rate=25, pairs=100, pairs_s=4,
    idle_sockets=500, idle_budget_s=15, history_s=2, overload_pairs=50, overload_rate=40,
    overload_s=3, postgres=False, direct_on_postgres=False,
)  # fmt: skip
TINY = Config(
    members=8, senders=2, window=2, saturate_s=1, fanout_rate=10, fanout_s=1, pairs=5,
    pairs_s=1, idle_sockets=20, history_s=0.5, history_concurrency=2, overload_pairs=4,
    overload_rate=20, overload_s=1, postgres=False, direct_on_postgres=False,
    direct_on_sqlite=False, settle_s=0.1,
)  # fmt: skip


class Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.label = ""
        self.started = time.monotonic()

    def section(self, label: str) -> None:
        self.label = label
        if not self.quiet:
            sys.stderr.write(f"\r\033[K[{self._clock()}] {label}\n")

    def __call__(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"\r\033[K[{self._clock()}]   {self.label}: {text}")
            sys.stderr.flush()

    def _clock(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"{elapsed // 60:02d}:{elapsed % 60:02d}"


async def run_deployment(
    name: str, cfg: Config, scenarios: tuple[str, ...], progress: Progress
) -> list[dict[str, Any]]:
    """Starts one deployment, runs the scenarios for each way in, stops it."""
    stack = harness.Stack(name)
    results: list[dict[str, Any]] = []
    try:
        database_url: str | None = None
        servers = 1
        if name == "postgres":
            db_name, database_url = await harness.create_database()
            stack.pg_database = db_name
            servers = 2
        users = max(cfg.members, 2 * (cfg.pairs + cfg.overload_pairs + 1))
        progress.section(f"{name}: seeding {users} users")
        if name != "ceiling":
            seeded = await harness.seed(
                harness.sqlalchemy_url(stack, database_url),
                users=users,
                groups={"saturate": cfg.members, "fanout": cfg.members, "history": 2},
                pairs=cfg.pairs + cfg.overload_pairs + 1,
            )
            progress.section(f"{name}: starting {servers} server(s) and the gateway")
            await harness.start_parley(stack, servers=servers, database_url=database_url)
            gateway = stack.by_role("gateway")[0]
            server_urls = [p.url for p in stack.by_role("server")]
            targets = [
                loadgen.Target("gateway", [gateway.ws_url], gateway.url, seeded.tokens),
            ]
            if cfg.direct_on_sqlite if name == "sqlite" else cfg.direct_on_postgres:
                direct_ws = [u.replace("http", "ws", 1) + "/service/ws" for u in server_urls]
                targets.append(loadgen.Target("direct", direct_ws, server_urls[0], seeded.tokens))
        else:
            seeded = _ceiling_plan(users, cfg)
            progress.section("ceiling: starting")
            proc = await harness.start_ceiling(stack)
            targets = [loadgen.Target("ceiling", [proc.ws_url], proc.url)]
        # overload last: a server without load shedding may still be busy long after it
        plan = [(t, s) for t in targets for s in scenarios if s != "overload"]
        plan += [(t, "overload") for t in targets if "overload" in scenarios]
        for target, scenario in plan:
            if target.name == "direct" and scenario in ("idle", "history", "overload"):
                continue  # measured through the gateway (idle counts both processes)
            if target.name == "ceiling" and scenario == "overload":
                continue
            progress.section(f"{name} ({target.name}): {scenario}")
            marks: dict[str, dict[str, dict[str, float]]] = {}
            loadgen.MARK = lambda event, marks=marks: marks.__setitem__(event, stack.usage())  # type: ignore[misc]
            before = stack.usage()
            started = time.monotonic()
            figures = await _scenario(scenario, target, seeded, cfg, stack, progress)
            after = stack.usage()
            if "start" in marks and "end" in marks:
                # CPU while messages flowed (handshakes excluded), per frame received then
                received = figures.get("frames_in_window", figures.get("frames_received", 0))
                frames = max(1, int(received))
                figures["cpu_us_per_frame"] = {
                    role: round(
                        (marks["end"][role]["cpu_s"] - marks["start"][role]["cpu_s"])
                        * 1e6 / frames, 1
                    )
                    for role in marks["end"]
                }  # fmt: skip
            figures["elapsed_s"] = round(time.monotonic() - started, 1)
            figures["processes"] = {
                role: {
                    "cpu_s": round(after[role]["cpu_s"] - before[role]["cpu_s"], 2),
                    "rss_mib": after[role]["rss_mib"],
                }
                for role in after
            }
            results.append(
                {"deployment": name, "via": target.name, "scenario": scenario, **figures}
            )
            await _quiet(stack, cfg.settle_s)
    finally:
        progress.section(f"{name}: stopping")
        await stack.stop()
    return results


async def _quiet(stack: harness.Stack, settle: float, limit: float = 15) -> None:
    """Waits until the processes are nearly idle (a server without load shedding may still
    work through a backlog), at most `limit` seconds, so one scenario does not bleed into
    the next."""
    await asyncio.sleep(settle)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(p.cpu() for p in stack.procs)
        await asyncio.sleep(0.5)
        if sum(p.cpu() for p in stack.procs) - before < 0.1:  # under 20 % of a core
            return


def _ceiling_plan(users: int, cfg: Config) -> harness.Seeded:
    """The same shape of data for the ceiling: ids only (it has no database)."""
    ids = list(range(1, users + 1))
    members = {1: ids[: cfg.members], 2: ids[: cfg.members]}
    members[3] = ids[:2]
    chats = {"saturate": [1], "fanout": [2], "history": [3], "pairs": []}
    for i in range(cfg.pairs + cfg.overload_pairs + 1):
        chat = 100 + i
        chats["pairs"].append(chat)
        members[chat] = [ids[2 * i], ids[2 * i + 1]]
    return harness.Seeded(ids, {}, chats, members, "")


async def _scenario(
    scenario: str,
    target: loadgen.Target,
    seeded: harness.Seeded,
    cfg: Config,
    stack: harness.Stack,
    progress: Progress,
) -> dict[str, Any]:
    servers = stack.by_role("server") or stack.by_role("ceiling")
    pair_chats = seeded.chats["pairs"]
    if scenario == "saturate":
        chat = seeded.chats["saturate"][0]
        return await loadgen.saturate(
            target, seeded.members[chat], chat, senders=cfg.senders, window=cfg.window,
            duration=cfg.saturate_s, progress=progress,
        )  # fmt: skip
    if scenario == "fanout":
        chat = seeded.chats["fanout"][0]
        return await loadgen.fanout(
            target, seeded.members[chat], chat, senders=cfg.senders, rate=cfg.fanout_rate,
            duration=cfg.fanout_s, progress=progress,
        )  # fmt: skip
    if scenario == "pairs":
        return await loadgen.pairs(
            target, pair_chats[: cfg.pairs], seeded.members, rate=cfg.pairs_rate,
            duration=cfg.pairs_s, progress=progress,
            cpu=lambda: sum(p.cpu() for p in servers),
        )  # fmt: skip
    if scenario == "idle":
        users = [u for chat in pair_chats[: cfg.pairs] for u in seeded.members[chat]]
        chats_of = {u: [chat] for chat in pair_chats for u in seeded.members[chat]}
        return await loadgen.idle(
            target, users, chats_of, sockets=cfg.idle_sockets,
            rss=lambda: {p.role: p.rss_mib() for p in stack.procs}, progress=progress,
            budget=cfg.idle_budget_s,
        )  # fmt: skip
    if scenario == "history":
        chat = seeded.chats["history"][0]
        return await loadgen.history(
            target, chat, seeded.members[chat][0], duration=cfg.history_s,
            concurrency=cfg.history_concurrency, progress=progress,
        )  # fmt: skip
    if scenario == "overload":
        overload_chats = pair_chats[cfg.pairs : cfg.pairs + cfg.overload_pairs]
        return await loadgen.overload(
            target, overload_chats, seeded.members, pair_chats[-1],
            (seeded.login_username, harness.PASSWORD), rate=cfg.overload_rate,
            duration=cfg.overload_s, progress=progress,
        )  # fmt: skip
    raise ValueError(scenario)


# The report

_HEADLINE = {
    # scenario: (figure, higher is better, unit)
    "saturate": ("deliveries_per_s", True, "deliveries/s"),
    "fanout": ("delivery_p99_ms", False, "p99 ms"),
    "pairs": ("delivery_p99_ms", False, "p99 ms"),
    "idle": ("kb_per_connection", False, "KB/conn"),
    "history": ("pages_per_s", True, "pages/s"),
    "overload": ("recovered_after_s", False, "recovery s"),
}


def _headline(row: dict[str, Any]) -> float | None:
    key = _HEADLINE[row["scenario"]][0]
    value = row.get(key)
    if isinstance(value, dict):  # idle: the largest per-process figure (server or gateway)
        numbers = [v for v in value.values() if isinstance(v, int | float)]
        return max(numbers) if numbers else None
    return value if isinstance(value, int | float) else None


def _details(row: dict[str, Any]) -> str:
    s = row["scenario"]
    per_frame = row.get("cpu_us_per_frame") or {}
    cost = (
        ("; CPU µs/frame " + ", ".join(f"{k} {v}" for k, v in per_frame.items()))
        if per_frame
        else ""
    )
    if s == "saturate":
        return f"{row['messages_per_s']} msg/s, p99 {row['delivery_p99_ms']} ms{cost}"
    if s in ("fanout", "pairs"):
        extra = (
            f", {row['handshake_failures']} refused, {row['server_cpu_ms_per_message']} ms CPU/msg"
            f" ({row['server_cpu_ms_per_handshake']} ms CPU/handshake, before the window)"
            if s == "pairs"
            else ""
        )
        return f"lost {row['lost']}, p50 {row['delivery_p50_ms']} ms{extra}{cost}"
    if s == "idle":
        per = ", ".join(f"{k} {v}" for k, v in row["kb_per_connection"].items())
        return (
            f"{row['opened']}/{row['sockets']} open ({row['handshakes_per_s']} handshakes/s); "
            f"KB/conn {per}"
        )
    if s == "history":
        full = f", {row['page_messages']} messages a page" if row.get("page_messages") else ""
        return f"p99 {row['p99_ms']} ms, {row['failed']} failed{full}"
    if s == "overload":
        return (
            f"{row['overloaded_errors']} overloaded, health failed {row['health_failed']}/"
            f"{row['health_checks']} (max {row['health_max_ms']} ms), login failed "
            f"{row['logins_failed']}/{row['logins']} (max {row['login_max_ms']} ms)"
        )
    return ""


def ratios(rows: list[dict[str, Any]]) -> None:
    """Adds `ratio_to_ceiling` (Parley ÷ ceiling for rates, ceiling-relative × for costs)."""
    ceiling = {r["scenario"]: _headline(r) for r in rows if r["deployment"] == "ceiling"}
    for row in rows:
        base = ceiling.get(row["scenario"])
        value = _headline(row)
        row["ratio_to_ceiling"] = (
            round(value / base, 3) if row["deployment"] != "ceiling" and base and value else None
        )


def render(report: dict[str, Any]) -> str:
    rows = report["results"]
    lines = [
        "| scenario | deployment | via | headline | ratio to ceiling | details |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        _figure, higher, unit = _HEADLINE[row["scenario"]]
        ratio = row.get("ratio_to_ceiling")
        shown = "" if ratio is None else (f"{ratio:.0%}" if higher else f"{ratio:.1f}×")
        lines.append(
            f"| {row['scenario']} | {row['deployment']} | {row['via']} | "
            f"{_headline(row)} {unit} | {shown} | {_details(row)} |"
        )
    lines += [
        "",
        "| deployment | via | scenario | process | CPU s | RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for role, usage in row["processes"].items():
            lines.append(
                f"| {row['deployment']} | {row['via']} | {row['scenario']} | {role} | "
                f"{usage['cpu_s']} | {usage['rss_mib']} |"
            )
    return "\n".join(lines)


async def run(
    cfg: Config, scenarios: tuple[str, ...], only: str | None, quiet: bool
) -> dict[str, Any]:
    limit = harness.raise_nofile()
    # Ctrl-C or SIGTERM: cancel the run, so that every process started is stopped (finally)
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    loadgen.SETTLE = cfg.settle_s
    progress = Progress(quiet)
    deployments = ["ceiling", "sqlite"]
    if cfg.postgres:
        if await harness.postgres_available() and await harness.redis_available():
            deployments.append("postgres")
        else:
            progress.section("PostgreSQL or Redis does not answer: SQLite only")
    if only:
        deployments = ["ceiling", *[d for d in deployments if d == only]]
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for name in deployments:
        rows += await run_deployment(name, cfg, scenarios, progress)
    ratios(rows)
    return {
        "benchmark": "parley-vs-ceiling",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "nofile_limit": limit,
        "elapsed_s": round(time.monotonic() - started, 1),
        "config": asdict(cfg),
        "results": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1"
    )
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    cfg = TINY if args.tiny else QUICK if args.quick else FULL
    if os.environ.get("BENCH_PG_DIRECT") == "1":
        cfg = replace(cfg, direct_on_postgres=True)
    if os.environ.get("BENCH_NO_POSTGRES") == "1":
        cfg = replace(cfg, postgres=False)
    chosen = tuple(
        s for s in os.environ.get("BENCH_SCENARIOS", ",".join(SCENARIOS)).split(",") if s
    )
    only = os.environ.get("BENCH_ONLY") or None
    if only == "postgres":
        cfg = replace(cfg, postgres=True)
    import uvloop

    try:
        report = uvloop.run(run(cfg, chosen, only, args.quiet))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("\ninterrupted: every process the bench started is stopped", file=sys.stderr)
        return 130
    out = args.output or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(render(report))
    print(f"\n{report['elapsed_s']} s; load average at the end {report['load_average_1m_at_end']} "
          f"on {report['cpus']} CPUs; written to {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
