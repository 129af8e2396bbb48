"""Which WebSocket stack: the ceiling under each ASGI server / WebSocket implementation,
and the load generator's client library, measured the same way.

  python -m bench.wsimpl    (first: pip install -e '.[bench]' for granian, hypercorn, wsproto)

For each server: the saturate scenario (100 members, 5 senders, 10 in flight each) for a
few seconds; deliveries/s and the server's CPU per delivery. Then the client libraries:
the bench process's CPU per received frame with picows and with websockets.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time
from typing import Any

import orjson
import psutil
import uvloop
import websockets

from bench import harness, loadgen

STACKS = [
    ("uvicorn", "websockets-sansio"),
    ("uvicorn", "websockets"),
    ("uvicorn", "wsproto"),
    ("granian", "-"),
    ("hypercorn", "-"),
]
SECONDS = float(os.environ.get("BENCH_WSIMPL_SECONDS", "6"))


def _available(server: str, ws: str) -> bool:
    module = {"granian": "granian", "hypercorn": "hypercorn"}.get(server) or (
        "wsproto" if ws == "wsproto" else "websockets"
    )
    return importlib.util.find_spec(module) is not None


async def server_row(server: str, ws: str) -> dict[str, Any]:
    stack = harness.Stack("wsimpl")
    try:
        proc = await harness.start_ceiling(stack, ws=ws if ws != "-" else "auto", server=server)
        target = loadgen.Target("ceiling", [proc.ws_url], proc.url)
        cpu = proc.cpu()
        result = await loadgen.saturate(
            target, list(range(1, 101)), 1, senders=5, window=10, duration=SECONDS,
            progress=lambda _t: None,
        )  # fmt: skip
        used = proc.cpu() - cpu
        deliveries = result["deliveries_per_s"] * SECONDS
        return {
            "server": server, "ws": ws, "deliveries_per_s": result["deliveries_per_s"],
            "delivery_p99_ms": result["delivery_p99_ms"],
            "server_cpu_us_per_delivery": round(used * 1e6 / max(1.0, deliveries), 2),
            "idle_rss_mib": round(proc.rss_mib(), 1),
        }  # fmt: skip
    finally:
        await stack.stop()


async def client_rows() -> list[dict[str, Any]]:
    """CPU the bench itself spends per received frame, picows vs websockets."""
    stack = harness.Stack("wsclient")
    me = psutil.Process()
    rows = []
    try:
        proc = await harness.start_ceiling(stack)
        for library in ("picows", "websockets"):
            receivers = 50
            frames = 0

            async def websockets_reader(ws: Any) -> None:
                nonlocal frames
                async for data in ws:
                    orjson.loads(data)
                    frames += 1

            base = proc.ws_url + "?user={}&chats=1"
            if library == "websockets":
                sockets = [
                    await websockets.connect(base.format(i), compression=None)
                    for i in range(receivers)
                ]
                for ws in sockets:
                    await ws.recv()
                readers = [asyncio.create_task(websockets_reader(ws)) for ws in sockets]
                run = None
            else:
                run = loadgen.Run()
                clients, _ = await loadgen.connect_all(
                    loadgen.Target("ceiling", [proc.ws_url], proc.url, {}),
                    run, [(i, [1], False) for i in range(receivers)],
                )  # fmt: skip
            sender = await websockets.connect(base.format(999), compression=None)
            await sender.recv()
            cpu = sum(me.cpu_times()[:2])
            started = time.perf_counter()
            for n in range(2000):
                frame = {"type": "send", "chat_id": 1, "content": f"c{n}", "client_id": f"c{n}"}
                await sender.send(orjson.dumps(frame).decode())
                await sender.recv()
            await asyncio.sleep(1)
            got = frames if run is None else run.frames
            used = sum(me.cpu_times()[:2]) - cpu
            rows.append({
                "client": library, "frames": got,
                "client_cpu_us_per_frame": round(used * 1e6 / max(1, got), 2),
                "seconds": round(time.perf_counter() - started, 2),
            })  # fmt: skip
            await sender.close()
            if run is None:
                for task in readers:
                    task.cancel()
                for ws in sockets:
                    await ws.close()
            else:
                loadgen.close_all(clients)
    finally:
        await stack.stop()
    return rows


async def main() -> None:
    harness.raise_nofile()
    rows = []
    for server, ws in STACKS:
        if not _available(server, ws):
            print(f"{server}/{ws}: not installed, skipped")
            continue
        print(f"{server}/{ws} …", flush=True)
        try:
            rows.append(await server_row(server, ws))
        except Exception as exc:
            print(f"  failed: {exc}")
    clients = await client_rows()
    print("\n| server | ws | deliveries/s | p99 ms | server CPU µs/delivery | RSS MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['server']} | {r['ws']} | {r['deliveries_per_s']} | {r['delivery_p99_ms']} | "
            f"{r['server_cpu_us_per_delivery']} | {r['idle_rss_mib']} |"
        )
    print("\n| load generator client | frames | its CPU µs/frame |")
    print("|---|---|---|")
    for c in clients:
        print(f"| {c['client']} | {c['frames']} | {c['client_cpu_us_per_frame']} |")
    out = harness.ROOT / "bench" / "results" / "wsimpl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"servers": rows, "clients": clients}, indent=2) + "\n")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; written to {out}")


if __name__ == "__main__":
    uvloop.run(main())
