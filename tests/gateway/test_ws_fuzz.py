"""Hostile /ws frames: random JSON, huge, binary, invalid UTF-8, deeply nested, floods.

Each gets an error frame or a clean close of that socket only; the server keeps serving, and a
bystander socket keeps receiving its events throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.gateway.conftest import RunningGateway
from tests.gateway.test_ws import bid_placed, recv

ANSWERS = {"error", "pong", "subscribed", "unsubscribed", "authed"}


@pytest.fixture
async def fuzz_gateway(gateway_factory: Any) -> AsyncIterator[RunningGateway]:
    # A generous frame rate: these tests are about content, the flood test about rate.
    async with gateway_factory(WS_FRAMES_PER_SECOND=100_000, WS_FLOOD_STRIKES=100_000) as running:
        yield running


async def bystander_still_served(gateway: RunningGateway, listing: int = 1) -> None:
    """A fresh socket subscribes, an event is published, and the socket gets it; the HTTP side answers."""
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": f"listing.{listing}"}))
        assert (await recv(ws))["type"] == "subscribed"
        event = bid_placed(listing, "1.00", bidder=1, previous=None)
        await gateway.bus.publish(event)
        assert (await recv(ws))["id"] == str(event.id)
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
anything = json_values | st.text(max_size=40)
protocol_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["auth", "subscribe", "unsubscribe", "ping"]) | st.text(max_size=10)},
    optional={
        "topic": st.sampled_from(["listings", "listing.1", "listing.99999999999999999999", "user.1", "user.x"])
        | anything,
        "since": anything,
        "token": anything,
    },
)
frames = (
    json_values.map(json.dumps)
    | protocol_like.map(json.dumps)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=15))
async def test_random_frames_get_one_answer_each_and_the_socket_stays_usable(
    fuzz_gateway: RunningGateway, batch: list[str]
) -> None:
    async with websockets.connect(fuzz_gateway.ws_url) as ws:
        for frame in batch:
            await ws.send(frame)
            answer = await recv(ws)
            assert answer["type"] in ANSWERS, (frame, answer)
            if answer["type"] == "error":
                assert isinstance(answer["code"], str) and isinstance(answer["message"], str)
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}


async def test_nesting_too_deep_for_the_decoder_is_bad_json(fuzz_gateway: RunningGateway) -> None:
    async with websockets.connect(fuzz_gateway.ws_url) as ws:
        for frame in ["[" * 10_000, "[" * 5000 + "]" * 5000, '{"a":' * 2500 + "1" + "}" * 2500]:
            await ws.send(frame)
            assert (await recv(ws))["code"] == "bad_json"
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
    await bystander_still_served(fuzz_gateway)


async def test_big_frames_get_an_error_and_huge_ones_close_1009(fuzz_gateway: RunningGateway) -> None:
    limit = 16 * 1024  # ws_max_frame_bytes' default; the transport refuses above 64 KiB
    async with websockets.connect(fuzz_gateway.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * limit}))
        assert (await recv(ws))["code"] == "frame_too_large"
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        await ws.send("x" * (1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with websockets.connect(fuzz_gateway.ws_url, max_size=None) as ws:
        await ws.send(b"\x00" * (1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await bystander_still_served(fuzz_gateway)


async def test_binary_frames_get_an_error(fuzz_gateway: RunningGateway) -> None:
    async with websockets.connect(fuzz_gateway.ws_url) as ws:
        for payload in [b"", b"\x00\x01binary", json.dumps({"type": "ping"}).encode()]:
            await ws.send(payload)
            assert (await recv(ws))["code"] == "bad_frame"
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}


async def test_invalid_utf8_in_a_text_frame_closes_1007(fuzz_gateway: RunningGateway) -> None:
    async with websockets.connect(fuzz_gateway.ws_url) as ws:
        await ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    await bystander_still_served(fuzz_gateway)


async def test_a_flood_is_refused_then_closed_while_a_bystander_keeps_its_events(gateway_factory: Any) -> None:
    async with (
        gateway_factory(WS_FRAMES_PER_SECOND=20, WS_FRAMES_BURST=40, WS_FLOOD_STRIKES=50) as gw,
        websockets.connect(gw.ws_url) as bystander,
        websockets.connect(gw.ws_url) as flooder,
    ):
        await bystander.send(json.dumps({"type": "subscribe", "topic": "listing.3"}))
        assert (await recv(bystander))["type"] == "subscribed"
        # A normal client's pace is never limited: a handful of frames, each answered.
        for _ in range(10):
            await flooder.send(json.dumps({"type": "ping"}))
            assert await recv(flooder) == {"type": "pong"}

        async def flood() -> None:
            with contextlib.suppress(ConnectionClosed):  # the close may come before or after the last send
                for i in range(5000):
                    await flooder.send(b"\x01" if i % 2 else "garbage")

        flooding = asyncio.create_task(flood())
        kinds: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                kinds.append((await recv(flooder))["code"])
        assert "rate_limited" in kinds
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await flooding
        event = bid_placed(3, "5.00", bidder=1, previous=None)
        await gw.bus.publish(event)
        assert (await recv(bystander))["id"] == str(event.id)
        await bystander_still_served(gw)
