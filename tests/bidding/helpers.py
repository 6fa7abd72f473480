"""Helpers of the bidding tests: feeding ``listing.created``, watching published events, cleaning RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import httpx
from fastapi import FastAPI

from services.bidding.app import create_app
from services.bidding.config import Settings
from services.bidding.tasks import CloseTasks
from shared.bus import Bus
from shared.events import Envelope, format_time, utcnow
from tests.conftest import serve
from tests.support.tokens import TestKeys

SELLER = 1
_listing_ids = iter(range(1000, 10**9))


def new_listing_id() -> int:
    return next(_listing_ids)


def listing_created(
    listing_id: int,
    *,
    ends_at: datetime | None = None,
    ends_in: float = 60.0,
    seller_id: int = SELLER,
    start_price: str = "10.00",
    bid_increment: str | None = "1.00",
    title: str = "A thing",
    reserve_price: str | None = None,
    buy_now_price: str | None = None,
) -> Envelope:
    created = utcnow()
    data: dict[str, Any] = {
        "listing_id": listing_id,
        "seller_id": seller_id,
        "seller_username": f"user{seller_id}",
        "title": title,
        "category_id": 1,
        "start_price": start_price,
        "bid_increment": bid_increment,
        "reserve_price": reserve_price,
        "buy_now_price": buy_now_price,
        "image_url": None,
        "created_at": format_time(created),
        "ends_at": format_time(ends_at or created + timedelta(seconds=ends_in)),
    }
    return Envelope(type="listing.created", producer="listings", data=data)


@dataclass
class Recorder:
    """Every event the bus carried that a test listens to."""

    events: list[Envelope] = field(default_factory=list)
    #: When each event (by id) reached the test.
    received_at: dict[str, datetime] = field(default_factory=dict)

    async def handle(self, envelope: Envelope) -> None:
        self.received_at[str(envelope.id)] = utcnow()
        self.events.append(envelope)

    def of(self, event_type: str, listing_id: int | None = None) -> list[Envelope]:
        return [
            e
            for e in self.events
            if e.type == event_type and (listing_id is None or e.data.get("listing_id") == listing_id)
        ]

    async def wait_for(
        self, event_type: str, listing_id: int | None = None, *, count: int = 1, within: float = 10
    ) -> list[Envelope]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.of(event_type, listing_id)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"expected {count} {event_type} for {listing_id}, saw {len(self.of(event_type, listing_id))}"
        )


@dataclass
class Bidding:
    """One running bidding app under test."""

    app: FastAPI
    client: httpx.AsyncClient
    keys: TestKeys
    recorder: Recorder
    settings: Settings

    @property
    def bus(self) -> Bus:
        return self.app.state.runtime.bus  # type: ignore[no-any-return]

    @property
    def tasks(self) -> CloseTasks:
        return self.app.state.close_tasks  # type: ignore[no-any-return]

    async def create_listing(self, listing_id: int | None = None, **kwargs: Any) -> int:
        listing_id = listing_id or new_listing_id()
        await self.bus.publish(listing_created(listing_id, **kwargs))
        await self.wait_known(listing_id)
        return listing_id

    async def wait_known(self, listing_id: int) -> None:
        response = await self.client.get(f"/api/listings/{listing_id}/auction")
        assert response.status_code == 200, response.text

    async def bid(
        self,
        listing_id: int,
        user: int,
        amount: Any = None,
        *,
        key: str | None = None,
        username: str = "",
        max_amount: Any = None,
    ) -> httpx.Response:
        headers = self.keys.auth(user, username)
        if key is not None:
            headers["Idempotency-Key"] = key
        body = {"amount": amount} if max_amount is None else {"max_amount": max_amount}
        if amount is not None and max_amount is not None:
            body["amount"] = amount
        return await self.client.post(f"/api/listings/{listing_id}/bids", json=body, headers=headers)

    async def auction(self, listing_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/listings/{listing_id}/auction")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def history(self, listing_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = (await self.client.get(f"/api/listings/{listing_id}/bids", params=params)).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    async def wait_closed(self, listing_id: int, within: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            state = await self.auction(listing_id)
            if state["status"] == "closed":
                return state
            await asyncio.sleep(0.02)
        raise AssertionError(f"listing {listing_id} did not close within {within}s")


async def listen(bus: Bus, recorder: Recorder, settings: Settings) -> None:
    """Record the bidding events carried on the bus (an exclusive queue on RabbitMQ)."""
    name = settings.queue_name(f"test-listener-{uuid.uuid4().hex[:6]}")
    await bus.consume(name, ["bid.placed", "auction.*"], recorder.handle, exclusive=True)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, keys: TestKeys, *, bus: Bus | None = None, recorder: Recorder | None = None
) -> AsyncIterator[Bidding]:
    """Start a bidding app (its lifespan) and listen to what it publishes."""
    app = create_app(settings, jwks=keys.source, bus=bus)
    async with serve(app) as client:
        recorder = recorder or Recorder()
        await listen(app.state.runtime.bus, recorder, settings)
        yield Bidding(app, client, keys, recorder, settings)


async def delete_rabbit_objects(amqp_url: str, settings: Settings) -> None:
    """Remove the queues and exchanges a postgres-mode test declared (dramatiq's and the bus's)."""
    prefix = settings.queue_prefix
    queues = [f"{prefix}bidding", f"{prefix}bidding.dlq"]
    queues += [settings.close_queue, f"{settings.close_queue}.DQ", f"{settings.close_queue}.XQ"]
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in queues:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
            with contextlib.suppress(Exception):
                await channel.close()
        for exchange in (settings.events_exchange, f"{settings.events_exchange}.dlx"):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
            with contextlib.suppress(Exception):
                await channel.close()
    finally:
        await connection.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10, interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")
