"""A server receiving SIGTERM rolls out gracefully (docs/operations.md, "Upgrades").

Readiness turns false first (/health 503 "draining") while it still serves, then the
listener closes, open WebSockets close with 1012, the in-flight request finishes, and
the process exits within PARLEY_SHUTDOWN_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import free_port
from tests.integration.ops.conftest import parley_env, register, spawn, wait_http
from tests.waiting import eventually_sync, let_time_pass_sync

DRAIN = 1.5
TIMEOUT = 8.0


def slow_multipart(boundary: str, seconds: float) -> Iterator[bytes]:
    """An attachment upload whose body trickles in over `seconds`."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    steps = 10
    for i in range(steps):
        let_time_pass_sync(seconds / steps, "the body trickles in")
        yield f"line {i}\n".encode()
    yield f"\r\n--{boundary}--\r\n".encode()


def test_sigterm_drains_closes_sockets_with_1012_and_finishes_requests(tmp_path: Path) -> None:
    port = free_port()
    env = parley_env(
        tmp_path / "data",
        PARLEY_SHUTDOWN_DRAIN=str(DRAIN),
        PARLEY_SHUTDOWN_TIMEOUT=str(TIMEOUT),
        LOG_LEVEL="info",
    )
    proc = spawn(
        [sys.executable, "-m", "parley.cli", "server", "--port", str(port)],
        tmp_path / "server.log",
        env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc)
        _, auth = register(base)
        with httpx.Client(base_url=base, timeout=20, trust_env=False) as http:
            chat = http.post("/service/api/chats", headers=auth,
                             json={"type": "group", "title": "rollout"})  # fmt: skip
            assert chat.status_code == 201, chat.text
        ws = connect(base.replace("http://", "ws://") + "/service/ws", additional_headers=auth)
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"

        upload: dict[str, object] = {}
        boundary = uuid.uuid4().hex

        def upload_slowly() -> None:
            with httpx.Client(timeout=30, trust_env=False) as slow:
                answer = slow.post(
                    f"{base}/service/api/chats/{chat.json()['id']}/attachments",
                    headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                    content=slow_multipart(boundary, DRAIN + 1.5),
                )
                upload["status"], upload["body"] = answer.status_code, answer.json()

        uploader = threading.Thread(target=upload_slowly)
        uploader.start()
        let_time_pass_sync(0.3, "the server takes the upload in (nothing shows it)")
        signalled = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)

        # 1. Readiness false first, while the server still answers.
        health = eventually_sync(
            lambda: httpx.get(base + "/health", timeout=5, trust_env=False),
            what="/health to say draining",
            interval=0.02,
        )
        assert health.status_code == 503
        assert health.json()["status"] == "draining"

        # 2. Open sockets close with 1012 (service restart) once the drain is over.
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=DRAIN + 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert time.monotonic() - signalled >= DRAIN - 0.1

        # 3. No new connections.
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/health", timeout=2, trust_env=False)

        # 4. The in-flight request finished, with its answer.
        uploader.join(TIMEOUT)
        assert upload.get("status") == 201, upload
        body = upload["body"]
        assert isinstance(body, dict) and body["id"] > 0

        # 5. Exit within PARLEY_SHUTDOWN_TIMEOUT.
        proc.process.wait(TIMEOUT)
        assert time.monotonic() - signalled < TIMEOUT
        assert proc.process.returncode in (0, -signal.SIGTERM), proc.output()[-2000:]
    finally:
        proc.stop()


def test_shutdown_timeout_bounds_a_stuck_request(tmp_path: Path) -> None:
    """A request that would outlive the budget is cut: the process still exits in time."""
    port = free_port()
    env = parley_env(tmp_path / "data", PARLEY_SHUTDOWN_TIMEOUT="4", PARLEY_SHUTDOWN_DRAIN="0")
    proc = spawn([sys.executable, "-m", "parley.cli", "server", "--port", str(port)],
                 tmp_path / "server.log", env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc)
        _, auth = register(base)
        chat = httpx.post(base + "/service/api/chats", headers=auth, trust_env=False,
                          json={"type": "group", "title": "stuck"}).json()  # fmt: skip
        boundary = uuid.uuid4().hex

        def upload_forever() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{base}/service/api/chats/{chat['id']}/attachments",
                    headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                    content=slow_multipart(boundary, 30),
                    timeout=40,
                    trust_env=False,
                )

        threading.Thread(target=upload_forever, daemon=True).start()
        let_time_pass_sync(0.5, "the server takes the upload in (nothing shows it)")
        signalled = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        proc.process.wait(10)
        assert time.monotonic() - signalled < 4.5, proc.output()[-2000:]
    finally:
        proc.stop()
