"""Retention on SQLite and PostgreSQL, with files in the directory store and in S3 (moto's
server): the worker's sweep, run on a clock moved forward, erases old messages' content,
reactions, search entries and attachment files, leaving gap-free `deleted` placeholders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from parley import errors
from parley.clock import Clock
from parley.server.accounts.service import promote_user
from parley.server.db.models import Attachment
from parley.server.workers import sweep_retention
from tests.conftest import (
    PG_DSN,
    Running,
    _create_database,
    _drop_database,
    need,
    no_cookies,
    postgres_available,
    run_sync,
    start_server,
    stop_server,
    test_settings,
)
from tests.factories import Account, make_group, make_user, send

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A database of this module's own: a server-wide retention sweep erases old messages
    in every chat, so it must not run on the session's shared PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    problem = run_sync(postgres_available())
    if problem:
        need("PostgreSQL", problem)
    name = "parley_retention_" + uuid.uuid4().hex[:10]
    run_sync(_create_database(name))
    yield f"{PG_DSN.rsplit('/', 1)[0]}/{name}"
    run_sync(_drop_database(name))


@pytest.fixture(scope="module", params=["directory", "s3"])
async def server(
    request: pytest.FixtureRequest, database_url: str | None, tmp_path_factory: Any
) -> AsyncIterator[Running]:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    if request.param == "s3":
        overrides |= {
            "S3_ENDPOINT": request.getfixturevalue("s3_endpoint"),
            "S3_ACCESS_KEY": "parley-test",
            "S3_SECRET_KEY": "moto-" + uuid.uuid4().hex,
            "S3_BUCKET": f"parley-retention-{uuid.uuid4().hex[:10]}",
        }
    settings = test_settings(tmp_path_factory.mktemp("retention"), **overrides)
    running, uv, task = await start_server(settings)
    yield running
    await stop_server(uv, task)


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, timeout=20, cookies=no_cookies()) as c:
        yield c


async def sweep(server: Running, *, days_later: float, default_days: float = 0) -> int:
    """The worker's retention job, on a clock `days_later` days ahead of now."""
    later = datetime.now(UTC) + timedelta(days=days_later)
    state = server.state
    settings = state.settings.model_copy(update={"retention_days": default_days})
    return await sweep_retention(
        state.sessions, state.storage, state.broker, Clock(lambda: later), settings=settings
    )


async def rich_chat(http: httpx.AsyncClient, owner: Account, member: Account) -> dict[str, Any]:
    """A group with a message carrying an attachment, a reaction and a mention, then two more."""
    chat = await make_group(http, owner, member)
    upload = await http.post(
        f"/service/api/chats/{chat['id']}/attachments",
        files={"file": ("dot.png", PNG, "image/png")},
        headers=owner.headers,
    )
    assert upload.status_code == 201, upload.text
    first = await send(
        http,
        owner,
        chat["id"],
        f"zebracrossing @{member.username}",
        attachment_ids=[upload.json()["id"]],
    )
    reacted = await http.post(
        f"/service/api/messages/{first['id']}/reactions",
        json={"emoji": "👍"},
        headers=member.headers,
    )
    assert reacted.status_code == 200
    await send(http, member, chat["id"], "zebra two")
    await send(http, owner, chat["id"], "zebra three")
    return chat | {"attachment_id": upload.json()["id"]}


async def test_chat_retention_erases_content_files_and_search(
    http: httpx.AsyncClient, server: Running
) -> None:
    owner, member = await make_user(http), await make_user(http)
    chat = await rich_chat(http, owner, member)
    async with server.state.reads() as session:
        key = (
            await session.execute(
                select(Attachment.storage_key).where(Attachment.id == chat["attachment_id"])
            )
        ).scalar_one()
    assert await server.state.storage.read_bytes(key) == PNG
    set_it = await http.patch(
        f"/service/api/chats/{chat['id']}", json={"retention_days": 1}, headers=owner.headers
    )
    assert set_it.status_code == 200 and set_it.json()["retention_days"] == 1
    assert await sweep(server, days_later=0.5) == 0  # not old enough yet
    assert await sweep(server, days_later=1.5) == 3
    history = await http.get(f"/service/api/chats/{chat['id']}/messages", headers=member.headers)
    messages = history.json()
    assert [m["seq"] for m in messages] == [1, 2, 3]  # placeholders keep seq gap-free
    for message in messages:
        assert message["deleted"] is True and message["content"] == ""
        assert message["reactions"] == [] and message["attachments"] == []
    found = await http.get(
        "/service/api/search", params={"q": "zebra", "chat_id": chat["id"]}, headers=owner.headers
    )
    assert found.status_code == 200 and found.json() == []
    with pytest.raises(errors.NotFound):
        await server.state.storage.read_bytes(key)
    gone = await http.get(
        f"/service/api/attachments/{chat['attachment_id']}", headers=owner.headers
    )
    assert gone.status_code == 404
    mentions = await http.get(f"/service/api/chats/{chat['id']}", headers=member.headers)
    assert mentions.json()["mention_count"] == 0
    assert await sweep(server, days_later=3) == 0  # nothing left to do


