"""Browser tests: `parley serve` on free ports with a fresh data dir, Debian's chromium.

Screenshots land in tests/e2e/screenshots/ (gitignored) so a person can look at them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
PARLEY = Path(sys.executable).with_name("parley")
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"parley serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"parley serve did not answer {url} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium is required in CI: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@contextlib.contextmanager
def _serve(data_dir: Path, **env: str) -> Iterator[str]:
    """`parley serve` (gateway + server) on free ports; stopped by PID on exit."""
    gateway_port, server_port = _free_port(), _free_port()
    full_env = {
        **os.environ,
        # Every test registers users from 127.0.0.1: the public per-IP limit would bite.
        "PARLEY_RATE_PUBLIC": "1000/second",
        "PARLEY_RATE_USER": "1000/second",
        "PARLEY_RATE_SEND": "1000/second",
        **env,
    }
    command = [
        str(PARLEY), "serve", "--data-dir", str(data_dir), "--port", str(server_port),
        "--gateway-port", str(gateway_port),
    ]  # fmt: skip
    with (data_dir / "serve.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        url = f"http://127.0.0.1:{gateway_port}"
        try:
            _wait_until_up(f"{url}/login", proc)
            yield url
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of the session's `parley serve` (for `parley users promote`)."""
    return tmp_path_factory.mktemp("parley-e2e")


@pytest.fixture(scope="session")
def base_url(chromium_path: Path, data_dir: Path) -> Iterator[str]:
    """One `parley serve` for the whole browser session."""
    with _serve(data_dir) as url:
        yield url


def promote(data_dir: Path, username: str) -> None:
    """Makes a user an admin with the CLI, as an operator would."""
    command = [str(PARLEY), "users", "promote", username, "--data-dir", str(data_dir)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def short_lived_url(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `parley serve` whose access tokens expire after 3 seconds."""
    with _serve(tmp_path_factory.mktemp("parley-ttl"), PARLEY_ACCESS_TTL="3") as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class User:
    username: str
    display_name: str
    page: Any


@pytest.fixture
def new_page(browser: Any, base_url: str) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (separate cookie jars), closed after the test."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(base_url=base_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def register(new_page: Callable[..., Any]) -> Callable[..., User]:
    """Registers a new user through the form and waits for the connected chat page."""

    def make(prefix: str = "user", display_name: str | None = None, **options: Any) -> User:
        page = new_page(**options)
        username = f"{prefix}_{uuid.uuid4().hex[:8]}"
        page.goto("/register")
        page.get_by_test_id("register-username").fill(username)
        page.get_by_test_id("register-email").fill(f"{username}@example.com")
        if display_name:
            page.get_by_test_id("register-display-name").fill(display_name)
        page.get_by_test_id("register-password").fill(PASSWORD)
        page.get_by_test_id("register-submit").click()
        page.wait_for_url("**/chat*")
        page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
        return User(username, display_name or username, page)

    return make


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
