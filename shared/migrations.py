"""The Alembic environment every service's ``migrations/env.py`` delegates to.

Migrations run with an async engine through ``run_sync``; the URL comes from the caller
(``shared.db.run_migrations``) or from ``DATABASE_URL`` + the service name for the alembic CLI.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import MetaData, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import UtcDateTime

#: Key of the PostgreSQL advisory lock that keeps replicas starting together from migrating at once.
MIGRATION_LOCK_KEY = 7_300_451


def _do_run(connection: Connection, metadata: MetaData | list[MetaData]) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: URL, metadata: MetaData | list[MetaData]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_do_run, metadata)
            await conn.commit()
    finally:
        await engine.dispose()


def run_env(metadata: MetaData | list[MetaData]) -> None:
    url = context.config.attributes.get("database_url")
    if url is None:
        raise RuntimeError("run migrations through shared.db.run_migrations (`python -m services migrate`)")
    if context.is_offline_mode():
        context.configure(url=str(url), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Alembic's command API is synchronous and is called from a worker thread: give it its own loop.
    asyncio.run(_run_async(url, metadata))


# ---------------------------------------------------------------------------------------------------------
# The tables of shared.outbox (outbox, processed_events) that every service's database keeps: each service's
# first migration calls these instead of repeating them.


def create_infra_tables() -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("published_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unpublished", ["seq"], unique=False, postgresql_where=sa.text("published_at IS NULL")
        )

    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def drop_infra_tables() -> None:
    op.drop_table("processed_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unpublished", postgresql_where=sa.text("published_at IS NULL"))

    op.drop_table("outbox")
