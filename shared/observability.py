"""Structured logs with a correlation id, Prometheus metrics, and the health endpoints."""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The correlation id of the request or event being handled; set by the middleware and the consumer wrapper.
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

CORRELATION_HEADER = "X-Correlation-ID"
SERVER_TIME_HEADER = "X-Server-Time"

# Metrics are process-wide; the ``service`` label tells the embedded mode's services apart.
http_requests = Counter("http_requests_total", "HTTP requests handled", ["service", "method", "status"])
http_latency = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
events_published = Counter("events_published_total", "Events published from the outbox", ["producer", "type"])
events_consumed = Counter("events_consumed_total", "Events applied by a consumer", ["consumer", "type"])
#: Stop-the-world pauses of Python's cyclic garbage collector: with many live objects (thousands of sockets)
#: a full collection stalls every request and socket of the process at once.
gc_pauses = Histogram(
    "python_gc_pause_seconds",
    "Pauses of the cyclic garbage collector",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
_gc_started: list[float] = []


def _time_gc(phase: str, info: dict[str, int]) -> None:
    try:
        if phase == "start":
            _gc_started.append(time.perf_counter())
        elif _gc_started:
            gc_pauses.labels(str(info.get("generation", -1))).observe(time.perf_counter() - _gc_started.pop())
    except Exception:  # noqa: BLE001 - a collection can start anywhere, even at the recursion limit: never fail it
        _gc_started.clear()


def measure_gc_pauses() -> None:
    """Record every collection's pause in ``python_gc_pause_seconds`` (once per process)."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id_var.get(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore", "pika", "dramatiq"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def server_time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestContextMiddleware:
    """Correlation id in and out, ``X-Server-Time`` on every response, request metrics.

    Plain ASGI (not ``BaseHTTPMiddleware``): it sits on every request of every service and of the
    gateway, so it only rewrites the response start and never buffers or re-wraps the body.
    """

    def __init__(self, app: ASGIApp, service: str, extra_headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.service = service
        self.extra_headers = [(k.lower().encode(), v.encode()) for k, v in (extra_headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(CORRELATION_HEADER)
        correlation_id = (incoming or uuid.uuid4().hex)[:64]
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        method = scope["method"]
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[CORRELATION_HEADER] = correlation_id
                headers[SERVER_TIME_HEADER] = server_time()
                present = {name for name, _ in headers.raw}
                headers.raw.extend(h for h in self.extra_headers if h[0] not in present)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            correlation_id_var.reset(token)
            http_latency.labels(self.service, method).observe(time.perf_counter() - started)
            http_requests.labels(self.service, method, str(status)).inc()


ReadinessCheck = Callable[[], Awaitable[bool]]


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    """``/healthz`` (the process answers), ``/readyz`` (its dependencies answer), ``/metrics``."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ok = all(results.values())
        body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": results}
        if not ok:
            body |= {"type": "about:blank", "title": "Service Unavailable", "code": "not_ready", "status": 503}
        return JSONResponse(
            body, status_code=200 if ok else 503, media_type="application/json" if ok else "application/problem+json"
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def instrument(app: FastAPI, service: str, extra_headers: dict[str, str] | None = None) -> None:
    measure_gc_pauses()
    app.add_middleware(RequestContextMiddleware, service=service, extra_headers=extra_headers)
