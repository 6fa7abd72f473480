"""Starts the product in its real topology for the bidding benchmarks (not a test).

``python -m services run`` with ``DATABASE_URL`` and ``AMQP_URL`` set: every service its own process,
the dramatiq worker, the gateway; an isolated database prefix, queue prefix and exchange, dropped at
the end. Used by ``bench/bidding_contention.py`` and ``bench/bidding_close_precision.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port_block(size: int) -> int:
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + size > 65000:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                # As uvicorn binds: a port whose old connections linger in TIME_WAIT (after 11,000 sockets) is free.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports")


@dataclass
class Stack:
    base_url: str
    ws_url: str
    prefix: str
    env: dict[str, str]


@contextlib.contextmanager
def stack(**extra_env: Any) -> Iterator[Stack]:
    tag = uuid.uuid4().hex[:8]
    base = free_port_block(6)
    gateway = base + 5
    prefix = f"bench_{tag}"
    env = dict(os.environ) | {
        "DATABASE_URL": PG_URL,
        "AMQP_URL": AMQP_URL,
        "DATABASE_PREFIX": prefix,
        "QUEUE_PREFIX": f"bench.{tag}.",
        "EVENTS_EXCHANGE": f"bench.{tag}.events",
        "SERVICES_BASE_PORT": str(base),
        "GATEWAY_PORT": str(gateway),
        "DATA_DIR": f"/tmp/{prefix}",
        "AUCTION_MIN_DURATION_SECONDS": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "PASSWORD_HASH_TIME_COST": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env |= {key: str(value) for key, value in extra_env.items()}
    log = open(f"/tmp/{prefix}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "services", "run"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{gateway}"
    try:
        deadline = time.monotonic() + 90
        # Ready when every service answers through the gateway (anything but a 5xx).
        probes = ["/api/categories", "/api/users?q=a", "/api/bids", "/api/chats"]
        while True:
            try:
                if all(httpx.get(f"{url}{probe}", timeout=2).status_code < 500 for probe in probes):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not start; see /tmp/{prefix}.log")
            time.sleep(0.3)
        yield Stack(url, f"ws://127.0.0.1:{gateway}/ws", prefix, env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        asyncio.run(_drop(prefix, env))
        shutil.rmtree(env["DATA_DIR"], ignore_errors=True)


async def _drop(prefix: str, env: dict[str, str]) -> None:
    """Drop the run's databases, queues and exchanges."""
    conn = await asyncpg.connect(PG_URL)
    try:
        for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}%"):
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()
    queue_prefix, exchange = env["QUEUE_PREFIX"], env["EVENTS_EXCHANGE"]
    queues = [
        f"{queue_prefix}{name}{suffix}" for name in ("users", "listings", "bidding", "chat") for suffix in ("", ".dlq")
    ]
    queues += [f"{queue_prefix}bidding.close{suffix}" for suffix in ("", ".DQ", ".XQ")]
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for name in queues:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for name in (exchange, f"{exchange}.dlx"):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
    finally:
        await connection.close()


async def register(client: httpx.AsyncClient, name: str) -> tuple[int, dict[str, str]]:
    """A new user: (id, auth headers)."""
    password = "bench-password-1"
    response = await client.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@bench.example", "password": password}
    )
    response.raise_for_status()
    login = await client.post("/api/auth/login", json={"username": name, "password": password})
    login.raise_for_status()
    body = login.json()
    return int(body["user"]["id"]), {"Authorization": f"Bearer {body['access_token']}"}


async def create_listing(
    client: httpx.AsyncClient, headers: dict[str, str], duration: int, title: str = "bench"
) -> dict[str, Any]:
    categories = (await client.get("/api/categories")).json()
    category = (categories["items"] if isinstance(categories, dict) else categories)[0]["id"]
    response = await client.post(
        "/api/listings",
        json={
            "title": title,
            "category_id": category,
            "start_price": "1.00",
            "bid_increment": "0.01",
            "duration_seconds": duration,
        },
        headers=headers,
    )
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.asynccontextmanager
async def client(stack: Stack, connections: int = 200) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30, limits=limits) as http:
        yield http
