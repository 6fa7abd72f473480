"""The /ws protocol of the contract, against a real gateway on a loopback port."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared.events import Envelope
from tests.gateway.conftest import RunningGateway
from tests.support.tokens import TestKeys


async def recv(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


def bid_placed(listing_id: int, amount: str, bidder: int, previous: int | None) -> Envelope:
    return Envelope(
        type="bid.placed",
        producer="bidding",
        data={
            "listing_id": listing_id,
            "bid_id": 1,
            "amount": amount,
            "bidder_id": bidder,
            "bidder_username": f"user{bidder}",
            "bid_count": 1,
            "ends_at": "2030-01-01T00:00:00.000Z",
            "placed_at": "2029-12-31T23:59:00.000Z",
            "previous_leader_id": previous,
            "seller_id": 99,
        },
    )


async def test_auth_subscribe_ping_and_private_topics(gateway: RunningGateway, test_keys: TestKeys) -> None:
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        await ws.send(json.dumps({"type": "subscribe", "topic": "user.7"}))
        assert (await recv(ws))["code"] == "forbidden_topic"
        await ws.send(json.dumps({"type": "auth", "token": test_keys.token(7, lifetime=-30)}))
        assert (await recv(ws))["code"] == "invalid_token"
        await ws.send(json.dumps({"type": "auth", "token": test_keys.token(7)}))
        assert await recv(ws) == {"type": "authed", "user_id": 7}
        await ws.send(json.dumps({"type": "subscribe", "topic": "user.8"}))
        assert (await recv(ws))["code"] == "forbidden_topic"
        for topic in ("listings", "listing.42"):
            await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
            assert await recv(ws) == {"type": "subscribed", "topic": topic}
        await ws.send(json.dumps({"type": "unsubscribe", "topic": "listing.42"}))
        assert await recv(ws) == {"type": "unsubscribed", "topic": "listing.42"}


async def test_events_reach_exactly_the_subscribers(gateway: RunningGateway, test_keys: TestKeys) -> None:
    async with (
        websockets.connect(gateway.ws_url) as watcher,
        websockets.connect(gateway.ws_url) as outbid,
        websockets.connect(gateway.ws_url) as stranger,
    ):
        await watcher.send(json.dumps({"type": "subscribe", "topic": "listing.5"}))
        await recv(watcher)
        await outbid.send(json.dumps({"type": "auth", "token": test_keys.token(3)}))
        await recv(outbid)
        await stranger.send(json.dumps({"type": "auth", "token": test_keys.token(4)}))
        await recv(stranger)
        await stranger.send(json.dumps({"type": "subscribe", "topic": "listing.6"}))
        await recv(stranger)
        event = bid_placed(5, "12.50", bidder=2, previous=3)
        await gateway.bus.publish(event)
        frame = await recv(watcher)
        assert frame["type"] == "event" and frame["topic"] == "listing.5" and frame["event"] == "bid.placed"
        assert frame["id"] == str(event.id) and frame["data"]["amount"] == "12.50"
        assert "previous_leader_id" not in frame["data"]
        private = await recv(outbid)
        assert private["topic"] == "user.3" and private["event"] == "bid.outbid"
        assert private["data"]["listing_id"] == 5 and private["data"]["amount"] == "12.50"
        with pytest.raises(TimeoutError):
            await recv(stranger, timeout=0.5)


async def test_bad_frames_get_errors_and_the_socket_stays_open(gateway: RunningGateway) -> None:
    async with websockets.connect(gateway.ws_url, max_size=None) as ws:
        for frame, code in [
            ("not json", "bad_json"),
            ("[1, 2]", "bad_frame"),
            (json.dumps({"no": "type"}), "bad_frame"),
            (json.dumps({"type": "launch"}), "unknown_type"),
            (json.dumps({"type": "subscribe", "topic": "listing.abc"}), "unknown_topic"),
            (json.dumps({"type": "subscribe"}), "unknown_topic"),
            (json.dumps({"type": "auth"}), "invalid_token"),
            (json.dumps({"type": "auth", "token": "x" * 9000}), "invalid_token"),
            (json.dumps({"type": "subscribe", "topic": "x" * 20000}), "frame_too_large"),
        ]:
            await ws.send(frame)
            assert (await recv(ws))["code"] == code, frame[:40]
        await ws.send(b"\x00\x01binary")
        assert (await recv(ws))["code"] == "bad_frame"
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}


async def test_a_flood_is_throttled_then_closed(gateway_factory: Any) -> None:
    async with gateway_factory(WS_FRAMES_PER_SECOND=5, WS_FRAMES_BURST=10) as gw, websockets.connect(gw.ws_url) as ws:
        for _ in range(200):
            await ws.send(json.dumps({"type": "ping"}))
        kinds: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                kinds.append((await recv(ws))["type"])
        assert "pong" in kinds and "error" in kinds
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_foreign_origin_is_refused(gateway_factory: Any) -> None:
    async with gateway_factory(GATEWAY_ALLOWED_ORIGINS="https://auction.example") as gw:
        with pytest.raises(InvalidStatus):
            async with websockets.connect(gw.ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        async with websockets.connect(gw.ws_url, origin="https://auction.example") as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}


async def test_an_event_from_rabbitmq_reaches_a_socket(gateway_factory: Any) -> None:
    async with gateway_factory(real_bus=True) as gw, websockets.connect(gw.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": "listings"}))
        await recv(ws)
        await gw.bus.publish(bid_placed(11, "3.00", bidder=1, previous=None))
        frame = await recv(ws, timeout=10)
        assert frame["topic"] == "listings" and frame["data"]["listing_id"] == 11


async def test_a_backend_that_is_down_is_a_503_problem_and_big_bodies_413(gateway_factory: Any) -> None:
    async with gateway_factory(MAX_BODY_BYTES=1000) as gw, httpx.AsyncClient(base_url=gw.base_url) as http:
        r = await http.get("/api/listings")
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "service_unavailable"
        r = await http.post("/api/listings", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
        r = await http.get("/api/no-such-thing")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        page = await http.get("/listings/5")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]


async def test_a_reconnecting_client_gets_what_it_missed_or_is_told_to_refetch(gateway: RunningGateway) -> None:
    events = [bid_placed(9, f"{10 + i}.00", bidder=i + 1, previous=None) for i in range(5)]
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": "listing.9"}))
        await recv(ws)
        await gateway.bus.publish(events[0])
        last_seen = (await recv(ws))["id"]
    for event in events[1:]:  # published while the client is away
        await gateway.bus.publish(event)
    await asyncio.sleep(0.3)
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": "listing.9", "since": last_seen}))
        assert await recv(ws) == {"type": "subscribed", "topic": "listing.9", "replayed": 4}
        replayed = [await recv(ws) for _ in range(4)]
        assert [f["id"] for f in replayed] == [str(e.id) for e in events[1:]]
        assert [f["data"]["amount"] for f in replayed] == ["11.00", "12.00", "13.00", "14.00"]
        # Live frames follow the replay, once each.
        live = bid_placed(9, "20.00", bidder=9, previous=5)
        await gateway.bus.publish(live)
        assert (await recv(ws))["id"] == str(live.id)
        await ws.send(json.dumps({"type": "subscribe", "topic": "listing.10", "since": "not-a-known-event"}))
        assert await recv(ws) == {"type": "subscribed", "topic": "listing.10", "resync": True}


async def test_a_quiet_topic_tells_its_position_and_the_private_topic_resumes_too(
    gateway: RunningGateway, test_keys: TestKeys
) -> None:
    first = bid_placed(21, "5.00", bidder=4, previous=3)  # also tells user 3 they were outbid
    await gateway.bus.publish(first)
    await asyncio.sleep(0.3)
    async with websockets.connect(gateway.ws_url) as ws:
        # The contract's plain subscribe gets the contract's plain answer.
        await ws.send(json.dumps({"type": "subscribe", "topic": "listing.21"}))
        assert await recv(ws) == {"type": "subscribed", "topic": "listing.21"}
        await ws.send(json.dumps({"type": "unsubscribe", "topic": "listing.21"}))
        assert (await recv(ws))["type"] == "unsubscribed"
        # With since: null, a topic that already carried something says where it stands, so the client can resume.
        await ws.send(json.dumps({"type": "subscribe", "topic": "listing.21", "since": None}))
        assert await recv(ws) == {"type": "subscribed", "topic": "listing.21", "last": str(first.id)}
        await ws.send(json.dumps({"type": "auth", "token": test_keys.token(3), "since": None}))
        authed = await recv(ws)
        assert authed["type"] == "authed" and authed["user_id"] == 3
        private_position = authed["last"]
    second = bid_placed(21, "6.00", bidder=5, previous=3)
    await gateway.bus.publish(second)  # while user 3 is away: a new public frame and a new outbid notice
    await asyncio.sleep(0.3)
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": test_keys.token(3), "since": private_position}))
        assert await recv(ws) == {"type": "authed", "user_id": 3, "replayed": 1}
        missed = await recv(ws)
        assert missed["topic"] == "user.3" and missed["event"] == "bid.outbid" and missed["data"]["amount"] == "6.00"
        await ws.send(json.dumps({"type": "subscribe", "topic": "listing.21", "since": str(first.id)}))
        assert await recv(ws) == {"type": "subscribed", "topic": "listing.21", "replayed": 1}
        assert (await recv(ws))["id"] == str(second.id)
        await ws.send(json.dumps({"type": "auth", "token": test_keys.token(3), "since": "forgotten"}))
        assert await recv(ws) == {"type": "authed", "user_id": 3, "resync": True}
