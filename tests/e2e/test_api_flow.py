"""The main paths through the public surface only (gateway HTTP + /ws), in both run modes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import websockets

from tests.e2e.conftest import Stack
from tests.support import images


def new_user(http: httpx.Client) -> tuple[dict[str, str], dict[str, Any], str]:
    name = f"e2e{uuid.uuid4().hex[:8]}"
    r = http.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@example.org", "password": "e2e-pass-123"}
    )
    assert r.status_code == 201, r.text
    body = http.post("/api/auth/login", json={"username": name, "password": "e2e-pass-123"}).json()
    return {"Authorization": f"Bearer {body['access_token']}"}, body["user"], body["access_token"]


def create_listing(http: httpx.Client, auth: dict[str, str], duration: int = 600, **extra: Any) -> dict[str, Any]:
    cats = http.get("/api/categories").json()["items"]
    body = {"title": "e2e item", "category_id": cats[0]["id"], "start_price": "5", "duration_seconds": duration} | extra
    r = http.post("/api/listings", headers=auth, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def receive_until(ws: Any, predicate: Any, timeout: float = 20) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
        seen.append(message)
        if predicate(seen):
            return seen
    raise AssertionError(f"not seen in time; got {seen}")


def test_problem_details_money_strings_and_server_time(any_stack: Stack) -> None:
    with httpx.Client(base_url=any_stack.base_url, timeout=20) as http:
        r = http.get("/api/listings/999999999")
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        assert {"title", "status", "code"} <= set(r.json())
        auth, _, _ = new_user(http)
        listing = create_listing(http, auth)
        assert listing["start_price"] == "5.00" and listing["status"] == "active" and listing["bid_count"] == 0
        assert "X-Server-Time" in http.get(f"/api/listings/{listing['id']}").headers
        spec = http.get("/api/openapi.json").json()
        for path in ("/api/auth/login", "/api/listings", "/api/listings/{listing_id}/bids", "/api/chats"):
            assert any(p.replace("{id}", "{listing_id}") == path or p == path for p in spec["paths"]), path


def test_users_avatar_and_ws_auth_through_the_gateway(any_stack: Stack) -> None:
    with httpx.Client(base_url=any_stack.base_url, timeout=20) as http:
        auth, user, token = new_user(http)
        r = http.put("/api/users/me/avatar", headers=auth, files={"file": ("me.png", images.png(), "image/png")})
        assert r.status_code == 200, r.text
        assert http.get(r.json()["avatar_url"]).headers["content-type"] == "image/jpeg"
        bad = http.put("/api/users/me/avatar", headers=auth, files={"file": ("x.png", b"not an image", "image/png")})
        assert bad.status_code == 415 and bad.json()["code"] == "not_an_image"
        assert http.get("/api/users/me", headers=auth).json()["avatar_url"] == r.json()["avatar_url"]

    async def ws_auth() -> None:
        async with websockets.connect(any_stack.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "forged.token.value"}))
            assert json.loads(await ws.recv())["type"] == "error"
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv()) == {"type": "authed", "user_id": user["id"]}
            await ws.send(json.dumps({"type": "subscribe", "topic": f"user.{user['id'] + 1}"}))
            assert json.loads(await ws.recv())["code"] == "forbidden_topic"
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}

    asyncio.run(ws_auth())


def test_live_bid_outbid_close_winner_and_winner_message(any_stack: Stack) -> None:
    http = httpx.Client(base_url=any_stack.base_url, timeout=20)
    seller, seller_user, seller_token = new_user(http)
    first, _, first_token = new_user(http)
    second, second_user, _ = new_user(http)
    listing = create_listing(http, seller, duration=4)
    lid = listing["id"]

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            websockets.connect(any_stack.ws_url) as watcher,
            websockets.connect(any_stack.ws_url) as outbid_ws,
            websockets.connect(any_stack.ws_url) as seller_ws,
        ):
            await watcher.send(json.dumps({"type": "subscribe", "topic": f"listing.{lid}"}))
            assert json.loads(await watcher.recv())["type"] == "subscribed"
            await outbid_ws.send(json.dumps({"type": "auth", "token": first_token}))
            assert json.loads(await outbid_ws.recv())["type"] == "authed"
            await seller_ws.send(json.dumps({"type": "auth", "token": seller_token}))
            assert json.loads(await seller_ws.recv())["type"] == "authed"
            r = await asyncio.to_thread(http.post, f"/api/listings/{lid}/bids", headers=first, json={"amount": "6.00"})
            assert r.status_code == 201, r.text
            low = await asyncio.to_thread(
                http.post, f"/api/listings/{lid}/bids", headers=second, json={"amount": "6.00"}
            )
            assert (
                low.status_code == 409 and low.json()["code"] == "bid_too_low" and low.json()["min_next_bid"] == "6.01"
            )
            own = await asyncio.to_thread(
                http.post, f"/api/listings/{lid}/bids", headers=seller, json={"amount": "100"}
            )
            assert own.status_code == 403 and own.json()["code"] == "own_listing"
            r = await asyncio.to_thread(http.post, f"/api/listings/{lid}/bids", headers=second, json={"amount": 7.5})
            assert r.status_code == 201, r.text
            watched = await receive_until(watcher, lambda s: any(m.get("event") == "auction.closed" for m in s))
            outbid = await receive_until(outbid_ws, lambda s: any(m.get("event") == "bid.outbid" for m in s))
            sold = await receive_until(seller_ws, lambda s: any(m.get("event") == "auction.sold" for m in s))
            return watched, outbid, sold

    watched, outbid, sold = asyncio.run(run())
    amounts = [m["data"]["amount"] for m in watched if m.get("event") == "bid.placed"]
    assert amounts == ["6.00", "7.50"]
    closed = next(m for m in watched if m.get("event") == "auction.closed")
    assert closed["data"]["winner_id"] == second_user["id"] and closed["data"]["final_price"] == "7.50"
    assert next(m for m in outbid if m.get("event") == "bid.outbid")["data"] == {
        "listing_id": lid,
        "amount": "7.50",
        "bidder_username": second_user["username"],
    }
    assert next(m for m in sold if m.get("event") == "auction.sold")["data"]["winner_id"] == second_user["id"]

    # After the close: a late bid is refused, the listing shows the winner, the winner got the seller's message.
    late = http.post(f"/api/listings/{lid}/bids", headers=first, json={"amount": "50"})
    assert late.status_code == 409 and late.json()["code"] == "auction_closed"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = http.get(f"/api/listings/{lid}").json()
        chats = http.get("/api/chats", headers=second).json()["items"]
        if view["status"] == "closed" and view["winner"] and chats:
            break
        time.sleep(0.2)
    assert view["winner"]["id"] == second_user["id"] and view["current_price"] == "7.50"
    assert [c["peer"]["id"] for c in chats] == [seller_user["id"]]
    assert chats[0]["unread"] == 1 and str(lid) in chats[0]["last_message"]["text"]
    assert http.get("/api/chats/unread", headers=second).json() == {"count": 1}
    bids = http.get(f"/api/listings/{lid}/bids").json()["items"]
    assert [b["amount"] for b in bids] == ["7.50", "6.00"]
    mine = http.get("/api/bids", headers=second, params={"bidder": "me"}).json()["items"]
    assert [(b["listing_id"], b["amount"], b["bidder_id"]) for b in mine] == [(lid, "7.50", second_user["id"])]
    assert http.get("/api/bids", params={"bidder": "me"}).status_code == 401
    http.close()
