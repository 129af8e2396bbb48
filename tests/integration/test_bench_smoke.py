"""`make bench` in a tiny configuration: the machinery runs and reports sane numbers.

Starts the ceiling and Parley (SQLite, server + gateway), runs every scenario for about a
second each, and checks the JSON: so the benchmark cannot silently rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.live  # runs the benchmark as processes (docs/testing.md)

ROOT = Path(__file__).resolve().parents[2]


def test_bench_tiny_run_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "BENCH_NO_POSTGRES": "1"}
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--quiet", "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(r["deployment"], r["via"], r["scenario"]): r for r in report["results"]}
    for scenario in ("saturate", "fanout", "pairs", "idle", "history"):
        assert ("ceiling", "ceiling", scenario) in rows
        assert ("sqlite", "gateway", scenario) in rows
    assert ("sqlite", "gateway", "overload") in rows

    for key, row in rows.items():
        assert row["elapsed_s"] > 0, key
        for role, usage in row["processes"].items():
            assert usage["cpu_s"] >= 0 and 5 < usage["rss_mib"] < 4096, (key, role)
    for via in (("ceiling", "ceiling"), ("sqlite", "gateway")):
        saturate = rows[(*via, "saturate")]
        assert saturate["deliveries_per_s"] > 0 and saturate["messages_per_s"] > 0
        assert saturate["delivery_p99_ms"] > 0
        fanout = rows[(*via, "fanout")]
        assert fanout["messages"] > 0 and fanout["lost"] == 0, fanout
        pairs = rows[(*via, "pairs")]
        assert pairs["handshake_failures"] == 0 and pairs["lost"] == 0, pairs
        assert pairs["delivery_p99_ms"] > 0
        by_second = [ms for ms in pairs["delivery_p99_ms_by_second"] if ms is not None]
        assert by_second and all(ms > 0 for ms in by_second), pairs
        assert pairs["delivery_p99_ms"] <= max(by_second), pairs  # no second hides it
        idle = rows[(*via, "idle")]
        assert idle["opened"] == idle["sockets"]
        history = rows[(*via, "history")]
        assert history["pages"] > 0 and history["failed"] == 0
    assert rows[("sqlite", "gateway", "history")]["page_messages"] == 50
    parley = rows[("sqlite", "gateway", "pairs")]
    assert parley["server_cpu_ms_per_message"] > 0
    assert set(parley["processes"]) == {"server-1", "gateway"}
    assert rows[("sqlite", "gateway", "saturate")]["ratio_to_ceiling"] > 0
    overload = rows[("sqlite", "gateway", "overload")]
    assert overload["offered"] > 0 and overload["health_checks"] > 0
    assert overload["health_failed"] == 0
    # the table is printed, and every process the bench started is gone
    assert "| saturate | sqlite | gateway |" in result.stdout
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_history_alone_reads_full_pages(tmp_path: Path) -> None:
    """The history scenario seeds its own chat: run alone, its pages still hold 50 messages."""
    out = tmp_path / "bench.json"
    env = {
        **os.environ, "BENCH_NO_POSTGRES": "1", "BENCH_ONLY": "sqlite",
        "BENCH_SCENARIOS": "history",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--quiet", "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    history = [r for r in rows if r["deployment"] == "sqlite" and r["scenario"] == "history"]
    assert len(history) == 1 and history[0]["failed"] == 0
    assert history[0]["pages"] > 0 and history[0]["page_messages"] == 50
