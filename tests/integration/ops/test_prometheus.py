"""deploy/prometheus and deploy/grafana checked with the real tools.

promtool checks the config and rules and runs the alert unit tests; then a real
Prometheus scrapes a real `parley serve` with the deploy config's jobs (targets swapped
for the test's ports), and every query of every Grafana panel is evaluated against it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.sync.client import connect

from tests.conftest import free_port
from tests.integration.ops.conftest import DEPLOY, Proc, need_tool, spawn, start_serve, wait_http
from tests.waiting import eventually_sync, let_time_pass_sync

PROM_DIR = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
EXPORTER_PREFIXES = ("pg_", "redis_", "node_")
MESSAGES = 7
# The exporters' standard metric names the dashboards may use (postgres_exporter 0.15,
# redis_exporter 1.x, node_exporter 1.x): a typo here would be an always-empty panel.
EXPORTER_METRICS = {
    "pg_up", "pg_stat_database_numbackends", "pg_settings_max_connections",
    "pg_stat_database_xact_commit", "pg_stat_database_xact_rollback",
    "pg_stat_database_blks_hit", "pg_stat_database_blks_read", "pg_stat_database_deadlocks",
    "pg_locks_count", "pg_database_size_bytes",
    "redis_up", "redis_connected_clients", "redis_commands_processed_total",
    "redis_memory_used_bytes", "redis_pubsub_channels",
    "node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes", "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
    "node_disk_io_time_seconds_total", "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
}  # fmt: skip


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = need_tool("promtool")
    return subprocess.run([tool, *args], capture_output=True, text=True, check=False,
                          cwd=PROM_DIR)  # fmt: skip


def test_promtool_check_config_and_rules() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 7 rules found" in rules.stdout


def test_every_alert_has_a_unit_test_and_they_pass() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert alerts == {
        "ParleyHighErrorRatio",
        "ParleyHighRequestLatency",
        "ParleySlowMessageProcessing",
        "ParleyInstanceDown",
        "ParleyWebSocketConnectionsDropped",
        "ParleyRateLimitSurge",
        "ParleyDatabaseUnavailable",
    }
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    assert firing == alerts, alerts - firing  # each alert is shown firing...
    assert quiet == alerts, alerts - quiet  # ...and staying quiet when it should
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, expr) for every target of every panel."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((board["title"], panel["title"], target["expr"]))
    return out


def test_four_dashboards_provisioned() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {
        "Parley: Application Overview",
        "Parley: Database Performance",
        "Parley: WebSocket Connections",
        "Parley: System Resources",
    }
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/parley.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"], panel["title"]


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables as Grafana would expand them (All selected)."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    return re.sub(r"\$\{?instance\}?", ".*", expr)


def is_exporter_query(expr: str) -> bool:
    names = set(re.findall(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\b", re.sub(r'"[^"]*"', "", expr)))
    return any(name.startswith(EXPORTER_PREFIXES) for name in names)


def test_live_config_keeps_the_deploy_jobs() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["parley-gateway"]["metrics_path"] == "/metrics"
    assert jobs["parley-server"]["metrics_path"] == "/service/metrics"


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=10,
                           trust_env=False)  # fmt: skip
        body: dict[str, Any] = answer.json()
        return body

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Proc]]:
    prometheus = need_tool("prometheus", "/usr/bin/prometheus")
    tmp = tmp_path_factory.mktemp("prom")
    parley = start_serve(tmp, PARLEY_RATE_PUBLIC="5/second")  # low: the 429 panel gets data
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(PROM_DIR / "alerts.yml")]
    targets = {
        "parley-gateway": parley.urls["gateway"].removeprefix("http://"),
        "parley-server": parley.urls["server"].removeprefix("http://"),
    }
    # The Parley jobs as deployed (names, metrics paths), aimed at this test's processes;
    # the exporters do not run here: their panels must still evaluate (to nothing).
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": [targets[job["job_name"]]]}]}
        for job in config["scrape_configs"]
        if job["job_name"] in targets
    ]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    prom = spawn(
        [prometheus, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        tmp / "prometheus.log",
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", prom, timeout=60)
        yield Prometheus(f"http://127.0.0.1:{port}"), parley
    finally:
        prom.stop()
        parley.stop()


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    """`check`'s value once truthy; its last (falsy) value after `timeout` seconds."""
    try:
        return eventually_sync(check, timeout, interval=0.5)
    except AssertionError:
        return check()


def make_traffic(parley: Proc) -> None:
    """Messages over REST and WebSocket, an error, a 429, a search: every panel has data."""
    gateway = parley.urls["gateway"]
    with httpx.Client(base_url=gateway, timeout=20, trust_env=False) as http:
        tokens = []
        for i in range(2):
            name = f"prom_{i}_{time.time_ns() % 10**9}"
            account = {"username": name, "email": f"{name}@example.org", "password": "pw-" + name}
            reg = http.post("/service/api/register", json=account)
            assert reg.status_code == 201, reg.text
            tokens.append((reg.json()["user"]["id"], reg.json()["access_token"]))
        (_, ta), (b_id, _) = tokens
        auth = {"Authorization": f"Bearer {ta}"}
        chat = http.post("/service/api/chats", headers=auth,
                         json={"type": "group", "title": "prom", "member_ids": [b_id]})  # fmt: skip
        assert chat.status_code == 201, chat.text
        cid = chat.json()["id"]
        for i in range(MESSAGES - 2):
            sent = http.post(f"/service/api/chats/{cid}/messages", headers=auth,
                             json={"content": f"message {i}"})  # fmt: skip
            assert sent.status_code == 201, sent.text
        ws_url = gateway.replace("http://", "ws://") + "/ws"
        with connect(ws_url, additional_headers=auth) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            for i in range(2):
                ws.send(json.dumps({"type": "send", "chat_id": cid, "content": f"ws {i}",
                                    "client_id": f"c{i}"}))  # fmt: skip
                while json.loads(ws.recv(timeout=10)).get("type") != "message":
                    pass
            # An error answered by the server (app_error_total), and the gateway's limit.
            http.post("/service/api/login", json={"username": "nobody_here", "password": "x"})
            statuses = [http.get("/stats").status_code for _ in range(15)]
            assert 429 in statuses, statuses
            http.get("/service/api/search", headers=auth, params={"q": "message"})
            let_time_pass_sync(4, "a few scrapes while the socket is open")


