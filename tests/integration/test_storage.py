"""One contract for file storage, run against the directory and against moto's S3 server."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from parley import errors
from parley.config import Settings
from parley.server.storage import LocalStorage, S3Storage, Storage, make_storage, new_key

NOW = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
MIB = 1024 * 1024
PART = 5 * MIB
BAD_KEYS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/",
    "",
    "A/b",
    "a\\b",
    "a/b\x00",
    "a b",
    ".tmp/x",
]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_bucket() -> str:
    return f"parley-test-{uuid.uuid4().hex[:12]}"


def make_s3(endpoint: str, bucket: str, **options: Any) -> S3Storage:
    return S3Storage(
        endpoint=endpoint,
        access_key="test",
        secret_key="test",
        bucket=bucket,
        part_size=PART,
        **options,
    )


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3_bucket: str
) -> AsyncIterator[Storage]:
    if request.param == "local":
        store: Storage = LocalStorage(tmp_path / "files")
    else:
        store = make_s3(request.getfixturevalue("s3_endpoint"), s3_bucket)
    yield store
    await store.close()


async def stream(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


async def read_all(store: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in await store.open(key)])


async def leftovers(store: Storage, key: str) -> list[str]:
    """What a failed save left behind: files, objects or unfinished multipart uploads."""
    if isinstance(store, LocalStorage):
        return [str(p) for p in store.root.rglob("*") if p.is_file()]
    assert isinstance(store, S3Storage)
    args = store._client_args
    async with get_session().create_client("s3", **args) as client:
        objects = await client.list_objects_v2(Bucket=store.bucket, Prefix=key)
        uploads = await client.list_multipart_uploads(Bucket=store.bucket, Prefix=key)
    return [o["Key"] for o in objects.get("Contents", [])] + [
        u["Key"] for u in uploads.get("Uploads", [])
    ]


async def test_bytes_round_trip(storage: Storage) -> None:
    key = new_key("avatars", NOW)
    await storage.save_bytes(key, b"hello")
    assert await storage.read_bytes(key) == b"hello"
    assert await read_all(storage, key) == b"hello"


async def test_save_overwrites(storage: Storage) -> None:
    key = new_key("avatars", NOW)
    await storage.save_bytes(key, b"first")
    await storage.save_bytes(key, b"second")
    assert await storage.read_bytes(key) == b"second"


async def test_stream_round_trip_in_chunks(storage: Storage) -> None:
    data = os.urandom(3 * MIB + 123)
    key = new_key("attachments", NOW)
    assert await storage.save(key, stream(data), max_bytes=25 * MIB) == len(data)
    chunks = [chunk async for chunk in await storage.open(key)]
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= 64 * 1024
    assert b"".join(chunks) == data
    assert await storage.read_bytes(key) == data


async def test_stream_larger_than_one_part(storage: Storage) -> None:
    data = os.urandom(2 * PART + 1000)
    key = new_key("attachments", NOW)
    assert await storage.save(key, stream(data, MIB), max_bytes=25 * MIB) == len(data)
    assert await read_all(storage, key) == data


async def test_empty_stream(storage: Storage) -> None:
    key = new_key("attachments", NOW)
    assert await storage.save(key, stream(b""), max_bytes=10) == 0
    assert await storage.read_bytes(key) == b""


async def test_exactly_max_bytes_is_accepted(storage: Storage) -> None:
    key = new_key("attachments", NOW)
    assert await storage.save(key, stream(b"x" * 1000, 100), max_bytes=1000) == 1000


@pytest.mark.parametrize("size", [1001, PART + MIB])
async def test_too_large_leaves_nothing(storage: Storage, size: int) -> None:
    key = new_key("attachments", NOW)
    with pytest.raises(errors.TooLarge):
        await storage.save(key, stream(b"x" * size, MIB), max_bytes=size - 1)
    assert await leftovers(storage, key) == []
    with pytest.raises(errors.NotFound):
        await storage.read_bytes(key)


async def test_failing_stream_leaves_nothing(storage: Storage) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (PART + 1)
        raise ConnectionResetError("client went away")

    key = new_key("attachments", NOW)
    with pytest.raises(ConnectionResetError):
        await storage.save(key, broken(), max_bytes=25 * MIB)
    assert await leftovers(storage, key) == []


async def test_absent_key_is_not_found(storage: Storage) -> None:
    key = new_key("attachments", NOW)
    with pytest.raises(errors.NotFound):
        await storage.open(key)
    with pytest.raises(errors.NotFound):
        await storage.read_bytes(key)


async def test_delete_is_idempotent(storage: Storage) -> None:
    key = new_key("attachments", NOW)
    await storage.save_bytes(key, b"bye")
    await storage.delete(key)
    await storage.delete(key)
    await storage.delete(new_key("attachments", NOW))
    with pytest.raises(errors.NotFound):
        await storage.read_bytes(key)


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        await storage.save_bytes(key, b"x")
    with pytest.raises(ValueError):
        await storage.save(key, stream(b"x"), max_bytes=10)
    with pytest.raises(ValueError):
        await storage.read_bytes(key)
    with pytest.raises(ValueError):
        await storage.open(key)
    with pytest.raises(ValueError):
        await storage.delete(key)


async def test_check(storage: Storage) -> None:
    await storage.check()


async def test_local_check_fails_when_the_root_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    store = LocalStorage(tmp_path / "blocker" / "files")
    with pytest.raises(errors.Unavailable):
        await store.check()


async def test_s3_check_fails_when_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = make_s3(f"http://127.0.0.1:{port}", "nowhere", max_attempts=1, connect_timeout=1)
    try:
        with pytest.raises(errors.Unavailable):
            await store.check()
    finally:
        await store.close()


async def test_local_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "files"
    root.mkdir()
    (root / "evil").symlink_to(outside)
    store = LocalStorage(root)
    with pytest.raises(ValueError):
        await store.save_bytes("evil/x", b"x")
    assert list(outside.iterdir()) == []


def test_new_key_shape() -> None:
    key = new_key("attachments", NOW)
    assert re.fullmatch(r"attachments/2026/11/[0-9a-f]{32}", key)  # the month of `now`
    assert new_key("attachments", NOW) != key
    with pytest.raises(ValueError):
        new_key("../up", NOW)


def test_make_storage_picks_the_backend(tmp_path: Path) -> None:
    local = make_storage(Settings(PARLEY_DATA_DIR=tmp_path))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "files").resolve()
    s3 = make_storage(Settings(PARLEY_DATA_DIR=tmp_path, S3_ENDPOINT="http://127.0.0.1:9"))
    assert isinstance(s3, S3Storage)
