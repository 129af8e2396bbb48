"""The gateway's /metrics answers only to PARLEY_METRICS_ALLOW, judged by the real client IP."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.gateway.conftest import RunningGateway, Upstream


async def test_metrics_refused_outside_the_allow_list(
    upstream: Upstream, make_gateway: Any
) -> None:
    running: RunningGateway = make_gateway([upstream.url], PARLEY_METRICS_ALLOW="10.0.0.0/8")
    async with httpx.AsyncClient(base_url=running.url) as http:
        refused = await http.get("/metrics")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "gateway_request_total" not in refused.text


async def test_metrics_use_the_client_ip_behind_a_trusted_proxy(
    upstream: Upstream, make_gateway: Any
) -> None:
    running: RunningGateway = make_gateway([upstream.url], PARLEY_TRUSTED_PROXIES="127.0.0.0/8")
    async with httpx.AsyncClient(base_url=running.url) as http:
        public = await http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        private = await http.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
        spoofed_direct = await http.get("/metrics")
    assert public.status_code == 403
    assert private.status_code == 200 and "gateway_request_total" in private.text
    assert spoofed_direct.status_code == 200  # loopback itself is allowed by default
