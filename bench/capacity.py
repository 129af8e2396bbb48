"""`make loadtest`: how many people one deployment carries, with a behaviour model.

  python -m bench.capacity [--deployment sqlite|postgres] [--people 500,1000,2000]
                           [--active 0.1] [--ramp 200] [--steady 60] [--generators G]
                           [--storm] [--connect URL,URL --database-url URL]

For each number of people N (stepping up; it stops at the first N that fails): a fresh
deployment (`parley serve`, SQLite; or `parley serve --workers 2` on PostgreSQL + Redis),
N users with a session each and their chats written straight into the database (direct
chats, groups of 5-50, channels of hundreds to thousands, each with some history), a
token minted per person before the clock starts; then generator processes (bench/people.py)
open one socket per person through the gateway at the ramp rate, and after the ramp a
steady phase in which the active share acts (see bench/people.py for the mix). Reported per
action: p50/p95/p99 (delivery: sender to every receiver), errors, messages lost, CPU and
RSS of every process (gateway, servers, generators, PostgreSQL backends of this database,
Redis), the database's own statistics, and whether every p99 stayed under its threshold.
The largest N that passed gives "people per core" and "MB per thousand people".

A step whose generator processes were saturated (over 85 % of a core, or an event loop
lagging more than 50 ms at p99) reports no verdict: add --generators.

--storm: after the last step, the deployment is restarted (SIGTERM, start again) and every
person reconnects as the web client does; the time until all are back and synced, and
whether anyone misses a message, are reported.

Writes bench/results/loadtest-<time>.json and prints a table (docs/capacity.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import harness, people
from bench.people import WORDS, Hist, Share

RESULTS = Path(__file__).with_name("results")
THRESHOLDS_MS = {"delivery": 200.0, "history": 300.0, "search": 500.0}
# Per active person per minute (the rates of a busy working day, close to the proportions
# of Mattermost's load-test model: reading and switching chats dominate, then posting).
MIX = {
    "send": 0.5, "open": 0.5, "read": 0.5, "react": 0.2, "search": 0.1, "edit": 0.05,
    "upload": 0.03, "reconnect": 0.03,
}  # fmt: skip
ACTIONS = (
    "delivery", "delivery_via_sync", "send", "history", "read", "react", "edit", "search",
    "upload", "reconnect", "resync", "ping",
)  # fmt: skip


@dataclass
class Config:
    deployment: str = "sqlite"
    steps: list[int] = field(default_factory=lambda: [500, 1000, 2000])
    active: float = 0.1
    ramp_per_s: float = 200.0
    steady_s: float = 60.0
    drain_s: float = 5.0
    settle_s: float = 5.0
    pace: float = 1.0
    generators: int | None = None
    history_per_chat: int = 30
    storm: bool = False
    storm_timeout_s: float = 120.0
    quiet_limit_s: float = 90.0
    plan: Path | None = None  # a population written by --plan-out (several machines)
    plan_out: Path | None = None
    share: tuple[int, int] = (0, 1)  # this machine's share: (index, machines)
    start_at: float | None = None  # the shared clock's start (epoch seconds)
    all_steps: bool = False  # keep stepping after a failed step (CPU and memory at every N)
    connect: list[str] = field(default_factory=list)
    database_url: str | None = None
    workers: int = 2
    gateways: int = 1  # gateway processes on the one port (parley serve --gateways)
    seed: int = 1


# The population: users, sessions, chats and history, straight into the database


@dataclass
class Population:
    people: list[tuple[int, str, bool, dict[int, int]]]
    chats: dict[int, list[int]]  # chat -> members
    kinds: Counter[str]


def plan_chats(n: int, active_share: float, rng: random.Random) -> tuple[
    list[bool], list[tuple[str, list[int]]]
]:  # fmt: skip
    """Indexes 0..n-1: who is active, and the chats (kind, member indexes). Each active
    person is in 3-10 chats: 1-3 direct chats, then groups (5-50) and channels (hundreds
    to thousands) until its count is reached; the other members are drawn from everyone."""
    everyone = list(range(n))
    active_n = max(1, round(n * active_share))
    active = [False] * n
    for i in rng.sample(everyone, active_n):
        active[i] = True
    chats: list[tuple[str, list[int]]] = []
    channels = max(2, n // 1500)
    for _ in range(channels):
        size = min(n, rng.randint(200, 2000))
        chats.append(("channel", rng.sample(everyone, size)))
    groups = max(2, n // 40)
    for _ in range(groups):
        chats.append(("group", rng.sample(everyone, min(n, rng.randint(5, 50)))))
    member_sets = [set(m) for _k, m in chats]
    for i in (j for j in everyone if active[j]):
        want = rng.randint(3, 10)
        have = sum(1 for s in member_sets if i in s)
        for _ in range(rng.randint(1, 3)):
            peer = rng.randrange(n)
            if peer != i:
                chats.append(("direct", [i, peer]))
                member_sets.append({i, peer})
                have += 1
        while have < want:
            k = rng.randrange(len(chats))
            kind, members = chats[k]
            if kind == "direct" or i in member_sets[k] or (kind == "group" and len(members) >= 50):
                if rng.random() < 0.05:  # everything full: one more group of its own
                    chats.append(("group", [i, *rng.sample(everyone, min(n, 4))]))
                    member_sets.append(set(chats[-1][1]))
                    have = sum(1 for s in member_sets if i in s)
                continue
            members.append(i)
            member_sets[k].add(i)
            have += 1
    unique = []
    for kind, members in chats:
        unique.append((kind, list(dict.fromkeys(members))))
    return active, unique


async def seed_population(database_url: str, n: int, cfg: Config, secret: str) -> Population:
    from sqlalchemy import insert

    from parley.security import hash_password, make_access_token
    from parley.server.db.models import Chat, Membership, Message, Session, User
    from parley.server.db.session import make_engine, migrate

    rng = random.Random(cfg.seed + n)
    active, planned = plan_chats(n, cfg.active, rng)
    engine = make_engine(database_url)
    try:
        lock = Path(database_url.split("///", 1)[1]).parent if "sqlite" in database_url else None
        await migrate(engine, lock)
        run = os.urandom(3).hex()
        password_hash = hash_password(harness.PASSWORD)
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            user_ids: list[int] = []
            session_ids: list[str] = []
            for start in range(0, n, 5000):
                names = [f"p{run}{i}" for i in range(start, min(n, start + 5000))]
                rows = [
                    {"username": x, "username_key": x, "email": f"{x}@example.com",
                     "email_key": f"{x}@example.com", "password_hash": password_hash,
                     "display_name": x, "bio": "", "is_admin": False, "created_at": now}
                    for x in names
                ]  # fmt: skip
                result = await conn.execute(
                    insert(User).returning(User.id, sort_by_parameter_order=True), rows
                )
                ids = [r[0] for r in result]
                user_ids += ids
                result = await conn.execute(  # a token names its session's random `sid`
                    insert(Session).returning(Session.sid, sort_by_parameter_order=True),
                    [{"user_id": u, "created_at": now, "expires_at": now + timedelta(days=1),
                      "user_agent": "loadtest"} for u in ids],
                )  # fmt: skip
                session_ids += [r[0] for r in result]
            rows = []
            for kind, members in planned:
                owner = user_ids[members[0]]
                row = {
                    "type": "direct" if kind == "direct" else kind, "title": "" if kind ==
                    "direct" else f"{kind} {len(rows)}", "description": "",
                    "is_public": kind == "channel", "created_by": owner, "created_at": now,
                    "last_seq": cfg.history_per_chat, "last_activity_at": now,
                }  # fmt: skip
                if kind == "direct":
                    a, b = sorted(user_ids[m] for m in members)
                    row["direct_key"] = f"{a}:{b}"
                rows.append(row)
            # two random draws may pair the same people twice: one chat per pair
            keep: dict[Any, int] = {}
            chosen = []
            for row, plan in zip(rows, planned, strict=True):
                key = row.get("direct_key")
                if key is not None:
                    if key in keep:
                        continue
                    keep[key] = 1
                chosen.append((row, plan))
            result = await conn.execute(
                insert(Chat).returning(Chat.id, sort_by_parameter_order=True),
                [r for r, _p in chosen],
            )
            chat_members: dict[int, list[int]] = {}
            kinds: Counter[str] = Counter()
            memberships: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            for (_row, (kind, members)), (chat_id,) in zip(chosen, result, strict=True):
                uids = [user_ids[m] for m in members]
                chat_members[chat_id] = uids
                kinds[kind] += 1
                memberships += [
                    {"chat_id": chat_id, "user_id": u, "joined_at": now,
                     "last_read_seq": cfg.history_per_chat, "role": "owner" if j == 0 else "member"}
                    for j, u in enumerate(uids)
                ]  # fmt: skip
                for seq in range(1, cfg.history_per_chat + 1):
                    messages.append({
                        "chat_id": chat_id, "seq": seq, "sender_id": rng.choice(uids),
                        "content": " ".join(rng.choices(WORDS, k=rng.randint(3, 12))),
                        "created_at": now - timedelta(minutes=cfg.history_per_chat - seq),
                    })  # fmt: skip
            for start in range(0, len(memberships), 5000):
                await conn.execute(insert(Membership), memberships[start : start + 5000])
            for start in range(0, len(messages), 5000):
                await conn.execute(insert(Message), messages[start : start + 5000])
    finally:
        await engine.dispose()
    chats_of: dict[int, dict[int, int]] = {u: {} for u in user_ids}
    for chat_id, uids in chat_members.items():
        for u in uids:
            chats_of[u][chat_id] = cfg.history_per_chat
    population = [
        (u, make_access_token(secret, user_id=u, session_id=s, ttl_seconds=24 * 3600),
         active[i], chats_of[u])
        for i, (u, s) in enumerate(zip(user_ids, session_ids, strict=True))
    ]  # fmt: skip
    return Population(population, chat_members, kinds)


def save_plan(path: Path, pop: Population) -> None:
    path.write_text(json.dumps({
        "people": pop.people, "chats": pop.chats, "kinds": pop.kinds,
    }))  # fmt: skip


def load_plan(path: Path) -> Population:
    raw = json.loads(path.read_text())
    people_ = [(u, t, a, {int(c): s for c, s in chats.items()}) for u, t, a, chats in raw["people"]]
    chats = {int(c): m for c, m in raw["chats"].items()}
    return Population(people_, chats, Counter(raw["kinds"]))


async def merge(cfg: Config, parts: list[Path]) -> dict[str, Any]:
    """One step's report from the raw shares of several machines (`--share i/n`)."""
    if cfg.plan is None:
        raise SystemExit("--merge needs --plan (the population the shares ran)")
    pop = load_plan(cfg.plan)
    ramps: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    walls: list[float] = []
    generators: dict[str, Any] = {}
    for path in parts:
        part = json.loads(path.read_text())
        ramps += part["ramps"]
        walls.append(part["wall"])
        for w in part["windows"]:
            w["seen"] = {int(u): {int(c): s for c, s in seen.items()}
                         for u, seen in w["seen"].items()}  # fmt: skip
            w["hists"] = {k: {int(b): c for b, c in h.items()} for k, h in w["hists"].items()}
            windows.append(w)
        index = part["share"][0]
        generators.update({f"machine-{index + 1} {k}": v for k, v in part["generators"].items()})
    wall = max(walls)
    result = _summarise(cfg, len(pop.people), pop, ramps, windows, {}, {}, wall)
    if cfg.database_url:
        url = cfg.database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        result["consistency"] = _behind(windows, await _last_seqs(url))
    result["generator_processes"] = generators
    return result


