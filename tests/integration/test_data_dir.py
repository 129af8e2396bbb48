"""Files on disk: the data directory and every directory in it are private (0700), its files
0600; weak secrets refused."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import start_server, stop_server, test_settings
from tests.factories import make_group, make_user


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(out, "PNG")
    return out.getvalue()


async def test_data_dir_and_its_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    old = os.umask(0o022)  # the usual umask: files would be 0644 unless created private
    try:
        settings = test_settings(data, JWT_SECRET=None)
        running, server, task = await start_server(settings)
        try:
            async with httpx.AsyncClient(base_url=running.base) as http:
                me = await make_user(http)
                chat = await make_group(http, me)
                for path, name in (
                    ("/service/api/profile/avatar", "a.png"),
                    (f"/service/api/chats/{chat['id']}/attachments", "notes.txt"),
                ):
                    answer = await (http.put if "avatar" in path else http.post)(
                        path, files={"file": (name, _png())}, headers=me.headers
                    )
                    assert answer.status_code in (200, 201), answer.text
        finally:
            await stop_server(server, task)
    finally:
        os.umask(old)
    assert _mode(data) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"jwt_secret", "parley.db"} <= names, names
    assert any(p.parent.parent.name == "avatars" or "avatars" in p.parts for p in files)
    assert any("attachments" in p.parts for p in files)
    loose = {str(p.relative_to(data)): oct(_mode(p)) for p in files if _mode(p) != 0o600}
    assert loose == {}
    directories = [p for p in data.rglob("*") if p.is_dir()]
    assert {"files", "avatars", "attachments", ".tmp"} <= {p.name for p in directories}
    open_dirs = {str(p.relative_to(data)): oct(_mode(p)) for p in directories if _mode(p) != 0o700}
    assert open_dirs == {}


@pytest.mark.live
def test_a_short_jwt_secret_is_refused_at_start(tmp_path: Path) -> None:
    for command in (["migrate"], ["server"], ["gateway"]):
        result = subprocess.run(
            [sys.executable, "-m", "parley.cli", *command, "--data-dir", str(tmp_path)],
            env={"PATH": "/usr/bin:/bin", "JWT_SECRET": "too-short-secret"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "JWT_SECRET must be at least 32 bytes" in result.stderr
        assert "too-short-secret" not in result.stderr  # the secret itself is never printed
