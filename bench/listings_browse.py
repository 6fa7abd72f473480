"""Benchmark: ``GET /api/listings`` (a page of 20 cards) through the gateway, 10,000 listings stored,
50 concurrent clients, in the real topology (every service its own process, PostgreSQL, RabbitMQ).

Prints requests/s and latency p50/p99 (and the error count) for the plain index page, then for a few
filtered variants. One listing is created through the API (so the seller's profile row exists as in
production); the other 9,999 are copied straight into the listings database, which is what this
measures the reading of (creating them through the API would benchmark writes and the bidding service).

    .venv/bin/python bench/listings_browse.py [--listings 10000] [--clients 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.bidding_stack import PG_URL, Stack, client, create_listing, percentile, register, stack
from services.launcher import BACKEND_SERVICES


async def seed(stack_: Stack, http: httpx.AsyncClient, total: int) -> dict[str, Any]:
    _, seller = await register(http, f"seller_{uuid.uuid4().hex[:6]}")
    first = await create_listing(http, seller, duration=7 * 24 * 3600, title="bench listing 0")
    database = f"{stack_.prefix}_listings"
    dsn = PG_URL.rsplit("/", 1)[0] + f"/{database}"
    conn = await asyncpg.connect(dsn)
    try:
        template = await conn.fetchrow("SELECT * FROM listings WHERE id = $1", first["id"])
        assert template is not None
        columns = [c for c in template.keys() if c != "id"]  # noqa: SIM118 - asyncpg Record
        words = ["lamp", "chair", "bicycle", "camera", "vase", "guitar", "watch", "book", "poster", "kettle"]
        shuffle = random.Random(7)
        now = datetime.now(UTC)
        rows = []
        for number in range(1, total):
            values = dict(template)
            word = shuffle.choice(words)
            title = f"{word.title()} #{number}"
            description = f"A {word} in good condition, lot {number}."
            bids = shuffle.choice([0, 0, 0, 1, 3, 12])
            values |= {
                "title": title,
                "description": description,
                "search_text": f"{title}\n{description}".lower(),
                "category_id": 1 + number % 10,
                "created_at": now - timedelta(seconds=total - number),
                "updated_at": now,
                "ends_at": now + timedelta(seconds=shuffle.randint(600, 7 * 24 * 3600)),
                "bid_count": bids,
                "current_price": values["start_price"] + 100 * bids,
                "leader_id": 999 if bids else None,
            }
            rows.append(tuple(values[c] for c in columns))
        await conn.copy_records_to_table("listings", records=rows, columns=columns)
        stored = await conn.fetchval("SELECT count(*) FROM listings")
    finally:
        await conn.close()
    return {"listings": stored}


async def load(
    http: httpx.AsyncClient, params: dict[str, Any], clients: int, seconds: float, path: str = "/api/listings"
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    cards = 0
    stop_at = time.monotonic() + seconds

    async def one_client() -> None:
        nonlocal errors, cards
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                response = await http.get(path, params=params)
                ok = response.status_code == 200
                if ok:
                    cards = max(cards, len(response.json()["items"]))
                else:
                    kinds[str(response.status_code)] = kinds.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as exc:
                ok = False
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "cards": cards,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "error_kinds": kinds,
    }


async def main(stack_: Stack, listings: int, clients: int, seconds: float, variant_seconds: float) -> None:
    async with client(stack_, connections=clients + 10) as http:
        seeded = await seed(stack_, http, listings)
        print(f"stored listings: {seeded['listings']}", flush=True)
        await load(http, {"limit": 20}, clients, 2)  # warm-up
        runs: list[tuple[str, dict[str, Any], float]] = [("index page", {"limit": 20}, seconds)]
        if variant_seconds > 0:
            runs += [
                ("status=active&sort=ending_soon", {"status": "active", "sort": "ending_soon"}, variant_seconds),
                ("category_id=3&status=active", {"category_id": 3, "status": "active"}, variant_seconds),
                ("q=camera (text search)", {"q": "camera"}, variant_seconds),
            ]
        for name, params, duration in runs:
            before = {svc: cpu_seconds(stack_.prefix, svc) for svc in ("listings", "gateway")}
            result = await load(http, params, clients, duration)
            report(f"GET /api/listings {name}", result, clients, duration)
            for svc, start in before.items():
                end = cpu_seconds(stack_.prefix, svc)
                if start is not None and end is not None and result["requests"]:
                    print(f"    {svc} process CPU: {(end - start) * 1000 / result['requests']:.2f} ms per request")
        if variant_seconds > 0:
            # For scale: the smallest listings call on the same stack (the gateway's and framework's share) ...
            result = await load(http, {}, clients, variant_seconds, path="/api/categories")
            report("GET /api/categories (baseline)", result, clients, variant_seconds)
            # ... and the index page asked of the listings service itself, without the gateway hop.
            port = int(stack_.env["SERVICES_BASE_PORT"]) + BACKEND_SERVICES.index("listings")
            limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits) as direct:
                result = await load(direct, {"limit": 20}, clients, variant_seconds)
            report("GET /api/listings index page, listings service directly", result, clients, variant_seconds)


def cpu_seconds(prefix: str, service: str) -> float | None:
    """CPU time used so far by the stack's ``services serve <service>`` process (Linux ``/proc``)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if cmdline[-3:-1] != [b"serve", service.encode()] and cmdline[-2:] != [b"serve", service.encode()]:
                continue
            if f"DATABASE_PREFIX={prefix}".encode() not in (proc / "environ").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return None


def report(name: str, result: dict[str, Any], clients: int, duration: float) -> None:
    print(
        f"{name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, {result['requests']} requests, "
        f"{result['errors']} errors {result['error_kinds'] or ''}, "
        f"{result['cards']} items/page ({clients} clients, {duration:.0f} s)",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--variant-seconds", type=float, default=8)
    args = parser.parse_args()
    with stack() as running:  # started and dropped outside the event loop
        asyncio.run(main(running, args.listings, args.clients, args.seconds, args.variant_seconds))
