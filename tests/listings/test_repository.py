"""The projection's SQL, straight on the database (both dialects): any delivery order, any duplicates,
the same final state; a stale event never moves a listing backwards."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.listings import events
from services.listings.app import MIGRATIONS
from services.listings.config import Settings
from services.listings.models import ACTIVE, Listing
from services.listings.repository import ListingRepository
from shared.db import Database, prepare_database
from shared.events import Envelope, format_time
from shared.inbox import idempotent

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(mode: str, make_settings: Callable[..., Any]) -> AsyncIterator[Database]:
    database = await prepare_database(make_settings(Settings, real=mode == "postgres"), MIGRATIONS)
    try:
        yield database
    finally:
        await database.dispose()


async def _new_listing(db: Database) -> int:
    async with db.transaction() as session:
        listing = Listing(
            seller_id=1,
            category_id=1,
            title="t",
            description="",
            search_text="t",
            start_price=1000,
            bid_increment=100,
            created_at=T0,
            updated_at=T0,
            current_price=1000,
            bid_count=0,
            ends_at=T0 + timedelta(hours=1),
            status=ACTIVE,
        )
        await ListingRepository(session).add(listing)
        return listing.id


def _bid(listing_id: int, count: int, extend_minutes: int = 0) -> Envelope:
    return Envelope(
        type="bid.placed",
        producer="bidding",
        data={
            "listing_id": listing_id,
            "bid_id": count,
            "amount": f"{10 + count}.00",
            "bidder_id": 100 + count,
            "bidder_username": f"b{count}",
            "bid_count": count,
            "ends_at": format_time(T0 + timedelta(hours=1, minutes=extend_minutes)),
            "placed_at": format_time(T0),
            "previous_leader_id": None,
            "seller_id": 1,
        },
    )


async def _state(db: Database, listing_id: int) -> tuple[Any, ...]:
    async with db.read() as session:
        listing = await session.get(Listing, listing_id)
        assert listing is not None
        return (listing.current_price, listing.bid_count, listing.leader_id, listing.ends_at, listing.status)


async def test_any_order_with_duplicates_ends_at_the_newest_bid(db: Database) -> None:
    handle = idempotent(db, "listings-test", events.CONSUMED)
    shuffle = random.Random(20261129)
    for _ in range(4):
        listing_id = await _new_listing(db)
        bids = [_bid(listing_id, count, extend_minutes=count) for count in range(1, 7)]
        extension = Envelope(
            type="auction.extended",
            producer="bidding",
            data={"listing_id": listing_id, "ends_at": format_time(T0 + timedelta(hours=2))},
        )
        deliveries = [*bids, extension, *shuffle.sample(bids, 3), extension]  # with redeliveries
        shuffle.shuffle(deliveries)
        for envelope in deliveries:
            await handle(envelope)
        assert await _state(db, listing_id) == (1600, 6, 106, T0 + timedelta(hours=2), ACTIVE)


async def test_close_is_final_and_nothing_moves_backwards(db: Database) -> None:
    handle = idempotent(db, "listings-test", events.CONSUMED)
    listing_id = await _new_listing(db)
    await handle(_bid(listing_id, 1))
    close = Envelope(
        type="auction.closed",
        producer="bidding",
        data={
            "listing_id": listing_id,
            "seller_id": 1,
            "title": "t",
            "winner_id": 103,
            "winner_username": "b3",
            "final_price": "13.00",
            "bid_count": 3,
            "closed_at": format_time(T0 + timedelta(hours=1)),
        },
    )
    await handle(close)
    await handle(_bid(listing_id, 2, extend_minutes=30))
    await handle(_bid(listing_id, 3, extend_minutes=30))
    await handle(close)
    async with db.read() as session:
        listing = await session.get(Listing, listing_id)
        assert listing is not None
        assert (listing.current_price, listing.bid_count, listing.leader_id) == (1300, 3, 103)
        assert (listing.status, listing.winner_id, listing.winner_username) == ("closed", 103, "b3")
        assert listing.ends_at == T0 + timedelta(hours=1)  # no extension after the close
    listing_id = await _new_listing(db)  # the SQL itself, without the inbox
    async with db.transaction() as session:
        listings = ListingRepository(session)
        assert await listings.apply_bid(listing_id, 2000, 2, 7)
        assert not await listings.apply_bid(listing_id, 1500, 1, 6)  # older
        assert not await listings.apply_bid(listing_id, 2000, 2, 7)  # the same again
        assert not await listings.apply_bid(listing_id, 1900, 3, 8)  # a lower price never shows
        assert await listings.extend(listing_id, T0 + timedelta(hours=3))
        assert not await listings.extend(listing_id, T0 + timedelta(hours=2))
    assert await _state(db, listing_id) == (2000, 2, 7, T0 + timedelta(hours=3), ACTIVE)


async def test_a_deleted_listings_id_is_never_given_again(db: Database) -> None:
    # Other services keep records under a listing's id; a new listing must not inherit a deleted one's.
    first = await _new_listing(db)
    second = await _new_listing(db)
    async with db.transaction() as session:
        await ListingRepository(session).delete(second)
    third = await _new_listing(db)
    assert first < second < third
