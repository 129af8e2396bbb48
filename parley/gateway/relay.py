"""The WebSocket relay's wire side: frames from the server go to the client as bytes.

A server-to-client frame is unmasked on both legs, so the gateway does not decode or
re-encode it: `UpstreamProtocol` reads the server's byte stream, finds frame boundaries
(header only), answers pings, watches for the close frame, and hands runs of whole data
frames to `RelayedClient` which writes them to the client in one
`transport.write` (uvicorn's WebSocket protocol, extended with `RELAY_SEND`). Client-to-
server frames are few (what users type) and take the ordinary ASGI path.

The size limit (`PARLEY_WS_MAX_FRAME`) is on what clients send, and is applied on the
client's side only: a frame from the server (a message with many reactions or mentions)
reaches the client whatever its size.

A client that does not read is closed with 1013: frames waiting for it are bounded by
`max_pending` bytes on top of the transport's own buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from parley.wsserver import Flag, SansIOWebSocket

logger = logging.getLogger("parley.gateway")

RELAY_SEND = "parley.relay.send"
"""ASGI message: {"type": RELAY_SEND, "data": bytes of whole, unmasked frames}."""
RELAY_EXTENSION = "parley.relay"
"""Scope extension: {"write": callable(bytes) -> bool}, the synchronous fast path."""

CLOSE_TRY_AGAIN = 1013
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UPSTREAM_LOST = 1014
_MAX_HANDSHAKE = 64 * 1024


class RelayedClient(SansIOWebSocket):
    """The gateway's client side: `SansIOWebSocket` plus what the relay needs.

    - `RELAY_SEND` writes already framed bytes (advertised in the scope's extensions);
    - a close never waits for room in the write buffer (a slow reader's close frame is
      queued behind what it has not read yet, and the transport aborted if it never does).
    """

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][RELAY_EXTENSION] = {"write": self.relay_write}

    def relay_write(self, data: bytes) -> bool:
        """Writes framed bytes now if the client keeps up (no task switch, no queue);
        False when the caller must queue them (the client's buffer is full, or closed)."""
        if self.close_sent or self.disconnected or not self.writable.is_set():
            return False
        self.transport.write(data)
        return True

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == RELAY_SEND:
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            if not self.close_sent:
                self.transport.write(message["data"])
            return
        if kind == "websocket.close" and self._open():
            code = message.get("code", 1000)
            reason = message.get("reason", "") or ""
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            self.close_timer = self.loop.call_later(self.close_timeout, self._close_transport)
            return
        await super().send(message)

    def _open(self) -> bool:
        return (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and not self.transport.is_closing()
        )


class UpstreamClosed(Exception):
    """The upstream connection closed (or failed) before its handshake completed."""


class UpstreamProtocol(asyncio.Protocol):
    """One connection to a server's `/service/ws`: handshake by `websockets`, frames by hand.

    `on_frames(data)` receives runs of whole data frames (bytes as they came, unmasked);
    `on_close(code, reason)` is called once, when the server closes or the connection fails.
    """

    def __init__(
        self,
        ws: ClientProtocol,
        *,
        on_frames: Callable[[bytes], None],
        on_close: Callable[[int, str], None],
    ) -> None:
        self.ws: ClientProtocol | None = ws  # the handshake's; dropped once it is done
        self.subprotocol: Subprotocol | None = None
        self.on_frames = on_frames
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[Response] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.writable = Flag(True)
        self.open = False
        self.closed_code: int | None = None
        self._buffer = bytearray()
        self._close_sent = False
        self._refusal = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._write_handshake_data()

    def data_received(self, data: bytes) -> None:
        if self.open:
            self._buffer += data
            self._scan()
        elif not self.handshake.done():
            self._handshake_data(data)
        # after the close: discard

    def eof_received(self) -> bool | None:
        if not self.handshake.done() and self.ws is not None:
            self.ws.receive_eof()
            self._handshake_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.writable.set()
        if not self.handshake.done():
            self.handshake.set_exception(UpstreamClosed("connection closed during handshake"))
        self._closed(CLOSE_UPSTREAM_LOST, "upstream connection lost")
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # handshake

    def _write_handshake_data(self) -> None:
        assert self.transport is not None and self.ws is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def _handshake_data(self, data: bytes) -> None:
        assert self.ws is not None
        if self._refusal:
            self.ws.receive_data(data)
            self._handshake_events()
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end >= 0 and self._buffer[9:12] == b"101":
            # Feed only the response to `websockets`: the frames after it are ours to read.
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            self.ws.receive_data(head)
        elif end >= 0 or len(self._buffer) > _MAX_HANDSHAKE:  # a refusal (and its body)
            self._refusal = True
            self.ws.receive_data(bytes(self._buffer))
            self._buffer.clear()
        self._handshake_events()

    def _handshake_events(self) -> None:
        ws = self.ws
        assert ws is not None
        for event in ws.events_received():
            if not isinstance(event, Response) or self.handshake.done():
                continue
            if ws.handshake_exc is None:
                self.open = True
                self.subprotocol = ws.subprotocol
                self.handshake.set_result(event)
        if ws.handshake_exc is not None and not self.handshake.done():
            self.handshake.set_exception(ws.handshake_exc)
        if self.open:
            self.ws = None  # frames are read here from now on: `websockets` is done with
        if self.open and self._buffer:
            self._scan()

    # frames from the server

    def _scan(self) -> None:
        """Forwards every whole data frame in the buffer; handles control frames."""
        buf = self._buffer
        size = len(buf)
        pos = run = 0
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            opcode = first & 0x0F
            if second & 0x80 or first & 0x70:
                self._fail(CLOSE_PROTOCOL_ERROR, "masked or extended frame from the server")
                return
            if size - pos < header + length:
                break
            end = pos + header + length
            if opcode >= 8:  # control; data frames (text, binary, continuation) go on as they are
                self._flush(buf, run, pos)
                run = end
                payload = bytes(buf[pos + header : end])
                if opcode == Opcode.PING:
                    self._send_frame(Frame(Opcode.PONG, payload))
                elif opcode == Opcode.CLOSE:
                    self._answer_close(Close.parse(payload))
                    del buf[:]
                    return
            pos = end
        self._flush(buf, run, pos)
        del buf[:pos]

    def _flush(self, buf: bytearray, start: int, end: int) -> None:
        if end > start:
            self.on_frames(bytes(buf[start:end]))

    def _answer_close(self, close: Close) -> None:
        if not self._close_sent:
            code = close.code if close.code != 1005 else None
            with contextlib.suppress(Exception):
                payload = Close(code, close.reason).serialize() if code else b""
                self._send_frame(Frame(Opcode.CLOSE, payload))
            self._close_sent = True
        self.open = False
        self._closed(close.code, close.reason)
        assert self.transport is not None
        asyncio.get_running_loop().call_later(2.0, self.transport.close)

    def _fail(self, code: int, reason: str) -> None:
        self.close(code, reason)
        self.open = False
        self._closed(code, reason)

    def _closed(self, code: int, reason: str) -> None:
        if self.closed_code is None:
            self.closed_code = code
            self.on_close(code, reason)

    # frames to the server

    def _send_frame(self, frame: Frame) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame.serialize(mask=True, extensions=[]))

    def send(self, data: str | bytes) -> bool:
        """Sends one message; False when the connection is no longer open."""
        if not self.open or self._close_sent:
            return False
        if isinstance(data, str):
            self._send_frame(Frame(Opcode.TEXT, data.encode()))
        else:
            self._send_frame(Frame(Opcode.BINARY, data))
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Starts the closing handshake (the server answers and closes TCP)."""
        if self._close_sent or self.transport is None:
            return
        self._close_sent = True
        with contextlib.suppress(Exception):
            self._send_frame(Frame(Opcode.CLOSE, Close(code, reason).serialize()))
        asyncio.get_running_loop().call_later(5.0, self.abort)

    def abort(self) -> None:
        if self.transport is not None and not self.lost.done():
            self.transport.abort()


async def open_upstream(
    ws_url: str,
    *,
    sock: socket.socket,
    headers: Sequence[tuple[str, str]],
    subprotocols: Sequence[str] | None,
    handshake_timeout: float,
    on_frames: Callable[[bytes], None],
    on_close: Callable[[int, str], None],
) -> UpstreamProtocol:
    """The WebSocket handshake on an already connected socket, within `handshake_timeout`
    (a busy server answers late; it is not down). Raises InvalidStatus when the server
    refuses, TimeoutError when it does not answer in time, OSError, InvalidHandshake or
    UpstreamClosed when the connection fails."""
    uri = parse_uri(ws_url)
    ws = ClientProtocol(
        uri, subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None
    )
    request = ws.connect()
    extra = Headers()
    for name, value in headers:
        extra[name] = value
    request.headers.update(extra)
    ws.send_request(request)
    loop = asyncio.get_running_loop()
    _transport, protocol = await loop.create_connection(
        lambda: UpstreamProtocol(ws, on_frames=on_frames, on_close=on_close),
        sock=sock,
    )
    try:
        async with asyncio.timeout(handshake_timeout):
            await protocol.handshake
    except BaseException:
        protocol.abort()
        raise
    return protocol


__all__ = [
    "RELAY_EXTENSION",
    "RELAY_SEND",
    "InvalidHandshake",
    "InvalidStatus",
    "RelayedClient",
    "UpstreamClosed",
    "UpstreamProtocol",
    "open_upstream",
]
