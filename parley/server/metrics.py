"""The server's Prometheus metrics (names as in API.md), on a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from parley import __version__
from parley.server.db.session import CONFLICT_REASONS, OPERATIONS, instrument, pool_usage

_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    def __init__(
        self,
        connections: Callable[[], int],
        started: float,
        monotonic: Callable[[], float],
    ) -> None:
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
        uptime.set_function(lambda: monotonic() - started)
        Info("app", "Parley build information", registry=registry).info({"version": __version__})
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, fds
        self.db_query_time = Histogram(
            "db_query_duration_seconds",
            "Time to execute one SQL statement, by operation (its first word)",
            ["operation"],
            registry=registry,
            buckets=_DB_BUCKETS,
        )
        self.db_retries = Counter(
            "db_transaction_retries_total",
            "Statements that hit a concurrent-write conflict; the transaction is rolled back "
            "and retried or resolved (reason: unique, serialization, deadlock, lock)",
            ["reason"],
            registry=registry,
        )
        for reason in CONFLICT_REASONS:  # every series exists from the start, at 0
            self.db_retries.labels(reason)

    def bind_database(self, engine: AsyncEngine, reads: AsyncEngine | None = None) -> None:
        """Query durations, conflicts and pool usage of `engine` (and of `reads`, the
        read-only sessions' engine when it has a pool of its own)."""
        engines = [engine] if reads is None or reads is engine else [engine, reads]
        for bound in engines:
            instrument(
                bound,
                on_query=lambda op, seconds: self.db_query_time.labels(op).observe(seconds),
                on_conflict=lambda reason: self.db_retries.labels(reason).inc(),
            )
        for op in OPERATIONS:
            self.db_query_time.labels(op)
        in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of this process's pool",
            registry=self.registry,
        )
        in_use.set_function(lambda: float(sum(pool_usage(e)[0] for e in engines)))
        waiting = Gauge(
            "db_pool_connections_waiting",
            "Callers of this process waiting for a database connection from the pool",
            registry=self.registry,
        )
        waiting.set_function(lambda: float(sum(pool_usage(e)[1] for e in engines)))

    def record_send(self, seconds: float, *, created: bool) -> None:
        self.message_time.observe(seconds)
        if created:
            self.messages.inc()