# The deployment under test


def test_env(data_dir: Path, database_url: str | None, redis: bool) -> dict[str, str]:
    """The bench's environment, with the per-user limits back at their defaults: every
    simulated person is its own user and stays within them. Only what all people share
    because they come from one address is raised (docs/capacity.md lists it)."""
    env = harness.parley_env(data_dir, database_url, redis)
    for key in ("PARLEY_RATE_SEND", "PARLEY_RATE_TYPING", "PARLEY_RATE_USER",
                "PARLEY_RATE_FRAMES", "PARLEY_MAX_SOCKETS_PER_USER"):  # fmt: skip
        env.pop(key, None)
    env.update({
        "PARLEY_RATE_PUBLIC": harness.UNLIMITED,  # per client IP: every person is 127.0.0.1
        "PARLEY_RATE_LOGIN": "1000000/minute",
        "PARLEY_RATE_LOGIN_IP": "1000000/minute",
        "PARLEY_MAX_INFLIGHT_PER_IP": "100000",
        "MAX_CONNECTIONS": "100000",  # per server process (default 10,000)
    })  # fmt: skip
    return env


class Deployment:
    """`parley serve` (SQLite, or PostgreSQL + Redis with --workers), or gateways elsewhere."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.kind = "connect" if cfg.connect else cfg.deployment
        self.tmp = Path(tempfile.mkdtemp(prefix=f"parley-loadtest-{self.kind}-"))
        self.popen: subprocess.Popen[bytes] | None = None
        self.children: dict[str, psutil.Process] = {}
        self.server_ports: list[int] = []
        self.pg_database: str | None = None
        self.database_url: str | None = cfg.database_url
        self.gateway_port = harness.free_port()
        self.port = harness.free_port()
        self.secret = os.environ.get("JWT_SECRET", harness.JWT_SECRET)

    @property
    def http_urls(self) -> list[str]:
        return self.cfg.connect or [f"http://127.0.0.1:{self.gateway_port}"]

    @property
    def ws_urls(self) -> list[str]:
        return [u.replace("http", "ws", 1).rstrip("/") + "/ws" for u in self.http_urls]

    async def prepare(self) -> str:
        """Creates the database; returns the URL to seed it through."""
        if self.kind == "postgres":
            self.pg_database, self.database_url = await harness.create_database()
        if self.kind == "sqlite":
            (self.tmp / "data").mkdir(parents=True, exist_ok=True)
            return f"sqlite+aiosqlite:///{self.tmp / 'data' / 'parley.db'}"
        if not self.database_url:
            raise SystemExit("--connect needs --database-url (the cluster's database)")
        return self.database_url.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def start(self) -> None:
        if self.kind == "connect":
            return
        postgres = self.kind == "postgres"
        env = test_env(self.tmp / "data", self.database_url if postgres else None, postgres)
        env["JWT_SECRET"] = self.secret
        args = [
            sys.executable, "-m", "parley.cli", "serve", "--port", str(self.port),
            "--gateway-port", str(self.gateway_port), "--data-dir", str(self.tmp / "data"),
            "--workers", str(self.cfg.workers if postgres else 1),
            "--gateways", str(self.cfg.gateways),
        ]  # fmt: skip
        log = (self.tmp / "serve.log").open("ab")
        self.popen = subprocess.Popen(
            args, env=env, cwd=harness.ROOT, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=harness.raise_nofile,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError("parley serve exited:\n" + self.log_tail())
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.http_urls[0] + "/health")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("parley serve did not answer /health:\n" + self.log_tail())
        self.children = {}
        self.server_ports = []
        gateways = 0
        for child in psutil.Process(self.popen.pid).children():
            cmd = child.cmdline()
            if "gateway" in cmd:
                gateways += 1
                self.children["gateway" if gateways == 1 else f"gateway-{gateways}"] = child
            elif "server" in cmd:
                port = int(cmd[len(cmd) - 1 - cmd[::-1].index("--port") + 1])
                self.server_ports.append(port)
        self.server_ports.sort()
        for child in psutil.Process(self.popen.pid).children():
            cmd = child.cmdline()
            if "server" in cmd and "gateway" not in cmd:
                port = int(cmd[len(cmd) - 1 - cmd[::-1].index("--port") + 1])
                self.children[f"server-{self.server_ports.index(port) + 1}"] = child

    def log_tail(self, lines: int = 30) -> str:
        path = self.tmp / "serve.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop_processes(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.popen.wait, 40)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        for child in self.children.values():  # started by us; gone unless it hung
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.popen = None

    async def stop(self) -> None:
        await self.stop_processes()
        if self.pg_database:
            await harness.drop_database(self.pg_database)
        if os.environ.get("BENCH_KEEP_LOGS") == "1":
            print(f"logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # what the processes use

    async def pg_backends(self) -> list[psutil.Process]:
        if not self.pg_database:
            return []
        import asyncpg

        conn = await asyncpg.connect(harness.PG_ADMIN)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.pg_database,
            )
        finally:
            await conn.close()
        out = []
        for r in rows:
            with contextlib.suppress(psutil.Error):
                out.append(psutil.Process(r["pid"]))
        return out

    async def processes(self) -> dict[str, list[psutil.Process]]:
        procs: dict[str, list[psutil.Process]] = {k: [v] for k, v in self.children.items()}
        if self.kind == "postgres":
            procs["postgres (this database's backends)"] = await self.pg_backends()
            procs["redis (shared)"] = [
                p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"
            ]
        return procs

    async def db_stats(self) -> dict[str, Any]:
        if not self.pg_database:
            return {}
        import asyncpg

        conn = await asyncpg.connect(f"{harness.PG_ADMIN.rsplit('/', 1)[0]}/{self.pg_database}")
        try:
            row = await conn.fetchrow(
                "SELECT xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, "
                "tup_fetched, tup_inserted, tup_updated, tup_deleted, deadlocks, temp_bytes "
                "FROM pg_stat_database WHERE datname = $1",
                self.pg_database,
            )
            out: dict[str, Any] = {"pg_stat_database": dict(row) if row else {}}
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                rows = await conn.fetch(
                    "SELECT query, calls, total_exec_time, mean_exec_time FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) "
                    "ORDER BY total_exec_time DESC LIMIT 8",
                    self.pg_database,
                )
                out["pg_stat_statements"] = [
                    {"query": r["query"][:160], "calls": r["calls"],
                     "total_ms": round(r["total_exec_time"], 1),
                     "mean_ms": round(r["mean_exec_time"], 3)}
                    for r in rows
                ]  # fmt: skip
            except asyncpg.PostgresError as exc:
                out["pg_stat_statements"] = f"not available: {str(exc)[:120]}"
            return out
        finally:
            await conn.close()

    async def server_metrics(self) -> dict[str, dict[str, float]]:
        """Per server process: statement count and seconds by operation, sends stored."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, dict[str, float]] = {}
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            for i, port in enumerate(self.server_ports):
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/service/metrics")).text
                except httpx.HTTPError:
                    continue
                figures: dict[str, float] = {}
                for family in text_string_to_metric_families(text):
                    for s in family.samples:
                        if s.name in ("db_query_duration_seconds_count",
                                      "db_query_duration_seconds_sum"):  # fmt: skip
                            figures[f"{s.name.rsplit('_', 1)[1]}:{s.labels['operation']}"] = s.value
                        elif s.name == "db_query_duration_seconds_bucket":
                            op, le = s.labels["operation"], s.labels["le"]
                            figures[f"bucket:{op}:{le}"] = s.value
                        elif s.name in ("messages_total", "db_transaction_retries_total"):
                            figures[s.name + ":" + s.labels.get("reason", "")] = s.value
                out[f"server-{i + 1}"] = figures
        return out


