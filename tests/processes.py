"""Helpers for tests that run Parley as real subprocesses."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest

from tests.waiting import eventually_sync


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Waits until `url` answers 200, failing at once if `process` exits meanwhile."""

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"process exited with {process.returncode}")
        try:
            return httpx.get(url, timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    eventually_sync(answers, timeout, interval=0.1, what=f"{url} to answer")


def stop_process(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL after 20 s; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
