"""Fixtures for the operations checks: real `parley` processes, real tools (nginx, Prometheus).

The processes are started the way an operator starts them (`parley serve`, `parley
gateway`) on free loopback ports with a temporary data directory (SQLite, in-process
broker): the deploy/ files are checked against the same code paths production runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import CI, free_port
from tests.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def need_tool(name: str, path: str | None = None) -> str:
    """The tool's path; a missing tool skips the test (fails in CI, where .ci/run installs it)."""
    found = shutil.which(name) or (path if path and os.access(path, os.X_OK) else None)
    if found:
        return found
    if CI:
        pytest.fail(f"{name} is required in CI (.ci/run installs it)")
    pytest.skip(f"{name} is not installed")


@dataclass
class Proc:
    """A started process, its log file, and the URLs it answers on."""

    process: subprocess.Popen[bytes]
    log: Path
    urls: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 25) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    handle = log.open("wb")
    process = subprocess.Popen(
        args, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    handle.close()
    return Proc(process, log)


def wait_http(url: str, proc: Proc, timeout: float = 60, status: int = 200) -> None:

    def answers() -> bool:
        if proc.process.poll() is not None:
            pytest.fail(f"{proc.process.args} exited:\n{proc.output()[-3000:]}")
        try:
            return httpx.get(url, timeout=2, trust_env=False).status_code == status
        except httpx.HTTPError:
            return False

    try:
        eventually_sync(answers, timeout, interval=0.2, what=f"{url} to answer {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{proc.output()[-3000:]}") from None


def parley_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "PARLEY_DATA_DIR": str(data_dir),
        "JWT_SECRET": "ops-test-secret-" + uuid.uuid4().hex * 2,
        "LOG_LEVEL": "warning",
        "PARLEY_RATE_LOGIN": "1000/minute",
        "PARLEY_RATE_LOGIN_IP": "1000/minute",
        # One instance serves several tests from one address (api-test makes 60+ calls):
        # the gateway's per-address budgets are not what these tests are about.
        "PARLEY_RATE_PUBLIC": "1000/second",
        "PARLEY_RATE_USER": "1000/second",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_serve(tmp: Path, **extra: str) -> Proc:
    """`parley serve` (one server, one gateway) on free ports; stop() it when done."""
    server_port, gateway_port = free_port(), free_port()
    env = parley_env(tmp / "data", **extra)
    proc = spawn(
        [sys.executable, "-m", "parley.cli", "serve", "--port", str(server_port),
         "--gateway-port", str(gateway_port)],
        tmp / "serve.log",
        env,
    )  # fmt: skip
    proc.urls = {
        "server": f"http://127.0.0.1:{server_port}",
        "gateway": f"http://127.0.0.1:{gateway_port}",
    }
    try:
        wait_http(proc.urls["gateway"] + "/health", proc, timeout=90)
    except AssertionError:
        proc.stop()
        raise
    proc.urls["env_jwt"] = env["JWT_SECRET"]
    return proc


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_serve(tmp_path_factory.mktemp("serve"))
    yield proc
    proc.stop()


def register(base: str, prefix: str = "ops") -> tuple[dict[str, object], dict[str, str]]:
    """A fresh user on `base`: its public record and an Authorization header."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    account = {"username": name, "email": f"{name}@example.org", "password": "pw-" + name}
    reg = httpx.post(base + "/service/api/register", json=account, timeout=20, trust_env=False)
    assert reg.status_code == 201, reg.text
    body = reg.json()
    return body["user"], {"Authorization": f"Bearer {body['access_token']}"}
