"""Writes the four Grafana dashboards (dashboards/*.json) from the panel lists below.

Edit here, then `python3 deploy/grafana/generate.py`. Every query uses only metrics a
running Parley (server /service/metrics, gateway /metrics) or the stack's exporters
(postgres_exporter, redis_exporter, node_exporter) expose; `make test` evaluates each one
against a real Prometheus scraping a real Parley.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"
SEL = 'instance=~"$instance"'

Panel = tuple[str, str, list[tuple[str, str]], str]  # title, kind, [(expr, legend)], unit


def ts(title: str, unit: str, *targets: tuple[str, str]) -> Panel:
    return (title, "timeseries", list(targets), unit)


def stat(title: str, unit: str, *targets: tuple[str, str]) -> Panel:
    return (title, "stat", list(targets), unit)


OVERVIEW: list[Panel] = [
    stat("Parley processes up", "none", ('sum(up{job=~"parley-.*"})', "up")),
    stat("Messages stored (total)", "none", ("sum(messages_total)", "messages")),
    stat("Open WebSockets", "none", ("sum(websocket_connections_active)", "sockets")),
    stat("Oldest process uptime", "s", ("max(app_uptime_seconds)", "uptime")),
    ts(
        "Server requests per second by status",
        "reqps",
        (f"sum by (status) (rate(app_request_total{{{SEL}}}[{RI}]))", "{{status}}"),
    ),
    ts(
        "Gateway requests per second by route",
        "reqps",
        (f"sum by (route) (rate(gateway_request_total[{RI}]))", "{{route}}"),
    ),
    ts(
        "Server error ratio (5xx / all)",
        "percentunit",
        (
            f'(sum(rate(app_request_total{{status=~"5..",{SEL}}}[{RI}])) or vector(0))'
            f" / clamp_min(sum(rate(app_request_total{{{SEL}}}[{RI}])), 1e-9)",
            "5xx ratio",
        ),
    ),
    ts(
        "Errors answered by code",
        "reqps",
        (f"sum by (code) (rate(app_error_total{{{SEL}}}[{RI}]))", "{{code}}"),
    ),
    ts(
        "Gateway request latency (p50, p99, HTTP)",
        "s",
        (
            "histogram_quantile(0.5, sum by (le) "
            f'(rate(gateway_request_duration_seconds_bucket{{method!="WS"}}[{RI}])))',
            "p50",
        ),
        (
            "histogram_quantile(0.99, sum by (le) "
            f'(rate(gateway_request_duration_seconds_bucket{{method!="WS"}}[{RI}])))',
            "p99",
        ),
    ),
    ts(
        "Messages per second",
        "ops",
        (f"sum(rate(messages_total{{{SEL}}}[{RI}]))", "messages/s"),
    ),
    ts(
        "Message processing time (validate, store, publish)",
        "s",
        (
            "histogram_quantile(0.5, sum by (le) "
            f"(rate(message_processing_time_seconds_bucket{{{SEL}}}[{RI}])))",
            "p50",
        ),
        (
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(message_processing_time_seconds_bucket{{{SEL}}}[{RI}])))",
            "p99",
        ),
    ),
    ts(
        "Requests refused by rate limits",
        "reqps",
        (
            f"sum by (route, scope) (rate(gateway_rate_limit_blocked_total[{RI}]))",
            "{{scope}} {{route}}",
        ),
    ),
    ts(
        "Busiest users (requests/s, top 10)",
        "reqps",
        (f"topk(10, sum by (user) (rate(gateway_user_request_total[{RI}])))", "user {{user}}"),
    ),
    stat("Versions running", "none", ("count by (version) (app_info)", "{{version}}")),
]

DATABASE: list[Panel] = [
    ts(
        "Query time p99 by operation",
        "s",
        (
            "histogram_quantile(0.99, sum by (le, operation) "
            f"(rate(db_query_duration_seconds_bucket{{{SEL}}}[{RI}])))",
            "{{operation}}",
        ),
    ),
    ts(
        "Queries per second by operation",
        "ops",
        (
            f"sum by (operation) (rate(db_query_duration_seconds_count{{{SEL}}}[{RI}]))",
            "{{operation}}",
        ),
    ),
    ts(
        "Mean query time by operation",
        "s",
        (
            f"sum by (operation) (rate(db_query_duration_seconds_sum{{{SEL}}}[{RI}]))"
            f" / clamp_min(sum by (operation) (rate(db_query_duration_seconds_count"
            f"{{{SEL}}}[{RI}])), 1e-9)",
            "{{operation}}",
        ),
    ),
    ts(
        "Pool connections in use / waiting (per server)",
        "none",
        (f"sum by (instance) (db_pool_connections_in_use{{{SEL}}})", "in use {{instance}}"),
        (f"sum by (instance) (db_pool_connections_waiting{{{SEL}}})", "waiting {{instance}}"),
    ),
    ts(
        "Transaction retries by reason",
        "ops",
        (f"sum by (reason) (rate(db_transaction_retries_total{{{SEL}}}[{RI}]))", "{{reason}}"),
    ),
    ts(
        "Requests failed: database unavailable",
        "reqps",
        (
            f'sum(rate(app_error_total{{code="unavailable",{SEL}}}[{RI}])) or vector(0)',
            "503 unavailable",
        ),
    ),
    stat("PostgreSQL up", "none", ("max(pg_up)", "pg_up")),
    ts(
        "PostgreSQL connections",
        "none",
        ('sum(pg_stat_database_numbackends{datname="parley"})', "backends"),
        ("max(pg_settings_max_connections)", "max_connections"),
    ),
    ts(
        "PostgreSQL commits and rollbacks",
        "ops",
        (f'sum(rate(pg_stat_database_xact_commit{{datname="parley"}}[{RI}]))', "commits"),
        (f'sum(rate(pg_stat_database_xact_rollback{{datname="parley"}}[{RI}]))', "rollbacks"),
    ),
    ts(
        "PostgreSQL cache hit ratio",
        "percentunit",
        (
            f'sum(rate(pg_stat_database_blks_hit{{datname="parley"}}[{RI}])) / clamp_min('
            f'sum(rate(pg_stat_database_blks_hit{{datname="parley"}}[{RI}])) + '
            f'sum(rate(pg_stat_database_blks_read{{datname="parley"}}[{RI}])), 1e-9)',
            "hit ratio",
        ),
    ),
    ts(
        "PostgreSQL deadlocks and locks",
        "none",
        (f'sum(increase(pg_stat_database_deadlocks{{datname="parley"}}[{RI}]))', "deadlocks"),
        ('sum by (mode) (pg_locks_count{datname="parley"})', "{{mode}}"),
    ),
    ts("PostgreSQL database size", "bytes", ('pg_database_size_bytes{datname="parley"}', "size")),
    stat("Redis up", "none", ("max(redis_up)", "redis_up")),
    ts(
        "Redis clients, memory and commands",
        "none",
        ("sum(redis_connected_clients)", "clients"),
        (f"sum(rate(redis_commands_processed_total[{RI}]))", "commands/s"),
    ),
    ts("Redis memory used", "bytes", ("sum(redis_memory_used_bytes)", "used")),
]

WEBSOCKETS: list[Panel] = [
    stat("Open WebSockets (all servers)", "none", ("sum(websocket_connections_active)", "open")),
    ts(
        "Open WebSockets per server",
        "none",
        (f"sum by (instance) (websocket_connections_active{{{SEL}}})", "{{instance}}"),
    ),
    ts(
        "Drop from the 10-minute peak",
        "none",
        (
            "max_over_time(sum(websocket_connections_active)[10m:])"
            " - sum(websocket_connections_active)",
            "below peak",
        ),
    ),
    ts(
        "WebSocket handshakes per second by status (gateway)",
        "ops",
        (
            f'sum by (status) (rate(gateway_request_total{{method="WS"}}[{RI}]))',
            "{{status}}",
        ),
    ),
    ts(
        "Handshake time p99 (gateway to server and back)",
        "s",
        (
            "histogram_quantile(0.99, sum by (le) "
            f'(rate(gateway_request_duration_seconds_bucket{{method="WS"}}[{RI}])))',
            "p99",
        ),
    ),
    ts(
        "Messages per second per server",
        "ops",
        (f"sum by (instance) (rate(messages_total{{{SEL}}}[{RI}]))", "{{instance}}"),
    ),
    ts(
        "Send path p99 (validate, store, publish)",
        "s",
        (
            "histogram_quantile(0.99, sum by (le, instance) "
            f"(rate(message_processing_time_seconds_bucket{{{SEL}}}[{RI}])))",
            "{{instance}}",
        ),
    ),
    ts(
        "Redis pub/sub channels and clients",
        "none",
        ("sum(redis_pubsub_channels)", "channels"),
        ("sum(redis_connected_clients)", "clients"),
    ),
]

SYSTEM: list[Panel] = [
    ts(
        "Parley CPU per process",
        "percentunit",
        (
            f'rate(process_cpu_seconds_total{{job=~"parley-.*",{SEL}}}[{RI}])',
            "{{instance}}",
        ),
    ),
    ts(
        "Parley resident memory per process",
        "bytes",
        (f'process_resident_memory_bytes{{job=~"parley-.*",{SEL}}}', "{{instance}}"),
    ),
    ts(
        "Parley open file descriptors",
        "none",
        (f'process_open_fds{{job=~"parley-.*",{SEL}}}', "{{instance}}"),
        (f'process_max_fds{{job=~"parley-.*",{SEL}}}', "limit {{instance}}"),
    ),
    ts(
        "Host CPU busy",
        "percentunit",
        (
            f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RI}]))',
            "{{instance}}",
        ),
    ),
    ts("Host load (1 min)", "none", ("node_load1", "{{instance}}")),
    ts(
        "Host memory available",
        "percentunit",
        ("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}"),
    ),
    ts(
        "Disk space available",
        "percentunit",
        (
            'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"}'
            ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay"}',
            "{{instance}} {{mountpoint}}",
        ),
    ),
    ts(
        "Disk busy",
        "percentunit",
        (f"rate(node_disk_io_time_seconds_total[{RI}])", "{{instance}} {{device}}"),
    ),
    ts(
        "Network traffic",
        "Bps",
        (
            f'sum by (instance) (rate(node_network_receive_bytes_total{{device!="lo"}}[{RI}]))',
            "in {{instance}}",
        ),
        (
            f'sum by (instance) (rate(node_network_transmit_bytes_total{{device!="lo"}}[{RI}]))',
            "out {{instance}}",
        ),
    ),
]

DASHBOARDS = {
    "application-overview": ("Parley: Application Overview", OVERVIEW),
    "database-performance": ("Parley: Database Performance", DATABASE),
    "websocket-connections": ("Parley: WebSocket Connections", WEBSOCKETS),
    "system-resources": ("Parley: System Resources", SYSTEM),
}


def panel(index: int, spec: Panel) -> dict[str, object]:
    title, kind, targets, unit = spec
    width = 6 if kind == "stat" else 12
    return {
        "id": index + 1,
        "title": title,
        "type": kind,
        "datasource": DS,
        "gridPos": {"h": 4 if kind == "stat" else 8, "w": width, "x": 0, "y": index * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def layout(panels: list[dict[str, object]]) -> None:
    """Left to right, 24 columns wide, wrapping rows."""
    x = y = row_height = 0
    for p in panels:
        pos = p["gridPos"]
        assert isinstance(pos, dict)
        if x + pos["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        pos["x"], pos["y"] = x, y
        x += pos["w"]
        row_height = max(row_height, pos["h"])


def dashboard(uid: str, title: str, specs: list[Panel]) -> dict[str, object]:
    panels = [panel(i, spec) for i, spec in enumerate(specs)]
    layout(panels)
    return {
        "uid": f"parley-{uid}",
        "title": title,
        "tags": ["parley"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "instance",
                    "label": "Server",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(app_info, instance)", "refId": "instance"},
                    "definition": "label_values(app_info, instance)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": panels,
    }


def main() -> None:
    out = HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for uid, (title, specs) in DASHBOARDS.items():
        text = json.dumps(dashboard(uid, title, specs), indent=2) + "\n"
        (out / f"{uid}.json").write_text(text)


if __name__ == "__main__":
    main()
