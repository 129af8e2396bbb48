"""Failed logins: counted per account and client IP before the password is checked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from parley.server.app import create_app
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import PASSWORD, make_user, unique


@pytest.fixture
async def server(database_url: str | None, tmp_path: Path) -> AsyncIterator[Running]:
    """A server with the default login limit (5 a minute), on each database."""
    overrides: dict[str, object] = {"PARLEY_RATE_LOGIN": "5/minute"}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, uvicorn_server, task = await start_server(test_settings(tmp_path, **overrides))
    yield running
    await stop_server(uvicorn_server, task)


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, cookies=no_cookies(), timeout=30) as c:
        yield c


async def _login(http: httpx.AsyncClient, name: str, password: str, ip: str) -> httpx.Response:
    # The server trusts X-Real-IP from a local peer: that is how the gateway passes it on.
    return await http.post(
        "/service/api/login",
        json={"username": name, "password": password},
        headers={"X-Real-IP": ip},
    )


async def test_guesses_from_one_address_do_not_lock_the_owner_out_elsewhere(
    http: httpx.AsyncClient,
) -> None:
    owner = await make_user(http)
    codes = [(await _login(http, owner.username, "wrong-guess", "203.0.113.1")).status_code]
    codes += [(await _login(http, owner.username, "wrong-guess", "203.0.113.1")).status_code]
    # The email counts as the same account.
    email = f"{owner.username}@example.com"
    for _ in range(3):
        codes.append((await _login(http, email, "wrong-guess", "203.0.113.1")).status_code)
    assert codes == [401] * 5
    over = await _login(http, email.upper(), PASSWORD, "203.0.113.1")
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    assert (await _login(http, owner.username, PASSWORD, "203.0.113.1")).status_code == 429
    elsewhere = await _login(http, owner.username, PASSWORD, "198.51.100.7")
    assert elsewhere.status_code == 200, elsewhere.text


async def test_concurrent_guesses_cannot_slip_past_the_limit(http: httpx.AsyncClient) -> None:
    owner = await make_user(http)
    answers = await asyncio.gather(
        *(_login(http, owner.username, f"guess-{i}", "203.0.113.50") for i in range(16))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [401] * 5 + [429] * 11


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "retry-after")}
    return response.status_code, response.content, headers


async def test_unknown_and_real_accounts_answer_alike_under_and_over_the_limit(
    http: httpx.AsyncClient,
) -> None:
    owner = await make_user(http)
    ghost = unique()
    for attempt in range(7):
        # Side by side, so that both windows start together (Retry-After counts from there).
        real, unknown = await asyncio.gather(
            _login(http, owner.username, "wrong-guess", "192.0.2.10"),
            _login(http, ghost, "wrong-guess", "192.0.2.10"),
        )
        assert _comparable(real) == _comparable(unknown), attempt
        assert real.status_code == (401 if attempt < 5 else 429)
        if attempt >= 5:
            retry = int(real.headers["retry-after"]), int(unknown.headers["retry-after"])
            assert abs(retry[0] - retry[1]) <= 1 and min(retry) >= 1


async def test_a_success_gives_the_slot_back(http: httpx.AsyncClient) -> None:
    owner = await make_user(http)
    for _ in range(3):
        assert (await _login(http, owner.username, PASSWORD, "203.0.113.9")).status_code == 200
    for _ in range(5):
        assert (await _login(http, owner.username, "wrong", "203.0.113.9")).status_code == 401
    assert (await _login(http, owner.username, "wrong", "203.0.113.9")).status_code == 429


@contextlib.asynccontextmanager
async def _in_process(
    tmp_path: Path, peer: str, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The server app in this process, its requests coming from `peer` (a gateway's address)."""
    app = create_app(test_settings(tmp_path, **overrides))
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://server") as http,
    ):
        yield http, app


async def _failed_logins(http: httpx.AsyncClient, ip: str, count: int) -> list[int]:
    return [(await _login(http, unique(), "wrong-guess", ip)).status_code for _ in range(count)]


def _proxy_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "PARLEY_TRUSTED_PROXIES" in r.getMessage()
    ]


async def test_behind_a_trusted_gateway_each_client_has_its_own_login_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The compose stack's servers trust their gateways' network (172.28.3.0/24)."""
    caplog.set_level(logging.WARNING, logger="parley")
    async with _in_process(
        tmp_path, "172.28.3.21", PARLEY_TRUSTED_PROXIES="172.28.3.0/24",
        PARLEY_RATE_LOGIN_IP="3/minute",
    ) as (http, _app):  # fmt: skip
        owner = await make_user(http)
        assert await _failed_logins(http, "198.51.100.1", 4) == [401, 401, 401, 429]
        other = await _login(http, owner.username, PASSWORD, "198.51.100.2")
        assert other.status_code == 200, other.text
    assert _proxy_warnings(caplog) == []


async def test_an_untrusted_gateway_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the trust every client is the gateway's address: one client's failures throttle
    everyone. The server says so in its log, once, not on every request."""
    caplog.set_level(logging.WARNING, logger="parley")
    async with _in_process(tmp_path, "172.28.3.21", PARLEY_RATE_LOGIN_IP="3/minute") as (
        http,
        app,
    ):
        owner = await make_user(http)  # no forwarded headers: nothing to warn about
        assert _proxy_warnings(caplog) == []
        assert await _failed_logins(http, "198.51.100.1", 4) == [401, 401, 401, 429]
        other = await _login(http, owner.username, PASSWORD, "198.51.100.2")
        assert other.status_code == 429  # locked out by somebody else's guesses
        forwarded_for = {"X-Forwarded-For": "198.51.100.3"}
        for _ in range(3):
            await http.post("/service/api/login", json={"username": "x", "password": "y"},
                            headers=forwarded_for)  # fmt: skip
        assert app.state.parley.warned_untrusted_proxy
    warnings = _proxy_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("forwarded client address from 172.28.3.21 ignored")


async def test_forwarded_headers_from_loopback_are_trusted_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="parley")
    async with _in_process(tmp_path, "127.0.0.1", PARLEY_RATE_LOGIN_IP="3/minute") as (http, _):
        owner = await make_user(http)
        assert await _failed_logins(http, "198.51.100.1", 4) == [401, 401, 401, 429]
        assert (await _login(http, owner.username, PASSWORD, "198.51.100.2")).status_code == 200
    assert _proxy_warnings(caplog) == []
