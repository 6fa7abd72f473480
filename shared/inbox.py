"""Idempotent consumption: a consumer records each event id it applied, in the same transaction
as the change the event caused, so a redelivered event is recognised and skipped."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import CursorResult, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus import Handler
from shared.db import Database
from shared.events import Envelope, utcnow
from shared.observability import correlation_id_var, events_consumed
from shared.outbox import processed_events_table

log = logging.getLogger(__name__)

SessionHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


async def claim(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Record that ``consumer`` applies ``envelope``; False if it already did."""
    values = {"consumer": consumer, "event_id": str(envelope.id), "processed_at": utcnow()}
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = pg_insert(processed_events_table).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(processed_events_table).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two dialects above are deployed
        stmt = insert(processed_events_table).values(values)
    result: CursorResult[Any] = await session.execute(stmt)  # type: ignore[assignment]
    return bool(result.rowcount)


def idempotent(db: Database, consumer: str, handlers: dict[str, SessionHandler]) -> Handler:
    """The consumer wrapper: one transaction per event, claimed once, committed here and only here."""

    async def handle(envelope: Envelope) -> None:
        apply = handlers.get(envelope.type)
        if apply is None:
            return
        token = correlation_id_var.set(envelope.correlation_id)
        try:
            async with db.transaction() as session:
                if not await claim(session, consumer, envelope):
                    log.info("skipping %s %s: already applied", envelope.type, envelope.id)
                    return
                await apply(session, envelope)
            events_consumed.labels(consumer, envelope.type).inc()
        finally:
            correlation_id_var.reset(token)

    return handle
