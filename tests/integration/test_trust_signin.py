"""Two-factor sign-in and one's own sessions, on SQLite and PostgreSQL.

The server runs on a clock the test sets (`Moving`), so TOTP codes are computed for known
times with pyotp's `at(for_time)`: replayed, stale and wrong codes are checked exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import websockets

from parley.server.accounts.service import promote_user
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import PASSWORD, Account, connect, make_user

STEP = 30


class Moving:
    """The server's wall clock: set by the test. Each test starts it 60 to 90 s before the
    real time, on a step boundary, so access tokens it issues stay valid for the real one
    (each test has its own users, so their last used steps never meet)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        real = datetime.now(UTC).timestamp()
        self.now = datetime.fromtimestamp((real // STEP) * STEP - 2 * STEP, UTC)

    def __call__(self) -> datetime:
        return self.now

    def step(self, count: int = 1) -> datetime:
        self.now += timedelta(seconds=STEP * count)
        return self.now


@pytest.fixture(scope="module")
def clock() -> Moving:
    return Moving()


@pytest.fixture(autouse=True)
def _fresh_clock(clock: Moving) -> None:
    clock.reset()


@pytest.fixture(scope="module")
async def server(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory, clock: Moving
) -> AsyncIterator[Running]:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    settings = test_settings(
        tmp_path_factory.mktemp("trust"), PARLEY_RATE_LOGIN="6/minute", **overrides
    )
    from parley.server.app import create_app

    running, uv, task = await _start(settings, clock, create_app)
    yield running
    await stop_server(uv, task)


async def _start(settings: Any, clock: Moving, create_app: Any) -> Any:
    # start_server builds the app itself; this one needs the clock
    import tests.conftest as conftest

    original = conftest.create_app
    conftest.create_app = lambda s: create_app(s, clock=clock)  # type: ignore[assignment]
    try:
        return await start_server(settings)
    finally:
        conftest.create_app = original


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, timeout=20, cookies=no_cookies()) as c:
        yield c


async def login(http: httpx.AsyncClient, who: Account) -> httpx.Response:
    return await http.post(
        "/service/api/login", json={"username": who.username, "password": PASSWORD}
    )


async def second_step(http: httpx.AsyncClient, token: str, **code: str) -> httpx.Response:
    return await http.post("/service/api/login/2fa", json={"mfa_token": token, **code})


async def enrolled(http: httpx.AsyncClient, clock: Moving) -> tuple[Account, pyotp.TOTP, list[str]]:
    """A user with two-factor sign-in on (enabled with the code of the clock's step)."""
    me = await make_user(http)
    setup = await http.post("/service/api/2fa/setup", headers=me.headers)
    assert setup.status_code == 200, setup.text
    body = setup.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/Parley:")
    assert body["qr_data_url"].startswith("data:image/svg+xml")
    totp = pyotp.TOTP(body["secret"])
    enable = await http.post(
        "/service/api/2fa/enable", json={"code": totp.at(clock.now)}, headers=me.headers
    )
    assert enable.status_code == 200, enable.text
    codes = enable.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return me, totp, codes


# --- two-factor -------------------------------------------------------------------------------


async def test_enable_needs_a_right_code_and_profile_says_two_factor(
    http: httpx.AsyncClient, clock: Moving
) -> None:
    me = await make_user(http)
    assert me.user["two_factor"] is False
    secret = (await http.post("/service/api/2fa/setup", headers=me.headers)).json()["secret"]
    wrong = await http.post("/service/api/2fa/enable", json={"code": "000000"}, headers=me.headers)
    if pyotp.TOTP(secret).at(clock.now) != "000000":
        assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_code"
    right = await http.post(
        "/service/api/2fa/enable",
        json={"code": pyotp.TOTP(secret).at(clock.now)},
        headers=me.headers,
    )
    assert right.status_code == 200
    profile = (await http.get("/service/api/profile", headers=me.headers)).json()
    assert profile["two_factor"] is True
    again = await http.post("/service/api/2fa/setup", headers=me.headers)
    assert again.status_code == 409 and again.json()["code"] == "2fa_enabled"


async def test_two_step_login_and_replayed_code_refused(
    http: httpx.AsyncClient, clock: Moving
) -> None:
    me, totp, _ = await enrolled(http, clock)
    first = await login(http, me)
    assert first.status_code == 200
    body = first.json()
    assert body["mfa_required"] is True and "access_token" not in body
    assert "set-cookie" not in first.headers
    # the code of the step used to enable it is spent
    replay = await second_step(http, body["mfa_token"], code=totp.at(clock.now))
    assert replay.status_code == 401 and replay.json()["code"] == "invalid_code"
    later = clock.step()
    ok = await second_step(http, body["mfa_token"], code=totp.at(later))
    assert ok.status_code == 200, ok.text
    tokens = ok.json()
    assert tokens["user"]["id"] == me.id and tokens["access_token"]
    profile = await http.get(
        "/service/api/profile", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert profile.status_code == 200
    again = await second_step(
        http, (await login(http, me)).json()["mfa_token"], code=totp.at(later)
    )
    assert again.status_code == 401 and again.json()["code"] == "invalid_code"


async def test_codes_within_one_step_only(http: httpx.AsyncClient, clock: Moving) -> None:
    me, totp, _ = await enrolled(http, clock)
    token = (await login(http, me)).json()["mfa_token"]
    now = clock.step(3)
    too_old = await second_step(http, token, code=totp.at(now - timedelta(seconds=2 * STEP)))
    assert too_old.status_code == 401
    too_new = await second_step(http, token, code=totp.at(now + timedelta(seconds=2 * STEP)))
    assert too_new.status_code == 401
    behind = await second_step(http, token, code=totp.at(now - timedelta(seconds=STEP)))
    assert behind.status_code == 200
    # a step before the last used one is refused even inside the window
    token = (await login(http, me)).json()["mfa_token"]
    older = await second_step(http, token, code=totp.at(now - timedelta(seconds=2 * STEP)))
    assert older.status_code == 401


async def test_recovery_code_works_once(http: httpx.AsyncClient, clock: Moving) -> None:
    me, _, codes = await enrolled(http, clock)
    token = (await login(http, me)).json()["mfa_token"]
    used = await second_step(http, token, recovery_code=codes[0].upper())
    assert used.status_code == 200, used.text
    token = (await login(http, me)).json()["mfa_token"]
    again = await second_step(http, token, recovery_code=codes[0])
    assert again.status_code == 401 and again.json()["code"] == "invalid_code"
    other = await second_step(http, token, recovery_code=codes[1])
    assert other.status_code == 200


async def test_wrong_codes_count_toward_the_login_limit(
    http: httpx.AsyncClient, clock: Moving
) -> None:
    """PARLEY_RATE_LOGIN is 6/minute here: the password and five wrong codes use it up."""
    me, totp, _ = await enrolled(http, clock)
    token = (await login(http, me)).json()["mfa_token"]
    right = totp.at(clock.step())
    wrong = "123456" if right != "123456" else "654321"
    for _ in range(5):
        answer = await second_step(http, token, code=wrong)
        assert answer.status_code == 401, answer.text
    limited = await second_step(http, token, code=right)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert "retry-after" in limited.headers


async def test_second_step_refuses_bad_tokens(http: httpx.AsyncClient, server: Running) -> None:
    me = await make_user(http)
    forged = await second_step(http, "not-a-token", code="123456")
    assert forged.status_code == 401 and forged.json()["code"] == "unauthorized"
    # an access token is no mfa token
    access = await second_step(http, me.access_token, code="123456")
    assert access.status_code == 401
    both = await http.post(
        "/service/api/login/2fa", json={"mfa_token": "x", "code": "1", "recovery_code": "2"}
    )
    assert both.status_code == 422 and both.json()["code"] == "validation_error"


async def test_mfa_token_expires_on_the_servers_clock(
    http: httpx.AsyncClient, clock: Moving
) -> None:
    me, totp, _ = await enrolled(http, clock)
    token = (await login(http, me)).json()["mfa_token"]
    saved = clock.now
    clock.now = saved + timedelta(seconds=301)
    try:
        late = await second_step(http, token, code=totp.at(clock.now))
    finally:
        clock.now = saved + timedelta(seconds=STEP * 12)  # later than every step used
    assert late.status_code == 401 and late.json()["code"] == "unauthorized"


async def test_disable_needs_password_and_code(http: httpx.AsyncClient, clock: Moving) -> None:
    me, totp, _ = await enrolled(http, clock)
    code = totp.at(clock.step())
    bad_password = await http.post(
        "/service/api/2fa/disable", json={"password": "nope-nope", "code": code}, headers=me.headers
    )
    assert bad_password.status_code == 403 and bad_password.json()["code"] == "invalid_credentials"
    bad_code = await http.post(
        "/service/api/2fa/disable",
        json={"password": PASSWORD, "code": "000000" if code != "000000" else "111111"},
        headers=me.headers,
    )
    assert bad_code.status_code == 403 and bad_code.json()["code"] == "invalid_code"
    done = await http.post(
        "/service/api/2fa/disable", json={"password": PASSWORD, "code": code}, headers=me.headers
    )
    assert done.status_code == 204
    plain = await login(http, me)
    assert plain.status_code == 200 and "access_token" in plain.json()


async def test_required_two_factor_allows_only_setup(
    tmp_path: Path, clock: Moving, database_url: str | None
) -> None:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    settings = test_settings(tmp_path, PARLEY_REQUIRE_2FA="admins", **overrides)
    from parley.server.app import create_app

    running, uv, task = await _start(settings, clock, create_app)
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as h:
            plain, boss = await make_user(h), await make_user(h)
            async with running.state.sessions() as session:
                await promote_user(session, username=boss.username)
            assert (await h.get("/service/api/chats", headers=plain.headers)).status_code == 200
            refused = await h.get("/service/api/chats", headers=boss.headers)
            assert refused.status_code == 403 and refused.json()["code"] == "2fa_required"
            history = await h.get("/service/api/chats/1/messages", headers=boss.headers)
            assert history.status_code == 403 and history.json()["code"] == "2fa_required"
            setup = await h.post("/service/api/2fa/setup", headers=boss.headers)
            assert setup.status_code == 200
            code = pyotp.TOTP(setup.json()["secret"]).at(clock.now)
            enable = await h.post(
                "/service/api/2fa/enable", json={"code": code}, headers=boss.headers
            )
            assert enable.status_code == 200
            assert (await h.get("/service/api/chats", headers=boss.headers)).status_code == 200
    finally:
        await stop_server(uv, task)


# --- sessions ---------------------------------------------------------------------------------


async def test_sessions_list_marks_current_and_reads_device(http: httpx.AsyncClient) -> None:
    me = await make_user(http)
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    other = await http.post(
        "/service/api/login",
        json={"username": me.username, "password": PASSWORD},
        headers={"User-Agent": firefox},
    )
    mine = await http.get("/service/api/sessions", headers=me.headers)
    assert mine.status_code == 200
    rows = mine.json()
    assert len(rows) == 2
    assert all(r["ip"] == "127.0.0.1" for r in rows)  # registration's session too
    assert [r["current"] for r in rows].count(True) == 1
    browser = next(r for r in rows if r["user_agent"] == firefox)
    assert browser["device"] == "Firefox on Linux" and browser["current"] is False
    assert browser["ip"] == "127.0.0.1" and browser["last_used_at"] is not None
    theirs = await http.get(
        "/service/api/sessions",
        headers={"Authorization": f"Bearer {other.json()['access_token']}"},
    )
    assert next(r for r in theirs.json() if r["user_agent"] == firefox)["current"] is True


async def test_ending_a_session_closes_its_socket_and_requests(
    http: httpx.AsyncClient, server: Running
) -> None:
    me = await make_user(http)
    data = (await login(http, me)).json()
    second = Account(me.id, me.username, data["access_token"], data["refresh_token"])
    doomed = await connect(server.ws_base, me)
    kept = await connect(server.ws_base, second)
    rows = (await http.get("/service/api/sessions", headers=second.headers)).json()
    target = next(r for r in rows if not r["current"])
    ended = await http.delete(f"/service/api/sessions/{target['id']}", headers=second.headers)
    assert ended.status_code == 204
    await _closed_with(doomed, 4001)
    assert (await http.get("/service/api/profile", headers=me.headers)).status_code == 401
    refresh = await http.post("/service/api/refresh", json={"refresh_token": me.refresh_token})
    assert refresh.status_code == 401
    await kept.send(json.dumps({"type": "ping"}))
    assert (await http.get("/service/api/profile", headers=second.headers)).status_code == 200
    await kept.close()
    gone = await http.delete(f"/service/api/sessions/{target['id']}", headers=second.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "session_not_found"


async def test_someone_elses_session_is_not_found(http: httpx.AsyncClient) -> None:
    me, other = await make_user(http), await make_user(http)
    theirs = (await http.get("/service/api/sessions", headers=other.headers)).json()[0]["id"]
    answer = await http.delete(f"/service/api/sessions/{theirs}", headers=me.headers)
    assert answer.status_code == 404
    assert (await http.get("/service/api/profile", headers=other.headers)).status_code == 200


async def test_end_all_other_sessions(http: httpx.AsyncClient, server: Running) -> None:
    me = await make_user(http)
    others = [(await login(http, me)).json() for _ in range(2)]
    socket = await connect(
        server.ws_base, Account(me.id, me.username, others[0]["access_token"], "")
    )
    answer = await http.delete("/service/api/sessions", headers=me.headers)
    assert answer.status_code == 204
    await _closed_with(socket, 4001)
    rows = (await http.get("/service/api/sessions", headers=me.headers)).json()
    assert len(rows) == 1 and rows[0]["current"] is True
    for other in others:
        bearer = {"Authorization": f"Bearer {other['access_token']}"}
        assert (await http.get("/service/api/profile", headers=bearer)).status_code == 401


async def test_refresh_updates_last_used(http: httpx.AsyncClient, clock: Moving) -> None:
    me = await make_user(http)
    before = (await http.get("/service/api/sessions", headers=me.headers)).json()[0]
    clock.step()
    fresh = await http.post("/service/api/refresh", json={"refresh_token": me.refresh_token})
    assert fresh.status_code == 200
    bearer = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    after = (await http.get("/service/api/sessions", headers=bearer)).json()[0]
    assert after["id"] == before["id"]
    assert datetime.fromisoformat(after["last_used_at"]) > datetime.fromisoformat(
        before["last_used_at"]
    )


async def _closed_with(ws: Any, code: int) -> None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
