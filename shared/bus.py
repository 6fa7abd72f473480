"""The event bus: one interface, two transports.

* :class:`AmqpBus`: RabbitMQ through aio-pika. One durable topic exchange, one durable queue per
  consuming service (or an exclusive one per gateway instance), persistent messages, publisher
  confirms, manual acks, a dead-letter exchange, and a robust connection that restores all of it.
* :class:`InProcessBus`: the embedded default; the same topic routing inside one process.

A handler that raises is retried: forever with backoff while the failure is transient (the
database is unreachable), a few times otherwise, after which the message is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

from shared.db import is_transient_db_error
from shared.events import Envelope

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]

#: Attempts for a handler failing with a non-transient error before the message is dead-lettered.
MAX_ATTEMPTS = 5


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    async def publish(self, envelope: Envelope) -> None:
        """Return once the broker has the event (publisher confirm); raise if it does not."""

    async def consume(self, queue: str, routing_keys: list[str], handler: Handler, *, exclusive: bool = False) -> None:
        """Deliver events whose type matches ``routing_keys`` to ``handler``, one at a time."""


async def run_handler(handler: Handler, envelope: Envelope) -> bool:
    """Run ``handler`` with the retry policy; False when the event should be dead-lettered."""
    attempt = 0
    delay = 0.1
    while True:
        try:
            await handler(envelope)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Never dead-letter an event because the database is restarting: wait it out.
            if is_transient_db_error(exc):
                log.warning("transient failure handling %s %s: %s; retrying", envelope.type, envelope.id, exc)
            else:
                attempt += 1
                log.exception("handler failed for %s %s (attempt %d)", envelope.type, envelope.id, attempt)
                if attempt >= MAX_ATTEMPTS:
                    return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


@dataclass
class _Subscription:
    queue: str
    routing_keys: list[str]
    handler: Handler
    inbox: asyncio.Queue[Envelope] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class InProcessBus:
    """Topic routing inside one process, for the embedded default and unit tests."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, _Subscription] = {}
        self.dead_letters: list[Envelope] = []

    async def start(self) -> None:
        """Nothing to connect to: the bus works from construction, so any owner may share it."""

    @property
    def ready(self) -> bool:
        return True

    async def close(self) -> None:
        for sub in self._subscriptions.values():
            if sub.task is not None:
                sub.task.cancel()
        self._subscriptions.clear()

    async def publish(self, envelope: Envelope) -> None:
        for sub in self._subscriptions.values():
            if any(topic_matches(pattern, envelope.type) for pattern in sub.routing_keys):
                # A copy per queue, as a broker would deliver: consumers never share one object.
                sub.inbox.put_nowait(envelope.model_copy(deep=True))

    async def consume(self, queue: str, routing_keys: list[str], handler: Handler, *, exclusive: bool = False) -> None:
        if queue in self._subscriptions:
            raise ValueError(f"queue {queue} already has a consumer")
        sub = _Subscription(queue, routing_keys, handler)
        sub.task = asyncio.create_task(self._drain(sub), name=f"bus-consumer-{queue}")
        self._subscriptions[queue] = sub

    async def _drain(self, sub: _Subscription) -> None:
        while True:
            envelope = await sub.inbox.get()
            if not await run_handler(sub.handler, envelope):
                self.dead_letters.append(envelope)


class AmqpBus:
    """RabbitMQ transport (aio-pika, robust connection, publisher confirms, manual acks)."""

    def __init__(
        self, url: str, exchange: str = "auction.events", *, prefetch: int = 64, connect_timeout: float = 10
    ) -> None:
        self.url = url
        self.exchange_name = exchange
        self.dlx_name = f"{exchange}.dlx"
        self.prefetch = prefetch
        self.connect_timeout = connect_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._consume_channel: AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._consume_exchange: aio_pika.abc.AbstractExchange | None = None
        self._publish_lock = asyncio.Lock()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url, timeout=self.connect_timeout)
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._publish_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.prefetch)
        self._consume_exchange = await self._consume_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._consume_channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)

    @property
    def ready(self) -> bool:
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def publish(self, envelope: Envelope) -> None:
        if self._exchange is None:
            raise ConnectionError("bus is not started")
        message = aio_pika.Message(
            envelope.to_json(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope.id),
            type=envelope.type,
            timestamp=envelope.occurred_at,
            headers={"producer": envelope.producer, "correlation_id": envelope.correlation_id or ""},
        )
        # With confirms on, publish() returns when the broker has taken the message; fail fast when not.
        await asyncio.wait_for(self._exchange.publish(message, routing_key=envelope.type), timeout=10)

    async def consume(self, queue: str, routing_keys: list[str], handler: Handler, *, exclusive: bool = False) -> None:
        channel = self._consume_channel
        if channel is None or self._consume_exchange is None:
            raise ConnectionError("bus is not started")
        arguments: dict[str, Any] = {}
        if exclusive:
            declared = await channel.declare_queue(queue, exclusive=True, auto_delete=True, durable=False)
        else:
            arguments = {"x-dead-letter-exchange": self.dlx_name, "x-dead-letter-routing-key": queue}
            dead = await channel.declare_queue(f"{queue}.dlq", durable=True)
            await dead.bind(self.dlx_name, routing_key=queue)
            declared = await channel.declare_queue(queue, durable=True, arguments=arguments)
        for key in routing_keys:
            await declared.bind(self._consume_exchange, routing_key=key)
        # aio-pika runs each delivery in its own task; the lock keeps the queue's order and one at a time.
        lock = asyncio.Lock()

        async def on_message(message: AbstractIncomingMessage) -> None:
            async with lock:
                try:
                    envelope = Envelope.from_json(message.body)
                except ValueError:
                    log.error("dead-lettering a message that is not an event envelope on %s", queue)
                    await message.reject(requeue=False)
                    return
                handled = await run_handler(handler, envelope)
                try:
                    if handled:
                        await message.ack()
                    else:
                        await message.reject(requeue=False)
                except Exception as exc:  # noqa: BLE001 - the channel died; the broker redelivers it
                    log.warning("could not settle %s on %s: %s", envelope.id, queue, exc)

        await declared.consume(on_message)
