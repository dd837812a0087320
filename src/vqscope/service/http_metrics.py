"""HTTP request metrics for `/metrics`: requests by method, route and status, and their latency.

The route label is the route's template (`/api/jobs/{job_id}`), never the raw path, so job ids
do not make a new time series each; a path that matches no route counts as `unmatched`.
Requests refused before routing (401, 403, 413 by the middlewares) are counted too. The
metrics live in the service's own registry (metrics.py), next to the job metrics.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from .auth import route_template

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("vqscope_http_requests", "HTTP requests answered, by method, route template and status",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("vqscope_http_request_duration_seconds",
                                 "Time from a request's arrival to the end of its response (long polls included)",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.latency.labels(method=method, route=route).observe(seconds)


class HttpMetricsMiddleware:
    """Outermost middleware: times every HTTP request and counts its status."""

    def __init__(self, app: Any, metrics: HttpMetrics, router: Any):
        self.app = app
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = route_template(self.router, scope) or "unmatched"
            self.metrics.observe(scope.get("method", "GET"), route, status, time.perf_counter() - started)
