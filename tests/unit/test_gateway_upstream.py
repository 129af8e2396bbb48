"""The gateway's upstream client against a raw server: keep-alive reuse, a reused
connection the server closed before answering (sent again once), bodies and framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from parley.gateway.upstream import Broken, ReadTimeout, UpstreamClient
from tests.waiting import eventually, let_time_pass

HEAD = b"GET /x HTTP/1.1\r\nhost: test\r\n\r\n"


async def _serve(answer: bytes, *, answer_only_first: bool = False) -> tuple[asyncio.Server, int]:
    """Answers each request with `answer`; with `answer_only_first`, a second request on
    the same connection is met with a close (a keep-alive timeout racing the request)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if answer_only_first and served:
                    break
                writer.write(answer)
                await writer.drain()
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _client(**kwargs: float) -> UpstreamClient:
    options = {"connect_timeout": 1.0, "read_timeout": 1.0, **kwargs}
    return UpstreamClient(max_connections=10, **options)  # type: ignore[arg-type]


async def _get(client: UpstreamClient, port: int) -> tuple[int, bytes]:
    response = await client.request("127.0.0.1", port, HEAD, None)
    try:
        body = b"".join([chunk async for chunk in response.chunks()])
        return response.status, body
    finally:
        response.release()


async def test_connections_are_reused() -> None:
    server, port = await _serve(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    client = _client()
    async with server:
        for _ in range(5):
            assert await _get(client, port) == (200, b"ok")
        assert client.opened == 1
        await client.close()


async def test_a_reused_connection_closed_before_the_answer_is_sent_again() -> None:
    server, port = await _serve(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", answer_only_first=True
    )
    client = _client()
    async with server:
        assert await _get(client, port) == (200, b"ok")
        assert await _get(client, port) == (200, b"ok")  # its connection closed: a new one
        assert client.opened == 2
        await client.close()


async def test_chunked_answers_and_a_connection_close_are_not_reused() -> None:
    server, port = await _serve(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    client = _client()
    async with server:
        assert await _get(client, port) == (200, b"abcde")
        assert await _get(client, port) == (200, b"abcde")
        assert client.opened == 2
        await client.close()


async def test_a_streamed_body_is_sent_chunked() -> None:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    async def body() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = _client()
    async with server:
        head = b"POST /u HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
        response = await client.request("127.0.0.1", port, head, body(), chunked=True)
        assert response.status == 204 and response.complete
        response.release()
        await client.close()
    assert received[0].endswith(b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")


async def test_silence_is_a_read_timeout_and_garbage_is_broken() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await let_time_pass(2, "a silent upstream")
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    client = _client(read_timeout=0.2)
    async with server:
        with pytest.raises(ReadTimeout):
            await client.request("127.0.0.1", server.sockets[0].getsockname()[1], HEAD, None)
    garbage, port = await _serve(b"NOT HTTP AT ALL\r\n\r\n")
    async with garbage:
        with pytest.raises(Broken):
            await client.request("127.0.0.1", port, HEAD, None)
    await client.close()


async def test_an_idle_connection_the_server_closes_leaves_the_pool() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # until the client goes (or the test closes it)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = _client()
    async with server:
        assert await _get(client, port) == (200, b"ok")
        assert client._idle_count == 1
        writers[0].close()  # the server's keep-alive timeout
        await eventually(lambda: client._idle_count == 0, what="the idle connection dropped")
        assert await _get(client, port) == (200, b"ok")
        assert client.opened == 2
        await client.close()
