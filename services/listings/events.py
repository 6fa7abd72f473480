"""What the listings service publishes and what it consumes.

Publishes ``listing.created``, ``listing.updated``, ``listing.deleted`` and ``comment.posted``.
Consumes ``user.registered`` / ``user.updated`` (the seller and author names and avatars it shows) and
``bid.placed``, ``auction.extended``, ``auction.closed`` (the live state of each listing). Each event is
applied once (``shared.inbox``) and the projection never moves backwards: a late, older event changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.listings.models import Comment, Listing
from services.listings.repository import ListingRepository, ProfileRepository
from shared import events
from shared.events import Envelope, format_time
from shared.inbox import SessionHandler
from shared.money import format_cents, to_cents
from shared.outbox import record_event

log = logging.getLogger(__name__)

PRODUCER = "listings"
DEFAULT_AVATAR_URL = "/media/avatars/default.svg"


def image_url(listing: Listing) -> str | None:
    return f"/media/{listing.image}" if listing.image else None


def _money(cents: int | None) -> str | None:
    return format_cents(cents) if cents is not None else None


# ----- published -----
async def listing_created(session: AsyncSession, listing: Listing, seller_username: str) -> None:
    await record_event(
        session,
        PRODUCER,
        events.LISTING_CREATED,
        {
            "listing_id": listing.id,
            "seller_id": listing.seller_id,
            "seller_username": seller_username,
            "title": listing.title,
            "category_id": listing.category_id,
            "start_price": format_cents(listing.start_price),
            # null: the bidding service's price bands apply.
            "bid_increment": format_cents(listing.bid_increment) if listing.bid_increment else None,
            "image_url": image_url(listing),
            "created_at": format_time(listing.created_at),
            "ends_at": format_time(listing.ends_at),
            # The contract's auction formats (additions): null when the listing has none.
            "reserve_price": _money(listing.reserve_price),
            "buy_now_price": _money(listing.buy_now_price),
        },
    )


async def listing_updated(session: AsyncSession, listing: Listing) -> None:
    await record_event(
        session,
        PRODUCER,
        events.LISTING_UPDATED,
        {
            "listing_id": listing.id,
            "title": listing.title,
            "description": listing.description,
            "image_url": image_url(listing),
        },
    )


async def listing_deleted(session: AsyncSession, listing: Listing) -> None:
    await record_event(
        session, PRODUCER, events.LISTING_DELETED, {"listing_id": listing.id, "seller_id": listing.seller_id}
    )


async def listing_watched(session: AsyncSession, listing_id: int, user_id: int, on: bool) -> None:
    """``listing.watched`` / ``listing.unwatched``: bidding alerts watchers when an auction ends soon."""
    name = events.LISTING_WATCHED if on else events.LISTING_UNWATCHED
    await record_event(session, PRODUCER, name, {"listing_id": listing_id, "user_id": user_id})


async def comment_posted(session: AsyncSession, comment: Comment, author_username: str) -> None:
    await record_event(
        session,
        PRODUCER,
        events.COMMENT_POSTED,
        {
            "listing_id": comment.listing_id,
            "comment_id": comment.id,
            "author_id": comment.author_id,
            "author_username": author_username,
            "text": comment.text,
            "created_at": format_time(comment.created_at),
        },
    )


# ----- consumed -----
def parse_time(value: Any) -> datetime:
    """An RFC 3339 time from an event (``Z`` or an offset; naive means UTC)."""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_cents(value: Any) -> int:
    """A money string (or number) from an event as integer cents."""
    amount = Decimal(str(value))
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return to_cents(amount)


async def _user_seen(session: AsyncSession, event: Envelope) -> None:
    data = event.data
    await ProfileRepository(session).upsert(
        int(data["user_id"]),
        str(data["username"]),
        str(data.get("avatar_url") or DEFAULT_AVATAR_URL),
        event.occurred_at,
    )


async def _bid_placed(session: AsyncSession, event: Envelope) -> None:
    data = event.data
    listing_id = int(data["listing_id"])
    listings = ListingRepository(session)
    if await listings.get(listing_id) is None:
        log.info("bid.placed %s for listing %s, which is gone; ignored", event.id, listing_id)
        return
    bidder_id = int(data["bidder_id"])
    min_next = parse_cents(data["min_next_bid"]) if data.get("min_next_bid") else None
    await listings.apply_bid(listing_id, parse_cents(data["amount"]), int(data["bid_count"]), bidder_id, min_next)
    if data.get("ends_at"):
        await listings.extend(listing_id, parse_time(data["ends_at"]))
    await listings.add_bidder(listing_id, bidder_id)


async def _auction_extended(session: AsyncSession, event: Envelope) -> None:
    await ListingRepository(session).extend(int(event.data["listing_id"]), parse_time(event.data["ends_at"]))


async def _auction_closed(session: AsyncSession, event: Envelope) -> None:
    data = event.data
    winner_id = data.get("winner_id")
    final_price = data.get("final_price")
    closed_at = data.get("closed_at")
    await ListingRepository(session).close(
        int(data["listing_id"]),
        closed_at=parse_time(closed_at) if closed_at else event.occurred_at,
        winner_id=int(winner_id) if winner_id is not None else None,
        winner_username=str(data.get("winner_username") or "") if winner_id is not None else None,
        final_price=parse_cents(final_price) if final_price is not None else None,
        bid_count=int(data.get("bid_count") or 0),
    )


CONSUMED: dict[str, SessionHandler] = {
    events.USER_REGISTERED: _user_seen,
    events.USER_UPDATED: _user_seen,
    events.BID_PLACED: _bid_placed,
    events.AUCTION_EXTENDED: _auction_extended,
    events.AUCTION_CLOSED: _auction_closed,
}
