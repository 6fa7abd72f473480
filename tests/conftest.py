"""Fixtures every test package uses: real PostgreSQL and RabbitMQ, isolated per test, and ASGI clients.

Integration tests never skip: if PostgreSQL or RabbitMQ cannot be reached, they fail (``.ci/run``
starts both first). Each test gets its own database prefix, queue prefix and exchange, so tests
(and parallel runs) never see each other's data or events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# Every event a service records during the tests is checked against its published schema.
os.environ["EVENTS_VALIDATE"] = "1"

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.support.tokens import TestKeys

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: Every database a test creates starts with this, so the session can drop them all at the end.
RUN_PREFIX = f"t{uuid.uuid4().hex[:8]}"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> str:
    assert _reachable(PG_URL, 5432), f"PostgreSQL is not reachable at {PG_URL}: start it (see README)"
    return PG_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    assert _reachable(AMQP_URL, 5672), f"RabbitMQ is not reachable at {AMQP_URL}: start it (see README)"
    return AMQP_URL


def _rabbitmq_names(kind: str) -> list[str]:
    """Queue or exchange names on the local broker (AMQP cannot list them; rabbitmqctl can)."""
    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", f"list_{kind}", "name"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="session", autouse=True)
def _drop_test_broker_objects() -> Iterator[None]:
    """Every queue and exchange this run declared (named ``test.<run>.``) goes when the run ends."""
    yield
    if not _reachable(AMQP_URL, 5672):
        return
    marker = f"test.{RUN_PREFIX}."

    async def drop() -> None:
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for name in _rabbitmq_names("queues"):
                if name.startswith(marker):
                    await channel.queue_delete(name)
            for name in _rabbitmq_names("exchanges"):
                if name.startswith(marker):
                    await channel.exchange_delete(name)

    asyncio.run(drop())


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    if not _reachable(PG_URL, 5432):
        return

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{RUN_PREFIX}%")
            for row in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def isolation() -> dict[str, str]:
    """Environment values that keep one test's databases, queues and exchange to itself."""
    tag = uuid.uuid4().hex[:8]
    return {
        "DATABASE_PREFIX": f"{RUN_PREFIX}_{tag}",
        "QUEUE_PREFIX": f"test.{RUN_PREFIX}.{tag}.",
        "EVENTS_EXCHANGE": f"test.{RUN_PREFIX}.{tag}.events",
    }


@pytest.fixture(scope="session")
def test_keys() -> TestKeys:
    return TestKeys()


FAST_HASH = {"PASSWORD_HASH_MEMORY_KIB": 1024, "PASSWORD_HASH_TIME_COST": 1}


@pytest.fixture(params=["embedded", "postgres"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run a test in both modes: embedded (SQLite + in-process bus) and real (PostgreSQL + RabbitMQ)."""
    return str(request.param)


@pytest.fixture
def make_settings(tmp_path: Path, isolation: dict[str, str], request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``make_settings(SettingsClass, real=True, **overrides)``: settings for one service under test."""

    def build(settings_cls: type, real: bool = True, **overrides: Any) -> Any:
        values: dict[str, Any] = {"DATA_DIR": tmp_path, "LOG_JSON": False, "OUTBOX_POLL_SECONDS": 0.1, **FAST_HASH}
        if real:
            values |= {
                "DATABASE_URL": request.getfixturevalue("pg_url"),
                "AMQP_URL": request.getfixturevalue("amqp_url"),
            }
            values |= isolation
        values |= overrides
        return settings_cls(**values)

    return build


@contextlib.asynccontextmanager
async def serve(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give a client that talks to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as client:
            yield client
