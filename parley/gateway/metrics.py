"""The gateway's Prometheus metrics, in a registry of its own (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

OTHER_USER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WS"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """Request counts and latencies by route template, per-user counts with a label bound."""

    def __init__(self, *, user_label_limit: int) -> None:
        self.registry = CollectorRegistry()
        self._user_label_limit = max(0, user_label_limit)
        self._user_labels: set[str] = set()
        self.requests = Counter(
            "gateway_request_total",
            "Requests handled by the gateway, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to the end of the response (WebSocket: to the handshake).",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.user_requests = Counter(
            "gateway_user_request_total",
            "Authenticated requests by user id; users beyond the label bound count as other.",
            ["user"],
            registry=self.registry,
        )
        self.rate_limit_blocked = Counter(
            "gateway_rate_limit_blocked_total",
            "Requests refused with 429, by route template and limit scope (public or user).",
            ["route", "scope"],
            registry=self.registry,
        )

    def observe_request(
        self, *, method: str, route: str, status: int, seconds: float, user_id: int | None
    ) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)
        if user_id is not None:
            self.user_requests.labels(self.user_label(user_id)).inc()

    def observe_blocked(self, *, route: str, scope: str) -> None:
        self.rate_limit_blocked.labels(route, scope).inc()

    def user_label(self, user_id: int) -> str:
        """The user's own label for the first N distinct users seen, then "other"."""
        label = str(user_id)
        if label in self._user_labels:
            return label
        if len(self._user_labels) < self._user_label_limit:
            self._user_labels.add(label)
            return label
        return OTHER_USER

    def render(self) -> bytes:
        return generate_latest(self.registry)
