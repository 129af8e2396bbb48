"""Gateway overhead: p50/p99 of sequential GETs straight to an upstream vs through the gateway.

Starts a small upstream process and a real `parley gateway` process on loopback, then sends
N sequential requests to each with a keep-alive client. Writes bench/results/gateway_latency.json.
Usage: python bench/gateway_latency.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gateway_latency.json"
SECRET = "bench-secret-" + "0123456789abcdef" * 3
MAX_REQUESTS = 20000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_upstream(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "path": request.url.path})

    routes = [Route("/health", ping), Route("/service/api/ping", ping)]
    uvicorn.run(
        Starlette(routes=routes), host="127.0.0.1", port=port, loop="uvloop",
        http="httptools", log_level="warning", access_log=False,
    )  # fmt: skip


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def _measure(url: str, headers: dict[str, str], count: int) -> list[float]:
    timings = []
    with httpx.Client(trust_env=False, timeout=10, headers=headers) as client:
        for _ in range(min(200, count)):  # warm-up: connections, caches
            client.get(url).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), load-independent cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50_ms": round(pick(0.50), 3),
        "p90_ms": round(pick(0.90), 3),
        "p99_ms": round(pick(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "max_ms": round(ordered[-1], 3),
    }


def _token() -> str:
    sys.path.insert(0, str(ROOT))
    from parley.security import make_access_token

    return make_access_token(SECRET, user_id=1, session_id="0" * 32, ttl_seconds=3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        _serve_upstream(args.serve_upstream)
        return 0
    count = max(1, min(args.requests, MAX_REQUESTS))
    up_port, gw_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "JWT_SECRET": SECRET,
            "PARLEY_DATA_DIR": data,
            "PARLEY_RATE_USER": "1000000/second",
            "LOG_LEVEL": "info",
        }
        for key in ("REDIS_URL", "REDIS_HOST", "PARLEY_UPSTREAMS"):
            env.pop(key, None)
        upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)])
        gateway = subprocess.Popen(
            [sys.executable, "-m", "parley.cli", "gateway", "--gateway-port", str(gw_port),
             "--upstream", f"http://127.0.0.1:{up_port}"],
            env=env, stderr=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        try:
            _wait(f"http://127.0.0.1:{up_port}/health", upstream)
            _wait(f"http://127.0.0.1:{gw_port}/health", gateway)
            auth = {"Authorization": f"Bearer {_token()}"}
            direct = _measure(f"http://127.0.0.1:{up_port}/service/api/ping", auth, count)
            cpu_before = _cpu_seconds(gateway.pid)
            proxied = _measure(f"http://127.0.0.1:{gw_port}/service/api/ping", auth, count)
            cpu_ms = (_cpu_seconds(gateway.pid) - cpu_before) * 1000 / (count + min(200, count))
        finally:
            for process in (gateway, upstream):
                process.send_signal(signal.SIGTERM)
                process.wait(15)
    report = {
        "benchmark": "gateway_latency",
        "requests": count,
        "sequential": True,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "gateway_cpu_ms_per_request": round(cpu_ms, 3),
        "direct": _summary(direct),
        "proxied": _summary(proxied),
    }
    report["overhead_p50_ms"] = round(report["proxied"]["p50_ms"] - report["direct"]["p50_ms"], 3)
    report["overhead_p99_ms"] = round(report["proxied"]["p99_ms"] - report["direct"]["p99_ms"], 3)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{count} sequential GETs, keep-alive, loopback")
    print(f"{'path':<10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for name in ("direct", "proxied"):
        s = report[name]
        print(
            f"{name:<10}{s['p50_ms']:>10.3f}{s['p90_ms']:>10.3f}{s['p99_ms']:>10.3f}"
            f"{s['mean_ms']:>10.3f}{s['max_ms']:>10.3f}"
        )
    overhead = f"p50 +{report['overhead_p50_ms']} ms, p99 +{report['overhead_p99_ms']} ms"
    print(f"gateway overhead: {overhead}")
    print(f"gateway CPU per request: {report['gateway_cpu_ms_per_request']} ms")
    print(f"load average during the run: {report['load_average_1m']} on {os.cpu_count()} CPUs")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
