"""E-mail against a real SMTP server (aiosmtpd on a loopback port): verification, password
reset, invitations, the limits, and what happens without SMTP. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from parley.server.accounts.service import promote_user
from parley.server.db.models import EmailToken
from tests.conftest import Running, free_port, no_cookies, start_server, stop_server, test_settings
from tests.factories import PASSWORD, Account, make_user, unique
from tests.waiting import eventually

PUBLIC = "https://chat.example.test"
NEW_PASSWORD = "a brand new password"
_addresses = itertools.count(1)


@dataclass
class Inbox:
    """What the SMTP server received, each parsed with the `email` package."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait(self, address: str, count: int = 1) -> list[EmailMessage]:
        """The messages to `address`, once there are `count` of them (5 s at most)."""
        return await eventually(
            lambda: len(self.to(address)) >= count and self.to(address),
            what=f"{count} mail(s) to {address}",
        )


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def link_in(message: EmailMessage, path: str) -> str:
    """The token of the link to `path` in the message (also in its HTML part)."""
    start = PUBLIC + path + "#"
    line = next(line for line in text_of(message).splitlines() if line.startswith(start))
    assert f'href="{line}"' in html_of(message)
    return line.removeprefix(start)


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    found = Inbox(port=free_port())
    controller = Controller(found, hostname="127.0.0.1", port=found.port)
    controller.start()
    yield found
    controller.stop()


