"""The relay's frame reader: whole frames forwarded as the bytes they came in, control
frames handled, however the byte stream is cut; no size limit on what the server sends."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from parley.gateway.relay import UpstreamProtocol


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def server_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=False, extensions=[])


async def opened() -> tuple[UpstreamProtocol, list[bytes], list[Any]]:
    frames: list[bytes] = []
    closes: list[Any] = []
    ws = ClientProtocol(parse_uri("ws://127.0.0.1:1/service/ws"))
    ws.send_request(ws.connect())
    protocol = UpstreamProtocol(ws, on_frames=frames.append, on_close=lambda *c: closes.append(c))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    key = ws.key
    from websockets.utils import accept_key

    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()
    hello = server_frame(Opcode.TEXT, b'{"type":"hello"}')
    protocol.data_received(response + hello)  # frames right behind the 101
    assert protocol.handshake.done() and protocol.open
    assert frames == [hello]
    frames.clear()
    transport.written.clear()
    return protocol, frames, closes


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 50, 1000])
async def test_frames_pass_through_as_bytes_whatever_the_cuts(cut: int) -> None:
    protocol, frames, closes = await opened()
    stream = b"".join(
        [
            server_frame(Opcode.TEXT, "é".encode() * 10),
            server_frame(Opcode.TEXT, b"x" * 300),  # 16-bit length
            server_frame(Opcode.BINARY, b"\x00\x01"),
            server_frame(Opcode.TEXT, b"part1", fin=False),
            server_frame(Opcode.CONT, b"part2"),
        ]
    )
    for i in range(0, len(stream), cut):
        protocol.data_received(stream[i : i + cut])
    assert b"".join(frames) == stream
    assert closes == []


async def test_ping_is_answered_and_not_forwarded() -> None:
    protocol, frames, _ = await opened()
    transport: Any = protocol.transport
    text = server_frame(Opcode.TEXT, b"one")
    protocol.data_received(text + server_frame(Opcode.PING, b"p!") + text)
    assert frames == [text, text]
    pong = transport.written[-1]
    assert pong[0] == 0x8A and pong[1] & 0x80  # a masked pong from the client side


async def test_close_is_reported_and_answered() -> None:
    protocol, frames, closes = await opened()
    transport: Any = protocol.transport
    close = server_frame(Opcode.CLOSE, Close(4001, "session ended").serialize())
    protocol.data_received(server_frame(Opcode.TEXT, b"last") + close)
    assert frames == [server_frame(Opcode.TEXT, b"last")]
    assert closes == [(4001, "session ended")]
    assert transport.written and transport.written[-1][0] == 0x88  # our close answer


@pytest.mark.parametrize("cut", [1000, 64 * 1024])
async def test_server_messages_over_the_clients_limit_pass_whole(cut: int) -> None:
    """The 64 KiB limit is on what clients send: a server frame of 1 MiB, or a message
    of 300 KiB in fragments, reaches the client (API.md, "Isolation")."""
    protocol, frames, closes = await opened()
    big = server_frame(Opcode.TEXT, b"r" * (1 << 20))  # 64-bit length
    fragmented = server_frame(Opcode.TEXT, b"a" * 150_000, fin=False) + server_frame(
        Opcode.CONT, b"b" * 150_000
    )
    stream = big + fragmented
    for i in range(0, len(stream), cut):
        protocol.data_received(stream[i : i + cut])
    assert b"".join(frames) == stream
    assert closes == []
    assert protocol.open


async def test_masked_frame_from_the_server_is_a_protocol_error() -> None:
    protocol, _, closes = await opened()
    masked = Frame(Opcode.TEXT, b"x").serialize(mask=True, extensions=[])
    protocol.data_received(masked)
    assert closes[0][0] == 1002


async def test_refusal_is_reported_with_its_status_and_body() -> None:
    from websockets.exceptions import InvalidStatus

    ws = ClientProtocol(parse_uri("ws://127.0.0.1:1/service/ws"))
    ws.send_request(ws.connect())
    protocol = UpstreamProtocol(ws, on_frames=print, on_close=print)
    protocol.connection_made(FakeTransport())  # type: ignore[arg-type]
    body = b'{"detail":"no","code":"unauthorized"}'
    head = f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    protocol.data_received(head)
    protocol.data_received(body[:10])
    assert not protocol.handshake.done()
    protocol.data_received(body[10:])
    with pytest.raises(InvalidStatus) as info:
        protocol.handshake.result()
    assert info.value.response.status_code == 401
    assert info.value.response.body == body
