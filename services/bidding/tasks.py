"""dramatiq: the actor that closes an auction at its end time, and the worker that runs it.

Each close is a message ``close_auction(listing_id, due_at)`` delayed until the auction's end. Two
traps shape it:

* RabbitMQ takes back a message that a consumer holds unacknowledged longer than its consumer timeout
  (30 minutes by default), and dramatiq holds a delayed message unacknowledged until it is due. So no
  delay is longer than ``BIDDING_CLOSE_MAX_DELAY_SECONDS`` (default 10 minutes): a message that arrives
  before the end sends itself again, for the rest of the wait (or the next step of it).
* A message must never announce what did not happen: it is sent only after the transaction that
  created or changed the auction has committed (:func:`schedule_after_commit`).

The message only wakes the service up; what happens is decided by the database (see
``BiddingService.on_close_message``): the one atomic open-to-closed transition, so duplicated messages,
the sweep and the seller's early close racing each other produce exactly one close. When a bid extends
the auction (soft close), the pending message arrives at the old end, finds the auction still open and
not due, and follows the new end time: one chain of messages per auction, whatever the number of bids.

The broker and its actor are built per app (or per worker process) by :func:`setup_broker`, never at
import, and the actor's queue carries the deployment's ``QUEUE_PREFIX``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Interrupt
from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from services.bidding.config import Settings
from shared.events import utcnow

log = logging.getLogger(__name__)

ACTOR_NAME = "close_auction"
#: ``session.info`` key of the :class:`CloseTasks` of the database the session belongs to.
TASKS_KEY = "bidding.close_tasks"
_PENDING_KEY = "bidding.pending_closes"

CloseHandler = Callable[[int, str], Coroutine[Any, Any, None]]

close_messages = Counter("bidding_close_messages_total", "Close messages handled by the worker", ["outcome"])
close_sends = Counter("bidding_close_sends_total", "Close messages sent", ["result"])


class CloseTasks:
    """The broker, the ``close_auction`` actor bound to it, and the (optional) worker running it."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        self.settings = settings
        self.broker = broker
        self.max_delay_ms = int(settings.close_max_delay_seconds * 1000)
        self.close_auction: dramatiq.Actor[[int, str], None] = dramatiq.actor(
            broker=broker,
            actor_name=ACTOR_NAME,
            queue_name=settings.close_queue,
            # A failure (database unreachable, ...) is retried soon; the sweep is the backstop anyway.
            max_retries=50,
            min_backoff=200,
            max_backoff=5_000,
            time_limit=120_000,
        )(self._perform)
        # Sends go through one thread: pika connections are per thread and blocking.
        self._sender = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bidding-close-send")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: CloseHandler | None = None
        self._lock = threading.Lock()
        self.worker: dramatiq.Worker | None = None
        #: Counts for tests and logs: messages sent and messages the actor handled.
        self.sent = 0
        self.performed = 0

    # ----- sending -----
    def schedule(self, listing_id: int, ends_at: datetime) -> concurrent.futures.Future[None] | None:
        """Send the close message for ``ends_at`` (delayed at most the cap) without blocking the caller."""
        try:
            return self._sender.submit(self._send, listing_id, ends_at)
        except RuntimeError:  # shutting down: the next start (or the sweep) takes over
            log.warning("not scheduling the close of listing %s: shutting down", listing_id)
            return None

    def _send(self, listing_id: int, ends_at: datetime) -> None:
        remaining_ms = math.ceil((ends_at - utcnow()).total_seconds() * 1000)
        delay = min(remaining_ms, self.max_delay_ms)
        try:
            self.close_auction.send_with_options(
                args=(listing_id, ends_at.isoformat()), delay=delay if delay > 0 else None
            )
        except Exception as exc:  # noqa: BLE001 - the broker is unreachable: the sweep closes it in time
            close_sends.labels("failed").inc()
            log.warning("could not send the close of listing %s (%s); the sweep will close it", listing_id, exc)
            return
        with self._lock:
            self.sent += 1
        close_sends.labels("sent").inc()

    # ----- performing -----
    def bind(self, loop: asyncio.AbstractEventLoop, handler: CloseHandler) -> None:
        """Run close messages with ``handler`` on ``loop`` (where the service's database lives)."""
        self._loop, self._handler = loop, handler

    def _perform(self, listing_id: int, due_at: str) -> None:
        """The actor: runs in a dramatiq worker thread, hands the work to the service's event loop."""
        loop, handler = self._loop, self._handler
        if loop is None or handler is None or loop.is_closed():
            raise RuntimeError("no close handler is bound yet")  # retried by dramatiq
        future = asyncio.run_coroutine_threadsafe(handler(listing_id, due_at), loop)
        try:
            while True:
                try:
                    future.result(timeout=0.1)
                    break
                except concurrent.futures.TimeoutError:
                    # A short timeout keeps this thread interruptible (dramatiq's time limit, shutdown).
                    if future.done():
                        future.result()
                        break
        except Interrupt:
            future.cancel()
            raise
        with self._lock:
            self.performed += 1

    # ----- the worker -----
    def start_worker(self) -> dramatiq.Worker:
        """Consume the close queue with threads in this process."""
        worker = dramatiq.Worker(
            self.broker,
            queues={self.settings.close_queue},
            worker_threads=self.settings.worker_threads,
            # The idle wake-up is when delayed messages that fell due are moved on: it bounds lateness.
            worker_timeout=self.settings.worker_timeout_ms,
        )
        worker.start()
        self.worker = worker
        return worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=10_000)
            self.worker = None

    def close(self) -> None:
        """Stop the worker (if any), let queued sends finish, and close the broker's connections."""
        self.stop_worker()
        self._sender.submit(self.broker.close).result(timeout=30)
        self._sender.shutdown(wait=True)

    def attach(self, sessions: Any) -> None:
        """Give every session of a database's session factory access to these tasks."""
        sessions.configure(info={TASKS_KEY: self})


def setup_broker(settings: Settings) -> CloseTasks:
    """The broker and actor of one app or worker process: RabbitMQ with ``AMQP_URL``, else in memory."""
    broker: dramatiq.Broker
    if settings.amqp_url:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Confirms: a send returns once RabbitMQ has the message (and a missing queue is re-declared).
        broker = RabbitmqBroker(url=settings.amqp_url, confirm_delivery=True)
    else:
        broker = StubBroker()
    return CloseTasks(settings, broker)


def schedule_after_commit(session: AsyncSession, listing_id: int, ends_at: datetime) -> None:
    """Send the close message of ``listing_id`` once (and only if) the session's transaction commits."""
    tasks = session.info.get(TASKS_KEY)
    if tasks is None:
        log.warning("no close tasks attached to this session; listing %s relies on the sweep", listing_id)
        return
    pending: dict[int, datetime] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = {}

        def committed(_: Any) -> None:
            # Never raise from here: the transaction has committed whatever happens to the message.
            for listing, due in session.info.pop(_PENDING_KEY, {}).items():
                try:
                    tasks.schedule(listing, due)
                except Exception:  # the sweep is the backstop
                    log.exception("could not schedule the close of listing %s", listing)

        def rolled_back(_: Any) -> None:
            session.info.pop(_PENDING_KEY, None)

        event.listen(session.sync_session, "after_commit", committed, once=True)
        event.listen(session.sync_session, "after_rollback", rolled_back, once=True)
    pending[listing_id] = ends_at
