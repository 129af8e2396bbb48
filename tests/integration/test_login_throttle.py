"""Failed logins: counted per account and client IP before the password is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

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
