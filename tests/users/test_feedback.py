"""Feedback after a sale: the sales the users service learns from ``auction.closed``, the rules of
leaving a rating, and what profiles show; in both run modes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.users import events
from services.users.app import create_app
from services.users.config import Settings
from services.users.models import Sale
from shared.events import Envelope, format_time
from shared.inbox import idempotent
from tests.listings.support import Feed, eventually, feed_for, served
from tests.users.test_api import assert_problem, bearer, login, register


@pytest.fixture
def settings(mode: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(Settings, real=mode == "postgres")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with served(app, settings) as http:
        yield http


@pytest.fixture
async def feed(client: httpx.AsyncClient, app: FastAPI, settings: Settings) -> AsyncIterator[Feed]:
    """Publishes events as the bidding service would: on the service's in-process bus, or on RabbitMQ."""
    async with feed_for(app, settings) as feed:
        yield feed


class Party:
    def __init__(self, user: dict[str, Any], tokens: dict[str, Any]) -> None:
        self.id: int = user["id"]
        self.username: str = user["username"]
        self.auth = bearer(tokens)


async def party(client: httpx.AsyncClient, name: str) -> Party:
    user = await register(client, name)
    return Party(user, await login(client, name))


def closed(listing_id: int, seller: Party, winner: Party | None, price: str | None = "12.50") -> dict[str, Any]:
    return {
        "listing_id": listing_id,
        "seller_id": seller.id,
        "title": f"Item {listing_id}",
        "winner_id": winner.id if winner else None,
        "winner_username": winner.username if winner else None,
        "final_price": price if winner else None,
        "bid_count": 2 if winner else 0,
        "closed_at": format_time(datetime.now(UTC)),
        "a_field_added_later": {"ignored": True},
    }


async def won(client: httpx.AsyncClient, user: Party) -> int:
    return int((await client.get(f"/api/users/{user.id}")).json()["stats"]["won"])


async def sold(client: httpx.AsyncClient, feed: Feed, listing_id: int, seller: Party, winner: Party) -> None:
    """Publish the close of a sale and wait until the users service has applied it."""
    before = await won(client, winner)
    await feed.publish("auction.closed", closed(listing_id, seller, winner))

    async def applied() -> bool:
        return await won(client, winner) == before + 1

    await eventually(applied, within=15)


def new_listing_id() -> int:
    return uuid.uuid4().int % 1_000_000_000 + 1


async def test_the_two_parties_rate_each_other_once_after_a_sale(client: httpx.AsyncClient, feed: Feed) -> None:
    seller, winner, other = (
        await party(client, "seller1"),
        await party(client, "winner1"),
        await party(client, "other1"),
    )
    listing = new_listing_id()
    url = f"/api/listings/{listing}/feedback"
    # Before the close: nothing is known about that listing.
    assert_problem(await client.post(url, headers=winner.auth, json={"rating": 1}), 409, "not_sold")
    await sold(client, feed, listing, seller, winner)

    assert_problem(await client.post(url, json={"rating": 1}), 401)
    assert_problem(await client.post(url, headers=other.auth, json={"rating": 1}), 403, "not_a_party")

    r = await client.post(url, headers=winner.auth, json={"rating": 1, "comment": "  Fast and friendly  "})
    assert r.status_code == 201, r.text
    left = r.json()
    assert left["listing_id"] == listing and left["rating"] == 1 and left["comment"] == "Fast and friendly"
    assert left["from_user"] == {"id": winner.id, "username": winner.username}
    assert left["to_user"] == {"id": seller.id, "username": seller.username}
    assert isinstance(left["id"], int) and left["created_at"].endswith("Z")

    again = await client.post(url, headers=winner.auth, json={"rating": -1, "comment": "changed my mind"})
    assert_problem(again, 409, "feedback_exists")

    r = await client.post(url, headers=seller.auth, json={"rating": 0})
    assert r.status_code == 201, r.text
    assert r.json()["to_user"]["id"] == winner.id and r.json()["comment"] is None

    seller_profile = (await client.get(f"/api/users/{seller.id}")).json()
    assert seller_profile["feedback"] == {
        "score": 1,
        "positive": 1,
        "neutral": 0,
        "negative": 0,
        "recent": [
            {
                "id": left["id"],
                "rating": 1,
                "comment": "Fast and friendly",
                "from_user": {"id": winner.id, "username": winner.username},
                "listing_id": listing,
                "listing_title": f"Item {listing}",
                "created_at": left["created_at"],
            }
        ],
    }
    me = (await client.get("/api/users/me", headers=winner.auth)).json()
    assert me["feedback"]["neutral"] == 1 and me["feedback"]["score"] == 0
    assert me["feedback"]["recent"][0]["from_user"]["id"] == seller.id
    assert (await client.get(f"/api/users/{other.id}")).json()["feedback"]["recent"] == []


