"""The machinery of the fault suite (``tests/e2e/faults``) and of the soak (``bench/soak.py``).

* :class:`Topology`: every service as its own process (``python -m services serve NAME``), the dramatiq
  worker (``python -m services.bidding.worker``) and the gateway, with the environment the launcher gives
  them, on a private PostgreSQL (:class:`tests.support.pg_node.PgNode`) and a private RabbitMQ
  (:class:`tests.support.rabbit_node.RabbitNode`), so each piece can be killed and restarted alone.
* :class:`Recorder`: a durable queue bound to ``#`` on the events exchange: every event the stack
  published, by id, and the raw bodies to inject as duplicates.
* :class:`Load`: bidders, commenters, chatters and sellers through the gateway's public HTTP API,
  remembering every answer 201.
* :func:`inject_duplicates`, :func:`fault_round`: the faults.
* :func:`settle` and :func:`check`: the counts after the storm, straight from each service's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from tests.support.pg_node import PgNode
from tests.support.rabbit_node import RabbitNode, free_port

ROOT = Path(__file__).resolve().parents[3]
BACKENDS = ("users", "listings", "bidding", "chat")
#: The order services are started in (the gateway needs the others; the worker needs bidding's migrations).
START_ORDER = (*BACKENDS, "worker", "gateway")
EXCHANGE = "auction.events"
PREFIX = "faults"


def log(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------- topology
@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0


class Topology:
    """The distributed product, one OS process per piece, each one stoppable on its own."""

    def __init__(self, workdir: Path, pg_url: str, amqp_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.pg_url = pg_url
        self.amqp_url = amqp_url
        self.ports = {name: free_port() for name in (*BACKENDS, "gateway")}
        host = "127.0.0.1"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
        env |= {
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": pg_url,
            "AMQP_URL": amqp_url,
            "DATABASE_PREFIX": PREFIX,
            "EVENTS_EXCHANGE": EXCHANGE,
            "QUEUE_PREFIX": "",
            "DATA_DIR": str(workdir / "data"),
            "HOST": host,
            "JWKS_URL": f"http://{host}:{self.ports['users']}/api/auth/jwks.json",
            "AUCTION_MIN_DURATION_SECONDS": "2",
            "PASSWORD_HASH_MEMORY_KIB": "8192",
            "PASSWORD_HASH_TIME_COST": "1",
            "ACCESS_TOKEN_SECONDS": "86400",
            "OUTBOX_POLL_SECONDS": "0.2",
            "DATABASE_POOL_SIZE": "5",
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
        }
        for name in BACKENDS:
            env[f"{name.upper()}_URL"] = f"http://{host}:{self.ports[name]}"
        env |= extra_env or {}
        self.env = env
        python = sys.executable
        self.procs: dict[str, Proc] = {}
        for name in (*BACKENDS, "gateway"):
            port = self.ports[name]
            port_env = {"PORT": str(port)}
            if name == "gateway":
                port_env["GATEWAY_PORT"] = str(port)
            self.procs[name] = Proc(
                name, [python, "-m", "services", "serve", name], env | port_env, port, workdir / f"{name}.log"
            )
        # INFO: the worker says "bidding worker consuming" once it is ready.
        self.procs["worker"] = Proc(
            "worker",
            [python, "-m", "services.bidding.worker"],
            env | {"LOG_LEVEL": "INFO"},
            None,
            workdir / "worker.log",
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway']}/ws"

    def database(self, service: str) -> str:
        return self.pg_url.rsplit("/", 1)[0] + f"/{PREFIX}_{service}"

    def pid(self, name: str) -> int:
        popen = self.procs[name].popen
        assert popen is not None and popen.poll() is None, f"{name} is not running"
        return popen.pid

    def running(self, name: str) -> bool:
        popen = self.procs[name].popen
        return popen is not None and popen.poll() is None

    async def start(self, name: str, timeout: float = 90) -> None:
        proc = self.procs[name]
        assert not self.running(name), f"{name} is already running"
        ready_lines = self._ready_lines(proc)
        with proc.log_path.open("ab") as out:
            out.write(f"\n----- start {proc.starts + 1} -----\n".encode())
            out.flush()
            # Popen only forks (it does not wait): fine on the loop; the process outlives this call on purpose.
            proc.popen = subprocess.Popen(  # noqa: ASYNC220
                proc.argv, cwd=ROOT, env=proc.env, stdout=out, stderr=subprocess.STDOUT
            )
        proc.starts += 1
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert proc.popen.poll() is None, f"{name} exited with {proc.popen.returncode}:\n{self.logs(name)}"
                if proc.port is None:
                    if self._ready_lines(proc) > ready_lines:
                        return
                else:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"http://127.0.0.1:{proc.port}/readyz")).status_code == 200:
                            return
                assert time.monotonic() < deadline, f"{name} did not become ready:\n{self.logs(name)}"
                await asyncio.sleep(0.2)

    @staticmethod
    def _ready_lines(proc: Proc) -> int:
        if proc.port is not None or not proc.log_path.exists():
            return 0
        return proc.log_path.read_text(errors="replace").count("bidding worker consuming")

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown at all, as when a machine or container dies."""
        popen = self.procs[name].popen
        assert popen is not None
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGKILL)
        popen.wait(timeout=30)

    async def terminate(self, name: str, timeout: float = 30) -> int:
        """SIGTERM and wait for the process to finish on its own; its exit code."""
        popen = self.procs[name].popen
        assert popen is not None
        popen.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(popen.wait, timeout)

    async def restart(self, name: str) -> None:
        self.kill(name)
        await self.start(name)

    async def start_all(self) -> None:
        # Each backend migrates its own database, so they start side by side; then the worker and gateway.
        await asyncio.gather(*(self.start(name) for name in BACKENDS))
        await asyncio.gather(self.start("worker"), self.start("gateway"))

    def stop_all(self) -> None:
        for name in reversed(START_ORDER):
            popen = self.procs[name].popen
            if popen is not None and popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for name in reversed(START_ORDER):
            popen = self.procs[name].popen
            if popen is not None:
                try:
                    popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait()

    def logs(self, name: str, tail: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.procs[name].log_path.read_text(errors="replace")[-tail:]
        return ""

    def log_count(self, needle: str) -> dict[str, int]:
        """How many lines of each process's log contain ``needle`` (e.g. a traceback)."""
        counts = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(OSError):
                counts[name] = proc.log_path.read_text(errors="replace").count(needle)
        return counts


# ------------------------------------------------------------------------------------------- recorder
@dataclass
class Recorder:
    """Every event on the exchange, through a durable queue of its own (it survives broker restarts)."""

    amqp_url: str
    queue_name: str = "faults.recorder"
    #: First delivery of each event id, parsed.
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    deliveries: Counter[str] = field(default_factory=Counter)
    _connection: AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=500)
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self.queue_name, durable=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        envelope = json.loads(message.body)
        event_id = str(envelope["id"])
        self.deliveries[event_id] += 1
        if event_id not in self.events:
            self.events[event_id] = envelope
            self.bodies[event_id] = message.body
            self.order.append(event_id)
        with contextlib.suppress(Exception):  # the channel died: the broker redelivers it, we dedupe by id
            await message.ack()

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in (self.events[i] for i in self.order) if e["type"] == event_type]

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def inject_duplicates(amqp_url: str, recorder: Recorder, rng: random.Random, count: int = 120) -> int:
    """Publish copies of events already delivered, newest first (so each queue also sees them reordered).

    The copies are the same envelopes (same ids) sent straight to the exchange, as a broker redelivery
    or a relay that published twice would: every consumer must apply each event once in effect.
    """
    wanted = ("bid.placed", "auction.closed", "comment.posted", "chat.message_sent", "listing.created")
    candidates = [i for i in recorder.order if recorder.events[i]["type"] in wanted]
    chosen = rng.sample(candidates, min(count, len(candidates)))
    chosen.sort(key=recorder.order.index, reverse=True)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        for event_id in chosen:
            event_type = recorder.events[event_id]["type"]
            message = aio_pika.Message(
                recorder.bodies[event_id],
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event_id,
                type=event_type,
            )
            await exchange.publish(message, routing_key=event_type)
    return len(chosen)


