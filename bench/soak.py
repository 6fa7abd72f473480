"""Soak: the fault suite's storm for as long as you like (``make soak``; the CI runs one round in
``tests/e2e/faults/test_faults.py``).

Starts a private PostgreSQL and a private RabbitMQ (nothing shared is touched), every service as its own
process, the dramatiq worker and the gateway; runs bids, comments, chat messages and short auctions
through the gateway while it repeats the rounds of faults (kill -9 each service and the worker, restart
RabbitMQ, crash and restart PostgreSQL, duplicate and reordered deliveries) until ``--duration`` seconds
have passed; then settles and prints the counts: answers, 201s stored, outbox rows sent, events seen,
closes, projections that agree, and every disagreement found. Exit status 1 if anything did not hold.

    .venv/bin/python -m bench.soak --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.faults.harness import Recorder, Topology, log, run_scenario
from tests.support.pg_node import PgNode
from tests.support.rabbit_node import RabbitNode


async def soak(duration: float, seed: int, keep: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    pg, rabbit = PgNode(), RabbitNode()
    topology: Topology | None = None
    recorder: Recorder | None = None
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(pg.start), pool.submit(rabbit.start)]:
                started.result()
        recorder = Recorder(rabbit.url)
        await recorder.start()
        topology = Topology(workdir, pg.url, rabbit.url)
        await topology.start_all()

        async def on_round(done: int) -> None:
            log(f"round {done} of faults done")

        started = time.monotonic()
        report = await run_scenario(pg, rabbit, recorder, topology, duration=duration, seed=seed, on_round=on_round)
        print()
        print(f"soak: --duration {duration:.0f} --seed {seed}, wall time {time.monotonic() - started:.0f} s")
        for line in report.lines():
            print(line)
        return 1 if report.found else 0
    finally:
        if topology is not None:
            await asyncio.to_thread(topology.stop_all)
        if recorder is not None:
            await recorder.close()
        rabbit.close()
        pg.close()
        if keep:
            print(f"process logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load and faults (default 600)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.duration, args.seed, args.keep_logs)))


if __name__ == "__main__":
    main()
