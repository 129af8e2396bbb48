"""Uploads: the one file part of a multipart/form-data body, streamed with a size cap.

Starlette's `request.form()` spools every part to a temporary file before the route sees
it; here the file part's bytes go straight from the socket to storage, chunk by chunk, so
an upload costs at most one network chunk of memory and is cut off at its limit. Other
parts are skipped but capped too (OTHER_PARTS_MAX), and a declared Content-Length beyond
the limit is refused before anything is read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from parley import errors

OTHER_PARTS_MAX = 64 * 1024  # form fields beside the file, and multipart framing
_MISSING = "file: send the file as the multipart/form-data field `file`"


@dataclass(frozen=True, slots=True)
class FilePart:
    """The file's client-side name (untrusted: display only) and its bytes as they arrive."""

    filename: str
    chunks: AsyncIterator[bytes]


async def read_file_part(request: Request, *, max_bytes: int, field: str = "file") -> FilePart:
    """Reads the body up to the start of the `field` file part.

    Raises TooLarge when Content-Length already says too much, ValidationFailed when the
    body is not multipart or has no such part. `chunks` raises TooLarge past `max_bytes`.
    """
    _check_length(request, max_bytes)
    kind, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise errors.ValidationFailed(_MISSING)
    reader = _PartReader(boundary, field.encode(), request.stream())
    filename = await reader.find()
    return FilePart(filename, reader.chunks(max_bytes))


def _check_length(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + OTHER_PARTS_MAX:
        raise errors.TooLarge(f"File larger than {max_bytes} bytes")


class _PartReader:
    """Drives python-multipart's push parser from the request stream, one event at a time."""

    def __init__(self, boundary: bytes, field: bytes, body: AsyncIterator[bytes]) -> None:
        self._field = field
        self._body = body
        self._events: deque[tuple[str, bytes | dict[bytes, bytes]]] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._name = self._value = b""
        self._skipped = 0
        self._parser = MultipartParser(
            boundary,
            {
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": lambda: self._events.append(("end", b"")),
                "on_end": lambda: self._events.append(("done", b"")),
            },
        )

    async def find(self) -> str:
        """Skips parts until the file part's headers; returns its file name."""
        while (event := await self._next()) is not None:
            kind, value = event
            if kind == "done":
                break
            if kind == "headers" and isinstance(value, dict):
                filename = self._file_name(value)
                if filename is not None:
                    return filename
            elif kind == "data":
                self._skipped += len(value)
                if self._skipped > OTHER_PARTS_MAX:
                    raise errors.TooLarge("Form fields too large")
        raise errors.ValidationFailed(_MISSING)

    async def chunks(self, max_bytes: int) -> AsyncIterator[bytes]:
        size = 0
        while (event := await self._next()) is not None:
            kind, value = event
            if kind != "data":
                return
            assert isinstance(value, bytes)
            size += len(value)
            if size > max_bytes:
                raise errors.TooLarge(f"File larger than {max_bytes} bytes")
            yield value
        raise errors.ValidationFailed("The upload ended before the file did")

    def _file_name(self, headers: dict[bytes, bytes]) -> str | None:
        disposition, params = parse_options_header(headers.get(b"content-disposition"))
        if disposition != b"form-data" or params.get(b"name") != self._field:
            return None
        if b"filename" not in params:
            return None
        return params[b"filename"].decode("utf-8", errors="replace")

    async def _next(self) -> tuple[str, bytes | dict[bytes, bytes]] | None:
        """The next parser event, reading more of the body as needed; None at its end."""
        while not self._events:
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                return None
            except ClientDisconnect:  # the client went away: its partial file is discarded
                raise errors.ValidationFailed("The upload was interrupted") from None
            if not chunk:
                continue
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise errors.ValidationFailed(f"Malformed multipart body: {exc}") from None
        return self._events.popleft()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def _on_headers_finished(self) -> None:
        self._events.append(("headers", self._headers))
        self._headers = {}

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", bytes(data[start:end])))
