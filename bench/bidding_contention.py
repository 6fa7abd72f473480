"""Benchmark 1: 50 bidders on ONE listing as fast as they can for 20 s, through the gateway.

Prints accepted bids/s, request latency p50/p99, the invariant check (strictly increasing, no
duplicate amounts, final price = the highest accepted bid), and, for scale, the ceiling of the bare
database doing the same conditional update (``pgbench`` with a custom script, 50 clients, same run).

    .venv/bin/python bench/bidding_contention.py [--bidders 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import tempfile
import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from bench.bidding_stack import PG_URL, client, create_listing, percentile, register, stack

PGBENCH_SCRIPT = """\\set amt random(1, 3)
UPDATE auctions SET current_cents = current_cents + :amt, bid_count = bid_count + 1, leader_id = :client_id
 WHERE listing_id = 1 AND status = 'open' AND ends_at > now() AND seller_id <> :client_id
   AND ((bid_count = 0 AND current_cents + :amt >= start_cents)
        OR (bid_count > 0 AND current_cents + :amt >= current_cents + increment_cents))
 RETURNING current_cents, bid_count;
"""


async def run_bidders(stack_: Any, bidders: int, seconds: float, direct: bool = False) -> dict[str, Any]:
    async with client(stack_, connections=bidders + 10) as http:
        tag = uuid.uuid4().hex[:6]
        _, seller = await register(http, f"seller_{tag}")
        users = await asyncio.gather(*(register(http, f"b{i}_{tag}") for i in range(bidders)))
        listing = await create_listing(http, seller, duration=3600)
        listing_id = listing["id"]
        url = f"/api/listings/{listing_id}/bids"
        if direct:  # straight to the bidding service, not through the gateway
            url = f"http://127.0.0.1:{int(stack_.env['SERVICES_BASE_PORT']) + 2}{url}"
        # Wait until bidding knows the listing.
        first = await http.post(url, json={"amount": "1.00"}, headers=users[0][1])
        assert first.status_code == 201, first.text

        latencies: list[float] = []
        statuses: dict[int, int] = {}
        accepted: list[dict[str, Any]] = [first.json()]
        stop = time.monotonic() + seconds

        async def bidder(index: int) -> None:
            rng = random.Random(index)
            headers = users[index][1]
            minimum = Decimal(first.json()["min_next_bid"])
            while time.monotonic() < stop:
                amount = minimum + Decimal("0.01") * rng.randint(0, 3)
                started = time.perf_counter()
                response = await http.post(url, json={"amount": f"{amount:.2f}"}, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                body = response.json()
                if response.status_code == 201:
                    accepted.append(body)
                if "min_next_bid" in body:
                    minimum = Decimal(body["min_next_bid"])

        began = time.monotonic()
        await asyncio.gather(*(bidder(i) for i in range(bidders)))
        elapsed = time.monotonic() - began

        history: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = (await http.get(url, params=params)).json()
            history += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        by_id = sorted(history, key=lambda h: h["id"])
        amounts = [Decimal(h["amount"]) for h in by_id]
        accepted_amounts = [Decimal(a["amount"]) for a in accepted]
        increasing = all(a < b for a, b in itertools.pairwise(amounts))
        no_duplicates = len(set(accepted_amounts)) == len(accepted_amounts)
        all_recorded = {a["id"] for a in accepted} <= {h["id"] for h in history}
        deadline = time.monotonic() + 10
        while True:  # the listing's view follows the events
            shown = (await http.get(f"/api/listings/{listing_id}")).json()
            if Decimal(shown["current_price"]) == max(accepted_amounts) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        return {
            "elapsed": elapsed,
            "requests": len(latencies),
            "statuses": statuses,
            "accepted": len(accepted) - 1,
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "increasing": increasing,
            "no_duplicates": no_duplicates,
            "all_recorded": all_recorded,
            "final_price_ok": Decimal(shown["current_price"]) == max(accepted_amounts) == amounts[-1],
        }


async def pgbench_ceiling(clients: int, seconds: int) -> float:
    name = f"bench_pgbench_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(PG_URL.rsplit("/", 1)[0] + f"/{name}")
        await conn.execute(
            "CREATE TABLE auctions (listing_id bigint PRIMARY KEY, seller_id bigint, status text, ends_at timestamptz,"
            " start_cents bigint, increment_cents bigint, current_cents bigint, bid_count int, leader_id bigint)"
        )
        await conn.execute("INSERT INTO auctions VALUES (1, 0, 'open', now() + interval '1 day', 100, 1, 100, 0, NULL)")
        await conn.close()
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write(PGBENCH_SCRIPT)
        host = re.search(r"@([^:/]+)", PG_URL)
        proc = await asyncio.create_subprocess_exec(
            "pgbench",
            *("-h", host.group(1) if host else "127.0.0.1", "-U", "postgres", "-n"),
            *("-c", str(clients), "-j", "2", "-T", str(seconds), "-f", script.name, name),
            stdout=asyncio.subprocess.PIPE,
        )
        out = (await proc.communicate())[0].decode()
        match = re.search(r"tps = ([0-9.]+)", out)
        return float(match.group(1)) if match else float("nan")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bidders", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--direct", action="store_true", help="bid on the bidding service, not the gateway")
    args = parser.parse_args()
    with stack() as running:
        result = asyncio.run(run_bidders(running, args.bidders, args.seconds, args.direct))
    ceiling = asyncio.run(pgbench_ceiling(args.bidders, 10))
    rate = result["accepted"] / result["elapsed"]
    via = "straight to the bidding service" if args.direct else "through the gateway"
    print(f"contention: {args.bidders} bidders, one listing, {result['elapsed']:.1f} s {via}")
    per_second = result["requests"] / result["elapsed"]
    print(f"  requests {result['requests']} ({per_second:.0f}/s), statuses {result['statuses']}")
    print(f"  accepted bids {result['accepted']} = {rate:.1f}/s")
    print(f"  latency p50 {result['p50'] * 1000:.1f} ms, p99 {result['p99'] * 1000:.1f} ms")
    print(
        f"  invariants: strictly increasing {result['increasing']}, no duplicate amounts {result['no_duplicates']},"
        f" every 201 recorded {result['all_recorded']}, final price = highest accepted {result['final_price_ok']}"
    )
    requests_rate = result["requests"] / result["elapsed"]
    print(f"  bare database (pgbench, same conditional UPDATE, {args.bidders} clients): {ceiling:.0f} tps")
    print(f"  end-to-end requests/s vs ceiling: {requests_rate / ceiling:.2f}")


if __name__ == "__main__":
    main()
