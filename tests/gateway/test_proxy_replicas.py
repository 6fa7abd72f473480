"""The gateway spreads a service's requests over its replicas and passes over one that refuses connections.

Real uvicorn servers on loopback ports (and a port nobody listens on, which refuses), no mocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from services.gateway.proxy import REPLICA_BACKOFF_SECONDS, Replicas, ReplicaTransport, Upstreams, replica_urls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replica_app(name: str) -> FastAPI:
    app = FastAPI()

    @app.api_route("/echo", methods=["GET", "POST"])
    async def echo(request: Request) -> dict[str, str]:
        return {"replica": name, "body": (await request.body()).decode(), "host": request.headers["host"]}

    return app


@contextlib.asynccontextmanager
async def replica(name: str) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(_replica_app(name), host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def test_replica_urls_are_comma_separated() -> None:
    assert replica_urls("http://a:1, http://b:2/") == ["http://a:1", "http://b:2"]
    assert replica_urls("http://a:1") == ["http://a:1"]
    with pytest.raises(ValueError):
        replica_urls(" , ")


async def test_requests_take_the_replicas_in_turn() -> None:
    async with replica("a") as a, replica("b") as b:
        upstreams = Upstreams({"bidding": f"{a},{b}"}, timeout=5)
        try:
            seen = Counter()
            for _ in range(20):
                r = await upstreams.client_for("bidding").get("/echo")
                seen[r.json()["replica"]] += 1
                # The Host header names the replica that was actually asked.
                assert r.json()["host"] == (a if r.json()["replica"] == "a" else b).removeprefix("http://")
        finally:
            await upstreams.close()
    assert seen == {"a": 10, "b": 10}


async def test_a_refusing_replica_is_skipped_even_for_a_post() -> None:
    refusing = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: the connection is refused
    async with replica("alive") as alive:
        transport = ReplicaTransport(Replicas([refusing, alive]), httpx.Limits())
        async with httpx.AsyncClient(transport=transport, base_url=refusing, timeout=5) as client:
            for i in range(6):
                r = await client.post("/echo", content=f"bid {i}".encode())
                assert r.status_code == 200
                assert r.json() == {"replica": "alive", "body": f"bid {i}", "host": alive.removeprefix("http://")}
            # Refused once, then passed over for the back-off: it sits at the end of the order.
            assert transport.replicas.order()[0] == 1 and transport.replicas.order()[0] == 1
            await asyncio.sleep(REPLICA_BACKOFF_SECONDS + 0.1)
            # Back-off over: it is offered again (and refused again, and passed over longer).
            assert 0 in {transport.replicas.order()[0], transport.replicas.order()[0]}


async def test_every_replica_refusing_is_a_connect_error() -> None:
    ports = [_free_port(), _free_port()]
    transport = ReplicaTransport(Replicas([f"http://127.0.0.1:{p}" for p in ports]), httpx.Limits())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/echo")


async def test_a_replica_that_comes_back_is_used_again() -> None:
    async with replica("a") as a:
        port = _free_port()
        transport = ReplicaTransport(Replicas([a, f"http://127.0.0.1:{port}"]), httpx.Limits())
        async with httpx.AsyncClient(transport=transport, base_url=a, timeout=5) as client:
            assert {(await client.get("/echo")).json()["replica"] for _ in range(4)} == {"a"}
            app = _replica_app("b")
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
            task = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            try:
                await asyncio.sleep(REPLICA_BACKOFF_SECONDS * 2 + 0.1)
                replicas = Counter([(await client.get("/echo")).json()["replica"] for _ in range(10)])
                assert replicas["b"] >= 4, replicas
            finally:
                server.should_exit = True
                await task
