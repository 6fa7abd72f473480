"""Helpers of the listings tests: polling, the event feed, and requests the tests repeat."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aio_pika
import httpx
from fastapi import FastAPI

from shared.bus import AmqpBus, Bus, InProcessBus
from shared.config import ServiceSettings
from shared.events import Envelope
from tests.conftest import serve
from tests.support.tokens import TestKeys


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns a truthy value without failing an assertion; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = await check()
            if result:
                return result
            last: BaseException | None = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            if last is not None:
                raise last
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


class Feed:
    """Publishes events into the service's exchange and records the events the service publishes."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.received: list[Envelope] = []

    async def record(self, envelope: Envelope) -> None:
        self.received.append(envelope)

    async def publish(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        producer: str = "bidding",
    ) -> Envelope:
        extra: dict[str, Any] = {}
        if event_id is not None:
            extra["id"] = event_id
        if occurred_at is not None:
            extra["occurred_at"] = occurred_at
        envelope = Envelope(type=event_type, producer=producer, data=data, **extra)
        await self.bus.publish(envelope)
        return envelope

    async def resend(self, envelope: Envelope) -> None:
        """The same event again (same id), as an at-least-once broker may deliver it."""
        await self.bus.publish(envelope)

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.received if e.type == event_type and e.producer == "listings"]

    async def wait_for(
        self, event_type: str, where: Callable[[dict[str, Any]], bool] = lambda _: True, within: float = 10
    ) -> Envelope:
        async def found() -> Envelope | None:
            return next((e for e in self.of_type(event_type) if where(e.data)), None)

        result: Envelope = await eventually(found, within)
        return result


async def create_listing(
    client: httpx.AsyncClient, keys: TestKeys, seller_id: int, username: str = "", **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "A thing", "category_id": 1, "start_price": "10.00", "duration_seconds": 3600}
    body |= fields
    response = await client.post(
        "/api/listings", json=body, headers=keys.auth(seller_id, username or f"user{seller_id}")
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def get_listing(
    client: httpx.AsyncClient, listing_id: int, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.get(f"/api/listings/{listing_id}", headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def ids(client: httpx.AsyncClient, params: dict[str, Any], headers: dict[str, str] | None = None) -> list[int]:
    response = await client.get("/api/listings", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def drop_broker_objects(settings: ServiceSettings) -> None:
    """Remove what a postgres-mode test declared on the shared RabbitMQ (queues and exchanges)."""
    assert settings.amqp_url is not None
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        channel = await connection.channel()
        for queue in (settings.queue_name(), f"{settings.queue_name()}.dlq"):
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in (settings.events_exchange, f"{settings.events_exchange}.dlx"):
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def served(app: FastAPI, settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The service app under a test client; in postgres mode its queues and exchanges go afterwards."""
    try:
        async with serve(app) as http:
            yield http
    finally:
        if settings.amqp_url:
            # Cleanup only: never let a slow broker hold the test run.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drop_broker_objects(settings), timeout=10)


@contextlib.asynccontextmanager
async def feed_for(app: FastAPI, settings: ServiceSettings) -> AsyncIterator[Feed]:
    """A feed into a running service (its in-process bus in embedded mode), recording what it publishes."""
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
