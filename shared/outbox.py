"""Transactional outbox: an event is stored in the same transaction as the state change it reports,
and a relay publishes it afterwards with publisher confirms, marking it sent only once confirmed.

If the broker is down, events wait in the table and go out when it is back: nothing is lost.
With several replicas, ``FOR UPDATE SKIP LOCKED`` lets each relay take different rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Index, MetaData, String, Table, Text, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus import Bus
from shared.db import Database, IdType, UtcDateTime
from shared.events import CATALOGUE, Envelope, utcnow, validate_data, validation_enabled
from shared.observability import correlation_id_var, events_published

#: Tables every service keeps beside its own: include this metadata in each service's migrations.
infra_metadata = MetaData()

outbox_table = Table(
    "outbox",
    infra_metadata,
    Column("seq", IdType, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime(), nullable=True),
    Index("ix_outbox_unpublished", "seq", postgresql_where=text("published_at IS NULL")),
)

processed_events_table = Table(
    "processed_events",
    infra_metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("processed_at", UtcDateTime(), nullable=False),
)


async def record_event(session: AsyncSession, producer: str, event_type: str, data: dict[str, Any]) -> Envelope:
    """Add an event to the outbox in the caller's transaction. It is published only if that commits."""
    return (await record_events(session, producer, [(event_type, data)]))[0]


async def record_events(
    session: AsyncSession, producer: str, items: list[tuple[str, dict[str, Any]]]
) -> list[Envelope]:
    """Add events to the outbox in the caller's transaction with one multi-row INSERT (a batch of closes)."""
    envelopes = []
    for event_type, data in items:
        if event_type in CATALOGUE and validation_enabled():
            validate_data(event_type, data)
        envelopes.append(
            Envelope(type=event_type, producer=producer, data=data, correlation_id=correlation_id_var.get())
        )
    if envelopes:
        await session.execute(
            outbox_table.insert(),
            [
                {
                    "event_id": str(e.id),
                    "event_type": e.type,
                    "envelope": e.to_json().decode(),
                    "created_at": e.occurred_at,
                }
                for e in envelopes
            ],
        )
    return envelopes


class OutboxRelay:
    """Publishes committed outbox rows. Woken right after a local commit; polls for other processes'."""

    def __init__(
        self, db: Database, bus: Bus, *, poll_seconds: float = 0.5, batch: int = 200, in_flight: int = 1
    ) -> None:
        self.db = db
        #: How many publishes may await their confirms at once (1: one at a time, the default).
        self.in_flight = in_flight
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        db.on_commit(self.notify)

    def notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the flush in progress (cancelling mid-query can wedge a connection)."""
        self._stopping = True
        self._wake.set()

    async def flush(self) -> int:
        """Publish every unpublished row once; return how many went out."""
        sent = 0
        while True:
            async with self.db.transaction(notify=False) as session:
                query = (
                    select(outbox_table.c.seq, outbox_table.c.envelope)
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.seq)
                    .limit(self.batch)
                )
                if self.db.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                rows = (await session.execute(query)).all()
                if not rows:
                    return sent
                done: list[int] = []
                try:
                    if self.in_flight > 1:
                        await self._publish_pipelined(rows, done)
                    else:
                        for seq, raw in rows:
                            envelope = Envelope.from_json(raw)
                            await self.bus.publish(envelope)
                            events_published.labels(envelope.producer, envelope.type).inc()
                            done.append(seq)
                finally:
                    # Mark what the broker confirmed, even if a later publish failed.
                    if done:
                        await session.execute(
                            update(outbox_table).where(outbox_table.c.seq.in_(done)).values(published_at=utcnow())
                        )
                sent += len(done)
            if len(rows) < self.batch:
                return sent

    async def _publish_pipelined(self, rows: Sequence[Any], done: list[int]) -> None:
        """Publish ``in_flight`` events at a time, in order, waiting for their confirms together.

        With persistent messages RabbitMQ confirms after writing to disk, in batches: one publish at a
        time then waits a disk flush per event. Only the confirmed prefix is appended to ``done``; what
        follows a failure goes out again on the next flush (consumers are idempotent on the id).
        """
        for start in range(0, len(rows), self.in_flight):
            chunk = [(seq, Envelope.from_json(raw)) for seq, raw in rows[start : start + self.in_flight]]
            results = await asyncio.gather(*(self.bus.publish(e) for _, e in chunk), return_exceptions=True)
            for (seq, envelope), result in zip(chunk, results, strict=True):
                if isinstance(result, BaseException):
                    raise result
                events_published.labels(envelope.producer, envelope.type).inc()
                done.append(seq)

    async def purge(self, older_than: timedelta = timedelta(days=1)) -> None:
        async with self.db.transaction(notify=False) as session:
            await session.execute(
                delete(outbox_table).where(
                    outbox_table.c.published_at.is_not(None), outbox_table.c.published_at < utcnow() - older_than
                )
            )

    async def run(self) -> None:
        delay = self.poll_seconds
        log = logging.getLogger(__name__)
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
                delay = self.poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker or database down: keep the rows, retry later
                log.warning("outbox relay could not publish yet: %s", exc)
                delay = min(max(delay * 2, 0.5), 10.0)
