"""Fixtures of the bidding tests: settings per mode, and RabbitMQ objects removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.bidding.config import Settings
from tests.bidding.helpers import delete_rabbit_objects

#: Short waits everywhere: the tests run many apps and auctions a few seconds long.
FAST = {"BIDDING_UNKNOWN_LISTING_WAIT_SECONDS": 1.0, "BIDDING_SWEEP_SECONDS": 0.5}


@pytest.fixture
async def bidding_settings(
    mode: str, make_settings: Callable[..., Any], request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Settings]]:
    """``bidding_settings(**env)``: the bidding service's settings in the test's mode.

    Embedded: SQLite, the in-process bus and dramatiq's StubBroker with the worker in the app.
    Postgres: PostgreSQL, RabbitMQ (isolated exchange and queues), the worker in the app too
    (``BIDDING_INPROCESS_WORKER``) unless a test says otherwise.
    """
    built: list[Settings] = []

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(FAST)
        if mode == "postgres":
            values["BIDDING_INPROCESS_WORKER"] = True
        settings: Settings = make_settings(Settings, real=mode == "postgres", **(values | overrides))
        built.append(settings)
        return settings

    yield build
    if mode == "postgres":
        amqp_url = request.getfixturevalue("amqp_url")
        for settings in built:
            await delete_rabbit_objects(amqp_url, settings)
