"""The gateway's ASGI app: ``create_app()``; the lifespan owns the upstream clients, the bus and the hub.

In the embedded default the launcher passes the other services' apps as ``services``: the gateway runs
their lifespans and reaches them in-process (``httpx.ASGITransport``) with the same proxy code.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from services.gateway import ws
from services.gateway.config import Settings
from services.gateway.events import dispatcher
from services.gateway.hub import Hub
from services.gateway.limits import RateLimiter
from services.gateway.openapi import merged_openapi
from services.gateway.proxy import Upstreams, forward
from shared.auth import JwksSource, TokenVerifier, http_jwks_source
from shared.bus import Bus
from shared.errors import install_problem_handlers, problem_response
from shared.observability import health_router, instrument
from shared.runtime import make_bus, start_bus

WEB_DIR = Path(__file__).parent / "web"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(
    settings: Settings | None = None,
    *,
    bus: Bus | None = None,
    jwks: JwksSource | None = None,
    services: dict[str, FastAPI] | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            transports: dict[str, httpx.AsyncBaseTransport] = {}
            for name, service_app in (services or {}).items():
                await stack.enter_async_context(service_app.router.lifespan_context(service_app))
                transports[name] = httpx.ASGITransport(app=service_app, raise_app_exceptions=False)
            upstreams = Upstreams(settings.upstreams, settings.upstream_timeout, transports)
            stack.push_async_callback(upstreams.close)
            the_bus = bus if bus is not None else make_bus(settings)
            if bus is None:
                await start_bus(the_bus)
                stack.push_async_callback(the_bus.close)
            hub = Hub()
            stack.push_async_callback(hub.close_all)
            source = jwks or http_jwks_source("/api/auth/jwks.json", client=upstreams.clients["users"])
            app.state.settings = settings
            app.state.hub = hub
            app.state.upstreams = upstreams
            app.state.verifier = TokenVerifier(source, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
            app.state.rate_limiter = RateLimiter(settings.rate_limits, app.state.verifier)
            app.state.checks["broker"] = lambda: _ready(the_bus)
            # Each gateway instance has its own exclusive queue: every instance sees every event.
            instance = f"{settings.queue_name()}.{uuid.uuid4().hex[:12]}"
            await the_bus.consume(instance, ["#"], dispatcher(hub), exclusive=True)
            yield

    app = FastAPI(title="Auction gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.checks = {}
    install_problem_handlers(app)
    instrument(app, settings.service_name, SECURITY_HEADERS)
    app.include_router(health_router(app.state.checks))
    # Outermost: /ws skips the routing and middleware layers every socket would otherwise keep alive.
    app.add_middleware(ws.WebSocketEndpoint)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        upstreams: Upstreams = request.app.state.upstreams
        return JSONResponse(await merged_openapi(upstreams.clients, {}))

    @app.api_route("/api/{path:path}", methods=PROXY_METHODS, include_in_schema=False)
    async def api(request: Request) -> Response:
        limiter: RateLimiter = request.app.state.rate_limiter
        limited = await limiter.check(request)
        if limited is not None:
            return limited
        return await forward(request, request.app.state.upstreams, settings.max_body_bytes)

    @app.api_route("/media/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def media(request: Request) -> Response:
        return await forward(request, request.app.state.upstreams, settings.max_body_bytes)

    @app.get("/assets/{name:path}", include_in_schema=False)
    async def assets(name: str) -> Response:
        root = (WEB_DIR / "assets").resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return problem_response(404, "not_found", "no such asset")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @app.get("/{page:path}", include_in_schema=False)
    async def browser_app(page: str) -> Response:
        # Every other path is a page of the single-page app: its router takes it from there.
        index = WEB_DIR / "index.html"
        if not index.is_file():
            return problem_response(404, "not_found", "the browser app is not built")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return app


async def _ready(bus: Bus) -> bool:
    return bus.ready
