"""The gateway lets the invitation preview and the e-mail link routes through without a
token, and still asks one for accepting an invitation."""

from __future__ import annotations

import httpx
import pytest

from .conftest import RunningGateway, Upstream


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/service/api/invites/AbC-12_x"),
        ("POST", "/service/api/password/forgot"),
        ("POST", "/service/api/password/reset"),
        ("POST", "/service/api/email/verify"),
        ("POST", "/service/api/email/unsubscribe"),
        ("GET", "/service/api/email/unsubscribe"),
    ],
)
def test_public_reach_routes_pass_without_a_token(
    gateway: RunningGateway, upstream: Upstream, method: str, path: str
) -> None:
    answer = httpx.request(method, gateway.url + path, json={})
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == path  # it reached the server


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/service/api/invites/AbC/accept"),
        ("GET", "/service/api/invites/AbC/accept"),
        ("GET", "/service/api/invites/"),
        ("POST", "/service/api/invites/AbC"),
        ("GET", "/service/api/admin/invites"),
        ("POST", "/service/api/email/verify/resend"),
    ],
)
def test_accepting_and_the_rest_need_a_token(
    gateway: RunningGateway, upstream: Upstream, method: str, path: str
) -> None:
    before = len(upstream.seen)
    answer = httpx.request(method, gateway.url + path)
    assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
    assert len(upstream.seen) == before  # the gateway answered itself
