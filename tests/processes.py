"""Helpers for tests that run Parley as real subprocesses."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Waits until `url` answers 200, failing at once if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


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
