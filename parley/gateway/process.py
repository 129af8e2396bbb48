"""The gateway process: uvicorn with the relay's WebSocket protocol, one JSON access-log
line per request, and a shutdown that closes relayed WebSockets with 1001 first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from typing import Any

import uvicorn

from parley.config import Settings
from parley.gateway.app import Gateway, create_app
from parley.gateway.exchange import access_logger
from parley.gateway.relay import RelayedClient
from parley.wsserver import freeze_startup_heap


class GatewayServer(uvicorn.Server):
    """Closes relayed WebSockets with 1001 before uvicorn drops connections (it would say 1012)."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # The listener first: a client told 1001 reconnects at once (the web client does);
        # accepted here, its new socket would be relayed until uvicorn's graceful timeout
        # cancelled it (one traceback per socket, the whole timeout spent).
        for listener in self.servers:
            listener.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.gateway.websockets.close_all(1001), timeout=5)
        await super().shutdown(sockets)


def make_server(
    settings: Settings, gateway: Gateway | None = None, *, port: int | None = None
) -> GatewayServer:
    """A uvicorn server for the gateway on settings.host:settings.gateway_port."""
    app = gateway or create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.gateway_port if port is None else port,
        loop="uvloop",
        http="httptools",
        ws=RelayedClient,  # uvicorn's sans-I/O protocol + bytes relay (docs/performance.md)
        ws_max_size=settings.ws_max_frame,
        ws_per_message_deflate=False,  # frames are relayed as the server framed them
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return GatewayServer(config, app)


def configure_logging(settings: Settings) -> None:
    """One JSON line per request on stderr from `parley.gateway.access`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(handler)
    access_logger.setLevel(settings.log_level.upper())
    access_logger.propagate = False


def run_gateway(settings: Settings) -> None:
    configure_logging(settings)
    server = make_server(settings)
    freeze_startup_heap(settings.gc_full_every)
    if settings.gateway_reuse_port:
        server.run(sockets=[shared_listener(settings.host, settings.gateway_port)])
    else:
        server.run()


def shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket that other gateway processes bind too (SO_REUSEPORT): the
    kernel hands each new connection to one of them (`parley serve --gateways N`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
