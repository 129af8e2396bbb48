"""The one module that calls out: refused addresses are never contacted, redirects are
checked hop by hop, and time and size are bounded."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from parley.server.outbound import Failed, Outbound, Refused, is_public


@dataclass
class Listener:
    """A real HTTP server on a loopback address that counts the connections it sees."""

    host: str
    answer: Callable[[str], bytes]
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, 0)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            self.paths.append(path)
            writer.write(self.answer(path))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes, content_type: str = "text/html") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def redirect(to: str) -> bytes:
    return f"HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n".encode()


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for listener in made:
        if listener.server is not None:
            listener.server.close()


async def _listen(made: list[Listener], host: str, answer: Callable[[str], bytes]) -> Listener:
    listener = Listener(host, answer)
    await listener.start()
    made.append(listener)
    return listener


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared (carrier-grade NAT)
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4 inside IPv6 is judged as IPv4
        ("::ffff:8.8.8.8", True),
        ("ff0e::1", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


async def test_a_refused_address_is_never_contacted(listeners: list[Listener]) -> None:
    target = await _listen(listeners, "127.0.0.1", lambda _p: ok(b"secret"))
    outbound = Outbound()  # nothing allowed
    try:
        for url in (target.url + "/", f"http://localhost:{target.port}/"):
            with pytest.raises(Refused):
                await outbound.request("GET", url)
    finally:
        await outbound.aclose()
    assert target.connections == 0


async def test_an_allowed_network_is_fetched(listeners: list[Listener]) -> None:
    target = await _listen(listeners, "127.0.0.1", lambda _p: ok(b"<title>hi</title>"))
    outbound = Outbound(["127.0.0.1/32"])
    try:
        answer = await outbound.request("GET", target.url + "/page")
    finally:
        await outbound.aclose()
    assert (answer.status, answer.body, answer.content_type) == (
        200,
        b"<title>hi</title>",
        "text/html",
    )
    assert target.paths == ["/page"]


async def test_every_redirect_is_checked(listeners: list[Listener]) -> None:
    inner = await _listen(listeners, "127.0.0.1", lambda _p: ok(b"internal"))
    outer = await _listen(listeners, "127.0.0.2", lambda _p: redirect(inner.url + "/admin"))
    outbound = Outbound(["127.0.0.2/32"])  # the first host only
    try:
        with pytest.raises(Refused):
            await outbound.request("GET", outer.url + "/")
    finally:
        await outbound.aclose()
    assert outer.connections == 1
    assert inner.connections == 0


async def test_at_most_three_redirects(listeners: list[Listener]) -> None:
    hops = await _listen(
        listeners, "127.0.0.1", lambda path: redirect(f"/{int(path.strip('/') or 0) + 1}")
    )
    outbound = Outbound(["127.0.0.0/8"])
    try:
        with pytest.raises(Refused, match="redirects"):
            await outbound.request("GET", hops.url + "/0")
    finally:
        await outbound.aclose()
    assert hops.paths == ["/0", "/1", "/2", "/3"]  # three redirects followed, no fourth


async def test_three_redirects_are_followed(listeners: list[Listener]) -> None:
    def answer(path: str) -> bytes:
        n = int(path.strip("/"))
        return ok(b"arrived") if n == 3 else redirect(f"/{n + 1}")

    hops = await _listen(listeners, "127.0.0.1", answer)
    outbound = Outbound(["127.0.0.0/8"])
    try:
        answer_ = await outbound.request("GET", hops.url + "/0")
    finally:
        await outbound.aclose()
    assert answer_.body == b"arrived" and answer_.url.endswith("/3")


async def test_only_http_and_https() -> None:
    outbound = Outbound(["0.0.0.0/0"])
    try:
        for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/", "//x"):
            with pytest.raises(Refused):
                await outbound.request("GET", url)
    finally:
        await outbound.aclose()


async def test_the_body_is_read_up_to_the_cap(listeners: list[Listener]) -> None:
    big = await _listen(listeners, "127.0.0.1", lambda _p: ok(b"x" * 300_000))
    outbound = Outbound(["127.0.0.1/32"])
    try:
        answer = await outbound.request("GET", big.url + "/", max_bytes=1000)
    finally:
        await outbound.aclose()
    assert answer.truncated and len(answer.body) == 1000


async def test_a_silent_server_times_out(listeners: list[Listener]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    outbound = Outbound(["127.0.0.1/32"], timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(Failed):
            await outbound.request("GET", f"http://127.0.0.1:{port}/")
    finally:
        await outbound.aclose()
        server.close()
    assert loop.time() - started < 5
