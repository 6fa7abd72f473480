"""The chat service's ASGI app: ``create_app()``; the lifespan owns database, bus and consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.chat import api, events
from services.chat.config import Settings
from services.chat.service import ChatService
from shared.auth import JwksSource
from shared.bus import Bus
from shared.runtime import build_app, service_runtime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, jwks: JwksSource | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, MIGRATIONS, bus=bus, jwks=jwks) as runtime:
            app.state.chat = ChatService()
            await runtime.consume(events.CONSUMED)
            yield

    app = build_app("Auction chat", settings.service_name, lifespan)
    app.include_router(api.router)
    return app
