"""The bidding service's ASGI app: ``create_app()``; the lifespan owns database, bus, broker and sweep.

In the embedded mode (no ``AMQP_URL``) the lifespan also runs the dramatiq worker in this process, on
dramatiq's in-memory ``StubBroker``; in the distributed mode the worker is its own process
(``python -m services.bidding.worker``) unless ``BIDDING_INPROCESS_WORKER=true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI

from services.bidding import api, events
from services.bidding.config import Settings
from services.bidding.service import BiddingService
from services.bidding.tasks import setup_broker
from shared.auth import JwksSource
from shared.bus import Bus
from shared.runtime import build_app, service_runtime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, jwks: JwksSource | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, MIGRATIONS, bus=bus, jwks=jwks) as runtime:
            runtime.relay.in_flight = settings.outbox_in_flight
            tasks = setup_broker(settings)
            tasks.attach(runtime.db.sessions)
            service = BiddingService(settings, runtime.db, tasks, runtime.relay)
            tasks.bind(asyncio.get_running_loop(), service.on_close_message)
            app.state.bidding = service
            app.state.close_tasks = tasks
            try:
                await runtime.consume(events.CONSUMED)
                if settings.runs_worker_in_process:
                    await asyncio.to_thread(tasks.start_worker)
                    if isinstance(tasks.broker, StubBroker):
                        # Messages in memory did not survive the last stop: send the pending closes again.
                        await service.schedule_open_auctions()
                runtime.background(service.run_sweeper(), "bidding-sweep")
                yield
            finally:
                # Off the loop: in-flight closes still need it to finish.
                await asyncio.to_thread(tasks.close)
                await service.drain()

    app = build_app("Auction bidding", settings.service_name, lifespan)
    app.include_router(api.router)
    return app
