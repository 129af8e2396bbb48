"""The server's Prometheus metrics (names as in API.md), on a registry of its own."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from parley import __version__


class ServerMetrics:
    def __init__(self, connections: Callable[[], int], started: float) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.app_requests = Counter(
            "app_request_total",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests handled (seed name)",
            ["method", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "app_error_total", "Errors answered, by code", ["code"], registry=registry
        )
        self.messages = Counter("messages_total", "Messages stored", registry=registry)
        self.message_time = Histogram(
            "message_processing_time_seconds",
            "Time to validate, store and publish a message",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        ws_gauge = Gauge(
            "ws_manager_active_chats_total",
            "Open WebSocket connections on this process",
            registry=registry,
        )
        ws_gauge.set_function(lambda: float(connections()))
        ws_seed = Gauge(
            "websocket_connections_active",
            "Open WebSocket connections (seed name)",
            registry=registry,
        )
        ws_seed.set_function(lambda: float(connections()))
        uptime = Gauge(
            "app_uptime_seconds", "Seconds since this process started", registry=registry
        )
        uptime.set_function(lambda: time.monotonic() - started)
        Info("app", "Parley build information", registry=registry).info({"version": __version__})

    def record_send(self, seconds: float, *, created: bool) -> None:
        self.message_time.observe(seconds)
        if created:
            self.messages.inc()
