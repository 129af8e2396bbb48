"""`parley import-slack`: a Slack workspace export, built here from Slack's documented
format, imported twice (the second run adds nothing), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import (
    Attachment,
    Chat,
    Membership,
    Message,
    Reaction,
    ThreadFollow,
    User,
)
from parley.server.db.session import make_engine, make_sessionmaker
from tests.conftest import PG_DSN, _create_database, _drop_database

USERS = [
    {"id": "U01ALICE", "name": "alice", "profile": {"real_name": "Alice Smith",
     "display_name": "alice", "email": f"alice-{uuid.uuid4().hex[:6]}@example.com"}},
    {"id": "U02BOB", "name": "bob.jones", "profile": {"real_name": "Bob Jones"}},
    {"id": "U03CAROL", "name": "carol", "profile": {"real_name": "Carol"}},
]  # fmt: skip
CHANNELS = [
    {"id": "C01GENERAL", "name": "engineering", "created": 1600000000, "creator": "U01ALICE",
     "members": ["U01ALICE", "U02BOB"], "purpose": {"value": "Builds and bugs"}},
]  # fmt: skip


def _msg(user: str, text: str, ts: str, **extra: object) -> dict[str, object]:
    return {"type": "message", "user": user, "text": text, "ts": ts, **extra}


DAY1 = [
    _msg("U02BOB", "<@U02BOB> has joined the channel", "1600000100.000100",
         subtype="channel_join"),
    _msg("U01ALICE", "Hi <@U02BOB>, see <#C01GENERAL|engineering>", "1600000200.000200",
         thread_ts="1600000200.000200", reply_count=1,
         reactions=[{"name": "+1", "users": ["U02BOB"], "count": 1},
                    {"name": "custom_party", "users": ["U02BOB"], "count": 1}]),
    _msg("U02BOB", "Thanks &amp; hello", "1600000300.000300", thread_ts="1600000200.000200",
         parent_user_id="U01ALICE"),
]  # fmt: skip
DAY2 = [
    _msg("U02BOB", "the log", "1600090000.000100",
         files=[{"id": "F01LOG", "name": "build.log", "mimetype": "text/plain"}]),
    _msg("U02BOB", "<@U02BOB> has left the channel", "1600090100.000100",
         subtype="channel_leave"),
]  # fmt: skip


DMS = [
    {"id": "D01AB", "created": 1600000000, "members": ["U01ALICE", "U02BOB"]},
    {"id": "D02SELF", "created": 1600000000, "members": ["U03CAROL"]},  # a note to oneself
]
MPIMS = [
    {"id": "G01TRIO", "name": "mpdm-alice--bob.jones--carol-1", "created": 1600000000,
     "creator": "U03CAROL", "members": ["U01ALICE", "U02BOB", "U03CAROL"],
     "purpose": {"value": "Group messaging"}},
]  # fmt: skip
DM_DAY = [
    _msg("U01ALICE", "psst <@U02BOB>", "1600000400.000100"),
    _msg("U02BOB", "yes?", "1600000500.000100"),
]
TRIO_DAY = [_msg("U03CAROL", "lunch, all three?", "1600000600.000100")]


def _slack_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("users.json", json.dumps(USERS))
        z.writestr("channels.json", json.dumps(CHANNELS))
        z.writestr("dms.json", json.dumps(DMS))
        z.writestr("mpims.json", json.dumps(MPIMS))
        z.writestr("D01AB/2020-09-13.json", json.dumps(DM_DAY))
        z.writestr("D02SELF/2020-09-13.json", json.dumps([_msg("U03CAROL", "me", "1600000700.1")]))
        z.writestr("mpdm-alice--bob.jones--carol-1/2020-09-13.json", json.dumps(TRIO_DAY))
        z.writestr("engineering/2020-09-13.json", json.dumps(DAY1))
        z.writestr("engineering/2020-09-14.json", json.dumps(DAY2))
        z.writestr("__uploads/F01LOG/build.log", b"all green\n")


@pytest.fixture(params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    name = "parley_slack_" + uuid.uuid4().hex[:8]
    await _create_database(name)
    yield {"DATABASE_URL": f"{PG_DSN.rsplit('/', 1)[0]}/{name}"}
    await _drop_database(name)


def _import(archive: Path, data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "DB_"))}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", "import-slack", str(archive),
         "--data-dir", str(data_dir)],
        env={**clean, **env, "LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


async def test_a_slack_export_imports_once(target: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "slack.zip"
    _slack_zip(archive)
    data_dir = tmp_path / "data"
    first = _import(archive, data_dir, target)
    assert first.returncode == 0, first.stderr
    assert "Imported 3 users, 3 chats, 6 messages, 1 reactions, 1 files" in first.stdout
    assert "chats [" in first.stderr  # the progress bar
    second = _import(archive, data_dir, target)
    assert second.returncode == 0, second.stderr
    assert "Imported 0 users, 0 chats, 0 messages, 0 reactions, 0 files" in second.stdout

    url = target.get("DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'parley.db'}"
    url = url.replace("postgresql://", "postgresql+asyncpg://")
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            users = {
                u.username: u
                for u in (
                    await session.execute(select(User).where(User.is_admin.is_(False)))
                ).scalars()
            }
            alice, bob = users["alice"], users["bob.jones"]
            assert alice.display_name == "alice" and bob.display_name == "Bob Jones"
            assert alice.email == USERS[0]["profile"]["email"]  # type: ignore[index]
            assert alice.password_hash == "!"  # no password: a reset link or an invite
            chat = (
                await session.execute(select(Chat).where(Chat.slug == "slack-C01GENERAL"))
            ).scalar_one()
            assert (chat.type, chat.title, chat.is_public) == ("channel", "engineering", True)
            assert chat.description == "Builds and bugs" and chat.last_seq == 3
            rows = await session.execute(
                select(Membership.user_id, Membership.role).where(Membership.chat_id == chat.id)
            )
            roles = dict(list(rows.tuples()))
            assert roles == {alice.id: "owner", bob.id: "member"}
            messages = list(
                (
                    await session.execute(
                        select(Message).where(Message.chat_id == chat.id).order_by(Message.seq)
                    )
                ).scalars()
            )
            assert [(m.seq, m.sender_id, m.content) for m in messages] == [
                (1, alice.id, "Hi @bob.jones, see #engineering"),
                (2, bob.id, "Thanks & hello"),
                (3, bob.id, "the log"),
            ]
            assert messages[0].created_at == datetime.fromtimestamp(1600000200.0002, UTC)
            # Slack's thread is a Parley thread: the reply names its root, the root counts it
            assert (messages[1].thread_root_id, messages[1].also_in_chat) == (messages[0].id, False)
            assert messages[1].reply_to_id is None
            root = messages[0]
            assert (root.reply_count, root.thread_participants) == (1, str(bob.id))
            assert root.last_reply_at == datetime.fromtimestamp(1600000300.0003, UTC)
            follows = await session.execute(
                select(ThreadFollow.user_id, ThreadFollow.following).where(
                    ThreadFollow.root_id == root.id
                )
            )
            assert sorted(follows.tuples().all()) == sorted([(alice.id, True), (bob.id, True)])
            reactions = (await session.execute(select(Reaction.user_id, Reaction.emoji))).all()
            assert [tuple(r) for r in reactions] == [(bob.id, "👍")]
            [attachment] = list((await session.execute(select(Attachment))).scalars())
            assert attachment.message_id == messages[2].id
            assert (attachment.filename, attachment.size) == ("build.log", 10)
            await _check_direct_messages(session, alice, bob, users["carol"])
    finally:
        await engine.dispose()


async def _check_direct_messages(
    session: AsyncSession, alice: User, bob: User, carol: User
) -> None:
    """The DM in the pair's direct chat, the group DM a private group; no DM with oneself."""
    direct = (await session.execute(select(Chat).where(Chat.type == "direct"))).scalar_one()
    assert direct.direct_key == f"{alice.id}:{bob.id}" and direct.last_seq == 2
    said = await session.execute(
        select(Message.seq, Message.sender_id, Message.content)
        .where(Message.chat_id == direct.id)
        .order_by(Message.seq)
    )
    assert [tuple(r) for r in said] == [(1, alice.id, "psst @bob.jones"), (2, bob.id, "yes?")]
    trio = (await session.execute(select(Chat).where(Chat.slug == "slack-G01TRIO"))).scalar_one()
    assert (trio.type, trio.is_public, trio.title) == ("group", False, "alice, bob.jones, carol")
    assert trio.description == "Group messaging"
    roles = await session.execute(
        select(Membership.user_id, Membership.role).where(Membership.chat_id == trio.id)
    )
    assert dict(list(roles.tuples())) == {
        alice.id: "member",
        bob.id: "member",
        carol.id: "owner",
    }
    [lunch] = (await session.execute(select(Message).where(Message.chat_id == trio.id))).scalars()
    assert (lunch.sender_id, lunch.content) == (carol.id, "lunch, all three?")
    alone = await session.execute(select(Message.id).where(Message.content == "me"))
    assert alone.first() is None
