"""Faults with real processes on PostgreSQL and RabbitMQ: a worker killed while it holds a delayed close,
and an API process killed in the middle of a bidding war. Nothing accepted or due is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bidding.config import Settings
from services.bidding.repository import auctions
from shared.bus import AmqpBus
from shared.events import utcnow
from tests.bidding.helpers import Recorder, delete_rabbit_objects, listen, listing_created, new_listing_id, running

ROOT = Path(__file__).resolve().parents[2]
#: A close must not wait for more than this once a worker is there to run it.
LATENESS = 0.8


def process_env(settings: Settings, **extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": str(settings.database_url),
            "AMQP_URL": str(settings.amqp_url),
            "DATABASE_PREFIX": settings.database_prefix,
            "QUEUE_PREFIX": settings.queue_prefix,
            "EVENTS_EXCHANGE": settings.events_exchange,
            "DATA_DIR": str(settings.data_dir),
            "OUTBOX_POLL_SECONDS": str(settings.outbox_poll_seconds),
            "LOG_JSON": "false",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


@contextlib.asynccontextmanager
async def process(args: list[str], env: dict[str, str], ready: Callable[[str], bool]) -> AsyncIterator[Any]:
    """Start a Python process; wait until a line of its stderr says it is ready; stop it at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                raw = await proc.stderr.readline()
                if not raw:
                    raise AssertionError("the process ended early:\n" + "".join(lines[-30:]))
                line = raw.decode(errors="replace")
                lines.append(line)
                if ready(line):
                    break

        async def drain() -> None:  # keep reading so the process never blocks on a full pipe
            assert proc.stderr is not None
            while await proc.stderr.readline():
                pass

        drainer = asyncio.create_task(drain())
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(Exception):
            drainer.cancel()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def real_settings(make_settings, amqp_url) -> AsyncIterator[Callable[..., Settings]]:
    built: list[Settings] = []

    def build(**overrides: Any) -> Settings:
        settings: Settings = make_settings(Settings, **overrides)
        built.append(settings)
        return settings

    yield build
    for settings in built:
        await delete_rabbit_objects(amqp_url, settings)


async def test_a_killed_worker_loses_no_close(real_settings, test_keys) -> None:
    # Only the worker process closes auctions here: no worker in the API, no sweep anywhere.
    settings = real_settings(BIDDING_INPROCESS_WORKER=False, BIDDING_SWEEP_SECONDS=3600)
    env = process_env(settings, BIDDING_SWEEP_SECONDS=3600)
    worker = ["-m", "services.bidding.worker"]

    def is_ready(line: str) -> bool:
        return "bidding worker consuming" in line

    async with running(settings, test_keys) as b:
        async with process(worker, env, is_ready) as first:
            ends_at = utcnow() + timedelta(seconds=5)
            listing_id = await b.create_listing(ends_at=ends_at)
            assert (await b.bid(listing_id, 2, "10", username="alice")).status_code == 201
            await asyncio.sleep(0.8)  # the worker now holds the delayed message, unacknowledged
            first.kill()  # SIGKILL: no goodbye, RabbitMQ takes the message back
            await first.wait()
        async with process(worker, env, is_ready):
            worker_back = utcnow()
            closed = await b.recorder.wait_for("auction.closed", listing_id, within=15)
            assert (closed[0].data["winner_id"], closed[0].data["final_price"]) == (2, "10.00")
            async with b.app.state.runtime.db.read() as session:
                row = (await session.execute(auctions.select().where(auctions.c.listing_id == listing_id))).one()
            # The redelivered message closes it; if the new worker only came up after the end (a slow
            # machine), its first sweep did, at once.
            assert row.closed_by in {"timer", "sweep"}
            assert (row.closed_at - max(row.ends_at, worker_back)).total_seconds() < LATENESS
            await asyncio.sleep(0.5)
            assert len(b.recorder.of("auction.closed", listing_id)) == 1


async def test_a_killed_api_process_loses_no_accepted_bid(real_settings, test_keys, amqp_url) -> None:
    settings = real_settings(BIDDING_INPROCESS_WORKER=True)
    port = free_port()
    env = process_env(settings, PORT=port, BIDDING_TEST_JWKS=json.dumps(test_keys.jwks))
    app = ["-m", "tests.bidding.serve_app"]

    def is_ready(line: str) -> bool:
        return "Application startup complete" in line or "Uvicorn running" in line

    bus = AmqpBus(amqp_url, settings.events_exchange)
    await bus.start()
    recorder = Recorder()
    try:
        await listen(bus, recorder, settings)
        listing_id = new_listing_id()
        accepted: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            async with process(app, env | {"LOG_LEVEL": "INFO"}, lambda line: True) as server:
                await wait_http(client)
                await bus.publish(listing_created(listing_id, start_price="1.00", bid_increment="0.01"))
                assert (await client.get(f"/api/listings/{listing_id}/auction")).status_code == 200

                async def bidder(user: int) -> None:
                    rng = random.Random(user)
                    amount = Decimal("1.00")
                    while True:
                        try:
                            response = await client.post(
                                f"/api/listings/{listing_id}/bids",
                                json={"amount": f"{amount:.2f}"},
                                headers=test_keys.auth(user),
                            )
                        except httpx.HTTPError:
                            return  # the process is gone
                        if response.status_code == 201:
                            accepted.append(response.json())
                            if len(accepted) >= 10:
                                enough.set()
                        amount = Decimal(response.json()["min_next_bid"]) + Decimal("0.01") * rng.randint(0, 2)

                enough = asyncio.Event()
                bidders = [asyncio.create_task(bidder(user)) for user in range(10, 20)]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(enough.wait(), timeout=20)
                server.kill()  # SIGKILL in the middle of the traffic
                await server.wait()
                await asyncio.wait_for(asyncio.gather(*bidders), timeout=15)
            assert len(accepted) >= 5

            async with process(app, env, lambda line: True):
                await wait_http(client)
                history = await all_bids(client, listing_id)
                by_id = {h["id"]: h for h in history}
                # Every bid that was answered 201 is there, as answered.
                for bid in accepted:
                    assert by_id[bid["id"]]["amount"] == bid["amount"]
                in_order = [by_id[i] for i in sorted(by_id)]
                amounts = [Decimal(h["amount"]) for h in in_order]
                assert amounts == sorted(set(amounts))
                state = (await client.get(f"/api/listings/{listing_id}/auction")).json()
                assert Decimal(state["current_price"]) == amounts[-1] and state["bid_count"] == len(history)
                # And every committed bid's event goes out, also those committed just before the kill.
                deadline = time.monotonic() + 15
                while {e.data["bid_id"] for e in recorder.of("bid.placed", listing_id)} != set(by_id):
                    assert time.monotonic() < deadline, "bid.placed events are missing"
                    await asyncio.sleep(0.1)
    finally:
        await bus.close()


async def wait_http(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the app did not become ready"
        await asyncio.sleep(0.1)


async def all_bids(client: httpx.AsyncClient, listing_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/api/listings/{listing_id}/bids", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
