"""Benchmark 3: an auction whose end lies beyond RabbitMQ's consumer timeout closes on time, once.

Needs a RabbitMQ with a short ``consumer_timeout`` (production's is 30 minutes), e.g. a second node:

    mkdir -p /tmp/rmq-short/{mnesia,log}; printf 'listeners.tcp.default = 127.0.0.1:5679\\n
    consumer_timeout = 10000\\nloopback_users = none\\n' > /tmp/rmq-short/rabbitmq.conf
    RABBITMQ_NODENAME=shorttimeout@localhost RABBITMQ_NODE_PORT=5679 RABBITMQ_DIST_PORT=25679 \\
    RABBITMQ_CONFIG_FILE=/tmp/rmq-short/rabbitmq.conf RABBITMQ_MNESIA_BASE=/tmp/rmq-short/mnesia \\
    RABBITMQ_LOG_BASE=/tmp/rmq-short/log rabbitmq-server &

Runs the bidding service (its app, in this process) and ``python -m services.bidding.worker`` (its own
process) on that broker, with the sweep off so only the dramatiq timer can close. An auction ends
``--wait`` seconds later (several consumer timeouts). With the design's cap (``--cap``, below the
timeout) it closes on time; ``--cap`` above the timeout shows the trap (the broker takes the held
message back, the worker's channel is closed and consumers restart).

    .venv/bin/python -m bench.bidding_long_wait --amqp-url amqp://guest:guest@127.0.0.1:5679/ --wait 30 --cap 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from bench.bidding_stack import PG_URL, ROOT
from services.bidding.app import create_app
from services.bidding.config import Settings
from shared.events import Envelope, format_time


async def run(amqp_url: str, wait: float, cap: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    data_dir = tempfile.mkdtemp(prefix="bench-long-wait-")
    env = {
        "DATABASE_URL": PG_URL,
        "AMQP_URL": amqp_url,
        "DATABASE_PREFIX": f"bench_{tag}",
        "QUEUE_PREFIX": f"bench.{tag}.",
        "EVENTS_EXCHANGE": f"bench.{tag}.events",
        "DATA_DIR": data_dir,
        "BIDDING_SWEEP_SECONDS": "3600",
        "BIDDING_INPROCESS_WORKER": "false",
        "BIDDING_CLOSE_MAX_DELAY_SECONDS": str(cap),
        "LOG_JSON": "false",
        "LOG_LEVEL": "INFO",
    }
    settings = Settings(**env)  # type: ignore[arg-type]

    async def no_keys() -> dict[str, Any]:
        return {"keys": []}

    app = create_app(settings, jwks=no_keys)
    worker_log = Path(data_dir) / "worker.log"
    closed_at: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        bus = app.state.runtime.bus
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(settings.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="auction.closed")
        heard: list[datetime] = []

        async def on_closed(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            heard.append(datetime.now(UTC))
            closed_at.update(json.loads(message.body)["data"])

        await queue.consume(on_closed, no_ack=True)
        with open(worker_log, "wb") as log:  # noqa: ASYNC230 - a log file for the subprocess
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.bidding.worker",
                cwd=ROOT,
                env=dict(os.environ) | env | {"PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=log,
            )
            try:
                ends_at = datetime.now(UTC) + timedelta(seconds=wait)
                data = {
                    "listing_id": 1,
                    "seller_id": 1,
                    "seller_username": "s",
                    "title": "long wait",
                    "category_id": 1,
                    "start_price": "1.00",
                    "bid_increment": "0.01",
                    "image_url": None,
                    "created_at": format_time(datetime.now(UTC)),
                    "ends_at": format_time(ends_at),
                }
                await bus.publish(Envelope(type="listing.created", producer="listings", data=data))
                deadline = time.monotonic() + wait + 60
                while not heard and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2)  # anything more would show up now
            finally:
                worker.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker.wait(), timeout=20)
                if worker.returncode is None:
                    worker.kill()
        await connection.close()
    text = worker_log.read_text(errors="replace")
    admin = await asyncpg.connect(PG_URL)
    try:
        for row in await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"bench_{tag}%"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()
    return {
        "closed": len(heard),
        "lateness": (datetime.fromisoformat(closed_at["closed_at"]) - ends_at).total_seconds() if heard else None,
        "heard": (heard[0] - ends_at).total_seconds() if heard else None,
        "timeouts": text.count("delivery acknowledgement") + text.count("PRECONDITION_FAILED"),
        "restarts": text.count("Restarting consumer"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5679/")
    parser.add_argument("--wait", type=float, default=30, help="seconds until the auction ends")
    parser.add_argument("--cap", type=float, default=4, help="BIDDING_CLOSE_MAX_DELAY_SECONDS")
    args = parser.parse_args()
    result = asyncio.run(run(args.amqp_url, args.wait, args.cap))
    print(f"long wait: auction ending in {args.wait:.0f} s, close delay cap {args.cap:.0f} s, broker {args.amqp_url}")
    print(f"  auction.closed events: {result['closed']} (expected 1)")
    if result["lateness"] is not None:
        print(f"  closed_at - end: {result['lateness'] * 1000:.0f} ms; heard - end: {result['heard'] * 1000:.0f} ms")
    print(f"  worker log: consumer-timeout errors {result['timeouts']}, consumer restarts {result['restarts']}")


if __name__ == "__main__":
    main()
