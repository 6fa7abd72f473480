"""HTTP proxying to the owning service: one pooled client per service, streamed request bodies,
the caller's credentials and a correlation id passed on, failures answered as problems."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
from fastapi import Request
from fastapi.responses import Response

from services.gateway.routing import owner_of
from shared.errors import ProblemError, problem_response
from shared.observability import CORRELATION_HEADER, correlation_id_var

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 7.6.1) and ones the gateway sets itself.
_DROP_REQUEST = {
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    CORRELATION_HEADER.lower(),
}
_DROP_RESPONSE = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "server",
    "date",
    "x-server-time",
    CORRELATION_HEADER.lower(),
}


#: How long a replica that refused a connection is passed over before it is tried again (seconds).
REPLICA_BACKOFF_SECONDS = 1.0
REPLICA_BACKOFF_MAX_SECONDS = 8.0


def replica_urls(spec: str) -> list[str]:
    """``http://a:8003,http://b:8003`` -> one URL per replica (a single URL is one replica)."""
    urls = [url.strip().rstrip("/") for url in spec.split(",") if url.strip()]
    if not urls:
        raise ValueError(f"no upstream URL in {spec!r}")
    return urls


class Replicas:
    """The replicas of one service: whose turn it is, and which refused a connection lately.

    Shared by all the pools of the service, so the turn is fair and a refusal seen by one pool spares
    the others the attempt.
    """

    def __init__(self, urls: list[str]) -> None:
        self.urls = [httpx.URL(url) for url in urls]
        self._next = 0
        self._down_until = [0.0] * len(urls)
        self._backoff = [0.0] * len(urls)

    def order(self) -> list[int]:
        """Indexes to try, starting with the next in turn; replicas backing off come last."""
        count = len(self.urls)
        start = self._next
        self._next = (start + 1) % count
        turn = [(start + i) % count for i in range(count)]
        now = time.monotonic()
        up = [i for i in turn if self._down_until[i] <= now]
        return up + [i for i in turn if i not in up]

    def refused(self, index: int) -> None:
        self._backoff[index] = min(max(self._backoff[index] * 2, REPLICA_BACKOFF_SECONDS), REPLICA_BACKOFF_MAX_SECONDS)
        self._down_until[index] = time.monotonic() + self._backoff[index]

    def answered(self, index: int) -> None:
        self._backoff[index] = 0.0
        self._down_until[index] = 0.0


class ReplicaTransport(httpx.AsyncBaseTransport):
    """Spreads requests over the replicas of one service, in turn, with a connection pool per replica.

    A replica that refuses the connection (or cannot be connected to in time) is skipped for a short,
    growing back-off and the request goes to the next one: the request never left, so even a POST is
    safe to send again. A failure after the connection was made is not retried here (the replica may
    have acted on it); the proxy decides what the caller sees. When every replica is backing off they
    are all tried anyway, so a service that just came back is used at once.
    """

    def __init__(self, replicas: Replicas, limits: httpx.Limits) -> None:
        self.replicas = replicas
        self._transports = [httpx.AsyncHTTPTransport(limits=limits) for _ in replicas.urls]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        order = self.replicas.order()
        for attempt, index in enumerate(order):
            replica = self.replicas.urls[index]
            request.url = request.url.copy_with(scheme=replica.scheme, host=replica.host, port=replica.port)
            request.headers["Host"] = replica.netloc.decode("ascii")
            try:
                response = await self._transports[index].handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.replicas.refused(index)
                left = len(order) - attempt - 1
                log.warning("replica %s refused the connection (%s); %d left to try", replica, exc, left)
                if not left:
                    raise
                continue
            self.replicas.answered(index)
            return response
        raise AssertionError("unreachable: at least one replica is tried")

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


#: Pools per service. httpcore scans every pooled connection on each request (idle and readable checks),
#: so one big pool costs O(connections) per request; several small pools taken in turn keep that scan short.
POOL_SHARDS = 8
UPSTREAM_KEEPALIVE_SECONDS = 30.0
CONNECTIONS_PER_SHARD = 32


