"""The gateway's own answers: a JSON error (`detail` and `code`) as ASGI messages or as a
Response, and a WebSocket handshake refused with an HTTP answer."""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import Scope, Send


def error_body(detail: str, code: str) -> bytes:
    return orjson.dumps({"detail": detail, "code": code})


async def send_error(send: Send, status: int, detail: str, code: str) -> None:
    body = error_body(detail, code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(status: int, detail: str, code: str) -> Response:
    return json_response(status, error_body(detail, code))


def json_response(status: int, body: bytes) -> Response:
    return Response(body, status, media_type="application/json")


async def refuse_handshake(send: Send, scope: Scope, response: Response) -> None:
    """Refuses a WebSocket handshake with an HTTP answer (ASGI denial extension), else 1008."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(k, v) for k, v in response.raw_headers]
    await send(
        {
            "type": "websocket.http.response.start",
            "status": response.status_code,
            "headers": headers,
        }
    )
    await send({"type": "websocket.http.response.body", "body": bytes(response.body)})
