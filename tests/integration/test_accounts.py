"""Accounts over HTTP on SQLite and PostgreSQL: registration, login, tokens, sessions."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
import websockets

from parley.security import make_access_token
from tests.conftest import Running
from tests.factories import PASSWORD, connect, make_user, unique


async def test_register_returns_tokens_and_own_profile(client: httpx.AsyncClient) -> None:
    name = unique("Reg")
    response = await client.post(
        "/service/api/register",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "display_name": "  Ann  ",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert body["user"]["username"] == name and body["user"]["display_name"] == "Ann"
    assert body["user"]["email"] == f"{name}@example.com" and body["user"]["is_admin"] is False
    assert "parley_access" in response.cookies
    cookie_header = response.headers.get_list("set-cookie")
    assert any("HttpOnly" in c and "SameSite=strict" in c for c in cookie_header)


async def test_new_user_is_in_general(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    chats = (await client.get("/service/api/chats", headers=me.headers)).json()
    assert [c["title"] for c in chats if c["type"] == "channel"] == ["general"]


@pytest.mark.parametrize(
    "change",
    [
        {"username": "ab"},
        {"username": "bad name!"},
        {"username": "x" * 33},
        {"password": "short"},
        {"email": "not-an-email"},
        {"display_name": "evil\u202egnp.exe"},
        {"display_name": "zero\u200bwidth"},
        {"display_name": "nul\x00byte"},
        {"is_admin": True},
    ],
)
async def test_register_refuses_bad_input(
    client: httpx.AsyncClient, change: dict[str, object]
) -> None:
    name = unique()
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **change}
    response = await client.post("/service/api/register", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error" and response.json()["detail"]


async def test_duplicate_username_ignores_case_and_email_taken(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    again = await client.post(
        "/service/api/register",
        json={
            "username": me.username.upper(),
            "email": unique() + "@example.com",
            "password": PASSWORD,
        },
    )
    assert again.status_code == 409 and again.json()["code"] == "username_taken"
    email = await client.post(
        "/service/api/register",
        json={"username": unique(), "email": f"{me.username}@EXAMPLE.com", "password": PASSWORD},
    )
    assert email.status_code == 409 and email.json()["code"] == "email_taken"


async def test_login_by_username_or_email_and_no_enumeration(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    by_name = await client.post(
        "/service/api/login", json={"username": me.username, "password": PASSWORD}
    )
    assert by_name.status_code == 200 and by_name.json()["user"]["id"] == me.id
    by_email = await client.post(
        "/service/api/login", json={"username": f"{me.username}@example.com", "password": PASSWORD}
    )
    assert by_email.status_code == 200 and by_email.json()["user"]["id"] == me.id
    wrong = await client.post(
        "/service/api/login", json={"username": me.username, "password": "nope-nope"}
    )
    unknown = await client.post(
        "/service/api/login", json={"username": unique(), "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"


async def test_repeated_failed_logins_are_throttled(tmp_path, live: Running) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import no_cookies, start_server, stop_server, test_settings

    running, server, task = await start_server(
        test_settings(tmp_path, PARLEY_RATE_LOGIN="3/minute")
    )
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            codes = []
            for _ in range(5):
                r = await http.post(
                    "/service/api/login", json={"username": me.username, "password": "wrongwrong"}
                )
                codes.append(r.status_code)
            assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
            limited = await http.post(
                "/service/api/login", json={"username": me.username, "password": PASSWORD}
            )
            assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            other = await make_user(http)
            fine = await http.post(
                "/service/api/login", json={"username": other.username, "password": PASSWORD}
            )
            assert fine.status_code == 200
    finally:
        await stop_server(server, task)


async def test_refresh_rotates_and_reuse_revokes_session(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    first = await client.post("/service/api/refresh", json={"refresh_token": me.refresh_token})
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != me.refresh_token
    reused = await client.post("/service/api/refresh", json={"refresh_token": me.refresh_token})
    assert reused.status_code == 401
    # The theft signal revokes the whole session: the new pair stops working too.
    later = await client.post("/service/api/refresh", json={"refresh_token": pair["refresh_token"]})
    assert later.status_code == 401
    profile = await client.get(
        "/service/api/profile", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert profile.status_code == 401


async def test_logout_revokes_session_and_refresh(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    assert (await client.get("/service/api/profile", headers=me.headers)).status_code == 200
    out = await client.post("/service/api/logout", headers=me.headers)
    assert out.status_code == 204
    after = await client.get("/service/api/profile", headers=me.headers)
    assert after.status_code == 401 and after.json()["code"] == "unauthorized"
    refresh = await client.post("/service/api/refresh", json={"refresh_token": me.refresh_token})
    assert refresh.status_code == 401


async def test_password_change_revokes_other_sessions(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    other = (
        await client.post(
            "/service/api/login", json={"username": me.username, "password": PASSWORD}
        )
    ).json()
    wrong = await client.post(
        "/service/api/password",
        json={"current_password": "wrong-wrong", "new_password": "n3w-password"},
        headers=me.headers,
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_credentials"
    ok = await client.post(
        "/service/api/password",
        json={"current_password": PASSWORD, "new_password": "n3w-password"},
        headers=me.headers,
    )
    assert ok.status_code == 204
    assert (await client.get("/service/api/profile", headers=me.headers)).status_code == 200
    stale = await client.get(
        "/service/api/profile", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert stale.status_code == 401
    old = await client.post(
        "/service/api/login", json={"username": me.username, "password": PASSWORD}
    )
    assert old.status_code == 401
    new = await client.post(
        "/service/api/login", json={"username": me.username, "password": "n3w-password"}
    )
    assert new.status_code == 200


async def test_logout_closes_open_websocket_4001(client: httpx.AsyncClient, live: Running) -> None:
    me = await make_user(client)
    ws = await connect(live.ws_base, me)
    await client.post("/service/api/logout", headers=me.headers)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_password_change_closes_other_sessions_websocket(
    client: httpx.AsyncClient, live: Running
) -> None:
    me = await make_user(client)
    login = (
        await client.post(
            "/service/api/login", json={"username": me.username, "password": PASSWORD}
        )
    ).json()
    from tests.factories import Account

    second = Account(me.id, me.username, login["access_token"], login["refresh_token"])
    kept = await connect(live.ws_base, me)
    doomed = await connect(live.ws_base, second)
    await client.post(
        "/service/api/password",
        json={"current_password": PASSWORD, "new_password": "n3w-password"},
        headers=me.headers,
    )
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await doomed.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    await kept.send(json.dumps({"type": "ping"}))
    from tests.factories import recv_type

    assert (await recv_type(kept, "pong"))["type"] == "pong"
    await kept.close()


def _forge(claims: dict[str, object], header: dict[str, object]) -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}."


async def test_bad_tokens_are_refused(client: httpx.AsyncClient, live: Running) -> None:
    me = await make_user(client)
    key = live.state.jwt_key
    claims = jwt.decode(me.access_token, options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(hours=2)
    tokens = {
        "alg none": _forge(claims, {"alg": "none", "typ": "JWT"}),
        "tampered": me.access_token[:-4]
        + ("AAAA" if not me.access_token.endswith("AAAA") else "BBBB"),
        "wrong key": jwt.encode(
            claims, "another-secret-that-is-long-enough-0123456789", algorithm="HS256"
        ),
        "HS512": jwt.encode(claims, key, algorithm="HS512"),
        "expired": make_access_token(
            key, user_id=me.id, session_id=claims["sid"], ttl_seconds=60, now=past
        ),
        "no sid": jwt.encode(
            {k: v for k, v in claims.items() if k != "sid"}, key, algorithm="HS256"
        ),
        "wrong issuer": jwt.encode({**claims, "iss": "other"}, key, algorithm="HS256"),
        "refresh token": me.refresh_token,
        "garbage": "not.a.token",
    }
    for name, token in tokens.items():
        response = await client.get(
            "/service/api/profile", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        assert response.json()["code"] == "unauthorized", name
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{live.ws_base}/service/ws?token={tokens['alg none']}")
    assert refused.value.response.status_code == 401


async def test_session_ids_are_random_128_bit(client: httpx.AsyncClient, live: Running) -> None:
    """Logins back to back get unrelated sids; a token made with the key for a guessed sid
    (a row number, or the next one) is refused."""
    me = await make_user(client)
    tokens = [me.access_token]
    for _ in range(2):
        login = await client.post(
            "/service/api/login", json={"username": me.username, "password": PASSWORD}
        )
        assert login.status_code == 200
        tokens.append(login.json()["access_token"])
    sids = [jwt.decode(t, options={"verify_signature": False})["sid"] for t in tokens]
    for sid in sids:
        assert isinstance(sid, str) and len(sid) == 32 and int(sid, 16) >= 0, sid
    values = sorted(int(sid, 16) for sid in sids)
    assert len(set(values)) == 3
    assert all(b - a > 2**64 for a, b in itertools.pairwise(values)), sids  # not 1 apart
    key = live.state.jwt_key
    for guess in ("1", format(values[0] + 1, "032x"), "0" * 32):
        forged = make_access_token(key, user_id=me.id, session_id=guess, ttl_seconds=60)
        answer = await client.get(
            "/service/api/profile", headers={"Authorization": f"Bearer {forged}"}
        )
        assert answer.status_code == 401, guess
    real = await client.get(
        "/service/api/profile", headers={"Authorization": f"Bearer {tokens[2]}"}
    )
    assert real.status_code == 200


async def test_cookie_auth_needs_matching_origin(client: httpx.AsyncClient, live: Running) -> None:
    me = await make_user(client)
    cookies = {"parley_access": me.access_token}
    host = live.base.removeprefix("http://")
    read = await client.get("/service/api/profile", cookies=cookies)
    assert read.status_code == 200
    foreign = await client.patch(
        "/service/api/profile",
        json={"bio": "x"},
        cookies=cookies,
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and foreign.json()["code"] == "bad_origin"
    missing = await client.patch("/service/api/profile", json={"bio": "x"}, cookies=cookies)
    assert missing.status_code == 403 and missing.json()["code"] == "bad_origin"
    same = await client.patch(
        "/service/api/profile",
        json={"bio": "hello"},
        cookies=cookies,
        headers={"Origin": f"http://{host}"},
    )
    assert same.status_code == 200 and same.json()["bio"] == "hello"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            f"{live.ws_base}/service/ws",
            additional_headers={"Cookie": f"parley_access={me.access_token}"},
            origin="https://evil.example",  # type: ignore[arg-type]
        )
    assert refused.value.response.status_code == 403


async def test_profile_update_and_fields_not_owned(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    ok = await client.patch(
        "/service/api/profile", json={"display_name": "Алиса", "bio": "Привет"}, headers=me.headers
    )
    assert ok.status_code == 200
    assert ok.json()["display_name"] == "Алиса" and ok.json()["bio"] == "Привет"
    sneaky = await client.patch("/service/api/profile", json={"is_admin": True}, headers=me.headers)
    assert sneaky.status_code == 422
    profile = (await client.get("/service/api/profile", headers=me.headers)).json()
    assert profile["is_admin"] is False


async def test_users_listing_search_and_privacy(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    other = await make_user(client, display_name="Findable Person")
    found = (
        await client.get(
            "/service/api/users", params={"q": other.username[3:10]}, headers=me.headers
        )
    ).json()
    assert [u["id"] for u in found] == [other.id]
    assert "email" not in found[0]
    single = await client.get(f"/service/api/users/{other.id}", headers=me.headers)
    assert single.status_code == 200 and single.json()["display_name"] == "Findable Person"
    assert "email" not in single.json()
    assert single.json()["avatar_data_url"] is None  # on this route only, null without avatar
    assert "avatar_data_url" not in found[0]
    missing = await client.get("/service/api/users/99999999", headers=me.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "user_not_found"
    assert (await client.get("/service/api/users")).status_code == 401