class Upstreams:
    """The pooled clients of each service; ``transports`` swaps in in-process apps (embedded mode).

    A service's URL may list several replicas, comma-separated: requests are spread over them
    (:class:`ReplicaTransport`), so the gateway needs no load balancer in front of a scaled service.
    """

    def __init__(
        self, urls: dict[str, str], timeout: float, transports: dict[str, httpx.AsyncBaseTransport] | None = None
    ) -> None:
        limits = httpx.Limits(
            max_connections=CONNECTIONS_PER_SHARD,
            max_keepalive_connections=CONNECTIONS_PER_SHARD,
            # Shorter than the services' keep-alive (75 s, launcher): the gateway, not the service, closes idle
            # connections, so a request is never sent on one the service is closing.
            keepalive_expiry=UPSTREAM_KEEPALIVE_SECONDS,
        )
        self._shards: dict[str, itertools.cycle[httpx.AsyncClient]] = {}
        self._all: list[httpx.AsyncClient] = []
        #: One client per service for calls that need no sharding (JWKS, OpenAPI).
        self.clients: dict[str, httpx.AsyncClient] = {}
        for name, spec in urls.items():
            in_process = (transports or {}).get(name)
            urls_of_service = replica_urls(spec) if in_process is None else [f"http://{name}"]
            replicas = Replicas(urls_of_service) if len(urls_of_service) > 1 else None
            shards = [
                httpx.AsyncClient(
                    base_url=urls_of_service[0],
                    # Several replicas: a pool each, taken in turn (ReplicaTransport rewrites the host).
                    transport=in_process or (ReplicaTransport(replicas, limits) if replicas else None),
                    timeout=httpx.Timeout(timeout, connect=3.0),
                    limits=limits,
                    follow_redirects=False,
                )
                for _ in range(1 if in_process is not None else POOL_SHARDS)
            ]
            self._all += shards
            self._shards[name] = itertools.cycle(shards)
            self.clients[name] = shards[0]

    def client_for(self, service: str) -> httpx.AsyncClient:
        return next(self._shards[service])

    async def close(self) -> None:
        for client in self._all:
            await client.aclose()


class LimitedBody:
    """The request body streamed to the service, counted: past ``limit`` bytes it stops with a 413 problem.

    ``exceeded`` tells the proxy afterwards, whatever the failure looked like on the way out: over HTTP
    the error surfaces from ``send``, in-process (embedded) the service sees a broken body and answers 400.
    """

    def __init__(self, request: Request, limit: int) -> None:
        self.request, self.limit, self.exceeded = request, limit, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.request.stream():
            seen += len(chunk)
            if seen > self.limit:
                self.exceeded = True
                raise ProblemError(413, "payload_too_large", f"the request body exceeds {self.limit} bytes")
            yield chunk


def _too_large(limit: int) -> Response:
    return problem_response(413, "payload_too_large", f"the request body exceeds {limit} bytes")


def upstream_path(request: Request) -> str:
    """The path as the client encoded it: the decoded one may hold characters that are not valid in a URL
    (control characters) or that change its meaning (``%2F``); bytes that need it are escaped again."""
    raw: bytes | None = request.scope.get("raw_path")
    if not raw:
        return request.url.path
    return quote_from_bytes(raw, safe="/%:@!$&'()*+,;=-._~")


async def forward(request: Request, upstreams: Upstreams, max_body: int) -> Response:
    service = owner_of(request.url.path)
    if service is None or any(part in (".", "..") for part in request.url.path.split("/")):
        # Dot segments would be resolved by the client library after routing: another path, unrouted.
        return problem_response(404, "not_found", "no such endpoint")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        return _too_large(max_body)

    headers: dict[str, Any] = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    headers[CORRELATION_HEADER] = correlation_id_var.get() or ""
    headers["X-Forwarded-For"] = request.client.host if request.client else "unknown"
    headers["X-Forwarded-Proto"] = request.url.scheme
    has_body = request.method in ("POST", "PUT", "PATCH", "DELETE")
    body = LimitedBody(request, max_body) if has_body else None
    client = upstreams.client_for(service)
    upstream = client.build_request(
        request.method,
        upstream_path(request),
        params=request.url.query.encode() if request.url.query else None,
        headers=headers,
        content=body,
    )
    try:
        try:
            response = await client.send(upstream)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if has_body:
                raise
            # A pooled keep-alive connection the service had already closed: a read is safe to retry once.
            response = await client.send(upstream)
    except ProblemError as exc:
        return problem_response(exc.status, exc.code, exc.detail)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        log.warning("%s unreachable: %s", service, exc)
        return problem_response(503, "service_unavailable", f"the {service} service is unavailable; try again shortly")
    except httpx.TimeoutException:
        return problem_response(504, "upstream_timeout", f"the {service} service did not answer in time")
    except httpx.TransportError as exc:
        if body is not None and body.exceeded:
            return _too_large(max_body)
        log.warning("%s failed mid-request: %s", service, exc)
        return problem_response(502, "bad_gateway", f"the {service} service dropped the request; try again")
    if body is not None and body.exceeded:
        return _too_large(max_body)
    kept = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE}
    return Response(content=response.content, status_code=response.status_code, headers=kept)
