"""`make bench`: a bounded load benchmark of the message send path, on loopback only.

Starts a real `parley server` (SQLite by default, or BENCH_DATABASE_URL) in a subprocess,
registers users, opens WebSockets, then sends messages over the WebSocket and measures:
send → acknowledgement latency, send → delivery latency to every other member, throughput,
and the server's resident memory. Prints a table and writes bench/results/send_path.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

RESULTS = Path(__file__).with_name("results")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _wait_healthy(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(base + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become healthy")


async def _register(http: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    users = []
    for _ in range(n):
        name = "b" + uuid.uuid4().hex[:10]
        r = await http.post(
            "/service/api/register",
            json={"username": name, "email": f"{name}@example.com", "password": "benchmark-pass"},
        )
        r.raise_for_status()
        users.append(r.json())
    return users


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    data = tempfile.mkdtemp(prefix="parley-bench-")
    env = {
        **os.environ,
        "PARLEY_DATA_DIR": data,
        "PORT": str(port),
        "PARLEY_RATE_SEND": "100000/second",
        "LOG_LEVEL": "warning",
    }
    if os.environ.get("BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
    proc = subprocess.Popen([sys.executable, "-m", "parley.cli", "server"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(base)
        return await _measure(base, proc.pid, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


async def _measure(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        users = await _register(http, args.members)
        owner = users[0]
        headers = {"Authorization": f"Bearer {owner['access_token']}"}
        chat = (
            await http.post(
                "/service/api/chats",
                json={
                    "type": "group",
                    "title": "bench",
                    "member_ids": [u["user"]["id"] for u in users[1:]],
                },
                headers=headers,
            )
        ).json()
    rss_idle = _rss_mib(pid)
    sockets = [
        await websockets.connect(
            base.replace("http", "ws") + "/service/ws",
            additional_headers={"Authorization": f"Bearer {u['access_token']}"},
        )
        for u in users
    ]
    for ws in sockets:
        await ws.recv()  # hello
    sent_at: dict[str, float] = {}
    ack: list[float] = []
    delivery: list[float] = []
    expected = args.messages * (len(sockets) - 1)

    async def reader(ws: Any, is_sender: bool) -> None:
        seen = 0
        target = args.messages
        while seen < target:
            frame = json.loads(await ws.recv())
            if frame["type"] != "message" or frame["message"]["chat_id"] != chat["id"]:
                continue
            seen += 1
            started = sent_at[frame["message"]["client_id"]]
            (ack if is_sender else delivery).append(time.perf_counter() - started)

    readers = [asyncio.create_task(reader(ws, i == 0)) for i, ws in enumerate(sockets)]
    began = time.perf_counter()
    cpu_before = _cpu_seconds(pid)
    for n in range(args.messages):
        client_id = f"bench-{n}"
        sent_at[client_id] = time.perf_counter()
        await sockets[0].send(
            json.dumps(
                {
                    "type": "send",
                    "chat_id": chat["id"],
                    "content": f"message {n}",
                    "client_id": client_id,
                }
            )
        )
        if args.window and n % args.window == args.window - 1:
            while len(ack) < n + 1 - args.window // 2:
                await asyncio.sleep(0.001)
    await asyncio.wait_for(asyncio.gather(*readers), timeout=300)
    elapsed = time.perf_counter() - began
    server_cpu = _cpu_seconds(pid) - cpu_before
    rss_busy = _rss_mib(pid)
    for ws in sockets:
        await ws.close()
    return {
        "database": "postgresql" if os.environ.get("BENCH_DATABASE_URL") else "sqlite",
        "members": args.members,
        "messages": args.messages,
        "deliveries": len(delivery),
        "expected_deliveries": expected,
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(args.messages / elapsed, 1),
        "deliveries_per_s": round(len(delivery) / elapsed, 1),
        "ack_p50_ms": round(_pct(ack, 0.5) * 1000, 2),
        "ack_p99_ms": round(_pct(ack, 0.99) * 1000, 2),
        "delivery_p50_ms": round(_pct(delivery, 0.5) * 1000, 2),
        "delivery_p99_ms": round(_pct(delivery, 0.99) * 1000, 2),
        "delivery_mean_ms": round(statistics.fmean(delivery) * 1000, 2) if delivery else None,
        "server_cpu_ms_per_message": round(server_cpu / args.messages * 1000, 2),
        "server_rss_idle_mib": round(rss_idle, 1),
        "server_rss_after_mib": round(rss_busy, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--members", type=int, default=int(os.environ.get("BENCH_MEMBERS", 20)))
    parser.add_argument("--messages", type=int, default=int(os.environ.get("BENCH_MESSAGES", 1000)))
    parser.add_argument("--window", type=int, default=50, help="max messages in flight")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "send_path.json"
    out.write_text(json.dumps(result, indent=2))
    width = max(len(k) for k in result)
    print("\nParley send-path benchmark")
    print("-" * (width + 16))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 16))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