async def test_server_default_and_per_chat_override(
    http: httpx.AsyncClient, server: Running
) -> None:
    owner, member = await make_user(http), await make_user(http)
    inherits = await make_group(http, owner, member)
    keeps = await make_group(http, owner, member)
    old = await send(http, owner, inherits["id"], "inherits")
    kept = await send(http, owner, keeps["id"], "forever")
    forever = await http.patch(
        f"/service/api/chats/{keeps['id']}", json={"retention_days": 0}, headers=owner.headers
    )
    assert forever.json()["retention_days"] == 0
    await sweep(server, days_later=10, default_days=7)
    gone = await http.get(f"/service/api/messages/{old['id']}", headers=owner.headers)
    assert gone.json()["deleted"] is True
    stays = await http.get(f"/service/api/messages/{kept['id']}", headers=owner.headers)
    assert stays.json()["content"] == "forever"
    back = await http.patch(
        f"/service/api/chats/{keeps['id']}", json={"retention_days": None}, headers=owner.headers
    )
    assert back.json()["retention_days"] is None


async def test_only_managers_set_retention(http: httpx.AsyncClient) -> None:
    owner, member = await make_user(http), await make_user(http)
    chat = await make_group(http, owner, member)
    refused = await http.patch(
        f"/service/api/chats/{chat['id']}", json={"retention_days": 1}, headers=member.headers
    )
    assert refused.status_code == 403
    negative = await http.patch(
        f"/service/api/chats/{chat['id']}", json={"retention_days": -1}, headers=owner.headers
    )
    assert negative.status_code == 422


def test_settings_reads_retention_and_two_factor_scope(tmp_path: Path) -> None:
    settings = test_settings(tmp_path, PARLEY_RETENTION_DAYS="0.5", PARLEY_REQUIRE_2FA="all")
    assert settings.retention_days == 0.5 and settings.require_2fa == "all"
    with pytest.raises(ValueError, match="PARLEY_REQUIRE_2FA"):
        test_settings(tmp_path, PARLEY_REQUIRE_2FA="sometimes")


async def test_the_admins_server_wide_retention_overrides_the_environment(
    http: httpx.AsyncClient, server: Running
) -> None:
    """PATCH /admin/settings {retention_days} is what the worker uses, until set back to null."""
    admin, owner = await make_user(http), await make_user(http)
    async with server.state.sessions() as session:
        assert await promote_user(session, username=admin.username)
    chat = await make_group(http, owner, admin)
    said = await send(http, owner, chat["id"], "short-lived")
    path = "/service/api/admin/settings"
    try:
        set_ = await http.patch(path, json={"retention_days": 7}, headers=admin.headers)
        assert set_.status_code == 200, set_.text
        assert set_.json()["retention_days"] == 7 and set_.json()["default_retention_days"] == 0
        await sweep(server, days_later=6, default_days=0)
        kept = await http.get(f"/service/api/messages/{said['id']}", headers=owner.headers)
        assert kept.json()["content"] == "short-lived"
        back = await http.patch(path, json={"retention_days": None}, headers=admin.headers)
        assert back.json()["retention_days"] is None
        await sweep(server, days_later=10, default_days=0)  # the environment's: keep forever
        kept = await http.get(f"/service/api/messages/{said['id']}", headers=owner.headers)
        assert kept.json()["content"] == "short-lived"
        await http.patch(path, json={"retention_days": 7}, headers=admin.headers)
        await sweep(server, days_later=8, default_days=0)
        gone = await http.get(f"/service/api/messages/{said['id']}", headers=owner.headers)
        assert gone.json()["deleted"] is True and gone.json()["content"] == ""
    finally:
        await http.patch(path, json={"retention_days": None}, headers=admin.headers)