async def _quiet(procs: dict[str, list[psutil.Process]], limit: float) -> float | None:
    """Waits until the deployment's processes use under a third of a core for 2 s in a row
    (the ramp's presence announcements done): the steady phase measures the steady state.
    Returns the seconds it took, or None when `limit` passed first."""
    members = [p for role, ps in procs.items() if not role.startswith("redis") for p in ps]
    started = time.monotonic()
    calm = 0.0
    before = _usage({"all": members})["all"]["cpu_s"]
    while time.monotonic() - started < limit:
        await asyncio.sleep(0.5)
        now = _usage({"all": members})["all"]["cpu_s"]
        calm = calm + 0.5 if now - before < 0.5 / 3 else 0.0
        before = now
        if calm >= 2.0:
            return round(time.monotonic() - started, 1)
    return None


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every process, every core)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _usage(procs: dict[str, list[psutil.Process]]) -> dict[str, dict[str, Any]]:
    out = {}
    for role, members in procs.items():
        cpu = rss = 0.0
        for p in members:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                cpu += t.user + t.system
                rss += (
                    p.memory_full_info().uss if role.startswith("postgres") else p.memory_info().rss
                )
        out[role] = {"cpu_s": cpu, "rss_mib": rss / (1 << 20), "pids": [p.pid for p in members]}
    return out


