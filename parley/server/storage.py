"""File storage: one small interface, a directory implementation and an S3 one.

Keys are server-made (`new_key`), never client input, and are checked against a strict
pattern by both implementations. `open` is a coroutine: it raises `NotFound` before the
first byte, then returns an iterator of ~64 KiB chunks (so a route can still answer 404).

S3 uploads stream: chunks are gathered into parts of `part_size` (8 MiB by default, S3's
minimum is 5 MiB); a body smaller than one part goes up with one `put_object`, a larger
one as a multipart upload, aborted on any failure (including `TooLarge`). At most about
one part per upload is held in memory, never the whole file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from parley import errors
from parley.config import Settings, make_private_dir

CHUNK_SIZE = 64 * 1024
_KEY_RE = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$")
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


class Storage(Protocol):
    async def save(self, key: str, chunks: AsyncIterator[bytes], *, max_bytes: int) -> int: ...
    async def save_bytes(self, key: str, data: bytes) -> None: ...
    async def open(self, key: str) -> AsyncIterator[bytes]: ...
    async def read_bytes(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    async def check(self) -> None: ...
    async def close(self) -> None: ...


def make_storage(settings: Settings) -> Storage:
    if settings.s3_endpoint:
        return S3Storage(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
        )
    return LocalStorage(settings.data_dir / "files")


def new_key(prefix: str, now: datetime) -> str:
    """A fresh key such as `attachments/2026/11/<uuid4 hex>` (the month of `now`, the
    clock's); `prefix` is a constant."""
    return check_key(f"{prefix}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}")


def check_key(key: str) -> str:
    """Returns the key, or raises ValueError: a bad key is a server bug, not bad input."""
    if not _KEY_RE.fullmatch(key):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class LocalStorage:
    """Files under `root`; writes go to a temp file then `os.replace` (atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._tmp = self.root / ".tmp"

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    async def save(self, key: str, chunks: AsyncIterator[bytes], *, max_bytes: int) -> int:
        path = self._path(key)
        tmp, file = await asyncio.to_thread(self._open_tmp)
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise errors.TooLarge(f"File larger than {max_bytes} bytes")
                await asyncio.to_thread(file.write, chunk)
            await asyncio.to_thread(self._commit, file, tmp, path)
        except BaseException:
            await asyncio.to_thread(_discard, file, tmp)
            raise
        return size

    async def save_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        await asyncio.to_thread(self._write_all, data, path)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise errors.NotFound("File not found") from None
        return _read_chunks(file)

    async def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise errors.NotFound("File not found") from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            await asyncio.to_thread(path.unlink)

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    async def close(self) -> None:
        return None

    def _check(self) -> None:
        try:
            make_private_dir(self._tmp)
        except OSError as exc:
            raise errors.Unavailable(f"File storage {self.root} is unusable: {exc}") from exc
        if not os.access(self._tmp, os.W_OK):
            raise errors.Unavailable(f"File storage {self.root} is not writable")

    def _open_tmp(self) -> tuple[Path, IO[bytes]]:
        make_private_dir(self._tmp)
        tmp = self._tmp / uuid.uuid4().hex
        # Private from the start: only this process's user reads stored files.
        return tmp, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def _commit(self, file: IO[bytes], tmp: Path, path: Path) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        make_private_dir(path.parent)
        os.replace(tmp, path)

    def _write_all(self, data: bytes, path: Path) -> None:
        tmp, file = self._open_tmp()
        try:
            file.write(data)
            self._commit(file, tmp, path)
        except BaseException:
            _discard(file, tmp)
            raise


def _discard(file: IO[bytes], tmp: Path) -> None:
    file.close()
    tmp.unlink(missing_ok=True)


async def _read_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
            yield chunk
    finally:
        file.close()


class S3Storage:
    """An S3 bucket (MinIO, moto, AWS); the client and the bucket are made on first use."""

    def __init__(
        self,
        *,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        bucket: str,
        region: str = "us-east-1",
        part_size: int = 8 * 1024 * 1024,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
    ) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts are at least 5 MiB")
        self.bucket = bucket
        self.part_size = part_size
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": AioConfig(
                connect_timeout=connect_timeout,
                read_timeout=60,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        }
        self._region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._ready = False
        self._lock = asyncio.Lock()

    async def save(self, key: str, chunks: AsyncIterator[bytes], *, max_bytes: int) -> int:
        check_key(key)
        client = await self._ready_client()
        upload = _Upload(client, self.bucket, key)
        buffer = bytearray()
        size = 0
        with _unavailable():
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise errors.TooLarge(f"File larger than {max_bytes} bytes")
                    buffer += chunk
                    while len(buffer) >= self.part_size:
                        await upload.send_part(bytes(buffer[: self.part_size]))
                        del buffer[: self.part_size]
                await upload.finish(bytes(buffer))
            except BaseException:
                await upload.abort()
                raise
        return size

    async def save_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        client = await self._ready_client()
        with _unavailable():
            await client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        check_key(key)
        client = await self._ready_client()
        with _unavailable(), _not_found():
            response = await client.get_object(Bucket=self.bucket, Key=key)
        return _stream_body(response["Body"])

    async def read_bytes(self, key: str) -> bytes:
        check_key(key)
        client = await self._ready_client()
        with _unavailable(), _not_found():
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        return data

    async def delete(self, key: str) -> None:
        check_key(key)
        client = await self._ready_client()
        with _unavailable():
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def check(self) -> None:
        client = await self._ready_client()
        with _unavailable():
            await client.head_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        self._client = None
        self._ready = False
        await self._stack.aclose()

    async def _ready_client(self) -> Any:
        if self._ready:
            return self._client
        async with self._lock:
            if self._client is None:
                create = get_session().create_client("s3", **self._client_args)
                self._client = await self._stack.enter_async_context(create)
            if not self._ready:
                with _unavailable():
                    await self._create_bucket()
                self._ready = True
        return self._client

    async def _create_bucket(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING_CODES:
                raise
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self._region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await self._client.create_bucket(**args)
        except ClientError as exc:
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise


class _Upload:
    """One object going up: `put_object` when it fits one part, else a multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._where = {"Bucket": bucket, "Key": key}
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    async def send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            created = await self._client.create_multipart_upload(**self._where)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        sent = await self._client.upload_part(
            **self._where, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def finish(self, rest: bytes) -> None:
        if self._upload_id is None:
            await self._client.put_object(**self._where, Body=rest)
            return
        if rest:
            await self.send_part(rest)
        await self._client.complete_multipart_upload(
            **self._where, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )
        self._upload_id = None

    async def abort(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        # Best effort: a failed abort leaves parts that a bucket lifecycle rule reaps.
        with contextlib.suppress(BotoCoreError, ClientError, OSError):
            await self._client.abort_multipart_upload(**self._where, UploadId=upload_id)


async def _stream_body(body: Any) -> AsyncIterator[bytes]:
    async with body:
        while chunk := await body.read(CHUNK_SIZE):
            yield chunk


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _not_found() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if _error_code(exc) in _MISSING_CODES:
            raise errors.NotFound("File not found") from None
        raise


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except BotoCoreError as exc:
        raise errors.Unavailable(f"File storage unreachable: {exc}") from exc
    except ClientError as exc:
        if _error_code(exc).startswith("5") or _error_code(exc) in {
            "ServiceUnavailable",
            "SlowDown",
            "InternalError",
        }:
            raise errors.Unavailable("File storage unavailable") from exc
        raise
