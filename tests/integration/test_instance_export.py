"""`parley export` of an instance on SQLite, `parley import` into PostgreSQL: every user,
password, message, seq, reaction and file arrives; importing again adds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    PG_DSN,
    _create_database,
    _drop_database,
    no_cookies,
    postgres_available,
    start_server,
    stop_server,
    test_settings,
)
from tests.factories import PASSWORD, Account, make_group, make_user, send


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "DB_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("JWT_SECRET", None)
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args],
        env={**clean, **env, "LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_an_instance_moves_from_sqlite_to_postgresql_and_twice_adds_nothing(
    tmp_path: Path,
) -> None:
    problem = await postgres_available()
    if problem:
        pytest.skip(problem)
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    source, server, task = await start_server(test_settings(source_dir))
    async with httpx.AsyncClient(base_url=source.base, timeout=20, cookies=no_cookies()) as http:
        alice, bob = await make_user(http), await make_user(http)
        group = await make_group(http, alice, bob, title="Moving")
        upload = await http.post(
            f"/service/api/chats/{group['id']}/attachments",
            files={"file": ("plan.txt", b"the plan", "text/plain")},
            headers=bob.headers,
        )
        first = await send(http, alice, group["id"], "before the move")
        await send(http, bob, group["id"], "with a file", attachment_ids=[upload.json()["id"]])
        reacted = await http.post(
            f"/service/api/messages/{first['id']}/reactions",
            json={"emoji": "👍"},
            headers=bob.headers,
        )
        assert reacted.status_code in (200, 201), reacted.text
        before = (
            await http.get(f"/service/api/chats/{group['id']}/messages", headers=alice.headers)
        ).json()
    await stop_server(server, task)

    archive = tmp_path / "instance.zip"
    exported = _cli("export", "--out", str(archive), "--data-dir", str(source_dir))
    assert exported.returncode == 0, exported.stderr
    assert "[" in exported.stderr and "]" in exported.stderr  # the progress bar
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert "manifest.json" in names and "tables/messages.json" in names
    assert "tables/sessions.json" not in names
    assert any(n.startswith("files/") for n in names)

    name = "parley_move_" + uuid.uuid4().hex[:8]
    await _create_database(name)
    pg = f"{PG_DSN.rsplit('/', 1)[0]}/{name}"
    try:
        for attempt in (1, 2):
            imported = _cli("import", str(archive), "--data-dir", str(target_dir), DATABASE_URL=pg)
            assert imported.returncode == 0, imported.stderr
            if attempt == 1:
                assert "Imported 2 new messages, 2 new users" in imported.stdout, imported.stdout
            else:
                assert "Imported 0 new messages, 0 new users" in imported.stdout, imported.stdout
        target, server, task = await start_server(test_settings(target_dir, DATABASE_URL=pg))
        try:
            async with httpx.AsyncClient(
                base_url=target.base, timeout=20, cookies=no_cookies()
            ) as http:
                login = await http.post(
                    "/service/api/login", json={"username": alice.username, "password": PASSWORD}
                )
                assert login.status_code == 200, login.text
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                after = (
                    await http.get(f"/service/api/chats/{group['id']}/messages", headers=headers)
                ).json()
                assert after == before
                [attachment] = after[1]["attachments"]
                body = await http.get(attachment["url"], headers=headers)
                assert body.content == b"the plan"
                # new rows get new ids: the sequences moved past the imported ones
                again = Account(alice.id, alice.username, login.json()["access_token"], "")
                later = await send(http, again, group["id"], "after the move")
                assert later["seq"] == 3 and later["id"] > after[-1]["id"]
                new = await make_user(http)
                assert new.id > bob.id
        finally:
            await stop_server(server, task)
    finally:
        await _drop_database(name)