def _metrics_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                   seconds: float) -> dict[str, Any]:  # fmt: skip
    """Statements per second and their mean and p99 (from the histogram) by operation."""
    out: dict[str, Any] = {}
    for server, figures in after.items():
        base = before.get(server, {})
        d = {k: v - base.get(k, 0.0) for k, v in figures.items()}
        ops: dict[str, Any] = {}
        for key, count in d.items():
            if not key.startswith("count:") or count <= 0:
                continue
            op = key.split(":", 1)[1]
            buckets = sorted(
                ((float(k.rsplit(":", 1)[1]), v) for k, v in d.items()
                 if k.startswith(f"bucket:{op}:") and k.rsplit(":", 1)[1] != "+Inf"),
            )  # fmt: skip
            p99 = next((le for le, v in buckets if v >= 0.99 * count), None)
            ops[op] = {
                "per_s": round(count / seconds, 1),
                "mean_ms": round(d.get(f"sum:{op}", 0.0) / count * 1000, 3),
                "p99_le_ms": None if p99 is None else p99 * 1000,
            }
        out[server] = {
            "statements": ops,
            "messages_stored": d.get("messages_total:", 0.0),
            "write_conflicts": sum(v for k, v in d.items()
                                   if k.startswith("db_transaction_retries_total")),
        }  # fmt: skip
    return out


