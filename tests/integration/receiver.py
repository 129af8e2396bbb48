"""A real HTTP listener on a loopback address that records what bots' event URLs receive
and answers from a script (tests of integrations)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.waiting import eventually


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        """Checks `X-Parley-Signature` as a bot would: HMAC-SHA256(secret, ts + "." + body)."""
        timestamp = self.headers["x-parley-timestamp"]
        expected = hmac.new(
            secret.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(self.headers["x-parley-signature"], "v1=" + expected)


def answer(status: int, body: object = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Status")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


@dataclass
class Receiver:
    """Answers each request with the next of `script` (then with `default`)."""

    script: list[bytes] = field(default_factory=list)
    default: bytes = field(default_factory=lambda: answer(200))
    respond: Callable[[Received], bytes] | None = None
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/events"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        await eventually(lambda: len(self.received) >= count, timeout, what=f"{count} requests")
        return self.received

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            got = Received(path, headers, body)
            self.received.append(got)
            if self.respond is not None:
                reply = self.respond(got)
            else:
                reply = self.script.pop(0) if self.script else self.default
            writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
