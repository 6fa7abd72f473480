"""The fan-out's metrics at /metrics: open sockets, subscriptions, events in, frames out, drops, lag."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

import httpx
import websockets

from tests.gateway.conftest import RunningGateway
from tests.gateway.test_ws import bid_placed, recv


async def metrics(gateway: RunningGateway) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        text = (await http.get("/metrics")).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gateway_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def test_sockets_subscriptions_events_frames_and_lag_are_counted(gateway: RunningGateway) -> None:
    before = await metrics(gateway)
    async with websockets.connect(gateway.ws_url) as one, websockets.connect(gateway.ws_url) as two:
        for ws, topics in ((one, ["listing.31", "listings"]), (two, ["listing.31"])):
            for topic in topics:
                await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
                await recv(ws)
        during = await metrics(gateway)
        assert delta(during, before, "gateway_open_sockets") == 2
        assert delta(during, before, "gateway_subscriptions") == 3
        await gateway.bus.publish(bid_placed(31, "2.00", bidder=1, previous=None))
        for ws in (one, one, two):  # listing.31 and listings on one, listing.31 on two
            assert (await recv(ws))["event"] == "bid.placed"
        after = await metrics(gateway)
        assert delta(after, before, 'gateway_events_in_total{type="bid.placed"}') == 1
        assert delta(after, before, "gateway_frames_out_total") == 3
        assert delta(after, before, "gateway_event_lag_seconds_count") == 1
        assert delta(after, before, "gateway_event_lag_seconds_sum") < 5
    await asyncio.sleep(0.2)
    closed = await metrics(gateway)
    assert delta(closed, before, "gateway_open_sockets") == 0
    assert delta(closed, before, "gateway_subscriptions") == 0


async def test_a_socket_that_never_reads_is_dropped_and_counted(gateway_factory: Any) -> None:
    async with gateway_factory(WS_QUEUE_SIZE=8) as gw, websockets.connect(gw.ws_url) as reader:
        await reader.send(json.dumps({"type": "subscribe", "topic": "listing.32"}))
        await recv(reader)
        # A raw client with a tiny receive buffer that subscribes and then never reads again. (Its calls go
        # through the loop: the gateway runs in this very loop.)
        loop = asyncio.get_running_loop()
        port = int(gw.base_url.rsplit(":", 1)[1])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.setblocking(False)
        await loop.sock_connect(stalled, ("127.0.0.1", port))
        await loop.sock_sendall(
            stalled,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += await asyncio.wait_for(loop.sock_recv(stalled, 4096), 5)
        assert answer.startswith(b"HTTP/1.1 101")
        payload = json.dumps({"type": "subscribe", "topic": "listing.32"}).encode()
        frame = struct.pack("!BB", 0x81, 0x80 | len(payload)) + b"\0\0\0\0" + payload  # a zero mask
        await loop.sock_sendall(stalled, frame)
        assert b"subscribed" in await asyncio.wait_for(loop.sock_recv(stalled, 4096), 5)
        before = await metrics(gw)
        # Big frames fill the kernel's buffers (up to a few MiB on loopback) and then the transport's soon.
        padding = "x" * 60_000
        sent = 0
        while delta(await metrics(gw), before, "gateway_dropped_slow_sockets_total") < 1:
            assert sent < 1000, "the stalled socket was never dropped"
            event = bid_placed(32, f"{sent + 1}.00", bidder=1, previous=None)
            event.data["bidder_username"] = padding
            await gw.bus.publish(event)
            sent += 1
            assert (await recv(reader))["id"] == str(event.id)  # the reader is never held up
        stalled.close()
        after = await metrics(gw)
        assert delta(after, before, "gateway_open_sockets") == -1
        assert delta(after, before, "gateway_subscriptions") == -1


async def test_the_server_pings_and_reaps_a_socket_that_never_answers(gateway_factory: Any) -> None:
    pings = {"ws_ping_interval": 0.3, "ws_ping_timeout": 0.3}
    async with gateway_factory(server_options=pings) as gw, websockets.connect(gw.ws_url) as alive:
        loop = asyncio.get_running_loop()
        port = int(gw.base_url.rsplit(":", 1)[1])
        dead = socket.socket()  # a peer that vanished without closing: it answers nothing, pings included
        dead.setblocking(False)
        await loop.sock_connect(dead, ("127.0.0.1", port))
        await loop.sock_sendall(
            dead,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        hub = gw.app.state.hub
        for _ in range(20):
            await asyncio.sleep(0.05)
            if hub.connections == 2:
                break
        assert hub.connections == 2
        await asyncio.sleep(2)  # several ping intervals: the live client (websockets) answers each ping
        assert hub.connections == 1
        await alive.send(json.dumps({"type": "ping"}))
        assert await recv(alive) == {"type": "pong"}
        dead.close()
