"""A real RabbitMQ restart under a gateway with connected sockets (a private node: nobody else is touched).

While the broker is down the gateway says so in ``/readyz``; once it is back the gateway's own queue and
its bindings are restored, and every socket connected before the restart receives new events again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from shared.bus import AmqpBus
from tests.gateway.test_ws import bid_placed, recv
from tests.support.rabbit_node import RabbitNode

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def rabbit_node() -> AsyncIterator[RabbitNode]:
    node = RabbitNode()
    await asyncio.to_thread(node.start)
    try:
        yield node
    finally:
        await asyncio.to_thread(node.close)


async def readiness(base_url: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        return (await http.get("/readyz")).status_code


async def eventually(check: Any, timeout: float, what: str) -> float:
    """Poll ``check()`` until it is true; return how long it took."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - began


async def test_sockets_get_events_again_after_a_broker_restart(gateway_factory: Any, rabbit_node: RabbitNode) -> None:
    async with gateway_factory(real_bus=True, AMQP_URL=rabbit_node.url) as gw:
        publisher = AmqpBus(rabbit_node.url, gw.bus.exchange_name)
        await publisher.start()
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(websockets.connect(gw.ws_url)) for _ in range(5)]
            for index, ws in enumerate(sockets):
                topic = "listings" if index == 0 else "listing.7"
                await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
                assert (await recv(ws))["type"] == "subscribed"

            async def everyone_gets(amount: str, timeout: float) -> None:
                event = bid_placed(7, amount, bidder=1, previous=None)
                await publisher.publish(event)
                for ws in sockets:
                    frame = await recv(ws, timeout)
                    assert frame["id"] == str(event.id) and frame["data"]["amount"] == amount

            await everyone_gets("1.00", timeout=10)
            assert await readiness(gw.base_url) == 200

            await asyncio.to_thread(rabbit_node.stop)

            async def not_ready() -> bool:
                return await readiness(gw.base_url) == 503

            await eventually(not_ready, 10, "/readyz says not ready while the broker is down")

            await asyncio.to_thread(rabbit_node.start)

            async def ready() -> bool:
                return await readiness(gw.base_url) == 200

            await eventually(ready, 30, "/readyz says ready once the broker is back")

            # Publish until one gets through to everyone: the publisher and the gateway's consumer both
            # reconnect on their own; what matters is how soon the sockets hear from the broker again.
            attempts = 0

            async def delivered_again() -> bool:
                nonlocal attempts
                attempts += 1
                event = bid_placed(7, f"{100 + attempts}.00", bidder=2, previous=None)
                try:
                    await publisher.publish(event)
                except Exception:
                    return False
                for ws in sockets:
                    try:
                        while (await recv(ws, 2))["id"] != str(event.id):
                            pass  # an earlier attempt's frame that arrived late
                    except TimeoutError:
                        return False
                return True

            took = await eventually(delivered_again, 20, "every socket receives events after the restart")
            assert all(ws.state == websockets.protocol.State.OPEN for ws in sockets)
            # And it keeps working: the next event reaches everyone at once.
            await everyone_gets("500.00", timeout=5)
            print(f"events flowed again {took:.1f} s after the gateway was ready")
        await publisher.close()
