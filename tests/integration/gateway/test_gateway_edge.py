"""Rate limits, trusted proxies, static pages, security headers, CORS, metrics and logs."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import uuid
from typing import Any

import httpx
import pytest
import redis

from tests.waiting import eventually

from .conftest import (
    RunningGateway,
    Upstream,
    bearer,
    ci_requires,
    random_prefix,
    token_for,
)


def client(base: str, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, trust_env=False, timeout=10, **kwargs)


async def test_public_rate_limit_per_ip(upstream: Upstream, make_gateway: Any) -> None:
    running: RunningGateway = make_gateway([upstream.url], PARLEY_RATE_PUBLIC="3/minute")
    async with client(running.url) as http:
        allowed = [await http.post("/service/api/login", json={}) for _ in range(3)]
        blocked = await http.post("/service/api/login", json={})
        metrics = await http.get("/metrics")
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert blocked.status_code == 429
    assert blocked.json() == {"detail": "Too many requests, slow down", "code": "rate_limited"}
    assert blocked.headers["ratelimit-limit"] == "3"
    assert blocked.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert 0 < int(blocked.headers["ratelimit-reset"]) <= 60
    assert 'gateway_rate_limit_blocked_total{route="/service/*",scope="public"} 1.0' in metrics.text


async def test_user_rate_limit_is_per_user(upstream: Upstream, make_gateway: Any) -> None:
    running: RunningGateway = make_gateway([upstream.url], PARLEY_RATE_USER="2/minute")
    async with client(running.url) as http:
        first = [await http.get("/service/api/chats", headers=bearer(1)) for _ in range(3)]
        other = await http.get("/service/api/chats", headers=bearer(2))
    assert [r.status_code for r in first] == [200, 200, 429]
    assert first[2].json()["code"] == "rate_limited"
    assert other.status_code == 200


async def test_forwarded_for_ignored_from_untrusted_peer(
    upstream: Upstream, make_gateway: Any
) -> None:
    running: RunningGateway = make_gateway([upstream.url], PARLEY_RATE_PUBLIC="2/minute")
    async with client(running.url) as http:
        codes = [
            (await http.get("/stats", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
            for i in range(3)
        ]
    assert codes == [200, 200, 429]  # spoofed addresses share the peer's budget


async def test_forwarded_for_honoured_from_trusted_proxy(
    upstream: Upstream, make_gateway: Any
) -> None:
    running: RunningGateway = make_gateway(
        [upstream.url], PARLEY_RATE_PUBLIC="2/minute", PARLEY_TRUSTED_PROXIES="127.0.0.0/8"
    )
    async with client(running.url) as http:
        one = [
            await http.get("/stats", headers={"X-Forwarded-For": "203.0.113.7"}) for _ in range(3)
        ]
        two = await http.get("/stats", headers={"X-Forwarded-For": "203.0.113.8"})
    assert [r.status_code for r in one] == [200, 200, 429]
    assert two.status_code == 200
    assert two.json()["headers"]["x-forwarded-for"] == ["203.0.113.8, 127.0.0.1"]
    assert two.json()["headers"]["x-real-ip"] == ["203.0.113.8"]


async def test_rate_limits_in_redis(upstream: Upstream, make_gateway: Any) -> None:
    store = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        store.ping()
    except redis.RedisError:
        ci_requires("Redis is not running on 127.0.0.1:6379")
    prefix = random_prefix()
    try:
        running: RunningGateway = make_gateway(
            [upstream.url],
            PARLEY_RATE_PUBLIC="2/minute",
            REDIS_URL="redis://127.0.0.1:6379/0",
            PARLEY_REDIS_PREFIX=prefix,
        )
        async with client(running.url) as http:
            codes = [(await http.get("/stats")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert store.keys(f"{prefix}*")
    finally:
        keys = store.keys(f"{prefix}*")
        if keys:
            store.delete(*keys)
        store.close()


async def test_two_gateways_share_one_redis_budget(upstream: Upstream, make_gateway: Any) -> None:
    store = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        store.ping()
    except redis.RedisError:
        ci_requires("Redis is not running on 127.0.0.1:6379")
    prefix = random_prefix()
    shared = {
        "PARLEY_RATE_PUBLIC": "3/minute",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PARLEY_REDIS_PREFIX": prefix,
    }
    try:
        one: RunningGateway = make_gateway([upstream.url], **shared)
        two: RunningGateway = make_gateway([upstream.url], **shared)
        async with client(one.url) as first, client(two.url) as second:
            answers = [await http.get("/stats") for http in (first, second, first, second)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
        assert answers[3].headers["ratelimit-limit"] == "3"
        assert 1 <= int(answers[3].headers["retry-after"]) <= 60
        # the key `limits` would use, one stamp per counted request
        assert store.llen(f"{prefix}ratelimit:LIMITER/ip/127.0.0.1/3/1/minute") == 3
    finally:
        keys = store.keys(f"{prefix}*")
        if keys:
            store.delete(*keys)
        store.close()


@pytest.mark.parametrize(
    ("path", "title"),
    [("/", "chat"), ("/chat", "chat"), ("/login", "login"), ("/register", "register")],
)
async def test_pages_with_security_headers(gateway: RunningGateway, path: str, title: str) -> None:
    async with client(gateway.url) as http:
        response = await http.get(path)
    assert response.status_code == 200
    assert f"<title>{title}</title>" in response.text
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"


async def test_static_files_with_etag(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        first = await http.get("/static/js/app.js")
        etag = first.headers["etag"]
        again = await http.get("/static/js/app.js", headers={"If-None-Match": etag})
        missing = await http.get("/static/js/nope.js")
        escape = await http.get("/static/..%2F..%2Fetc%2Fpasswd")
    assert first.status_code == 200
    assert first.text == "console.log('parley');\n"
    assert first.headers["cache-control"] == "public, max-age=300"
    assert again.status_code == 304
    assert again.headers["x-content-type-options"] == "nosniff"
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert escape.status_code == 404


async def test_proxied_responses_get_security_headers(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        response = await http.get("/service/api/profile", headers=bearer(1))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_cors_only_for_configured_origins(gateway: RunningGateway) -> None:
    allowed = "https://app.example.com"
    async with client(gateway.url) as http:
        ok = await http.get("/stats", headers={"Origin": allowed})
        other = await http.get("/stats", headers={"Origin": "https://evil.example"})
        preflight = await http.options(
            "/service/api/chats",
            headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
        )
        refused = await http.options(
            "/service/api/chats",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert ok.headers["access-control-allow-origin"] == allowed
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


async def test_metrics_names_and_route_templates(gateway: RunningGateway) -> None:
    async with client(gateway.url) as http:
        await http.get("/service/api/chats/12345/messages", headers=bearer(77))
        await http.get("/service/api/chats")
        text = (await http.get("/metrics")).text
    for name in (
        "gateway_request_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_user_request_total",
        "gateway_rate_limit_blocked_total",
    ):
        assert f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')}" in text
    assert 'route="/service/*",status="200"' in text
    assert 'route="/service/*",status="401"' in text
    assert 'gateway_user_request_total{user="77"}' in text
    assert "12345" not in text


async def test_promtool_accepts_the_exposition(gateway: RunningGateway) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        ci_requires("promtool is not installed (Debian package prometheus)")
    async with client(gateway.url) as http:
        await http.get("/", headers=bearer(1))
        await http.get("/service/api/x", headers=bearer(1))
        text = (await http.get("/metrics")).text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_user_label_cardinality_is_bounded(upstream: Upstream, make_gateway: Any) -> None:
    running: RunningGateway = make_gateway([upstream.url], PARLEY_METRICS_USER_LABELS="2")
    async with client(running.url) as http:
        for user in (101, 102, 103, 104, 101):
            await http.get("/service/api/chats", headers=bearer(user))
        text = (await http.get("/metrics")).text
    assert 'gateway_user_request_total{user="101"} 2.0' in text
    assert 'gateway_user_request_total{user="102"} 1.0' in text
    assert 'gateway_user_request_total{user="other"} 2.0' in text
    assert 'user="103"' not in text


async def test_access_log_is_one_json_line_without_token(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = token_for(42)
    marker = uuid.uuid4().hex
    with caplog.at_level(logging.INFO, logger="parley.gateway.access"):
        async with client(gateway.url) as http:
            await http.get(
                f"/service/api/profile?token={token}&mark={marker}",
                headers={"X-Request-ID": marker},
            )
        # the gateway thread logs once the response has gone out
        lines = await eventually(
            lambda: [r.getMessage() for r in caplog.records if marker in r.getMessage()],
            what="the access log line",
        )
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["request_id"] == marker
    assert entry["route"] == "/service/*"
    assert entry["status"] == 200
    assert entry["user_id"] == 42
    assert entry["duration_ms"] >= 0
    assert entry["query"] == f"mark={marker}"
    assert token not in lines[0]