async def test_no_feedback_on_unsold_or_unknown_listings(client: httpx.AsyncClient, feed: Feed) -> None:
    seller, bidder = await party(client, "seller2"), await party(client, "bidder2")
    unsold = new_listing_id()
    await feed.publish("auction.closed", closed(unsold, seller, None))
    # A later sale proves the unsold close was applied before it (one queue, in order in both modes).
    await sold(client, feed, new_listing_id(), seller, bidder)
    for listing in (unsold, 2**62):
        for who in (seller, bidder):
            r = await client.post(f"/api/listings/{listing}/feedback", headers=who.auth, json={"rating": 1})
            assert_problem(r, 409, "not_sold")
    assert_problem(await client.post("/api/listings/0/feedback", headers=seller.auth, json={"rating": 1}), 422)
    assert_problem(await client.post(f"/api/listings/{2**64}/feedback", headers=seller.auth, json={"rating": 1}), 422)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rating": 2},
        {"rating": -2},
        {"rating": "1"},
        {"rating": True},
        {"rating": 1.0},
        {"rating": None},
        {"rating": 1, "comment": "x" * 501},
        {"rating": 1, "comment": 5},
        [1],
    ],
)
async def test_bad_bodies_are_422_and_store_nothing(client: httpx.AsyncClient, feed: Feed, body: Any) -> None:
    seller, winner = await party(client, "seller3"), await party(client, "winner3")
    listing = new_listing_id()
    await sold(client, feed, listing, seller, winner)
    r = await client.post(f"/api/listings/{listing}/feedback", headers=winner.auth, json=body)
    assert assert_problem(r, 422)["errors"]
    assert (await client.get(f"/api/users/{seller.id}")).json()["feedback"]["recent"] == []
    # The longest comment allowed is fine.
    ok = await client.post(
        f"/api/listings/{listing}/feedback", headers=winner.auth, json={"rating": -1, "comment": "y" * 500}
    )
    assert ok.status_code == 201, ok.text


async def test_simultaneous_posts_by_one_party_give_one_rating(client: httpx.AsyncClient, feed: Feed) -> None:
    seller, winner = await party(client, "seller4"), await party(client, "winner4")
    listing = new_listing_id()
    await sold(client, feed, listing, seller, winner)
    results = await asyncio.gather(
        *(
            client.post(
                f"/api/listings/{listing}/feedback", headers=winner.auth, json={"rating": 1, "comment": f"#{i}"}
            )
            for i in range(4)
        )
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    for r in results:
        if r.status_code == 409:
            assert_problem(r, 409, "feedback_exists")
    summary = (await client.get(f"/api/users/{seller.id}")).json()["feedback"]
    assert summary["positive"] == 1 and len(summary["recent"]) == 1


async def test_profile_shows_the_score_and_the_five_latest_and_lists_them_all(
    client: httpx.AsyncClient, feed: Feed
) -> None:
    seller = await party(client, "seller5")
    ratings = [1, 1, -1, 0, 1, 1, -1]
    for index, rating in enumerate(ratings):
        buyer = await party(client, f"buyer5x{index}")
        listing = new_listing_id()
        await sold(client, feed, listing, seller, buyer)
        r = await client.post(
            f"/api/listings/{listing}/feedback", headers=buyer.auth, json={"rating": rating, "comment": f"c{index}"}
        )
        assert r.status_code == 201, r.text
    summary = (await client.get(f"/api/users/{seller.id}")).json()["feedback"]
    assert (summary["score"], summary["positive"], summary["neutral"], summary["negative"]) == (2, 4, 1, 2)
    assert [f["comment"] for f in summary["recent"]] == ["c6", "c5", "c4", "c3", "c2"]
    assert summary["recent"][0]["from_user"]["username"] == "buyer5x6"

    first = (await client.get(f"/api/users/{seller.id}/feedback", params={"limit": 4})).json()
    assert [f["comment"] for f in first["items"]] == ["c6", "c5", "c4", "c3"] and first["next_cursor"]
    second = (
        await client.get(f"/api/users/{seller.id}/feedback", params={"limit": 4, "cursor": first["next_cursor"]})
    ).json()
    assert [f["comment"] for f in second["items"]] == ["c2", "c1", "c0"] and second["next_cursor"] is None
    assert_problem(
        await client.get(f"/api/users/{seller.id}/feedback", params={"cursor": "%%bad"}), 422, "invalid_cursor"
    )
    assert_problem(await client.get("/api/users/999999/feedback"), 404, "not_found")


async def test_the_same_close_twice_makes_one_sale(client: httpx.AsyncClient, app: FastAPI, feed: Feed) -> None:
    """Redelivery (same event id) and a duplicate close (another id, same listing) both count once."""
    seller, winner = await party(client, "seller6"), await party(client, "winner6")
    db = app.state.runtime.db
    handle = idempotent(db, "users-feedback-test", events.CONSUMED)
    listing = new_listing_id()
    close = Envelope(type="auction.closed", producer="bidding", data=closed(listing, seller, winner, "99.99"))
    await handle(close)
    await handle(close)
    await handle(Envelope(type="auction.closed", producer="bidding", data=closed(listing, seller, winner, "99.99")))
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Sale).where(Sale.listing_id == listing)) == 1
        sale = await session.get(Sale, listing)
        assert sale is not None and (sale.seller_id, sale.winner_id, sale.final_price) == (seller.id, winner.id, 9999)
    assert await won(client, winner) == 1
    r = await client.post(f"/api/listings/{listing}/feedback", headers=seller.auth, json={"rating": 1})
    assert r.status_code == 201, r.text


async def test_feedback_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "post" in paths["/api/listings/{listing_id}/feedback"]
    assert "get" in paths["/api/users/{user_id}/feedback"]
