"""The listings HTTP API, in both modes (SQLite + in-process bus, PostgreSQL + RabbitMQ)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from PIL import Image

from services.listings.app import create_app
from services.listings.config import Settings
from services.listings.models import Listing
from tests.conftest import serve
from tests.listings.support import Feed, create_listing, eventually, get_listing, ids
from tests.support.tokens import TestKeys

CATEGORIES = ["Electronics", "Fashion", "Home", "Collectibles", "Art", "Books", "Sports", "Toys", "Vehicles", "Other"]


def parse(moment: str) -> datetime:
    assert moment.endswith("Z"), moment
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def png(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def close_listing(
    feed: Feed, listing_id: int, *, winner_id: int | None = None, price: str | None = None, bids: int = 0
) -> None:
    await feed.publish(
        "auction.closed",
        {
            "listing_id": listing_id,
            "seller_id": 1,
            "title": "t",
            "winner_id": winner_id,
            "winner_username": f"user{winner_id}" if winner_id else None,
            "final_price": price,
            "bid_count": bids,
            "closed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
    )


async def test_categories_are_seeded_once(client: httpx.AsyncClient, settings: Settings, test_keys: TestKeys) -> None:
    response = await client.get("/api/categories")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert [c["name"] for c in body["items"]] == CATEGORIES
    assert all(isinstance(c["id"], int) for c in body["items"])
    # A second replica starting on the same database seeds nothing twice.
    async with serve(create_app(settings, jwks=test_keys.source)) as second:
        again = (await second.get("/api/categories")).json()
    assert again == body


async def test_create_and_read_a_listing(client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed) -> None:
    before = datetime.now(UTC)
    response = await client.post(
        "/api/listings",
        json={
            "title": "  Vintage camera  ",
            "category_id": 1,
            "start_price": 12.5,
            "duration_seconds": 3600,
            "description": 'Works <b>fine</b> & "as is"',
            "bid_increment": "0.5",
        },
        headers=test_keys.auth(7, "alice"),
    )
    assert response.status_code == 201, response.text
    assert "X-Server-Time" in response.headers
    created = response.json()
    assert set(created) >= {
        "id", "title", "description", "category", "seller", "image_url", "start_price", "current_price",
        "bid_count", "leader_id", "min_next_bid", "created_at", "ends_at", "status", "winner", "watched",
        "bid_increment",
    }  # fmt: skip
    assert created["title"] == "Vintage camera"
    assert created["description"] == 'Works <b>fine</b> & "as is"'  # stored as typed
    assert created["category"] == {"id": 1, "name": "Electronics"}
    assert created["seller"] == {"id": 7, "username": "alice", "avatar_url": "/media/avatars/default.svg"}
    assert created["image_url"] is None
    assert created["start_price"] == "12.50"
    assert created["current_price"] == "12.50"
    assert created["bid_increment"] == "0.50"
    assert created["min_next_bid"] == "12.50"
    assert created["bid_count"] == 0
    assert created["leader_id"] is None
    assert created["status"] == "active"
    assert created["winner"] is None
    assert created["watched"] is False
    assert created["reserve_met"] is None
    created_at, ends_at = parse(created["created_at"]), parse(created["ends_at"])
    assert before - timedelta(seconds=1) <= created_at <= datetime.now(UTC)
    assert abs((ends_at - created_at) - timedelta(seconds=3600)) < timedelta(milliseconds=2)

    anonymous = await get_listing(client, created["id"])
    assert anonymous == created
    assert (await get_listing(client, created["id"], test_keys.auth(8)))["watched"] is False

    missing = await client.get("/api/listings/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "not_found"
    assert (await client.get(f"/api/listings/{2**70}")).status_code == 404
    assert (await client.get("/api/listings/-3")).status_code == 404

    # Auction formats: a reserve (shown only to the seller) and a buy-now price.
    listing = await create_listing(
        client, test_keys, 1, start_price="10", reserve_price="50", buy_now_price="80", bid_increment=1
    )
    assert listing["reserve_met"] is False
    assert listing["buy_now_price"] == "80.00"
    assert listing["reserve_price"] == "50.00"  # the seller sees the reserve
    other = await get_listing(client, listing["id"], test_keys.auth(2))
    assert other["reserve_price"] is None  # nobody else does
    assert (await get_listing(client, listing["id"]))["reserve_price"] is None
    created = await feed.wait_for("listing.created", lambda d: d["listing_id"] == listing["id"])
    assert created.data["reserve_price"] == "50.00"
    assert created.data["buy_now_price"] == "80.00"


async def test_browse_filters_and_pages(client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed) -> None:
    a = await create_listing(client, test_keys, 1, title="Red bicycle", category_id=7)
    b = await create_listing(client, test_keys, 2, title="Blue lamp", category_id=3, description="A BICYCLE lamp")
    c = await create_listing(client, test_keys, 1, title="50% off_sale", category_id=3, duration_seconds=120)
    d = await create_listing(client, test_keys, 3, title="Old book", category_id=6, duration_seconds=60)
    e = await create_listing(client, test_keys, 2, title="5000 offxsale", category_id=3)
    everything = [e["id"], d["id"], c["id"], b["id"], a["id"]]

    assert await ids(client, {}) == everything  # newest first
    assert await ids(client, {"category_id": 3}) == [e["id"], c["id"], b["id"]]
    assert await ids(client, {"seller_id": 1}) == [c["id"], a["id"]]
    assert await ids(client, {"seller_id": "me"}, test_keys.auth(2)) == [e["id"], b["id"]]
    assert await ids(client, {"seller_id": "me", "category_id": 3}, test_keys.auth(1)) == [c["id"]]
    # Text search: case-insensitive, in title and description, wildcards taken literally.
    assert await ids(client, {"q": "bicycle"}) == [b["id"], a["id"]]
    assert await ids(client, {"q": "50%"}) == [c["id"]]
    assert await ids(client, {"q": "off_sale"}) == [c["id"]]
    assert await ids(client, {"q": "  BOOK "}) == [d["id"]]
    assert await ids(client, {"q": "bicycle", "category_id": 7}) == [a["id"]]
    assert await ids(client, {"q": "nothing like it"}) == []

    # Status: closed by the event, and also once the end time has passed.
    await close_listing(feed, b["id"])
    await eventually(lambda: _status_is(client, b["id"], "closed"))
    assert await ids(client, {"status": "closed"}) == [b["id"]]
    assert await ids(client, {"status": "active"}) == [e["id"], d["id"], c["id"], a["id"]]
    assert await ids(client, {"status": "active", "category_id": 3}) == [e["id"], c["id"]]

    # Ending soon: active ones, soonest first.
    assert await ids(client, {"sort": "ending_soon"}) == [d["id"], c["id"], a["id"], e["id"]]
    assert await ids(client, {"sort": "ending_soon", "status": "closed"}) == [b["id"]]

    # Pages: every listing once, in order, for both orders.
    for params, expected in (
        ({}, everything),
        ({"sort": "ending_soon"}, [d["id"], c["id"], a["id"], e["id"]]),
    ):
        seen: list[int] = []
        cursor = None
        while True:
            query: dict[str, Any] = {**params, "limit": 2}
            if cursor:
                query["cursor"] = cursor
            page = (await client.get("/api/listings", params=query)).json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected

    # Cards carry what the index page shows.
    card = (await client.get("/api/listings", params={"limit": 1})).json()["items"][0]
    assert {"id", "title", "image_url", "current_price", "bid_count", "ends_at", "status"} <= set(card)

    # The personal filters need a caller.
    for params in ({"seller_id": "me"}, {"watched": "true"}, {"won": "true"}, {"bidder": "me"}):
        response = await client.get("/api/listings", params=params)
        assert response.status_code == 401, params
        assert response.json()["code"] == "unauthorized"


async def _status_is(client: httpx.AsyncClient, listing_id: int, status: str) -> bool:
    return bool((await get_listing(client, listing_id))["status"] == status)


async def test_a_listing_past_its_end_shows_closed(client: httpx.AsyncClient, test_keys: TestKeys) -> None:
    short = await create_listing(client, test_keys, 1, duration_seconds=1)
    long = await create_listing(client, test_keys, 1)
    assert short["status"] == "active"
    await asyncio.sleep(max(0.0, (parse(short["ends_at"]) - datetime.now(UTC)).total_seconds()) + 0.05)
    shown = await get_listing(client, short["id"])
    assert shown["status"] == "closed"
    assert shown["winner"] is None
    assert await ids(client, {"status": "active"}) == [long["id"]]
    assert await ids(client, {"status": "closed"}) == [short["id"]]
    response = await client.post(
        f"/api/listings/{short['id']}/comments", json={"text": "too late"}, headers=test_keys.auth(2)
    )
    assert response.status_code == 409
    assert response.json()["code"] == "auction_closed"
    # Deleting waits for the bidding service's close.
    response = await client.delete(f"/api/listings/{short['id']}", headers=test_keys.auth(1))
    assert response.status_code == 409
    assert response.json()["code"] == "auction_active"


async def test_watchlist(client: httpx.AsyncClient, test_keys: TestKeys) -> None:
    first = await create_listing(client, test_keys, 1)
    second = await create_listing(client, test_keys, 1)
    watcher = test_keys.auth(5)
    for _ in range(2):  # idempotent
        response = await client.put(f"/api/listings/{first['id']}/watch", headers=watcher)
        assert response.status_code == 200, response.text
        assert response.json() == {"listing_id": first["id"], "watched": True}
    assert (await get_listing(client, first["id"], watcher))["watched"] is True
    assert (await get_listing(client, first["id"], test_keys.auth(6)))["watched"] is False  # private
    assert (await get_listing(client, first["id"]))["watched"] is False
    page = (await client.get("/api/listings", headers=watcher)).json()["items"]
    assert {item["id"]: item["watched"] for item in page} == {first["id"]: True, second["id"]: False}
    assert await ids(client, {"watched": "true"}, watcher) == [first["id"]]
    assert await ids(client, {"watched": "true"}, test_keys.auth(6)) == []
    for _ in range(2):
        response = await client.delete(f"/api/listings/{first['id']}/watch", headers=watcher)
        assert response.status_code == 200
        assert response.json() == {"listing_id": first["id"], "watched": False}
    assert await ids(client, {"watched": "true"}, watcher) == []
    assert (await client.put(f"/api/listings/{first['id']}/watch")).status_code == 401
    assert (await client.put("/api/listings/424242/watch", headers=watcher)).status_code == 404


async def test_edit_and_delete_by_the_seller_only(
    client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed, app: FastAPI
) -> None:
    listing = await create_listing(client, test_keys, 1, description="old")
    url = f"/api/listings/{listing['id']}"
    assert (await client.patch(url, json={"title": "x"})).status_code == 401
    forbidden = await client.patch(url, json={"title": "x"}, headers=test_keys.auth(2))
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    assert (
        await client.patch("/api/listings/777777", json={"title": "x"}, headers=test_keys.auth(1))
    ).status_code == 404

    response = await client.patch(url, json={"title": " New title "}, headers=test_keys.auth(1))
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "New title"
    assert response.json()["description"] == "old"
    response = await client.patch(url, json={"description": "new words"}, headers=test_keys.auth(1))
    assert response.json()["title"] == "New title"
    assert response.json()["description"] == "new words"
    assert await ids(client, {"q": "new words"}) == [listing["id"]]
    for bad in ({"title": ""}, {"title": None}, {"title": "x" * 81}, {"description": "d" * 2001}, {"title": 5}):
        response = await client.patch(url, json=bad, headers=test_keys.auth(1))
        assert response.status_code == 422, bad
    shown = await get_listing(client, listing["id"])
    assert (shown["title"], shown["description"]) == ("New title", "new words")

    # Delete: seller only, and only once the auction closed.
    assert (await client.delete(url)).status_code == 401
    assert (await client.delete(url, headers=test_keys.auth(2))).status_code == 403
    active = await client.delete(url, headers=test_keys.auth(1))
    assert active.status_code == 409
    assert active.json()["code"] == "auction_active"
    await client.put(f"{url}/watch", headers=test_keys.auth(3))
    await client.post(f"{url}/comments", json={"text": "hi"}, headers=test_keys.auth(3))
    await close_listing(feed, listing["id"])
    await eventually(lambda: _status_is(client, listing["id"], "closed"))
    await eventually(lambda: _closed_in_db(app, listing["id"]))
    deleted = await client.delete(url, headers=test_keys.auth(1))
    assert deleted.status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.get(f"{url}/comments")).status_code == 404
    assert await ids(client, {}) == []


async def _closed_in_db(app: FastAPI, listing_id: int) -> bool:
    async with app.state.runtime.db.read() as session:
        listing = await session.get(Listing, listing_id)
        return listing is not None and listing.status == "closed"


async def test_comments(client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed) -> None:
    listing = await create_listing(client, test_keys, 1)
    url = f"/api/listings/{listing['id']}/comments"
    assert (await client.get(url)).json() == {"items": [], "next_cursor": None}
    assert (await client.post(url, json={"text": "hello"})).status_code == 401
    posted = []
    for number in range(3):
        response = await client.post(url, json={"text": f"comment {number} <i>"}, headers=test_keys.auth(4, "bob"))
        assert response.status_code == 201, response.text
        posted.append(response.json())
    first = posted[0]
    assert set(first) == {"id", "listing_id", "author", "text", "created_at"}
    assert first["listing_id"] == listing["id"]
    assert first["author"] == {"id": 4, "username": "bob", "avatar_url": "/media/avatars/default.svg"}
    assert first["text"] == "comment 0 <i>"
    parse(first["created_at"])

    page = (await client.get(url, params={"limit": 2})).json()
    assert [c["id"] for c in page["items"]] == [posted[2]["id"], posted[1]["id"]]  # newest first
    rest = (await client.get(url, params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [c["id"] for c in rest["items"]] == [posted[0]["id"]]
    assert rest["next_cursor"] is None

    bad_bodies: list[Any] = [{"text": ""}, {"text": "   "}, {"text": "x" * 501}, {"text": 5}, {}, []]
    for bad in bad_bodies:
        response = await client.post(url, json=bad, headers=test_keys.auth(4))
        assert response.status_code == 422, bad
    assert (await client.post(url, json={"text": "x" * 500}, headers=test_keys.auth(4))).status_code == 201
    assert (await client.get(url, params={"cursor": "garbage!"})).status_code == 422
    assert (await client.get("/api/listings/555555/comments")).status_code == 404
    missing = await client.post("/api/listings/555555/comments", json={"text": "x"}, headers=test_keys.auth(4))
    assert missing.status_code == 404

    await close_listing(feed, listing["id"])
    await eventually(lambda: _status_is(client, listing["id"], "closed"))
    closed = await client.post(url, json={"text": "late"}, headers=test_keys.auth(4))
    assert closed.status_code == 409
    assert closed.json()["code"] == "auction_closed"
    assert len((await client.get(url, params={"limit": 100})).json()["items"]) == 4


async def test_listing_image(client: httpx.AsyncClient, test_keys: TestKeys) -> None:
    listing = await create_listing(client, test_keys, 1)
    url = f"/api/listings/{listing['id']}/image"
    upload = {"file": ("photo.png", png(), "image/png")}
    assert (await client.put(url, files=upload)).status_code == 401
    assert (await client.put(url, files=upload, headers=test_keys.auth(2))).status_code == 403
    response = await client.put(url, files=upload, headers=test_keys.auth(1))
    assert response.status_code == 200, response.text
    image_url = response.json()["image_url"]
    assert image_url.startswith("/media/listings/") and image_url.endswith(".jpg")
    assert (await get_listing(client, listing["id"]))["image_url"] == image_url
    served = await client.get(image_url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(served.content)).size == (40, 30)

    not_image = await client.put(
        url, files={"file": ("x.png", b"not an image at all", "image/png")}, headers=test_keys.auth(1)
    )
    assert not_image.status_code == 415
    assert not_image.json()["code"] == "not_an_image"
    assert (await client.put(url, headers=test_keys.auth(1))).status_code == 422
    assert (await get_listing(client, listing["id"]))["image_url"] == image_url
    assert (await client.get("/media/listings/nothing.jpg")).status_code == 404
    assert (await client.get("/media/listings/..%2Fsecret.jpg")).status_code == 404
