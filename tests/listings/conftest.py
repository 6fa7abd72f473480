"""Fixtures of the listings tests: the service in both modes, and a feed of events in and out of it.

``feed.publish(...)`` sends an event as the other services would (to real RabbitMQ in postgres mode,
through a connection of its own); ``feed.wait_for(...)`` waits for an event the service published.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.listings.app import create_app
from services.listings.config import Settings
from shared.bus import AmqpBus, InProcessBus
from tests.conftest import serve
from tests.listings.support import Feed, drop_broker_objects
from tests.support.tokens import TestKeys


@pytest.fixture
def settings(mode: str, make_settings: Callable[..., Any]) -> Settings:
    # A one-second minimum lets tests create listings that end while they watch.
    return make_settings(Settings, real=mode == "postgres", AUCTION_MIN_DURATION_SECONDS=1)  # type: ignore[no-any-return]


@pytest.fixture
def app(settings: Settings, test_keys: TestKeys) -> FastAPI:
    return create_app(settings, jwks=test_keys.source)


@pytest.fixture
async def client(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    try:
        async with serve(app) as http:
            yield http
    finally:
        if settings.amqp_url:
            # Cleanup only: never let a slow broker hold the test run.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drop_broker_objects(settings), timeout=10)


@pytest.fixture
async def feed(client: httpx.AsyncClient, app: FastAPI, settings: Settings) -> AsyncIterator[Feed]:
    """Needs the running service (``client``): in embedded mode it shares the service's in-process bus."""
    if settings.amqp_url is None:
        bus = app.state.runtime.bus
        assert isinstance(bus, InProcessBus)
        feed = Feed(bus)
        await bus.consume("test-capture", ["#"], feed.record)
        yield feed
        return
    own = AmqpBus(settings.amqp_url, exchange=settings.events_exchange)
    await own.start()
    feed = Feed(own)
    await own.consume(f"{settings.queue_prefix}capture", ["#"], feed.record, exclusive=True)
    try:
        yield feed
    finally:
        await own.close()
