"""What operators watch: Prometheus metrics, request ids and one JSON log line per request.

Metrics live in a registry of the application's own (several apps in one process, as in the tests
and in a multi-app deployment, keep separate counts). Routes are labelled by their template
(``/v1/keys/{key_id}``), never by the path a caller sent, so no key id, token or text reaches a
metric or a log line; log lines carry the method, route, status, duration, request id and the
tenant's id (not its token).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

__all__ = ["REQUEST_ID_HEADER", "Observability"]

REQUEST_ID_HEADER = "X-Request-Id"
_GOOD_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("dojang.service.access")


class Observability:
    """The app's metrics and its per-request middleware."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dojang_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "dojang_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.verdicts = Counter(
            "dojang_verdicts", "Verdicts given, per modality", ["modality", "verdict"], registry=self.registry
        )
        queue = Gauge("dojang_detect_queue", "Verifications running or waiting for a core", registry=self.registry)
        queue.set_function(queue_depth)

    def verdict(self, modality: str, verdict: str) -> None:
        self.verdicts.labels(modality=modality, verdict=verdict).inc()

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _GOOD_ID.match(incoming) else secrets.token_hex(8)
        request.state.request_id = request_id
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            seconds = time.perf_counter() - start
            route = _route_of(request)
            self.requests.labels(method=request.method, route=route, status=str(status)).inc()
            self.latency.labels(route=route).observe(seconds)
            principal = getattr(request.state, "principal", None)
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "ms": round(seconds * 1000, 1),
                        "tenant": getattr(principal, "tenant_id", None),
                    }
                )
            )


def _route_of(request: Request) -> str:
    route: Any = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
