"""What every service's lifespan owns: database, bus, outbox relay, consumers, token verifier.

A service's ``app.py`` builds its FastAPI app with :func:`build_app` and enters
:func:`service_runtime` in its lifespan. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import JwksSource, TokenVerifier, http_jwks_source
from shared.bus import AmqpBus, Bus, InProcessBus
from shared.config import ServiceSettings
from shared.db import Database, prepare_database
from shared.errors import install_problem_handlers
from shared.inbox import SessionHandler, idempotent
from shared.observability import health_router, instrument
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


def make_bus(settings: ServiceSettings) -> Bus:
    if settings.amqp_url:
        return AmqpBus(settings.amqp_url, settings.events_exchange)
    return InProcessBus()


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    db: Database
    bus: Bus
    relay: OutboxRelay
    verifier: TokenVerifier
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def consume(self, handlers: dict[str, SessionHandler], queue: str | None = None) -> None:
        """Subscribe the service's durable queue to the events it applies (idempotently)."""
        name = self.settings.queue_name(queue)
        await self.bus.consume(name, list(handlers), idempotent(self.db, name, handlers))

    def background(self, coro: Awaitable[Any], name: str) -> None:
        self.tasks.append(asyncio.ensure_future(coro))
        self.tasks[-1].set_name(name)


async def start_bus(bus: Bus) -> None:
    # The broker may still be starting (compose, k8s): retry for a while before giving up.
    delay = 0.5
    for attempt in range(20):
        try:
            await bus.start()
            return
        except (ConnectionError, OSError) as exc:
            if attempt == 19:
                raise
            log.warning("broker not reachable yet (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


@contextlib.asynccontextmanager
async def service_runtime(
    app: FastAPI,
    settings: ServiceSettings,
    migrations_dir: Path,
    *,
    bus: Bus | None = None,
    jwks: JwksSource | None = None,
) -> AsyncIterator[ServiceRuntime]:
    """Open everything the service needs, and close it all on the way out."""
    db = await prepare_database(settings, migrations_dir)
    owns_bus = bus is None
    the_bus = bus if bus is not None else make_bus(settings)
    if owns_bus:
        await start_bus(the_bus)
    relay = OutboxRelay(db, the_bus, poll_seconds=settings.outbox_poll_seconds)
    verifier = TokenVerifier(
        jwks or http_jwks_source(settings.jwks_url), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    runtime = ServiceRuntime(settings, db, the_bus, relay, verifier)
    relay_task = asyncio.create_task(relay.run(), name=f"{settings.service_name}-outbox-relay")
    app.state.runtime = runtime
    app.state.verifier = verifier
    app.state.checks["database"] = db.ping
    app.state.checks["broker"] = _bus_ready(the_bus)
    try:
        yield runtime
    finally:
        relay.stop()
        try:
            await asyncio.wait_for(relay_task, timeout=10)
        except (TimeoutError, Exception):  # noqa: BLE001 - shutting down regardless
            log.warning("the outbox relay did not stop in time")
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await relay.flush()  # whatever committed during shutdown still goes out if it can
        if owns_bus:
            await the_bus.close()
        await db.dispose()


def _bus_ready(bus: Bus) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bus.ready

    return check


def build_app(
    title: str, service: str, lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]
) -> FastAPI:
    """A FastAPI app with problem responses, request context, metrics and health endpoints."""
    app = FastAPI(title=title, lifespan=lifespan, openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    app.state.checks = {}
    install_problem_handlers(app)
    instrument(app, service)

    # The lifespan registers the real checks in this dict (database, broker, ...).
    app.include_router(health_router(app.state.checks))
    return app


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def _transaction(request: Request) -> AsyncIterator[AsyncSession]:
    async with runtime_of(request).db.transaction() as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with runtime_of(request).db.read() as session:
        yield session


#: A session in a transaction that commits when the route returns (before the response is sent).
WriteSession = Annotated[AsyncSession, Depends(_transaction, scope="function")]
#: A session for reads only.
ReadSession = Annotated[AsyncSession, Depends(_read_session)]
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
