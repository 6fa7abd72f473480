"""Fixtures of the listings tests: the service in both modes, and a feed of events in and out of it.

``feed.publish(...)`` sends an event as the other services would (to real RabbitMQ in postgres mode,
through a connection of its own); ``feed.wait_for(...)`` waits for an event the service published.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.listings.app import create_app
from services.listings.config import Settings
from tests.listings.support import Feed, feed_for, served
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
    async with served(app, settings) as http:
        yield http


@pytest.fixture
async def feed(client: httpx.AsyncClient, app: FastAPI, settings: Settings) -> AsyncIterator[Feed]:
    """Needs the running service (``client``): in embedded mode it shares the service's in-process bus."""
    async with feed_for(app, settings) as feed:
        yield feed
