#!/usr/bin/env python3
"""`make health` and `make stats`: what a running Parley says about itself, readably.

    python deploy/scripts/status.py health|stats [GATEWAY_URL] [SERVER_URL]

health: the gateway's /health (its upstreams) and the server's /health (database, broker,
storage). stats: /stats (users, chats, messages, sockets, uptime) and the main counters
of the server's /service/metrics. Exit code 1 when something is down.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT = 5.0


def _get(url: str) -> tuple[int | None, Any]:
    try:
        response = httpx.get(url, timeout=TIMEOUT, trust_env=False)
    except httpx.HTTPError as exc:
        return None, f"unreachable ({type(exc).__name__})"
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def health(gateway: str, server: str) -> int:
    failures = 0
    for role, url in (("gateway", gateway), ("server", server)):
        status, body = _get(url.rstrip("/") + "/health")
        if status is None:
            print(f"{role:8} {url:32} DOWN  {body}")
            failures += 1
            continue
        state = body.get("status", "?") if isinstance(body, dict) else "?"
        ok = status == 200
        failures += not ok
        print(f"{role:8} {url:32} {'ok  ' if ok else 'FAIL'}  HTTP {status}, status {state}")
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        for name, value in checks.items():
            if isinstance(value, list):
                value = ", ".join(f"{u.get('name')}={u.get('status')}" for u in value)
            print(f"{'':8}   {name:16} {value}")
    return 1 if failures else 0


_METRICS = (
    ("messages_total", "messages stored since start"),
    ("websocket_connections_active", "open WebSockets"),
    ("app_request_total", "HTTP requests handled"),
    ("app_error_total", "errors answered"),
    ("db_transaction_retries_total", "transaction retries"),
    ("db_pool_connections_in_use", "DB connections in use"),
    ("db_pool_connections_waiting", "waiting for a DB connection"),
    ("process_resident_memory_bytes", "resident memory (bytes)"),
)


def stats(gateway: str, server: str) -> int:
    status, body = _get(gateway.rstrip("/") + "/stats")
    if status != 200 or not isinstance(body, dict):
        print(f"/stats at {gateway}: {status or ''} {body}")
        return 1
    print(f"Parley at {gateway}")
    for key in ("users", "chats", "messages", "connections", "uptime_seconds"):
        print(f"  {key:28} {body.get(key)}")
    try:
        text = httpx.get(server.rstrip("/") + "/service/metrics", timeout=TIMEOUT,
                         trust_env=False)  # fmt: skip
        text.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"(server metrics at {server} not readable: {type(exc).__name__})")
        return 0
    totals: dict[str, float] = {}
    latency: dict[str, float] = {}
    for family in text_string_to_metric_families(text.text):
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created"):
                continue
            totals[name] = totals.get(name, 0.0) + sample.value
            if name == "message_processing_time_seconds_sum":
                latency["sum"] = sample.value
            if name == "message_processing_time_seconds_count":
                latency["count"] = sample.value
    print(f"Server metrics at {server}")
    for name, label in _METRICS:
        if name in totals:
            print(f"  {label:28} {totals[name]:.0f}")
    if latency.get("count"):
        mean = latency["sum"] / latency["count"] * 1000
        print(f"  {'mean message processing':28} {mean:.2f} ms")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("health", "stats"):
        print(__doc__)
        return 2
    gateway = argv[2] if len(argv) > 2 else "http://127.0.0.1:8080"
    server = argv[3] if len(argv) > 3 else "http://127.0.0.1:5000"
    return health(gateway, server) if argv[1] == "health" else stats(gateway, server)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
