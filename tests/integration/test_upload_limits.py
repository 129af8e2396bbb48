"""Uploads: a storage quota per user; uploads never attached are deleted by the worker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import make_group, make_user, send
from tests.integration.test_files import stored_files, upload
from tests.waiting import eventually


@asynccontextmanager
async def _server(
    database_url: str | None, data_dir: Path, **overrides: object
) -> AsyncIterator[tuple[Running, httpx.AsyncClient]]:
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, server, task = await start_server(test_settings(data_dir, **overrides))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            yield running, http
    finally:
        await stop_server(server, task)


async def test_each_user_has_an_upload_quota(database_url: str | None, tmp_path: Path) -> None:
    async with _server(database_url, tmp_path, PARLEY_UPLOAD_QUOTA_BYTES=10_000) as (live, http):
        me, other = await make_user(http), await make_user(http)
        chat = await make_group(http, me, other)
        blob = os.urandom(6_000)
        first = await upload(http, me.headers, chat["id"], blob, "a.bin", "application/x-a")
        assert first.status_code == 201, first.text
        before = stored_files(live, "attachments")
        over = await upload(http, me.headers, chat["id"], blob, "b.bin", "application/x-a")
        assert over.status_code == 413 and over.json()["code"] == "quota_exceeded", over.text
        assert stored_files(live, "attachments") == before  # nothing of it kept
        fits = await upload(http, me.headers, chat["id"], os.urandom(4_000), "c.bin")
        assert fits.status_code == 201, fits.text
        full = await upload(http, me.headers, chat["id"], b"x", "d.txt")
        assert full.status_code == 413 and full.json()["code"] == "quota_exceeded"
        # The quota is per user: another member still uploads.
        theirs = await upload(http, other.headers, chat["id"], blob, "e.bin")
        assert theirs.status_code == 201, theirs.text


async def test_uploads_never_attached_are_deleted_by_the_worker(
    database_url: str | None, tmp_path: Path
) -> None:
    async with _server(database_url, tmp_path, PARLEY_UPLOAD_ORPHAN_SECONDS=1.5) as (live, http):
        me = await make_user(http)
        chat = await make_group(http, me)
        kept = (await upload(http, me.headers, chat["id"], b"kept file", "kept.txt")).json()
        lost = (await upload(http, me.headers, chat["id"], b"lost file", "lost.txt")).json()
        await send(http, me, chat["id"], "with a file", attachment_ids=[kept["id"]])
        assert (await http.get(lost["url"], headers=me.headers)).status_code == 200
        files = stored_files(live, "attachments")
        assert len(files) == 2
        await eventually(
            lambda: len(stored_files(live, "attachments")) == 1,
            10,
            what="the worker to delete the file never attached",
        )
        assert (await http.get(lost["url"], headers=me.headers)).status_code == 404
        served = await http.get(kept["url"], headers=me.headers)
        assert served.status_code == 200 and served.content == b"kept file"
        assert len(stored_files(live, "attachments")) == 1
