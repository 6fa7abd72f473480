"""The users service's ASGI app: ``create_app()``; the lifespan owns database, bus and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.users import api, events
from services.users.config import Settings
from services.users.security import PasswordHashing, TokenIssuer, load_or_create_private_key
from services.users.service import UsersService
from shared.auth import JwksSource
from shared.bus import Bus
from shared.images import ImageStore
from shared.runtime import build_app, service_runtime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, jwks: JwksSource | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        issuer = TokenIssuer(load_or_create_private_key(settings), settings)

        async def own_keys() -> dict[str, Any]:
            return issuer.jwks

        async with service_runtime(app, settings, MIGRATIONS, bus=bus, jwks=jwks or own_keys) as runtime:
            app.state.users = UsersService(
                settings=settings,
                passwords=PasswordHashing(settings.password_hash_memory_kib, settings.password_hash_time_cost),
                tokens=issuer,
                verifier=runtime.verifier,
                images=ImageStore(settings.media_dir),
            )
            await runtime.consume(events.CONSUMED)
            yield

    app = build_app("Auction users", settings.service_name, lifespan)
    app.include_router(api.router)
    return app
