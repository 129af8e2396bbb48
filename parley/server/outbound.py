"""Every request the server makes to the outside world goes through here.

Link previews, Web Push and bot events call `Outbound.request`; nothing else in the server
opens a connection to an address a user chose. The rules (docs/operations.md, "Outbound
requests"):

- http and https only;
- every address the host resolves to must be public (loopback, private, link-local,
  multicast, reserved, shared and unspecified addresses are refused) unless it is inside
  `PARLEY_OUTBOUND_ALLOW`; the check is made where the connection is opened, on the
  addresses actually connected to, so a name that resolves differently the second time
  (DNS rebinding) gains nothing;
- the same for every redirect, at most 3;
- 5 s for the whole exchange, redirects included;
- at most `max_bytes` of the body read (the caller's cap: 1 MiB of HTML, 5 MiB of image).

A refused address is never contacted: the check runs before the socket is opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from parley import errors
from parley.clientip import Network, parse_networks
from parley.clock import Clock, as_clock

log = logging.getLogger("parley.outbound")

TIMEOUT = 5.0
MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Parley (self-hosted chat; +link previews and notifications)"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(
    errors.ParleyError,
    status=422,
    code="outbound_refused",
    detail="That address cannot be contacted",
):
    """The request breaks an outbound rule; nothing was sent to the refused address."""


class Failed(
    errors.ParleyError,
    status=502,
    code="outbound_failed",
    detail="The remote server did not answer",
):
    """The exchange failed (timeout, connection refused, TLS, protocol)."""


@dataclass(frozen=True, slots=True)
class Response:
    url: str  # after redirects
    status: int
    headers: Mapping[str, str]  # lower-case names; the last value of a repeated header
    body: bytes
    truncated: bool  # the body was longer than the cap: only the cap was read

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def is_public(ip: IPAddress) -> bool:
    """Whether an address is a public unicast one (an IPv4 address inside IPv6 is judged as
    IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public(mapped)
    return ip.is_global and not ip.is_multicast


@dataclass(slots=True)
class Rules:
    allow: list[Network] = field(default_factory=list)

    @classmethod
    def of(cls, allow: Iterable[str]) -> Rules:
        return cls(parse_networks(allow))

    def permits(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.allow) or is_public(ip)

    def check_url(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an http(s) URL; Refused otherwise."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise Refused("Only http and https addresses can be fetched")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise Refused("The address has a bad port") from None
        host = parts.hostname
        if not host:
            raise Refused("The address has no host")
        return scheme, host, port


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens connections only to addresses the rules permit (checked on every address the
    name resolves to, before any socket is opened)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)
        refused = [ip for ip in addresses if not self.rules.permits(ip)]
        if refused or not addresses:
            log.info("outbound refused: %s resolves to %s", host, refused or "nothing")
            raise Refused(f"{host} is not a public address")
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("Unix sockets are never contacted")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address is itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise Failed(f"{host} does not resolve") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in found:
            found.append(ip)
    return found


class Outbound:
    """The one HTTP client for calls out of the process."""

    def __init__(
        self, allow: Iterable[str] = (), *, timeout: float = TIMEOUT, clock: Clock | None = None
    ) -> None:
        self.rules = Rules.of(allow)
        self.timeout = timeout
        self.clock = as_clock(clock)
        self.pool = httpcore.AsyncConnectionPool(
            network_backend=_GuardedBackend(self.rules), max_connections=100, retries=0
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_bytes: int = 1024 * 1024,
        follow_redirects: bool = True,
    ) -> Response:
        """Sends the request under the rules and returns the answer (any status).

        Refused: a rule forbids it (nothing was sent to that address); Failed: the network
        or the remote server failed, or the whole exchange took longer than the timeout."""
        headers = headers or {}
        try:
            async with self.clock.timeout(self.timeout):
                for _hop in range(MAX_REDIRECTS + 1):
                    self.rules.check_url(url)
                    answer = await self._once(method, url, headers, body, max_bytes)
                    location = answer.headers.get("location")
                    if not (follow_redirects and answer.status in REDIRECTS and location):
                        return answer
                    url = urljoin(url, location)
                    if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                        method, body = "GET", None
        except TimeoutError:
            raise Failed("The remote server took too long") from None
        raise Refused(f"More than {MAX_REDIRECTS} redirects")

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], max_bytes: int
    ) -> Response:
        """A POST to an endpoint (a bot's events, Web Push) whose redirect is its answer:
        never followed."""
        return await self.request(
            "POST", url, headers=headers, body=body, max_bytes=max_bytes, follow_redirects=False
        )

    async def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        max_bytes: int,
    ) -> Response:
        sent = [("user-agent", USER_AGENT), *headers.items()]
        try:
            async with self.pool.stream(method, url, headers=sent, content=body) as response:
                chunks: list[bytes] = []
                size, truncated = 0, False
                async for chunk in response.aiter_stream():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        truncated = True
                        break
                data = b"".join(chunks)[:max_bytes]
                names = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers
                }
                return Response(url, response.status, names, data, truncated)
        except Refused:
            raise
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise Failed(f"The remote server failed: {type(exc).__name__}") from None
        except httpcore.UnsupportedProtocol:
            raise Refused("Only http and https addresses can be fetched") from None

    async def aclose(self) -> None:
        await self.pool.aclose()
