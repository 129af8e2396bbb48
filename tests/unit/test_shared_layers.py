"""The helpers the gateway and the server share (parley/credentials.py, parley/clientip.py):
each side's order of token sources, and each side's reading of the client's address."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from parley.clientip import client_ip, is_trusted, parse_networks, real_ip
from parley.credentials import Credentials, find_credentials
from parley.gateway.auth import TOKEN_SOURCES
from parley.server.deps import read_token


def _conn(*headers: tuple[str, str], query: str = "") -> HTTPConnection:
    raw = [(name.encode(), value.encode()) for name, value in headers]
    return HTTPConnection(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": raw,
            "query_string": query.encode(),
        }
    )


def test_the_bearer_header_wins_everywhere() -> None:
    conn = _conn(("authorization", "Bearer  h "), ("cookie", "parley_access=c"), query="token=q")
    assert find_credentials(conn, TOKEN_SOURCES) == Credentials("h", "header")
    assert read_token(conn, allow_query=True) == ("h", False)


def test_the_gateway_prefers_the_cookie_and_the_servers_socket_the_query() -> None:
    conn = _conn(("cookie", "parley_access=c"), query="token=q")
    assert find_credentials(conn, TOKEN_SOURCES) == Credentials("c", "cookie")
    assert read_token(conn, allow_query=True) == ("q", False)
    assert read_token(conn) == ("c", True)


def test_no_token_and_other_schemes_are_none() -> None:
    conn = _conn(("authorization", "Basic abc"), ("cookie", "other=1"), query="token=")
    assert find_credentials(conn, TOKEN_SOURCES) is None
    assert read_token(conn, allow_query=True) == (None, False)


def test_the_gateway_takes_the_nearest_untrusted_forwarded_hop() -> None:
    trusted = parse_networks(["10.0.0.0/8", " ", "192.168.1.1"])
    assert client_ip("10.1.1.1", "203.0.113.5, 198.51.100.7, 10.2.2.2", trusted) == "198.51.100.7"
    assert client_ip("203.0.113.9", "198.51.100.7", trusted) == "203.0.113.9"  # not a proxy
    assert client_ip("10.1.1.1", "10.2.2.2, 192.168.1.1", trusted) == "10.2.2.2"
    assert client_ip("10.1.1.1", "not-an-ip", trusted) == "10.1.1.1"
    assert client_ip(None, "198.51.100.7", trusted) == "unknown"
    assert not is_trusted("not-an-ip", trusted)


def test_the_server_believes_x_real_ip_from_loopback_or_a_trusted_proxy() -> None:
    assert real_ip("127.0.0.1", " 203.0.113.5 ", []) == "203.0.113.5"
    assert real_ip("::1", "203.0.113.5", []) == "203.0.113.5"
    assert real_ip("10.0.0.2", "203.0.113.5", ["10.0.0.0/8"]) == "203.0.113.5"
    assert real_ip("198.51.100.7", "203.0.113.5", ["10.0.0.0/8"]) == "198.51.100.7"
    assert real_ip("127.0.0.1", "x" * 100, []) == "x" * 64
    assert real_ip("unknown", "203.0.113.5", []) == "unknown"
