"""What the HTTP path itself can carry: the cheapest bid request, through the gateway and straight to bidding.

Context for benchmark 1 (``bench.bidding_contention``): a bid that the last committed price already refuses
(409 ``bid_too_low``, one plain read, no lock, no event) is the least work a bid request can be. ``wrk`` (a
C load generator, so the load costs little CPU) sends it as fast as the stack answers, with 50 connections,
through the gateway and then straight to the bidding service. No end-to-end bid can be faster than this.

    apt-get install wrk   # once
    .venv/bin/python -m bench.bidding_ceiling [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import uuid

from bench.bidding_stack import Stack, client, create_listing, register, stack

LUA = """wrk.method = "POST"
wrk.body = '{"amount": "0.01"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
"""


def run_wrk(url: str, authorization: str, seconds: int) -> tuple[float, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(LUA % authorization)
        script.flush()
        out = subprocess.run(
            ["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, f"{refused.group(1) if refused else 0} answers were 409"


async def prepare(stack_: Stack) -> tuple[str, int]:
    async with client(stack_) as http:
        tag = uuid.uuid4().hex[:6]
        _, seller = await register(http, f"seller_{tag}")
        _, bidder = await register(http, f"bidder_{tag}")
        listing = await create_listing(http, seller, duration=3600)
        first = await http.post(f"/api/listings/{listing['id']}/bids", json={"amount": "5.00"}, headers=bidder)
        assert first.status_code == 201, first.text
        return bidder["Authorization"], int(listing["id"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    # One user bids as fast as wrk can: the gateway's per-user rate limit would answer most of it (429).
    with stack(RATE_LIMIT_BIDS="off") as running:
        authorization, listing_id = asyncio.run(prepare(running))
        path = f"/api/listings/{listing_id}/bids"
        direct = f"http://127.0.0.1:{int(running.env['SERVICES_BASE_PORT']) + 2}{path}"
        for label, url in (("through the gateway", running.base_url + path), ("straight to bidding", direct)):
            rate, statuses = run_wrk(url, authorization, args.seconds)
            print(f"refused bid (409, the cheapest bid request) {label}: {rate:.0f} req/s ({statuses})")


if __name__ == "__main__":
    main()
