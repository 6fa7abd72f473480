"""The auction formats through the gateway, in both run modes: proxy bids, reserve, buy-it-now and the
private alerts (ending soon, won, sold, unsold), over HTTP and /ws only."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets

from tests.e2e.conftest import Stack
from tests.e2e.test_api_flow import create_listing, new_user, receive_until


def _listing_when(http: httpx.Client, lid: int, ready: Any, within: float = 10) -> dict[str, Any]:
    """The listing once its projection has caught up (it follows the events a moment after the sockets)."""
    deadline = time.monotonic() + within
    while True:
        listing: dict[str, Any] = http.get(f"/api/listings/{lid}").json()
        if ready(listing) or time.monotonic() > deadline:
            return listing
        time.sleep(0.1)


def _events(frames: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [m for m in frames if m.get("event") == name]


def test_proxy_bids_reserve_and_alerts_live(any_stack: Stack) -> None:
    http = httpx.Client(base_url=any_stack.base_url, timeout=20)
    seller, _, _ = new_user(http)
    alice, alice_user, alice_token = new_user(http)
    bob, bob_user, bob_token = new_user(http)
    listing = create_listing(
        http, seller, duration=7, start_price="10", reserve_price="40", buy_now_price="90", bid_increment="1"
    )
    lid = listing["id"]
    seen_by_bob = http.get(f"/api/listings/{lid}", headers=bob).json()
    assert (seen_by_bob["reserve_met"], seen_by_bob["buy_now_price"], seen_by_bob.get("reserve_price")) == (
        False,
        "90.00",
        None,
    )

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            websockets.connect(any_stack.ws_url) as watcher,
            websockets.connect(any_stack.ws_url) as alice_ws,
            websockets.connect(any_stack.ws_url) as bob_ws,
        ):
            await watcher.send(json.dumps({"type": "subscribe", "topic": f"listing.{lid}"}))
            assert json.loads(await watcher.recv())["type"] == "subscribed"
            for ws, token in ((alice_ws, alice_token), (bob_ws, bob_token)):
                await ws.send(json.dumps({"type": "auth", "token": token}))
                assert json.loads(await ws.recv())["type"] == "authed"
            post = http.post
            first = await asyncio.to_thread(post, f"/api/listings/{lid}/bids", headers=alice, json={"max_amount": "45"})
            assert first.status_code == 201, first.text
            assert (first.json()["current_price"], first.json()["reserve_met"], first.json()["max_amount"]) == (
                "40.00",
                True,
                "45.00",
            )
            second = await asyncio.to_thread(post, f"/api/listings/{lid}/bids", headers=bob, json={"amount": "41"})
            assert second.status_code == 201, second.text
            assert (second.json()["leading"], second.json()["current_price"]) == (False, "42.00")
            watched = await receive_until(watcher, lambda s: len(_events(s, "bid.placed")) == 3)
            bob_frames = await receive_until(bob_ws, lambda s: bool(_events(s, "bid.outbid")))
            alice_frames = await receive_until(
                alice_ws, lambda s: bool(_events(s, "auction.ending_soon")) and bool(_events(s, "auction.won"))
            )
            watched += await receive_until(watcher, lambda s: bool(_events(s, "auction.closed")))
            return watched, alice_frames, bob_frames

    watched, alice_frames, bob_frames = asyncio.run(run())
    placed = _events(watched, "bid.placed")
    assert [(m["data"]["amount"], m["data"]["bidder_id"], m["data"]["automatic"]) for m in placed] == [
        ("40.00", alice_user["id"], False),
        ("41.00", bob_user["id"], False),
        ("42.00", alice_user["id"], True),
    ]
    assert [m["data"]["reserve_met"] for m in placed] == [True, True, True]
    assert "45.00" not in json.dumps(watched + bob_frames)  # Alice's maximum stays hers
    assert _events(bob_frames, "bid.outbid")[0]["data"]["amount"] == "42.00"
    alert = _events(alice_frames, "auction.ending_soon")[0]["data"]
    assert alert["listing_id"] == lid and "recipient_ids" not in alert
    closed = _events(watched, "auction.closed")[0]["data"]
    assert (closed["winner_id"], closed["final_price"], closed["outcome"]) == (alice_user["id"], "42.00", "sold")
    shown = _listing_when(http, lid, lambda listing: listing["winner"] is not None)
    assert (shown["status"], shown["winner"]["id"], shown["current_price"], shown["bid_count"]) == (
        "closed",
        alice_user["id"],
        "42.00",
        3,
    )


def test_buy_now_and_an_unsold_close(any_stack: Stack) -> None:
    http = httpx.Client(base_url=any_stack.base_url, timeout=20)
    seller, _, seller_token = new_user(http)
    buyer, buyer_user, _ = new_user(http)
    bidder, _, _ = new_user(http)
    offer = create_listing(http, seller, duration=600, start_price="10", buy_now_price="25")
    reserved = create_listing(http, seller, duration=600, start_price="10", reserve_price="100")
    lid, rid = offer["id"], reserved["id"]

    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(any_stack.ws_url) as seller_ws:
            await seller_ws.send(json.dumps({"type": "auth", "token": seller_token}))
            assert json.loads(await seller_ws.recv())["type"] == "authed"
            bought = await asyncio.to_thread(http.post, f"/api/listings/{lid}/buy", headers=buyer)
            assert bought.status_code == 200, bought.text
            again = await asyncio.to_thread(http.post, f"/api/listings/{lid}/buy", headers=bidder)
            assert again.status_code == 409 and again.json()["code"] == "buy_now_unavailable"
            bid = await asyncio.to_thread(http.post, f"/api/listings/{rid}/bids", headers=bidder, json={"amount": "20"})
            assert bid.status_code == 201
            none = await asyncio.to_thread(http.post, f"/api/listings/{rid}/buy", headers=buyer)
            assert none.status_code == 409 and none.json()["code"] == "buy_now_unavailable"
            closed = await asyncio.to_thread(http.post, f"/api/listings/{rid}/close", headers=seller)
            assert closed.status_code == 200 and closed.json()["winner_id"] is None
            return await receive_until(
                seller_ws, lambda s: bool(_events(s, "auction.sold")) and bool(_events(s, "auction.unsold"))
            )

    frames = asyncio.run(run())
    assert _events(frames, "auction.sold")[0]["data"]["winner_id"] == buyer_user["id"]
    assert _events(frames, "auction.unsold")[0]["data"]["listing_id"] == rid

    sold = _listing_when(http, lid, lambda listing: listing["status"] == "closed")
    unsold = _listing_when(http, rid, lambda listing: listing["status"] == "closed")
    assert (sold["winner"]["id"], sold["current_price"], sold["buy_now_price"]) == (buyer_user["id"], "25.00", None)
    assert (unsold["winner"], unsold["reserve_met"]) == (None, False)
