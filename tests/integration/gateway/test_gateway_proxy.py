"""HTTP proxying through the gateway: methods, bodies, headers, auth, failover, timeouts."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from .conftest import JWT_SECRET, RunningGateway, Upstream, bearer, token_for


def client(base: str, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, trust_env=False, timeout=10, **kwargs)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_every_method_is_proxied_with_body_and_query(
    gateway: RunningGateway, method: str
) -> None:
    body = b'{"hello": "world"}' if method != "GET" else b""
    auth = bearer(3)  # made once: a token made a second later would differ (its iat)
    async with client(gateway.url) as http:
        response = await http.request(
            method, "/service/api/chats/7/messages?limit=5&q=a%20b", content=body, headers=auth
        )
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == method
    assert echo["path"] == "/service/api/chats/7/messages"
    assert echo["query"] == "limit=5&q=a%20b"
    assert echo["body_len"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["headers"]["authorization"] == [auth["Authorization"]]


async def test_forwarding_headers_and_hop_by_hop_removed(gateway: RunningGateway) -> None:
    headers = {
        **bearer(1),
        "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "1",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic eDp5",
        "X-Forwarded-For": "6.6.6.6",
        "X-Request-ID": "req-abc.123",
        "X-Keep-Me": "yes",
    }
    async with client(gateway.url) as http:
        response = await http.get("/api/v1/messages", headers=headers)
    echo = response.json()
    seen = echo["headers"]
    for dropped in ("x-drop-me", "keep-alive", "proxy-authorization"):
        assert dropped not in seen
    assert seen["x-keep-me"] == ["yes"]
    assert seen["x-forwarded-for"] == ["127.0.0.1"]  # nothing trusted: the spoofed hop is gone
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["host"] == [gateway.url.removeprefix("http://")]
    assert seen["x-request-id"] == ["req-abc.123"]
    assert response.headers["x-request-id"] == "req-abc.123"
    assert response.headers["x-upstream"]
    assert response.headers["set-cookie"] == "a=1"


async def test_request_id_is_generated_when_missing_or_malformed(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        response = await http.get("/stats", headers={"X-Request-ID": "bad id\twith junk"})
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    assert response.json()["headers"]["x-request-id"] == [generated]


async def test_large_upload_is_streamed(gateway: RunningGateway) -> None:
    chunk = bytes(range(256)) * 256  # 64 KiB
    count = 160  # 10 MiB
    digest = hashlib.sha256(chunk * count).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    async with client(gateway.url) as http:
        response = await http.post(
            "/service/api/chats/1/attachments", content=body(), headers=bearer(2)
        )
    echo = response.json()
    assert echo["body_len"] == len(chunk) * count
    assert echo["body_sha256"] == digest
    assert echo["chunks"] > 1
    assert echo["headers"]["transfer-encoding"] == ["chunked"]


async def test_large_download_is_relayed(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        response = await http.get("/service/big?n=3000000", headers=bearer(2))
    assert response.status_code == 200
    assert len(response.content) == 3_000_000


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {token_for(1, ttl=-120)}"},
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "1", "sid": 1, "iss": "parley", "iat": 1, "exp": 2**31},
                "another-key-of-enough-length-" + "k" * 16,
                algorithm="HS256",
            )
        },
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "1", "sid": 1, "iss": "parley", "iat": 1, "exp": 2**31},
                None,
                algorithm="none",
            )
        },
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "1", "sid": 1, "iss": "parley", "iat": 1, "exp": 2**31, "typ": "refresh"},
                JWT_SECRET,
                algorithm="HS256",
            )
        },
        {"Cookie": "parley_access=garbage"},
    ],
    ids=["missing", "malformed", "expired", "wrong-key", "alg-none", "refresh-kind", "bad-cookie"],
)
async def test_bad_token_is_refused_without_calling_the_server(
    gateway: RunningGateway, upstream: Upstream, headers: dict[str, str]
) -> None:
    before = len(upstream.seen)
    async with client(gateway.url) as http:
        response = await http.get("/service/api/chats", headers=headers)
        versioned = await http.get("/api/v1/users", headers=headers)
    for refused in (response, versioned):
        assert refused.status_code == 401
        assert refused.json() == {"detail": "Authentication required", "code": "unauthorized"}
        assert refused.headers["content-security-policy"]
    assert len(upstream.seen) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/service/api/login"),
        ("POST", "/service/api/login/2fa"),  # the second step has no access token yet
        ("POST", "/service/api/register"),
        ("POST", "/service/api/refresh"),
        ("POST", "/api/v1/users"),
        ("GET", "/stats"),
    ],
)
async def test_public_routes_pass_without_token(
    gateway: RunningGateway, method: str, path: str
) -> None:
    async with client(gateway.url) as http:
        response = await http.request(method, path, json={"username": "ann"})
    assert response.status_code == 200
    assert response.json()["path"] == path


async def test_token_from_cookie_and_query(gateway: RunningGateway) -> None:
    token = token_for(5)
    async with client(gateway.url) as http:
        by_cookie = await http.get(
            "/service/api/profile", headers={"Cookie": f"parley_access={token}"}
        )
        by_query = await http.get(f"/service/api/profile?token={token}")
    assert by_cookie.status_code == 200
    assert by_query.status_code == 200


async def test_cookie_auth_unsafe_request_needs_same_origin(
    gateway: RunningGateway, upstream: Upstream
) -> None:
    cookie = {"Cookie": f"parley_access={token_for(5)}"}
    site = gateway.url
    async with client(gateway.url) as http:
        before = len(upstream.seen)
        cross = await http.post(
            "/service/api/chats", json={}, headers={**cookie, "Origin": "https://evil.example"}
        )
        assert len(upstream.seen) == before
        no_origin = await http.post("/service/api/chats", json={}, headers=cookie)
        same = await http.post("/service/api/chats", json={}, headers={**cookie, "Origin": site})
    assert cross.status_code == 403
    assert cross.json()["code"] == "bad_origin"
    assert no_origin.status_code == 403
    assert same.status_code == 200


async def test_failover_when_one_upstream_dies(make_upstream: Any, make_gateway: Any) -> None:
    first, second = make_upstream(), make_upstream()
    running: RunningGateway = make_gateway([first.url, second.url])
    async with client(running.url, headers=bearer(9)) as http:
        answers = [await http.get("/service/api/ping") for _ in range(4)]
        assert {r.json()["upstream"] for r in answers} == {first.url, second.url}
        first.runner.stop()
        after = [await http.get("/service/api/ping") for _ in range(6)]
    assert [r.status_code for r in after] == [200] * 6
    assert {r.json()["upstream"] for r in after} == {second.url}


async def test_502_when_no_upstream_answers(make_upstream: Any, make_gateway: Any) -> None:
    dead = make_upstream()
    dead.runner.stop()
    running: RunningGateway = make_gateway([dead.url, "http://127.0.0.1:9"])
    async with client(running.url) as http:
        response = await http.get("/service/api/chats", headers=bearer(1))
        health = await http.get("/health")
    assert response.status_code == 502
    assert response.json() == {"detail": "No server is available", "code": "bad_gateway"}
    assert health.status_code == 503
    assert health.json()["checks"]["upstreams"] == [
        {"name": "upstream-1", "status": "down"},
        {"name": "upstream-2", "status": "down"},
    ]


async def test_504_when_the_upstream_is_too_slow(gateway: RunningGateway) -> None:
    started = time.monotonic()
    async with client(gateway.url) as http:
        response = await http.get("/service/slow?s=3", headers=bearer(1))
    assert response.status_code == 504
    assert response.json()["code"] == "gateway_timeout"
    assert time.monotonic() - started < 2.5


async def test_health_reports_gateway_and_upstreams(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["gateway"] == "ok"
    assert body["checks"]["upstreams"] == [{"name": "upstream-1", "status": "ok"}]


async def test_unknown_path_is_a_json_404(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        response = await http.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found", "code": "not_found"}


async def test_upstream_connections_are_kept_alive_and_reused(
    upstream: Any, make_gateway: Any
) -> None:
    front = make_gateway([upstream.url])
    async with client(front.url) as http:
        for i in range(20):
            response = await http.get(f"/service/api/chats/7/messages?n={i}", headers=bearer(1))
            assert response.status_code == 200
            assert response.json()["query"] == f"n={i}"
        posted = await http.post("/service/api/x", content=b'{"a": 1}', headers=bearer(1))
        assert posted.json()["body_len"] == 8
    assert front.app.http.upstream.opened == 1
