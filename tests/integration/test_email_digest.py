"""Missed-message e-mail digests against a real SMTP server (aiosmtpd on a loopback port):
after the delay and not before, one an hour, only unread direct messages and mentions,
honouring mute, blocks, verification and the user's choice, in the user's language, and
the one-click unsubscribe (RFC 8058). SQLite and PostgreSQL.

Most tests call the worker's job (`send_digests`) with a time of their choosing, so "15
minutes later" and "an hour later" need no waiting; one test lets the worker loop of a
server with a short delay send one by itself."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from parley.server.db.models import User
from parley.server.email.digest import send_digests
from tests.conftest import Running, free_port, no_cookies, start_server, stop_server, test_settings
from tests.factories import PASSWORD, Account, make_direct, make_group, make_user, send, unique
from tests.integration.test_email import PUBLIC, Inbox, html_of, text_of
from tests.waiting import assert_nothing_within, eventually

_addresses = itertools.count(1)
SMTP = {"SMTP_TLS": "none", "SMTP_FROM": "Parley <noreply@chat.example.test>"}


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    found = Inbox(port=free_port())
    controller = Controller(found, hostname="127.0.0.1", port=found.port)
    controller.start()
    yield found
    controller.stop()


async def _server(
    database_url: str | None, inbox: Inbox, data_dir: object, **extra: object
) -> tuple[Running, object, object]:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    settings = test_settings(
        data_dir,  # type: ignore[arg-type]
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=inbox.port,
        PARLEY_PUBLIC_URL=PUBLIC + "/",
        PARLEY_TRUSTED_PROXIES="127.0.0.1",
        **SMTP,
        **overrides,
        **extra,
    )
    return await start_server(settings)


@pytest.fixture(scope="module")
async def mailing(
    database_url: str | None, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """The server's own worker waits the default 15 minutes: the tests move time
    themselves by calling `digest_at`."""
    running, server, task = await _server(database_url, inbox, tmp_path_factory.mktemp("dg"))
    yield running
    await stop_server(server, task)  # type: ignore[arg-type]


@pytest.fixture
async def http(mailing: Running) -> AsyncIterator[httpx.AsyncClient]:
    n = next(_addresses)
    ip = f"10.8.{n // 250}.{n % 250 + 1}"
    async with httpx.AsyncClient(
        base_url=mailing.base, timeout=20, cookies=no_cookies(), headers={"X-Real-IP": ip}
    ) as client:
        yield client


async def verified(http: httpx.AsyncClient, running: Running, **profile: object) -> Account:
    """A user whose address is confirmed (as following the link would), with `profile`
    PATCHed."""
    who = await make_user(http)
    async with running.state.sessions() as session:
        await session.execute(
            update(User).where(User.id == who.id).values(email_verified_at=datetime.now(UTC))
        )
        await session.commit()
    if profile:
        answer = await http.patch("/service/api/profile", json=profile, headers=who.headers)
        assert answer.status_code == 200, answer.text
    return who


def address(who: Account) -> str:
    return f"{who.username}@example.com"


def digests(inbox: Inbox, who: Account) -> list[EmailMessage]:
    return [m for m in inbox.to(address(who)) if m["List-Unsubscribe"]]


async def digest_at(running: Running, minutes: float) -> None:
    """Runs the worker's digest job as if `minutes` had passed since now."""
    settings = running.state.settings
    await send_digests(
        running.state.sessions,
        running.state.mailer,
        now=datetime.now(UTC) + timedelta(minutes=minutes),
        delay=timedelta(minutes=settings.email_digest_minutes),
        base=settings.public_base,
        secret=settings.jwt_key(),
    )


async def one_digest(inbox: Inbox, who: Account, count: int = 1) -> EmailMessage:
    found = await eventually(lambda: len(digests(inbox, who)) >= count and digests(inbox, who))
    assert len(found) == count
    return found[-1]


async def no_digest(inbox: Inbox, who: Account, count: int = 0) -> None:
    await assert_nothing_within(0.3, lambda: len(digests(inbox, who)) > count, what="a digest")


