"""What the fault suite found: a restarting PostgreSQL raises plain ``DBAPIError`` s (SQLSTATE 57P0x, 08xxx),
not ``OperationalError``. They must read as "unavailable" (503, retry the event), never as a bug (500,
dead-letter the event). These are the real server's errors, raised by a real connection being cut."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.bus import MAX_ATTEMPTS, run_handler
from shared.db import TRANSIENT_DB_ERRORS, is_transient_db_error, make_engine, server_url
from shared.errors import install_problem_handlers
from shared.events import Envelope


async def _terminated_error(pg_url: str) -> DBAPIError:
    """The error a statement in progress gets when the server ends its connection, as a restart does."""
    engine = make_engine(server_url(pg_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))

            async def terminate() -> None:
                await asyncio.sleep(0.5)
                killer = await asyncpg.connect(pg_url)
                try:
                    await killer.execute("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await killer.close()

            terminating = asyncio.create_task(terminate())
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT pg_sleep(10)"))
            await terminating
            return caught.value
    finally:
        await engine.dispose()


async def _bad_sql_error(pg_url: str) -> DBAPIError:
    engine = make_engine(server_url(pg_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT 1/0"))
            return caught.value
    finally:
        await engine.dispose()


async def test_a_cut_connection_is_transient_and_a_bad_statement_is_not(pg_url: str) -> None:
    cut = await _terminated_error(pg_url)
    # "connection was closed in the middle of operation" (08003): a plain DBAPIError, which the
    # exception classes alone (TRANSIENT_DB_ERRORS) did not catch: requests got 500s, events were dead-lettered.
    assert not isinstance(cut, TRANSIENT_DB_ERRORS)
    assert is_transient_db_error(cut)
    assert not is_transient_db_error(await _bad_sql_error(pg_url))


async def test_a_request_meeting_a_restarting_database_gets_a_503_problem(pg_url: str) -> None:
    cut, bad = await _terminated_error(pg_url), await _bad_sql_error(pg_url)
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/cut")
    async def raise_cut() -> None:
        raise cut

    @app.get("/bad")
    async def raise_bad() -> None:
        raise bad

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        unavailable = await client.get("/cut")
        broken = await client.get("/bad")
    assert unavailable.status_code == 503 and unavailable.json()["code"] == "service_unavailable"
    assert unavailable.headers["content-type"].startswith("application/problem+json")
    assert broken.status_code == 500 and "Traceback" not in broken.text


async def test_an_event_is_retried_through_a_database_restart_not_dead_lettered(pg_url: str) -> None:
    cut = await _terminated_error(pg_url)
    calls = 0

    async def handler(_: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls <= MAX_ATTEMPTS + 1:  # longer than the budget of a handler that is simply wrong
            raise cut

    envelope = Envelope(type="bid.placed", producer="test", data={})
    assert await run_handler(handler, envelope) is True
    assert calls == MAX_ATTEMPTS + 2
