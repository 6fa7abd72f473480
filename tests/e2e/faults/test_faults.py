"""Faults against the real topology: every service its own process on a private PostgreSQL and a private
RabbitMQ, so each can be killed or restarted without touching anyone else's.

``test_nothing_is_lost_under_faults``: under a load of bids, comments and chat messages, each service is
killed with SIGKILL and started again, the dramatiq worker is killed while closes are due, RabbitMQ is
killed and started again, PostgreSQL is crashed and restarted, and copies of delivered events are published
again in reverse order (the soak also restarts RabbitMQ and PostgreSQL cleanly, every other round).
Then every answer 201 must be stored, every outbox row published and seen on the exchange, every
projection equal to its source (each event applied once in effect), every auction closed once with the
highest bidder. The counts are printed (``-s`` shows them).

``test_sigterm_finishes_in_flight_requests_and_closes_sockets``: SIGTERM to the gateway and to a backend
while requests are in flight: each of them is answered; the gateway's websockets get a clean close.

The longer version of the first test is ``make soak`` (``bench/soak.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import websockets

from tests.e2e.faults.harness import Recorder, Topology, log, run_scenario
from tests.support.pg_node import PgNode
from tests.support.rabbit_node import RabbitNode

# One stack for the module (its start is the slow part): the tests run on the module's event loop.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420), pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[PgNode, RabbitNode]]:
    pg, rabbit = PgNode(), RabbitNode()
    try:
        with ThreadPoolExecutor(2) as pool:  # the two start side by side (~10 s for RabbitMQ)
            for started in [pool.submit(pg.start), pool.submit(rabbit.start)]:
                started.result()
        yield pg, rabbit
    finally:
        rabbit.close()
        pg.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    nodes: tuple[PgNode, RabbitNode], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Topology, Recorder, PgNode, RabbitNode]]:
    pg, rabbit = nodes
    recorder = Recorder(rabbit.url)
    await recorder.start()  # before any service: it must see every event ever published
    topology = Topology(tmp_path_factory.mktemp("faults"), pg.url, rabbit.url)
    try:
        await topology.start_all()
        yield topology, recorder, pg, rabbit
    finally:
        await asyncio.to_thread(topology.stop_all)
        await recorder.close()


async def test_nothing_is_lost_under_faults(system: tuple[Topology, Recorder, PgNode, RabbitNode]) -> None:
    topology, recorder, pg, rabbit = system
    report = await run_scenario(pg, rabbit, recorder, topology, rounds=1)
    for line in report.lines():
        log(line)
    load, snap = report.load, report.snap
    # The load really ran through the faults (not a vacuous pass).
    assert len(load.accepted_bids) >= 100 and len(load.accepted_comments) >= 20 and len(load.accepted_messages) >= 20
    assert sum(1 for a in snap.auctions.values() if a["closed_by"] in ("timer", "sweep")) >= 5
    assert sum(load.errors.values()) > 0, "no request ever met a dead process: the faults did not bite"
    assert report.found == [], "\n".join(report.found)


async def test_sigterm_finishes_in_flight_requests_and_closes_sockets(
    system: tuple[Topology, Recorder, PgNode, RabbitNode],
) -> None:
    topology = system[0]
    async with httpx.AsyncClient(base_url=topology.base_url, timeout=30) as client:
        seller, bidders = await _accounts(client, 6)
        category = (await client.get("/api/categories")).json()["items"][0]["id"]
        listing = await client.post(
            "/api/listings",
            headers=seller,
            json={"title": "term", "category_id": category, "start_price": "1.00", "duration_seconds": 600},
        )
        assert listing.status_code == 201, listing.text
        listing_id = listing.json()["id"]
        await _until_biddable(client, bidders[0], listing_id)

        # 1. The gateway gets SIGTERM while requests wait on an upstream (bidding is paused with SIGSTOP):
        #    each of them is answered, and every open websocket is closed cleanly.
        sockets = [await _socket(topology, listing_id) for _ in range(3)]
        os.kill(topology.pid("bidding"), signal.SIGSTOP)
        try:
            in_flight = [
                asyncio.create_task(_bid(topology.base_url, listing_id, h, 100 + i)) for i, h in enumerate(bidders)
            ]
            await asyncio.sleep(1.0)  # all of them are now inside the gateway, waiting for bidding
            exit_code = asyncio.create_task(topology.terminate("gateway"))
            await asyncio.sleep(0.5)
        finally:
            os.kill(topology.pid("bidding"), signal.SIGCONT)
        answers = await asyncio.gather(*in_flight)
        codes = [await _close_code(ws) for ws in sockets]
        log(f"gateway SIGTERM: in-flight answers {answers}; websocket close codes {codes}; exit {await exit_code}")
        assert all(isinstance(a, int) and a in (201, 409) for a in answers), answers
        # uvicorn re-raises the SIGTERM once it has shut down cleanly: the exit status is -SIGTERM.
        assert await exit_code in (0, -signal.SIGTERM)
        assert codes == [1001] * len(sockets), codes
        await topology.start("gateway")

        # 2. bidding gets SIGTERM while its requests wait on a lock held in its database: they finish, stored.
        lock = await asyncpg.connect(topology.database("bidding"))
        try:
            tx = lock.transaction()
            await tx.start()
            await lock.execute("LOCK TABLE auctions IN EXCLUSIVE MODE")
            in_flight = [
                asyncio.create_task(_bid(topology.base_url, listing_id, h, 500 + i, full=True))
                for i, h in enumerate(bidders)
            ]
            await asyncio.sleep(1.0)
            exit_code = asyncio.create_task(topology.terminate("bidding"))
            await asyncio.sleep(0.5)
            await tx.rollback()
        finally:
            await lock.close()
        results = await asyncio.gather(*in_flight)
        log(f"bidding SIGTERM: in-flight answers {[r[0] for r in results]}; exit {await exit_code}")
        assert all(code in (201, 409) for code, _ in results), results
        assert await exit_code in (0, -signal.SIGTERM)
        accepted = [body["id"] for code, body in results if code == 201]
        assert accepted, "no bid went through"
        stored = await asyncpg.connect(topology.database("bidding"))
        try:
            ids = {r["id"] for r in await stored.fetch("SELECT id FROM bids WHERE listing_id = $1", listing_id)}
        finally:
            await stored.close()
        assert set(accepted) <= ids
        await topology.start("bidding")


async def _accounts(client: httpx.AsyncClient, bidders: int) -> tuple[dict[str, str], list[dict[str, str]]]:
    headers = []
    for i in range(bidders + 1):
        name = f"term{i}_{uuid.uuid4().hex[:6]}"
        created = await client.post(
            "/api/auth/register", json={"username": name, "email": f"{name}@example.org", "password": "faults-pw-1"}
        )
        assert created.status_code == 201, created.text
        token = (await client.post("/api/auth/login", json={"username": name, "password": "faults-pw-1"})).json()
        headers.append({"Authorization": f"Bearer {token['access_token']}"})
    return headers[0], headers[1:]


async def _until_biddable(client: httpx.AsyncClient, headers: dict[str, str], listing_id: int) -> None:
    for _ in range(100):
        r = await client.post(f"/api/listings/{listing_id}/bids", headers=headers, json={"amount": "1.00"})
        if r.status_code == 201:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("bidding never learnt of the listing")


async def _bid(base_url: str, listing_id: int, headers: dict[str, str], amount: int, full: bool = False) -> Any:
    """One bid on a fresh connection (so it is accepted by the server before any signal); its answer."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        try:
            r = await client.post(
                f"/api/listings/{listing_id}/bids",
                headers=headers,
                json={"amount": f"{Decimal(amount):.2f}"},
            )
        except httpx.HTTPError as exc:
            return (type(exc).__name__, {}) if full else type(exc).__name__
        return (r.status_code, r.json()) if full else r.status_code


async def _socket(topology: Topology, listing_id: int) -> Any:
    ws = await websockets.connect(topology.ws_url)
    await ws.send(json.dumps({"type": "subscribe", "topic": f"listing.{listing_id}"}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def _close_code(ws: Any) -> int | None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(15):
            async for _ in ws:
                pass
    return ws.close_code  # type: ignore[no-any-return]