def test_prometheus_scrapes_parley_and_counts_messages(
    scraped: tuple[Prometheus, Proc],
) -> None:
    prom, parley = scraped
    up = wait_for(lambda: prom.value('sum(up{job=~"parley-.*"})') == 2)
    assert up, prom.query('up{job=~"parley-.*"}')
    make_traffic(parley)
    counted = wait_for(lambda: prom.value("sum(messages_total)") == MESSAGES)
    assert counted, prom.value("sum(messages_total)")
    assert prom.value('sum(messages_total{job="parley-server"})') == MESSAGES
    # The database metrics the Database Performance dashboard reads.
    inserts = prom.value('sum(db_query_duration_seconds_count{operation="insert"})')
    assert inserts is not None and inserts >= MESSAGES
    assert prom.value("count(db_transaction_retries_total)") == 4  # every reason, from 0
    assert prom.value("max(db_pool_connections_waiting)") is not None
    rules = httpx.get(f"{prom.base}/api/v1/rules", timeout=10, trust_env=False).json()
    assert all(
        rule["health"] == "ok" for group in rules["data"]["groups"] for rule in group["rules"]
    ), rules


def test_every_grafana_panel_query_evaluates(scraped: tuple[Prometheus, Proc]) -> None:
    prom, _ = scraped
    # Runs after the scrape test (same module): the Parley panels have data by now.
    wait_for(lambda: prom.value("sum(messages_total)") == MESSAGES)
    queries = panel_queries()
    assert len(queries) > 40
    # rate() needs two scrapes that both hold a series: a series born late (the first
    # WebSocket handshake) can be empty for one more scrape interval, so look again.

    def no_panel_empty() -> bool:
        empty = []
        for board, panel, expr in queries:
            promql = grafana_to_promql(expr)
            answer = prom.query(promql)
            if answer["status"] != "success":
                pytest.fail(str((board, panel, promql, answer)))
            if not is_exporter_query(expr) and not answer["data"]["result"]:
                empty.append((board, panel, promql))
        assert not empty, empty
        return True

    eventually_sync(no_panel_empty, 30, interval=1, what="every panel with data")


def test_dashboards_use_only_exposed_metrics(scraped: tuple[Prometheus, Proc]) -> None:
    """Every Parley metric a panel names is one a running Parley exposes (by Prometheus)."""
    prom, _ = scraped
    url = f"{prom.base}/api/v1/label/__name__/values"
    known = set(httpx.get(url, timeout=10, trust_env=False).json()["data"])
    functions = {
        "sum", "rate", "by", "histogram_quantile", "clamp_min", "topk", "count", "max",
        "min", "avg", "increase", "max_over_time", "vector", "or", "and", "le", "offset",
        "instance", "job", "status", "route", "code", "user", "scope", "operation",
        "reason", "method", "version", "mode", "device", "mountpoint", "datname", "fstype",
    }  # fmt: skip
    for _, panel, expr in panel_queries():
        names = set(re.findall(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\b", re.sub(r'"[^"]*"|\$\w+', "", expr)))
        for name in names - functions:
            if name.startswith(EXPORTER_PREFIXES):
                assert name in EXPORTER_METRICS, (panel, name)
                continue
            if name in ("up", "m", "s"):
                continue
            assert name in known, (panel, name)


def test_metrics_are_scraped_from_a_path_the_code_serves(scraped: tuple[Prometheus, Proc]) -> None:
    prom, parley = scraped
    targets = httpx.get(f"{prom.base}/api/v1/targets", timeout=10, trust_env=False).json()
    active = {t["labels"]["job"]: t for t in targets["data"]["activeTargets"]}
    assert active["parley-server"]["health"] == "up", active["parley-server"]
    assert active["parley-gateway"]["health"] == "up", active["parley-gateway"]
    assert active["parley-server"]["scrapeUrl"] == parley.urls["server"] + "/service/metrics"
    assert active["parley-gateway"]["scrapeUrl"] == parley.urls["gateway"] + "/metrics"


def test_dashboard_files_are_generated_from_generate_py(tmp_path: Path) -> None:
    """The JSON is what deploy/grafana/generate.py writes (edit the script, not the JSON)."""
    source = (DEPLOY / "grafana" / "generate.py").read_text()
    namespace: dict[str, Any] = {"__name__": "generate", "__file__": str(tmp_path / "g.py")}
    exec(compile(source, "generate.py", "exec"), namespace)
    namespace["main"]()
    for path in DASHBOARDS:
        assert (tmp_path / "dashboards" / path.name).read_text() == path.read_text(), path.name
