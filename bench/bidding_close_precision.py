"""Benchmark 2: 1,000 auctions ending in the same second; every one closed, and how late.

Creates the listings through the gateway so that all their ends fall within one second, watches the
public ``listings`` topic on ``/ws`` (as a browser would), and prints, for the ``auction.closed`` of
every listing: how late the close was (``closed_at - ends_at``, the database's view) and how late a
watcher heard of it (receipt on the socket - ``ends_at``), p50/p99/max.

    .venv/bin/python bench/bidding_close_precision.py [--auctions 1000] [--lead 45]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import websockets

from bench.bidding_stack import AMQP_URL, Stack, client, create_listing, percentile, register, stack


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def run(stack_: Stack, auctions: int, lead: float) -> dict[str, Any]:
    heard: dict[int, tuple[datetime, dict[str, Any]]] = {}
    # Also straight off RabbitMQ: when bidding's event was out, before the gateway's fan-out.
    published: dict[int, datetime] = {}
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(stack_.env["EVENTS_EXCHANGE"], aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="auction.closed")

    async def on_closed(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        published.setdefault(int(json.loads(message.body)["data"]["listing_id"]), datetime.now(UTC))

    await queue.consume(on_closed, no_ack=True)
    async with websockets.connect(stack_.ws_url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": "listings"}))
        while json.loads(await ws.recv()).get("type") != "subscribed":
            pass

        async def listen() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("event") == "auction.closed":
                    heard.setdefault(int(frame["data"]["listing_id"]), (datetime.now(UTC), frame["data"]))

        listener = asyncio.create_task(listen())
        async with client(stack_, connections=40) as http:
            _, seller = await register(http, f"closer_{uuid.uuid4().hex[:6]}")
            target = datetime.now(UTC) + timedelta(seconds=lead)
            ends: dict[int, datetime] = {}
            queue = list(range(auctions))

            async def creator() -> None:
                while queue:
                    queue.pop()
                    duration = max(1, math.ceil((target - datetime.now(UTC)).total_seconds()))
                    listing = await create_listing(http, seller, duration, title="precision")
                    ends[int(listing["id"])] = parse(listing["ends_at"])

            started = time.monotonic()
            await asyncio.gather(*(creator() for _ in range(20)))
            created_in = time.monotonic() - started
            last_end = max(ends.values())
            deadline = last_end + timedelta(seconds=60)
            while len(heard.keys() & ends.keys()) < len(ends) and datetime.now(UTC) < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        listener.cancel()
    await connection.close()
    closed_late = [(parse(heard[i][1]["closed_at"]) - ends[i]).total_seconds() for i in ends if i in heard]
    heard_late = [(heard[i][0] - ends[i]).total_seconds() for i in ends if i in heard]
    published_late = [(published[i] - ends[i]).total_seconds() for i in ends if i in published]
    return {
        "created": len(ends),
        "created_in": created_in,
        "end_spread": (max(ends.values()) - min(ends.values())).total_seconds(),
        "closed": len(closed_late),
        "closed_late": closed_late,
        "heard_late": heard_late,
        "published_late": published_late,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--auctions", type=int, default=1000)
    parser.add_argument("--lead", type=float, default=45, help="seconds from now to the common end")
    args = parser.parse_args()
    with stack() as running:
        result = asyncio.run(run(running, args.auctions, args.lead))
    print(
        f"close precision: {result['created']} auctions created in {result['created_in']:.1f} s,"
        f" ends spread over {result['end_spread']:.2f} s"
    )
    print(f"  closed (auction.closed seen on /ws): {result['closed']} of {result['created']}")
    labels = {
        "closed_late": "closed_at - end (the close itself)",
        "published_late": "event on RabbitMQ - end",
        "heard_late": "watcher on /ws heard it - end",
    }
    for name, label in labels.items():
        values = result[name]
        print(
            f"  {label}: p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms,"
            f" max {max(values, default=float('nan')) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
