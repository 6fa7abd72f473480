"""The bus, the outbox and idempotent consumption against real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.users.config import Settings as UsersSettings
from shared.bus import AmqpBus, InProcessBus, topic_matches
from shared.db import Database, prepare_database
from shared.events import Envelope
from shared.inbox import idempotent
from shared.outbox import OutboxRelay, outbox_table, record_event
from tests.support.tcp_proxy import TcpProxy

# Any service's migrations carry the outbox and processed-events tables; the users service's will do.
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "users" / "migrations"


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "bid.placed", True),
        ("bid.*", "bid.placed", True),
        ("bid.*", "bid.placed.x", False),
        ("bid.#", "bid", True),
        ("*.closed", "auction.closed", True),
        ("user.registered", "user.updated", False),
    ],
)
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


@pytest.fixture
async def database(mode: str, make_settings, tmp_path: Path) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    settings = make_settings(UsersSettings, real=mode == "postgres")
    db = await prepare_database(settings, MIGRATIONS)
    yield db
    await db.dispose()


async def collect(bus: AmqpBus | InProcessBus, queue: str, keys: list[str]) -> list[Envelope]:
    got: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        got.append(envelope)

    await bus.consume(queue, keys, handler)
    return got


async def wait_for(predicate, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_outbox_delivers_after_the_broker_was_unreachable(
    database: Database, amqp_url: str, isolation: dict[str, str]
) -> None:
    target = urlparse(amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    exchange = isolation["EVENTS_EXCHANGE"]
    via_proxy = amqp_url.replace(f":{target.port or 5672}", f":{proxy.port}")
    publisher = AmqpBus(via_proxy, exchange)
    observer = AmqpBus(amqp_url, exchange)
    await publisher.start()
    await observer.start()
    got = await collect(observer, f"{isolation['QUEUE_PREFIX']}observer", ["test.#"])
    relay = OutboxRelay(database, publisher, poll_seconds=0.1)
    relay_task = asyncio.create_task(relay.run())
    try:
        async with database.transaction() as session:
            await record_event(session, "test", "test.before", {"n": 0})
        await wait_for(lambda: len(got) == 1)

        await proxy.cut()  # the broker is gone
        for n in range(1, 6):
            async with database.transaction() as session:
                await record_event(session, "test", "test.during", {"n": n})
        await asyncio.sleep(1.0)
        async with database.read() as session:
            unpublished = await session.scalar(
                select(func.count()).select_from(outbox_table).where(outbox_table.c.published_at.is_(None))
            )
        assert unpublished == 5, "events wait in the outbox while the broker is away"
        assert len(got) == 1

        await proxy.restore()  # the broker is back: the robust connection reconnects, the relay catches up
        await wait_for(lambda: len(got) == 6, timeout=30)
        assert sorted(e.data["n"] for e in got) == [0, 1, 2, 3, 4, 5]
    finally:
        relay_task.cancel()
        await publisher.close()
        await observer.close()
        await proxy.cut()


async def test_an_event_recorded_in_a_rolled_back_transaction_is_never_published(database: Database) -> None:
    bus = InProcessBus()
    got = await collect(bus, "observer", ["#"])
    relay = OutboxRelay(database, bus)
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await record_event(session, "test", "test.rolled_back", {})
            raise RuntimeError("the state change failed")
    async with database.transaction() as session:
        await record_event(session, "test", "test.committed", {})
    assert await relay.flush() == 1
    await wait_for(lambda: len(got) == 1)
    assert [e.type for e in got] == ["test.committed"]
    assert await relay.flush() == 0, "a published event is not published again"
    await bus.close()


async def test_a_consumer_given_the_same_event_twice_applies_it_once(database: Database) -> None:
    applied: list[uuid.UUID] = []

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        applied.append(envelope.id)

    handler = idempotent(database, "test-consumer", {"test.thing": apply})
    event = Envelope(type="test.thing", producer="test", data={})
    await handler(event)
    await handler(event)
    await asyncio.gather(handler(event.model_copy()), handler(event.model_copy()))
    other = Envelope(type="test.thing", producer="test", data={})
    await handler(other)
    assert applied == [event.id, other.id]


async def test_a_failed_handler_does_not_mark_the_event_processed(database: Database) -> None:
    calls = 0

    async def flaky(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first attempt fails")

    handler = idempotent(database, "flaky-consumer", {"test.flaky": flaky})
    event = Envelope(type="test.flaky", producer="test", data={})
    with pytest.raises(ValueError):
        await handler(event)
    await handler(event)
    await handler(event)
    assert calls == 2


async def test_amqp_redelivers_on_transient_failure_and_dead_letters_poison(
    amqp_url: str, isolation: dict[str, str]
) -> None:
    bus = AmqpBus(amqp_url, isolation["EVENTS_EXCHANGE"])
    await bus.start()
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.type)
        if envelope.type == "test.poison":
            raise ValueError("cannot ever handle this")

    queue = f"{isolation['QUEUE_PREFIX']}svc"
    await bus.consume(queue, ["test.#"], handler)
    try:
        await bus.publish(Envelope(type="test.poison", producer="test", data={}))
        await bus.publish(Envelope(type="test.fine", producer="test", data={}))
        await wait_for(lambda: "test.fine" in seen, timeout=30)
        assert seen.count("test.poison") == 5  # retried, then dead-lettered instead of blocking the queue
        import aio_pika

        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(f"{queue}.dlq", durable=True, passive=True)
            message = await dlq.get(timeout=5)
            assert message is not None and Envelope.from_json(message.body).type == "test.poison"
            await message.ack()
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}.dlq")
            await channel.exchange_delete(isolation["EVENTS_EXCHANGE"])
    finally:
        await bus.close()
