"""What the bidding service publishes and what it consumes.

Publishes ``bid.placed``, ``auction.extended``, ``auction.closed`` and ``auction.ending_soon``.
Consumes ``listing.created`` (one auction per listing, and its close scheduled once that commits) and
``listing.watched``/``listing.unwatched`` (who to alert when an auction ends soon).
Usernames come from the bidder's token (``Principal.username``) and from ``listing.created``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.bidding import rules
from services.bidding.models import OPEN
from services.bidding.repository import AuctionRepository
from services.bidding.tasks import schedule_after_commit
from shared import events
from shared.events import Envelope, format_time
from shared.inbox import SessionHandler
from shared.money import format_cents, parse_amount, to_cents
from shared.outbox import record_event, record_events

PRODUCER = "bidding"


async def bid_placed(
    session: AsyncSession,
    *,
    listing_id: int,
    bid_id: int,
    amount_cents: int,
    bidder_id: int,
    bidder_username: str,
    bid_count: int,
    ends_at: datetime,
    placed_at: datetime,
    previous_leader_id: int | None,
    seller_id: int,
    automatic: bool = False,
    reserve_met: bool | None = None,
    buy_now_available: bool = False,
    min_next_bid_cents: int | None = None,
) -> None:
    await record_event(
        session,
        PRODUCER,
        events.BID_PLACED,
        {
            "listing_id": listing_id,
            "bid_id": bid_id,
            "amount": format_cents(amount_cents),
            "bidder_id": bidder_id,
            "bidder_username": bidder_username,
            "bid_count": bid_count,
            "ends_at": format_time(ends_at),
            "placed_at": format_time(placed_at),
            # The gateway pushes ``bid.outbid`` to this user (not when they outbid themselves).
            "previous_leader_id": previous_leader_id,
            "seller_id": seller_id,
            # Placed by the system for a bidder's maximum (proxy bidding); the maximum itself is never published.
            "automatic": automatic,
            "reserve_met": reserve_met,
            "buy_now_available": buy_now_available,
            # The next acceptable bid after this one (this service owns the increments).
            "min_next_bid": format_cents(min_next_bid_cents) if min_next_bid_cents is not None else None,
        },
    )


async def auction_extended(session: AsyncSession, listing_id: int, ends_at: datetime) -> None:
    await record_event(
        session, PRODUCER, events.AUCTION_EXTENDED, {"listing_id": listing_id, "ends_at": format_time(ends_at)}
    )


async def auction_ending_soon(session: AsyncSession, auction: Row[Any], recipient_ids: list[int]) -> None:
    """One event per auction; the gateway pushes it to each recipient's private topic."""
    await record_event(
        session,
        PRODUCER,
        events.AUCTION_ENDING_SOON,
        {
            "listing_id": auction.listing_id,
            "title": auction.title,
            "ends_at": format_time(auction.ends_at),
            "recipient_ids": recipient_ids,
        },
    )


def _closed_data(auction: Row[Any]) -> dict[str, Any]:
    sold = rules.sold(auction.reserve_cents, auction.current_cents, auction.bid_count)
    return {
        "listing_id": auction.listing_id,
        "seller_id": auction.seller_id,
        "title": auction.title,
        "winner_id": auction.leader_id if sold else None,
        "winner_username": auction.leader_username if sold else None,
        "final_price": format_cents(auction.current_cents) if sold else None,
        "bid_count": auction.bid_count,
        "closed_at": format_time(auction.closed_at),
        "outcome": "sold" if sold else "unsold",
        "reserve_met": rules.reserve_met(auction.reserve_cents, auction.current_cents, auction.bid_count),
        "closed_by": auction.closed_by,
    }


async def auction_closed(session: AsyncSession, auction: Row[Any]) -> None:
    await record_event(session, PRODUCER, events.AUCTION_CLOSED, _closed_data(auction))


async def auctions_closed(session: AsyncSession, closed: list[Row[Any]]) -> None:
    """The ``auction.closed`` of a batch of closes, in one statement."""
    await record_events(session, PRODUCER, [(events.AUCTION_CLOSED, _closed_data(row)) for row in closed])


def parse_time(value: Any) -> datetime:
    """An RFC 3339 time from an event (``Z`` or an offset; a naive time is taken as UTC)."""
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    moment = datetime.fromisoformat(value.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _cents(value: Any) -> int | None:
    return None if value is None or value == "" else to_cents(parse_amount(value))


async def _listing_created(session: AsyncSession, event: Envelope) -> None:
    data = event.data
    listing_id = int(data["listing_id"])
    start_cents = _cents(data["start_price"])
    if start_cents is None:
        raise ValueError("listing.created without a start price")
    ends_at = parse_time(data["ends_at"])
    created_at = parse_time(data["created_at"]) if data.get("created_at") else event.occurred_at
    values = {
        "listing_id": listing_id,
        "seller_id": int(data["seller_id"]),
        "seller_username": str(data.get("seller_username") or "")[:64],
        "title": str(data.get("title") or "")[:200],
        "start_cents": start_cents,
        # No increment of its own: 0, the price bands of rules.BANDED_INCREMENTS apply.
        "increment_cents": _cents(data.get("bid_increment")) or 0,
        "reserve_cents": _cents(data.get("reserve_price")),
        "buy_now_cents": _cents(data.get("buy_now_price")),
        "current_cents": start_cents,
        "bid_count": 0,
        "status": OPEN,
        "created_at": created_at,
        "ends_at": ends_at,
    }
    if await AuctionRepository(session).create(values):
        schedule_after_commit(session, listing_id, ends_at)


async def _listing_watched(session: AsyncSession, event: Envelope) -> None:
    on = event.type == events.LISTING_WATCHED
    await AuctionRepository(session).watch(int(event.data["listing_id"]), int(event.data["user_id"]), on)


CONSUMED: dict[str, SessionHandler] = {
    events.LISTING_CREATED: _listing_created,
    events.LISTING_WATCHED: _listing_watched,
    events.LISTING_UNWATCHED: _listing_watched,
}