# One step: N people


async def _ask(conns: list[Any], command: str, arg: Any) -> list[Any]:
    loop = asyncio.get_running_loop()
    for c in conns:
        c.send((command, arg))
    answers = []
    for c in conns:
        kind, value = await loop.run_in_executor(None, c.recv)
        if kind != command:
            raise RuntimeError(f"a generator answered {kind} to {command}")
        answers.append(value)
    return answers


def generator_count(cfg: Config, n: int) -> int:
    return cfg.generators or max(1, math.ceil(n / 2500))


async def run_step(cfg: Config, n: int, say: Any) -> dict[str, Any]:
    deployment = Deployment(cfg)
    gens: list[tuple[Any, Any]] = []
    started = time.monotonic()
    try:
        t = time.monotonic()
        if cfg.plan:  # one share of a run from several machines: seeded already
            pop, url = load_plan(cfg.plan), None
            n = len(pop.people)
        else:
            url = await deployment.prepare()
            say(f"N={n}: seeding")
            pop = await seed_population(url, n, cfg, deployment.secret)
        seed_s = time.monotonic() - t
        if cfg.plan_out:
            save_plan(cfg.plan_out, pop)
            return {"people": n, "plan": str(cfg.plan_out), "seed_s": round(seed_s, 1)}
        say(f"N={n}: starting {deployment.kind} ({len(pop.chats)} chats)")
        await deployment.start()
        mine, machines = cfg.share
        shuffled = list(pop.people)
        random.Random(cfg.seed).shuffle(shuffled)
        shuffled = shuffled[mine::machines]
        g = generator_count(cfg, len(shuffled))
        ctx = multiprocessing.get_context("spawn")
        for i in range(g):
            share = Share(
                index=mine * 1000 + i, ws_urls=deployment.ws_urls,
                http_urls=deployment.http_urls, people=shuffled[i::g],
                ramp_per_s=cfg.ramp_per_s / g / machines, pace=cfg.pace, mix=dict(MIX),
                start_at=cfg.start_at,
            )  # fmt: skip
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=people.worker_main, args=(child, share), daemon=True)
            proc.start()
            gens.append((proc, parent))
        conns = [c for _p, c in gens]
        say(f"N={n}: ramp at {cfg.ramp_per_s:g}/s with {g} generator process(es)")
        loop = asyncio.get_running_loop()
        ramps = []
        for c in conns:
            _kind, value = await loop.run_in_executor(None, c.recv)
            ramps.append(value)
        procs = await deployment.processes()
        if cfg.start_at is None:
            await asyncio.sleep(cfg.settle_s)
            say(f"N={n}: waiting for the ramp's work to end (presence announcements)")
            result_quiet = await _quiet(procs, limit=cfg.quiet_limit_s)
        else:  # several machines: the steady phase starts on the shared clock
            result_quiet = None
            window_at = cfg.start_at + n / cfg.ramp_per_s + cfg.settle_s
            await asyncio.sleep(max(0.0, window_at - time.time()))
        procs.update({f"generator-{i + 1}": [psutil.Process(p.pid)] for i, (p, _c) in
                      enumerate(gens)})  # fmt: skip
        metrics0 = await deployment.server_metrics()
        db0 = await deployment.db_stats()
        use0, wall0, machine0 = _usage(procs), time.monotonic(), _machine_busy()
        say(f"N={n}: steady phase {cfg.steady_s:g} s (+{cfg.drain_s:g} s drain)")
        windows = await _ask(conns, "window", (cfg.steady_s, cfg.drain_s))
        wall = time.monotonic() - wall0
        if cfg.share[1] > 1:  # raw figures: `--merge` sums the shares of every machine
            await _ask_stop(conns)
            use = _usage(procs)
            return {
                "share": list(cfg.share),
                "ramps": ramps,
                "windows": windows,
                "wall": wall,
                "generators": {k: v for k, v in use.items() if k.startswith("generator")},
            }
        machine = (_machine_busy() - machine0) / wall
        procs.update({k: v for k, v in (await deployment.processes()).items()
                      if k.startswith("postgres")})  # fmt: skip
        use1 = _usage(procs)
        metrics1 = await deployment.server_metrics()
        db1 = await deployment.db_stats()
        last_seq = await _last_seqs(url) if url else {}
        result = _summarise(cfg, n, pop, ramps, windows, use0, use1, wall)
        result["seed_s"] = round(seed_s, 1)
        result["ramp"]["quiet_after_s"] = result_quiet
        # the machine's busy cores meanwhile, ours and everyone else's: a shared machine's
        # latencies carry the others' load (docs/capacity.md)
        ours = sum(u["cores"] for u in result["processes"].values())
        result["machine"] = {
            "busy_cores": round(machine, 2),
            "others_cores": round(max(0.0, machine - ours), 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        result["server_metrics"] = _metrics_delta(metrics0, metrics1, wall)
        result["database"] = _db_delta(db0, db1)
        result["consistency"] = _behind(windows, last_seq)
        if result["consistency"]["behind"] != 0:
            result["why"].append(f"{result['consistency']['behind']} person-chats behind")
            result["passed"] = False
        if cfg.storm and url:
            say(f"N={n}: reconnect storm (restarting {deployment.kind})")
            result["storm"] = await _storm(cfg, deployment, conns, url)
        await _ask_stop(conns)
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        return result
    finally:
        for proc, conn in gens:
            with contextlib.suppress(Exception):
                conn.send(("stop", None))
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        await deployment.stop()


async def _ask_stop(conns: list[Any]) -> None:
    with contextlib.suppress(Exception):
        await _ask(conns, "stop", None)


async def _last_seqs(url: str) -> dict[int, int]:
    from sqlalchemy import select

    from parley.server.db.models import Chat
    from parley.server.db.session import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(Chat.id, Chat.last_seq))
            return {r[0]: r[1] for r in rows}
    finally:
        await engine.dispose()


def _behind(shares: list[dict[str, Any]], last_seq: dict[int, int]) -> dict[str, Any]:
    """Person-chats whose last seen seq is short of the chat's: messages someone lost."""
    behind = checked = 0
    for share in shares:
        absent = set(share.get("absent", ()))
        for user, seen in share["seen"].items():
            if user in absent:
                continue
            for chat, seq in seen.items():
                checked += 1
                if seq < last_seq.get(int(chat), 0):
                    behind += 1
        share.pop("seen")
    return {"person_chats": checked, "behind": behind}


def _db_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    if not after:
        return {"note": "SQLite: statement timing is under server_metrics"}
    a, b = after.get("pg_stat_database", {}), before.get("pg_stat_database", {})
    return {
        "pg_stat_database": {k: (v - b.get(k, 0)) for k, v in a.items()},
        "pg_stat_statements": after.get("pg_stat_statements"),
    }


def _summarise(cfg: Config, n: int, pop: Population, ramps: list[dict[str, Any]],
               windows: list[dict[str, Any]], use0: dict[str, Any], use1: dict[str, Any],
               wall: float) -> dict[str, Any]:  # fmt: skip
    hists: dict[str, Hist] = {}
    errors: Counter[str] = Counter()
    events: Counter[str] = Counter()
    sent: dict[str, int] = {}
    received: Counter[str] = Counter()
    for w in windows:
        for k, h in w["hists"].items():
            hists.setdefault(k, Hist()).merge(h)
        errors.update(w["errors"])
        events.update(w["events"])
        sent.update(w["sent"])
        received.update(w["received"])
    # people whose socket never opened (the step fails for it) are not expected to receive
    absent = {u for w in windows for u in w.get("absent", ())}
    receivers = {c: len(set(m) - absent) - 1 for c, m in pop.chats.items()}
    expected = sum(receivers[int(chat)] for chat in sent.values())
    got = sum(min(received.get(k, 0), receivers[int(c)]) for k, c in sent.items())
    ramp_fail: Counter[str] = Counter()
    ramp_refused: Counter[str] = Counter()
    for r in ramps:
        ramp_fail.update(r["failures"])
        ramp_refused.update(r.get("refused_then_retried", {}))
    processes = {
        role: {
            "cores": round((use1[role]["cpu_s"] - use0[role]["cpu_s"]) / wall, 3),
            "rss_mib": round(use1[role]["rss_mib"], 1),
        }
        for role in use1 if role in use0
    }  # fmt: skip
    actions = {a: hists[a].summary() for a in ACTIONS if a in hists}
    why = []
    for action, limit in THRESHOLDS_MS.items():
        p99 = actions.get(action, {}).get("p99_ms")
        if p99 is None:
            why.append(f"no {action} measured")
        elif p99 > limit:
            why.append(f"{action} p99 {p99} ms > {limit:g}")
    if errors:
        why.append(f"{sum(errors.values())} errors")
    if ramp_fail:
        why.append(f"{sum(ramp_fail.values())} sockets not opened")
    if expected - got:
        why.append(f"{expected - got} deliveries lost")
    saturated = [w["index"] for w in windows if w["saturated"]]
    parley = [r for r in processes if r.startswith(("gateway", "server", "postgres"))]
    cores = sum(processes[r]["cores"] for r in parley)
    app_rss = sum(processes[r]["rss_mib"] for r in parley)
    return {
        "people": n,
        "active": sum(1 for p in pop.people if p[2]),
        "chats": dict(pop.kinds),
        "generators": len(windows),
        "ramp": {
            "rate_per_s": cfg.ramp_per_s,
            "seconds": max(r["seconds"] for r in ramps),
            "opened": sum(r["opened"] for r in ramps),
            "failures": dict(ramp_fail),
            "refused_then_retried": dict(ramp_refused),
            "handshake_p99_ms": max((r["handshake"]["p99_ms"] or 0) for r in ramps),
        },
        "steady_s": round(wall, 1),
        "actions": actions,
        "errors": dict(errors),
        "events": dict(events),
        "deliveries": {
            "messages": len(sent),
            "expected": expected,
            "received": got,
            "lost": expected - got,
        },
        "processes": processes,
        "parley_cores": round(cores, 3),
        "parley_rss_mib": round(app_rss, 1),
        "people_per_core_used": round(n / cores) if cores > 0 else None,
        "mb_per_thousand_people": round(app_rss / (n / 1000), 1) if app_rss else None,
        "generator": [
            {
                k: w[k]
                for k in (
                    "index",
                    "people",
                    "cpu_share",
                    "loop_lag_p99_ms",
                    "loop_lag_max_ms",
                    "saturated",
                    "rss_mib",
                )
            }
            for w in windows
        ],
        "valid": not saturated,
        "passed": not why and not saturated,
        "why": why + ([f"generator(s) {saturated} saturated: no verdict"] if saturated else []),
    }


async def _storm(cfg: Config, deployment: Deployment, conns: list[Any], url: str) -> dict[str, Any]:
    for c in conns:  # the generators watch from before the restart
        c.send(("storm", cfg.storm_timeout_s + 90))
    began = time.time()
    await deployment.stop_processes()
    stopped = time.time()
    await deployment.start()
    healthy = time.time()
    loop = asyncio.get_running_loop()
    answers = []
    for c in conns:
        _kind, value = await loop.run_in_executor(None, c.recv)
        answers.append(value)
    last_seq = await _last_seqs(url)
    closed = sum(a["closed"] for a in answers)
    back = sum(a["back"] for a in answers)
    last_back = max((a["last_back_at"] for a in answers if a["last_back_at"]), default=None)
    errors: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for a in answers:
        errors.update(a["errors"])
        events.update(a["events"])
    consistency = _behind(answers, last_seq)
    return {
        "clients": closed,
        "back_and_synced": back,
        "restart_s": round(healthy - began, 2),
        "stop_s": round(stopped - began, 2),
        "all_back_after_restart_began_s": None
        if last_back is None
        else round(last_back - began, 2),
        "all_back_after_healthy_s": None if last_back is None else round(last_back - healthy, 2),
        "max_attempts": max((a["attempts_max"] for a in answers), default=0),
        "errors": dict(errors),
        "events": {k: v for k, v in events.items() if k.startswith(("reconnect", "closed"))},
        "consistency": consistency,
        "passed": closed > 0 and back == closed and consistency["behind"] == 0,
    }


# The report


def render(report: dict[str, Any]) -> str:
    cols = ("delivery", "send", "history", "search", "read", "react", "reconnect", "ping")
    head = "| N | active | " + " | ".join(f"{c} p99" for c in cols)
    head += " | errors | lost | Parley cores | Parley RSS MiB"
    head += " | generators (max core, lag p99) | verdict |"
    lines = [head, "|" + "---|" * (len(cols) + 8)]
    for s in report["steps"]:
        p99 = [str((s["actions"].get(c) or {}).get("p99_ms", "–")) for c in cols]
        gen = s["generator"]
        gens = f"{len(gen)} ({max(g['cpu_share'] for g in gen):.2f}, " + \
            f"{max(g['loop_lag_p99_ms'] for g in gen):.0f} ms)"  # fmt: skip
        verdict = "pass" if s["passed"] else ("no verdict" if not s["valid"] else "FAIL")
        lines.append(
            f"| {s['people']} | {s['active']} | "
            + " | ".join(p99)
            + f" | {sum(s['errors'].values())} | {s['deliveries']['lost']} | "
            f"{s['parley_cores']} | {s['parley_rss_mib']} | {gens} | {verdict} |"
        )
    lines += ["", "| N | process | cores (steady) | RSS MiB |", "|---|---|---|---|"]
    for s in report["steps"]:
        if "machine" in s:
            others = s["machine"]["others_cores"]
            lines.append(f"| {s['people']} | (the rest of the machine) | {others} | |")
        for role, u in s["processes"].items():
            lines.append(f"| {s['people']} | {role} | {u['cores']} | {u['rss_mib']} |")
    for s in report["steps"]:
        if s["why"]:
            lines.append(f"\nN={s['people']}: " + "; ".join(s["why"]))
        if "storm" in s:
            st = s["storm"]
            lines.append(
                f"\nreconnect storm, {st['clients']} clients: {st['back_and_synced']} back and "
                f"synced {st['all_back_after_healthy_s']} s after the server answered again "
                f"({st['all_back_after_restart_began_s']} s after the restart began); "
                f"{st['consistency']['behind']} person-chats behind"
            )
    summary = report["summary"]
    lines.append(
        f"\nlargest N passed: {summary['largest_n']}; people per core used: "
        f"{summary['people_per_core_used']}; people per machine core: "
        f"{summary['people_per_machine_core']}; MB per thousand people: "
        f"{summary['mb_per_thousand_people']} (marginal {summary['marginal_mb_per_thousand']})"
    )
    return "\n".join(lines)


def summarise(steps: list[dict[str, Any]]) -> dict[str, Any]:
    passed = [s for s in steps if s["passed"]]
    best = max(passed, key=lambda s: s["people"], default=None)
    marginal = None
    if len(passed) >= 2:
        a, b = sorted(passed, key=lambda s: s["people"])[-2:]
        marginal = round((b["parley_rss_mib"] - a["parley_rss_mib"])
                         / ((b["people"] - a["people"]) / 1000), 1)  # fmt: skip
    return {
        "largest_n": best["people"] if best else None,
        "people_per_core_used": best["people_per_core_used"] if best else None,
        "people_per_machine_core": round(best["people"] / (os.cpu_count() or 1)) if best else None,
        "mb_per_thousand_people": best["mb_per_thousand_people"] if best else None,
        "marginal_mb_per_thousand": marginal,
        "thresholds_ms": THRESHOLDS_MS,
    }


async def run(cfg: Config, quiet: bool) -> dict[str, Any]:
    harness.raise_nofile()

    def say(text: str) -> None:
        if not quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    started = time.monotonic()
    steps = []
    for i, n in enumerate(cfg.steps):
        last = i == len(cfg.steps) - 1
        step_cfg = cfg if last else _without_storm(cfg)
        result = await run_step(step_cfg, n, say)
        steps.append(result)
        say(f"N={n}: {'pass' if result['passed'] else 'FAIL: ' + '; '.join(result['why'])}")
        if not result["passed"] and not cfg.all_steps:
            break
    return {
        "kind": "loadtest",
        "deployment": "connect" if cfg.connect else cfg.deployment,
        "config": {**asdict(cfg), "mix_per_active_person_per_min": MIX},
        "steps": steps,
        "summary": summarise(steps),
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _without_storm(cfg: Config) -> Config:
    from dataclasses import replace

    return replace(cfg, storm=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--deployment", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--people", default="500,1000,2000",
                        help="the numbers of people to step through, comma-separated")  # fmt: skip
    parser.add_argument("--active", type=float, default=0.1, help="the active share (0.1)")
    parser.add_argument("--ramp", type=float, default=200, help="sockets opened per second")
    parser.add_argument("--steady", type=float, default=60, help="seconds of steady phase")
    parser.add_argument("--drain", type=float, default=5)
    parser.add_argument("--settle", type=float, default=5, help="seconds between ramp and steady")
    parser.add_argument("--pace", type=float, default=1.0,
                        help="run the mix this many times faster (short runs)")  # fmt: skip
    parser.add_argument("--generators", type=int, default=None,
                        help="generator processes (default: one per 2,500 people)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="server processes on PostgreSQL")
    parser.add_argument(
        "--gateways", type=int, default=1,
        help="gateway processes sharing the port (parley serve --gateways; each relayed "
        "socket takes two file descriptors in its gateway)",
    )  # fmt: skip
    parser.add_argument("--history", type=int, default=30, help="messages seeded per chat")
    parser.add_argument(
        "--storm",
        action="store_true",
        help="after the last step: restart, everyone reconnects and syncs",
    )
    parser.add_argument("--connect", default="",
                        help="gateways already running (http://host:port, comma-separated): "
                             "measure them; needs --database-url and JWT_SECRET")  # fmt: skip
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--all-steps",
        action="store_true",
        help="run every N even after one failed (CPU and memory at each; a noisy machine)",
    )
    parser.add_argument(
        "--plan-out",
        type=Path,
        default=None,
        help="several machines: seed (one N), write the population, stop",
    )
    parser.add_argument(
        "--plan", type=Path, default=None, help="several machines: the population --plan-out wrote"
    )
    parser.add_argument(
        "--share", default="1/1", help="several machines: this one runs share I of M people (I/M)"
    )
    parser.add_argument(
        "--start-at",
        type=float,
        default=None,
        help="several machines: the shared start, epoch seconds",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=None,
        help="several machines: merge the shares' outputs into one report",
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    cfg = Config(
        deployment=args.deployment, steps=[int(x) for x in args.people.split(",") if x],
        active=args.active, ramp_per_s=args.ramp, steady_s=args.steady, drain_s=args.drain,
        settle_s=args.settle, pace=args.pace, generators=args.generators,
        history_per_chat=args.history, storm=args.storm,
        connect=[u.rstrip("/") for u in args.connect.split(",") if u],
        database_url=args.database_url, workers=args.workers, gateways=args.gateways,
        all_steps=args.all_steps,
        plan=args.plan, plan_out=args.plan_out, start_at=args.start_at,
        share=(int(args.share.split("/")[0]) - 1, int(args.share.split("/")[1])),
    )  # fmt: skip
    import uvloop

    if args.plan_out or cfg.share[1] > 1 or args.merge is not None:
        return _several_machines(cfg, args)
    try:
        report = uvloop.run(run(cfg, args.quiet))
    except KeyboardInterrupt:
        print("\ninterrupted: every process the load test started is stopped", file=sys.stderr)
        return 130
    out = (
        args.output
        or RESULTS / f"loadtest-{report['deployment']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report))
    print(f"\n{report['elapsed_s']} s; load average at the end {report['load_average_1m_at_end']} "
          f"on {report['cpus']} CPUs; written to {out}")  # fmt: skip
    return 0


def _several_machines(cfg: Config, args: argparse.Namespace) -> int:
    """--plan-out (seed once), --share I/M (one machine's people), --merge (the report)."""
    import uvloop

    if args.merge is not None:
        step = uvloop.run(merge(cfg, args.merge))
        report = {
            "kind": "loadtest", "deployment": "connect", "steps": [step],
            "summary": summarise([step]), "config": asdict(cfg), "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2), "elapsed_s": 0,
        }  # fmt: skip
        text = render(report)
    else:
        if not cfg.connect:
            raise SystemExit("--plan-out and --share need --connect (the gateways)")
        n = cfg.steps[0]
        report = uvloop.run(run_step(cfg, n, lambda t: print(t, file=sys.stderr)))
        text = f"written: {args.output}"
    if args.output is None:
        raise SystemExit("--output is required with --plan-out, --share and --merge")
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
