"""Where a request's access token comes from, for the gateway and the server alike: the
Authorization header, the parley_access cookie or `?token=`. A token from the cookie is
sent by the browser on its own, so an unsafe request carrying it needs an Origin check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

ACCESS_COOKIE = "parley_access"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TokenSource = Literal["header", "cookie", "query"]


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    source: TokenSource


def find_credentials(conn: HTTPConnection, sources: tuple[TokenSource, ...]) -> Credentials | None:
    """The token of the first of `sources` (in that order) that carries one."""
    for source in sources:
        token = _READERS[source](conn)
        if token:
            return Credentials(token, source)
    return None


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(conn: HTTPConnection) -> str | None:
    return conn.cookies.get(ACCESS_COOKIE)


def _query(conn: HTTPConnection) -> str | None:
    return conn.query_params.get("token")


_READERS: dict[TokenSource, Callable[[HTTPConnection], str | None]] = {
    "header": _bearer,
    "cookie": _cookie,
    "query": _query,
}
