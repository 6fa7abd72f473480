"""WebSocket fan-out at scale, through the gateway in the real topology (not a test; prints figures).

The stack runs distributed (``bench/bidding_stack.py``: every service its own process on PostgreSQL and
RabbitMQ); watchers are lean raw-asyncio WebSocket clients spread over several processes; the parent places
one bid every ``--interval-ms`` and each watcher notes when the ``bid.placed`` frame arrives. Latency is
from just before the bid request is sent to the frame's arrival (one clock: same machine).

Scenarios (the issue's):
  1  1,000 watchers of one listing, a bid every 100 ms for 20 s.
  2  10,000 watchers over 1,000 listings (10 each) plus 1,000 on one hot listing; every socket authenticated;
     bids alternate between the hot listing and a random other one. Also prints the gateway's RSS, CPU,
     and memory per idle authenticated socket.
  3  1,000 watchers of one listing of which 100 never read: phase A with the 900 readers alone, then phase B
     with the 100 non-readers added; the readers' p99 in both.

    .venv/bin/python -m bench.ws_fanout --scenario 1
    .venv/bin/python -m bench.ws_fanout --scenario 2
    .venv/bin/python -m bench.ws_fanout --scenario 3
    .venv/bin/python -m bench.ws_fanout --scenario 1 --watchers 100 --seconds 5   # a quick try
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bidding_stack import Stack, client, create_listing, percentile, register, stack

# ------------------------------------------------------------------------------------------ raw client


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    if length:
        repeated = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    else:
        masked = b""
    return header + mask + masked


class Watcher(asyncio.Protocol):
    """A minimal WebSocket client: handshake, unmasked server frames, pings answered, events noted."""

    def __init__(self, host: str, path: str) -> None:
        self.host, self.path = host, path
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = asyncio.get_running_loop().create_future()
        self.control: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received: list[tuple[int, float]] = []  # (bid_id, arrival)
        self.close_code: int | None = None
        self.lost = False
        self._key = base64.b64encode(os.urandom(16)).decode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self._key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.handshaken.done():
            self.handshaken.set_exception(ConnectionError("lost during the handshake"))

    def send_json(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(_client_frame(0x1, json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        arrival = time.time()
        self.buffer += data
        if not self.handshaken.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self.handshaken.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.handshaken.set_result(None)
        buf = self.buffer
        while len(buf) >= 2:
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, offset = struct.unpack_from("!H", buf, 2)[0], 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            self._frame(opcode, payload, arrival)

    def _frame(self, opcode: int, payload: bytes, arrival: float) -> None:
        if opcode == 0x1:
            message = json.loads(payload)
            if message.get("type") == "event":
                bid_id = message.get("data", {}).get("bid_id")
                if message.get("event") == "bid.placed" and bid_id is not None:
                    self.received.append((int(bid_id), arrival))
            else:
                self.control.put_nowait(message)
        elif opcode == 0x9 and self.transport is not None:  # ping: pong with the same payload
            self.transport.write(_client_frame(0xA, payload))
        elif opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if self.transport is not None:
                self.transport.close()

    async def expect(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.control.get(), timeout)
            if message.get("type") == kind:
                return message
            if message.get("type") == "error":
                raise RuntimeError(f"{kind}: {message}")


@dataclass
class Assignment:
    topic: str
    token: str | None = None
    slow: bool = False  # subscribes, then never reads again


@dataclass
class ConnResult:
    topic: str
    slow: bool
    received: list[tuple[int, float]] = field(default_factory=list)
    close_code: int | None = None
    lost: bool = False


async def _open(host: str, port: int, item: Assignment) -> Watcher:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    if item.slow:  # a tiny receive buffer so the server feels a non-reader soon
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    _, watcher = await loop.create_connection(lambda: Watcher(f"{host}:{port}", "/ws"), sock=sock)
    await asyncio.wait_for(watcher.handshaken, 30)
    if item.token is not None:
        watcher.send_json({"type": "auth", "token": item.token})
        await watcher.expect("authed")
    watcher.send_json({"type": "subscribe", "topic": item.topic})
    await watcher.expect("subscribed")
    if item.slow and watcher.transport is not None:
        watcher.transport.pause_reading()
    return watcher


async def _worker_main(host: str, port: int, pipe: multiprocessing.connection.Connection) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    os.set_blocking(pipe.fileno(), True)  # add_reader made it non-blocking; results are big messages
    watchers: list[tuple[Assignment, Watcher]] = []
    gate = asyncio.Semaphore(64)

    async def open_one(item: Assignment) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    watchers.append((item, await _open(host, port, item)))
                    return
                except (OSError, ConnectionError, TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))

    while True:
        command, argument = await commands.get()
        if command == "connect":
            await asyncio.gather(*(open_one(item) for item in argument))
            pipe.send(("connected", len(watchers)))
        elif command == "collect":
            pipe.send(
                (
                    "results",
                    [
                        ConnResult(item.topic, item.slow, w.received, w.close_code, w.lost)
                        for item, w in watchers
                        if not item.slow
                    ],
                )
            )
        elif command == "stop":
            for _, w in watchers:
                if w.transport is not None:
                    w.transport.abort()
            pipe.send(("stopped", None))
            return


def _worker(host: str, port: int, pipe: multiprocessing.connection.Connection) -> None:
    _raise_fd_limit()
    try:
        import uvloop

        uvloop.run(_worker_main(host, port, pipe))
    except ImportError:
        asyncio.run(_worker_main(host, port, pipe))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Clients:
    """Watcher processes; assignments are dealt round-robin."""

    def __init__(self, stack_: Stack, processes: int) -> None:
        host, port = stack_.ws_url.removeprefix("ws://").split("/", 1)[0].split(":")
        context = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for _ in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(host, int(port), child), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    async def _ask(self, messages: list[Any]) -> list[Any]:
        for pipe, message in zip(self.pipes, messages, strict=True):
            pipe.send(message)
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(None, pipe.recv) for pipe in self.pipes)))

    async def connect(self, items: list[Assignment]) -> int:
        shares: list[list[Assignment]] = [[] for _ in self.pipes]
        for index, item in enumerate(items):
            shares[index % len(shares)].append(item)
        answers = await self._ask([("connect", share) for share in shares])
        return sum(count for _, count in answers)

    async def collect(self) -> list[ConnResult]:
        answers = await self._ask([("collect", None)] * len(self.pipes))
        return [result for _, results in answers for result in results]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ask([("stop", None)] * len(self.pipes)), 30)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


# ------------------------------------------------------------------------------------------ the gateway


def gateway_pid(stack_: Stack) -> int | None:
    """The gateway process of this stack: ``services serve gateway`` with PORT = its port."""
    port = stack_.base_url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"serve" not in argv or b"gateway" not in argv:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PORT={port}".encode() in environ:
            return int(entry.name)
    return None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def gateway_metric(http: httpx.AsyncClient, name: str) -> float:
    text = (await http.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------------------------------------- bidding


@dataclass
class Bid:
    listing_id: int
    sent_at: float
    bid_id: int | None = None
    status: int = 0
    phase: str = ""
    answered_at: float = 0.0


class Bidder:
    def __init__(self, http: httpx.AsyncClient, bidders: list[dict[str, str]]) -> None:
        self.http, self.bidders = http, bidders
        self.amounts: dict[int, int] = {}
        self.bids: list[Bid] = []
        self._turn = itertools.count()

    async def _place(self, bid: Bid, amount: int, headers: dict[str, str]) -> None:
        try:
            response = await self.http.post(
                f"/api/listings/{bid.listing_id}/bids", json={"amount": f"{amount}.00"}, headers=headers
            )
        except httpx.HTTPError:
            bid.status = -1
            return
        bid.answered_at = time.time()
        bid.status = response.status_code
        if response.status_code == 201:
            bid.bid_id = int(response.json()["id"])

    async def run(self, targets: list[int], seconds: float, interval: float, phase: str) -> None:
        """One bid every ``interval`` s, on the targets in turn, sent on schedule whatever the answers take."""
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for n in itertools.count():
            due = start + n * interval
            if due - start >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            listing = targets[n % len(targets)]
            amount = self.amounts[listing] = self.amounts.get(listing, 1) + 1
            # Take turns so a bidder never outbids itself.
            headers = self.bidders[next(self._turn) % len(self.bidders)]
            bid = Bid(listing, time.time(), phase=phase)
            self.bids.append(bid)
            tasks.append(asyncio.create_task(self._place(bid, amount, headers)))
        await asyncio.gather(*tasks)


# ------------------------------------------------------------------------------------------- the report


def report(title: str, bids: list[Bid], results: list[ConnResult]) -> dict[str, float]:
    accepted = {b.bid_id: b for b in bids if b.bid_id is not None}
    per_listing: dict[int, int] = {}
    for bid in accepted.values():
        per_listing[bid.listing_id] = per_listing.get(bid.listing_id, 0) + 1
    expected = delivered = duplicates = 0
    latencies: list[float] = []
    arrivals: dict[int, list[float]] = {}
    for result in results:
        listing = int(result.topic.split(".")[1])
        expected += per_listing.get(listing, 0)
        seen: set[int] = set()
        for bid_id, arrival in result.received:
            bid = accepted.get(bid_id)
            if bid is None:
                continue
            if bid_id in seen:
                duplicates += 1
                continue
            seen.add(bid_id)
            delivered += 1
            latencies.append((arrival - bid.sent_at) * 1000)
            arrivals.setdefault(bid_id, []).append(arrival)
    closed = sum(1 for r in results if r.lost or r.close_code is not None)
    statuses: dict[int, int] = {}
    for bid in bids:
        statuses[bid.status] = statuses.get(bid.status, 0) + 1
    p50, p99, worst = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies, default=float("nan"))
    print(f"== {title}")
    print(f"   bids sent {len(bids)}, answers {dict(sorted(statuses.items()))}, accepted {len(accepted)}")
    print(
        f"   delivered/expected {delivered}/{expected} = {100 * delivered / max(1, expected):.2f}%"
        f"  (duplicates {duplicates}, reader sockets closed {closed} of {len(results)})"
    )
    print(f"   bid request -> frame received: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {worst:.1f} ms")
    answers = [(b.answered_at - b.sent_at) * 1000 for b in accepted.values()]
    first = [(min(times) - accepted[bid_id].sent_at) * 1000 for bid_id, times in arrivals.items()]
    spread = [(max(times) - min(times)) * 1000 for times in arrivals.values()]
    print(
        f"   where the time goes: bid request -> HTTP answer p50 {percentile(answers, 0.5):.1f}"
        f" p99 {percentile(answers, 0.99):.1f} ms; -> first socket's frame p50 {percentile(first, 0.5):.1f}"
        f" p99 {percentile(first, 0.99):.1f} ms; first -> last socket p50 {percentile(spread, 0.5):.1f}"
        f" p99 {percentile(spread, 0.99):.1f} ms"
    )
    return {"p50": p50, "p99": p99, "max": worst, "delivered": delivered, "expected": expected}


# -------------------------------------------------------------------------------------------- scenarios


async def setup_users(http: httpx.AsyncClient, tag: str, count: int) -> list[tuple[int, dict[str, str]]]:
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[int, dict[str, str]]:
        async with gate:
            return await register(http, f"w{i}_{tag}")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def wait_for_auctions(http: httpx.AsyncClient, listing_ids: list[int], timeout: float = 120) -> None:
    """Until the bidding service has consumed every listing.created (its auction exists)."""
    deadline = time.monotonic() + timeout
    pending = list(listing_ids)
    gate = asyncio.Semaphore(32)

    async def known(listing: int) -> bool:
        async with gate:
            return (await http.get(f"/api/listings/{listing}/bids")).status_code == 200

    while pending:
        answers = await asyncio.gather(*(known(listing) for listing in pending))
        pending = [listing for listing, ok in zip(pending, answers, strict=True) if not ok]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} auctions never appeared")
        if pending:
            await asyncio.sleep(0.5)


async def settle(seconds: float) -> None:
    # Let the last bids' frames arrive before collecting.
    await asyncio.sleep(seconds)


async def run(args: argparse.Namespace, stack_: Stack) -> None:
    pid = gateway_pid(stack_)
    async with client(stack_, connections=64) as http:
        tag = uuid.uuid4().hex[:6]
        _, seller = await register(http, f"seller_{tag}")
        bidders = [headers for _, headers in await setup_users(http, f"bid{tag}", 10)]
        hot = (await create_listing(http, seller, duration=3600, title="hot"))["id"]
        cold: list[int] = []
        if args.scenario == 2:
            gate = asyncio.Semaphore(16)

            async def make(i: int) -> int:
                async with gate:
                    return int((await create_listing(http, seller, duration=3600, title=f"cold {i}"))["id"])

            began = time.monotonic()
            cold = list(await asyncio.gather(*(make(i) for i in range(args.listings))))
            print(f"   created {len(cold)} listings in {time.monotonic() - began:.1f} s")
        await wait_for_auctions(http, [hot, *cold])

        tokens: list[str] = []
        if args.scenario == 2 and args.authenticated:
            # A few hundred accounts; each token is shared by several sockets (tabs of the same user).
            users = await setup_users(http, f"u{tag}", args.users)
            tokens = [headers["Authorization"].removeprefix("Bearer ") for _, headers in users]

        items: list[Assignment] = []
        if args.scenario == 2:
            per_cold = args.watchers // max(1, len(cold))
            items += [Assignment(f"listing.{listing}") for listing in cold for _ in range(per_cold)]
            items += [Assignment(f"listing.{hot}") for _ in range(args.hot)]
        elif args.scenario == 3:
            items += [Assignment(f"listing.{hot}") for _ in range(args.watchers - args.slow)]
        else:
            items += [Assignment(f"listing.{hot}") for _ in range(args.watchers)]
        if tokens:
            for index, item in enumerate(items):
                item.token = tokens[index % len(tokens)]
        random.Random(7).shuffle(items)

        clients = Clients(stack_, args.processes)
        try:
            rss_before = rss_mib(pid) if pid else float("nan")
            began = time.monotonic()
            connected = await clients.connect(items)
            print(
                f"   {connected} sockets connected{' and authenticated' if tokens else ''} and subscribed"
                f" in {time.monotonic() - began:.1f} s ({args.processes} client processes)"
            )
            await asyncio.sleep(2)
            if pid:
                rss_idle = rss_mib(pid)
                print(
                    f"   gateway RSS {rss_before:.0f} MiB before, {rss_idle:.0f} MiB with {connected} idle sockets:"
                    f" {(rss_idle - rss_before) * 1024 / max(1, connected):.1f} KiB per idle"
                    f"{' authenticated' if tokens else ''} socket"
                )
            bidder = Bidder(http, bidders)
            targets = [hot]
            if args.scenario == 2:
                rng = random.Random(11)
                targets = [hot if n % 2 == 0 else rng.choice(cold) for n in range(10_000)]
            cpu_before, wall_before = (cpu_seconds(pid) if pid else 0.0), time.monotonic()
            await bidder.run(targets, args.seconds, args.interval_ms / 1000, "A")
            await settle(args.settle)
            cpu_used, wall = (cpu_seconds(pid) if pid else 0.0) - cpu_before, time.monotonic() - wall_before
            results = await clients.collect()
            label = {1: "scenario 1", 2: "scenario 2", 3: "scenario 3, phase A (readers only)"}[args.scenario]
            report(label, bidder.bids, results)
            if pid:
                print(
                    f"   gateway during the bids: CPU {100 * cpu_used / wall:.0f}% of one core,"
                    f" RSS {rss_mib(pid):.0f} MiB"
                )
            if args.scenario == 3:
                slow = [Assignment(f"listing.{hot}", slow=True) for _ in range(args.slow)]
                await clients.connect(slow)
                print(f"   + {len(slow)} sockets that never read")
                phase_a = len(bidder.bids)
                await bidder.run(targets, args.seconds, args.interval_ms / 1000, "B")
                await settle(args.settle)
                phase_b = bidder.bids[phase_a:]
                phase_b_ids = {b.bid_id for b in phase_b}
                results = [
                    ConnResult(r.topic, r.slow, [x for x in r.received if x[0] in phase_b_ids], r.close_code)
                    for r in await clients.collect()
                ]
                report("scenario 3, phase B (the same readers, 100 non-readers among them)", phase_b, results)
                dropped = await gateway_metric(http, "gateway_dropped_slow_sockets_total")
                print(f"   gateway dropped {dropped:.0f} slow sockets (close 1013)")
            frames_out = await gateway_metric(http, "gateway_frames_out_total")
            print(f"   gateway_frames_out_total {frames_out:.0f}")
            for generation in ("0", "1", "2"):
                label = f'python_gc_pause_seconds_sum{{generation="{generation}"}}'
                count = await gateway_metric(http, label.replace("_sum", "_count"))
                total = await gateway_metric(http, label)
                slow = count - await gateway_metric(
                    http, f'python_gc_pause_seconds_bucket{{generation="{generation}",le="0.05"}}'
                )
                print(f"   gateway GC generation {generation}: {count:.0f} pauses, {total:.3f} s, {slow:.0f} > 50 ms")
        finally:
            await clients.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", type=int, choices=(1, 2, 3), required=True)
    parser.add_argument("--watchers", type=int, help="1: watchers; 2: watchers over the listings; 3: total")
    parser.add_argument("--listings", type=int, default=1000, help="scenario 2: listings the watchers spread over")
    parser.add_argument("--hot", type=int, default=1000, help="scenario 2: watchers of the hot listing")
    parser.add_argument("--slow", type=int, default=100, help="scenario 3: sockets that never read")
    parser.add_argument("--users", type=int, default=300, help="scenario 2: accounts the sockets authenticate as")
    parser.add_argument("--no-auth", dest="authenticated", action="store_false", help="scenario 2: anonymous sockets")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--settle", type=float, default=3, help="seconds to wait for the last frames")
    parser.add_argument("--processes", type=int, help="client processes (default: 2, or 4 for scenario 2)")
    parser.add_argument("--queue-size", type=int, help="WS_QUEUE_SIZE for the gateway (default: its own)")
    args = parser.parse_args()
    if args.watchers is None:
        args.watchers = 10_000 if args.scenario == 2 else 1000
    if args.processes is None:
        args.processes = 4 if args.scenario == 2 else 2
    _raise_fd_limit()  # before the stack starts: the gateway inherits it
    env: dict[str, Any] = {}
    if args.queue_size:
        env["WS_QUEUE_SIZE"] = args.queue_size
    # The stack's context manager runs its own event loop to clean up, so it stays outside ours.
    with stack(**env) as stack_:
        asyncio.run(run(args, stack_))


if __name__ == "__main__":
    main()
