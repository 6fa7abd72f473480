"""The listings service's ASGI app: ``create_app()``; the lifespan owns database, bus and consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.listings import api, events
from services.listings.config import Settings
from services.listings.service import ListingsService
from shared.auth import JwksSource
from shared.bus import Bus
from shared.images import ImageStore
from shared.runtime import build_app, service_runtime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, jwks: JwksSource | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The categories are seeded by the migrations (revision 0002), once per database.
        async with service_runtime(app, settings, MIGRATIONS, bus=bus, jwks=jwks) as runtime:
            app.state.listings = ListingsService(settings=settings, images=ImageStore(settings.media_dir))
            await runtime.consume(events.CONSUMED)
            yield

    app = build_app("Auction listings", settings.service_name, lifespan)
    app.include_router(api.router)
    return app
