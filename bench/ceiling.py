"""The ceiling: the least a Starlette/uvicorn WebSocket broadcast server can do per message.

No persistence, no auth, no checks. A socket joins the rooms named in its URL
(`/ws?user=7&chats=1,2`); a `send` frame is encoded once and written to every socket of
its room, the sender included (its acknowledgement), in the shape Parley uses. A history
page (`GET /service/api/chats/{id}/messages`) is served from memory. Parley's figures in
`make bench` are read as a fraction of this server's, measured in the same run.

Usage: python -m bench.ceiling --port 9000 [--ws websockets-sansio|websockets|wsproto]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

rooms: dict[int, set[WebSocket]] = defaultdict(set)
seq: dict[int, int] = defaultdict(int)
PAGE = orjson.dumps(
    [
        {"id": i, "chat_id": 1, "seq": i, "sender": {"id": 1, "username": "ceiling"},
         "content": f"message {i}", "created_at": "2026-01-01T00:00:00Z"}
        for i in range(50)
    ]
)  # fmt: skip


async def ws(websocket: WebSocket) -> None:
    chats = [int(c) for c in websocket.query_params.get("chats", "").split(",") if c]
    user = int(websocket.query_params.get("user", "0"))
    await websocket.accept()
    for chat in chats:
        rooms[chat].add(websocket)
    await websocket.send_text('{"type":"hello"}')
    try:
        while True:
            frame = orjson.loads(await websocket.receive_text())
            if frame.get("type") != "send":
                continue
            chat = frame["chat_id"]
            seq[chat] += 1
            message = {
                "type": "message",
                "message": {
                    "id": seq[chat], "chat_id": chat, "seq": seq[chat],
                    "sender": {"id": user}, "content": frame["content"],
                    "client_id": frame.get("client_id"), "created_at": time.time(),
                },
            }  # fmt: skip
            data = orjson.dumps(message).decode()
            for peer in list(rooms[chat]):
                try:
                    await peer.send_text(data)
                except (RuntimeError, OSError, WebSocketDisconnect):
                    rooms[chat].discard(peer)
    except WebSocketDisconnect:
        pass
    finally:
        for chat in chats:
            rooms[chat].discard(websocket)


async def history(_request: Request) -> Response:
    return Response(PAGE, media_type="application/json")


async def health(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        WebSocketRoute("/ws", ws),
        WebSocketRoute("/service/ws", ws),
        Route("/health", health),
        Route("/service/api/chats/{chat_id:int}/messages", history),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default="websockets-sansio")
    parser.add_argument("--server", default="uvicorn", choices=["uvicorn", "granian", "hypercorn"])
    args = parser.parse_args()
    if args.server == "granian":
        from granian import Granian  # type: ignore[import-not-found]

        Granian("bench.ceiling:app", address="127.0.0.1", port=args.port, interface="asgi").serve()
        return
    if args.server == "hypercorn":
        import asyncio

        import uvloop
        from hypercorn.asyncio import serve  # type: ignore[import-not-found]
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{args.port}"]
        config.accesslog = None
        uvloop.install()
        asyncio.run(serve(app, config))  # type: ignore[arg-type]
        return
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", ws=args.ws,
        ws_per_message_deflate=False, log_level="warning", access_log=False, backlog=4096,
    )  # fmt: skip


if __name__ == "__main__":
    main()