async def test_a_digest_comes_after_the_delay_once_an_hour(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    sender, me = await make_user(http, display_name="Alice Sender"), await verified(http, mailing)
    own = await http.get("/service/api/profile", headers=me.headers)
    assert own.json()["email_notifications"] is True and own.json()["language"] == "en"
    chat = await make_direct(http, sender, me)
    await send(http, me, chat["id"], "my own message is not in it")
    await send(http, sender, chat["id"], "first <b>words</b>")
    await send(http, sender, chat["id"], "second words")
    await digest_at(mailing, 14)
    await no_digest(inbox, me)
    await digest_at(mailing, 16)
    message = await one_digest(inbox, me)
    assert message["Subject"] == "You have 2 unread messages on Parley"
    assert message["From"] == "Parley <noreply@chat.example.test>"
    text, html = text_of(message), html_of(message)
    assert "Alice Sender: first <b>words</b>" in text and "second words" in text
    assert "my own message" not in text
    assert f"{PUBLIC}/chat#{chat['id']}" in text
    assert f'href="{PUBLIC}/chat#{chat["id"]}"' in html
    assert "first &lt;b&gt;words&lt;/b&gt;" in html  # content is text, never markup
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip("<>")
    assert link.startswith(f"{PUBLIC}/service/api/email/unsubscribe?token=")
    assert link in text
    await digest_at(mailing, 17)  # the same messages are never told twice
    await no_digest(inbox, me, 1)
    await send(http, sender, chat["id"], "third, within the hour")
    await digest_at(mailing, 40)
    await no_digest(inbox, me, 1)
    await digest_at(mailing, 77)  # an hour after the first: the new one only
    second = await one_digest(inbox, me, 2)
    assert second["Subject"] == "You have an unread message on Parley"
    assert "third, within the hour" in text_of(second) and "second words" not in text_of(second)


async def test_read_messages_are_not_mailed(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    sender, me = await make_user(http), await verified(http, mailing)
    chat = await make_direct(http, sender, me)
    sent = await send(http, sender, chat["id"], "read at once")
    read = await http.post(
        f"/service/api/chats/{chat['id']}/read", json={"seq": sent["seq"]}, headers=me.headers
    )
    assert read.status_code == 204, read.text
    await digest_at(mailing, 16)
    await no_digest(inbox, me)


async def test_muted_chats_only_mail_mentions_and_groups_only_mentions(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    sender, me = await make_user(http), await verified(http, mailing)
    direct = await make_direct(http, sender, me)
    group = await make_group(http, sender, me, title="Team")
    for chat_id in (direct["id"], group["id"]):
        muted = await http.patch(
            f"/service/api/chats/{chat_id}/settings",
            json={"muted_until": "forever"},
            headers=me.headers,
        )
        assert muted.status_code == 200, muted.text
    await send(http, sender, direct["id"], "muted direct message")
    await send(http, sender, group["id"], "a group message that names nobody")
    await send(http, sender, group["id"], f"@{me.username} a mention in a muted group")
    await digest_at(mailing, 16)
    message = await one_digest(inbox, me)
    text = text_of(message)
    assert "a mention in a muted group" in text and "Team" in text
    assert "muted direct message" not in text and "names nobody" not in text


async def test_nothing_from_blocked_users(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    blocked, friend, me = (
        await make_user(http),
        await make_user(http),
        await verified(http, mailing),
    )
    group = await make_group(http, blocked, me, friend, title="Mixed")
    answer = await http.post("/service/api/block", json={"user_id": blocked.id}, headers=me.headers)
    assert answer.status_code == 201, answer.text
    await send(http, blocked, group["id"], f"@{me.username} from someone I blocked")
    await send(http, friend, group["id"], f"@{me.username} from a friend")
    await digest_at(mailing, 16)
    text = text_of(await one_digest(inbox, me))
    assert "from a friend" in text and "someone I blocked" not in text


async def test_nothing_while_do_not_disturb_then_the_digest(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    """While dnd nothing is e-mailed; the unread messages wait for its end."""
    sender, me = await make_user(http), await verified(http, mailing)
    direct = await make_direct(http, sender, me)
    until = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    dnd = await http.patch("/service/api/profile", json={"dnd_until": until}, headers=me.headers)
    assert dnd.status_code == 200 and dnd.json()["dnd_until"], dnd.text
    await send(http, sender, direct["id"], "sent while I was not to be disturbed")
    await digest_at(mailing, 16)
    await no_digest(inbox, me)
    await digest_at(mailing, 31)
    assert "while I was not to be disturbed" in text_of(await one_digest(inbox, me))


async def test_unverified_or_opted_out_get_nothing(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    sender, unverified = await make_user(http), await make_user(http)
    opted_out = await verified(http, mailing, email_notifications=False)
    own = await http.get("/service/api/profile", headers=opted_out.headers)
    assert own.json()["email_notifications"] is False
    for who in (unverified, opted_out):
        chat = await make_direct(http, sender, who)
        await send(http, sender, chat["id"], "unseen")
    await digest_at(mailing, 16)
    await no_digest(inbox, unverified)
    await no_digest(inbox, opted_out)


async def test_russian_digest(http: httpx.AsyncClient, mailing: Running, inbox: Inbox) -> None:
    sender, me = await make_user(http), await verified(http, mailing, language="ru")
    chat = await make_direct(http, sender, me)
    await send(http, sender, chat["id"], "привет")
    await send(http, sender, chat["id"], "как дела?")
    await digest_at(mailing, 16)
    message = await one_digest(inbox, me)
    assert message["Subject"] == "Непрочитанных сообщений в Parley: 2"
    assert "Вас ждут сообщения" in text_of(message) and "как дела?" in text_of(message)
    assert "Отписаться" in html_of(message)
    bad = await http.patch("/service/api/profile", json={"language": "de"}, headers=me.headers)
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


async def test_registering_keeps_the_browsers_language(http: httpx.AsyncClient) -> None:
    name = unique()
    answer = await http.post(
        "/service/api/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["user"]["language"] == "ru"
    assert answer.json()["user"]["email_notifications"] is True


async def test_one_click_unsubscribe(
    http: httpx.AsyncClient, mailing: Running, inbox: Inbox
) -> None:
    sender, me = await make_user(http), await verified(http, mailing)
    chat = await make_direct(http, sender, me)
    await send(http, sender, chat["id"], "hello there")
    await digest_at(mailing, 16)
    link = (await one_digest(inbox, me))["List-Unsubscribe"].strip("<>")
    token = parse_qs(urlsplit(link).query)["token"][0]
    path = "/service/api/email/unsubscribe"
    page = await http.get(path, params={"token": token})  # no sign-in; asks, changes nothing
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<form" in page.text and 'method="post"' in page.text
    assert (await http.get("/service/api/profile", headers=me.headers)).json()[
        "email_notifications"
    ] is True
    forged = token.rpartition(".")[0] + ".AAAA" + token.rpartition(".")[2][4:]
    for bad in (forged, "nonsense", f"{sender.id}.{token.rpartition('.')[2]}"):
        refused = await http.post(
            path, params={"token": bad}, data={"List-Unsubscribe": "One-Click"}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "token_invalid" and refused.json()["detail"]
    done = await http.post(path, params={"token": token}, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200, done.text
    assert done.json()["email_notifications"] is False
    own = await http.get("/service/api/profile", headers=me.headers)
    assert own.json()["email_notifications"] is False
    await send(http, sender, chat["id"], "after unsubscribing")
    await digest_at(mailing, 80)
    await no_digest(inbox, me, 1)


@pytest.fixture
async def quick(
    database_url: str | None, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """A server whose worker mails digests 0.6 s after a message."""
    running, server, task = await _server(
        database_url,
        inbox,
        tmp_path_factory.mktemp("dgq"),
        PARLEY_EMAIL_DIGEST_MINUTES=0.01,
        PARLEY_WORKER_INTERVAL=0.2,
    )
    yield running
    await stop_server(server, task)  # type: ignore[arg-type]


async def test_the_worker_sends_digests_by_itself(quick: Running, inbox: Inbox) -> None:
    async with httpx.AsyncClient(
        base_url=quick.base, timeout=20, cookies=no_cookies(), headers={"X-Real-IP": "10.7.0.1"}
    ) as http:
        sender, me = await make_user(http), await verified(http, quick)
        chat = await make_direct(http, sender, me)
        await send(http, sender, chat["id"], "the worker tells of this")
        message = await one_digest(inbox, me)
        assert "the worker tells of this" in text_of(message)
