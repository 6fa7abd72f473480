"""The dramatiq worker of the distributed mode: ``python -m services.bidding.worker``.

It consumes the close queue (``<QUEUE_PREFIX>bidding.close`` on ``AMQP_URL``) with
``BIDDING_WORKER_THREADS`` threads. The actor's database work runs on this process's event loop
(the main thread) with its own connection pool; the ``auction.closed`` events a close records are
published by this process's own outbox relay right after the commit, so watchers hear of a close at
once. It also runs the sweep of overdue auctions, so closes happen even while no API process is up.
Stop it with SIGTERM or SIGINT: in-flight closes finish, held messages go back to RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from services.bidding.app import MIGRATIONS
from services.bidding.config import Settings
from services.bidding.service import BiddingService
from services.bidding.tasks import CloseTasks, setup_broker
from shared.bus import Bus
from shared.db import TRANSIENT_DB_ERRORS, Database, prepare_database
from shared.observability import configure_logging
from shared.outbox import OutboxRelay
from shared.runtime import make_bus

log = logging.getLogger("services.bidding.worker")


#: Failures worth waiting out at start: not reachable yet, or the API process migrating the same database.
_STARTUP_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, DBAPIError)

T = TypeVar("T")


async def _retry(what: str, attempt_once: Callable[[], Awaitable[T]], attempts: int = 30) -> T:
    delay = 0.5
    for attempt in range(attempts):
        try:
            return await attempt_once()
        except _STARTUP_ERRORS as exc:
            if attempt == attempts - 1:
                raise
            log.warning("%s failed (%s); retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def worker_runtime(
    settings: Settings, *, bus: Bus | None = None, sweep: bool = True
) -> AsyncIterator[CloseTasks]:
    """Database, bus, outbox relay, sweep and the dramatiq worker of one worker process."""

    async def prepare() -> Database:
        return await prepare_database(settings, MIGRATIONS)

    db = await _retry("preparing the database", prepare)
    owns_bus = bus is None
    the_bus = bus if bus is not None else make_bus(settings)
    tasks: CloseTasks | None = None
    service: BiddingService | None = None
    relay: OutboxRelay | None = None
    relay_task: asyncio.Task[None] | None = None
    sweeper: asyncio.Task[None] | None = None
    try:
        if owns_bus:
            await _retry("connecting to the broker", the_bus.start)
        relay = OutboxRelay(db, the_bus, poll_seconds=settings.outbox_poll_seconds, in_flight=settings.outbox_in_flight)
        tasks = setup_broker(settings)
        tasks.attach(db.sessions)
        service = BiddingService(settings, db, tasks, relay)
        tasks.bind(asyncio.get_running_loop(), service.on_close_message)
        relay_task = asyncio.create_task(relay.run(), name="bidding-worker-relay")
        if sweep:
            sweeper = asyncio.create_task(service.run_sweeper(), name="bidding-worker-sweep")
        await asyncio.to_thread(tasks.start_worker)
        yield tasks
    finally:
        if tasks is not None:
            await asyncio.to_thread(tasks.close)  # in-flight closes finish on this loop meanwhile
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        if service is not None:
            await service.drain()
        if relay is not None:
            relay.stop()  # not cancelled mid-query: it returns after the flush in progress
            if relay_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(relay_task, timeout=10)
            with contextlib.suppress(Exception):
                await relay.flush()  # what the last closes recorded
        if owns_bus:
            with contextlib.suppress(Exception):
                await the_bus.close()
        await db.dispose()


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    heartbeat = os.environ.get("WORKER_HEARTBEAT_FILE")
    async with worker_runtime(settings):
        log.info("bidding worker consuming %s", settings.close_queue)
        while not stop.is_set():
            if heartbeat:
                # The liveness probe restarts a worker whose loop stopped turning (file stale for 120 s).
                await asyncio.to_thread(Path(heartbeat).touch)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=10)
        log.info("bidding worker stopping")


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    if not settings.amqp_url:
        log.error("the bidding worker needs AMQP_URL; the embedded mode runs it inside the app")
        sys.exit(2)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
