"""Revision 0003 on a database with live sessions: random sids, tokens of before refused,
refresh tokens kept (they get the session a token with its new sid); down and up again."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.security import hash_token, make_access_token
from parley.server.db.models import UTCDateTime
from tests.conftest import start_server, stop_server, test_settings
from tests.integration.conftest import alembic_to

REFRESH = {1: "rt_before-the-migration-one", 2: "rt_before-the-migration-two"}


def _seed(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash,"
            " display_name, bio, is_admin, created_at) VALUES"
            " (1, 'ann', 'ann', 'a@x.io', 'a@x.io', 'x', 'Ann', '', false, CURRENT_TIMESTAMP)"
        )
    )
    for session_id, token in REFRESH.items():
        connection.execute(
            text(
                "INSERT INTO sessions (id, user_id, created_at, expires_at, user_agent)"
                " VALUES (:id, 1, CURRENT_TIMESTAMP, :expires, 'old')"
            ).bindparams(bindparam("expires", type_=UTCDateTime())),
            {"id": session_id, "expires": datetime(2099, 1, 1, tzinfo=UTC)},
        )
        connection.execute(
            text(
                "INSERT INTO refresh_tokens (session_id, token_hash, created_at)"
                " VALUES (:id, :hash, CURRENT_TIMESTAMP)"
            ),
            {"id": session_id, "hash": hash_token(token)},
        )


def _more_sessions(connection: Connection) -> None:
    """Past the migration's chunk of 1,000 rows."""
    connection.execute(
        text(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, user_agent)"
            " VALUES (:id, 1, CURRENT_TIMESTAMP, :expires, 'old')"
        ).bindparams(bindparam("expires", type_=UTCDateTime())),
        [{"id": i, "expires": datetime(2099, 1, 1, tzinfo=UTC)} for i in range(3, 2103)],
    )


def _sids(connection: Connection) -> dict[int, str]:
    rows = connection.execute(text("SELECT id, sid FROM sessions ORDER BY id")).all()
    return {row[0]: row[1] for row in rows}


def _refresh_tokens(connection: Connection) -> int:
    return int(connection.execute(text("SELECT count(*) FROM refresh_tokens")).scalar_one())


def _columns(connection: Connection) -> set[str]:
    if connection.dialect.name == "sqlite":
        return {row[1] for row in connection.execute(text("PRAGMA table_info(sessions)"))}
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions'"
    return {row[0] for row in connection.execute(text(query))}


async def test_existing_sessions_get_random_sids_and_keep_their_refresh_tokens(
    migration_engine: AsyncEngine,
) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0002"))
        await conn.run_sync(_seed)
        await conn.run_sync(_more_sessions)
        await conn.commit()
        await conn.run_sync(alembic_to("0003"))
        await conn.commit()
        sids = await conn.run_sync(_sids)
        assert set(sids) == set(range(1, 2103)) and len(set(sids.values())) == len(sids)
        assert all(re.fullmatch(r"[0-9a-f]{32}", sid) for sid in sids.values()), sids
        assert sids[1] != sids[2] and abs(int(sids[1], 16) - int(sids[2], 16)) > 2**64
        # Nothing was rebuilt: on SQLite a rebuilt `sessions` would have cascaded here.
        assert await conn.run_sync(_refresh_tokens) == 2
        try:
            await conn.execute(
                text("UPDATE sessions SET sid = :sid WHERE id = 2"), {"sid": sids[1]}
            )
        except IntegrityError:
            await conn.rollback()
        else:
            raise AssertionError("two sessions may share a sid")
        await conn.run_sync(alembic_to("0002", down=True))
        await conn.commit()
        assert "sid" not in await conn.run_sync(_columns)
        assert await conn.run_sync(_refresh_tokens) == 2
        await conn.run_sync(alembic_to("head"))
        await conn.commit()
        again = await conn.run_sync(_sids)
        assert len(again) == len(sids) and again[1] != sids[1]  # new random ones


async def test_old_tokens_are_refused_and_refresh_gives_the_new_sid(
    migration_engine: AsyncEngine, tmp_path: Path
) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0002"))
        await conn.run_sync(_seed)
        await conn.commit()
    url = migration_engine.url.render_as_string(hide_password=False)
    settings = test_settings(tmp_path / "data", DATABASE_URL=url)
    running, server, task = await start_server(settings)  # migrates to head on start
    try:
        async with migration_engine.connect() as conn:
            sids = await conn.run_sync(_sids)
        key = settings.jwt_key()
        async with httpx.AsyncClient(base_url=running.base, trust_env=False) as http:
            # A token minted before (`sid` the row number), signed with the right key.
            now = int(time.time())
            before = {"sub": "1", "sid": 1, "iss": "parley", "typ": "access", "iat": now}
            old = jwt.encode({**before, "exp": now + 600}, key, algorithm="HS256")
            refused = await http.get("/service/api/profile", headers=_bearer(old))
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            # Knowing the key is not enough either: the sid of a session must be guessed.
            forged = make_access_token(key, user_id=1, session_id="0" * 32, ttl_seconds=60)
            assert (
                await http.get("/service/api/profile", headers=_bearer(forged))
            ).status_code == 401
            answer = await http.post("/service/api/refresh", json={"refresh_token": REFRESH[1]})
            assert answer.status_code == 200, answer.text
            fresh = answer.json()["access_token"]
            assert jwt.decode(fresh, options={"verify_signature": False})["sid"] == sids[1]
            profile = await http.get("/service/api/profile", headers=_bearer(fresh))
            assert profile.status_code == 200 and profile.json()["username"] == "ann"
    finally:
        await stop_server(server, task)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
