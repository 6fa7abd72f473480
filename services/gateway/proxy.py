"""HTTP proxying to the owning service: one pooled client per service, streamed request bodies,
the caller's credentials and a correlation id passed on, failures answered as problems."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

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


#: Pools per service. httpcore scans every pooled connection on each request (idle and readable checks),
#: so one big pool costs O(connections) per request; several small pools taken in turn keep that scan short.
POOL_SHARDS = 8
CONNECTIONS_PER_SHARD = 32


class Upstreams:
    """The pooled clients of each service; ``transports`` swaps in in-process apps (embedded mode)."""

    def __init__(
        self, urls: dict[str, str], timeout: float, transports: dict[str, httpx.AsyncBaseTransport] | None = None
    ) -> None:
        limits = httpx.Limits(max_connections=CONNECTIONS_PER_SHARD, max_keepalive_connections=CONNECTIONS_PER_SHARD)
        self._shards: dict[str, itertools.cycle[httpx.AsyncClient]] = {}
        self._all: list[httpx.AsyncClient] = []
        #: One client per service for calls that need no sharding (JWKS, OpenAPI).
        self.clients: dict[str, httpx.AsyncClient] = {}
        for name, url in urls.items():
            transport = (transports or {}).get(name)
            shards = [
                httpx.AsyncClient(
                    base_url=url if transport is None else f"http://{name}",
                    transport=transport,
                    timeout=httpx.Timeout(timeout, connect=3.0),
                    limits=limits,
                    follow_redirects=False,
                )
                for _ in range(1 if transport is not None else POOL_SHARDS)
            ]
            self._all += shards
            self._shards[name] = itertools.cycle(shards)
            self.clients[name] = shards[0]

    def client_for(self, service: str) -> httpx.AsyncClient:
        return next(self._shards[service])

    async def close(self) -> None:
        for client in self._all:
            await client.aclose()


async def _limited_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise ProblemError(413, "payload_too_large", f"the request body exceeds {limit} bytes")
        yield chunk


async def forward(request: Request, upstreams: Upstreams, max_body: int) -> Response:
    service = owner_of(request.url.path)
    if service is None:
        return problem_response(404, "not_found", "no such endpoint")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        return problem_response(413, "payload_too_large", f"the request body exceeds {max_body} bytes")

    headers: dict[str, Any] = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    headers[CORRELATION_HEADER] = correlation_id_var.get() or ""
    headers["X-Forwarded-For"] = request.client.host if request.client else "unknown"
    headers["X-Forwarded-Proto"] = request.url.scheme
    has_body = request.method in ("POST", "PUT", "PATCH", "DELETE")
    client = upstreams.client_for(service)
    upstream = client.build_request(
        request.method,
        request.url.path,
        params=request.url.query.encode() if request.url.query else None,
        headers=headers,
        content=_limited_body(request, max_body) if has_body else None,
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
        log.warning("%s failed mid-request: %s", service, exc)
        return problem_response(502, "bad_gateway", f"the {service} service dropped the request; try again")
    kept = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE}
    return Response(content=response.content, status_code=response.status_code, headers=kept)
