"""`make loadtest` at a tiny N: the machinery runs end to end and its report holds together.

30 people (half of them active, the mix run 40 times faster) through the gateway of a real
`parley serve` on SQLite, from two generator processes, for a few seconds: deliveries are
measured from sender to receivers, nothing is lost, no action fails, and every process the
load test started is gone afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_loadtest_tiny_run_measures_every_action(tmp_path: Path) -> None:
    out = tmp_path / "loadtest.json"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run(
        [sys.executable, "-m", "bench.capacity", "--people", "30", "--active", "0.5",
         "--pace", "40", "--steady", "4", "--drain", "2", "--settle", "0.5", "--ramp", "200",
         "--generators", "2", "--quiet", "--output", str(out)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["kind"] == "loadtest" and report["deployment"] == "sqlite"
    [step] = report["steps"]
    assert step["people"] == 30 and step["active"] == 15 and step["generators"] == 2
    assert step["ramp"]["opened"] == 30 and step["ramp"]["failures"] == {}

    # deliveries: measured at the receivers, every one of them arrived
    delivery = step["actions"]["delivery"]
    assert delivery["n"] > 0 and 0 < delivery["p50_ms"] <= delivery["p99_ms"]
    lost = step["deliveries"]
    assert lost["messages"] > 0 and lost["expected"] > 0
    assert lost["received"] == lost["expected"] and lost["lost"] == 0
    assert step["consistency"]["person_chats"] > 0 and step["consistency"]["behind"] == 0
    # the other actions ran and were answered
    for action in ("send", "history", "read", "ping"):
        assert step["actions"][action]["n"] > 0, action
    assert step["errors"] == {}, step["errors"]

    # every process is measured; the generators say whether they were saturated
    assert {"gateway", "server-1", "generator-1", "generator-2"} <= set(step["processes"])
    for role, usage in step["processes"].items():
        assert usage["cores"] >= 0 and 5 < usage["rss_mib"] < 4096, role
    assert [g["index"] for g in step["generator"]] == [0, 1]
    assert all(isinstance(g["saturated"], bool) for g in step["generator"])
    # the database's own numbers (SQLite: the server's statement timing)
    statements = step["server_metrics"]["server-1"]["statements"]
    assert statements and all(s["per_s"] > 0 for s in statements.values())
    assert step["server_metrics"]["server-1"]["messages_stored"] >= lost["messages"]
    # the verdict is explained, and the summary follows it
    assert isinstance(step["passed"], bool) and (step["passed"] or step["why"])
    assert report["summary"]["largest_n"] == (30 if step["passed"] else None)
    assert "| 30 | 15 |" in result.stdout
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_loadtest_storm_brings_everyone_back_with_nothing_lost(tmp_path: Path) -> None:
    """--storm: the deployment restarts under 20 connected people; every one reconnects
    with the web client's backoff and syncs, the active ones write once back, and at the
    end everyone has seen every chat up to the database's last message."""
    out = tmp_path / "storm.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.capacity", "--people", "20", "--active", "0.5",
         "--pace", "40", "--steady", "1", "--drain", "1", "--settle", "0.5", "--storm",
         "--quiet", "--output", str(out)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    storm = json.loads(out.read_text())["steps"][0]["storm"]
    assert storm["clients"] == 20 and storm["back_and_synced"] == 20, storm
    assert storm["restart_s"] > 0 and storm["all_back_after_healthy_s"] is not None
    assert storm["all_back_after_restart_began_s"] >= storm["all_back_after_healthy_s"]
    assert storm["consistency"]["person_chats"] > 0 and storm["consistency"]["behind"] == 0
    assert storm["passed"] is True
    assert "reconnect storm, 20 clients: 20 back and synced" in result.stdout
