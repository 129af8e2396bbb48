"""The WebSocket protocol the server and the gateway run under uvicorn.

uvicorn's sans-I/O implementation (the fastest measured: docs/performance.md) with one
fix: a protocol failure (a message over the size limit sent in many fragments, invalid
UTF-8) writes its close frame and keeps reading for a moment before closing the TCP
connection. Closing with unread data would reset it, and the client would see 1006
instead of 1009 or 1007. It can refuse a handshake with an HTTP answer (ASGI denial
response), as the legacy implementation could.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

FAILED_READ_GRACE = 2.0  # seconds a failed connection is still read (and discarded)


class SansIOWebSocket(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        if self.close_sent and self.conn.parser_exc is not None:
            return  # failed: discard what the client still sends until we close
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(FAILED_READ_GRACE, self._close_transport)

    def eof_received(self) -> None:
        if self.close_sent:
            self._close_transport()

    def _close_transport(self) -> None:
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a reader that never drains its close frame
        else:
            self.transport.close()
