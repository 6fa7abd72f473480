"""The chat service under test, in either mode, with helpers to feed it events and watch what it publishes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.chat.app import create_app
from services.chat.config import Settings
from services.chat.models import Message
from shared import events
from shared.events import Envelope
from shared.outbox import processed_events_table
from shared.runtime import ServiceRuntime
from tests.conftest import serve
from tests.support.tokens import TestKeys

TIMEOUT = 15.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@dataclass
class ChatHarness:
    app: FastAPI
    client: httpx.AsyncClient
    keys: TestKeys
    #: Every chat.* event the service published, as a consumer on the same exchange receives it.
    published: list[Envelope] = field(default_factory=list)

    @property
    def runtime(self) -> ServiceRuntime:
        return self.app.state.runtime  # type: ignore[no-any-return]

    def auth(self, user_id: int, username: str | None = None) -> dict[str, str]:
        return self.keys.auth(user_id, username or f"user{user_id}")

    # ----- feeding events -----
    async def publish(self, *envelopes: Envelope, wait: bool = True) -> None:
        for envelope in envelopes:
            await self.runtime.bus.publish(envelope)
        if wait:
            for envelope in envelopes:
                await self.wait_processed(envelope)

    async def processed(self, envelope: Envelope) -> bool:
        async with self.runtime.db.read() as session:
            found = await session.scalar(
                select(processed_events_table.c.event_id).where(processed_events_table.c.event_id == str(envelope.id))
            )
            return found is not None

    async def wait_processed(self, envelope: Envelope) -> None:
        async def check() -> bool:
            return await self.processed(envelope)

        await eventually(check, f"{envelope.type} {envelope.id} to be applied")

    async def register(self, user_id: int, username: str | None = None, avatar_url: str | None = None) -> Envelope:
        envelope = user_registered(user_id, username, avatar_url)
        await self.publish(envelope)
        return envelope

    async def register_many(self, *user_ids: int) -> None:
        await self.publish(*(user_registered(user_id) for user_id in user_ids))

    # ----- watching events -----
    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.published if e.type == event_type]

    async def wait_published(self, event_type: str, count: int) -> list[Envelope]:
        async def check() -> bool:
            return len(self.of_type(event_type)) >= count

        await eventually(check, f"{count} {event_type} event(s)")
        return self.of_type(event_type)

    async def settle(self) -> None:
        """Give the outbox relay and the bus the time to deliver anything still in flight."""
        await self.runtime.relay.flush()
        await asyncio.sleep(0.3)

    # ----- looking at storage -----
    async def message_count(self) -> int:
        async with self.runtime.db.read() as session:
            return len((await session.scalars(select(Message.id))).all())

    # ----- common calls -----
    async def start_chat(self, user_id: int, peer_id: int) -> dict[str, Any]:
        response = await self.client.post("/api/chats", json={"user_id": peer_id}, headers=self.auth(user_id))
        assert response.status_code in (200, 201), response.text
        return response.json()  # type: ignore[no-any-return]

    async def send(self, user_id: int, chat_id: int, text: str, key: str | None = None) -> dict[str, Any]:
        headers = self.auth(user_id) | ({"Idempotency-Key": key} if key else {})
        response = await self.client.post(f"/api/chats/{chat_id}/messages", json={"text": text}, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def unread(self, user_id: int) -> int:
        response = await self.client.get("/api/chats/unread", headers=self.auth(user_id))
        assert response.status_code == 200, response.text
        return int(response.json()["count"])

    async def chats(self, user_id: int, **params: Any) -> dict[str, Any]:
        response = await self.client.get("/api/chats", params=params, headers=self.auth(user_id))
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def user_registered(user_id: int, username: str | None = None, avatar_url: str | None = None) -> Envelope:
    return Envelope(
        type=events.USER_REGISTERED,
        producer="users",
        data={
            "user_id": user_id,
            "username": username or f"user{user_id}",
            "avatar_url": avatar_url or "/media/avatars/default.svg",
            "created_at": "2026-11-29T18:44:29.123Z",
        },
    )


def auction_closed(listing_id: int, seller_id: int, winner_id: int | None, **data: Any) -> Envelope:
    return Envelope(
        type=events.AUCTION_CLOSED,
        producer="bidding",
        data={
            "listing_id": listing_id,
            "seller_id": seller_id,
            "title": "Harry Potter box set",
            "winner_id": winner_id,
            "winner_username": f"user{winner_id}" if winner_id is not None else None,
            "final_price": "156.36" if winner_id is not None else None,
            "bid_count": 3 if winner_id is not None else 0,
            "closed_at": "2026-11-29T18:44:29.123Z",
        }
        | data,
    )


async def _drop_broker_objects(amqp_url: str, settings: Settings) -> None:
    """Remove the durable queues and exchanges one test declared on the shared broker."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = settings.queue_name()
        for name in (queue, f"{queue}.dlq"):
            await channel.queue_delete(name)
        for name in (settings.events_exchange, f"{settings.events_exchange}.dlx"):
            await channel.exchange_delete(name)
    finally:
        await connection.close()


@pytest.fixture
async def chat(
    mode: str, make_settings: Callable[..., Any], test_keys: TestKeys, request: pytest.FixtureRequest
) -> AsyncIterator[ChatHarness]:
    """The chat service in ``mode`` (embedded: SQLite + in-process bus; postgres: PostgreSQL + RabbitMQ)."""
    settings: Settings = make_settings(Settings, real=mode == "postgres")
    app = create_app(settings, jwks=test_keys.source)
    async with serve(app) as client:
        harness = ChatHarness(app=app, client=client, keys=test_keys)

        async def probe(envelope: Envelope) -> None:
            harness.published.append(envelope)

        probe_queue = settings.queue_name(f"probe.{uuid.uuid4().hex[:8]}")
        await harness.runtime.bus.consume(probe_queue, ["chat.#"], probe, exclusive=True)
        yield harness
    if mode == "postgres":
        with contextlib.suppress(Exception):
            await _drop_broker_objects(request.getfixturevalue("amqp_url"), settings)
