"""`parley serve`: N server processes and one or more gateways, started and stopped together.

Several gateway processes (`--gateways`) listen on the same port with SO_REUSEPORT: the
kernel spreads new connections over them. Each relayed WebSocket takes two file
descriptors in its gateway (the person's socket and the one to a server), so one process
under a limit of 20,000 open files carries at most about 9,500 people; two carry twice as
many, and use a second core (docs/capacity.md).
"""

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
    """Starts the servers, waits for their /health, starts the gateway; stops all on a signal."""
    workers, problem = worker_count(settings)
    if problem:
        _say(problem, error=True)
        return 2
    problem = check_ports(settings)
    if problem:
        _say(problem, error=True)
        return 1
    settings.jwt_key()  # created once here so every process reads the same secret
    stop = threading.Event()
    previous = _trap_signals(stop)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        return _supervise(settings, workers, processes, stop)
    finally:
        _stop_all(processes, max(STOP_TIMEOUT, settings.shutdown_timeout + 5))
        _restore_signals(previous)


def worker_count(settings: Settings) -> tuple[int, str | None]:
    """--workers, else 1 on SQLite and the number of cores on PostgreSQL + Redis.

    Several processes share their events through Redis and their data through PostgreSQL;
    on SQLite or without Redis a second process would not see the first one's messages.
    """
    shared = not settings.sqlalchemy_url.startswith("sqlite") and settings.redis_dsn is not None
    if settings.workers is None:
        return (os.cpu_count() or 1) if shared else 1, None
    if settings.workers > 1 and not shared:
        return 1, (
            f"--workers {settings.workers} needs PostgreSQL (DATABASE_URL) and Redis "
            "(REDIS_URL): on SQLite or without Redis, run one server process."
        )
    return settings.workers, None


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


def server_ports(settings: Settings, workers: int) -> list[int]:
    """`--port`, then the ports after it; a taken one is replaced by a free port."""
    host = settings.server_host
    ports = [settings.port]
    candidate = settings.port
    while len(ports) < workers:
        candidate += 1
        if candidate == settings.gateway_port or candidate > 65535:
            continue
        if is_port_free(host, candidate):
            ports.append(candidate)
        else:
            ports.append(_any_free_port(host, avoid=[*ports, settings.gateway_port]))
    return ports


def _any_free_port(host: str, avoid: list[int]) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def _supervise(
    settings: Settings,
    workers: int,
    processes: list[tuple[str, subprocess.Popen[bytes]]],
    stop: threading.Event,
) -> int:
    server_host = url_host(connect_host(settings.server_host))
    gateway_url = f"http://{url_host(connect_host(settings.host))}:{settings.gateway_port}"
    ports = server_ports(settings, workers)
    urls = [f"http://{server_host}:{port}" for port in ports]
    data = settings.data_dir.resolve()
    for i, (port, url) in enumerate(zip(ports, urls, strict=True)):
        role = "server" if workers == 1 else f"server {i + 1} of {workers}"
        _say(f"Starting the {role} on {url} (data in {data})…")
        processes.append((role, _spawn("server", settings, "--port", str(port))))
        if i == 0 and not _wait_ready(role, url + "/health", processes[-1][1], stop):
            return 0 if stop.is_set() else 1  # the first one migrates the database alone
    for (role, process), url in zip(processes[1:], urls[1:], strict=True):
        if not _wait_ready(role, url + "/health", process, stop):
            return 0 if stop.is_set() else 1
    _say(
        "Server is up. Starting the gateway…"
        if workers == 1
        else "Servers are up. Starting the gateway…"
    )
    upstreams = [arg for url in urls for arg in ("--upstream", url)]
    shared = settings.gateways > 1
    gateways = []
    for i in range(settings.gateways):
        role = f"gateway {i + 1} of {settings.gateways}" if shared else "gateway"
        reuse = {"PARLEY_GATEWAY_REUSE_PORT": "1"} if shared else {}
        gateways.append((role, _spawn("gateway", settings, *upstreams, env=reuse)))
    processes.extend(gateways)
    for role, process in gateways:  # the port answers once any is up; none may have failed
        if not _wait_ready(role, gateway_url + "/health", process, stop):
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


def _spawn(
    command: str, settings: Settings, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    args = spawn_args(command, settings, *extra)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PARLEY_SERVER_HOST": settings.server_host,
        **(env or {}),
    }
    env.pop("PARLEY_UPSTREAMS", None)  # the gateway gets its servers from --upstream
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
    """Gateway first (its WebSockets close with 1001), then the servers, together."""
    if any(p.poll() is None for _, p in processes):
        _say("Stopping Parley…")
    gateways = [(r, p) for r, p in processes if r.startswith("gateway")]
    servers = [(r, p) for r, p in processes if not r.startswith("gateway")]
    for group in (gateways, servers):
        for _role, process in group:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for role, process in group:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
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
