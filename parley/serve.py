"""`parley serve`: one server and one gateway as two processes, started and stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

import httpx

from parley.config import Settings, connect_host, url_host

READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


def run_serve(settings: Settings) -> int:
    """Starts the server, waits for its /health, starts the gateway; stops both on a signal."""
    problem = check_ports(settings)
    if problem:
        _say(problem, error=True)
        return 1
    settings.jwt_key()  # created once here so both processes read the same secret
    stop = threading.Event()
    previous = _trap_signals(stop)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        return _supervise(settings, processes, stop)
    finally:
        _stop_all(processes, max(STOP_TIMEOUT, settings.shutdown_timeout + 5))
        _restore_signals(previous)


def check_ports(settings: Settings) -> str | None:
    """A clear message when a port is taken (or both are the same), else None."""
    if settings.port == settings.gateway_port:
        return f"The server and the gateway cannot share port {settings.port}."
    for role, host, port, knob in (
        ("gateway", settings.host, settings.gateway_port, "--gateway-port / GATEWAY_PORT"),
        ("server", settings.server_host, settings.port, "--port / PORT"),
    ):
        if not is_port_free(host, port):
            return (
                f"Port {port} on {host} is already in use, so the {role} cannot start. "
                f"Stop whatever is using it, or choose another port with {knob}."
            )
    return None


def is_port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _supervise(
    settings: Settings, processes: list[tuple[str, subprocess.Popen[bytes]]], stop: threading.Event
) -> int:
    server_url = f"http://{url_host(connect_host(settings.server_host))}:{settings.port}"
    gateway_url = f"http://{url_host(connect_host(settings.host))}:{settings.gateway_port}"
    _say(f"Starting the server on {server_url} (data in {settings.data_dir.resolve()})…")
    processes.append(("server", _spawn("server", settings)))
    if not _wait_ready("server", server_url + "/health", processes[-1][1], stop):
        return 0 if stop.is_set() else 1
    _say("Server is up. Starting the gateway…")
    processes.append(("gateway", _spawn("gateway", settings, "--upstream", server_url)))
    if not _wait_ready("gateway", gateway_url + "/health", processes[-1][1], stop):
        return 0 if stop.is_set() else 1
    _say(f"Parley is running at {gateway_url}  (Ctrl-C to stop)")
    return _watch(processes, stop)


def spawn_args(command: str, settings: Settings, *extra: str) -> list[str]:
    """The command line of one child: the server gets no --host (it binds server_host)."""
    host = ["--host", settings.host] if command == "gateway" else []
    return [
        sys.executable, "-m", "parley.cli", command,
        *host,
        "--port", str(settings.port),
        "--gateway-port", str(settings.gateway_port),
        "--data-dir", str(settings.data_dir.resolve()),
        *extra,
    ]  # fmt: skip


def _spawn(command: str, settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    args = spawn_args(command, settings, *extra)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PARLEY_SERVER_HOST": settings.server_host,
    }
    # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
    return subprocess.Popen(args, env=env, start_new_session=True)


def _wait_ready(
    role: str, url: str, process: subprocess.Popen[bytes], stop: threading.Event
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while not stop.is_set():
            if process.poll() is not None:
                _say(f"The {role} exited during start-up (code {process.returncode}).", error=True)
                return False
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return True
            if time.monotonic() > deadline:
                _say(f"The {role} did not answer {url} within {READY_TIMEOUT:.0f}s.", error=True)
                return False
            stop.wait(0.2)
    return False


def _watch(processes: list[tuple[str, subprocess.Popen[bytes]]], stop: threading.Event) -> int:
    while not stop.wait(0.5):
        for role, process in processes:
            if process.poll() is not None:
                _say(f"The {role} stopped unexpectedly (code {process.returncode}).", error=True)
                return 1
    return 0


def _stop_all(
    processes: list[tuple[str, subprocess.Popen[bytes]]], timeout: float = STOP_TIMEOUT
) -> None:
    """Gateway first (its WebSockets close with 1001), then the server."""
    if any(p.poll() is None for _, p in processes):
        _say("Stopping Parley…")
    for role, process in reversed(processes):
        if process.poll() is not None:
            continue
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _say(f"The {role} did not stop in {timeout:.0f}s; killing it.", error=True)
            process.kill()
            process.wait()
    if processes:
        _say("Stopped.")


_Handler = signal.Handlers | int | None | object


def _trap_signals(stop: threading.Event) -> dict[int, _Handler]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, _Handler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


def _say(message: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(message + "\n")
    stream.flush()