@pytest.fixture(scope="module")
async def mailing(
    database_url: str | None, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """A server that sends e-mail through the test SMTP server; it trusts the loopback as a
    proxy, so each test gives its client an address of its own (X-Real-IP)."""
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    settings = test_settings(
        tmp_path_factory.mktemp("mail"),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=inbox.port,
        SMTP_TLS="none",
        SMTP_FROM="Parley <noreply@chat.example.test>",
        PARLEY_PUBLIC_URL=PUBLIC + "/",
        PARLEY_TRUSTED_PROXIES="127.0.0.1",
        **overrides,
    )
    running, server, task = await start_server(settings)
    yield running
    await stop_server(server, task)


@pytest.fixture
async def http(mailing: Running) -> AsyncIterator[httpx.AsyncClient]:
    n = next(_addresses)
    ip = f"10.9.{n // 250}.{n % 250 + 1}"
    async with httpx.AsyncClient(
        base_url=mailing.base, timeout=20, cookies=no_cookies(), headers={"X-Real-IP": ip}
    ) as client:
        yield client


async def register(http: httpx.AsyncClient, **headers: str) -> tuple[Account, str]:
    name = unique()
    address = f"{name}@example.com"
    answer = await http.post(
        "/service/api/register",
        json={"username": name, "email": address, "password": PASSWORD},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    data = answer.json()
    account = Account(data["user"]["id"], name, data["access_token"], data["refresh_token"])
    account.user = data["user"]
    return account, address


async def test_registering_sends_a_verification_link_that_works_once(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    me, address = await register(http)
    assert me.user["email_verified"] is False
    [message] = await inbox.wait(address)
    assert message["From"] == "Parley <noreply@chat.example.test>"
    assert message["Subject"] == "Confirm your e-mail address"
    token = link_in(message, "/verify-email")
    verified = await http.post("/service/api/email/verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["id"] == me.id and verified.json()["email_verified"] is True
    profile = await http.get("/service/api/profile", headers=me.headers)
    assert profile.json()["email_verified"] is True
    replay = await http.post("/service/api/email/verify", json={"token": token})
    assert replay.status_code == 410 and replay.json()["code"] == "token_invalid"
    others = await http.get(f"/service/api/users/{me.id}", headers=(await make_user(http)).headers)
    assert "email_verified" not in others.json() and "email" not in others.json()


async def test_a_new_address_is_unverified_until_its_own_link(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    me, address = await register(http, **{"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    [first] = await inbox.wait(address)
    assert first["Subject"] == "Подтвердите адрес электронной почты"
    old_token = link_in(first, "/verify-email")
    await http.post("/service/api/email/verify", json={"token": old_token})
    new_address = f"new-{address}"
    changed = await http.patch(
        "/service/api/profile", json={"email": new_address}, headers=me.headers
    )
    assert changed.json()["email_verified"] is False
    [second] = await inbox.wait(new_address)
    token = link_in(second, "/verify-email")
    assert (await http.post("/service/api/email/verify", json={"token": token})).json()[
        "email_verified"
    ] is True


async def test_a_link_for_an_old_address_does_not_verify_the_new_one(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    me, address = await register(http)
    [first] = await inbox.wait(address)
    await http.patch("/service/api/profile", json={"email": f"x-{address}"}, headers=me.headers)
    stale = await http.post(
        "/service/api/email/verify", json={"token": link_in(first, "/verify-email")}
    )
    assert stale.status_code == 410 and stale.json()["code"] == "token_invalid"


async def test_resend_sends_a_fresh_link_and_voids_the_old(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    me, address = await register(http)
    [first] = await inbox.wait(address)
    resent = await http.post("/service/api/email/verify/resend", headers=me.headers)
    assert resent.status_code == 202
    second = (await inbox.wait(address, 2))[1]
    old = await http.post(
        "/service/api/email/verify", json={"token": link_in(first, "/verify-email")}
    )
    assert old.status_code == 410
    new = await http.post(
        "/service/api/email/verify", json={"token": link_in(second, "/verify-email")}
    )
    assert new.status_code == 200


async def forgot(http: httpx.AsyncClient, address: str) -> httpx.Response:
    return await http.post("/service/api/password/forgot", json={"email": address})


async def test_forgot_answers_the_same_for_unknown_addresses(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    _, address = await register(http)
    unknown = f"nobody-{unique()}@example.com"
    known_answer, unknown_answer = await forgot(http, address), await forgot(http, unknown)
    assert known_answer.status_code == unknown_answer.status_code == 202
    assert known_answer.json() == unknown_answer.json()
    assert "reset" in known_answer.json()["detail"]
    await inbox.wait(address, 2)  # the verification, then the reset
    await asyncio.sleep(0)  # nothing is pending for the unknown address: it was never sent
    assert inbox.to(unknown) == []


async def test_a_reset_link_works_once_and_ends_every_session(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    me, address = await register(http)
    await forgot(http, address)
    reset = (await inbox.wait(address, 2))[1]
    assert reset["Subject"] == "Reset your password"
    token = link_in(reset, "/reset-password")
    done = await http.post(
        "/service/api/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
    old_access = await http.get("/service/api/profile", headers=me.headers)
    assert old_access.status_code == 401
    old_refresh = await http.post("/service/api/refresh", json={"refresh_token": me.refresh_token})
    assert old_refresh.status_code == 401
    login = await http.post(
        "/service/api/login", json={"username": me.username, "password": NEW_PASSWORD}
    )
    assert login.status_code == 200
    stale = await http.post(
        "/service/api/login", json={"username": me.username, "password": PASSWORD}
    )
    assert stale.status_code == 401
    replay = await http.post(
        "/service/api/password/reset", json={"token": token, "new_password": "yet another one"}
    )
    assert replay.status_code == 410 and replay.json()["code"] == "token_invalid"


async def test_a_newer_link_or_a_password_change_voids_a_reset_link(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    me, address = await register(http)
    await forgot(http, address)
    await forgot(http, address)
    first, second = (await inbox.wait(address, 3))[1:3]
    older = await http.post(
        "/service/api/password/reset",
        json={"token": link_in(first, "/reset-password"), "new_password": NEW_PASSWORD},
    )
    assert older.status_code == 410
    changed = await http.post(
        "/service/api/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=me.headers,
    )
    assert changed.status_code == 204
    newer = await http.post(
        "/service/api/password/reset",
        json={"token": link_in(second, "/reset-password"), "new_password": "third password"},
    )
    assert newer.status_code == 410 and newer.json()["code"] == "token_invalid"


async def test_a_reset_link_expires_after_an_hour(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    me, address = await register(http)
    await forgot(http, address)
    token = link_in((await inbox.wait(address, 2))[1], "/reset-password")
    async with mailing.state.sessions() as session:
        rows = await session.execute(
            update(EmailToken)
            .where(EmailToken.user_id == me.id, EmailToken.purpose == "reset")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        assert rows.rowcount == 1
        await session.commit()
    expired = await http.post(
        "/service/api/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert expired.status_code == 410


async def test_forgot_is_limited_per_address_and_per_client(
    http: httpx.AsyncClient, inbox: Inbox
) -> None:
    _, address = await register(http)
    answers = [await forgot(http, address) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert (
        answers[3].json()["code"] == "rate_limited" and int(answers[3].headers["retry-after"]) > 0
    )
    await inbox.wait(address, 4)  # one verification and three resets, no fourth
    others = [await forgot(http, f"{unique()}@example.com") for _ in range(7)]
    assert [a.status_code for a in others] == [202] * 6 + [429]  # 10 per client IP in all


async def test_an_admin_invite_with_an_address_is_mailed(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    admin, _ = await register(http)
    async with mailing.state.sessions() as session:
        assert await promote_user(session, username=admin.username)
    friend = f"friend-{unique()}@example.com"
    made = await http.post(
        "/service/api/admin/invites", json={"email": friend}, headers=admin.headers
    )
    assert made.status_code == 201
    [message] = await inbox.wait(friend)
    assert made.json()["url"] == f"{PUBLIC}/invite/{made.json()['code']}"
    assert made.json()["url"] in text_of(message)
    assert admin.username in text_of(message) or admin.user["display_name"] in text_of(message)


async def test_without_smtp_the_mail_routes_answer_503(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    assert "email_verified" in me.user
    for answer in (
        await client.post("/service/api/password/forgot", json={"email": "a@example.com"}),
        await client.post("/service/api/email/verify/resend", headers=me.headers),
    ):
        assert answer.status_code == 503 and answer.json()["code"] == "email_disabled"
    bad = await client.post(
        "/service/api/password/reset", json={"token": "nope", "new_password": NEW_PASSWORD}
    )
    assert bad.status_code == 410 and bad.json()["code"] == "token_invalid"


def test_reset_password_prints_a_one_time_link(tmp_path: Path) -> None:
    env = {**os.environ, "PARLEY_PUBLIC_URL": PUBLIC}
    for key in ("DATABASE_URL", "SMTP_HOST", "REDIS_URL"):
        env.pop(key, None)

    def parley(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "parley.cli", *args, "--data-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = parley("reset-password", "nobody")
    assert missing.returncode == 1 and "No user named 'nobody'" in missing.stderr
    asyncio.run(_reset_through_the_printed_link(tmp_path, parley))


async def _reset_through_the_printed_link(tmp_path: Path, parley: Any) -> None:
    running, server, task = await start_server(
        test_settings(tmp_path, PARLEY_PUBLIC_URL=PUBLIC, JWT_SECRET=None)
    )
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            printed = await asyncio.to_thread(parley, "reset-password", me.username)
            assert printed.returncode == 0, printed.stderr
            link = printed.stdout.strip().splitlines()[-1]
            assert link.startswith(f"{PUBLIC}/reset-password#")
            token = link.partition("#")[2]
            body = {"token": token, "new_password": NEW_PASSWORD}
            assert (await http.post("/service/api/password/reset", json=body)).status_code == 204
            assert (await http.post("/service/api/password/reset", json=body)).status_code == 410
            login = await http.post(
                "/service/api/login", json={"username": me.username, "password": NEW_PASSWORD}
            )
            assert login.status_code == 200
    finally:
        await stop_server(server, task)