# ----------------------------------------------------------------------------------------------- load
@dataclass
class Account:
    id: int
    username: str
    headers: dict[str, str]


@dataclass
class Load:
    """Bids, comments, chat messages and new short auctions through the gateway, for as long as it runs."""

    base_url: str
    rng: random.Random
    sellers: list[Account] = field(default_factory=list)
    bidders: list[Account] = field(default_factory=list)
    category_id: int = 0
    #: listing id -> (ends_at as epoch seconds, seller id)
    listings: dict[int, tuple[float, int]] = field(default_factory=dict)
    chats: list[tuple[int, Account, int]] = field(default_factory=list)  # chat id, sender, recipient id
    accepted_bids: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # bid id -> listing, bidder, cents
    accepted_comments: dict[int, int] = field(default_factory=dict)  # comment id -> listing id
    accepted_messages: dict[int, int] = field(default_factory=dict)  # message id -> chat id
    created_listings: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _min_next: dict[int, Decimal] = field(default_factory=dict)

    async def setup(self, client: httpx.AsyncClient, sellers: int = 3, bidders: int = 8) -> None:
        run = uuid.uuid4().hex[:6]
        for i in range(sellers + bidders):
            name = f"{'seller' if i < sellers else 'bidder'}{i}_{run}"
            created = await client.post(
                "/api/auth/register", json={"username": name, "email": f"{name}@example.org", "password": "faults-pw-1"}
            )
            assert created.status_code == 201, created.text
            token = (await client.post("/api/auth/login", json={"username": name, "password": "faults-pw-1"})).json()
            account = Account(created.json()["id"], name, {"Authorization": f"Bearer {token['access_token']}"})
            (self.sellers if i < sellers else self.bidders).append(account)
        self.category_id = (await client.get("/api/categories")).json()["items"][0]["id"]
        for bidder in self.bidders:
            for seller in self.rng.sample(self.sellers, 2):
                chat = await client.post("/api/chats", headers=bidder.headers, json={"user_id": seller.id})
                assert chat.status_code in (200, 201), chat.text
                self.chats.append((chat.json()["id"], bidder, seller.id))
                self.chats.append((chat.json()["id"], seller, bidder.id))

    def stop(self) -> None:
        self._stop.set()

    def _note(self, kind: str, response: httpx.Response) -> None:
        self.statuses[f"{kind} {response.status_code}"] += 1
        # While a piece is down, 502/503 problems are the right answer; a 500 or a non-problem body is not.
        problem = response.headers.get("content-type", "").startswith("application/problem+json")
        if response.status_code == 500 or (response.status_code > 500 and not problem):
            self.server_errors.append(f"{kind} {response.status_code} {response.text[:200]}")

    async def _call(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        try:
            response = await client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.errors[f"{kind} {type(exc).__name__}"] += 1
            await asyncio.sleep(0.2)
            return None
        self._note(kind, response)
        return response

    async def create_listing(self, client: httpx.AsyncClient, seller: Account, duration: int) -> int | None:
        body = {
            "title": f"fault lot {self.created_listings}",
            "category_id": self.category_id,
            "start_price": "1.00",
            "bid_increment": "1.00",
            "duration_seconds": duration,
        }
        response = await self._call(client, "listing", "POST", "/api/listings", headers=seller.headers, json=body)
        if response is None or response.status_code != 201:
            return None
        listing = response.json()
        self.created_listings += 1
        self.listings[listing["id"]] = (time.time() + duration, seller.id)
        self._min_next[listing["id"]] = Decimal("1.00")
        return int(listing["id"])

    def open_listings(self, margin: float = 0.5) -> list[int]:
        now = time.time()
        return [i for i, (ends, _) in self.listings.items() if ends > now + margin]

    async def _bidder(self, client: httpx.AsyncClient, bidder: Account) -> None:
        while not self._stop.is_set():
            candidates = [i for i in self.open_listings() if self.listings[i][1] != bidder.id]
            if not candidates:
                await asyncio.sleep(0.2)
                continue
            listing_id = self.rng.choice(candidates)
            amount = self._min_next[listing_id] + Decimal("1.00") * self.rng.randint(0, 1)
            response = await self._call(
                client,
                "bid",
                "POST",
                f"/api/listings/{listing_id}/bids",
                headers=bidder.headers | {"Idempotency-Key": uuid.uuid4().hex},
                json={"amount": f"{amount:.2f}"},
            )
            if response is not None:
                body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
                if response.status_code == 201:
                    self.accepted_bids[body["id"]] = (listing_id, bidder.id, _cents(body["amount"]))
                    self._min_next[listing_id] = max(self._min_next[listing_id], Decimal(body["amount"]) + 1)
                elif body.get("code") == "bid_too_low":
                    self._min_next[listing_id] = Decimal(body["min_next_bid"])
                elif body.get("code") == "auction_closed":
                    self.listings[listing_id] = (0.0, self.listings[listing_id][1])
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))

    async def _commenter(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            candidates = self.open_listings(margin=1.0)
            if candidates:
                author = self.rng.choice(self.bidders)
                listing_id = self.rng.choice(candidates)
                text = f"comment {uuid.uuid4().hex[:8]}"
                response = await self._call(
                    client,
                    "comment",
                    "POST",
                    f"/api/listings/{listing_id}/comments",
                    headers=author.headers,
                    json={"text": text},
                )
                if response is not None and response.status_code == 201:
                    self.accepted_comments[response.json()["id"]] = listing_id
            await asyncio.sleep(self.rng.uniform(0.15, 0.35))

    async def _chatter(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            chat_id, sender, _ = self.rng.choice(self.chats)
            response = await self._call(
                client,
                "message",
                "POST",
                f"/api/chats/{chat_id}/messages",
                headers=sender.headers | {"Idempotency-Key": uuid.uuid4().hex},
                json={"text": f"hello {uuid.uuid4().hex[:6]}"},
            )
            if response is not None and response.status_code == 201:
                self.accepted_messages[response.json()["id"]] = chat_id
            await asyncio.sleep(self.rng.uniform(0.15, 0.35))

    async def _seller(self, client: httpx.AsyncClient) -> None:
        """A new short auction every few seconds, so closes are always coming due during the faults."""
        while not self._stop.is_set():
            await self.create_listing(client, self.rng.choice(self.sellers), self.rng.randint(4, 9))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.rng.uniform(1.5, 3.0))

    async def run(self, client: httpx.AsyncClient, long_listings: int, long_duration: int) -> None:
        for i in range(long_listings):
            while await self.create_listing(client, self.sellers[i % len(self.sellers)], long_duration) is None:
                await asyncio.sleep(0.5)
        tasks = [self._bidder(client, b) for b in self.bidders]
        tasks += [self._commenter(client), self._chatter(client)]
        tasks.append(self._seller(client))
        await asyncio.gather(*tasks)


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


# --------------------------------------------------------------------------------------------- faults
@dataclass
class FaultLog:
    steps: list[tuple[str, float]] = field(default_factory=list)  # what, seconds it took to be back

    @contextlib.asynccontextmanager
    async def step(self, what: str) -> Any:
        log(what)
        started = time.monotonic()
        yield
        self.steps.append((what, time.monotonic() - started))


async def fault_round(
    topology: Topology,
    pg: PgNode,
    rabbit: RabbitNode,
    recorder: Recorder,
    faults: FaultLog,
    rng: random.Random,
    pause: float = 1.0,
    hard: bool = True,
) -> None:
    """One pass of every fault, one at a time, with load running throughout.

    ``hard``: RabbitMQ is killed (no clean shutdown) and PostgreSQL crashed (immediate stop); otherwise
    both are stopped cleanly. The soak alternates; the CI round is hard for PostgreSQL and RabbitMQ.
    """
    for name in (*BACKENDS, "gateway"):
        async with faults.step(f"kill -9 {name}, then start it again"):
            topology.kill(name)
            await asyncio.sleep(0.5)
            await topology.start(name)
        await asyncio.sleep(pause)
    async with faults.step("kill -9 the dramatiq worker while closes are due; back after 4 s"):
        topology.kill("worker")
        await asyncio.sleep(4)
        await topology.start("worker")
    await asyncio.sleep(pause)
    if hard:
        async with faults.step("kill -9 RabbitMQ, then start it again"):
            await asyncio.to_thread(rabbit.kill)
            await asyncio.to_thread(rabbit.start)
            await _wait_ready(topology)
    else:
        async with faults.step("restart RabbitMQ (stop, start)"):
            await asyncio.to_thread(rabbit.restart)
            await _wait_ready(topology)
    await asyncio.sleep(pause)
    mode = "immediate" if hard else "fast"
    what = "immediate stop = crash, WAL replay at start" if hard else "fast stop: clients cut, clean checkpoint"
    async with faults.step(f"restart PostgreSQL ({what})"):
        await asyncio.to_thread(pg.restart, mode)
        await _wait_ready(topology)
    await asyncio.sleep(pause)
    async with faults.step("inject duplicate, reordered deliveries"):
        injected = await inject_duplicates(rabbit.url, recorder, rng)
        faults.steps.append((f"  ({injected} copies published)", 0.0))
    await asyncio.sleep(pause)


async def _wait_ready(topology: Topology, timeout: float = 90) -> None:
    """Every HTTP process answers /readyz 200 again (database and broker reconnected)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        for name, port in topology.ports.items():
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"{name} did not become ready again:\n{topology.logs(name)}"
                await asyncio.sleep(0.2)
        assert topology.running("worker"), f"the worker died:\n{topology.logs('worker')}"


# -------------------------------------------------------------------------------------------- checking
@dataclass
class Snapshot:
    """What each service's database holds (read directly: the test's right, not a service's)."""

    auctions: dict[int, Any]
    bids: dict[int, Any]
    listings: dict[int, Any]
    comments: dict[int, Any]
    messages: dict[int, Any]
    members: list[Any]
    stats: dict[int, Any]
    unpublished: dict[str, int]
    outbox_ids: dict[str, set[str]]
    #: Events the recorder had seen before this snapshot was read: each one's outbox row was committed by then.
    seen_before: set[str] = field(default_factory=set)


async def _fetch(url: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def snapshot(topology: Topology, recorder: Recorder) -> Snapshot:
    seen_before = set(recorder.events)
    db = topology.database
    unpublished: dict[str, int] = {}
    outbox_ids: dict[str, set[str]] = {}
    for service in BACKENDS:
        rows = await _fetch(db(service), "SELECT event_id, published_at IS NULL AS pending FROM outbox")
        unpublished[service] = sum(1 for r in rows if r["pending"])
        outbox_ids[service] = {r["event_id"] for r in rows}
    return Snapshot(
        auctions={r["listing_id"]: r for r in await _fetch(db("bidding"), "SELECT * FROM auctions")},
        bids={r["id"]: r for r in await _fetch(db("bidding"), "SELECT * FROM bids")},
        listings={r["id"]: r for r in await _fetch(db("listings"), "SELECT * FROM listings")},
        comments={r["id"]: r for r in await _fetch(db("listings"), "SELECT id, listing_id FROM comments")},
        messages={
            r["id"]: r for r in await _fetch(db("chat"), "SELECT id, chat_id, sender_id, system_key FROM messages")
        },
        members=await _fetch(db("chat"), "SELECT * FROM chat_members"),
        stats={r["user_id"]: r for r in await _fetch(db("users"), "SELECT * FROM user_stats")},
        unpublished=unpublished,
        outbox_ids=outbox_ids,
        seen_before=seen_before,
    )


def problems(snap: Snapshot, recorder: Recorder, load: Load) -> Iterator[str]:
    """Every way the stored state disagrees with what was answered or published (empty = all held)."""
    # Every 201 is stored, as answered.
    for bid_id, (listing_id, bidder_id, cents) in load.accepted_bids.items():
        row = snap.bids.get(bid_id)
        if row is None or (row["listing_id"], row["bidder_id"], row["amount_cents"]) != (listing_id, bidder_id, cents):
            yield f"bid {bid_id} answered 201 but stored as {row and dict(row)}"
    for comment_id, listing_id in load.accepted_comments.items():
        if comment_id not in snap.comments or snap.comments[comment_id]["listing_id"] != listing_id:
            yield f"comment {comment_id} answered 201 but not stored"
    for message_id, chat_id in load.accepted_messages.items():
        if message_id not in snap.messages or snap.messages[message_id]["chat_id"] != chat_id:
            yield f"message {message_id} answered 201 but not stored"
    # Every outbox row went out and reached the exchange.
    for service, pending in snap.unpublished.items():
        if pending:
            yield f"{service}: {pending} outbox rows never published"
        missing = snap.outbox_ids[service] - set(recorder.events)
        if missing:
            yield f"{service}: {len(missing)} published outbox events never reached the exchange"
    # And nothing reached the exchange that no outbox holds (a phantom: an event about a change never stored).
    sourced = set().union(*snap.outbox_ids.values())
    for event_id in snap.seen_before - sourced:
        event = recorder.events[event_id]
        yield f"event {event_id} {event['type']} {json.dumps(event['data'])[:300]} is in no outbox"
    # Bids: strictly increasing per listing, the auction row agrees with its bids.
    by_listing: dict[int, list[Any]] = defaultdict(list)
    for bid in sorted(snap.bids.values(), key=lambda b: b["id"]):
        by_listing[bid["listing_id"]].append(bid)
    closed_events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in recorder.of("auction.closed"):
        closed_events[event["data"]["listing_id"]].append(event)
    bid_events = Counter(e["data"]["listing_id"] for e in recorder.of("bid.placed"))
    now = time.time()
    for listing_id, auction in snap.auctions.items():
        bids = by_listing.get(listing_id, [])
        amounts = [b["amount_cents"] for b in bids]
        if amounts != sorted(set(amounts)):
            yield f"listing {listing_id}: accepted bids not strictly increasing: {amounts}"
        top = bids[-1] if bids else None
        if auction["bid_count"] != len(bids):
            yield f"listing {listing_id}: bidding says {auction['bid_count']} bids, holds {len(bids)}"
        if bid_events[listing_id] != len(bids):
            yield f"listing {listing_id}: {bid_events[listing_id]} distinct bid.placed events for {len(bids)} bids"
        if top is not None and (auction["current_cents"], auction["leader_id"]) != (
            top["amount_cents"],
            top["bidder_id"],
        ):
            yield f"listing {listing_id}: auction row price/leader disagree with its highest bid"
        past_end = auction["ends_at"].timestamp() < now
        if past_end and auction["status"] != "closed":
            yield f"listing {listing_id}: past its end but still {auction['status']}"
        closes = closed_events.get(listing_id, [])
        if auction["status"] == "closed":
            if len(closes) != 1:
                yield f"listing {listing_id}: {len(closes)} auction.closed events (want exactly 1)"
            else:
                data = closes[0]["data"]
                want = (top["bidder_id"], f"{Decimal(top['amount_cents']) / 100:.2f}") if top else (None, None)
                if (data["winner_id"], data["final_price"]) != want:
                    yield f"listing {listing_id}: closed with {data['winner_id'], data['final_price']}, want {want}"
        # The listings service's projection agrees with bidding's record.
        shown = snap.listings.get(listing_id)
        if shown is None:
            yield f"listing {listing_id}: in bidding but not in listings"
            continue
        mine = (shown["bid_count"], shown["current_price"], shown["leader_id"])
        theirs = (auction["bid_count"], auction["current_cents"], auction["leader_id"])
        if mine != theirs:
            yield f"listing {listing_id}: projection (count, price, leader) {mine} != bidding's {theirs}"
        want_status = "closed" if auction["status"] == "closed" else "active"
        if shown["status"] != want_status or shown["winner_id"] != (
            auction["leader_id"] if want_status == "closed" else None
        ):
            yield f"listing {listing_id}: projection status/winner {shown['status'], shown['winner_id']} disagree"
    for listing_id in set(snap.listings) - set(snap.auctions):
        yield f"listing {listing_id}: in listings but bidding never learnt of it"
    # users' stats (a counter projection: a duplicate applied twice would show) agree with the sources.
    bids_by = Counter(b["bidder_id"] for b in snap.bids.values())
    won_by = Counter(a["leader_id"] for a in snap.auctions.values() if a["status"] == "closed" and a["leader_id"])
    listed_by = Counter(row["seller_id"] for row in snap.listings.values())
    for account in (*load.sellers, *load.bidders):
        stats = snap.stats.get(account.id)
        got = (stats["bids"], stats["won"], stats["listings"]) if stats else (0, 0, 0)
        want_stats = (bids_by[account.id], won_by[account.id], listed_by[account.id])
        if got != want_stats:
            yield f"user {account.id}: stats (bids, won, listings) {got} != {want_stats}"
    # chat: one winner message per sale, and every message to a user is counted unread (nobody reads).
    system = Counter(m["system_key"] for m in snap.messages.values() if m["system_key"])
    if any(n != 1 for n in system.values()):
        yield f"chat: duplicated winner messages {[(k, n) for k, n in system.items() if n != 1]}"
    if len(system) != sum(won_by.values()):
        yield f"chat: {len(system)} winner messages for {sum(won_by.values())} sales"


async def unread_problems(client: httpx.AsyncClient, snap: Snapshot, recorder: Recorder, load: Load) -> list[str]:
    """``GET /api/chats/unread`` of each user equals the messages others sent them, and the last
    ``chat.message_sent`` to them carried that same count (no message counted twice or missed)."""
    found = []
    chats_of: dict[int, set[int]] = defaultdict(set)
    for member in snap.members:
        chats_of[member["user_id"]].add(member["chat_id"])
    last_event: dict[int, tuple[int, int]] = {}
    for event in recorder.of("chat.message_sent"):
        data = event["data"]
        recipient, message_id = data["recipient_id"], data["message"]["id"]
        if message_id >= last_event.get(recipient, (0, 0))[0]:
            last_event[recipient] = (message_id, data["recipient_unread"])
    for account in (*load.sellers, *load.bidders):
        stored = sum(
            1 for m in snap.messages.values() if m["chat_id"] in chats_of[account.id] and m["sender_id"] != account.id
        )
        shown = (await client.get("/api/chats/unread", headers=account.headers)).json()["count"]
        event_count = last_event.get(account.id, (0, 0))[1]
        if not (stored == shown == event_count):
            found.append(f"user {account.id}: unread stored {stored}, API {shown}, last event {event_count}")
    return found


async def dead_letters(amqp_url: str) -> dict[str, int]:
    """Messages in each consuming service's dead-letter queue (an event given up on: must be none)."""
    counts = {}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for service in BACKENDS:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(f"{service}.dlq", passive=True)
                counts[service] = int(queue.declaration_result.message_count or 0)
            except aio_pika.exceptions.ChannelClosed:
                counts[service] = 0  # the service declares no consumer queue
    return counts


async def settle(
    topology: Topology, recorder: Recorder, load: Load, client: httpx.AsyncClient, timeout: float = 90
) -> Snapshot:
    """Close what is still open (the sellers end them now), then wait until the checks stop changing."""
    for listing_id, (ends_at, seller_id) in list(load.listings.items()):
        if ends_at > time.time():
            seller = next(s for s in load.sellers if s.id == seller_id)
            await load._call(client, "close", "POST", f"/api/listings/{listing_id}/close", headers=seller.headers)
    deadline = time.monotonic() + timeout
    previous: Snapshot | None = None
    while True:
        snap = await snapshot(topology, recorder)
        left = list(problems(snap, recorder, load))
        # Quiet: nothing wrong, and no service recorded an event since the last look (late winner messages).
        quiet = previous is not None and previous.outbox_ids == snap.outbox_ids
        if (not left and quiet) or time.monotonic() > deadline:
            return snap
        previous = snap
        await asyncio.sleep(1.0)


def _agrees(shown: Any, auction: Any) -> bool:
    if shown is None:
        return False
    status = "closed" if auction["status"] == "closed" else "active"
    return (shown["bid_count"], shown["current_price"], shown["leader_id"], shown["status"]) == (
        auction["bid_count"],
        auction["current_cents"],
        auction["leader_id"],
        status,
    )


@dataclass
class Report:
    seconds: float
    load: Load
    recorder: Recorder
    snap: Snapshot
    faults: FaultLog
    found: list[str]
    tracebacks: dict[str, int]
    dead_letters: dict[str, int]

    def _unsourced(self) -> Counter[str]:
        """Events seen on the exchange (before the final snapshot) whose id is in no service's outbox, by type."""
        sourced = set().union(*self.snap.outbox_ids.values())
        return Counter(self.recorder.events[i]["type"] for i in self.snap.seen_before - sourced)

    def _fault_lines(self) -> list[str]:
        """Each kind of fault once: how many times, and how long until everything was ready again."""
        took: dict[str, list[float]] = defaultdict(list)
        for what, seconds in self.faults.steps:
            took[what].append(seconds)
        out = []
        for what, times in took.items():
            if what.startswith("  ("):
                out.append(f"fault: {what.strip()} x {len(times)}")
            elif len(times) == 1:
                out.append(f"fault: {what} ({times[0]:.1f} s)")
            else:
                out.append(f"fault: {what} x {len(times)} ({min(times):.1f}-{max(times):.1f} s)")
        return out

    def lines(self) -> list[str]:
        snap, load, rec = self.snap, self.load, self.recorder
        closed = [a for a in snap.auctions.values() if a["status"] == "closed"]
        by = Counter(a["closed_by"] for a in closed)
        duplicates = sum(n - 1 for n in rec.deliveries.values() if n > 1)
        out = [
            f"load ran {self.seconds:.0f} s through the gateway",
            *self._fault_lines(),
            f"answers: {dict(sorted(load.statuses.items()))}",
            f"transport errors (process down): {dict(sorted(load.errors.items()))}",
            f"5xx answers: {len(load.server_errors)}",
            f"bids answered 201: {len(load.accepted_bids)}; in bidding's database: "
            f"{sum(1 for b in load.accepted_bids if b in snap.bids)}; bids stored in all: {len(snap.bids)}",
            f"comments answered 201: {len(load.accepted_comments)}; in listings' database: "
            f"{sum(1 for c in load.accepted_comments if c in snap.comments)}",
            f"chat messages answered 201: {len(load.accepted_messages)}; in chat's database: "
            f"{sum(1 for m in load.accepted_messages if m in snap.messages)}; winner messages: "
            f"{sum(1 for m in snap.messages.values() if m['system_key'])}",
            f"outbox rows: {sum(len(v) for v in snap.outbox_ids.values())}, "
            f"unpublished: {sum(snap.unpublished.values())}",
            f"events on the exchange: {len(rec.events)} distinct, {sum(rec.deliveries.values())} deliveries "
            f"to the recorder ({duplicates} duplicates); not from any outbox: {dict(self._unsourced())}",
            f"auctions: {len(snap.auctions)}, closed: {len(closed)} (by {dict(by)}), auction.closed events: "
            f"{len(rec.of('auction.closed'))}",
            f"listing projections agreeing with bidding (bid count, price, leader, status): "
            f"{sum(1 for i, a in snap.auctions.items() if _agrees(snap.listings.get(i), a))}/{len(snap.auctions)}",
            f"dead-lettered events: {self.dead_letters}",
            f"tracebacks in the logs: {self.tracebacks}",
            f"problems: {len(self.found)}",
            *(f"  - {p}" for p in self.found[:40]),
        ]
        return out


async def run_scenario(
    pg: PgNode,
    rabbit: RabbitNode,
    recorder: Recorder,
    topology: Topology,
    *,
    rounds: int = 1,
    duration: float | None = None,
    seed: int = 7,
    on_round: Callable[[int], Awaitable[None]] | None = None,
) -> Report:
    """Load through the gateway while the faults run (``rounds`` passes, or until ``duration`` s), then settle."""
    rng = random.Random(seed)
    load = Load(topology.base_url, rng)
    faults = FaultLog()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=topology.base_url, timeout=20, limits=limits) as client:
        await load.setup(client)
        started = time.monotonic()
        runner = asyncio.create_task(load.run(client, long_listings=6, long_duration=3600))
        await asyncio.sleep(3)
        done = 0
        while True:
            await fault_round(topology, pg, rabbit, recorder, faults, rng, hard=done % 2 == 0)
            done += 1
            if on_round is not None:
                await on_round(done)
            if duration is None and done >= rounds:
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
        await asyncio.sleep(2)
        load.stop()
        await asyncio.wait_for(runner, timeout=60)
        seconds = time.monotonic() - started
        log("load stopped; settling")
        snap = await settle(topology, recorder, load, client)
        found = list(problems(snap, recorder, load))
        found += await unread_problems(client, snap, recorder, load)
        found += load.server_errors[:20]
        dead = await dead_letters(rabbit.url)
        found += [f"{service}: {n} events dead-lettered" for service, n in dead.items() if n]
    return Report(seconds, load, recorder, snap, faults, found, topology.log_count("Traceback"), dead)
