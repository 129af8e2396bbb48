"""Request bodies: size limits and the slow-sender timeout, shared by gateway and server.

A JSON body (every route but the two uploads) may be at most MAX_JSON_BODY bytes: a
declared Content-Length beyond it is refused before anything is read, and a body without
one (chunked) is counted as it arrives and refused as soon as it passes the limit. Uploads
keep their own limits (the file's limit plus UPLOAD_SLACK for the multipart framing).
A client that sends nothing for `body_timeout` seconds mid-body gets 408 and its connection
is closed. Refusals are JSON `{"detail","code"}`; the rest of a refused body is never read.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley import errors
from parley.config import MAX_JSON_BODY, UPLOAD_SLACK, Settings

_ATTACHMENTS = re.compile(r"^/service/api/chats/[^/]+/attachments/?$")
_AVATAR = re.compile(r"^/service/api/profile/avatar/?$")


@dataclass(frozen=True, slots=True)
class BodyLimit:
    max_bytes: int
    upload: bool


class BodyRefused(Exception):
    """The body is too large (413) or too slow (408); answered before it is read whole."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def body_limit(path: str, settings: Settings) -> BodyLimit:
    if _ATTACHMENTS.match(path):
        return BodyLimit(settings.max_attachment_bytes + UPLOAD_SLACK, upload=True)
    if _AVATAR.match(path):
        return BodyLimit(settings.max_avatar_bytes + UPLOAD_SLACK, upload=True)
    return BodyLimit(MAX_JSON_BODY, upload=False)


def has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def too_large(limit: BodyLimit) -> BodyRefused:
    if limit.upload:
        return BodyRefused(413, "too_large", f"Upload larger than {limit.max_bytes} bytes")
    return BodyRefused(413, "payload_too_large", f"Request body larger than {MAX_JSON_BODY} bytes")


def check_declared(scope: Scope, limit: BodyLimit) -> None:
    """Refuses a Content-Length beyond the limit before a byte of the body is read."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.strip()
            if not declared.isdigit():
                raise BodyRefused(400, "bad_request", "Invalid Content-Length")
            if int(declared) > limit.max_bytes:
                raise too_large(limit)


class ClientGone(Exception):
    """The client went away while its request body was being read."""


async def next_chunk(receive: Receive, idle: float) -> tuple[bytes, bool]:
    """The next piece of the body and whether more follows; 408 after `idle` s of silence."""
    try:
        message = await asyncio.wait_for(receive(), idle)
    except TimeoutError:
        raise BodyRefused(408, "request_timeout", "The request body arrived too slowly") from None
    if message["type"] == "http.disconnect":
        raise ClientGone
    return message.get("body", b""), bool(message.get("more_body", False))


async def read_body(receive: Receive, limit: BodyLimit, idle: float) -> bytes:
    """The whole body, refused as soon as it passes the limit (never read past it)."""
    parts: list[bytes] = []
    size = 0
    more = True
    while more:
        chunk, more = await next_chunk(receive, idle)
        size += len(chunk)
        if size > limit.max_bytes:
            raise too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def send_refusal(send: Send, refused: BodyRefused) -> None:
    """The JSON answer. After a 413 uvicorn discards the rest of the body unread (the client
    can still read the answer); a 408 closes the connection of a client too slow to wait for."""
    body = orjson.dumps({"detail": refused.detail, "code": refused.code})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if refused.status == 408:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """The server's guard: JSON bodies read here (bounded, with the timeout) and replayed to
    the app; upload bodies streamed to the app with the timeout on every chunk."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"], self.settings)
        timeout = self.settings.body_timeout
        try:
            check_declared(scope, limit)
            if limit.upload:
                await self.app(scope, _timed(receive, timeout), _closing_on_refusal(send))
                return
            body = await read_body(receive, limit, timeout)
        except BodyRefused as refused:
            await send_refusal(send, refused)
            return
        except ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _timed(receive: Receive, timeout: float) -> Receive:
    """Upload bodies: a 408 (raised as the app's ParleyError) after `timeout` of silence."""
    done = False

    async def timed() -> Message:
        nonlocal done
        if done:  # the body is in; later calls wait for a disconnect, without a deadline
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            raise errors.RequestTimeout() from None
        done = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return timed


def _closing_on_refusal(send: Send) -> Send:
    """A 408 from the app (a client too slow to send its upload) closes the connection."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 408:
            message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
        await send(message)

    return closing
