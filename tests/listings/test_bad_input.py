"""Every bad input the issue names is answered with a problem, never a 500, and changes nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from services.listings.models import Comment, Listing
from shared.pagination import encode_cursor
from tests.listings.support import Feed, create_listing
from tests.support.tokens import TestKeys

GOOD: dict[str, Any] = {"title": "Chair", "category_id": 2, "start_price": "3.00", "duration_seconds": 60}

#: (what is wrong, the body, the field the problem names)
BAD_CREATES: list[tuple[str, Any, str]] = [
    ("no title", {k: v for k, v in GOOD.items() if k != "title"}, "title"),
    ("blank title", GOOD | {"title": "   "}, "title"),
    ("empty title", GOOD | {"title": ""}, "title"),
    ("title too long", GOOD | {"title": "x" * 81}, "title"),
    ("title not a string", GOOD | {"title": 12}, "title"),
    ("title null", GOOD | {"title": None}, "title"),
    ("description too long", GOOD | {"description": "d" * 2001}, "description"),
    ("description a list", GOOD | {"description": ["a"]}, "description"),
    ("no start price", {k: v for k, v in GOOD.items() if k != "start_price"}, "start_price"),
    ("start price a list", GOOD | {"start_price": [1]}, "start_price"),
    ("start price an object", GOOD | {"start_price": {"amount": 1}}, "start_price"),
    ("start price text", GOOD | {"start_price": "abc"}, "start_price"),
    ("start price boolean", GOOD | {"start_price": True}, "start_price"),
    ("start price zero", GOOD | {"start_price": 0}, "start_price"),
    ("start price rounds to zero", GOOD | {"start_price": "0.004"}, "start_price"),
    ("start price negative", GOOD | {"start_price": "-5"}, "start_price"),
    ("start price too high", GOOD | {"start_price": "1000000.01"}, "start_price"),
    ("start price not finite", GOOD | {"start_price": "NaN"}, "start_price"),
    ("start price infinite", GOOD | {"start_price": "Infinity"}, "start_price"),
    ("start price huge", GOOD | {"start_price": "1e400"}, "start_price"),
    ("increment zero", GOOD | {"bid_increment": "0"}, "bid_increment"),
    ("increment too high", GOOD | {"bid_increment": 1000001}, "bid_increment"),
    ("increment text", GOOD | {"bid_increment": "a lot"}, "bid_increment"),
    ("no duration", {k: v for k, v in GOOD.items() if k != "duration_seconds"}, "duration_seconds"),
    ("duration text", GOOD | {"duration_seconds": "abc"}, "duration_seconds"),
    ("duration numeric text", GOOD | {"duration_seconds": "3600"}, "duration_seconds"),
    ("duration fractional", GOOD | {"duration_seconds": 60.5}, "duration_seconds"),
    ("duration boolean", GOOD | {"duration_seconds": True}, "duration_seconds"),
    ("duration below the minimum", GOOD | {"duration_seconds": 0}, "duration_seconds"),
    ("duration negative", GOOD | {"duration_seconds": -60}, "duration_seconds"),
    ("duration over 30 days", GOOD | {"duration_seconds": 30 * 24 * 3600 + 1}, "duration_seconds"),
    ("duration enormous", GOOD | {"duration_seconds": 10**30}, "duration_seconds"),
    ("no category", {k: v for k, v in GOOD.items() if k != "category_id"}, "category_id"),
    ("category text", GOOD | {"category_id": "two"}, "category_id"),
    ("category zero", GOOD | {"category_id": 0}, "category_id"),
    ("category beyond BIGINT", GOOD | {"category_id": 2**63}, "category_id"),
    ("reserve below start", GOOD | {"start_price": 10, "reserve_price": 5}, "reserve_price"),
    ("buy now below start", GOOD | {"start_price": 10, "buy_now_price": 5}, "buy_now_price"),
    ("buy now below reserve", GOOD | {"reserve_price": 50, "buy_now_price": 20}, "buy_now_price"),
]


async def _stored(app: FastAPI) -> tuple[int, int]:
    async with app.state.runtime.db.read() as session:
        listings = await session.scalar(select(func.count()).select_from(Listing))
        comments = await session.scalar(select(func.count()).select_from(Comment))
    return int(listings or 0), int(comments or 0)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "code"} <= set(body)
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text
    return body


async def test_bad_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, test_keys: TestKeys, feed: Feed
) -> None:
    seller = test_keys.auth(1, "seller")
    listing = await create_listing(client, test_keys, 1, title="Kept", description="as is")
    await feed.wait_for("listing.created")
    before = await _stored(app)

    for what, body, field in BAD_CREATES:
        response = await client.post("/api/listings", json=body, headers=seller)
        problem = assert_problem(response, 422)
        fields = {error["field"] for error in problem.get("errors", [])}
        assert field in fields, (what, problem)

    unknown = await client.post("/api/listings", json=GOOD | {"category_id": 999}, headers=seller)
    assert_problem(unknown, 422, "unknown_category")
    for raw in (b"{not json", b"[]", b'"text"', b"null", b""):
        response = await client.post(
            "/api/listings", content=raw, headers=seller | {"content-type": "application/json"}
        )
        assert_problem(response, 422)
    assert_problem(await client.post("/api/listings", json=GOOD), 401, "unauthorized")
    assert_problem(await client.post("/api/listings", json=GOOD, headers={"Authorization": "Bearer nope"}), 401)
    expired = {"Authorization": f"Bearer {test_keys.token(1, lifetime=-60)}"}
    assert_problem(await client.post("/api/listings", json=GOOD, headers=expired), 401, "invalid_token")

    url = f"/api/listings/{listing['id']}"
    for body in ({"title": ""}, {"title": None}, {"title": "t" * 81}, {"description": "d" * 2001}, {"title": [1]}):
        assert_problem(await client.patch(url, json=body, headers=seller), 422)
    for body in ({"text": ""}, {"text": " \n "}, {"text": "c" * 501}, {"text": None}, {"text": 3}, {}):
        assert_problem(await client.post(f"{url}/comments", json=body, headers=test_keys.auth(2)), 422)

    # Query strings and paths.
    tampered = [
        "not-a-cursor!",
        "eyJ4IjoxfQ",  # {"x":1}
        encode_cursor("a"),
        encode_cursor(1, 2),
        encode_cursor(2**70),
        encode_cursor(-1),
    ]
    for cursor in tampered:
        assert_problem(await client.get("/api/listings", params={"cursor": cursor}), 422, "invalid_cursor")
        assert_problem(await client.get(f"{url}/comments", params={"cursor": cursor}), 422, "invalid_cursor")
    for cursor in (encode_cursor(5), encode_cursor("not a time", 3), encode_cursor("2026-01-01T00:00:00", "x")):
        response = await client.get("/api/listings", params={"sort": "ending_soon", "cursor": cursor})
        assert_problem(response, 422, "invalid_cursor")
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"status": "sold"},
        {"category_id": "x"},
        {"category_id": 2**63},
        {"seller_id": "someone"},
        {"seller_id": "-1"},
        {"seller_id": str(2**64)},
        {"watched": "maybe"},
        {"won": "perhaps"},
        {"bidder": "you"},
        {"sort": "cheapest"},
        {"q": "x" * 201},
    ):
        assert_problem(await client.get("/api/listings", params=params), 422)
    assert_problem(await client.get("/api/listings/abc"), 422)
    assert_problem(await client.get("/api/listings/1.5"), 422)
    assert_problem(await client.put("/api/listings/abc/watch", headers=seller), 422)

    assert await _stored(app) == before
    shown = (await client.get(url)).json()
    assert (shown["title"], shown["description"]) == ("Kept", "as is")
    # Events leave in commit order: once a later good change's event is out, none came from the bad ones.
    assert (await client.patch(url, json={"description": "at last"}, headers=seller)).status_code == 200
    await feed.wait_for("listing.updated")
    assert [e.type for e in feed.received if e.producer == "listings"] == ["listing.created", "listing.updated"]
